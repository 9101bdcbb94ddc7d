//! `/_emulator/...` test-control endpoints.
//!
//! | method + path | body | answer |
//! |---|---|---|
//! | `GET /_emulator/requests` | | `{"count":N,"requests":[{"protocol","query":{..},"header_names":[..],"status","injected"}]}` (token requests only, oldest first, the last 10 000) |
//! | `DELETE /_emulator/requests` | | `{"count":0}` |
//! | `POST /_emulator/faults` | a rule or an array of rules ([`super::rules`]) | `{"queued":N}` |
//! | `GET` / `DELETE /_emulator/faults` | | `{"queued":N}` |
//! | `POST /_emulator/rotate-keys` | optional `{"drop_old":true}` | `{"kid":"<new current kid>"}` |
//! | `POST /_emulator/mint` | see [`MintRequest`] | `{"access_token":"…","claims":{..}}` |

use std::collections::BTreeMap;

use bytes::Bytes;
use hyper::{Method, Request, StatusCode};
use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::config::IdentityConfig;
use super::server::{IdentityEmulator, method_not_allowed};
use super::token::{self, Validity};
use crate::jwt::SigningKey;
use crate::serve::{HttpResponse, json_response};

/// Audience of a minted token when the request does not set `aud`.
pub const DEFAULT_MINT_AUDIENCE: &str = "https://vault.azure.net";

/// Body of `POST /_emulator/mint`: a normal token for `identity`, then claim overrides.
///
/// ```json
/// {"identity": "system", "lifetime_secs": -60, "kid": "unknown-kid", "unpublished_key": false,
///  "aud": "api://x", "roles": ["A"], "iss": "https://evil/", "exp": null}
/// ```
/// Every key other than `identity`, `lifetime_secs`, `kid`, `unpublished_key` and `claims` is a
/// claim override (a nested `"claims": {..}` object works too and is applied last); a `null`
/// value removes the claim. `lifetime_secs` may be negative for an already expired token.
/// `kid` changes only the header; `unpublished_key: true` signs with a throwaway key that is not
/// in the JWKS. Defaults: the system identity (else the first one), aud [`DEFAULT_MINT_AUDIENCE`],
/// the configured lifetime.
#[derive(Debug, Default, Deserialize)]
pub struct MintRequest {
    /// Name of the configured identity to base the claims on.
    #[serde(default)]
    pub identity: Option<String>,
    /// Token lifetime in seconds (negative: already expired).
    #[serde(default)]
    pub lifetime_secs: Option<i64>,
    /// Header `kid` override.
    #[serde(default)]
    pub kid: Option<String>,
    /// Sign with a key that is not published.
    #[serde(default)]
    pub unpublished_key: bool,
    /// Claim overrides applied after the top-level ones.
    #[serde(default)]
    pub claims: Map<String, Value>,
    /// Top-level claim overrides.
    #[serde(flatten)]
    pub overrides: BTreeMap<String, Value>,
}

#[derive(Debug, Default, Deserialize)]
struct RotateRequest {
    #[serde(default)]
    drop_old: bool,
}

/// Routes one admin request (`path` is the part after `/_emulator/`).
pub fn handle(emulator: &IdentityEmulator, path: &str, request: &Request<Bytes>) -> HttpResponse {
    let method = request.method();
    match path.trim_end_matches('/') {
        "requests" if method == Method::GET => list_requests(emulator),
        "requests" if method == Method::DELETE => clear_requests(emulator),
        "faults" if method == Method::POST => add_faults(emulator, request.body()),
        "faults" if method == Method::GET => queued_faults(emulator),
        "faults" if method == Method::DELETE => clear_faults(emulator),
        "rotate-keys" if method == Method::POST => rotate_keys(emulator, request.body()),
        "mint" if method == Method::POST => mint(emulator, request.body()),
        "requests" | "faults" | "rotate-keys" | "mint" => method_not_allowed(),
        _ => json_response(
            StatusCode::NOT_FOUND,
            &json!({"error": "unknown admin endpoint"}),
        ),
    }
}

fn bad_request(message: &str) -> HttpResponse {
    json_response(StatusCode::BAD_REQUEST, &json!({"error": message}))
}

/// Parses an optional JSON body: empty means the type's default.
fn parse_optional<T: for<'de> Deserialize<'de> + Default>(body: &[u8]) -> Result<T, String> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    serde_json::from_slice(body).map_err(|e| format!("invalid JSON body: {e}"))
}

fn list_requests(emulator: &IdentityEmulator) -> HttpResponse {
    let requests: Vec<Value> = emulator.requests().iter().cloned().collect();
    json_response(
        StatusCode::OK,
        &json!({"count": requests.len(), "requests": requests}),
    )
}

fn clear_requests(emulator: &IdentityEmulator) -> HttpResponse {
    emulator.requests().clear();
    json_response(StatusCode::OK, &json!({"count": 0}))
}

fn add_faults(emulator: &IdentityEmulator, body: &[u8]) -> HttpResponse {
    match emulator.rules().push_json(body) {
        Ok(queued) => json_response(StatusCode::OK, &json!({"queued": queued})),
        Err(message) => bad_request(&message),
    }
}

fn queued_faults(emulator: &IdentityEmulator) -> HttpResponse {
    let queued = emulator.rules().len();
    json_response(StatusCode::OK, &json!({"queued": queued}))
}

fn clear_faults(emulator: &IdentityEmulator) -> HttpResponse {
    emulator.rules().clear();
    json_response(StatusCode::OK, &json!({"queued": 0}))
}

fn rotate_keys(emulator: &IdentityEmulator, body: &[u8]) -> HttpResponse {
    let request: RotateRequest = match parse_optional(body) {
        Ok(request) => request,
        Err(message) => return bad_request(&message),
    };
    match emulator.keys_mut().rotate(request.drop_old) {
        Ok(kid) => json_response(StatusCode::OK, &json!({"kid": kid})),
        Err(error) => json_response(
            StatusCode::INTERNAL_SERVER_ERROR,
            &json!({"error": error.to_string()}),
        ),
    }
}

fn mint(emulator: &IdentityEmulator, body: &[u8]) -> HttpResponse {
    let request: MintRequest = match parse_optional(body) {
        Ok(request) => request,
        Err(message) => return bad_request(&message),
    };
    let Some(identity) = mint_identity(emulator, request.identity.as_deref()) else {
        return bad_request("unknown identity name (or no identity configured)");
    };
    let claims = mint_claims(emulator, identity, &request);
    match sign_minted(emulator, &request, &claims) {
        Ok(access_token) => json_response(
            StatusCode::OK,
            &json!({"access_token": access_token, "claims": claims}),
        ),
        Err(error) => json_response(
            StatusCode::INTERNAL_SERVER_ERROR,
            &json!({"error": error.to_string()}),
        ),
    }
}

fn mint_identity<'a>(
    emulator: &'a IdentityEmulator,
    name: Option<&str>,
) -> Option<&'a IdentityConfig> {
    let identities = &emulator.config.identities;
    match name {
        Some(name) => identities.iter().find(|i| i.name == name),
        None => emulator
            .config
            .system_identity()
            .or_else(|| identities.first()),
    }
}

fn mint_claims(
    emulator: &IdentityEmulator,
    identity: &IdentityConfig,
    request: &MintRequest,
) -> Value {
    let audience = request
        .overrides
        .get("aud")
        .or_else(|| request.claims.get("aud"))
        .and_then(Value::as_str)
        .unwrap_or(DEFAULT_MINT_AUDIENCE);
    let lifetime = request
        .lifetime_secs
        .unwrap_or_else(|| i64::try_from(emulator.config.token_lifetime_secs).unwrap_or(86_400));
    let mut validity = Validity::starting_now(0);
    validity.expires_on = validity.issued_at.saturating_add(lifetime);
    let mut claims = token::claims(&emulator.config.tenant_id, identity, audience, validity);
    let overrides = request.overrides.iter().chain(request.claims.iter());
    if let Value::Object(map) = &mut claims {
        for (name, value) in overrides {
            match value {
                Value::Null => map.remove(name),
                other => map.insert(name.clone(), other.clone()),
            };
        }
    }
    claims
}

fn sign_minted(
    emulator: &IdentityEmulator,
    request: &MintRequest,
    claims: &Value,
) -> Result<String, crate::jwt::JwtError> {
    if request.unpublished_key {
        let throwaway = SigningKey::generate()?;
        let kid = request
            .kid
            .clone()
            .unwrap_or_else(|| throwaway.kid().to_string());
        return throwaway.sign(&kid, claims);
    }
    let keys = emulator.keys();
    let current = keys.current();
    current.sign(request.kid.as_deref().unwrap_or(current.kid()), claims)
}
