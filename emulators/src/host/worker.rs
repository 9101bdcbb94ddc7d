//! The custom-handler process: how it is started, how its output is relayed, how readiness is
//! awaited, and how its death is noticed (docs/host-contract.md, 'Starting the worker process',
//! 'Logs, stdout and stderr', 'Readiness: `GET /`' and 'Restarts').
//!
//! A handler that dies is restarted as the real host restarts its HTTP worker
//! (`HttpFunctionInvocationDispatcher` and `WorkerProcess` in Azure/azure-functions-host): see
//! [`RestartPolicy`]. A handler that never gets ready ends the emulator with a non-zero exit.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::{mpsc, oneshot};

use super::app::HandlerDescription;
use super::settings::expand_or_delete;

/// How often the readiness probe polls `GET /` (the host's constant).
const READY_POLL: Duration = Duration::from_millis(25);
/// Grace period between SIGTERM and SIGKILL at shutdown.
const STOP_GRACE: Duration = Duration::from_secs(5);

/// Errors the host tolerates before it stops instead of restarting the worker.
pub const RESTART_ERROR_THRESHOLD: usize = 3;
/// An error this long after the previous one starts the count again (the host's 30 minutes).
pub const RESTART_ERROR_WINDOW: Duration = Duration::from_secs(30 * 60);
/// The exit code a worker uses to ask for a restart that is not an error.
pub const INTENTIONAL_RESTART_EXIT_CODE: i32 = 200;

/// How a handler process ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Exit {
    /// As the OS describes it (`exit status: 3`, `signal: 9 (SIGKILL)`).
    pub text: String,
    /// The exit code, when it exited rather than being killed by a signal.
    pub code: Option<i32>,
}

/// What the host does after the handler process ends on its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AfterExit {
    /// Start a new handler process on the same port.
    Restart,
    /// Exit code 0: the host closes the process and starts no other.
    NoRestart,
    /// Too many errors: the host shuts down.
    StopHost,
}

/// The host's restart rule for the HTTP worker: any exit other than 0 and the intentional-restart
/// code is an error; an error more than [`RESTART_ERROR_WINDOW`] after the previous one clears the
/// count; the worker is restarted while fewer than [`RESTART_ERROR_THRESHOLD`] errors are counted
/// (so twice in a row), and the third error stops the host. An intentional restart (exit 200) is
/// never counted.
#[derive(Debug, Default)]
pub struct RestartPolicy {
    errors: Vec<Instant>,
}

impl RestartPolicy {
    /// Decides what follows `exit`, seen at `at`.
    pub fn after_exit(&mut self, exit: &Exit, at: Instant) -> AfterExit {
        match exit.code {
            Some(0) => AfterExit::NoRestart,
            Some(INTENTIONAL_RESTART_EXIT_CODE) => AfterExit::Restart,
            _ => {
                if self
                    .errors
                    .last()
                    .is_some_and(|last| at.saturating_duration_since(*last) > RESTART_ERROR_WINDOW)
                {
                    self.errors.clear();
                }
                self.errors.push(at);
                if self.errors.len() < RESTART_ERROR_THRESHOLD {
                    AfterExit::Restart
                } else {
                    AfterExit::StopHost
                }
            }
        }
    }

    /// Errors counted now.
    pub fn errors(&self) -> usize {
        self.errors.len()
    }
}

/// Which stream a handler output line came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    /// stdout: logged at Information.
    Stdout,
    /// stderr: logged as Error, or Warning when the line contains "warn".
    Stderr,
}

/// One line the handler wrote.
#[derive(Debug, Clone)]
pub struct OutputLine {
    /// Source stream.
    pub stream: Stream,
    /// The line, lossily decoded, without its newline.
    pub text: String,
}

/// What to start and how.
#[derive(Debug, Clone)]
pub struct LaunchPlan {
    /// Program (absolute path, or a bare name looked up on PATH).
    pub program: PathBuf,
    /// Arguments after expansion and the host's space-splitting.
    pub args: Vec<String>,
    /// Working directory.
    pub working_dir: PathBuf,
    /// Variables added to the inherited environment: app settings from local.settings.json
    /// (if any), then the five per-process variables
    /// (docs/host-contract.md, 'The worker's environment').
    pub env: Vec<(String, String)>,
    /// The port the handler must listen on.
    pub port: u16,
}

/// Works out the launch plan from host.json's description and the CLI override.
pub fn plan_launch(
    app_root: &Path,
    description: &HandlerDescription,
    handler_override: Option<&Path>,
    port: u16,
    app_settings: &[(String, String)],
) -> Result<LaunchPlan, String> {
    let worker_id = uuid::Uuid::new_v4().to_string();
    let host_variables = vec![
        ("FUNCTIONS_CUSTOMHANDLER_PORT".to_string(), port.to_string()),
        ("FUNCTIONS_HTTPWORKER_PORT".to_string(), port.to_string()),
        (
            "FUNCTIONS_CUSTOMHANDLER_WORKER_ID".to_string(),
            worker_id.clone(),
        ),
        ("FUNCTIONS_HTTPWORKER_ID".to_string(), worker_id),
        (
            "FUNCTIONS_APP_ROOT_PATH".to_string(),
            app_root.display().to_string(),
        ),
    ];
    let mut env: Vec<(String, String)> = app_settings
        .iter()
        .filter(|(k, _)| {
            !host_variables
                .iter()
                .any(|(h, _)| h.eq_ignore_ascii_case(k))
        })
        .cloned()
        .collect();
    env.extend(host_variables);
    let lookup = |name: &str| {
        env.iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.clone())
            .or_else(|| std::env::var(name).ok())
    };
    let program = match handler_override {
        Some(path) => std::path::absolute(path).map_err(|e| e.to_string())?,
        None => resolve_default_executable(app_root, description, &lookup)?,
    };
    let joined = description
        .arguments
        .iter()
        .map(|a| expand_or_delete(a, &lookup))
        .collect::<Vec<_>>()
        .join(" ");
    let args = joined.split_whitespace().map(str::to_string).collect();
    let working_dir = description
        .working_directory
        .as_deref()
        .map_or_else(|| app_root.to_path_buf(), |dir| app_root.join(dir));
    Ok(LaunchPlan {
        program,
        args,
        working_dir,
        env,
        port,
    })
}

/// `defaultExecutablePath`: `%VAR%`-expanded, joined to the worker directory (default: app
/// root) when that file exists, otherwise left for a PATH lookup.
fn resolve_default_executable(
    app_root: &Path,
    description: &HandlerDescription,
    lookup: &dyn Fn(&str) -> Option<String>,
) -> Result<PathBuf, String> {
    let expanded = expand_or_delete(&description.default_executable_path, lookup);
    if expanded.trim().is_empty() {
        return Err("WorkerDescription DefaultExecutablePath cannot be empty".to_string());
    }
    let base = description
        .worker_directory
        .as_deref()
        .map_or_else(|| app_root.to_path_buf(), |dir| app_root.join(dir));
    let candidate = base.join(&expanded);
    Ok(if candidate.is_file() {
        candidate
    } else {
        PathBuf::from(expanded)
    })
}

/// Picks a free loopback port the way the host does: bind port 0, read it, release it.
pub fn pick_free_port() -> std::io::Result<u16> {
    let listener = std::net::TcpListener::bind(("127.0.0.1", 0))?;
    Ok(listener.local_addr()?.port())
}

/// A running handler process.
pub struct Worker {
    /// The port the handler listens on.
    pub port: u16,
    /// Resolves with how the process ended when it dies on its own.
    pub died: oneshot::Receiver<Exit>,
    /// The process id (for logs, and the soak's SIGKILL).
    pub pid: Option<u32>,
    stop: Option<oneshot::Sender<()>>,
    watcher: tokio::task::JoinHandle<()>,
}

impl Worker {
    /// Starts the handler; its output lines go to `output`.
    pub fn start(
        plan: &LaunchPlan,
        output: mpsc::UnboundedSender<OutputLine>,
    ) -> Result<Self, String> {
        let mut command = Command::new(&plan.program);
        command
            .args(&plan.args)
            .current_dir(&plan.working_dir)
            .envs(plan.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        ask_for_sigterm_when_parent_dies(&mut command);
        let mut child = command.spawn().map_err(|e| {
            format!(
                "cannot start handler {} (working directory {}): {e}",
                plan.program.display(),
                plan.working_dir.display()
            )
        })?;
        let pid = child.id();
        if let Some(stdout) = child.stdout.take() {
            tokio::spawn(pump_lines(stdout, Stream::Stdout, output.clone()));
        }
        if let Some(stderr) = child.stderr.take() {
            tokio::spawn(pump_lines(stderr, Stream::Stderr, output));
        }
        let (died_tx, died) = oneshot::channel();
        let (stop_tx, stop_rx) = oneshot::channel();
        let watcher = tokio::spawn(watch_child(child, died_tx, stop_rx));
        Ok(Self {
            port: plan.port,
            died,
            pid,
            stop: Some(stop_tx),
            watcher,
        })
    }

    /// Polls `GET /` every 25 ms until any HTTP answer arrives
    /// (docs/host-contract.md, 'Readiness: `GET /`'). Fails when the process dies first or
    /// `timeout` passes.
    pub async fn wait_ready(&mut self, timeout: Duration) -> Result<(), String> {
        let client = reqwest::Client::builder()
            .no_proxy()
            .timeout(Duration::from_secs(5))
            .build()
            .map_err(|e| format!("cannot build HTTP client: {e}"))?;
        let url = format!("http://127.0.0.1:{}/", self.port);
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            tokio::select! {
                biased;
                exit = &mut self.died => {
                    let exit = exit.map_or_else(|_| "unknown exit".to_string(), |exit| exit.text);
                    return Err(format!("handler process exited before it was ready ({exit})"));
                }
                probe = client.get(&url).send() => match probe {
                    Ok(_) => return Ok(()),
                    Err(e) if e.is_connect() => {}
                    // The host takes any failure other than a refused connection as "ready".
                    Err(_) => return Ok(()),
                },
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(format!(
                    "Initializing HttpWorker timed out: no answer on GET {url} within {} s",
                    timeout.as_secs()
                ));
            }
            tokio::time::sleep(READY_POLL).await;
        }
    }

    /// Stops the handler: SIGTERM, then SIGKILL after a grace period.
    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let _ = self.watcher.await;
    }
}

/// Linux: the handler gets SIGTERM if the emulator dies without cleaning up (e.g. SIGKILL), so
/// no orphan keeps its port. The signal follows the thread that spawned the child; the
/// emulator spawns it from the thread running `block_on`, which lives as long as the process.
fn ask_for_sigterm_when_parent_dies(command: &mut Command) {
    #[cfg(target_os = "linux")]
    {
        // SAFETY: the closure runs between fork and exec and only calls prctl(2), which is
        // async-signal-safe and touches no memory of the parent.
        unsafe {
            command.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM);
                Ok(())
            });
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = command;
}

/// Owns the child: reports an unexpected exit, or terminates it when asked.
async fn watch_child(mut child: Child, died: oneshot::Sender<Exit>, stop: oneshot::Receiver<()>) {
    tokio::select! {
        status = child.wait() => {
            let exit = match status {
                Ok(status) => Exit { text: status.to_string(), code: status.code() },
                Err(e) => Exit { text: format!("wait failed: {e}"), code: None },
            };
            let _ = died.send(exit);
        }
        _ = stop => terminate(&mut child).await,
    }
}

/// SIGTERM, wait up to the grace period, then kill.
async fn terminate(child: &mut Child) {
    if let Some(pid) = child.id().and_then(|pid| i32::try_from(pid).ok()) {
        // SAFETY: kill(2) with a pid we spawned and still own (not yet reaped) has no memory
        // effects; a failure only means the process is already gone.
        unsafe {
            libc::kill(pid, libc::SIGTERM);
        }
    }
    if tokio::time::timeout(STOP_GRACE, child.wait())
        .await
        .is_err()
    {
        log::warn!(
            "handler did not exit within {} s of SIGTERM; killing it",
            STOP_GRACE.as_secs()
        );
        let _ = child.kill().await;
    }
}

/// Reads lines (lossily decoded) and forwards them until the stream closes.
async fn pump_lines(
    stream: impl AsyncRead + Unpin,
    kind: Stream,
    output: mpsc::UnboundedSender<OutputLine>,
) {
    let mut reader = BufReader::new(stream);
    let mut buffer = Vec::new();
    loop {
        buffer.clear();
        match reader.read_until(b'\n', &mut buffer).await {
            Ok(0) | Err(_) => break,
            Ok(_) => {
                let text = String::from_utf8_lossy(&buffer)
                    .trim_end_matches(['\n', '\r'])
                    .to_string();
                if output.send(OutputLine { stream: kind, text }).is_err() {
                    break;
                }
            }
        }
    }
}

/// Logs one handler line with the host's level rule: stdout Information, stderr Error unless
/// it mentions "warn".
pub fn log_output_line(line: &OutputLine) {
    match line.stream {
        Stream::Stdout => log::info!(target: "handler", "[handler] {}", line.text),
        Stream::Stderr if line.text.to_ascii_lowercase().contains("warn") => {
            log::warn!(target: "handler", "[handler stderr] {}", line.text)
        }
        Stream::Stderr => log::error!(target: "handler", "[handler stderr] {}", line.text),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn exit(code: Option<i32>) -> Exit {
        Exit {
            text: format!("{code:?}"),
            code,
        }
    }

    #[test]
    fn restart_policy_is_the_hosts() {
        let start = Instant::now();
        let mut policy = RestartPolicy::default();
        // Killed by a signal (no code) and a crash: restarted twice, the third error stops.
        assert_eq!(policy.after_exit(&exit(None), start), AfterExit::Restart);
        assert_eq!(
            policy.after_exit(&exit(Some(101)), start),
            AfterExit::Restart
        );
        // An intentional restart is not an error.
        assert_eq!(
            policy.after_exit(&exit(Some(INTENTIONAL_RESTART_EXIT_CODE)), start),
            AfterExit::Restart
        );
        assert_eq!(policy.errors(), 2);
        assert_eq!(
            policy.after_exit(&exit(Some(3)), start),
            AfterExit::StopHost
        );

        // An error more than the window after the previous one starts a new count.
        let mut policy = RestartPolicy::default();
        assert_eq!(policy.after_exit(&exit(None), start), AfterExit::Restart);
        assert_eq!(policy.after_exit(&exit(None), start), AfterExit::Restart);
        let later = start + RESTART_ERROR_WINDOW + Duration::from_secs(1);
        assert_eq!(policy.after_exit(&exit(None), later), AfterExit::Restart);
        assert_eq!(policy.errors(), 1);

        // A clean exit is never restarted.
        assert_eq!(
            RestartPolicy::default().after_exit(&exit(Some(0)), start),
            AfterExit::NoRestart
        );
    }

    #[test]
    fn plan_expands_arguments_and_paths() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("handler"), b"").unwrap();
        let description = HandlerDescription {
            default_executable_path: "handler".into(),
            arguments: vec![
                "--port %FUNCTIONS_CUSTOMHANDLER_PORT%".into(),
                "%SURELY_UNSET_VARIABLE_X%".into(),
            ],
            working_directory: Some("sub".into()),
            ..Default::default()
        };
        let plan = plan_launch(
            dir.path(),
            &description,
            None,
            4321,
            &[("MY_SETTING".into(), "v".into())],
        )
        .unwrap();
        assert_eq!(plan.program, dir.path().join("handler"));
        assert_eq!(plan.args, vec!["--port", "4321"]);
        assert_eq!(plan.working_dir, dir.path().join("sub"));
        assert!(
            plan.env
                .iter()
                .any(|(k, v)| k == "FUNCTIONS_HTTPWORKER_PORT" && v == "4321")
        );
    }

    #[test]
    fn missing_executable_is_left_for_path_lookup() {
        let dir = tempfile::tempdir().unwrap();
        let description = HandlerDescription {
            default_executable_path: "node".into(),
            ..Default::default()
        };
        let plan = plan_launch(dir.path(), &description, None, 1, &[]).unwrap();
        assert_eq!(plan.program, PathBuf::from("node"));
        let empty = HandlerDescription::default();
        assert!(plan_launch(dir.path(), &empty, None, 1, &[]).is_err());
    }
}
