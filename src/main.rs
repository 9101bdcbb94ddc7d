//! The `handler` binary: `handler` (or `handler serve`) serves the Functions host;
//! `handler check` compares the function folders with the code; `handler token` and
//! `handler doctor` diagnose a deployment from its console.

use std::process::ExitCode;
use std::sync::Arc;

use custom_handler::{logging, registry, server, stdout_batch};
use handler::app::{self, App};
use handler::config::{self, AppSettings, ServerConfig};
use handler::doctor::{self, DoctorCommand};
use handler::functions;
use handler::token_command::{self, TokenCommand};

const USAGE: &str =
    "usage: handler [serve]      serve the Azure Functions host on FUNCTIONS_CUSTOMHANDLER_PORT
       handler check [DIR]  compare DIR's function folders (default: the app root) with the code
       handler token <resource> [--client-id ID | --object-id ID | --resource-id ID] [--show-token]
                            get a token as the functions do and describe it
       handler doctor [--app-root DIR] [--secret NAME] [--container NAME]
                            check identity, Key Vault, Storage, settings, folders and glibc";

mod allocator;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        None | Some("serve") => logging::init(),
        Some(_) => logging::init_cli(),
    }
    let runtime = match server::tokio_runtime() {
        Ok(runtime) => runtime,
        Err(error) => return fail(&format!("cannot start the async runtime: {error}")),
    };
    let code = runtime.block_on(run(args));
    drop(runtime);
    stdout_batch::flush();
    code
}

async fn run(args: Vec<String>) -> ExitCode {
    match args.first().map(String::as_str) {
        None | Some("serve") => serve().await,
        Some("check") => check(args.get(1).map(String::as_str)),
        Some("token") => token(&args[1..]).await,
        Some("doctor") => doctor(&args[1..]).await,
        Some("help" | "--help" | "-h") => {
            println!("{USAGE}");
            ExitCode::SUCCESS
        }
        Some(other) => {
            eprintln!("handler: unknown command '{other}'\n{USAGE}");
            ExitCode::from(2)
        }
    }
}

async fn serve() -> ExitCode {
    let config = match ServerConfig::from_env() {
        Ok(config) => config,
        Err(error) => return fail(&error),
    };
    let listener = match app::bind(&config).await {
        Ok(listener) => listener,
        Err(error) => return fail(&error),
    };
    log::info!("listening on 127.0.0.1:{}", config.port);
    let runtime = app::runtime(
        &config.app_root,
        Arc::new(App::new(AppSettings::from_env())),
        functions::all(),
    );
    // The TLS roots are read in the background: readiness never waits for them, and the first
    // HTTPS call waits only for what is not loaded yet.
    handler::clients::tls::warm_up_in_background();
    server::run_with(
        listener,
        Arc::new(runtime),
        config.limits,
        shutdown_signal(),
    )
    .await;
    log::info!("stopped");
    ExitCode::SUCCESS
}

fn check(dir: Option<&str>) -> ExitCode {
    let app_root = match dir {
        Some(dir) => dir.into(),
        None => match ServerConfig::from_lookup(|name| {
            std::env::var(name)
                .ok()
                .or_else(|| (name == "FUNCTIONS_CUSTOMHANDLER_PORT").then(|| "1".into()))
        }) {
            Ok(config) => config.app_root,
            Err(error) => return fail(&error),
        },
    };
    let (declared, broken) = match registry::load_declared(&app_root) {
        Ok(loaded) => loaded,
        Err(error) => return fail(&error),
    };
    let mismatches = registry::compare(&declared, &functions::all());
    for problem in broken
        .iter()
        .map(ToString::to_string)
        .chain(mismatches.iter().map(ToString::to_string))
    {
        println!("mismatch: {problem}");
    }
    if broken.is_empty() && mismatches.is_empty() {
        println!("ok: {} function folder(s) match the code", declared.len());
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

async fn token(args: &[String]) -> ExitCode {
    let command = match usage_error("token", TokenCommand::parse(args), token_command::USAGE) {
        Ok(command) => command,
        Err(exit) => return exit,
    };
    match token_command::run(&command, AppSettings::from_env()).await {
        Ok(json) => {
            println!("{json}");
            ExitCode::SUCCESS
        }
        Err(message) => fail(&message),
    }
}

async fn doctor(args: &[String]) -> ExitCode {
    let command = match usage_error("doctor", DoctorCommand::parse(args), doctor::USAGE) {
        Ok(command) => command,
        Err(exit) => return exit,
    };
    let findings = doctor::run(&command, config::env_lookup).await;
    for finding in &findings {
        println!("{finding}");
    }
    if doctor::failed(&findings) {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

/// A subcommand's parsed arguments, or, when they are wrong, the problem and the usage on
/// stderr and exit code 2.
fn usage_error<T>(command: &str, parsed: Result<T, String>, usage: &str) -> Result<T, ExitCode> {
    parsed.map_err(|problem| {
        eprintln!("handler {command}: {problem}\nusage: {usage}");
        ExitCode::from(2)
    })
}

/// Completes on SIGTERM (the host stopping us) or SIGINT (Ctrl-C).
async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    match signal(SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = term.recv() => {}
                _ = tokio::signal::ctrl_c() => {}
            }
        }
        Err(error) => {
            log::warn!("cannot watch SIGTERM ({error}); stopping on Ctrl-C only");
            let _ = tokio::signal::ctrl_c().await;
        }
    }
    log::info!("shutting down: finishing in-flight invocations");
}

fn fail(error: &dyn std::fmt::Display) -> ExitCode {
    eprintln!("handler: {error}");
    ExitCode::FAILURE
}
