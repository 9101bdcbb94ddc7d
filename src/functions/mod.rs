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

use custom_handler::registry::Implemented;

use crate::app::App;
use crate::clients::names::MAX_BLOB_BYTES;

/// ReadBlob's and WriteBlob's route: the same blob, read with GET and written with PUT.
const BLOB_ROUTE: &str = "blobs/{container}/{name}";

/// Every function this handler implements. Each is a plain `async fn`, boxed once here by
/// `Implemented::http` / `Implemented::timer`. A function that takes a body (any method but GET,
/// HEAD, DELETE, OPTIONS) takes one up to the blob limit, since WriteBlob is the one such
/// function; the limit is set on each so that none is left with the runtime's default.
pub fn all() -> Vec<Implemented<App>> {
    vec![
        Implemented::http("CallApi", "call/{*path}", &["GET"], call_api::run),
        Implemented::http("GetSecret", "secrets/{name}", &["GET"], get_secret::run),
        Implemented::http("ReadBlob", BLOB_ROUTE, &["GET"], read_blob::run),
        Implemented::timer("RefreshTokens", refresh_tokens::run),
        Implemented::http("TokenInfo", "token", &["GET"], token_info::run),
        Implemented::http("Whoami", "whoami", &["GET"], whoami::run),
        Implemented::http("WriteBlob", BLOB_ROUTE, &["PUT"], write_blob::run),
    ]
    .into_iter()
    .map(|function| function.with_body_limit(MAX_BLOB_BYTES))
    .collect()
}
