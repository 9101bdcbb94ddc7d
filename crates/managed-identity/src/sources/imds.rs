//! Azure Instance Metadata Service (VM, VMSS, AKS), api-version 2018-02-01:
//! `GET {base}/metadata/identity/oauth2/token` with the user-assigned selector as `client_id`,
//! `object_id` or `msi_res_id` and the header `Metadata: true`. See
//! <https://learn.microsoft.com/entra/identity/managed-identities-azure-resources/how-to-use-vm-token>.

use url::Url;

use super::{TokenRequest, selector_url};
use crate::transport::{HeaderText, HttpRequest};

const API_VERSION: &str = "2018-02-01";

/// The request: `client_id` / `object_id` / `msi_res_id`, `Metadata: true`.
pub(crate) fn request(endpoint: &Url, request: TokenRequest<'_>) -> HttpRequest {
    let names = ["client_id", "object_id", "msi_res_id"];
    HttpRequest {
        url: selector_url(endpoint, API_VERSION, &request, names),
        headers: vec![("metadata", HeaderText::Plain("true"))],
    }
}
