//! `emulators host`: a stand-in for the Azure Functions host running a custom handler.
//!
//! Written to the host's contract as docs/host-contract.md describes it from the host's source
//! (never from the handler crate), so the two sides cannot share a misunderstanding. It indexes
//! the app, starts the handler with the host's environment, waits for it like the host, serves
//! `/{routePrefix}/{route}` with Azure's key enforcement, speaks JSON mode or forwarding to the
//! handler, fires timers, and restarts a handler that dies as the real host does
//! ([`worker::RestartPolicy`]): invocations that arrive meanwhile wait for the new one.
//!
//! CLI: `emulators host --app-root DIR [--handler PATH] [--port 7071] [--keys-file FILE]
//! [--no-timers] [--local-settings FILE]`.
//!
//! - Ready line (first stdout line): `{"ready":"http://127.0.0.1:PORT","function_key":"…",
//!   "master_key":"…","functions":[{"name","trigger","route","methods","auth_level",…}],
//!   "not_indexed":[{"name","reason"}]}`.
//! - Keys file (default `<app-root>/.local/host-keys.json`, created 0600 when missing):
//!   `{"functionKeys":{"default":"…"},"masterKey":"…"}`.
//! - `POST /admin/functions/{name}` (master key in `x-functions-key`), body `{"input":"…"}` →
//!   202 and the function runs in the background.
//! - `GET /_emulator/invocations` → recent invocations `[{function, invocation_id, trigger,
//!   mode, status, http_status, error, logs, reason, started_at, duration_ms}]`;
//!   `DELETE` clears them.
//! - `GET /_emulator/logs` → the host's log as the real host records it `[{level, category,
//!   invocation_id, message}]` (docs/host-contract.md); `DELETE` clears it.

pub mod app;
pub mod invoke;
pub mod journal;
pub mod json_mode;
pub mod keys;
pub mod route;
pub mod scheduler;
pub mod server;
pub mod settings;
pub mod throttle;
pub mod timer;
pub mod worker;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};
use tokio::sync::{mpsc, watch};

use app::{App, Trigger};
use invoke::HostState;
use keys::HostKeys;
use worker::{OutputLine, Worker};

/// Parsed command line of `emulators host`.
#[derive(Debug, Clone, PartialEq)]
pub struct HostArgs {
    /// The function app root (holds host.json).
    pub app_root: PathBuf,
    /// Handler executable overriding `defaultExecutablePath`.
    pub handler: Option<PathBuf>,
    /// Listener port on 127.0.0.1 (0 = ephemeral).
    pub port: u16,
    /// Keys file; default `<app-root>/.local/host-keys.json`.
    pub keys_file: Option<PathBuf>,
    /// Do not fire timers on their schedules (admin invoke still works).
    pub no_timers: bool,
    /// A local.settings.json whose `Values` become app settings (environment wins), like
    /// `func start` does. Off unless given.
    pub local_settings: Option<PathBuf>,
}

/// Usage text for errors.
pub const USAGE: &str = "usage: emulators host --app-root DIR [--handler PATH] [--port 7071] [--keys-file FILE] [--no-timers] [--local-settings FILE]";

impl HostArgs {
    /// Parses the arguments after `host` (`--flag value` or `--flag=value`).
    pub fn parse(args: &[String]) -> Result<Self, String> {
        let mut app_root = None;
        let mut handler = None;
        let mut port = 7071u16;
        let mut keys_file = None;
        let mut no_timers = false;
        let mut local_settings = None;
        let mut iter = args.iter();
        while let Some(arg) = iter.next() {
            let (flag, inline) = match arg.split_once('=') {
                Some((flag, value)) if flag.starts_with("--") => (flag, Some(value.to_string())),
                _ => (arg.as_str(), None),
            };
            let mut value = || {
                inline
                    .clone()
                    .or_else(|| iter.next().cloned())
                    .ok_or_else(|| format!("{flag} needs a value"))
            };
            match flag {
                "--app-root" => app_root = Some(PathBuf::from(value()?)),
                "--handler" => handler = Some(PathBuf::from(value()?)),
                "--port" => {
                    let text = value()?;
                    port = text
                        .parse()
                        .map_err(|_| format!("--port: '{text}' is not a port"))?;
                }
                "--keys-file" => keys_file = Some(PathBuf::from(value()?)),
                "--no-timers" => no_timers = true,
                "--local-settings" => local_settings = Some(PathBuf::from(value()?)),
                other => return Err(format!("unknown argument '{other}'")),
            }
        }
        Ok(Self {
            app_root: app_root.ok_or("--app-root is required")?,
            handler,
            port,
            keys_file,
            no_timers,
            local_settings,
        })
    }
}

/// Entry point for `emulators host ARGS...`: returns the process exit code.
pub fn run_cli(args: &[String]) -> ExitCode {
    let args = match HostArgs::parse(args) {
        Ok(args) => args,
        Err(message) => {
            eprintln!("emulators host: {message}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let _ = env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info"))
        .target(env_logger::Target::Stdout)
        .try_init();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("emulators host: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let outcome = runtime.block_on(run(args));
    // Do not wait on stray blocking work (e.g. a stuck pipe read) once the decision is made.
    runtime.shutdown_timeout(Duration::from_secs(1));
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("emulators host: {message}");
            ExitCode::FAILURE
        }
    }
}

/// Start-up, ready line, serving, and shutdown. `Err` is the fatal message.
pub async fn run(args: HostArgs) -> Result<(), String> {
    let root = std::path::absolute(&args.app_root)
        .map_err(|e| format!("--app-root {}: {e}", args.app_root.display()))?;
    let mut signals = Signals::register();
    let environment = |name: &str| std::env::var(name).ok();
    let (app_settings, setting_notes) = match &args.local_settings {
        Some(path) => settings::load_local_settings(path, &environment)?,
        None => (Vec::new(), Vec::new()),
    };
    let lookup = |name: &str| {
        environment(name).or_else(|| {
            app_settings
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.clone())
        })
    };
    let mut app = app::load_app(&root, &lookup).map_err(|e| e.to_string())?;
    app.host.notes.extend(setting_notes);
    if app.functions.is_empty() {
        return Err(format!(
            "no function could be indexed under {} ({}); the host would not start the handler",
            root.display(),
            describe_not_indexed(&app)
        ));
    }
    let keys_path = args
        .keys_file
        .clone()
        .unwrap_or_else(|| default_keys_file(&root));
    let keys = HostKeys::load_or_create(&keys_path).map_err(|e| e.to_string())?;
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", args.port))
        .await
        .map_err(|e| format!("cannot listen on 127.0.0.1:{}: {e}", args.port))?;
    let address = listener.local_addr().map_err(|e| e.to_string())?;

    let handler_port =
        worker::pick_free_port().map_err(|e| format!("cannot pick a handler port: {e}"))?;
    let plan = worker::plan_launch(
        &root,
        &app.host.handler,
        args.handler.as_deref(),
        handler_port,
        &app_settings,
    )?;
    let (output_tx, mut output_rx) = mpsc::unbounded_channel();
    let mut handler = Worker::start(&plan, output_tx.clone())?;
    let init_timeout = Duration::from_secs(app.host.handler.initialization_timeout_secs.max(1));
    if let Err(message) = wait_ready_or_signal(&mut handler, init_timeout, &mut signals).await {
        flush_handler_output_to_stderr(&mut output_rx);
        handler.stop().await;
        return Err(message);
    }

    print_ready_line(&address.to_string(), &keys, &app);
    report_index(&app);
    let host_log = Arc::new(journal::HostLog::default());
    let console_log = Arc::clone(&host_log);
    tokio::spawn(async move {
        while let Some(line) = output_rx.recv().await {
            worker::log_output_line(&line);
            console_log.console(line.stream == worker::Stream::Stderr, &line.text);
        }
    });

    let state = Arc::new(HostState::new(
        app,
        keys,
        handler_port,
        address.to_string(),
        host_log,
    )?);
    let (shutdown_tx, shutdown_rx) = watch::channel(false);
    let server = tokio::spawn(server::serve(
        listener,
        Arc::clone(&state),
        shutdown_rx.clone(),
    ));
    if args.no_timers {
        log::info!(target: "host", "--no-timers: timers fire only through POST /admin/functions/{{name}}");
    } else {
        scheduler::start_timers(&state, &shutdown_rx);
    }

    log_handler_pid(&handler);
    let mut restarts = worker::RestartPolicy::default();
    // An exit already observed while a restarted handler was awaited (its `died` is used up).
    let mut observed: Option<worker::Exit> = None;
    let outcome = loop {
        let exit = match observed.take() {
            Some(exit) => exit,
            None => match wait_for_end(&mut handler, &mut signals).await {
                End::HandlerDied(exit) => exit,
                End::Signal(name) => break End::Signal(name),
            },
        };
        // From now on invocations are held until a new handler is ready (or fail if none comes).
        state.worker_ready.send_replace(false);
        match restarts.after_exit(&exit, std::time::Instant::now()) {
            worker::AfterExit::Restart => {
                log::error!(
                    target: "host",
                    "handler process exited unexpectedly ({}); restarting it on port {handler_port} ({} of {} errors within {} minutes)",
                    exit.text,
                    restarts.errors(),
                    worker::RESTART_ERROR_THRESHOLD,
                    worker::RESTART_ERROR_WINDOW.as_secs() / 60
                );
                // The host starts a new worker (new worker id, same port) and waits for it as at
                // start-up; meanwhile invocations wait for it.
                let plan = worker::plan_launch(
                    &root,
                    &state.app.host.handler,
                    args.handler.as_deref(),
                    handler_port,
                    &app_settings,
                )?;
                // The old process is gone or, if it never got ready, is stopped first: the new
                // one needs its port.
                let old = handler;
                old.stop().await;
                handler = Worker::start(&plan, output_tx.clone())?;
                log_handler_pid(&handler);
                let ready = tokio::select! {
                    ready = handler.wait_ready(init_timeout) => ready,
                    name = signals.recv() => break End::Signal(name),
                };
                match ready {
                    Ok(()) => {
                        state.worker_ready.send_replace(true);
                    }
                    Err(message) => {
                        // As the host: a worker that fails to start is one more error.
                        log::error!(target: "host", "the restarted handler did not get ready: {message}");
                        observed = Some(worker::Exit {
                            text: message,
                            code: None,
                        });
                    }
                }
            }
            worker::AfterExit::NoRestart => {
                break End::HandlerDied(format!(
                    "{}; the real host starts no new worker after a clean exit, the emulator stops",
                    exit.text
                ));
            }
            worker::AfterExit::StopHost => {
                break End::HandlerDied(format!(
                    "{}; exceeded the http worker restart retry count ({} errors within {} minutes), shutting down as the host does",
                    exit.text,
                    worker::RESTART_ERROR_THRESHOLD,
                    worker::RESTART_ERROR_WINDOW.as_secs() / 60
                ));
            }
        }
    };
    let _ = shutdown_tx.send(true);
    let _ = server.await;
    match outcome {
        End::Signal(name) => {
            log::info!(target: "host", "{name} received: stopping the handler");
            handler.stop().await;
            Ok(())
        }
        End::HandlerDied(exit) => {
            let message = format!("handler process exited unexpectedly ({exit})");
            log::error!(target: "host", "{message}");
            Err(message)
        }
    }
}

/// Why the wait ended: `E` is a [`worker::Exit`] from the wait, a message once the restart
/// policy decided to stop.
enum End<E = String> {
    /// SIGTERM or SIGINT.
    Signal(&'static str),
    /// The handler died (with how) or, after the restart policy, why the emulator stops.
    HandlerDied(E),
}

/// SIGTERM and SIGINT listeners, registered once at start-up so that a signal arriving at any
/// moment (even between two waits) is kept until it is awaited.
struct Signals {
    term: Option<tokio::signal::unix::Signal>,
    int: Option<tokio::signal::unix::Signal>,
}

impl Signals {
    fn register() -> Self {
        use tokio::signal::unix::{SignalKind, signal};
        Self {
            term: signal(SignalKind::terminate()).ok(),
            int: signal(SignalKind::interrupt()).ok(),
        }
    }

    /// Resolves on SIGTERM or SIGINT with the signal's name.
    async fn recv(&mut self) -> &'static str {
        async fn next(signal: Option<&mut tokio::signal::unix::Signal>) {
            match signal {
                Some(signal) => {
                    if signal.recv().await.is_none() {
                        std::future::pending::<()>().await;
                    }
                }
                None => std::future::pending::<()>().await,
            }
        }
        tokio::select! {
            _ = next(self.term.as_mut()) => "SIGTERM",
            _ = next(self.int.as_mut()) => "SIGINT",
        }
    }
}

/// Waits for a signal or the handler's death.
async fn wait_for_end(handler: &mut Worker, signals: &mut Signals) -> End<worker::Exit> {
    tokio::select! {
        name = signals.recv() => End::Signal(name),
        exit = &mut handler.died => End::HandlerDied(exit.unwrap_or_else(|_| worker::Exit {
            text: "unknown exit".to_string(),
            code: None,
        })),
    }
}

/// One line with the handler's pid, so that tools (scripts/soak) can find the process.
fn log_handler_pid(handler: &Worker) {
    if let Some(pid) = handler.pid {
        log::info!(target: "host", "handler process started: pid {pid}");
    }
}

/// Readiness wait that a signal can cut short.
async fn wait_ready_or_signal(
    handler: &mut Worker,
    timeout: Duration,
    signals: &mut Signals,
) -> Result<(), String> {
    tokio::select! {
        ready = handler.wait_ready(timeout) => ready,
        name = signals.recv() => Err(format!("{name} received while waiting for the handler to be ready")),
    }
}

/// On a failed start, shows what the handler printed (it is the best clue).
fn flush_handler_output_to_stderr(output: &mut mpsc::UnboundedReceiver<OutputLine>) {
    while let Ok(line) = output.try_recv() {
        eprintln!("[handler] {}", line.text);
    }
}

/// Prints the one-line JSON ready record, first thing on stdout, and flushes it.
fn print_ready_line(address: &str, keys: &HostKeys, app: &App) {
    let line = ready_line_text(&ready_line(address, keys, app));
    let mut stdout = std::io::stdout().lock();
    let _ = writeln!(stdout, "{line}");
    let _ = stdout.flush();
}

/// The ready record: base URL, keys, indexed functions and those the host would refuse.
pub fn ready_line(address: &str, keys: &HostKeys, app: &App) -> Value {
    let functions: Vec<Value> = app
        .functions
        .iter()
        .map(|function| match &function.trigger {
            Trigger::Http(http) => json!({
                "name": function.name,
                "trigger": "http",
                "route": route_url_path(&app.host.route_prefix, &http.route_text),
                "methods": http.methods.clone().unwrap_or_default(),
                "auth_level": http.auth_level.as_str(),
                "mode": if app.host.handler.enable_forwarding && http.forwardable { "forwarding" } else { "json" },
            }),
            Trigger::Timer(timer) => json!({
                "name": function.name,
                "trigger": "timer",
                "route": Value::Null,
                "methods": [],
                "auth_level": Value::Null,
                "run_on_startup": timer.run_on_startup,
                "use_monitor": timer.use_monitor,
            }),
            Trigger::Other { kind, .. } => json!({
                "name": function.name,
                "trigger": kind,
                "route": Value::Null,
                "methods": [],
                "auth_level": Value::Null,
            }),
        })
        .collect();
    json!({
        "ready": format!("http://{address}"),
        "function_key": keys.default_function_key(),
        "master_key": keys.master_key,
        "functions": functions,
        "not_indexed": app.not_indexed,
    })
}

/// Serializes the ready record with `ready` as the first member (scripts may match the line's
/// start), the others after it in a fixed order.
pub fn ready_line_text(record: &Value) -> String {
    const ORDER: [&str; 5] = [
        "ready",
        "function_key",
        "master_key",
        "functions",
        "not_indexed",
    ];
    let members: Vec<String> = ORDER
        .iter()
        .filter_map(|key| {
            let value = record.get(*key)?;
            Some(format!("{}:{value}", Value::String((*key).to_string())))
        })
        .collect();
    format!("{{{}}}", members.join(","))
}

/// `/{prefix}/{route}` as a URL path.
fn route_url_path(prefix: &str, route: &str) -> String {
    if prefix.is_empty() {
        format!("/{route}")
    } else {
        format!("/{prefix}/{route}")
    }
}

fn describe_not_indexed(app: &App) -> String {
    if app.not_indexed.is_empty() {
        return "no function folders".to_string();
    }
    app.not_indexed
        .iter()
        .map(|n| format!("{}: {}", n.name, n.reason))
        .collect::<Vec<_>>()
        .join("; ")
}

/// Logs the indexing result after the ready line.
fn report_index(app: &App) {
    for note in &app.host.notes {
        log::warn!(target: "host", "{note}");
    }
    for function in &app.functions {
        log::info!(target: "host", "indexed function '{}' ({})", function.name, function.trigger.kind());
        for note in &function.notes {
            log::warn!(target: "host", "function '{}': {note}", function.name);
        }
    }
    for skipped in &app.not_indexed {
        log::warn!(target: "host", "function '{}' not indexed: {}", skipped.name, skipped.reason);
    }
}

/// The default keys file for an app root.
pub fn default_keys_file(app_root: &Path) -> PathBuf {
    app_root.join(".local").join("host-keys.json")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::args;

    #[test]
    fn parses_flags() {
        let parsed = HostArgs::parse(&args(&[
            "--app-root",
            "/a",
            "--handler=/h",
            "--port",
            "0",
            "--no-timers",
        ]))
        .unwrap();
        assert_eq!(parsed.app_root, PathBuf::from("/a"));
        assert_eq!(parsed.handler, Some(PathBuf::from("/h")));
        assert_eq!(parsed.port, 0);
        assert!(parsed.no_timers);
        assert_eq!(
            HostArgs::parse(&args(&["--app-root", "/a"])).unwrap().port,
            7071
        );
    }

    #[test]
    fn ready_line_starts_with_ready() {
        let record = json!({"not_indexed": [], "master_key": "m", "ready": "http://127.0.0.1:1",
            "functions": [], "function_key": "f"});
        let text = ready_line_text(&record);
        assert!(
            text.starts_with(r#"{"ready":"http://127.0.0.1:1","function_key":"f""#),
            "{text}"
        );
        assert_eq!(serde_json::from_str::<Value>(&text).unwrap(), record);
    }

    #[test]
    fn rejects_bad_flags() {
        assert!(HostArgs::parse(&args(&[])).is_err());
        assert!(HostArgs::parse(&args(&["--app-root"])).is_err());
        assert!(HostArgs::parse(&args(&["--app-root", "/a", "--port", "x"])).is_err());
        assert!(HostArgs::parse(&args(&["--app-root", "/a", "--bogus"])).is_err());
    }
}
