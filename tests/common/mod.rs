//! The one place integration tests get what they need: a free port, the real binary started as
//! the Functions host starts it, an in-process runtime with test-only functions, and requests
//! shaped the way the host sends them.
#![allow(dead_code)] // each test file uses a different part of this helper

use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use custom_handler::registry::Implemented;
use serde_json::{Value, json};
use tokio::sync::oneshot;

/// A port nobody listens on right now, found the way the host finds one: bind and let go.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("no free port on 127.0.0.1")
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

/// An in-process runtime on an ephemeral port, with functions of the test's own.
pub struct TestApp {
    /// `http://127.0.0.1:<port>`.
    pub base: String,
    /// A client for it.
    pub client: reqwest::Client,
    shutdown: Option<oneshot::Sender<()>>,
    server: Option<tokio::task::JoinHandle<()>>,
    _root: AppRoot,
}

impl TestApp {
    /// Starts serving `functions` declared by `root`.
    pub async fn spawn<S: Send + Sync + 'static>(
        root: AppRoot,
        state: S,
        functions: Vec<Implemented<S>>,
    ) -> Self {
        custom_handler::logging::init();
        let listener = tokio::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .await
            .expect("bind");
        let addr: SocketAddr = listener.local_addr().expect("addr");
        let runtime = handler::app::runtime(root.path(), Arc::new(state), functions);
        let (tx, rx) = oneshot::channel::<()>();
        let server = tokio::spawn(custom_handler::server::run(
            listener,
            Arc::new(runtime),
            async {
                let _ = rx.await;
            },
        ));
        let base = format!("http://{addr}");
        wait_ready(&base).await;
        Self {
            base,
            client: reqwest::Client::new(),
            shutdown: Some(tx),
            server: Some(server),
            _root: root,
        }
    }

    /// POSTs a JSON-mode invocation of `function` and returns the host envelope.
    pub async fn invoke(&self, function: &str, payload: &Value) -> (u16, Value) {
        let response = self
            .client
            .post(format!("{}/{function}", self.base))
            .header("Content-Type", "application/json; charset=utf-8")
            .header("X-Azure-Functions-InvocationId", uuid_like())
            .body(payload.to_string())
            .send()
            .await
            .expect("invocation");
        let status = response.status().as_u16();
        let body = response.bytes().await.expect("body");
        (status, serde_json::from_slice(&body).unwrap_or(Value::Null))
    }

    /// Asks the server to stop, and returns the task that completes when it has.
    pub fn stop(&mut self) -> tokio::task::JoinHandle<()> {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        self.server.take().expect("server already stopped")
    }
}

/// A host-shaped JSON-mode payload for an HTTP trigger named `req` (contract spec §2.4).
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

/// A host-shaped timer payload (contract spec §2.5).
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

/// The `handler` binary Cargo built for this test run.
pub fn handler_binary() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_handler"))
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
    /// Starts the binary with only the host's variables (spec §1.3) plus `extra`, and waits for `GET /`.
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
        Self::start(Path::new(env!("CARGO_MANIFEST_DIR")), &pairs).await
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
        let response = reqwest::Client::new()
            .post(format!("{}/{function}", self.base))
            .header("Content-Type", "application/json; charset=utf-8")
            .header("X-Azure-Functions-InvocationId", uuid_like())
            .body(payload.to_string())
            .send()
            .await
            .expect("invocation");
        assert_eq!(
            response.status(),
            200,
            "an HTTP function always answers the host 200 in JSON mode"
        );
        response.json_body().await
    }
}

/// A raw TCP connection, for requests no HTTP client would send (a head cut short, a body that
/// never comes). Every read gives up after 20 s, so a hung server fails the test, never hangs it.
pub struct RawConnection {
    stream: tokio::net::TcpStream,
}

impl RawConnection {
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
    async fn json_body(self) -> Value;
}

impl JsonBody for reqwest::Response {
    async fn json_body(self) -> Value {
        serde_json::from_slice(&self.bytes().await.expect("body")).unwrap_or(Value::Null)
    }
}

/// The emulators' own test helper (spawn an `emulators` subcommand and read its ready line),
/// shared rather than copied.
#[path = "../../emulators/tests/common/mod.rs"]
pub mod emulator;
pub mod fake_server;
pub mod stack;
