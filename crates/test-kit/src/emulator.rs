//! An `emulators` subcommand started for a test: wait for its ready line, keep its log lines,
//! and kill it when the test ends.
//!
//! ```no_run
//! let emulator = test_kit::emulator::spawn_emulator(&["identity", "--config", "identity.json", "--port", "0"]);
//! let url = format!("{}/msi/token", emulator.base_url);
//! let secret = emulator.ready_str("header_secret");
//! ```

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// How long an emulator may take to print its ready line.
pub const READY_TIMEOUT: Duration = Duration::from_secs(60);

/// A running emulator process; killed (and reaped) on drop.
pub struct Running {
    /// The `ready` field of the ready line, e.g. `http://127.0.0.1:41234`.
    pub base_url: String,
    /// The whole ready line, for extra fields such as `header_secret`.
    pub ready_json: serde_json::Value,
    /// The ready line exactly as printed.
    pub ready_line: String,
    /// The child process.
    pub child: Child,
    logs: Arc<Mutex<Vec<String>>>,
}

impl Running {
    /// A string field of the ready line; panics if it is missing (test helper).
    pub fn ready_str(&self, field: &str) -> String {
        self.ready_json[field]
            .as_str()
            .unwrap_or_else(|| {
                panic!(
                    "ready line has no string field `{field}`: {}",
                    self.ready_json
                )
            })
            .to_string()
    }

    /// `base_url` + `path_and_query`.
    pub fn url(&self, path_and_query: &str) -> String {
        format!("{}{path_and_query}", self.base_url)
    }

    /// Waits (up to 30 s) for the process to exit on its own and returns its status.
    pub fn wait_exit(&mut self) -> std::process::ExitStatus {
        for _ in 0..1200 {
            if let Some(status) = self.child.try_wait().expect("wait for the emulator") {
                return status;
            }
            std::thread::sleep(Duration::from_millis(25));
        }
        panic!("the emulator did not exit within 30 s");
    }

    /// The stdout lines printed after the ready line so far.
    pub fn logs(&self) -> Vec<String> {
        self.logs.lock().unwrap().clone()
    }

    /// Waits (up to 30 s) until some log line contains `needle`; returns all lines then.
    pub fn wait_for_log(&self, needle: &str) -> Vec<String> {
        for _ in 0..300 {
            let logs = self.logs();
            if logs.iter().any(|line| line.contains(needle)) {
                return logs;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("no log line containing `{needle}`; logs: {:?}", self.logs());
    }

    /// Sends SIGTERM and waits for the exit status.
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -TERM failed");
        self.child.wait().expect("wait for the emulator")
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The `emulators` binary the workspace build put beside the test executable
/// (`<target>/<profile>/emulators`): Cargo builds a package's binaries for its integration tests,
/// and `cargo build --workspace` (scripts/test) builds it for the handler's.
pub fn emulators_binary() -> PathBuf {
    let exe = std::env::current_exe().expect("the test executable's path");
    let profile_dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("the test executable sits in <target>/<profile>/deps");
    let binary = profile_dir.join("emulators");
    assert!(
        binary.exists(),
        "{} is missing: build the workspace first (`cargo build --workspace`; scripts/test does)",
        binary.display()
    );
    binary
}

/// Starts `emulators <args>`, waits for its ready line and returns it.
///
/// Panics with the child's stderr if the line does not arrive within [`READY_TIMEOUT`] or is not
/// a JSON object with a string `ready` field.
pub fn spawn_emulator(args: &[&str]) -> Running {
    spawn_emulator_with_env(args, &[])
}

/// Like [`spawn_emulator`], with extra environment variables (the host emulator passes its
/// environment on to the handler, as the real host does).
pub fn spawn_emulator_with_env(args: &[&str], env: &[(&str, &str)]) -> Running {
    let mut child = Command::new(emulators_binary())
        .args(args)
        .envs(env.iter().copied())
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn the emulators binary");
    let stdout = child.stdout.take().expect("piped stdout");
    let logs = Arc::new(Mutex::new(Vec::new()));
    let (ready_tx, ready_rx) = mpsc::channel();
    let log_sink = logs.clone();
    std::thread::spawn(move || drain_stdout(stdout, ready_tx, log_sink));
    let line = match ready_rx.recv_timeout(READY_TIMEOUT) {
        Ok(line) => line,
        Err(_) => fail_start(&mut child, args),
    };
    let ready_json: serde_json::Value = serde_json::from_str(&line)
        .unwrap_or_else(|e| panic!("ready line is not JSON ({e}): {line}"));
    let base_url = ready_json["ready"]
        .as_str()
        .unwrap_or_else(|| panic!("ready line has no `ready` field: {line}"))
        .to_string();
    Running {
        base_url,
        ready_json,
        ready_line: line,
        child,
        logs,
    }
}

/// Sends the first line on `ready`, then keeps reading so the child never blocks on a full pipe.
fn drain_stdout(
    stdout: std::process::ChildStdout,
    ready: mpsc::Sender<String>,
    logs: Arc<Mutex<Vec<String>>>,
) {
    let mut lines = BufReader::new(stdout).lines();
    if let Some(Ok(first)) = lines.next() {
        let _ = ready.send(first);
    }
    for line in lines.map_while(Result::ok) {
        logs.lock().unwrap().push(line);
    }
}

fn fail_start(child: &mut Child, args: &[&str]) -> ! {
    let _ = child.kill();
    let _ = child.wait();
    let mut stderr = String::new();
    if let Some(mut pipe) = child.stderr.take() {
        let _ = std::io::Read::read_to_string(&mut pipe, &mut stderr);
    }
    panic!("emulators {args:?} printed no ready line; stderr:\n{stderr}");
}

/// Writes `value` as JSON to a temporary file that lives as long as the returned handle.
pub fn temp_json(value: &serde_json::Value) -> tempfile::NamedTempFile {
    let file = tempfile::NamedTempFile::new().expect("create temp file");
    std::fs::write(file.path(), value.to_string()).expect("write temp file");
    file
}
