//! The `handler` binary as the Functions host sees it: a free port, the binary started with the
//! host's variables, a temporary app root, requests shaped the way the host sends them, and a raw
//! connection for requests no HTTP client would send.

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

/// A port nobody listens on right now, found the way the host finds one: bind and let go.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("no free port on 127.0.0.1")
}

/// `http://127.0.0.1:<port>` where nothing listens (a [`free_port`]): a host that refuses
/// connections.
pub fn closed_port_base() -> String {
    format!("http://127.0.0.1:{}", free_port())
}

/// Polls `GET /` every 25 ms, as the host does, until any HTTP answer arrives (30 s limit).
pub async fn wait_ready(base: &str) {
    let client = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if client.get(format!("{base}/")).send().await.is_ok() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("{base} did not answer GET / within 30 s");
}

/// Sends `request` and returns the answer, failing the test with the error when none arrives:
/// what a test means by "send this" when the answer itself is under test.
pub async fn send(request: reqwest::RequestBuilder) -> reqwest::Response {
    request
        .send()
        .await
        .unwrap_or_else(|e| panic!("no answer: {e}"))
}

/// `GET url` through [`send`].
pub async fn get(client: &reqwest::Client, url: impl reqwest::IntoUrl) -> reqwest::Response {
    send(client.get(url)).await
}

/// A temporary app root holding host.json and the given function folders.
pub struct AppRoot {
    dir: tempfile::TempDir,
}

impl AppRoot {
    /// Writes `host.json` and one `<name>/function.json` per entry.
    pub fn new(host: Value, functions: &[(&str, Value)]) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        std::fs::write(dir.path().join("host.json"), host.to_string()).expect("host.json");
        for (name, function) in functions {
            std::fs::create_dir_all(dir.path().join(name)).expect("function folder");
            std::fs::write(
                dir.path().join(name).join("function.json"),
                function.to_string(),
            )
            .expect("function.json");
        }
        Self { dir }
    }

    /// The folder.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }
}

/// The function.json of an HTTP function.
pub fn http_function(route: &str, methods: &[&str]) -> Value {
    json!({"bindings": [
        {"type": "httpTrigger", "direction": "in", "name": "req", "authLevel": "function", "methods": methods, "route": route},
        {"type": "http", "direction": "out", "name": "res"}
    ]})
}

/// The function.json of a timer function.
pub fn timer_function(schedule: &str) -> Value {
    json!({"bindings": [{"type": "timerTrigger", "direction": "in", "name": "myTimer", "schedule": schedule}]})
}

/// POSTs a JSON-mode invocation of `function` to `base` as the host does: JSON content type and
/// a fresh invocation id.
pub async fn post_invocation(
    client: &reqwest::Client,
    base: &str,
    function: &str,
    payload: &Value,
) -> reqwest::Response {
    post_invocation_as(client, base, function, payload, &uuid_like()).await
}

/// [`post_invocation`] with the invocation id `id`.
pub async fn post_invocation_as(
    client: &reqwest::Client,
    base: &str,
    function: &str,
    payload: &Value,
    id: &str,
) -> reqwest::Response {
    client
        .post(format!("{base}/{function}"))
        .header("Content-Type", "application/json; charset=utf-8")
        .header("X-Azure-Functions-InvocationId", id)
        .body(payload.to_string())
        .send()
        .await
        .expect("invocation")
}

/// A host-shaped JSON-mode payload for an HTTP trigger named `req`, as the host sends it
/// (docs/host-contract.md, 'The HTTP trigger in Data').
pub fn http_payload(method: &str, url: &str, params: Value, body: Option<&str>) -> Value {
    let mut req = json!({
        "Url": url, "Method": method, "Query": {},
        "Headers": {"Host": ["localhost:7071"], "Content-Type": ["text/plain"]},
        "Params": params,
        "Identities": [{"AuthenticationType": null, "IsAuthenticated": false, "Claims": []}]
    });
    if let Some(body) = body {
        req["Body"] = json!(body);
    }
    json!({"Data": {"req": req}, "Metadata": {"sys": {"MethodName": "x", "UtcNow": "2024-10-24T17:42:07.5123456Z", "RandGuid": uuid_like()}}})
}

/// A host-shaped invocation of WriteBlob or ReadBlob (`/api/blobs/{container}/{name}`), with the
/// route values the host sends and, when given, a body and its content type.
pub fn blob_request(
    method: &str,
    container: &str,
    name: &str,
    body: Option<(&str, &str)>,
) -> Value {
    let url = format!("http://localhost:7071/api/blobs/{container}/{name}");
    let params = json!({"container": container, "name": name});
    let mut payload = http_payload(method, &url, params, body.map(|(_, text)| text));
    if let Some((content_type, _)) = body {
        payload["Data"]["req"]["Headers"]["Content-Type"] = json!([content_type]);
    }
    payload
}

/// A host-shaped invocation of GetSecret (`GET /api/secrets/{name}`, `?version=` when given).
pub fn get_secret(name: &str, version: Option<&str>) -> Value {
    let url = format!("http://localhost:7071/api/secrets/{name}");
    let mut payload = http_payload("GET", &url, json!({ "name": name }), None);
    if let Some(version) = version {
        payload["Data"]["req"]["Query"] = json!({ "version": version });
    }
    payload
}

/// A host-shaped invocation of TokenInfo (`GET /api/token`) with `query`.
pub fn token_info(query: Value) -> Value {
    let mut payload = http_payload("GET", "http://localhost:7071/api/token", json!({}), None);
    payload["Data"]["req"]["Query"] = query;
    payload
}

/// A host-shaped timer payload, as the host sends it (docs/host-contract.md, 'Timer input').
pub fn timer_payload(status: Value) -> Value {
    json!({"Data": {"myTimer": {"Schedule": {"AdjustForDST": true}, "ScheduleStatus": status, "IsPastDue": false}},
           "Metadata": {"sys": {"MethodName": "Tick", "UtcNow": "2024-10-24T17:45:00.0211583Z", "RandGuid": uuid_like()}}})
}

/// A unique id shaped like the host's invocation ids.
pub fn uuid_like() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(1);
    format!(
        "00000000-0000-4000-8000-{:012x}",
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

/// The repository's root: host.json, the function folders, node_modules/.
pub fn repo_root() -> &'static Path {
    static ROOT: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    ROOT.get_or_init(|| {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../..")
            .canonicalize()
            .expect("the repository root")
    })
}

/// The `handler` binary Cargo built for this test run, beside the test executable
/// (`<target>/<profile>/handler`): Cargo builds a package's binaries for its integration tests.
pub fn handler_binary() -> PathBuf {
    let exe = std::env::current_exe().expect("the test executable's path");
    let binary = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("the test executable sits in <target>/<profile>/deps")
        .join("handler");
    assert!(
        binary.exists(),
        "{} is missing: run the handler's tests through cargo",
        binary.display()
    );
    binary
}

/// The real binary, started as the host starts it, and stopped when dropped. Its stdout and
/// stderr are drained as it runs (a chatty handler must never block on a full pipe).
pub struct RunningHandler {
    /// The child process.
    pub child: Child,
    /// `http://127.0.0.1:<port>`.
    pub base: String,
    stdout: Arc<Mutex<String>>,
    stderr: Arc<Mutex<String>>,
}

impl RunningHandler {
    /// Starts the binary with only the host's variables plus `extra`, and waits for `GET /`
    /// (docs/host-contract.md, 'The worker's environment' and 'Readiness: `GET /`').
    pub async fn start(app_root: &Path, extra: &[(&str, &str)]) -> Self {
        let port = free_port();
        let mut command = Command::new(handler_binary());
        command
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("FUNCTIONS_CUSTOMHANDLER_PORT", port.to_string())
            .env("FUNCTIONS_HTTPWORKER_PORT", port.to_string())
            .env(
                "FUNCTIONS_CUSTOMHANDLER_WORKER_ID",
                "11111111-1111-4111-8111-111111111111",
            )
            .env("FUNCTIONS_APP_ROOT_PATH", app_root)
            .current_dir(app_root)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (name, value) in extra {
            command.env(name, value);
        }
        let mut child = command.spawn().expect("start handler");
        let stdout = drain(child.stdout.take().expect("piped stdout"));
        let stderr = drain(child.stderr.take().expect("piped stderr"));
        let base = format!("http://127.0.0.1:{port}");
        wait_ready(&base).await;
        Self {
            child,
            base,
            stdout,
            stderr,
        }
    }

    /// Starts the binary on the repository's own function folders with `env` (owned pairs).
    pub async fn start_in_repo(env: &[(String, String)]) -> Self {
        let pairs: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        Self::start(repo_root(), &pairs).await
    }

    /// Sends SIGTERM, as the host does when it stops.
    pub fn terminate(&self) {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status();
    }

    /// Sends SIGTERM and waits (up to 10 s) for the exit status.
    pub async fn stop(&mut self) -> std::process::ExitStatus {
        self.terminate();
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(status) = self.child.try_wait().expect("wait for handler") {
                // let the drain threads read the last lines
                std::thread::sleep(Duration::from_millis(50));
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "handler did not stop within 10 s of SIGTERM"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Everything the handler wrote to stdout so far.
    pub fn stdout(&self) -> String {
        self.stdout.lock().expect("stdout buffer").clone()
    }

    /// Everything the handler wrote to stderr so far.
    pub fn stderr(&self) -> String {
        self.stderr.lock().expect("stderr buffer").clone()
    }

    /// POSTs a JSON-mode invocation, as the host does, and returns the envelope.
    pub async fn invoke(&self, function: &str, payload: &Value) -> Value {
        self.invoke_as(function, payload, &uuid_like()).await
    }

    /// [`RunningHandler::invoke`] with the invocation id `id`.
    pub async fn invoke_as(&self, function: &str, payload: &Value, id: &str) -> Value {
        let response =
            post_invocation_as(&reqwest::Client::new(), &self.base, function, payload, id).await;
        assert_eq!(
            response.status(),
            200,
            "an HTTP function always answers the host 200 in JSON mode"
        );
        response.json_body().await
    }

    /// [`RunningHandler::invoke`] of an HTTP function, read as its [`http_output`]: the status it
    /// answered and its body as JSON.
    pub async fn invoke_http(&self, function: &str, payload: &Value) -> (u16, Value) {
        http_output(&self.invoke(function, payload).await)
    }

    /// TokenInfo (`GET /api/token`) with `query`, read as [`RunningHandler::invoke_http`].
    pub async fn token_info(&self, query: Value) -> (u16, Value) {
        self.invoke_http("TokenInfo", &token_info(query)).await
    }
}

/// A raw TCP connection, for requests no HTTP client would send (a head cut short, a body that
/// never comes). Every read gives up after 20 s, so a hung server fails the test, never hangs it.
pub struct RawConnection {
    stream: tokio::net::TcpStream,
}

impl RawConnection {
    /// Connects to `base` and sends `bytes`, which must all be written.
    pub async fn sending(base: &str, bytes: &[u8]) -> Self {
        let mut connection = Self::open(base).await;
        connection
            .send(bytes)
            .await
            .expect("send the request bytes");
        connection
    }

    /// Connects to `base` (`http://127.0.0.1:<port>`).
    pub async fn open(base: &str) -> Self {
        let address = base.trim_start_matches("http://");
        let stream = tokio::net::TcpStream::connect(address)
            .await
            .expect("connect");
        Self { stream }
    }

    /// Writes `bytes`; an error means the server closed the connection.
    pub async fn send(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        use tokio::io::AsyncWriteExt as _;
        self.stream.write_all(bytes).await?;
        self.stream.flush().await
    }

    /// The response head (status line and headers), or `None` when the server closed the
    /// connection without answering.
    pub async fn read_head(&mut self) -> Option<String> {
        use tokio::io::AsyncReadExt as _;
        let mut head = Vec::new();
        let mut byte = [0u8; 1];
        let reading = async {
            while !head.ends_with(b"\r\n\r\n") {
                match self.stream.read(&mut byte).await {
                    Ok(0) | Err(_) => return,
                    Ok(_) => head.push(byte[0]),
                }
            }
        };
        tokio::time::timeout(Duration::from_secs(20), reading)
            .await
            .expect("the server neither answered nor closed within 20 s");
        (!head.is_empty()).then(|| String::from_utf8_lossy(&head).into_owned())
    }

    /// Whether the server closes the connection (within 20 s), reading and discarding anything
    /// it sends first.
    pub async fn closed(&mut self) -> bool {
        use tokio::io::AsyncReadExt as _;
        let mut sink = [0u8; 1024];
        let reading = async {
            loop {
                match self.stream.read(&mut sink).await {
                    Ok(0) | Err(_) => return true,
                    Ok(_) => {}
                }
            }
        };
        tokio::time::timeout(Duration::from_secs(20), reading)
            .await
            .unwrap_or(false)
    }
}

/// The status code of a response head.
pub fn head_status(head: &str) -> u16 {
    head.split(' ')
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or_else(|| panic!("not a response head: {head:?}"))
}

/// A header's value in a response head, by name without regard to case.
pub fn head_header<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    head.lines().skip(1).find_map(|line| {
        let (key, value) = line.split_once(':')?;
        key.trim().eq_ignore_ascii_case(name).then(|| value.trim())
    })
}

fn drain(pipe: impl std::io::Read + Send + 'static) -> Arc<Mutex<String>> {
    let buffer = Arc::new(Mutex::new(String::new()));
    let sink = buffer.clone();
    std::thread::spawn(move || {
        let mut reader = std::io::BufReader::new(pipe);
        let mut line = String::new();
        while std::io::BufRead::read_line(&mut reader, &mut line).is_ok_and(|n| n > 0) {
            sink.lock().expect("output buffer").push_str(&line);
            line.clear();
        }
    });
    buffer
}

impl Drop for RunningHandler {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The http output of a JSON-mode envelope, and its body parsed as JSON (null when not JSON).
pub fn http_output(envelope: &Value) -> (u16, Value) {
    let output = &envelope["Outputs"]["res"];
    let status = output["statusCode"].as_u64().expect("statusCode") as u16;
    let body = output["body"]
        .as_str()
        .and_then(|b| serde_json::from_str(b).ok())
        .unwrap_or(Value::Null);
    (status, body)
}

/// Reads a response body as JSON (null when it is not JSON), for assertions.
pub trait JsonBody {
    /// The body as JSON.
    fn json_body(self) -> impl std::future::Future<Output = Value> + Send;
}

impl JsonBody for reqwest::Response {
    async fn json_body(self) -> Value {
        serde_json::from_slice(&self.bytes().await.expect("body")).unwrap_or(Value::Null)
    }
}
