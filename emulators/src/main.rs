//! `emulators`: local stand-ins for Azure services, one subcommand each.

use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("host") => emulators::host::run_cli(&args[1..]),
        _ => {
            eprintln!("usage: emulators <host> [options]");
            ExitCode::from(2)
        }
    }
}
