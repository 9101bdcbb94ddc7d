//! The functions, one module each. Each reads like the documentation's sample: get a token,
//! call the service, shape the answer. This table and the registry are the only code that knows
//! all of them; `handler check` and the tests compare it with the function folders.

mod active_content;
mod blob_scope;
pub mod call_api;
pub mod get_secret;
pub mod read_blob;
pub mod refresh_tokens;
pub mod token_info;
pub mod whoami;
pub mod write_blob;

use crate::app::App;
use crate::registry::{Implemented, ImplementedTrigger};

/// Every function this handler implements.
pub fn all() -> Vec<Implemented<App>> {
    vec![
        http("CallApi", "call/{*path}", &["GET"], call_api::run),
        http("GetSecret", "secrets/{name}", &["GET"], get_secret::run),
        http(
            "ReadBlob",
            "blobs/{container}/{name}",
            &["GET"],
            read_blob::run,
        ),
        timer("RefreshTokens", refresh_tokens::run),
        http("TokenInfo", "token", &["GET"], token_info::run),
        http("Whoami", "whoami", &["GET"], whoami::run),
        http(
            "WriteBlob",
            "blobs/{container}/{name}",
            &["PUT"],
            write_blob::run,
        ),
    ]
}

fn http(
    name: &'static str,
    route: &'static str,
    methods: &'static [&'static str],
    run: crate::registry::HttpFn<App>,
) -> Implemented<App> {
    Implemented {
        name,
        trigger: ImplementedTrigger::Http {
            route,
            methods,
            run,
        },
    }
}

fn timer(name: &'static str, run: crate::registry::TimerFn<App>) -> Implemented<App> {
    Implemented {
        name,
        trigger: ImplementedTrigger::Timer { run },
    }
}
