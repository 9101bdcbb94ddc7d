//! App Service / Functions, api-version 2019-08-01: `GET {IDENTITY_ENDPOINT}` with the user-assigned
//! selector as `client_id`, `principal_id` or `mi_res_id` and the headers `X-IDENTITY-HEADER` and
//! `Metadata: true`. See
//! <https://learn.microsoft.com/azure/app-service/overview-managed-identity#rest-endpoint-reference>.

use url::Url;

use super::{TokenRequest, selector_url};
use crate::secret::HeaderSecret;
use crate::transport::{HeaderText, HttpRequest};

const API_VERSION: &str = "2019-08-01";

/// The request: `client_id` / `principal_id` / `mi_res_id`, `X-IDENTITY-HEADER`, and
/// `Metadata: true` as MSAL and the Rust SDK send it.
pub(crate) fn request(
    endpoint: &Url,
    header: &HeaderSecret,
    request: TokenRequest<'_>,
) -> HttpRequest {
    let names = ["client_id", "principal_id", "mi_res_id"];
    HttpRequest {
        url: selector_url(endpoint, API_VERSION, &request, names),
        headers: vec![
            ("x-identity-header", HeaderText::Secret(header.clone())),
            ("metadata", HeaderText::Plain("true")),
        ],
    }
}
