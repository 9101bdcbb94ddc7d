//! `emulators` binary: dispatches to one emulator per subcommand.
//!
//! Usage errors go to stderr with exit code 2; fatal runtime errors with exit code 1.

use std::process::ExitCode;

const USAGE: &str = "usage: emulators <subcommand> [flags]
subcommands:
  pki --out DIR
  identity --config FILE [--port N] [--header-secret S]
  keyvault --config FILE --cert LEAF.pem --key LEAF.key --jwks-url URL [--port N]
  host --app-root DIR [--handler PATH] [--port 7071] [--keys-file FILE] [--no-timers] [--local-settings FILE]";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some((subcommand, rest)) = args.split_first() else {
        return usage_error("missing subcommand");
    };
    // The host emulator builds its own runtime: it must shut it down without waiting on the
    // handler's pipes once it has decided to exit.
    if subcommand == "host" {
        return emulators::host::run_cli(rest);
    }
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("emulators: cannot start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    let outcome = match subcommand.as_str() {
        "pki" => run_pki(rest),
        "identity" => runtime.block_on(run_identity(rest)),
        "keyvault" => runtime.block_on(run_keyvault(rest)),
        "-h" | "--help" | "help" => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        other => return usage_error(&format!("unknown subcommand `{other}`")),
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure::Usage(message)) => usage_error(&message),
        Err(Failure::Fatal(message)) => {
            eprintln!("emulators {subcommand}: {message}");
            ExitCode::from(1)
        }
    }
}

/// Why a subcommand did not complete.
enum Failure {
    /// Bad command line: print usage, exit 2.
    Usage(String),
    /// Runtime failure: exit 1.
    Fatal(String),
}

fn usage_error(message: &str) -> ExitCode {
    eprintln!("emulators: {message}\n{USAGE}");
    ExitCode::from(2)
}

fn run_pki(args: &[String]) -> Result<(), Failure> {
    let out = emulators::pki::parse_args(args).map_err(Failure::Usage)?;
    let paths = emulators::pki::ensure_pki(&out).map_err(|e| Failure::Fatal(e.to_string()))?;
    println!("{}", paths.to_json());
    Ok(())
}

async fn run_identity(args: &[String]) -> Result<(), Failure> {
    let options = emulators::identity::Options::parse(args).map_err(Failure::Usage)?;
    emulators::identity::run(options)
        .await
        .map_err(|e| Failure::Fatal(e.to_string()))
}

async fn run_keyvault(args: &[String]) -> Result<(), Failure> {
    emulators::serve::init_logging();
    let parsed =
        emulators::keyvault::parse_args(args).map_err(|e| Failure::Usage(e.to_string()))?;
    emulators::keyvault::run(parsed)
        .await
        .map_err(|e| Failure::Fatal(e.to_string()))
}
