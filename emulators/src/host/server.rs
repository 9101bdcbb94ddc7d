//! The emulator's HTTP listener: `/{routePrefix}/{route}` for HTTP functions (key check, then
//! JSON mode or forwarding), `POST /admin/functions/{name}` (admin invoke), and
//! `/_emulator/invocations` for tests.

use std::convert::Infallible;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::{Map, Value, json};
use tokio::net::TcpListener;
use tokio::sync::watch;

use super::app::{AuthLevel, FunctionDef, HttpTrigger, Trigger};
use super::invoke::HostState;
use super::journal::Ring;
use super::json_mode::{ClientRequest, HttpResult, json_encoded};
use super::keys::KeyMatch;
use super::timer::timer_info;

/// The host's default request body limit (Kestrel's `MaxRequestBodySize` in Functions: 100 MB).
pub const MAX_BODY_BYTES: usize = 100 * 1024 * 1024;

type HttpResponse = Response<Full<Bytes>>;

/// Accepts connections until `shutdown` flips to true.
pub async fn serve(
    listener: TcpListener,
    state: Arc<HostState>,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let Ok((stream, _)) = accepted else { continue };
                let state = Arc::clone(&state);
                tokio::spawn(async move {
                    let service = service_fn(move |request| {
                        let state = Arc::clone(&state);
                        async move { Ok::<_, Infallible>(handle(state, request).await) }
                    });
                    let _ = http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
            _ = shutdown.changed() => break,
        }
    }
}

/// Routes one request.
async fn handle(state: Arc<HostState>, request: Request<Incoming>) -> HttpResponse {
    let path = request.uri().path().to_string();
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    let admin = segments
        .first()
        .is_some_and(|first| first.eq_ignore_ascii_case("admin") || *first == "_emulator");
    if admin && !crate::loopback::is_loopback_host(crate::loopback::host_header(request.headers()))
    {
        return crate::loopback::refused();
    }
    match segments.as_slice() {
        [first, "invocations"] if *first == "_emulator" => {
            ring_endpoint(&state.journal.records, request.method())
        }
        [first, "logs"] if *first == "_emulator" => {
            ring_endpoint(&state.host_log.entries, request.method())
        }
        [admin, functions, name]
            if admin.eq_ignore_ascii_case("admin")
                && functions.eq_ignore_ascii_case("functions") =>
        {
            let name = super::route::percent_decode(name);
            admin_invoke(state, request, &name).await
        }
        _ if admin => function_request(state, request).await,
        // Every request but an admin one goes through host.json's request queue, if any.
        _ => match &state.queue {
            Some(queue) => {
                queue
                    .run(
                        &state.host_log,
                        function_request(Arc::clone(&state), request),
                    )
                    .await
            }
            None => function_request(state, request).await,
        },
    }
}

fn empty(status: StatusCode) -> HttpResponse {
    let mut response = Response::new(Full::new(Bytes::new()));
    *response.status_mut() = status;
    response
}

fn json_response(status: StatusCode, value: &Value) -> HttpResponse {
    let mut response = Response::new(Full::new(Bytes::from(value.to_string())));
    *response.status_mut() = status;
    response.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("application/json; charset=utf-8"),
    );
    response
}

/// `GET /_emulator/invocations` and `GET /_emulator/logs` list a ring (recent invocations, the
/// host log); `DELETE` clears it.
fn ring_endpoint<T: Clone + serde::Serialize, const N: usize>(
    ring: &Ring<T, N>,
    method: &hyper::Method,
) -> HttpResponse {
    match *method {
        hyper::Method::GET => {
            let list = serde_json::to_value(ring.list()).unwrap_or(Value::Array(vec![]));
            json_response(StatusCode::OK, &list)
        }
        hyper::Method::DELETE => {
            ring.clear();
            empty(StatusCode::NO_CONTENT)
        }
        _ => empty(StatusCode::METHOD_NOT_ALLOWED),
    }
}

/// The key a request presents: `x-functions-key` header first, then `?code=`.
fn presented_key(headers: &hyper::HeaderMap, query: Option<&str>) -> Option<String> {
    let header = headers
        .get("x-functions-key")
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty())
        .map(str::to_string);
    header.or_else(|| {
        url::form_urlencoded::parse(query.unwrap_or_default().as_bytes())
            .find(|(k, v)| k.eq_ignore_ascii_case("code") && !v.is_empty())
            .map(|(_, v)| v.into_owned())
    })
}

/// `POST /admin/functions/{name}` with the master key and `{"input": "..."}`: 202, then the
/// function runs in the background with a fresh trigger value.
async fn admin_invoke(
    state: Arc<HostState>,
    request: Request<Incoming>,
    name: &str,
) -> HttpResponse {
    if request.method() != hyper::Method::POST {
        return empty(StatusCode::METHOD_NOT_ALLOWED);
    }
    let key = presented_key(request.headers(), request.uri().query());
    if key.as_deref().and_then(|k| state.keys.classify(k)) != Some(KeyMatch::Master) {
        return empty(StatusCode::UNAUTHORIZED);
    }
    let Some(function) = state.function(name).cloned() else {
        return empty(StatusCode::NOT_FOUND);
    };
    let body = match Limited::new(request.into_body(), MAX_BODY_BYTES)
        .collect()
        .await
    {
        Ok(collected) => collected.to_bytes(),
        Err(_) => return empty(StatusCode::PAYLOAD_TOO_LARGE),
    };
    let input = match parse_admin_input(&body) {
        Ok(input) => input,
        Err(message) => return json_response(StatusCode::BAD_REQUEST, &json!({"error": message})),
    };
    let trigger_value = match &function.trigger {
        // A fresh TimerInfo with the stored monitor record (null without monitoring or
        // before the first scheduled run), never past due.
        Trigger::Timer(timer) => {
            let status = timer
                .use_monitor
                .then(|| state.timer_status(&function.name))
                .flatten();
            timer_info(status.as_ref(), false)
        }
        Trigger::Other { .. } => json_encoded(&input),
        Trigger::Http(_) => {
            return json_response(
                StatusCode::BAD_REQUEST,
                &json!({"error": "HTTP-triggered functions are invoked through their route"}),
            );
        }
    };
    tokio::spawn(async move {
        state
            .invoke_trigger(&function, trigger_value, "admin", "admin")
            .await;
    });
    empty(StatusCode::ACCEPTED)
}

/// Reads `{"input": "..."}` (an empty body means no input).
fn parse_admin_input(body: &[u8]) -> Result<String, String> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(String::new());
    }
    let value: Value = serde_json::from_slice(body)
        .map_err(|_| "body must be JSON {\"input\": \"...\"}".to_string())?;
    match value.get("input") {
        None | Some(Value::Null) => Ok(String::new()),
        Some(Value::String(s)) => Ok(s.clone()),
        Some(other) => Ok(other.to_string()),
    }
}

/// Strips `/{prefix}` from a path, matching the prefix without regard to case.
fn strip_prefix<'a>(path: &'a str, prefix: &str) -> Option<&'a str> {
    if prefix.is_empty() {
        return Some(path);
    }
    let rest = path.strip_prefix('/')?;
    let head = rest.get(..prefix.len())?;
    if !head.eq_ignore_ascii_case(prefix) {
        return None;
    }
    let tail = &rest[prefix.len()..];
    (tail.is_empty() || tail.starts_with('/')).then_some(tail)
}

/// Finds the HTTP function whose route and methods match, most specific template first.
fn find_route<'a>(
    state: &'a HostState,
    method: &str,
    route_path: &str,
) -> Option<(&'a FunctionDef, &'a HttpTrigger, Map<String, Value>)> {
    let mut candidates: Vec<(&FunctionDef, &HttpTrigger)> = state
        .app
        .functions
        .iter()
        .filter_map(|f| match &f.trigger {
            Trigger::Http(http) => Some((f, http)),
            _ => None,
        })
        .collect();
    candidates.sort_by_key(|(_, http)| std::cmp::Reverse(http.route.specificity()));
    candidates.into_iter().find_map(|(function, http)| {
        let allowed = http
            .methods
            .as_ref()
            .is_none_or(|methods| methods.iter().any(|m| m.eq_ignore_ascii_case(method)));
        if !allowed {
            return None;
        }
        http.route
            .match_path(route_path)
            .map(|params| (function, http, params))
    })
}

/// Checks the key against the function's level; `Err` means 401.
fn authorize(
    state: &HostState,
    level: AuthLevel,
    key: Option<&str>,
) -> Result<Option<KeyMatch>, ()> {
    let matched = key.and_then(|k| state.keys.classify(k));
    match level {
        AuthLevel::Anonymous => Ok(matched),
        AuthLevel::Function if matched.is_some() => Ok(matched),
        AuthLevel::Admin if matched == Some(KeyMatch::Master) => Ok(matched),
        _ => Err(()),
    }
}

/// An HTTP function call: route, key check, body limit, then JSON mode or forwarding.
async fn function_request(state: Arc<HostState>, request: Request<Incoming>) -> HttpResponse {
    let method = request.method().as_str().to_ascii_uppercase();
    let path = request.uri().path().to_string();
    let query = request.uri().query().map(str::to_string);
    let Some(route_path) = strip_prefix(&path, &state.app.host.route_prefix) else {
        return empty(StatusCode::NOT_FOUND);
    };
    let Some((function, http, params)) = find_route(&state, &method, route_path) else {
        return empty(StatusCode::NOT_FOUND);
    };
    let key = presented_key(request.headers(), query.as_deref());
    let Ok(key_match) = authorize(&state, http.auth_level, key.as_deref()) else {
        log::info!(target: "host", "401 for {method} {path}: missing or wrong key for function '{}'", function.name);
        return empty(StatusCode::UNAUTHORIZED);
    };
    let client_request = match read_client_request(request, method, path, query).await {
        Ok(client_request) => client_request,
        Err(response) => return response,
    };
    let forwarding = state.app.host.handler.enable_forwarding && http.forwardable;
    let result = if forwarding {
        state
            .invoke_http_forwarding(function, &client_request)
            .await
    } else {
        state
            .invoke_http_json(function, http, &client_request, &params, key_match.as_ref())
            .await
    };
    to_response(result)
}

/// Collects headers and the body (only when `Content-Length > 0`, as the host reads it).
async fn read_client_request(
    request: Request<Incoming>,
    method: String,
    path: String,
    query: Option<String>,
) -> Result<ClientRequest, HttpResponse> {
    let content_length = request
        .headers()
        .get(hyper::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    if content_length.is_some_and(|len| len > MAX_BODY_BYTES as u64) {
        return Err(too_large());
    }
    let headers: Vec<(String, String)> = request
        .headers()
        .iter()
        .map(|(name, value)| {
            (
                canonical_header_name(name.as_str()),
                String::from_utf8_lossy(value.as_bytes()).into_owned(),
            )
        })
        .collect();
    let body = match Limited::new(request.into_body(), MAX_BODY_BYTES)
        .collect()
        .await
    {
        Ok(collected) => collected.to_bytes(),
        Err(_) => return Err(too_large()),
    };
    let body = match content_length {
        Some(len) if len > 0 => Some(body.to_vec()),
        _ => {
            if !body.is_empty() {
                log::warn!(target: "host", "{method} {path}: body without Content-Length dropped, as the host does");
            }
            None
        }
    };
    Ok(ClientRequest {
        method,
        path,
        query,
        headers,
        body,
    })
}

fn too_large() -> HttpResponse {
    json_response(
        StatusCode::PAYLOAD_TOO_LARGE,
        &json!({"error": format!("request body exceeds the host limit of {MAX_BODY_BYTES} bytes")}),
    )
}

/// Title-Cases a header name (`x-functions-key` → `X-Functions-Key`), Kestrel-like.
pub fn canonical_header_name(name: &str) -> String {
    name.split('-')
        .map(|part| {
            let mut chars = part.chars();
            match chars.next() {
                Some(first) => {
                    first.to_ascii_uppercase().to_string() + &chars.as_str().to_ascii_lowercase()
                }
                None => String::new(),
            }
        })
        .collect::<Vec<_>>()
        .join("-")
}

/// Headers about message framing or the connection, which the emulator sets itself.
fn is_framing_header(name: &str) -> bool {
    [
        "content-length",
        "transfer-encoding",
        "connection",
        "keep-alive",
        "te",
        "upgrade",
    ]
    .iter()
    .any(|h| h.eq_ignore_ascii_case(name))
}

/// Turns the emulator's result into a hyper response, skipping headers hyper cannot carry.
fn to_response(result: HttpResult) -> HttpResponse {
    let mut response = Response::new(Full::new(Bytes::from(result.body)));
    *response.status_mut() =
        StatusCode::from_u16(result.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    for (name, value) in result.headers {
        if is_framing_header(&name) {
            // hyper frames the body itself; a handler-supplied length could contradict it.
            continue;
        }
        let parsed = (
            hyper::header::HeaderName::from_bytes(name.as_bytes()),
            hyper::header::HeaderValue::from_str(&value),
        );
        match parsed {
            (Ok(name), Ok(value)) => {
                response.headers_mut().append(name, value);
            }
            _ => {
                log::warn!(target: "host", "dropped response header '{name}': not a valid HTTP header")
            }
        }
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_names_are_title_cased() {
        assert_eq!(canonical_header_name("x-functions-key"), "X-Functions-Key");
        assert_eq!(canonical_header_name("content-type"), "Content-Type");
        assert_eq!(canonical_header_name("host"), "Host");
    }

    #[test]
    fn prefix_is_stripped_case_insensitively() {
        assert_eq!(strip_prefix("/API/items/1", "api"), Some("/items/1"));
        assert_eq!(strip_prefix("/api", "api"), Some(""));
        assert_eq!(strip_prefix("/apix/1", "api"), None);
        assert_eq!(strip_prefix("/x", ""), Some("/x"));
    }

    #[test]
    fn framing_headers_from_the_handler_are_ignored() {
        let response = to_response(HttpResult {
            status: 201,
            headers: vec![
                ("Content-Length".into(), "999".into()),
                ("X-Ok".into(), "1".into()),
                ("Bad Name".into(), "x".into()),
            ],
            body: b"abc".to_vec(),
        });
        assert_eq!(response.status(), 201);
        assert!(response.headers().get("content-length").is_none());
        assert_eq!(response.headers()["x-ok"], "1");
        assert_eq!(response.headers().len(), 1);
    }

    #[test]
    fn admin_input_is_read() {
        assert_eq!(parse_admin_input(br#"{"input":"go"}"#).unwrap(), "go");
        assert_eq!(parse_admin_input(b"").unwrap(), "");
        assert!(parse_admin_input(b"nope").is_err());
    }
}
