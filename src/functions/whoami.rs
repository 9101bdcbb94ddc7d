//! `Whoami`: the receiving side of service-to-service. Anonymous at the host, it is protected by
//! the caller's bearer token instead, which it validates itself (signature against the authority's
//! keys, issuer, audience, lifetime, algorithm, and the required role), then answers who called.

use std::sync::Arc;

use serde::Serialize;

use crate::app::App;
use crate::error::FunctionError;
use custom_handler::http::{HttpRequest, HttpResponse};

/// Who called, from the validated token.
#[derive(Debug, Serialize)]
struct Who<'a> {
    oid: Option<&'a str>,
    appid: Option<&'a str>,
    tid: Option<&'a str>,
    roles: &'a [String],
}

/// `GET /api/whoami` with `Authorization: Bearer <token>`: 200 with the caller's oid, appid, tid
/// and roles; 401 with `WWW-Authenticate` for a missing or invalid token; 403 without the role.
pub async fn run(app: Arc<App>, request: HttpRequest) -> Result<HttpResponse, FunctionError> {
    let caller = app
        .validator()?
        .validate(request.header("authorization"))
        .await?;
    log::info!(
        "called by oid {} (appid {})",
        caller.oid.as_deref().unwrap_or("-"),
        caller.appid.as_deref().unwrap_or("-")
    );
    let who = Who {
        oid: caller.oid.as_deref(),
        appid: caller.appid.as_deref(),
        tid: caller.tid.as_deref(),
        roles: &caller.roles,
    };
    Ok(HttpResponse::json(200, &who).with_header("Cache-Control", "no-store"))
}
