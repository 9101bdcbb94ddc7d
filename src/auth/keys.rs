//! The authority's signing keys: its OpenID discovery document and JWKS, fetched on first use and
//! cached.
//!
//! A token with an unknown `kid` triggers one refetch, at most once per refetch interval, and
//! concurrent requests share it (single flight: the fetch runs under an async mutex and waiters
//! look at the fresh key set before fetching themselves). Keys older than the refresh age are
//! fetched again on the next request; if that fails the old keys keep working. After a failed
//! fetch no other fetch is tried for a short cool-down, so a down authority is not hammered.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, PoisonError, RwLock};
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use jsonwebtoken::DecodingKey;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use url::Url;

use super::AuthError;
use super::config::check_transport;
use crate::net::{CappedBodyError, read_capped};

/// The largest discovery document or JWKS read; real ones are a few KiB.
const MAX_DOCUMENT_BYTES: usize = 1024 * 1024;
/// The smallest RSA modulus accepted, in bytes (2048 bits).
const MIN_MODULUS_BYTES: usize = 256;
/// After a failed fetch, how long requests get the failure without a new fetch.
const FAILURE_COOL_DOWN: Duration = Duration::from_secs(5);

/// base64url, with or without padding (JWKS members are unpadded, but some servers pad).
const BASE64_URL: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::URL_SAFE,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// Timing of key fetches.
#[derive(Debug, Clone, Copy)]
pub(crate) struct KeyTiming {
    /// Minimum time between two refetches caused by an unknown `kid`.
    pub refetch_interval: Duration,
    /// Age after which the key set is fetched again on the next request.
    pub refresh_after: Duration,
    /// Timeout of each fetch.
    pub fetch_timeout: Duration,
}

/// One usable signing key.
pub(crate) struct SigningKey {
    /// The key itself.
    pub key: DecodingKey,
    /// The algorithm the JWK restricts the key to, when it names one.
    pub alg: Option<String>,
}

/// The keys and accepted issuers from one successful fetch.
pub(crate) struct KeySet {
    keys: HashMap<String, SigningKey>,
    /// The two issuer strings of the tenant: v1 `https://sts.windows.net/<t>/` and v2
    /// `https://login.microsoftonline.com/<t>/v2.0`.
    pub issuers: [String; 2],
    loaded_at: Instant,
}

impl KeySet {
    /// The key with this `kid`.
    pub fn key(&self, kid: &str) -> Option<&SigningKey> {
        self.keys.get(kid)
    }
}

/// What the discovery document told us.
#[derive(Clone)]
struct Metadata {
    jwks_uri: Url,
    issuers: [String; 2],
}

/// State only the task holding the refresh lock touches.
#[derive(Default)]
struct RefreshState {
    metadata: Option<Metadata>,
    last_refetch: Option<Instant>,
    last_failure: Option<(Instant, String)>,
}

/// The cached keys of one authority.
pub(crate) struct KeyStore {
    http: reqwest::Client,
    discovery_url: Url,
    authority_tenant: String,
    timing: KeyTiming,
    jwks_fetches: AtomicU64,
    current: RwLock<Option<Arc<KeySet>>>,
    refresh: tokio::sync::Mutex<RefreshState>,
}

#[derive(Deserialize)]
struct Discovery {
    issuer: Option<String>,
    jwks_uri: String,
}

#[derive(Deserialize)]
struct Jwks {
    keys: Vec<serde_json::Value>,
}

#[derive(Deserialize)]
struct Jwk {
    kty: String,
    kid: String,
    n: String,
    e: String,
    #[serde(default)]
    alg: Option<String>,
    #[serde(default, rename = "use")]
    key_use: Option<String>,
}

impl KeyStore {
    /// A store for the authority whose path starts with `authority_tenant`.
    pub fn new(
        http: reqwest::Client,
        authority: &Url,
        authority_tenant: String,
        timing: KeyTiming,
    ) -> Self {
        Self {
            http,
            discovery_url: discovery_url(authority),
            authority_tenant,
            timing,
            jwks_fetches: AtomicU64::new(0),
            current: RwLock::new(None),
            refresh: tokio::sync::Mutex::new(RefreshState::default()),
        }
    }

    /// How many times the JWKS was fetched.
    pub fn jwks_fetches(&self) -> u64 {
        self.jwks_fetches.load(Ordering::Relaxed)
    }

    /// A key set that holds `kid` if the authority publishes it, fetching as the rules allow.
    /// The caller looks the key up in the answer; a set without it means "unknown key".
    pub async fn key_set_for(&self, kid: &str) -> Result<Arc<KeySet>, AuthError> {
        if let Some(set) = self.cached()
            && set.key(kid).is_some()
            && !self.is_stale(&set)
        {
            return Ok(set);
        }
        let mut state = self.refresh.lock().await;
        // Another task may have fetched while this one waited for the lock.
        match self.cached() {
            Some(set) if self.is_stale(&set) => self.refresh_stale(&mut state, set).await,
            Some(set) if set.key(kid).is_some() => Ok(set),
            Some(set) => self.refetch_for_unknown_kid(&mut state, set).await,
            None => self.load(&mut state).await,
        }
    }

    fn cached(&self) -> Option<Arc<KeySet>> {
        self.current
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    fn is_stale(&self, set: &KeySet) -> bool {
        set.loaded_at.elapsed() >= self.timing.refresh_after
    }

    async fn refetch_for_unknown_kid(
        &self,
        state: &mut RefreshState,
        set: Arc<KeySet>,
    ) -> Result<Arc<KeySet>, AuthError> {
        let recently = state
            .last_refetch
            .is_some_and(|at| at.elapsed() < self.timing.refetch_interval);
        if recently {
            log::debug!(
                "unknown signing key; refetch skipped (one ran less than the interval ago)"
            );
            return Ok(set);
        }
        state.last_refetch = Some(Instant::now());
        log::debug!("unknown signing key; fetching the authority's keys again");
        self.load(state).await
    }

    async fn refresh_stale(
        &self,
        state: &mut RefreshState,
        set: Arc<KeySet>,
    ) -> Result<Arc<KeySet>, AuthError> {
        state.metadata = None;
        match self.load(state).await {
            Ok(fresh) => Ok(fresh),
            Err(error) => {
                log::warn!("keeping the previous signing keys: {error}");
                Ok(set)
            }
        }
    }

    /// Fetches discovery (when not known yet) and the JWKS, and publishes the new key set.
    async fn load(&self, state: &mut RefreshState) -> Result<Arc<KeySet>, AuthError> {
        if let Some((at, reason)) = &state.last_failure
            && at.elapsed() < FAILURE_COOL_DOWN
        {
            return Err(AuthError::Unavailable(reason.clone()));
        }
        match self.fetch_key_set(state).await {
            Ok(set) => {
                state.last_failure = None;
                let set = Arc::new(set);
                *self.current.write().unwrap_or_else(PoisonError::into_inner) = Some(set.clone());
                Ok(set)
            }
            Err(reason) => {
                log::warn!("{reason}");
                state.last_failure = Some((Instant::now(), reason.clone()));
                Err(AuthError::Unavailable(reason))
            }
        }
    }

    async fn fetch_key_set(&self, state: &mut RefreshState) -> Result<KeySet, String> {
        let metadata = match &state.metadata {
            Some(metadata) => metadata.clone(),
            None => {
                let metadata = self.fetch_metadata().await?;
                state.metadata = Some(metadata.clone());
                metadata
            }
        };
        self.jwks_fetches.fetch_add(1, Ordering::Relaxed);
        let jwks: Jwks = self
            .fetch_json(&metadata.jwks_uri, "signing keys (JWKS)")
            .await?;
        let keys = usable_keys(jwks.keys);
        log::debug!(
            "fetched {} usable signing keys from {}",
            keys.len(),
            metadata.jwks_uri
        );
        Ok(KeySet {
            keys,
            issuers: metadata.issuers,
            loaded_at: Instant::now(),
        })
    }

    async fn fetch_metadata(&self) -> Result<Metadata, String> {
        // AuthConfig's fields are public: re-check what from_lookup checks before any fetch.
        check_transport(&self.discovery_url)
            .map_err(|reason| format!("the authority {}: {reason}", self.discovery_url))?;
        let discovery: Discovery = self
            .fetch_json(&self.discovery_url, "discovery document")
            .await?;
        let jwks_uri = Url::parse(&discovery.jwks_uri)
            .map_err(|_| "the discovery document's jwks_uri is not a URL".to_owned())
            .and_then(|url| {
                check_transport(&url)
                    .map(|()| url)
                    .map_err(|reason| format!("the discovery document's jwks_uri: {reason}"))
            })?;
        let tenant = discovery
            .issuer
            .as_deref()
            .and_then(tenant_from_issuer)
            .unwrap_or(&self.authority_tenant);
        if tenant.is_empty() {
            return Err("neither the authority nor its discovery document names a tenant".into());
        }
        Ok(Metadata {
            jwks_uri,
            issuers: issuers_of(tenant),
        })
    }

    async fn fetch_json<T: DeserializeOwned>(&self, url: &Url, what: &str) -> Result<T, String> {
        let failed = |reason: String| format!("the authority's {what} at {url} {reason}");
        let response = self
            .http
            .get(url.clone())
            .header(reqwest::header::ACCEPT, "application/json")
            .timeout(self.timing.fetch_timeout)
            .send()
            .await
            .map_err(|error| failed(describe_request_error(&error, self.timing.fetch_timeout)))?;
        let status = response.status();
        if !status.is_success() {
            return Err(failed(format!("answered HTTP {}", status.as_u16())));
        }
        let body = read_capped(response, MAX_DOCUMENT_BYTES)
            .await
            .map_err(|error| {
                failed(match error {
                    CappedBodyError::TooLarge { .. } => {
                        format!("is larger than {MAX_DOCUMENT_BYTES} bytes")
                    }
                    CappedBodyError::Read(_) => "could not be read to the end".to_owned(),
                })
            })?;
        serde_json::from_slice(&body).map_err(|_| failed("is not the expected JSON".into()))
    }
}

/// `{authority}/.well-known/openid-configuration`, whether or not the authority ends with `/`.
fn discovery_url(authority: &Url) -> Url {
    let mut url = authority.clone();
    let path = format!(
        "{}/.well-known/openid-configuration",
        authority.path().trim_end_matches('/')
    );
    url.set_path(&path);
    url
}

/// The tenant named by an issuer in the v1 or v2 AAD form.
fn tenant_from_issuer(issuer: &str) -> Option<&str> {
    let tenant = issuer
        .strip_prefix("https://login.microsoftonline.com/")
        .and_then(|rest| rest.strip_suffix("/v2.0"))
        .or_else(|| {
            issuer
                .strip_prefix("https://sts.windows.net/")
                .and_then(|rest| rest.strip_suffix('/'))
        })?;
    let plausible = !tenant.is_empty()
        && tenant
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.');
    plausible.then_some(tenant)
}

/// The two issuer strings AAD uses for a tenant (v1, v2).
fn issuers_of(tenant: &str) -> [String; 2] {
    [
        format!("https://sts.windows.net/{tenant}/"),
        format!("https://login.microsoftonline.com/{tenant}/v2.0"),
    ]
}

/// Reads a JWKS document's body as a fetch does and returns the `kid`s of its usable RSA
/// signing keys: the entry point `crates/fuzz` drives (the keys themselves stay private).
pub fn usable_kids(body: &[u8]) -> Result<Vec<String>, String> {
    let jwks: Jwks =
        serde_json::from_slice(body).map_err(|_| "is not the expected JSON".to_owned())?;
    let mut kids: Vec<String> = usable_keys(jwks.keys).into_keys().collect();
    kids.sort();
    Ok(kids)
}

/// The RSA signing keys of a JWKS, by `kid`; other or malformed entries are skipped.
fn usable_keys(entries: Vec<serde_json::Value>) -> HashMap<String, SigningKey> {
    entries
        .into_iter()
        .filter_map(|entry| serde_json::from_value::<Jwk>(entry).ok())
        .filter_map(|jwk| {
            let key = rsa_key(&jwk)?;
            Some((jwk.kid, key))
        })
        .collect()
}

fn rsa_key(jwk: &Jwk) -> Option<SigningKey> {
    if jwk.kty != "RSA" || jwk.key_use.as_deref().is_some_and(|u| u != "sig") {
        return None;
    }
    let modulus = BASE64_URL.decode(&jwk.n).ok()?;
    let exponent = BASE64_URL.decode(&jwk.e).ok()?;
    let significant = modulus.iter().skip_while(|byte| **byte == 0).count();
    if significant < MIN_MODULUS_BYTES || exponent.is_empty() {
        return None;
    }
    Some(SigningKey {
        key: DecodingKey::from_rsa_raw_components(&modulus, &exponent),
        alg: jwk.alg.clone(),
    })
}

/// A short reason for a failed request, without headers.
fn describe_request_error(error: &reqwest::Error, timeout: Duration) -> String {
    if error.is_timeout() {
        format!("did not answer within {} ms", timeout.as_millis())
    } else if error.is_connect() {
        "could not be reached".to_owned()
    } else {
        "could not be fetched".to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn discovery_sits_under_the_authority() {
        for authority in [
            "https://login.microsoftonline.com/t/v2.0",
            "https://login.microsoftonline.com/t/v2.0/",
        ] {
            let url = discovery_url(&Url::parse(authority).unwrap());
            assert_eq!(
                url.as_str(),
                "https://login.microsoftonline.com/t/v2.0/.well-known/openid-configuration"
            );
        }
    }

    #[test]
    fn the_tenant_is_read_from_either_issuer_form() {
        assert_eq!(
            tenant_from_issuer("https://login.microsoftonline.com/abc-1/v2.0"),
            Some("abc-1")
        );
        assert_eq!(
            tenant_from_issuer("https://sts.windows.net/abc-1/"),
            Some("abc-1")
        );
        for other in [
            "https://login.microsoftonline.com/{tenantid}/v2.0",
            "https://login.microsoftonline.com//v2.0",
            "https://evil.example/abc/v2.0",
            "https://sts.windows.net/a/b/",
        ] {
            assert_eq!(tenant_from_issuer(other), None, "{other}");
        }
    }

    #[test]
    fn only_large_enough_rsa_signing_keys_are_kept() {
        let n = BASE64_URL.encode([0xC5u8; 256]);
        let padded_n = base64::engine::general_purpose::URL_SAFE.encode([0xC5u8; 256]);
        assert!(padded_n.ends_with('='));
        let short_n = BASE64_URL.encode([0xC5u8; 128]);
        let entries = vec![
            serde_json::json!({"kty":"RSA","kid":"good","n":n,"e":"AQAB","use":"sig","alg":"RS256"}),
            serde_json::json!({"kty":"RSA","kid":"padded","n":padded_n,"e":"AQAB"}),
            serde_json::json!({"kty":"RSA","kid":"enc","n":n,"e":"AQAB","use":"enc"}),
            serde_json::json!({"kty":"EC","kid":"ec","crv":"P-256","x":"AA","y":"AA"}),
            serde_json::json!({"kty":"RSA","kid":"short","n":short_n,"e":"AQAB"}),
            serde_json::json!({"kty":"RSA","n":n,"e":"AQAB"}),
            serde_json::json!({"kty":"RSA","kid":"bad","n":"!!","e":"AQAB"}),
            serde_json::json!("not an object"),
        ];
        let keys = usable_keys(entries);
        let mut kids: Vec<&str> = keys.keys().map(String::as_str).collect();
        kids.sort_unstable();
        assert_eq!(kids, ["good", "padded"]);
        assert_eq!(keys["good"].alg.as_deref(), Some("RS256"));
    }
}
