//! Dispatch: from a host request (JSON mode or forwarded) to one function's entry point and back.
//!
//! This is the only code, with the registry, that knows every function. It decodes the host's
//! envelope through `contract`, runs the function inside its invocation scope (so its log lines
//! are captured) with the host's time limit, and maps a failure to an error status in the
//! function's own output: the host always gets 200 in JSON mode, or it would drop the Logs.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use base64::Engine as _;
use bytes::Bytes;
use futures::FutureExt as _;

use crate::contract::{HttpOutput, HttpTriggerData, InvocationRequest, InvocationResponse};
use crate::error::FunctionError;
use crate::http::{HttpRequest, HttpResponse};
use crate::invocation::Invocation;
use crate::registry::{DeclaredTrigger, Entry, ImplementedTrigger, Registry, RouteMatch};

/// The largest request body accepted, in JSON and forwarding mode. A blob write's body arrives
/// base64-encoded inside the JSON envelope, so this leaves room above the blob limit.
pub const MAX_REQUEST_BYTES: usize = 32 * 1024 * 1024;

/// A request body, or the fact that it was over the limit (and so not read).
pub type Body = Result<Bytes, FunctionError>;

/// How the runtime behaves: read once from host.json at start-up.
#[derive(Debug, Clone)]
pub struct RuntimeOptions {
    /// `extensions.http.routePrefix`, default `api`.
    pub route_prefix: String,
    /// `functionTimeout`, default 5 minutes; `None` when host.json says `-1` (unlimited).
    pub function_timeout: Option<Duration>,
}

impl Default for RuntimeOptions {
    fn default() -> Self {
        Self {
            route_prefix: "api".into(),
            function_timeout: Some(Duration::from_secs(300)),
        }
    }
}

/// The functions, the state they share, and the options: everything a request needs.
pub struct Runtime<S> {
    state: Arc<S>,
    registry: Registry<S>,
    options: RuntimeOptions,
}

impl<S: Send + Sync + 'static> Runtime<S> {
    /// Builds the runtime; logs every mismatch between the function folders and the code.
    pub fn new(state: Arc<S>, registry: Registry<S>, options: RuntimeOptions) -> Self {
        for mismatch in registry.mismatches() {
            log::error!("function registry: {mismatch}");
        }
        Self {
            state,
            registry,
            options,
        }
    }

    /// The route prefix forwarded requests carry.
    pub fn route_prefix(&self) -> &str {
        &self.options.route_prefix
    }

    /// Whether `name` is a function this runtime serves, without regard to case.
    pub fn serves(&self, name: &str) -> bool {
        self.registry.by_name(name).is_some()
    }

    /// JSON mode: runs function `name` on the host's payload and answers the host's envelope.
    pub async fn invoke_json(
        &self,
        name: &str,
        invocation_id: Option<&str>,
        body: Body,
    ) -> InvocationResponse {
        let Some(entry) = self.registry.by_name(name) else {
            return unknown_function(name);
        };
        let invocation = Invocation::new(
            &entry.declared.name,
            &invocation_id.map_or_else(local_id, str::to_owned),
        );
        match (&entry.declared.trigger, &entry.trigger) {
            (DeclaredTrigger::Http(http), ImplementedTrigger::Http { run, .. }) => {
                let work = self.json_http(*run, &http.binding, body);
                let response = invocation.scope(work).await;
                InvocationResponse::http(&http.output, to_http_output(response), invocation.logs())
            }
            (DeclaredTrigger::Timer { binding, .. }, ImplementedTrigger::Timer { run }) => {
                invocation.scope(self.json_timer(*run, binding, body)).await;
                InvocationResponse::logs_only(invocation.logs())
            }
            _ => unknown_function(name),
        }
    }

    async fn json_http(
        &self,
        run: crate::registry::HttpFn<S>,
        binding: &str,
        body: Body,
    ) -> HttpResponse {
        let request = body.and_then(|bytes| {
            Ok(request_from_trigger(crate::contract::http_trigger(
                &bytes, binding,
            )?))
        });
        let outcome = match request {
            Ok(request) => self.limited(run(self.state.clone(), request)).await,
            Err(error) => Err(error),
        };
        into_response(outcome)
    }

    async fn json_timer(&self, run: crate::registry::TimerFn<S>, binding: &str, body: Body) {
        let timer =
            body.and_then(|bytes| Ok(InvocationRequest::from_slice(&bytes)?.timer(binding)?));
        let outcome = match timer {
            Ok(timer) => self.limited(run(self.state.clone(), timer)).await,
            Err(error) => Err(error),
        };
        if let Err(error) = outcome {
            log::error!("the timer run failed: {error}");
        }
    }

    /// Forwarding mode: routes `/{prefix}/{route}` to its function and answers it directly.
    pub async fn forward(&self, request: ForwardedRequest) -> HttpResponse {
        let routed = strip_prefix(&request.path, &self.options.route_prefix)
            .map(|below_prefix| self.registry.by_route(&request.method, below_prefix));
        match routed {
            Some(RouteMatch::Found { entry, params }) => {
                self.forward_to(entry, params, request).await
            }
            Some(RouteMatch::MethodNotAllowed) => FunctionError::BadRequest(format!(
                "{} is not allowed on {}; see the function's methods in its function.json",
                request.method, request.path
            ))
            .to_response()
            .with_status(405),
            _ => match json_mode_name(&request) {
                Some(name) => HttpResponse::new(
                    200,
                    "application/json; charset=utf-8",
                    unknown_function(name).to_json(),
                ),
                None => no_route(&request.method, &request.path),
            },
        }
    }

    async fn forward_to(
        &self,
        entry: &Entry<S>,
        params: BTreeMap<String, String>,
        request: ForwardedRequest,
    ) -> HttpResponse {
        let ImplementedTrigger::Http { run, .. } = &entry.trigger else {
            return no_route(&request.method, &request.path);
        };
        let id = request.invocation_id.clone().unwrap_or_else(local_id);
        let invocation = Invocation::new(&entry.declared.name, &id);
        let work = async {
            let outcome = match request.body {
                Ok(body) => {
                    let params = params
                        .into_iter()
                        .map(|(name, raw)| (name, percent_decode(&raw)))
                        .collect();
                    let http = HttpRequest {
                        method: request.method,
                        params,
                        query: request.query,
                        headers: request.headers,
                        body,
                    };
                    self.limited(run(self.state.clone(), http)).await
                }
                Err(error) => Err(error),
            };
            into_response(outcome)
        };
        invocation.scope(work).await
    }

    /// Runs a function under host.json's functionTimeout. A panic (a bug: no input should cause
    /// one) fails only this invocation, with a 500 in its output and its Logs kept.
    async fn limited<T>(
        &self,
        work: impl Future<Output = Result<T, FunctionError>>,
    ) -> Result<T, FunctionError> {
        let work = std::panic::AssertUnwindSafe(work)
            .catch_unwind()
            .map(|outcome| outcome.unwrap_or(Err(FunctionError::Panicked)));
        match self.options.function_timeout {
            Some(limit) => tokio::time::timeout(limit, work)
                .await
                .unwrap_or(Err(FunctionError::Timeout(limit))),
            None => work.await,
        }
    }
}

/// A forwarded request, as the server read it off the wire.
#[derive(Debug)]
pub struct ForwardedRequest {
    /// The method, upper case.
    pub method: String,
    /// The raw path, prefix included, still percent-encoded.
    pub path: String,
    /// The decoded query.
    pub query: BTreeMap<String, String>,
    /// The headers.
    pub headers: Vec<(String, String)>,
    /// The host's invocation id header, kept for log correlation.
    pub invocation_id: Option<String>,
    /// The body, or why it was not read.
    pub body: Body,
}

/// A failure becomes its error response, and a line in the invocation's Logs.
fn into_response(outcome: Result<HttpResponse, FunctionError>) -> HttpResponse {
    outcome.unwrap_or_else(|error| {
        log::warn!("answered {}: {error}", error.status());
        error.to_response()
    })
}

/// The host's http trigger data as the function sees it. Bodies the host base64-encoded
/// (octet-stream, multipart) are decoded back to their bytes.
fn request_from_trigger(trigger: HttpTriggerData) -> HttpRequest {
    let headers: Vec<(String, String)> = trigger
        .headers
        .iter()
        .flat_map(|(name, values)| {
            values
                .iter()
                .map(move |value| (name.clone(), value.clone()))
        })
        .collect();
    let content_type = trigger
        .header("content-type")
        .and_then(|v| v.first())
        .cloned()
        .unwrap_or_default();
    let body = trigger
        .body
        .map(|text| body_bytes(&content_type, text))
        .unwrap_or_default();
    HttpRequest {
        method: trigger.method,
        params: trigger
            .params
            .into_iter()
            .filter_map(|(k, v)| v.map(|v| (k, v)))
            .collect(),
        query: trigger.query,
        headers,
        body,
    }
}

fn body_bytes(content_type: &str, text: String) -> Bytes {
    let media = content_type.to_ascii_lowercase();
    let encoded = media.starts_with("application/octet-stream") || media.starts_with("multipart/");
    if encoded && let Ok(bytes) = base64::engine::general_purpose::STANDARD.decode(text.trim()) {
        return Bytes::from(bytes);
    }
    Bytes::from(text)
}

/// The http output binding's value. JSON mode carries the body as a string, so bytes that are
/// not UTF-8 travel base64-encoded, marked by `Content-Transfer-Encoding: base64`
/// (forwarding mode sends them raw).
fn to_http_output(response: HttpResponse) -> HttpOutput {
    let mut headers = response.headers;
    let body = match String::from_utf8(response.body.to_vec()) {
        Ok(text) => text,
        Err(_) => {
            headers.insert("Content-Transfer-Encoding".into(), "base64".into());
            base64::engine::general_purpose::STANDARD.encode(&response.body)
        }
    };
    HttpOutput {
        status_code: response.status,
        body,
        headers,
    }
}

fn unknown_function(name: &str) -> InvocationResponse {
    let message = format!(
        "no function named '{name}' is served by this handler: check that {name}/function.json exists beside host.json and that the handler implements it (`handler check`)"
    );
    log::error!("{message}");
    InvocationResponse::logs_only(vec![format!("ERROR: {message}")])
}

/// A `POST /{name}` that names no function is a JSON-mode invocation of an unknown function:
/// it gets the envelope with the error in Logs, never a non-2xx.
fn json_mode_name(request: &ForwardedRequest) -> Option<&str> {
    let name = request.path.strip_prefix('/')?;
    (request.method == "POST" && !name.is_empty() && !name.contains('/')).then_some(name)
}

fn no_route(method: &str, path: &str) -> HttpResponse {
    FunctionError::NotFound(format!("no function's route matches {method} {path}")).to_response()
}

fn strip_prefix<'a>(path: &'a str, prefix: &str) -> Option<&'a str> {
    let path = path.trim_start_matches('/');
    let prefix = prefix.trim_matches('/');
    if prefix.is_empty() {
        return Some(path);
    }
    let head = path.get(..prefix.len())?;
    let rest = &path[prefix.len()..];
    (head.eq_ignore_ascii_case(prefix) && (rest.is_empty() || rest.starts_with('/')))
        .then_some(rest)
}

/// Route parameters are matched on the raw path, segment by segment, and decoded afterwards, so
/// an encoded `/` stays inside its parameter instead of creating a new segment.
fn percent_decode(raw: &str) -> String {
    percent_encoding::percent_decode_str(raw)
        .decode_utf8_lossy()
        .into_owned()
}

/// An id for invocations that arrived without the host's header (tests, curl).
fn local_id() -> String {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    format!("local-{}", NEXT.fetch_add(1, Ordering::Relaxed))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_route_prefix_is_stripped_without_regard_to_case() {
        assert_eq!(strip_prefix("/api/secrets/x", "api"), Some("/secrets/x"));
        assert_eq!(strip_prefix("/API/secrets/x", "api"), Some("/secrets/x"));
        assert_eq!(strip_prefix("/apis/x", "api"), None);
        assert_eq!(strip_prefix("/x", ""), Some("x"));
        assert_eq!(strip_prefix("/", "api"), None);
    }

    #[test]
    fn octet_stream_bodies_are_decoded_from_base64_and_text_is_kept() {
        assert_eq!(
            body_bytes("application/octet-stream", "AAEC/w==".into()),
            Bytes::from_static(&[0, 1, 2, 255])
        );
        assert_eq!(
            body_bytes("text/plain", "AAEC/w==".into()),
            Bytes::from_static(b"AAEC/w==")
        );
    }

    #[test]
    fn binary_response_bodies_travel_base64_in_json_mode() {
        let output = to_http_output(HttpResponse::new(
            200,
            "application/octet-stream",
            vec![0u8, 159, 146, 150],
        ));
        assert_eq!(output.body, "AJ+Slg==");
        assert_eq!(output.headers["Content-Transfer-Encoding"], "base64");
        let text = to_http_output(HttpResponse::new(200, "text/plain", "héllo"));
        assert_eq!(text.body, "héllo");
        assert!(!text.headers.contains_key("Content-Transfer-Encoding"));
    }

    #[test]
    fn parameters_are_decoded_after_matching() {
        assert_eq!(percent_decode("a%20b"), "a b");
        assert_eq!(percent_decode("c%2Fd"), "c/d");
    }
}
