//! Checks one request's bearer token: scheme, header, signature, lifetime, issuer, audience and
//! role, in that order, answering with the first failure.

use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, Validation};
use serde::{Deserialize, Serialize};

use super::keys::{KeySet, KeyStore, KeyTiming, SigningKey};
use super::{AuthConfig, AuthError};

/// The longest token looked at; AAD access tokens are a few KiB even with many roles.
const MAX_TOKEN_BYTES: usize = 16 * 1024;

const NO_KEY: &str = "the token's signing key is unknown";
const BAD_ALG: &str = "the token's algorithm is not allowed";
const MALFORMED: &str = "the token is malformed";
const BAD_SIGNATURE: &str = "the signature is invalid";

/// Knobs of the validator; [`ValidatorOptions::default`] is what production uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ValidatorOptions {
    /// Tolerance for clocks that disagree, applied to `exp` and `nbf`: 5 minutes, the default of
    /// Microsoft.IdentityModel, so tokens behave as they do in an ASP.NET Core API.
    pub clock_skew: Duration,
    /// Minimum time between two key refetches caused by an unknown `kid` (30 s): a flood of
    /// made-up `kid`s costs the authority at most one request per interval.
    pub refetch_interval: Duration,
    /// Age after which the keys are fetched again on the next request (12 h, as
    /// Microsoft.IdentityModel's automatic refresh), so a withdrawn key stops being accepted.
    pub refresh_after: Duration,
    /// Timeout of each discovery or JWKS fetch (10 s).
    pub fetch_timeout: Duration,
}

impl Default for ValidatorOptions {
    fn default() -> Self {
        Self {
            clock_skew: Duration::from_secs(300),
            refetch_interval: Duration::from_secs(30),
            refresh_after: Duration::from_secs(12 * 3600),
            fetch_timeout: Duration::from_secs(10),
        }
    }
}

/// Who called, from a token that passed every check. Holds claims only, never the token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Caller {
    /// The caller's object id (`oid`).
    pub oid: Option<String>,
    /// The calling application's client id: `appid` (v1 tokens) or `azp` (v2 tokens).
    pub appid: Option<String>,
    /// The caller's tenant (`tid`).
    pub tid: Option<String>,
    /// The app roles granted to the caller (`roles`), possibly none.
    pub roles: Vec<String>,
    /// The subject (`sub`).
    pub sub: Option<String>,
    /// The issuer (`iss`), one of the tenant's two forms.
    pub issuer: String,
    /// The audience (`aud`) that matched the settings, as the token spells it.
    pub audience: String,
}

/// Validates incoming AAD bearer tokens. Build it once; clones share the key cache.
#[derive(Clone)]
pub struct TokenValidator {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for TokenValidator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenValidator")
            .field("authority", &self.inner.config.authority.as_str())
            .field("audiences", &self.inner.config.audiences)
            .field("required_role", &self.inner.config.required_role)
            .finish_non_exhaustive()
    }
}

struct Inner {
    config: AuthConfig,
    options: ValidatorOptions,
    keys: KeyStore,
}

/// The JOSE header members looked at before any key is touched.
#[derive(Deserialize)]
struct JoseHeader {
    alg: Option<String>,
    kid: Option<String>,
    crit: Option<serde_json::Value>,
}

/// The claims read from a verified token; `exp`/`nbf` are checked by `jsonwebtoken`.
#[derive(Deserialize)]
struct Claims {
    iss: Option<String>,
    aud: Option<Audience>,
    oid: Option<String>,
    appid: Option<String>,
    azp: Option<String>,
    tid: Option<String>,
    sub: Option<String>,
    #[serde(default)]
    roles: Vec<String>,
    /// Delegated scopes (space-separated); only access tokens carry them.
    scp: Option<String>,
    /// Microsoft's optional "which kind of principal" claim of access tokens: `app` or `user`.
    idtyp: Option<String>,
    /// OpenID Connect claims that only ID tokens carry (any type: only presence matters).
    nonce: Option<serde_json::Value>,
    at_hash: Option<serde_json::Value>,
    c_hash: Option<serde_json::Value>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum Audience {
    One(String),
    Many(Vec<String>),
}

impl TokenValidator {
    /// A validator for `config`, fetching keys with `http` (see [`default_http_client`]).
    pub fn new(config: AuthConfig, http: reqwest::Client) -> Self {
        Self::with_options(config, http, ValidatorOptions::default())
    }

    /// A validator with non-default timing (tests and benchmarks).
    pub fn with_options(
        config: AuthConfig,
        http: reqwest::Client,
        options: ValidatorOptions,
    ) -> Self {
        let timing = KeyTiming {
            refetch_interval: options.refetch_interval,
            refresh_after: options.refresh_after,
            fetch_timeout: options.fetch_timeout,
        };
        let tenant = config.authority_tenant().unwrap_or_default().to_owned();
        let keys = KeyStore::new(http, &config.authority, tenant, timing);
        Self {
            inner: Arc::new(Inner {
                config,
                options,
                keys,
            }),
        }
    }

    /// How many times the JWKS has been fetched (for tests and benchmarks).
    pub fn jwks_fetches(&self) -> u64 {
        self.inner.keys.jwks_fetches()
    }

    /// Checks the `Authorization` header's bearer token and says who the caller is.
    pub async fn validate(&self, authorization_header: Option<&str>) -> Result<Caller, AuthError> {
        let result = self.check(authorization_header).await;
        if let Err(error) = &result {
            log::debug!("bearer token refused: {error}");
        }
        result
    }

    async fn check(&self, authorization_header: Option<&str>) -> Result<Caller, AuthError> {
        let token = bearer_token(authorization_header)?;
        let (algorithm, kid) = read_header(token)?;
        let key_set = self.inner.keys.key_set_for(&kid).await?;
        let key = signing_key(&key_set, &kid, algorithm)?;
        let claims = self.verify(token, key, algorithm)?;
        let issuer = accepted_issuer(claims.iss.as_deref(), &key_set.issuers)?;
        let audience = accepted_audience(claims.aud.as_ref(), &self.inner.config.audiences)?;
        refuse_id_token(&claims)?;
        self.check_role(&claims.roles)?;
        require_permissions(&claims)?;
        Ok(Caller {
            oid: claims.oid,
            appid: claims.appid.or(claims.azp),
            tid: claims.tid,
            roles: claims.roles,
            sub: claims.sub,
            issuer,
            audience,
        })
    }

    fn verify(
        &self,
        token: &str,
        key: &SigningKey,
        algorithm: Algorithm,
    ) -> Result<Claims, AuthError> {
        let mut validation = Validation::new(algorithm);
        validation.leeway = self.inner.options.clock_skew.as_secs();
        validation.validate_exp = true;
        validation.validate_nbf = true;
        validation.validate_aud = false;
        validation.set_required_spec_claims(&["exp"]);
        jsonwebtoken::decode::<Claims>(token, &key.key, &validation)
            .map(|data| data.claims)
            .map_err(|error| AuthError::Invalid(describe_jwt_error(error.kind()).to_owned()))
    }

    fn check_role(&self, roles: &[String]) -> Result<(), AuthError> {
        match &self.inner.config.required_role {
            Some(role) if !roles.iter().any(|held| held == role) => {
                Err(AuthError::MissingRole { role: role.clone() })
            }
            _ => Ok(()),
        }
    }
}

const NOT_ACCESS_TOKEN: &str = "the token is not an access token (an ID token cannot call an API)";

/// Refuses what only an ID token looks like. OpenID Connect puts `nonce`, `at_hash` and `c_hash`
/// in ID tokens (https://openid.net/specs/openid-connect-core-1_0.html#IDToken) and Entra's
/// access tokens carry none of them in their payload; Entra's access tokens name the client they
/// were issued to, `appid` in v1.0 and `azp` in v2.0, which its ID tokens do not
/// (https://learn.microsoft.com/entra/identity-platform/access-token-claims-reference,
/// https://learn.microsoft.com/entra/identity-platform/id-token-claims-reference); and the
/// optional `idtyp` claim of access tokens is `app` or `user`.
fn refuse_id_token(claims: &Claims) -> Result<(), AuthError> {
    let oidc_only = claims.nonce.is_some() || claims.at_hash.is_some() || claims.c_hash.is_some();
    let odd_type = claims
        .idtyp
        .as_deref()
        .is_some_and(|kind| kind != "app" && kind != "user");
    let no_client = claims.appid.as_deref().is_none_or(str::is_empty)
        && claims.azp.as_deref().is_none_or(str::is_empty);
    if oidc_only || odd_type || no_client {
        return Err(AuthError::Invalid(NOT_ACCESS_TOKEN.to_owned()));
    }
    Ok(())
}

/// An access token for a web API carries what the caller may do: delegated scopes (`scp`) or
/// app roles (`roles`); a token with neither is refused, as Microsoft.Identity.Web does unless
/// told to authorize by ACL (https://learn.microsoft.com/entra/msidweb/authentication/authorization).
fn require_permissions(claims: &Claims) -> Result<(), AuthError> {
    let scopes = claims.scp.as_deref().is_some_and(|s| !s.trim().is_empty());
    if scopes || !claims.roles.is_empty() {
        Ok(())
    } else {
        Err(AuthError::Invalid(
            "the token carries neither scp nor roles: it grants nothing to call this API"
                .to_owned(),
        ))
    }
}

/// A client for discovery and JWKS fetches: 5 s to connect, 10 s per request, no redirects, no
/// proxy for a loopback authority.
pub fn default_http_client() -> Result<reqwest::Client, reqwest::Error> {
    reqwest::Client::builder()
        .proxy(crate::net::proxy_unless_loopback())
        .tls_backend_preconfigured(crate::clients::tls::client_config())
        .connect_timeout(Duration::from_secs(5))
        .timeout(Duration::from_secs(10))
        .redirect(reqwest::redirect::Policy::none())
        .build()
}

/// Reads an `Authorization` header and the token's JOSE header as [`TokenValidator::validate`]
/// does before it touches a key, then the claims it would check after the signature (issuer
/// against `issuers`, audience against `audiences`): the entry point `crates/fuzz` drives, since
/// a signed token cannot be generated a million times. Returns the algorithm and `kid`.
pub fn check_unsigned(
    authorization_header: Option<&str>,
    issuers: &[String; 2],
    audiences: &[String],
) -> Result<(String, String), AuthError> {
    let token = bearer_token(authorization_header)?;
    let (algorithm, kid) = read_header(token)?;
    let malformed = || AuthError::Invalid(MALFORMED.to_owned());
    let payload = token.split('.').nth(1).ok_or_else(malformed)?;
    let bytes = URL_SAFE_NO_PAD.decode(payload).map_err(|_| malformed())?;
    let claims: Claims = serde_json::from_slice(&bytes).map_err(|_| malformed())?;
    accepted_issuer(claims.iss.as_deref(), issuers)?;
    accepted_audience(claims.aud.as_ref(), audiences)?;
    Ok((format!("{algorithm:?}"), kid))
}

/// The token of an `Authorization: Bearer <token>` header (scheme case-insensitive).
fn bearer_token(header: Option<&str>) -> Result<&str, AuthError> {
    let (scheme, token) = header
        .map(str::trim)
        .and_then(|value| value.split_once(|c: char| c.is_ascii_whitespace()))
        .ok_or(AuthError::MissingToken)?;
    let token = token.trim();
    if !scheme.eq_ignore_ascii_case("bearer") || token.is_empty() {
        return Err(AuthError::MissingToken);
    }
    Ok(token)
}

/// The allowed algorithm and the `kid` from the token's header, read before any key is used.
fn read_header(token: &str) -> Result<(Algorithm, String), AuthError> {
    let malformed = || AuthError::Invalid(MALFORMED.to_owned());
    if token.len() > MAX_TOKEN_BYTES || !is_compact_jws(token) {
        return Err(malformed());
    }
    let encoded = token.split('.').next().ok_or_else(malformed)?;
    let bytes = URL_SAFE_NO_PAD.decode(encoded).map_err(|_| malformed())?;
    let header: JoseHeader = serde_json::from_slice(&bytes).map_err(|_| malformed())?;
    let algorithm = header
        .alg
        .as_deref()
        .and_then(allowed_algorithm)
        .ok_or_else(|| AuthError::Invalid(BAD_ALG.to_owned()))?;
    if header.crit.is_some() {
        return Err(AuthError::Invalid(
            "the token requires header extensions that are not supported".to_owned(),
        ));
    }
    let kid = header
        .kid
        .filter(|kid| !kid.is_empty())
        .ok_or_else(|| AuthError::Invalid(NO_KEY.to_owned()))?;
    if token.ends_with('.') {
        return Err(AuthError::Invalid(BAD_SIGNATURE.to_owned()));
    }
    Ok((algorithm, kid))
}

/// Three base64url parts separated by dots; only the signature may be empty (as in an
/// `alg: none` token, which is then refused for its algorithm rather than its shape).
fn is_compact_jws(token: &str) -> bool {
    let parts: Vec<&str> = token.split('.').collect();
    let base64url = |part: &str| {
        part.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    };
    parts.len() == 3
        && !parts[0].is_empty()
        && !parts[1].is_empty()
        && parts.iter().all(|part| base64url(part))
}

/// The RSA algorithms accepted; everything else (`none`, HS*, ES*, ...) is refused.
fn allowed_algorithm(name: &str) -> Option<Algorithm> {
    match name {
        "RS256" => Some(Algorithm::RS256),
        "RS384" => Some(Algorithm::RS384),
        "RS512" => Some(Algorithm::RS512),
        "PS256" => Some(Algorithm::PS256),
        "PS384" => Some(Algorithm::PS384),
        "PS512" => Some(Algorithm::PS512),
        _ => None,
    }
}

/// The key for `kid`, if it may be used with `algorithm`.
fn signing_key<'a>(
    key_set: &'a KeySet,
    kid: &str,
    algorithm: Algorithm,
) -> Result<&'a SigningKey, AuthError> {
    let key = key_set
        .key(kid)
        .ok_or_else(|| AuthError::Invalid(NO_KEY.to_owned()))?;
    match key.alg.as_deref() {
        Some(restricted) if allowed_algorithm(restricted) != Some(algorithm) => {
            Err(AuthError::Invalid(BAD_ALG.to_owned()))
        }
        _ => Ok(key),
    }
}

fn describe_jwt_error(kind: &ErrorKind) -> &'static str {
    match kind {
        ErrorKind::InvalidSignature => BAD_SIGNATURE,
        ErrorKind::ExpiredSignature => "the token has expired",
        ErrorKind::ImmatureSignature => "the token is not yet valid",
        ErrorKind::MissingRequiredClaim(_) => "the token has no expiry",
        ErrorKind::InvalidAlgorithm | ErrorKind::InvalidAlgorithmName => BAD_ALG,
        ErrorKind::InvalidRsaKey(_) | ErrorKind::InvalidKeyFormat => NO_KEY,
        _ => MALFORMED,
    }
}

fn accepted_issuer(issuer: Option<&str>, accepted: &[String; 2]) -> Result<String, AuthError> {
    issuer
        .filter(|issuer| accepted.iter().any(|candidate| candidate == issuer))
        .map(str::to_owned)
        .ok_or_else(|| AuthError::Invalid("the token's issuer is not accepted".to_owned()))
}

fn accepted_audience(
    audience: Option<&Audience>,
    accepted: &[String],
) -> Result<String, AuthError> {
    let offered: &[String] = match audience {
        Some(Audience::One(one)) => std::slice::from_ref(one),
        Some(Audience::Many(many)) => many,
        None => &[],
    };
    offered
        .iter()
        .find(|aud| {
            accepted
                .iter()
                .any(|candidate| same_audience(aud, candidate))
        })
        .cloned()
        .ok_or_else(|| AuthError::Invalid("the token's audience is not accepted".to_owned()))
}

/// Exact comparison, except that one trailing `/` does not matter (`api://x/` is `api://x`).
fn same_audience(a: &str, b: &str) -> bool {
    !a.is_empty() && a.strip_suffix('/').unwrap_or(a) == b.strip_suffix('/').unwrap_or(b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_bearer_scheme_with_a_token_is_taken() {
        assert_eq!(bearer_token(Some("Bearer abc")), Ok("abc"));
        assert_eq!(bearer_token(Some("  bearer \t abc  ")), Ok("abc"));
        assert_eq!(bearer_token(Some("BEARER abc")), Ok("abc"));
        for refused in [
            None,
            Some(""),
            Some("Bearer"),
            Some("Bearer   "),
            Some("Basic abc"),
            Some("abc"),
            Some("Bearerabc x"),
        ] {
            assert_eq!(
                bearer_token(refused),
                Err(AuthError::MissingToken),
                "{refused:?}"
            );
        }
    }

    #[test]
    fn malformed_tokens_are_refused_before_any_key_is_fetched() {
        for token in [
            "abc",
            "a.b",
            "a.b.c.d",
            "a..c",
            "a.b.c d",
            "a.b.c+",
            "e30.e30.!",
        ] {
            assert_eq!(
                read_header(token).unwrap_err(),
                AuthError::Invalid(MALFORMED.into()),
                "{token}"
            );
        }
        let huge = format!("{}.e30.sig", "a".repeat(MAX_TOKEN_BYTES));
        assert_eq!(
            read_header(&huge).unwrap_err(),
            AuthError::Invalid(MALFORMED.into())
        );
    }

    #[test]
    fn only_rsa_algorithms_pass_the_header_check() {
        let token = |header: &str| format!("{}.e30.c2ln", URL_SAFE_NO_PAD.encode(header));
        let ok = read_header(&token(r#"{"alg":"RS256","kid":"k1"}"#)).unwrap();
        assert_eq!(ok, (Algorithm::RS256, "k1".to_owned()));
        assert_eq!(
            read_header(&token(r#"{"alg":"PS256","kid":"k1"}"#))
                .unwrap()
                .0,
            Algorithm::PS256
        );
        for alg in [
            "none", "None", "HS256", "HS512", "ES256", "EdDSA", "rs256", "",
        ] {
            let header = format!(r#"{{"alg":"{alg}","kid":"k1"}}"#);
            assert_eq!(
                read_header(&token(&header)).unwrap_err(),
                AuthError::Invalid(BAD_ALG.into()),
                "{alg}"
            );
        }
        assert_eq!(
            read_header(&token(r#"{"kid":"k1"}"#)).unwrap_err(),
            AuthError::Invalid(BAD_ALG.into())
        );
        assert_eq!(
            read_header(&token(r#"{"alg":"RS256"}"#)).unwrap_err(),
            AuthError::Invalid(NO_KEY.into())
        );
        assert!(matches!(
            read_header(&token(r#"{"alg":"RS256","kid":"k","crit":["x"]}"#)),
            Err(AuthError::Invalid(_))
        ));
        assert_eq!(
            read_header(&token(r#"["alg"]"#)).unwrap_err(),
            AuthError::Invalid(MALFORMED.into())
        );
    }

    #[test]
    fn audiences_match_exactly_but_for_a_trailing_slash() {
        let accepted = vec!["api://my-api".to_owned(), "0e3c2b6a-aaaa".to_owned()];
        let one = |aud: &str| accepted_audience(Some(&Audience::One(aud.to_owned())), &accepted);
        assert_eq!(one("api://my-api").unwrap(), "api://my-api");
        assert_eq!(one("api://my-api/").unwrap(), "api://my-api/");
        assert_eq!(one("0e3c2b6a-aaaa").unwrap(), "0e3c2b6a-aaaa");
        for refused in [
            "api://my-api//",
            "API://my-api",
            "api://my-api/x",
            "api://my",
            "",
            "0e3c2b6a",
        ] {
            assert!(one(refused).is_err(), "{refused}");
        }
        let many = Audience::Many(vec!["other".into(), "api://my-api".into()]);
        assert_eq!(
            accepted_audience(Some(&many), &accepted).unwrap(),
            "api://my-api"
        );
        assert!(accepted_audience(None, &accepted).is_err());
    }
}
