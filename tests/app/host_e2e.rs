//! The path a user takes: HTTP requests to the Functions host emulator, which starts the real
//! `handler` from the repository's own function folders and forwards HTTP requests to it (host.json
//! turns forwarding on; timers stay in JSON mode), with the identity and Key Vault emulators and
//! Azurite behind. Some tests turn forwarding off to check what JSON mode does to bodies.

use std::time::{Duration, Instant};

use serde_json::Value;
use test_kit::emulator::Running;
use test_kit::handler::{JsonBody, get, send};
use test_kit::stack::{Stack, app_root_with_forwarding};

struct Host {
    running: Running,
    key: String,
    client: reqwest::Client,
}

impl Host {
    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.running.base_url)
    }

    async fn get(&self, path: &str) -> reqwest::Response {
        send(
            self.client
                .get(self.url(path))
                .header("x-functions-key", &self.key),
        )
        .await
    }

    async fn put(&self, path: &str, content_type: Option<&str>, body: &[u8]) -> reqwest::Response {
        let mut request = self
            .client
            .put(self.url(path))
            .header("x-functions-key", &self.key)
            .body(body.to_vec());
        if let Some(kind) = content_type {
            request = request.header("Content-Type", kind);
        }
        send(request).await
    }

    /// Writes blob `name` of the container the body tests use, through the host's route.
    async fn put_body(
        &self,
        name: &str,
        content_type: Option<&str>,
        body: &[u8],
    ) -> reqwest::Response {
        self.put(&format!("/api/blobs/bodies/{name}"), content_type, body)
            .await
    }

    /// Reads blob `name` of the container the body tests use.
    async fn get_body(&self, name: &str) -> reqwest::Response {
        self.get(&format!("/api/blobs/bodies/{name}")).await
    }

    /// The host's log as the real host would record it.
    async fn host_log(&self) -> Vec<Value> {
        self.emulator_list("/_emulator/logs").await
    }

    /// A JSON list the emulator keeps (its log, its invocations).
    async fn emulator_list(&self, path: &str) -> Vec<Value> {
        let body = get(&self.client, self.url(path)).await;
        let json: Value = serde_json::from_slice(&body.bytes().await.expect("body")).expect("JSON");
        json.as_array().cloned().unwrap_or_default()
    }

    /// Runs RefreshTokens through the admin API with the master key, as the portal's "Test/Run"
    /// does (`{"input":""}`, with or without a JSON content type).
    async fn start_refresh(&self, json_content_type: bool) -> reqwest::Response {
        let master = self.running.ready_str("master_key");
        let mut request = self
            .client
            .post(self.url("/admin/functions/RefreshTokens"))
            .header("x-functions-key", master);
        if json_content_type {
            request = request.header("Content-Type", "application/json");
        }
        send(request.body(r#"{"input":""}"#)).await
    }

    /// Waits for the invocation of `function` that `matches`, up to 20 s.
    async fn wait_for(&self, function: &str, matches: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(run) = self
                .invocations()
                .await
                .into_iter()
                .find(|i| i["function"] == function && matches(i))
            {
                return run;
            }
            assert!(
                Instant::now() < deadline,
                "no matching {function} invocation"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The host log's lines whose message `matches`, once there are at least `count` of them
    /// or 10 s have passed (a test asserting more then sees the few that came).
    async fn wait_for_log_lines(&self, count: usize, matches: impl Fn(&str) -> bool) -> Vec<Value> {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let lines: Vec<Value> = self
                .host_log()
                .await
                .into_iter()
                .filter(|entry| matches(entry["message"].as_str().unwrap_or_default()))
                .collect();
            if lines.len() >= count || Instant::now() > deadline {
                return lines;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn invocations(&self) -> Vec<Value> {
        self.emulator_list("/_emulator/invocations").await
    }

    fn new(running: Running) -> Self {
        let key = running.ready_str("function_key");
        Host {
            running,
            key,
            client: reqwest::Client::new(),
        }
    }
}

fn start_host(stack: &Stack, env: &[(&str, &str)]) -> (Host, tempfile::TempDir) {
    let (running, keys) = stack.host(env);
    (Host::new(running), keys)
}

/// The host emulator on a copy of the app with forwarding on or off.
fn start_host_in_mode(
    stack: &Stack,
    forwarding: bool,
    env: &[(&str, &str)],
) -> (Host, Vec<tempfile::TempDir>) {
    let app_root = app_root_with_forwarding(forwarding);
    let (running, keys) = stack.host_in(app_root.path(), env);
    (Host::new(running), vec![app_root, keys])
}

/// The stack with Azurite and the host in either mode, allowed to write the "bodies" container
/// the body tests use (the stack is returned because it must outlive the host).
fn start_bodies_host(forwarding: bool) -> (Stack, Host, Vec<tempfile::TempDir>) {
    let stack = Stack::start(true);
    let (host, dirs) = start_host_in_mode(&stack, forwarding, &[("ALLOWED_CONTAINERS", "bodies")]);
    (stack, host, dirs)
}

/// A blob name with a content type, and one sent with none.
const TYPED_AND_UNTYPED: [(&str, Option<&str>); 2] =
    [("photo.png", Some("image/png")), ("untyped.bin", None)];

/// The bodies host of [`start_bodies_host`], and the answers to PUTting [`awkward_png`] under each
/// of [`TYPED_AND_UNTYPED`].
struct PngPuts {
    _stack: Stack,
    _dirs: Vec<tempfile::TempDir>,
    host: Host,
    png: Vec<u8>,
    /// Each name, its content type and the answer to its PUT.
    puts: Vec<(&'static str, Option<&'static str>, reqwest::Response)>,
}

/// Starts the bodies host (`forwarding` or JSON mode) and PUTs the awkward PNG under each name of
/// [`TYPED_AND_UNTYPED`], asserting each PUT answered `status`.
async fn put_awkward_png_each(forwarding: bool, status: u16) -> PngPuts {
    let (_stack, host, _dirs) = start_bodies_host(forwarding);
    let png = awkward_png();
    let mut puts = Vec::new();
    for (name, content_type) in TYPED_AND_UNTYPED {
        let answer = host.put_body(name, content_type, &png).await;
        assert_eq!(answer.status(), status, "{name}");
        puts.push((name, content_type, answer));
    }
    PngPuts {
        _stack,
        _dirs,
        host,
        png,
        puts,
    }
}

/// A PNG that is no valid UTF-8 and starts with a UTF-8 BOM: the host's text reading would drop
/// the BOM and replace the invalid sequences, so any lossy hop shows.
fn awkward_png() -> Vec<u8> {
    let mut bytes = vec![0xEF, 0xBB, 0xBF];
    bytes.extend_from_slice(&[0x89, b'P', b'N', b'G', 0x0D, 0x0A, 0x1A, 0x0A]);
    bytes.extend_from_slice(&[
        0xC0, 0x80, 0xFF, 0xFE, 0xED, 0xA0, 0x80, 0x00, 0x00, 0x00, 0x0D,
    ]);
    bytes.extend((0..=255u8).rev());
    bytes
}

#[tokio::test]
#[ignore = "needs Azurite from npm: run scripts/test"]
async fn every_function_works_through_the_host_and_the_timer_fires_on_its_schedule() {
    let stack = Stack::start(true);
    let (host, _keys) = start_host(&stack, &[("TOKEN_REFRESH_SCHEDULE", "*/2 * * * * *")]);

    let token = host
        .get("/api/token?resource=https://storage.azure.com/.default")
        .await;
    assert_eq!(token.status(), 200);
    let token = token.json_body().await;
    assert_eq!(token["claims"]["aud"], "https://storage.azure.com");

    let secret = host.get("/api/secrets/app-greeting").await;
    assert_eq!(secret.status(), 200);
    assert_eq!(secret.headers()["cache-control"], "no-store");
    assert_eq!(secret.json_body().await["value"], "hello from the vault");

    let written = send(
        host.client
            .put(host.url(&format!("/api/blobs/e2e/note.txt?code={}", host.key)))
            .header("Content-Type", "text/plain")
            .body("written through the host"),
    )
    .await;
    assert_eq!(written.status(), 201);
    let read = host.get("/api/blobs/e2e/note.txt").await;
    assert_eq!(read.headers()["content-type"], "text/plain");
    assert_eq!(read.text().await.unwrap(), "written through the host");

    let binary: Vec<u8> = vec![0, 1, 2, 254, 255];
    let written = host
        .put(
            "/api/blobs/e2e/raw.bin",
            Some("application/octet-stream"),
            &binary,
        )
        .await;
    assert_eq!(written.json_body().await["size"], binary.len());
    let read = host.get("/api/blobs/e2e/raw.bin").await;
    assert!(read.headers().get("content-transfer-encoding").is_none());
    assert_eq!(read.bytes().await.unwrap(), binary, "forwarded: raw bytes");

    // On its */2 s schedule the timer fires well within wait_for's 20 s.
    let fired = host
        .wait_for("RefreshTokens", |i| i["trigger"] == "timer")
        .await;
    assert_eq!(fired["status"], "succeeded", "{fired}");
    assert!(
        fired["logs"]
            .to_string()
            .contains("token for https://vault.azure.net: valid for"),
        "{fired}"
    );
}

#[tokio::test]
async fn keys_are_enforced_as_in_azure_and_the_admin_api_runs_the_timer() {
    let stack = Stack::start(false);
    let (host, _keys) = start_host(&stack, &[("TOKEN_REFRESH_SCHEDULE", "0 0 0 1 1 *")]);
    let anonymous = get(&host.client, host.url("/api/token")).await;
    assert_eq!(anonymous.status(), 401);
    assert!(anonymous.bytes().await.unwrap().is_empty());
    let wrong = get(&host.client, host.url("/api/token?code=wrong")).await;
    assert_eq!(wrong.status(), 401);
    let by_query = get(
        &host.client,
        host.url(&format!("/api/token?code={}", host.key)),
    )
    .await;
    assert_eq!(by_query.status(), 200);

    assert_eq!(host.start_refresh(true).await.status(), 202);
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let runs = host.invocations().await;
        if let Some(run) = runs.iter().find(|i| i["function"] == "RefreshTokens") {
            assert_eq!(run["status"], "succeeded", "{run}");
            assert!(run["logs"].to_string().contains("valid for"), "{run}");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the admin invocation did not run"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn a_forwarded_warning_reaches_the_host_once_as_a_warning_naming_its_invocation() {
    let stack = Stack::start(false);
    let (host, _keys) = start_host(&stack, &[("TOKEN_REFRESH_SCHEDULE", "0 0 0 1 1 *")]);
    let refused = host.get("/api/secrets/not-allowed").await;
    assert_eq!(refused.status(), 403);
    assert!(
        refused.json_body().await["error"]["message"]
            .as_str()
            .unwrap()
            .contains("ALLOWED_SECRETS")
    );
    let run = host.wait_for("GetSecret", |_| true).await;
    assert_eq!(run["http_status"], 403);
    assert_eq!(run["mode"], "forwarding");
    let id = run["invocation_id"].as_str().unwrap().to_owned();
    let tag = format!("[GetSecret {id}]");
    let lines = host
        .wait_for_log_lines(1, |message| message.contains("answered 403"))
        .await;
    assert_eq!(lines.len(), 1, "logged once: {lines:?}");
    assert_eq!(lines[0]["level"], "Warning", "{lines:?}");
    assert!(
        lines[0]["message"].as_str().unwrap().contains(&tag),
        "the line names its function and the host's invocation id: {lines:?}"
    );
}

#[tokio::test]
async fn a_burst_of_forwarded_invocations_logs_each_info_line_once_naming_its_invocation() {
    let stack = Stack::start(false);
    let (host, _keys) = start_host(&stack, &[("TOKEN_REFRESH_SCHEDULE", "0 0 0 1 1 *")]);
    const BURST: usize = 40;
    let answers = futures::future::join_all(
        (0..BURST).map(|_| host.get("/api/token?resource=https://storage.azure.com/.default")),
    )
    .await;
    assert!(answers.iter().all(|answer| answer.status() == 200));
    let ids: Vec<String> = host
        .invocations()
        .await
        .iter()
        .filter(|run| run["function"] == "TokenInfo")
        .map(|run| run["invocation_id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(ids.len(), BURST);
    // Lines written to stdout in batches must still arrive whole, each once, without more traffic.
    let lines = host
        .wait_for_log_lines(BURST, |message| {
            message.contains("token_info: token for https://storage.azure.com")
        })
        .await;
    assert_eq!(lines.len(), BURST, "{lines:?}");
    for id in &ids {
        let tag = format!("[TokenInfo {id}]");
        let mine: Vec<&Value> = lines
            .iter()
            .filter(|line| line["message"].as_str().unwrap().contains(&tag))
            .collect();
        assert_eq!(mine.len(), 1, "{id}: {lines:?}");
        assert_eq!(mine[0]["level"], "Information", "{mine:?}");
    }
}

#[tokio::test]
async fn a_timer_run_logs_each_line_once_and_a_failed_run_is_a_failure_with_its_reason() {
    let stack = Stack::start(false);
    let (host, _keys) = start_host(&stack, &[("TOKEN_REFRESH_SCHEDULE", "0 0 0 1 1 *")]);
    assert_eq!(host.start_refresh(true).await.status(), 202);
    let run = host.wait_for("RefreshTokens", |_| true).await;
    assert_eq!(run["status"], "succeeded", "{run}");
    let id = run["invocation_id"].as_str().unwrap();
    let log = host.host_log().await;
    let vault_lines: Vec<&Value> = log
        .iter()
        .filter(|e| {
            e["message"]
                .as_str()
                .unwrap_or_default()
                .contains("token for https://vault.azure.net: valid for")
        })
        .collect();
    assert_eq!(
        vault_lines.len(),
        1,
        "once, not also on stdout: {vault_lines:?}"
    );
    assert_eq!(vault_lines[0]["level"], "Information");
    assert_eq!(vault_lines[0]["category"], "Function.RefreshTokens.User");
    assert_eq!(vault_lines[0]["invocation_id"], id);
    drop(host);

    // No identity endpoint answers: no token can be refreshed, and the host must see a failure.
    let (host, _keys) = start_host(
        &stack,
        &[
            ("TOKEN_REFRESH_SCHEDULE", "0 0 0 1 1 *"),
            ("IDENTITY_ENDPOINT", "http://127.0.0.1:9/msi/token"),
        ],
    );
    assert_eq!(host.start_refresh(false).await.status(), 202);
    let failed = host.wait_for("RefreshTokens", |_| true).await;
    assert_eq!(failed["status"], "failed", "{failed}");
    let error = failed["error"].as_str().unwrap();
    assert!(
        error.starts_with("Response status code does not indicate success: 5")
            && error.contains("RefreshTokens failed: could not refresh the token for"),
        "the reason is in the host's exception message: {error}"
    );
    let log = host.host_log().await;
    assert!(
        log.iter().any(|e| e["level"] == "Error"
            && e["category"] == "Host.Function.Console"
            && e["message"]
                .as_str()
                .unwrap_or_default()
                .contains("could not be refreshed")),
        "the errors reach the host's log as errors: {log:?}"
    );
}

#[tokio::test]
#[ignore = "needs Azurite from npm: run scripts/test"]
async fn any_body_round_trips_byte_for_byte_when_forwarded() {
    let run = put_awkward_png_each(true, 201).await;
    let (host, png) = (&run.host, &run.png);
    for (name, content_type, written) in run.puts {
        assert_eq!(written.json_body().await["size"], png.len(), "{name}");
        let read = host.get_body(name).await;
        assert_eq!(read.status(), 200, "{name}");
        let stored_type = read.headers()["content-type"].to_str().unwrap().to_owned();
        assert_eq!(
            stored_type,
            content_type.unwrap_or("application/octet-stream")
        );
        assert_eq!(read.bytes().await.unwrap(), png, "{name}: identical bytes");
    }
}

#[tokio::test]
#[ignore = "needs Azurite from npm: run scripts/test"]
async fn in_json_mode_a_body_the_host_altered_is_refused_and_nothing_is_stored() {
    let PngPuts {
        _stack,
        _dirs,
        host,
        png,
        puts,
    } = put_awkward_png_each(false, 415).await;
    for (name, _, refused) in puts {
        let message = refused.json_body().await["error"]["message"].to_string();
        assert!(message.contains("enableForwardingHttpRequest"), "{message}");
        let read = host.get_body(name).await;
        assert_eq!(read.status(), 404, "{name}: nothing was stored");
    }
    // What JSON mode can carry still works: octet-stream travels base64 and arrives whole, but
    // a binary answer cannot go back as a string, so reading it is refused rather than mangled.
    let written = host
        .put_body("raw.bin", Some("application/octet-stream"), &png)
        .await;
    assert_eq!(written.status(), 201);
    assert_eq!(written.json_body().await["size"], png.len());
    let read = host.get_body("raw.bin").await;
    assert_eq!(read.status(), 406);
    let text = "plain text, é and all";
    let written = host
        .put_body(
            "note.txt",
            Some("text/plain; charset=utf-8"),
            text.as_bytes(),
        )
        .await;
    assert_eq!(written.status(), 201);
    let read = host.get_body("note.txt").await;
    assert_eq!(read.bytes().await.unwrap(), text.as_bytes());
    // Text the host's JSON reader would take for a date comes back refused, not re-formatted.
    let date = "2024-10-24T17:42:07Z";
    let written = host
        .put_body("date.txt", Some("text/plain"), date.as_bytes())
        .await;
    assert_eq!(written.status(), 201);
    assert_eq!(host.get_body("date.txt").await.status(), 406);
}

#[tokio::test]
async fn with_forwarding_off_the_same_functions_serve_json_mode() {
    let stack = Stack::start(false);
    let (host, _dirs) =
        start_host_in_mode(&stack, false, &[("TOKEN_REFRESH_SCHEDULE", "0 0 0 1 1 *")]);
    let token = host.get("/api/token").await;
    assert_eq!(token.status(), 200);
    assert_eq!(
        token.json_body().await["claims"]["aud"],
        "https://vault.azure.net"
    );
    let secret = host.get("/api/secrets/app-greeting").await;
    assert_eq!(secret.json_body().await["value"], "hello from the vault");
    let modes: Vec<Value> = host
        .invocations()
        .await
        .iter()
        .map(|i| i["mode"].clone())
        .collect();
    assert!(
        !modes.is_empty() && modes.iter().all(|m| m == "json"),
        "{modes:?}"
    );
}
