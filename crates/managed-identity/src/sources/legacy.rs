//! App Service legacy (also Azure ML), api-version 2017-09-01: `GET {MSI_ENDPOINT}` with
//! `clientid` as the only user-assigned selector and the header `secret`.

use url::Url;

use super::{TokenRequest, with_query};
use crate::error::IdentityError;
use crate::secret::HeaderSecret;
use crate::transport::{HeaderText, HttpRequest};
use crate::{IdentitySelector, SourceKind, UserAssignedId};

const API_VERSION: &str = "2017-09-01";

/// Why the legacy endpoint cannot serve an identity named by object or resource id.
pub(crate) const CLIENT_ID_ONLY: &str = "the legacy 2017-09-01 endpoint (MSI_ENDPOINT) selects user-assigned identities by client id only";

/// The request: `clientid` only, header `secret`.
pub(crate) fn request(
    endpoint: &Url,
    secret: &HeaderSecret,
    request: TokenRequest<'_>,
) -> Result<HttpRequest, IdentityError> {
    let mut pairs = vec![("api-version", API_VERSION), ("resource", request.resource)];
    match request.identity {
        IdentitySelector::SystemAssigned => {}
        IdentitySelector::UserAssigned(UserAssignedId::ClientId(id)) => {
            pairs.push(("clientid", id))
        }
        IdentitySelector::UserAssigned(_) => {
            return Err(IdentityError::UnsupportedIdentity {
                source_kind: SourceKind::AppService2017,
                identity: request.identity.clone(),
                reason: CLIENT_ID_ONLY.into(),
            });
        }
    }
    Ok(HttpRequest {
        url: with_query(endpoint, &pairs),
        headers: vec![("secret", HeaderText::Secret(secret.clone()))],
    })
}
