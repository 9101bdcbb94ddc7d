//! `emulators`: local stand-ins for Azure services used by the tests and the local stack.

use std::process::ExitCode;

#[tokio::main]
async fn main() -> ExitCode {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info"))
        .target(env_logger::Target::Stdout)
        .init();
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (command, rest) = args
        .split_first()
        .map_or(("", &[][..]), |(c, r)| (c.as_str(), r));
    let result = match command {
        "keyvault" => match emulators::keyvault::parse_args(rest) {
            Ok(parsed) => emulators::keyvault::run(parsed)
                .await
                .map_err(|e| e.to_string()),
            Err(e) => Err(e.to_string()),
        },
        _ => Err(format!(
            "usage: emulators <keyvault> [flags]\n{}",
            emulators::keyvault::USAGE
        )),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("emulators: {message}");
            ExitCode::from(2)
        }
    }
}
