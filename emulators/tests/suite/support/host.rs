//! Helpers for the `emulators host` integration tests: a temporary app root, the fake handler's
//! path, and a running emulator whose ready line, output and exit can be inspected.

use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, BufReader};
use tokio::process::{Child, Command};

/// Generous limit for anything a test waits on (not an assertion on timing).
pub const WAIT: Duration = Duration::from_secs(60);

/// Writes host.json and `<name>/function.json` files into a fresh temporary directory.
pub fn app_root(host_json: &Value, functions: &[(&str, Value)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("host.json"), host_json.to_string()).unwrap();
    for (name, function_json) in functions {
        let folder = dir.path().join(name);
        std::fs::create_dir_all(&folder).unwrap();
        std::fs::write(folder.join("function.json"), function_json.to_string()).unwrap();
    }
    dir
}

/// An app root with one anonymous HTTP function, `EchoAnon`, and forwarding off: what most
/// tests need from the fake handler.
pub fn echo_app() -> tempfile::TempDir {
    app_root(
        &host_json(false),
        &[("EchoAnon", http_function("anonymous", None, None))],
    )
}

/// A host.json for a custom handler, with forwarding on or off.
pub fn host_json(forwarding: bool) -> Value {
    serde_json::json!({
        "version": "2.0",
        "customHandler": {
            "description": {"defaultExecutablePath": "handler", "workingDirectory": "", "arguments": []},
            "enableForwardingHttpRequest": forwarding
        }
    })
}

/// An httpTrigger + http out function.json.
pub fn http_function(auth_level: &str, route: Option<&str>, methods: Option<&[&str]>) -> Value {
    let mut trigger = serde_json::json!({"type": "httpTrigger", "direction": "in", "name": "req", "authLevel": auth_level});
    if let Some(route) = route {
        trigger["route"] = Value::String(route.to_string());
    }
    if let Some(methods) = methods {
        trigger["methods"] = serde_json::json!(methods);
    }
    serde_json::json!({"bindings": [trigger, {"type": "http", "direction": "out", "name": "res"}]})
}

/// A timerTrigger function.json.
pub fn timer_function(schedule: &str, run_on_startup: bool, use_monitor: Option<bool>) -> Value {
    let mut trigger = serde_json::json!({"type": "timerTrigger", "direction": "in", "name": "myTimer",
        "schedule": schedule, "runOnStartup": run_on_startup});
    if let Some(use_monitor) = use_monitor {
        trigger["useMonitor"] = Value::Bool(use_monitor);
    }
    serde_json::json!({"bindings": [trigger]})
}

/// The emulator binary built by cargo for this test run.
pub fn emulator_binary() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_emulators"))
}

/// The `fake_handler` example: next to the emulator binary (`…/debug/examples/`), or next to
/// the test executable's `deps` folder.
pub fn fake_handler() -> PathBuf {
    let beside_binary = emulator_binary()
        .parent()
        .map(|dir| dir.join("examples").join("fake_handler"));
    let beside_test = std::env::current_exe().ok().and_then(|exe| {
        exe.parent()
            .and_then(Path::parent)
            .map(|dir| dir.join("examples").join("fake_handler"))
    });
    [beside_binary, beside_test]
        .into_iter()
        .flatten()
        .find(|p| p.is_file())
        .expect("fake_handler example not built (cargo test builds examples)")
}

/// A running `emulators host`.
pub struct Emulator {
    child: Child,
    /// The parsed ready line.
    pub ready: Value,
    /// `http://127.0.0.1:PORT`.
    pub base: String,
    /// Every stdout line after the ready line.
    pub stdout: Arc<Mutex<Vec<String>>>,
    stderr: Arc<Mutex<String>>,
    /// HTTP client without proxy.
    pub client: reqwest::Client,
}

/// A start that never produced a ready line.
#[derive(Debug)]
pub struct StartFailure {
    /// Exit status of the emulator.
    pub status: Option<ExitStatus>,
    /// Everything it wrote to stderr.
    pub stderr: String,
}

fn command(
    app_root: &Path,
    handler: Option<&Path>,
    extra_args: &[&str],
    env: &[(&str, &str)],
) -> Command {
    let mut command = Command::new(emulator_binary());
    command.arg("host").arg("--app-root").arg(app_root);
    if let Some(handler) = handler {
        command.arg("--handler").arg(handler);
    }
    command
        .args(["--port", "0"])
        .args(extra_args)
        .env("RUST_LOG", "info")
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    command
}

impl Emulator {
    /// Starts the emulator with the fake handler and waits for its ready line (panics if none).
    pub async fn start(app_root: &Path, extra_args: &[&str], env: &[(&str, &str)]) -> Emulator {
        match Self::try_start(app_root, &fake_handler(), extra_args, env).await {
            Ok(emulator) => emulator,
            Err(failure) => panic!("emulator did not get ready: {failure:?}"),
        }
    }

    /// Starts the emulator with the given handler; `Err` when it exits before its ready line.
    pub async fn try_start(
        app_root: &Path,
        handler: &Path,
        extra_args: &[&str],
        env: &[(&str, &str)],
    ) -> Result<Emulator, StartFailure> {
        Self::try_start_with(app_root, Some(handler), extra_args, env).await
    }

    /// Starts the emulator expecting a refusal: it must exit unsuccessfully before its ready
    /// line, saying `reason` on stderr.
    pub async fn assert_refuses_to_start(app_root: &Path, handler: &Path, reason: &str) {
        let failure = Self::try_start(app_root, handler, &[], &[])
            .await
            .err()
            .expect("the emulator must not get ready");
        assert!(!failure.status.expect("exited").success());
        assert!(failure.stderr.contains(reason), "{}", failure.stderr);
    }

    /// Like `try_start`; `None` lets host.json's `defaultExecutablePath` choose the handler.
    pub async fn try_start_with(
        app_root: &Path,
        handler: Option<&Path>,
        extra_args: &[&str],
        env: &[(&str, &str)],
    ) -> Result<Emulator, StartFailure> {
        let mut child = command(app_root, handler, extra_args, env)
            .spawn()
            .expect("spawn emulator");
        let stderr = Arc::new(Mutex::new(String::new()));
        let mut stderr_pipe = child.stderr.take().expect("stderr");
        let stderr_sink = Arc::clone(&stderr);
        tokio::spawn(async move {
            let mut buffer = String::new();
            let _ = stderr_pipe.read_to_string(&mut buffer).await;
            stderr_sink.lock().unwrap().push_str(&buffer);
        });
        let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
        let first = tokio::time::timeout(WAIT, lines.next_line())
            .await
            .expect("ready line in time");
        let Ok(Some(first)) = first else {
            let status = tokio::time::timeout(WAIT, child.wait())
                .await
                .ok()
                .and_then(Result::ok);
            tokio::time::sleep(Duration::from_millis(200)).await;
            let stderr = stderr.lock().unwrap().clone();
            return Err(StartFailure { status, stderr });
        };
        assert!(
            first.starts_with("{\"ready\":"),
            "ready line must start with ready: {first}"
        );
        let ready: Value = serde_json::from_str(&first).unwrap_or_else(|e| {
            panic!("first stdout line is not the JSON ready line ({e}): {first}")
        });
        let base = ready["ready"].as_str().expect("ready url").to_string();
        let stdout = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&stdout);
        tokio::spawn(async move {
            while let Ok(Some(line)) = lines.next_line().await {
                sink.lock().unwrap().push(line);
            }
        });
        let client = reqwest::Client::builder()
            .no_proxy()
            .timeout(WAIT)
            .build()
            .unwrap();
        Ok(Emulator {
            child,
            ready,
            base,
            stdout,
            stderr,
            client,
        })
    }

    /// The ready line's function key.
    pub fn function_key(&self) -> String {
        self.ready["function_key"].as_str().unwrap().to_string()
    }

    /// The ready line's master key.
    pub fn master_key(&self) -> String {
        self.ready["master_key"].as_str().unwrap().to_string()
    }

    /// `base` + path.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// `GET` of `path` on the emulator.
    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.client.get(self.url(path)).send().await.unwrap()
    }

    /// `method` on `path`, with headers and body set by `build`; a transport error fails the test.
    pub async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        build: impl FnOnce(reqwest::RequestBuilder) -> reqwest::RequestBuilder,
    ) -> reqwest::Response {
        build(self.client.request(method, self.url(path)))
            .send()
            .await
            .unwrap()
    }

    /// `GET /_emulator/invocations`.
    pub async fn invocations(&self) -> Vec<Value> {
        let response = self.get("/_emulator/invocations").await;
        assert_eq!(response.status(), 200);
        serde_json::from_slice(&response.bytes().await.unwrap()).unwrap()
    }

    /// Polls the invocation list until `count` entries satisfy `predicate`.
    pub async fn wait_for_invocations(
        &self,
        count: usize,
        predicate: impl Fn(&Value) -> bool,
    ) -> Vec<Value> {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let matching: Vec<Value> = self
                .invocations()
                .await
                .into_iter()
                .filter(|i| predicate(i))
                .collect();
            if matching.len() >= count {
                return matching;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "only {} matching invocations: {matching:?}",
                matching.len()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Polls stdout until a line contains `needle`.
    pub async fn wait_for_stdout(&self, needle: &str) -> String {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            if let Some(line) = self
                .stdout
                .lock()
                .unwrap()
                .iter()
                .find(|l| l.contains(needle))
            {
                return line.clone();
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "no stdout line contains {needle:?}: {:?}",
                self.stdout.lock().unwrap()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Waits for the stdout line holding `needle` and checks it holds every one of `parts` too.
    pub async fn assert_stdout(&self, needle: &str, parts: &[&str]) -> String {
        let line = self.wait_for_stdout(needle).await;
        for part in parts {
            assert!(line.contains(part), "{part:?} missing from {line}");
        }
        line
    }

    /// Whether any stdout line so far satisfies `matches` (used to prove a key or secret was never logged).
    pub fn logged_any(&self, matches: impl Fn(&str) -> bool) -> bool {
        self.stdout.lock().unwrap().iter().any(|l| matches(l))
    }

    /// Sends a signal to the emulator.
    pub fn signal(&self, signal: i32) {
        let pid = self.child.id().expect("running") as i32;
        // SAFETY: kill(2) on our own child process.
        unsafe {
            libc::kill(pid, signal);
        }
    }

    /// Waits for the emulator to exit; returns its status and stderr.
    pub async fn wait_exit(&mut self) -> (ExitStatus, String) {
        let status = tokio::time::timeout(WAIT, self.child.wait())
            .await
            .expect("emulator exited in time")
            .expect("wait");
        tokio::time::sleep(Duration::from_millis(200)).await;
        (status, self.stderr.lock().unwrap().clone())
    }
}

impl Drop for Emulator {
    fn drop(&mut self) {
        // Let the emulator stop its handler; kill_on_drop covers an emulator that hangs.
        if let Some(pid) = self.child.id() {
            // SAFETY: kill(2) on our own child process.
            unsafe {
                libc::kill(pid as i32, libc::SIGTERM);
            }
        }
    }
}

/// The port the fake handler was given, from the environment it echoes.
pub fn handler_port(echoed: &Value) -> u16 {
    echoed["env"]["FUNCTIONS_CUSTOMHANDLER_PORT"]
        .as_str()
        .expect("the echoed environment names the handler's port")
        .parse()
        .expect("a port number")
}

/// Reads a response body as JSON (panics with the text when it is not JSON).
pub async fn json_body(response: reqwest::Response) -> Value {
    let bytes = response.bytes().await.expect("body");
    serde_json::from_slice(&bytes)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&bytes)))
}
