//! `CallApi`: one service calling another's API with a managed-identity token for the API's
//! Application ID URI — the service-to-service sample, made deployable. The path is checked
//! before any token is fetched, so the function can only reach the configured API; redirects are
//! answered as they are, never followed; the token appears in neither the answer nor a log.

use std::sync::Arc;

use futures::future::{BoxFuture, FutureExt};

use crate::app::App;
use crate::error::FunctionError;
use crate::http::{HttpRequest, HttpResponse};

/// `GET /api/call/{*path}`: calls DOWNSTREAM_API_URL joined with `path`, with the query (minus
/// the function key), and answers the downstream status, content type and body.
pub fn run(
    app: Arc<App>,
    request: HttpRequest,
) -> BoxFuture<'static, Result<HttpResponse, FunctionError>> {
    async move {
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
            .as_deref()
            .unwrap_or("application/octet-stream");
        let response = HttpResponse::new(answer.status, content_type, answer.body);
        Ok(match answer.location {
            Some(location) => response.with_header("Location", location),
            None => response,
        })
    }
    .boxed()
}
