//! Bearer-token validation the way Key Vault does it: RS256 only, signature against the JWKS,
//! audience `https://vault.azure.net[/]`, the tenant's issuer, `exp`/`nbf` with a small skew.
//! Keys are fetched from the JWKS URL lazily, cached, and refetched (rate-limited) when a token
//! names an unknown `kid`.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use jsonwebtoken::{Algorithm, DecodingKey, Validation, errors::ErrorKind};
use serde::Deserialize;
use serde_json::Value;
use tokio::sync::Mutex;

/// The audience Key Vault accepts (also with a trailing slash).
pub const VAULT_AUDIENCE: &str = "https://vault.azure.net";
/// Clock skew allowed on `exp` and `nbf`.
const LEEWAY_SECS: u64 = 60;
/// Cached keys are refreshed after this long.
const KEYS_TTL: Duration = Duration::from_secs(600);
/// An unknown kid triggers at most one refetch in this window.
const MISS_MEMORY: Duration = Duration::from_secs(60);
/// At most this many unknown-kid refetches per `MISS_MEMORY` window overall.
const REFETCH_BUDGET: usize = 10;
/// Timeout for one JWKS request.
const FETCH_TIMEOUT: Duration = Duration::from_secs(5);
/// Largest JWKS document accepted.
const MAX_JWKS_BYTES: usize = 1 << 20;

/// The authenticated caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// The token's `oid` claim, when present.
    pub oid: Option<String>,
}

/// Why a token was refused; each maps to a 401 with a fresh challenge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthFailure {
    /// No `Authorization: Bearer` header.
    Missing,
    /// Not a decodable JWT or a required claim is missing.
    Malformed,
    /// `alg` other than RS256 (none, HS*, ...).
    UnsupportedAlgorithm,
    /// No key with that `kid` in the JWKS.
    UnknownKey,
    /// The JWKS could not be fetched.
    KeysUnavailable,
    /// Signature does not verify.
    BadSignature,
    /// Wrong `aud`.
    Audience,
    /// Wrong `iss`.
    Issuer,
    /// `exp` in the past.
    Expired,
    /// `nbf` in the future.
    NotYetValid,
}

impl AuthFailure {
    /// The message of the 401 body; never echoes the token.
    pub fn message(&self) -> &'static str {
        match self {
            AuthFailure::Missing => "AKV10000: Request is missing a Bearer or PoP token.",
            AuthFailure::Malformed => "AKV10000: The bearer token is malformed.",
            AuthFailure::UnsupportedAlgorithm => "The token signing algorithm is not supported.",
            AuthFailure::UnknownKey | AuthFailure::KeysUnavailable => {
                "AKV10046: Unable to resolve the key used for signature validation."
            }
            AuthFailure::BadSignature => "Signature validation failed.",
            AuthFailure::Audience => {
                "AKV10022: Invalid audience. Expected https://vault.azure.net."
            }
            AuthFailure::Issuer => "AKV10032: Invalid issuer.",
            AuthFailure::Expired => "[TokenExpired] Error validating token: 'S2S12086'.",
            AuthFailure::NotYetValid => "Token not yet valid.",
        }
    }
}

/// Claims the validator reads beyond what jsonwebtoken checks.
#[derive(Debug, Deserialize)]
struct Claims {
    #[serde(default)]
    aud: Option<Value>,
    #[serde(default)]
    iss: Option<String>,
    #[serde(default)]
    oid: Option<String>,
}

/// Validates bearer tokens for one tenant against one JWKS.
pub struct TokenValidator {
    tenant: String,
    jwks: JwksCache,
}

impl TokenValidator {
    /// A validator for `tenant` with keys from `jwks_url`.
    pub fn new(tenant: &str, jwks_url: url::Url) -> Self {
        TokenValidator {
            tenant: tenant.to_ascii_lowercase(),
            jwks: JwksCache::new(jwks_url),
        }
    }

    /// Validates the raw `Authorization` header value.
    pub async fn validate(&self, authorization: Option<&str>) -> Result<Caller, AuthFailure> {
        let token = bearer_token(authorization).ok_or(AuthFailure::Missing)?;
        let header = jsonwebtoken::decode_header(token).map_err(|_| AuthFailure::Malformed)?;
        if header.alg != Algorithm::RS256 {
            return Err(AuthFailure::UnsupportedAlgorithm);
        }
        let kid = header.kid.ok_or(AuthFailure::UnknownKey)?;
        let key = self.jwks.key_for(&kid).await?;
        let claims = verify_signature_and_lifetime(token, &key)?;
        check_audience(claims.aud.as_ref())?;
        self.check_issuer(claims.iss.as_deref())?;
        Ok(Caller { oid: claims.oid })
    }

    fn check_issuer(&self, iss: Option<&str>) -> Result<(), AuthFailure> {
        let iss = iss.ok_or(AuthFailure::Issuer)?.to_ascii_lowercase();
        let v1 = format!("https://sts.windows.net/{}/", self.tenant);
        let v2 = format!("https://login.microsoftonline.com/{}/v2.0", self.tenant);
        if iss == v1 || iss == v2 {
            Ok(())
        } else {
            Err(AuthFailure::Issuer)
        }
    }
}

/// The token of a `Bearer` authorization header (scheme case-insensitive).
fn bearer_token(authorization: Option<&str>) -> Option<&str> {
    let (scheme, token) = authorization?.trim().split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

fn verify_signature_and_lifetime(token: &str, key: &DecodingKey) -> Result<Claims, AuthFailure> {
    let mut validation = Validation::new(Algorithm::RS256);
    validation.leeway = LEEWAY_SECS;
    validation.validate_nbf = true;
    validation.validate_aud = false;
    validation.set_required_spec_claims(&["exp"]);
    match jsonwebtoken::decode::<Claims>(token, key, &validation) {
        Ok(data) => Ok(data.claims),
        Err(e) => Err(match e.kind() {
            ErrorKind::InvalidSignature => AuthFailure::BadSignature,
            ErrorKind::ExpiredSignature => AuthFailure::Expired,
            ErrorKind::ImmatureSignature => AuthFailure::NotYetValid,
            ErrorKind::InvalidAlgorithm => AuthFailure::UnsupportedAlgorithm,
            _ => AuthFailure::Malformed,
        }),
    }
}

fn check_audience(aud: Option<&Value>) -> Result<(), AuthFailure> {
    let accepted = |a: &str| a == VAULT_AUDIENCE || a.strip_suffix('/') == Some(VAULT_AUDIENCE);
    let ok = match aud {
        Some(Value::String(a)) => accepted(a),
        Some(Value::Array(items)) => items.iter().filter_map(Value::as_str).any(accepted),
        _ => false,
    };
    ok.then_some(()).ok_or(AuthFailure::Audience)
}

/// JWKS document shape (only RSA fields are read).
#[derive(Debug, Deserialize)]
struct JwksDocument {
    #[serde(default)]
    keys: Vec<JwkEntry>,
}

#[derive(Debug, Deserialize)]
struct JwkEntry {
    #[serde(default)]
    kty: String,
    #[serde(default)]
    kid: Option<String>,
    #[serde(default, rename = "use")]
    key_use: Option<String>,
    #[serde(default)]
    alg: Option<String>,
    #[serde(default)]
    n: Option<String>,
    #[serde(default)]
    e: Option<String>,
}

/// Cached signing keys plus the bookkeeping that rate-limits refetches.
#[derive(Default)]
struct CacheState {
    keys: HashMap<String, Arc<DecodingKey>>,
    fetched_at: Option<Instant>,
    recent_misses: HashMap<String, Instant>,
    refetches: VecDeque<Instant>,
}

/// Fetches and caches the JWKS; one fetch at a time.
struct JwksCache {
    url: url::Url,
    client: Option<reqwest::Client>,
    state: Mutex<CacheState>,
}

impl JwksCache {
    fn new(url: url::Url) -> Self {
        let client = reqwest::Client::builder()
            .timeout(FETCH_TIMEOUT)
            .connect_timeout(FETCH_TIMEOUT)
            .no_proxy()
            .build()
            .map_err(|e| log::error!("cannot build the JWKS HTTP client: {e}"))
            .ok();
        JwksCache {
            url,
            client,
            state: Mutex::new(CacheState::default()),
        }
    }

    /// The key named `kid`, fetching the JWKS when the cache is stale or lacks it.
    async fn key_for(&self, kid: &str) -> Result<Arc<DecodingKey>, AuthFailure> {
        let mut state = self.state.lock().await;
        let now = Instant::now();
        let stale = state
            .fetched_at
            .is_none_or(|at| now.duration_since(at) > KEYS_TTL);
        if !stale && let Some(key) = state.keys.get(kid) {
            return Ok(key.clone());
        }
        if !stale && !state.may_refetch_for(kid, now) {
            return Err(AuthFailure::UnknownKey);
        }
        if !stale {
            state.refetches.push_back(now);
        }
        match self.fetch().await {
            Ok(keys) => {
                state.keys = keys;
                state.fetched_at = Some(now);
            }
            Err(reason) => {
                log::warn!("JWKS fetch from {} failed: {reason}", self.url);
                if state.keys.is_empty() {
                    return Err(AuthFailure::KeysUnavailable);
                }
            }
        }
        match state.keys.get(kid) {
            Some(key) => Ok(key.clone()),
            None => {
                state.recent_misses.insert(kid.to_string(), now);
                Err(AuthFailure::UnknownKey)
            }
        }
    }

    async fn fetch(&self) -> Result<HashMap<String, Arc<DecodingKey>>, String> {
        let client = self.client.as_ref().ok_or("no HTTP client")?;
        let response = client
            .get(self.url.clone())
            .send()
            .await
            .map_err(|e| e.to_string())?;
        if !response.status().is_success() {
            return Err(format!("status {}", response.status()));
        }
        let body = response.bytes().await.map_err(|e| e.to_string())?;
        if body.len() > MAX_JWKS_BYTES {
            return Err("JWKS too large".into());
        }
        let document: JwksDocument = serde_json::from_slice(&body).map_err(|e| e.to_string())?;
        Ok(decoding_keys(document))
    }
}

impl CacheState {
    /// Whether an unknown `kid` may trigger a refetch now (per-kid memory and a global budget).
    fn may_refetch_for(&mut self, kid: &str, now: Instant) -> bool {
        self.recent_misses
            .retain(|_, at| now.duration_since(*at) < MISS_MEMORY);
        while self
            .refetches
            .front()
            .is_some_and(|at| now.duration_since(*at) >= MISS_MEMORY)
        {
            self.refetches.pop_front();
        }
        !self.recent_misses.contains_key(kid) && self.refetches.len() < REFETCH_BUDGET
    }
}

/// RS256-capable keys of a JWKS by kid; other keys are skipped.
fn decoding_keys(document: JwksDocument) -> HashMap<String, Arc<DecodingKey>> {
    document
        .keys
        .into_iter()
        .filter(|k| k.kty == "RSA")
        .filter(|k| k.key_use.as_deref().is_none_or(|u| u == "sig"))
        .filter(|k| k.alg.as_deref().is_none_or(|a| a == "RS256"))
        .filter_map(|k| {
            let key = DecodingKey::from_rsa_components(k.n.as_deref()?, k.e.as_deref()?).ok()?;
            Some((k.kid?, Arc::new(key)))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_scheme_is_case_insensitive_and_required() {
        assert_eq!(bearer_token(Some("Bearer abc")), Some("abc"));
        assert_eq!(bearer_token(Some("bearer  abc ")), Some("abc"));
        assert_eq!(bearer_token(Some("Basic abc")), None);
        assert_eq!(bearer_token(Some("Bearer")), None);
        assert_eq!(bearer_token(None), None);
    }

    #[test]
    fn audience_with_or_without_slash_only() {
        assert!(check_audience(Some(&Value::from("https://vault.azure.net"))).is_ok());
        assert!(check_audience(Some(&Value::from("https://vault.azure.net/"))).is_ok());
        assert!(check_audience(Some(&serde_json::json!(["x", "https://vault.azure.net"]))).is_ok());
        for bad in [
            "https://vault.azure.net//",
            "https://storage.azure.com",
            "https://x.vault.azure.net",
        ] {
            assert!(check_audience(Some(&Value::from(bad))).is_err(), "{bad}");
        }
        assert!(check_audience(None).is_err());
    }

    #[test]
    fn refetch_budget_and_miss_memory() {
        let mut state = CacheState::default();
        let now = Instant::now();
        assert!(state.may_refetch_for("a", now));
        state.recent_misses.insert("a".into(), now);
        assert!(!state.may_refetch_for("a", now));
        assert!(state.may_refetch_for("b", now));
        for _ in 0..REFETCH_BUDGET {
            state.refetches.push_back(now);
        }
        assert!(!state.may_refetch_for("c", now));
    }

    #[test]
    fn jwks_parsing_skips_unusable_keys() {
        let document: JwksDocument = serde_json::from_value(serde_json::json!({"keys": [
            {"kty": "RSA", "kid": "good", "n": "sXchDaQebHnPiGvyDOAT4saGEUetSyo9MKLOoWFsueri23bOdgWp4Dy1WlUzewbgBHod5pcM9H95GQRV3JDXboIRROSBigeC5yjU1hGzHHyXss8UDprecbAYxknTcQkhslANGRUZmdTOQ5qTRsLAt6BTYuyvVRdhS8exSZEy_c4gs_7svlJJQ4H9_NxsiIoLwAEk7-Q3UXERGYw_75IDrGA84-lA_-Ct4eTlXHBIY2EaV7t7LjJaynVJCpkv4LKjTTAumiGUIuQhrNhZLuF_RJLqHpM2kgWFLU7-VTdL1VbC2tejvcI2BlMkEpk1BzBZI0KQB0GaDWFLN-aEAw3vRw", "e": "AQAB"},
            {"kty": "RSA", "kid": "enc", "use": "enc", "n": "AQAB", "e": "AQAB"},
            {"kty": "RSA", "kid": "hs", "alg": "HS256", "n": "AQAB", "e": "AQAB"},
            {"kty": "EC", "kid": "ec"},
            {"kty": "RSA", "n": "AQAB", "e": "AQAB"}
        ]}))
        .unwrap();
        let keys = decoding_keys(document);
        assert_eq!(keys.keys().collect::<Vec<_>>(), vec!["good"]);
    }
}
