//! The identity emulator's shared state, routing and token-request flow.

use std::collections::VecDeque;
use std::sync::{Mutex, MutexGuard, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::Duration;

use bytes::Bytes;
use hyper::header::{CONTENT_TYPE, HeaderValue, RETRY_AFTER};
use hyper::{HeaderMap, Method, Request, StatusCode};
use log::info;
use serde_json::{Map, Value, json};

use super::config::Config;
use super::protocol::{
    self, Endpoint, Protocol, Rejection, check_guard_header, describe_selector, resolve_target,
};
use super::rules::{Effect, RuleQueue};
use super::token::{self, ExpiresOnFormat, Validity};
use super::{admin, authority};
use crate::jwt::KeyRing;
use crate::serve::{Handler, HttpResponse, json_response, query_pairs, text_response};

/// The request log keeps only this many most recent token requests (a long local-stack run
/// must not grow without bound).
pub const MAX_RECORDED_REQUESTS: usize = 10_000;

/// Everything the emulator knows; shared by all connections.
#[derive(Debug)]
pub struct IdentityEmulator {
    pub(super) config: Config,
    pub(super) secret: String,
    pub(super) base_url: String,
    keys: RwLock<KeyRing>,
    rules: Mutex<RuleQueue>,
    requests: Mutex<VecDeque<Value>>,
}

/// Locks a mutex, ignoring poisoning (the data stays usable for an emulator).
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl IdentityEmulator {
    /// A new emulator state.
    pub fn new(config: Config, secret: String, base_url: String, keys: KeyRing) -> Self {
        Self {
            config,
            secret,
            base_url,
            keys: RwLock::new(keys),
            rules: Mutex::new(RuleQueue::default()),
            requests: Mutex::new(VecDeque::new()),
        }
    }

    pub(super) fn keys(&self) -> RwLockReadGuard<'_, KeyRing> {
        self.keys.read().unwrap_or_else(PoisonError::into_inner)
    }

    pub(super) fn keys_mut(&self) -> RwLockWriteGuard<'_, KeyRing> {
        self.keys.write().unwrap_or_else(PoisonError::into_inner)
    }

    pub(super) fn rules(&self) -> MutexGuard<'_, RuleQueue> {
        lock(&self.rules)
    }

    pub(super) fn requests(&self) -> MutexGuard<'_, VecDeque<Value>> {
        lock(&self.requests)
    }

    async fn token_request(&self, endpoint: Endpoint, request: &Request<Bytes>) -> HttpResponse {
        let query = query_pairs(request);
        let (protocol, response, injected) = self
            .token_outcome(endpoint, request.headers(), &query)
            .await;
        let status = response.status();
        info!(
            "{} resource={} selector={} -> {}",
            protocol.name(),
            loggable(first(&query, "resource").unwrap_or("(none)")),
            loggable(&describe_selector(&query)),
            status.as_u16()
        );
        self.record(protocol, &query, request.headers(), status, injected);
        response
    }

    /// Decides the answer: api-version, guard header, then a queued rule or a token.
    async fn token_outcome(
        &self,
        endpoint: Endpoint,
        headers: &HeaderMap,
        query: &[(String, String)],
    ) -> (Protocol, HttpResponse, bool) {
        let protocol = match endpoint.protocol(first(query, "api-version")) {
            Ok(protocol) => protocol,
            Err(rejection) => return (endpoint.guess_protocol(headers), reject(rejection), false),
        };
        if let Err(rejection) = check_guard_header(protocol, headers, &self.secret) {
            return (protocol, reject(rejection), false);
        }
        let effect = self.rules().take(protocol);
        let response = match &effect {
            Some(effect) => self.apply_effect(endpoint, protocol, query, effect).await,
            None => self.issue(protocol, query, &Effect::default()),
        };
        (protocol, response, effect.is_some())
    }

    async fn apply_effect(
        &self,
        endpoint: Endpoint,
        protocol: Protocol,
        query: &[(String, String)],
        effect: &Effect,
    ) -> HttpResponse {
        if effect.delay_ms > 0 {
            tokio::time::sleep(Duration::from_millis(effect.delay_ms)).await;
        }
        if effect.reset {
            return crate::serve::close_without_answer();
        }
        if let Some(status) = effect.status {
            return injected_response(protocol, status, effect);
        }
        if effect.unsupported_api_version {
            return reject(protocol::unsupported_api_version(
                endpoint,
                first(query, "api-version"),
            ));
        }
        self.issue(protocol, query, effect)
    }

    /// Issues a token for a request that passed the guard check.
    fn issue(
        &self,
        protocol: Protocol,
        query: &[(String, String)],
        effect: &Effect,
    ) -> HttpResponse {
        let target = match resolve_target(protocol, query, &self.config) {
            Ok(target) => target,
            Err(rejection) => return reject(rejection),
        };
        let lifetime = effect
            .lifetime_secs
            .unwrap_or(self.config.token_lifetime_secs);
        let validity = Validity::starting_now(lifetime);
        let claims = token::claims(
            &self.config.tenant_id,
            target.identity,
            &target.resource,
            validity,
        );
        let access_token = match self.keys().sign(&claims) {
            Ok(token) => token,
            Err(error) => {
                return text_response(StatusCode::INTERNAL_SERVER_ERROR, &error.to_string());
            }
        };
        if effect.malformed {
            return malformed_response();
        }
        let format = effect
            .expires_on_format
            .unwrap_or_else(|| self.default_format(protocol));
        let body = token::success_body(
            protocol,
            &access_token,
            &target.resource,
            &target.identity.client_id,
            validity,
            format,
        );
        json_response(StatusCode::OK, &body)
    }

    fn default_format(&self, protocol: Protocol) -> ExpiresOnFormat {
        match protocol {
            Protocol::Legacy2017 => self
                .config
                .legacy_expires_on_format
                .unwrap_or(ExpiresOnFormat::EpochString),
            _ => ExpiresOnFormat::EpochString,
        }
    }

    /// Appends to the request log: protocol, query parameters, header names and status
    /// (never header values, so neither the secret nor anything else sensitive).
    fn record(
        &self,
        protocol: Protocol,
        query: &[(String, String)],
        headers: &HeaderMap,
        status: StatusCode,
        injected: bool,
    ) {
        let mut header_names: Vec<&str> = headers.keys().map(|name| name.as_str()).collect();
        header_names.sort_unstable();
        header_names.dedup();
        let query: Map<String, Value> = query
            .iter()
            .map(|(name, value)| (name.clone(), Value::String(value.clone())))
            .collect();
        let mut requests = self.requests();
        if requests.len() >= MAX_RECORDED_REQUESTS {
            requests.pop_front();
        }
        requests.push_back(json!({
            "protocol": protocol.name(),
            "query": query,
            "header_names": header_names,
            "status": status.as_u16(),
            "injected": injected,
        }));
    }
}

impl Handler for IdentityEmulator {
    async fn handle(&self, request: Request<Bytes>) -> HttpResponse {
        let path = request.uri().path().to_string();
        if let Some(endpoint) = Endpoint::from_path(&path) {
            if request.method() != Method::GET {
                return method_not_allowed();
            }
            return self.token_request(endpoint, &request).await;
        }
        if let Some(admin_path) = path.strip_prefix("/_emulator/") {
            let host = crate::loopback::host_header(request.headers());
            if !crate::loopback::is_loopback_host(host) {
                return crate::loopback::refused();
            }
            return admin::handle(self, admin_path, &request);
        }
        if request.method() == Method::GET
            && let Some(response) = authority::handle(self, &path)
        {
            // Tests count discovery and key fetches by these lines (a validator must refetch
            // keys once per rotation, not once per request).
            info!(
                "authority {} -> {}",
                loggable(&path),
                response.status().as_u16()
            );
            return response;
        }
        json_response(
            StatusCode::NOT_FOUND,
            &json!({"error": "not_found", "path": path}),
        )
    }
}

/// Longest request-controlled text put in a log line.
const MAX_LOGGED_CHARS: usize = 200;

/// Request-controlled text made safe for one log line: control characters escaped, length capped.
fn loggable(text: &str) -> String {
    let mut shown: String = text
        .chars()
        .take(MAX_LOGGED_CHARS)
        .flat_map(char::escape_default)
        .collect();
    if text.chars().count() > MAX_LOGGED_CHARS {
        shown.push_str("...");
    }
    shown
}

/// The first value of query parameter `name`.
pub(super) fn first<'a>(query: &'a [(String, String)], name: &str) -> Option<&'a str> {
    query
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.as_str())
}

fn reject(rejection: Rejection) -> HttpResponse {
    json_response(rejection.status, &rejection.body)
}

/// 405 for a method an endpoint does not serve.
pub(super) fn method_not_allowed() -> HttpResponse {
    json_response(
        StatusCode::METHOD_NOT_ALLOWED,
        &json!({"error": "method_not_allowed"}),
    )
}

/// The answer of a rule with `status`: its body (JSON or text) or the platform's error shape.
fn injected_response(protocol: Protocol, status: StatusCode, effect: &Effect) -> HttpResponse {
    let mut response = match &effect.body {
        Some(body) => raw_body_response(status, body),
        None => reject(default_fault_body(protocol, status)),
    };
    if let Some(retry_after) = &effect.retry_after {
        response
            .headers_mut()
            .insert(RETRY_AFTER, retry_after.clone());
    }
    response
}

fn raw_body_response(status: StatusCode, body: &str) -> HttpResponse {
    match serde_json::from_str::<Value>(body) {
        Ok(json) => json_response(status, &json),
        Err(_) => text_response(status, body),
    }
}

fn default_fault_body(protocol: Protocol, status: StatusCode) -> Rejection {
    let reason = status.canonical_reason().unwrap_or("injected fault");
    match protocol {
        Protocol::Imds => protocol::imds_error(status, "unknown", reason),
        _ => protocol::app_service_error(status, reason),
    }
}

fn malformed_response() -> HttpResponse {
    let mut response = text_response(
        StatusCode::OK,
        "<html><body><h1>Gateway page, not a token</h1></body></html>",
    );
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("text/html"));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_fields_cannot_forge_lines_or_flood() {
        assert_eq!(
            loggable("https://vault.azure.net"),
            "https://vault.azure.net"
        );
        assert!(!loggable("a\n[INFO] forged").contains('\n'));
        assert!(loggable(&"x".repeat(5000)).len() < 300);
    }
}
