//! `TokenInfo`: what the app's managed identity gets for a resource — source, identity, claims
//! and expiry — without the token itself. The first thing to call when a function cannot reach
//! a service.

use std::sync::Arc;

use futures::future::{BoxFuture, FutureExt};
use serde::Serialize;

use crate::app::App;
use crate::error::FunctionError;
use crate::http::{HttpRequest, HttpResponse};
use crate::identity::claims::Claims;
use crate::identity::{Token, UserAssignedId};

/// The resource asked for when the caller names none.
pub const DEFAULT_RESOURCE: &str = "https://vault.azure.net";

/// What the caller gets: everything about the token except the token.
#[derive(Debug, Serialize)]
pub struct TokenReport {
    /// Where the token came from, e.g. "App Service 2019-08-01 (IDENTITY_ENDPOINT)".
    pub source: String,
    /// Whose token it is, e.g. "system-assigned".
    pub identity: String,
    /// The resource (audience) it is for.
    pub resource: String,
    /// Usually "Bearer".
    pub token_type: String,
    /// When it expires, epoch seconds.
    pub expires_on: i64,
    /// Seconds it has left.
    pub expires_in: i64,
    /// From when the module refreshes it ahead of expiry, epoch seconds.
    pub refresh_on: i64,
    /// The decoded claims (aud, iss, oid, tid, appid, roles, exp, ...), unverified.
    pub claims: Option<Claims>,
}

impl TokenReport {
    /// Describes `token` without revealing it.
    pub fn of(token: &Token) -> Self {
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        Self {
            source: token.source.to_string(),
            identity: token.identity.to_string(),
            resource: token.resource.clone(),
            token_type: token.token_type.clone(),
            expires_on: token.expires_on.unix_timestamp(),
            expires_in: token.expires_on.unix_timestamp() - now,
            refresh_on: token.refresh_on.unix_timestamp(),
            claims: token.claims().cloned(),
        }
    }
}

/// `GET /api/token[?resource=R][&client_id=|&object_id=|&resource_id=]`.
pub fn run(
    app: Arc<App>,
    request: HttpRequest,
) -> BoxFuture<'static, Result<HttpResponse, FunctionError>> {
    async move {
        let resource = request
            .query("resource")
            .unwrap_or(DEFAULT_RESOURCE)
            .to_owned();
        let identity = requested_identity(&request)?;
        let token = app
            .identity()?
            .get_token(&resource, identity.as_ref())
            .await?;
        let report = TokenReport::of(&token);
        log::info!(
            "token for {} from {} ({}): {} s left",
            report.resource,
            report.source,
            report.identity,
            report.expires_in
        );
        Ok(HttpResponse::json(200, &report).with_header("Cache-Control", "no-store"))
    }
    .boxed()
}

/// A user-assigned identity named in the query, at most one.
fn requested_identity(request: &HttpRequest) -> Result<Option<UserAssignedId>, FunctionError> {
    let named: Vec<UserAssignedId> = [
        request
            .query("client_id")
            .map(|v| UserAssignedId::ClientId(v.to_owned())),
        request
            .query("object_id")
            .map(|v| UserAssignedId::ObjectId(v.to_owned())),
        request
            .query("resource_id")
            .map(|v| UserAssignedId::ResourceId(v.to_owned())),
    ]
    .into_iter()
    .flatten()
    .collect();
    match named.as_slice() {
        [] => Ok(None),
        [one] => Ok(Some(one.clone())),
        _ => Err(FunctionError::BadRequest(
            "name at most one of client_id, object_id and resource_id".into(),
        )),
    }
}
