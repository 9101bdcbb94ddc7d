//! Request handling: the secrets REST API (challenge, routing, RBAC, bodies and errors shaped
//! like the real service) and the `/_emulator/...` admin endpoints.

use std::collections::BTreeMap;
use std::sync::{Mutex, MutexGuard, PoisonError};

use bytes::Bytes;
use http_body_util::Full;
use hyper::header::{CONTENT_TYPE, HeaderValue, RETRY_AFTER, WWW_AUTHENTICATE};
use hyper::{Method, Response, StatusCode};
use serde::Deserialize;
use serde_json::{Value, json};

use super::admin::{Fault, FaultQueue, FaultSpec, RequestLog, RequestRecord};
use super::auth::{AuthFailure, Caller, TokenValidator, VAULT_AUDIENCE};
use super::config::{Permission, VaultConfig, is_valid_secret_name, is_valid_version};
use super::store::{NewVersion, SecretStore, bundle_json, item_json};

/// Response type of every handler.
pub type HttpResponse = Response<Full<Bytes>>;

/// Shared state of one emulator instance.
pub struct AppState {
    config: VaultConfig,
    store: Mutex<SecretStore>,
    validator: TokenValidator,
    requests: Mutex<RequestLog>,
    faults: Mutex<FaultQueue>,
    fallback_host: String,
}

/// A request with its body already read, as the handlers need it.
#[derive(Debug, Clone)]
pub struct ApiRequest {
    /// HTTP method.
    pub method: Method,
    /// Path without the query.
    pub path: String,
    /// Raw query string.
    pub query: Option<String>,
    /// `Host` header, if present.
    pub host: Option<String>,
    /// `Authorization` header, if present and valid UTF-8.
    pub authorization: Option<String>,
    /// `x-ms-client-request-id` header, if present and valid UTF-8 (recorded, as the real
    /// service records it in its diagnostic logs).
    pub client_request_id: Option<String>,
    /// Request body.
    pub body: Bytes,
}

/// A matched secrets-API operation.
#[derive(Debug, PartialEq, Eq)]
enum Route<'a> {
    Latest(&'a str),
    Version(&'a str, &'a str),
    Versions(&'a str),
    Set(&'a str),
}

/// Why a path did not match an operation.
#[derive(Debug, PartialEq, Eq)]
enum RouteError {
    NotFound,
    MethodNotAllowed,
    BadName(String),
}

/// Body of `PUT /secrets/{name}` (extra fields such as `attributes` are ignored).
#[derive(Debug, Deserialize)]
struct SetSecretBody {
    value: Option<String>,
    #[serde(default, rename = "contentType")]
    content_type: Option<String>,
    #[serde(default)]
    tags: Option<BTreeMap<String, String>>,
}

impl AppState {
    /// State for `config`, validating tokens against `jwks_url`; `fallback_host` is used in
    /// secret ids when a request has no usable `Host` header.
    pub fn new(config: VaultConfig, jwks_url: url::Url, fallback_host: String) -> Self {
        let validator = TokenValidator::new(&config.tenant_id, jwks_url);
        let store = SecretStore::seeded(&config.secrets, unix_now());
        AppState {
            config,
            store: Mutex::new(store),
            validator,
            requests: Mutex::new(RequestLog::default()),
            faults: Mutex::new(FaultQueue::default()),
            fallback_host,
        }
    }
}

/// Handles one request: admin endpoints, or the secrets API with logging and recording.
pub async fn handle(state: &AppState, request: &ApiRequest) -> HttpResponse {
    if request.path == "/_emulator" || request.path.starts_with("/_emulator/") {
        if !crate::loopback::is_loopback_host(request.host.as_deref()) {
            return crate::loopback::refused();
        }
        let response = handle_admin(state, request);
        log::debug!(
            "admin {} {} {}",
            request.method,
            request.path,
            response.status().as_u16()
        );
        return response;
    }
    let (response, caller) = handle_secrets(state, request).await;
    let status = response.status().as_u16();
    let oid = caller
        .as_ref()
        .and_then(|c| c.oid.as_deref())
        .unwrap_or("-");
    log::info!("{} {} {} oid={}", request.method, request.path, status, oid);
    lock(&state.requests).record(RequestRecord {
        method: request.method.to_string(),
        path: request.path.clone(),
        authenticated: caller.is_some(),
        status,
        api_version: api_version(request.query.as_deref()),
        client_request_id: request.client_request_id.clone(),
    });
    response
}

/// Authenticates, then serves the secrets API; returns the caller when the token was valid.
async fn handle_secrets(state: &AppState, request: &ApiRequest) -> (HttpResponse, Option<Caller>) {
    match state
        .validator
        .validate(request.authorization.as_deref())
        .await
    {
        Ok(caller) => (authorized(state, request, &caller), Some(caller)),
        Err(failure) => {
            if failure != AuthFailure::Missing {
                log::info!("token refused: {failure:?}");
            }
            (challenge(&state.config.tenant_id, &failure), None)
        }
    }
}

/// The secrets API for an authenticated caller.
fn authorized(state: &AppState, request: &ApiRequest, caller: &Caller) -> HttpResponse {
    if api_version(request.query.as_deref()).is_none() {
        return kv_error(
            StatusCode::BAD_REQUEST,
            "BadParameter",
            "The api-version query parameter (?api-version=) is required for all requests.",
        );
    }
    let fault = lock(&state.faults).next();
    let delay = fault
        .as_ref()
        .map(|f| crate::serve::DelayAnswer(std::time::Duration::from_millis(f.delay_ms)));
    if let Some(fault) = fault.filter(|f| f.reset || f.status.is_some()) {
        let mut response = fault_response(fault);
        if let Some(delay) = delay {
            response.extensions_mut().insert(delay);
        }
        return response;
    }
    let mut response = serve_authorized(state, request, caller);
    if let Some(delay) = delay {
        response.extensions_mut().insert(delay);
    }
    response
}

/// The secrets API once faults are out of the way.
fn serve_authorized(state: &AppState, request: &ApiRequest, caller: &Caller) -> HttpResponse {
    let route = match parse_route(&request.method, &request.path) {
        Ok(route) => route,
        Err(error) => return route_error(error),
    };
    let (name, permission) = match route {
        Route::Latest(name) | Route::Version(name, _) => (name, Permission::Get),
        Route::Versions(name) => (name, Permission::List),
        Route::Set(name) => (name, Permission::Set),
    };
    if !state.config.allows(caller.oid.as_deref(), permission, name) {
        return forbidden(caller, permission, name);
    }
    let host = request_host(request, &state.fallback_host);
    match route {
        Route::Latest(name) => get_latest(state, &host, name),
        Route::Version(name, version) => get_version(state, &host, name, version),
        Route::Versions(name) => list_versions(state, &host, name),
        Route::Set(name) => set_secret(state, &host, name, &request.body),
    }
}

fn get_latest(state: &AppState, host: &str, name: &str) -> HttpResponse {
    match lock(&state.store).latest(name) {
        Some((stored, secret)) => json_response(StatusCode::OK, &bundle_json(host, stored, secret)),
        None => secret_not_found(name),
    }
}

fn get_version(state: &AppState, host: &str, name: &str, version: &str) -> HttpResponse {
    let store = lock(&state.store);
    let found = is_valid_version(version)
        .then(|| store.version(name, version))
        .flatten();
    match found {
        Some((stored, secret)) => json_response(StatusCode::OK, &bundle_json(host, stored, secret)),
        None => secret_not_found(&format!("{name}/{version}")),
    }
}

fn list_versions(state: &AppState, host: &str, name: &str) -> HttpResponse {
    match lock(&state.store).versions(name) {
        Some((stored, versions)) => {
            let items: Vec<Value> = versions
                .iter()
                .map(|v| item_json(host, stored, v))
                .collect();
            json_response(StatusCode::OK, &json!({"value": items, "nextLink": null}))
        }
        None => secret_not_found(name),
    }
}

fn set_secret(state: &AppState, host: &str, name: &str, body: &[u8]) -> HttpResponse {
    let parsed: SetSecretBody = match serde_json::from_slice(body) {
        Ok(parsed) => parsed,
        Err(_) => {
            return kv_error(
                StatusCode::BAD_REQUEST,
                "BadParameter",
                "The request body is not valid JSON for a secret.",
            );
        }
    };
    let Some(value) = parsed.value else {
        return kv_error(
            StatusCode::BAD_REQUEST,
            "BadParameter",
            "Property 'value' is required.",
        );
    };
    let new = NewVersion {
        value,
        content_type: parsed.content_type,
        tags: parsed.tags.unwrap_or_default(),
    };
    let (stored, secret) = lock(&state.store).set(name, new, unix_now());
    json_response(StatusCode::OK, &bundle_json(host, &stored, &secret))
}

/// Matches `/secrets/{name}[/]`, `/secrets/{name}/versions` and `/secrets/{name}/{version}`.
fn parse_route<'a>(method: &Method, path: &'a str) -> Result<Route<'a>, RouteError> {
    let rest = path.strip_prefix("/secrets/").ok_or(RouteError::NotFound)?;
    let rest = rest.strip_suffix('/').unwrap_or(rest);
    let segments: Vec<&str> = rest.split('/').collect();
    let name = segments.first().copied().unwrap_or_default();
    if !is_valid_secret_name(name) {
        return Err(RouteError::BadName(name.to_string()));
    }
    match (segments.as_slice(), method) {
        ([_], &Method::GET) => Ok(Route::Latest(name)),
        ([_], &Method::PUT) => Ok(Route::Set(name)),
        ([_, "versions"], &Method::GET) => Ok(Route::Versions(name)),
        ([_, ""], _) => Err(RouteError::NotFound),
        ([_, version], &Method::GET) => Ok(Route::Version(name, version)),
        ([_] | [_, _], _) => Err(RouteError::MethodNotAllowed),
        _ => Err(RouteError::NotFound),
    }
}

fn route_error(error: RouteError) -> HttpResponse {
    match error {
        RouteError::NotFound => kv_error(
            StatusCode::NOT_FOUND,
            "NotFound",
            "The requested operation is not supported by this emulator.",
        ),
        RouteError::MethodNotAllowed => kv_error(
            StatusCode::METHOD_NOT_ALLOWED,
            "MethodNotAllowed",
            "The HTTP method is not allowed for this resource.",
        ),
        RouteError::BadName(name) => kv_error(
            StatusCode::BAD_REQUEST,
            "BadParameter",
            &format!("The request URI contains an invalid name: {name}"),
        ),
    }
}

/// Admin endpoints under `/_emulator/`.
fn handle_admin(state: &AppState, request: &ApiRequest) -> HttpResponse {
    match (&request.method, request.path.as_str()) {
        (&Method::GET, "/_emulator/requests") => {
            json_response(StatusCode::OK, &lock(&state.requests).to_json())
        }
        (&Method::DELETE, "/_emulator/requests") => {
            lock(&state.requests).clear();
            empty_response(StatusCode::NO_CONTENT)
        }
        (&Method::POST, "/_emulator/faults") => queue_fault(state, &request.body),
        (&Method::DELETE, "/_emulator/faults") => {
            lock(&state.faults).clear();
            empty_response(StatusCode::NO_CONTENT)
        }
        _ => json_response(
            StatusCode::NOT_FOUND,
            &json!({"error": "unknown admin endpoint"}),
        ),
    }
}

fn queue_fault(state: &AppState, body: &[u8]) -> HttpResponse {
    let queued = serde_json::from_slice::<FaultSpec>(body)
        .map_err(|e| format!("invalid fault: {e}"))
        .and_then(FaultSpec::into_fault)
        .and_then(|fault| lock(&state.faults).push(fault));
    match queued {
        Ok(pending) => json_response(StatusCode::OK, &json!({"pending": pending})),
        Err(message) => json_response(StatusCode::BAD_REQUEST, &json!({"error": message})),
    }
}

fn fault_response(fault: Fault) -> HttpResponse {
    if fault.reset {
        return crate::serve::close_without_answer();
    }
    let status = fault
        .status
        .and_then(|s| StatusCode::from_u16(s).ok())
        .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut response = json_response(status, &fault.body);
    if let Some(value) = fault
        .retry_after
        .and_then(|v| HeaderValue::from_str(&v).ok())
    {
        response.headers_mut().insert(RETRY_AFTER, value);
    }
    response
}

/// 401 with Key Vault's challenge and the reason in the body.
fn challenge(tenant: &str, failure: &AuthFailure) -> HttpResponse {
    let mut response = kv_error(StatusCode::UNAUTHORIZED, "Unauthorized", failure.message());
    let header = format!(
        "Bearer authorization=\"https://login.microsoftonline.com/{tenant}\", resource=\"{VAULT_AUDIENCE}\""
    );
    if let Ok(value) = HeaderValue::from_str(&header) {
        response.headers_mut().insert(WWW_AUTHENTICATE, value);
    }
    response
}

/// 403 in the RBAC shape (`Forbidden` / `ForbiddenByRbac`).
fn forbidden(caller: &Caller, permission: Permission, name: &str) -> HttpResponse {
    let message = format!(
        "Caller is not authorized to perform action on resource.\r\n\
         If role assignments, deny assignments or role definitions were changed recently, please observe propagation time.\r\n\
         Caller: oid={}\r\nAction: '{}'\r\nResource: 'secrets/{}'\r\nAssignment: (not found)\r\nVault: emulator\r\n",
        caller.oid.as_deref().unwrap_or("(none)"),
        permission.rbac_action(),
        name.to_ascii_lowercase(),
    );
    let body = json!({"error": {"code": "Forbidden", "message": message, "innererror": {"code": "ForbiddenByRbac"}}});
    json_response(StatusCode::FORBIDDEN, &body)
}

fn secret_not_found(name_or_id: &str) -> HttpResponse {
    kv_error(
        StatusCode::NOT_FOUND,
        "SecretNotFound",
        &format!(
            "A secret with (name/id) {name_or_id} was not found in this key vault. \
             If you recently deleted this secret you may be able to recover it using the correct recovery command. \
             For help resolving this issue, please see https://go.microsoft.com/fwlink/?linkid=2125182"
        ),
    )
}

fn kv_error(status: StatusCode, code: &str, message: &str) -> HttpResponse {
    json_response(
        status,
        &json!({"error": {"code": code, "message": message}}),
    )
}

fn json_response(status: StatusCode, body: &Value) -> HttpResponse {
    let mut response = Response::new(Full::new(Bytes::from(body.to_string())));
    *response.status_mut() = status;
    response.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("application/json; charset=utf-8"),
    );
    response
}

fn empty_response(status: StatusCode) -> HttpResponse {
    let mut response = Response::new(Full::new(Bytes::new()));
    *response.status_mut() = status;
    response
}

/// The `api-version` query value, if present and non-empty.
fn api_version(query: Option<&str>) -> Option<String> {
    url::form_urlencoded::parse(query?.as_bytes())
        .find(|(key, _)| key == "api-version")
        .map(|(_, value)| value.into_owned())
        .filter(|value| !value.is_empty())
}

/// The host (and port) to put in secret ids: the request's `Host` when it looks sane.
fn request_host(request: &ApiRequest, fallback: &str) -> String {
    request
        .host
        .as_deref()
        .filter(|h| {
            !h.is_empty()
                && h.len() <= 255
                && h.chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':' | '[' | ']'))
        })
        .unwrap_or(fallback)
        .to_string()
}

/// Locks a mutex, recovering the data if a previous holder panicked.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_match_the_real_paths() {
        let v = "0123456789abcdef0123456789abcdef";
        assert_eq!(
            parse_route(&Method::GET, "/secrets/a"),
            Ok(Route::Latest("a"))
        );
        assert_eq!(
            parse_route(&Method::GET, "/secrets/a/"),
            Ok(Route::Latest("a"))
        );
        assert_eq!(parse_route(&Method::PUT, "/secrets/a"), Ok(Route::Set("a")));
        assert_eq!(
            parse_route(&Method::GET, "/secrets/a/versions"),
            Ok(Route::Versions("a"))
        );
        let with_version = format!("/secrets/a/{v}");
        assert_eq!(
            parse_route(&Method::GET, &with_version),
            Ok(Route::Version("a", v))
        );
        assert_eq!(
            parse_route(&Method::DELETE, "/secrets/a"),
            Err(RouteError::MethodNotAllowed)
        );
        assert_eq!(
            parse_route(&Method::GET, "/keys/a"),
            Err(RouteError::NotFound)
        );
        assert_eq!(
            parse_route(&Method::GET, "/secrets/a/b/c"),
            Err(RouteError::NotFound)
        );
        assert_eq!(
            parse_route(&Method::GET, "/secrets/a_b"),
            Err(RouteError::BadName("a_b".into()))
        );
        assert_eq!(
            parse_route(&Method::GET, "/secrets/"),
            Err(RouteError::BadName(String::new()))
        );
        assert_eq!(
            parse_route(&Method::GET, "/secrets//x"),
            Err(RouteError::BadName(String::new()))
        );
    }

    #[test]
    fn api_version_must_be_present_and_non_empty() {
        assert_eq!(api_version(Some("api-version=7.4")), Some("7.4".into()));
        assert_eq!(
            api_version(Some("x=1&api-version=2026-04-01")),
            Some("2026-04-01".into())
        );
        assert_eq!(api_version(Some("api-version=")), None);
        assert_eq!(api_version(None), None);
    }

    #[test]
    fn host_header_is_used_only_when_sane() {
        let mut request = ApiRequest {
            method: Method::GET,
            path: "/".into(),
            query: None,
            host: Some("myvault.vault.azure.net:8443".into()),
            authorization: None,
            client_request_id: None,
            body: Bytes::new(),
        };
        assert_eq!(request_host(&request, "fb"), "myvault.vault.azure.net:8443");
        request.host = Some("evil/\"x".into());
        assert_eq!(request_host(&request, "fb"), "fb");
        request.host = None;
        assert_eq!(request_host(&request, "fb"), "fb");
    }

    #[test]
    fn challenge_names_tenant_and_resource() {
        let response = challenge("t1", &AuthFailure::Missing);
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(
            response.headers()[WWW_AUTHENTICATE],
            "Bearer authorization=\"https://login.microsoftonline.com/t1\", resource=\"https://vault.azure.net\""
        );
    }
}
