//! `CallApi`: one service calling another's API with a managed-identity token for the API's
//! Application ID URI — the service-to-service sample, made deployable. The path is checked
//! before any token is fetched, so the function can only reach the configured API; redirects are
//! never followed, and their `Location` is not relayed (the app's origin must not redirect wherever
//! the downstream says); the body is relayed with `nosniff` and, unless its type is plain data,
//! inert (see `active_content`); the token appears in neither the answer nor a log.

use std::sync::Arc;

use crate::app::App;
use crate::error::FunctionError;
use crate::functions::active_content;
use custom_handler::http::{HttpRequest, HttpResponse};

/// `GET /api/call/{*path}`: calls DOWNSTREAM_API_URL joined with `path`, with the query (minus
/// the function key), and answers the downstream status, content type and body.
pub async fn run(app: Arc<App>, request: HttpRequest) -> Result<HttpResponse, FunctionError> {
    let downstream = app.downstream()?;
    let path = request.param("path").unwrap_or_default();
    let query: Vec<(String, String)> = request
        .query
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let target = downstream.api.target(path, &query)?;
    let token = app.identity()?.get_token(&downstream.scope, None).await?;
    let answer = downstream
        .api
        .get(path, &query, token.access_token.expose())
        .await?;
    log::info!(
        "called {} {}: {}",
        target.origin().ascii_serialization(),
        target.path(),
        answer.status
    );
    let content_type = answer
        .content_type
        .unwrap_or_else(|| "application/octet-stream".to_owned());
    if answer.location.is_some() {
        log::info!(
            "dropped the downstream's Location header: it is never relayed as a redirect on this app's origin"
        );
    }
    let response = HttpResponse::new(answer.status, content_type, answer.body);
    Ok(active_content::served_inert(response))
}
