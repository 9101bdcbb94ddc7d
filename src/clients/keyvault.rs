//! Key Vault secrets through the official `azure_security_keyvault_secrets` client.
//!
//! [`KeyVault`] is built once at start-up and shared. Two things differ from using the SDK client
//! directly:
//!
//! * **The challenge is learned once.** The SDK client sends its first request without a token to
//!   provoke Key Vault's 401 challenge, learns the scope, then authorizes every later request up
//!   front. But until a request has come back, every concurrent request is also "first": 100 cold
//!   concurrent reads pay 100 unauthenticated round trips. [`KeyVault`] lets exactly one call go
//!   through the cold client (a single-flight gate on a `tokio::sync::OnceCell`); the others wait
//!   until a request has gone out with an `Authorization` header (seen by a policy placed after the
//!   SDK's authorization policy) and then make one request each.
//! * **Challenge-resource verification stays on** for every vault host except loopback
//!   ([`crate::net::is_loopback`]), where the local emulator runs with a vault.azure.net
//!   challenge that cannot match `127.0.0.1`.

use crate::clients::{
    failure::{CallError, CallTarget, UpstreamDetail},
    http::AzureHttp,
    names::{InputError, check_service_url, validate_secret_name, validate_secret_version},
    request_id,
};
use crate::net::is_loopback;
use async_trait::async_trait;
use azure_core::{
    credentials::TokenCredential,
    error::ErrorKind,
    http::{
        Context, Request, Url,
        headers::AUTHORIZATION,
        policies::{Policy, PolicyResult},
    },
};
use azure_security_keyvault_secrets::{
    SecretClient, SecretClientOptions, models::SecretClientGetSecretOptions,
};
use serde::Deserialize;
use std::{
    borrow::Cow,
    fmt,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};
use thiserror::Error;
use tokio::sync::OnceCell;
use zeroize::Zeroize as _;

/// The RBAC role an identity needs to read secret values.
pub const SECRETS_READER_ROLE: &str = "Key Vault Secrets User";

/// A secret value that does not print itself: `Debug` and `Display` show `<redacted>`.
/// The only way to the text is [`SecretValue::expose`], so every use is explicit and greppable.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretValue(String);

impl SecretValue {
    /// Wraps a value.
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The secret text. Call it only where the value is deliberately handed out.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

/// Wiped when dropped, so a value the cache evicts (or an answer sent) leaves no copy behind in
/// freed memory.
impl Drop for SecretValue {
    fn drop(&mut self) {
        self.wipe();
    }
}

impl SecretValue {
    /// Zeroes every byte of the buffer (its whole capacity) and empties the value.
    fn wipe(&mut self) {
        self.0.zeroize();
    }
}

impl fmt::Debug for SecretValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// The same placeholder as `Debug`.
impl fmt::Display for SecretValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

/// A secret read from the vault.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Secret {
    /// The secret's name as the vault reports it (from its id), else as requested.
    pub name: String,
    /// The value, redacted in `Debug`/`Display`.
    pub value: SecretValue,
    /// The version that was read, when the vault reported the secret's id.
    pub version: Option<String>,
    /// The content type stored with the secret, if any.
    pub content_type: Option<String>,
}

/// Why a Key Vault call failed. No message carries a token or a secret value. `Clone` so that
/// callers sharing one read (the secret cache) each get its error.
#[derive(Debug, Clone, Error)]
pub enum KeyVaultError {
    /// The vault URL is unusable; detected at start-up.
    #[error("invalid Key Vault URL: {0}")]
    InvalidVaultUrl(&'static str),
    /// The secret name or version is malformed; nothing was sent.
    #[error(transparent)]
    InvalidName(#[from] InputError),
    /// The call was made and failed: refused, not found, throttled, no token, no usable answer
    /// or out of time.
    #[error(transparent)]
    Call(#[from] CallError<SecretRef>),
}

/// The secret a Key Vault call was about, named by its 403 and 404 messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretRef {
    /// The secret that was requested.
    pub name: String,
    /// The version that was requested, if any.
    pub version: Option<String>,
}

impl SecretRef {
    /// The secret `name`, at `version` when given.
    pub fn new(name: &str, version: Option<&str>) -> Self {
        Self {
            name: name.to_string(),
            version: version.map(str::to_string),
        }
    }
}

impl CallTarget for SecretRef {
    const SERVICE: &'static str = "Key Vault";
    const DENIED_CODE: &'static str = "Forbidden";

    fn fmt_denied(&self, code: &str, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "access to secret '{}' was denied ({code}): the managed identity needs the \"{SECRETS_READER_ROLE}\" role on the vault",
            self.name
        )
    }

    fn fmt_missing(&self, _code: Option<&str>, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "secret '{}'", self.name)?;
        if let Some(version) = &self.version {
            write!(f, " version {version}")?;
        }
        f.write_str(" was not found in the vault")
    }
}

impl KeyVaultError {
    fn from_sdk(error: &azure_core::Error, name: &str, version: Option<&str>) -> Self {
        Self::Call(CallError::from_sdk(error, SecretRef::new(name, version)))
    }

    fn upstream(reason: &str) -> Self {
        Self::Call(CallError::Upstream(UpstreamDetail::reason(
            reason.to_string(),
        )))
    }
}

/// The shared Key Vault client. Clone it freely: clones share one SDK client, one learned challenge
/// and one token cache.
#[derive(Clone, Debug)]
pub struct KeyVault {
    inner: Arc<Inner>,
}

struct Inner {
    client: SecretClient,
    vault_url: Url,
    authorized_seen: Arc<AuthorizedRequestSeen>,
    challenge_learned: OnceCell<()>,
    operation_timeout: Duration,
}

impl KeyVault {
    /// Builds the client once from the vault URL (`https://<vault>.vault.azure.net/`), the
    /// identity's credential and the shared HTTP plumbing. Verification of the challenge resource is
    /// on unless the vault host is loopback.
    pub fn new(
        vault_url: &str,
        credential: Arc<dyn TokenCredential>,
        http: &AzureHttp,
    ) -> Result<Self, KeyVaultError> {
        let vault_url = validate_vault_url(vault_url)?;
        let authorized_seen = Arc::new(AuthorizedRequestSeen::default());
        let options = SecretClientOptions {
            client_options: http.client_options_for(&vault_url, vec![authorized_seen.clone()]),
            verify_challenge_resource: Some(!is_loopback(&vault_url)),
            ..Default::default()
        };
        let client = SecretClient::new(vault_url.as_str(), credential, Some(options))
            .map_err(|_| KeyVaultError::InvalidVaultUrl("the SDK rejected it"))?;
        Ok(Self {
            inner: Arc::new(Inner {
                client,
                vault_url,
                authorized_seen,
                challenge_learned: OnceCell::new(),
                operation_timeout: http.settings().operation_timeout,
            }),
        })
    }

    /// The validated vault URL.
    pub fn vault_url(&self) -> &Url {
        &self.inner.vault_url
    }

    /// Whether challenge-resource verification is on for this vault (off only for loopback).
    pub fn verifies_challenge_resource(&self) -> bool {
        !is_loopback(&self.inner.vault_url)
    }

    /// Reads a secret, the latest version unless `version` is given.
    ///
    /// Once the vault's challenge has been learned this is exactly one request; see the module docs.
    pub async fn get_secret(
        &self,
        name: &str,
        version: Option<&str>,
    ) -> Result<Secret, KeyVaultError> {
        validate_secret_name(name)?;
        if let Some(version) = version {
            validate_secret_version(version)?;
        }
        let call = self.get_secret_learning_challenge_once(name, version);
        tokio::time::timeout(self.inner.operation_timeout, call)
            .await
            .unwrap_or(Err(KeyVaultError::Call(CallError::Timeout)))
    }

    async fn get_secret_learning_challenge_once(
        &self,
        name: &str,
        version: Option<&str>,
    ) -> Result<Secret, KeyVaultError> {
        if self.inner.challenge_learned.initialized() {
            return self.fetch(name, version).await;
        }
        // One caller at a time runs its own read as the initializer; everyone else waits. The cell
        // is set only once a request has gone out authorized (so the SDK client knows the scope);
        // if this read failed before that (vault unreachable, probe refused), the next waiter
        // becomes the initializer. Waiters released by a set cell make their read, pre-authorized.
        let mut own_result = None;
        let _ = self
            .inner
            .challenge_learned
            .get_or_try_init(|| async {
                own_result = Some(self.fetch(name, version).await);
                if self.inner.authorized_seen.get() {
                    Ok(())
                } else {
                    Err(())
                }
            })
            .await;
        match own_result {
            Some(result) => result,
            None => self.fetch(name, version).await,
        }
    }

    async fn fetch(&self, name: &str, version: Option<&str>) -> Result<Secret, KeyVaultError> {
        let options = SecretClientGetSecretOptions {
            secret_version: version.map(str::to_string),
            method_options: request_id::method_options(),
            ..Default::default()
        };
        let response = self
            .inner
            .client
            .get_secret(name, Some(options))
            .await
            .map_err(|e| KeyVaultError::from_sdk(&e, name, version))?;
        // The SDK's model also parses the attributes' timestamps and the tags, which nothing here
        // reads; only the three fields GetSecret answers with are decoded, from the same bytes.
        let body = response.into_body();
        let bundle: SecretBundle<'_> = serde_json::from_slice(&body)
            .map_err(|_| KeyVaultError::upstream("the vault's response could not be decoded"))?;
        secret_from_bundle(bundle, name)
    }
}

/// The part of Key Vault's secret bundle (`GET /secrets/{name}/{version}`) GetSecret uses; other
/// members are skipped.
#[derive(Deserialize)]
struct SecretBundle<'a> {
    value: Option<String>,
    #[serde(borrow)]
    id: Option<Cow<'a, str>>,
    #[serde(rename = "contentType")]
    content_type: Option<String>,
}

fn secret_from_bundle(
    bundle: SecretBundle<'_>,
    requested_name: &str,
) -> Result<Secret, KeyVaultError> {
    let value = bundle
        .value
        .ok_or_else(|| KeyVaultError::upstream("the vault's response has no secret value"))?;
    let (name, version) = bundle
        .id
        .as_deref()
        .and_then(name_and_version_from_id)
        .map(|(name, version)| (name, Some(version)))
        .unwrap_or_else(|| (requested_name.to_string(), None));
    Ok(Secret {
        name,
        value: SecretValue(value),
        version,
        content_type: bundle.content_type,
    })
}

/// Splits a secret id `https://<vault>/secrets/<name>/<version>` into name and version. Read
/// without a URL parser (a parse per call was a tenth of a warm read's instructions): names and
/// versions are plain ASCII by the vault's rules, checked here, so nothing needs decoding.
fn name_and_version_from_id(id: &str) -> Option<(String, String)> {
    let (_, after_scheme) = id.split_once("://")?;
    let (_, path) = after_scheme.split_once('/')?;
    let path = path.split(['?', '#']).next().unwrap_or_default();
    let mut segments = path.split('/');
    let (kind, name, version) = (segments.next()?, segments.next()?, segments.next()?);
    let plausible = kind == "secrets" && segments.next().is_none();
    let valid = validate_secret_name(name).is_ok() && validate_secret_version(version).is_ok();
    (plausible && valid).then(|| (name.to_string(), version.to_string()))
}

/// Checks the configured vault URL: https, a host, no user info, query or fragment, no path.
pub fn validate_vault_url(raw: &str) -> Result<Url, KeyVaultError> {
    let url = check_service_url(raw, "it must not have a query or fragment")
        .map_err(KeyVaultError::InvalidVaultUrl)?;
    if url.path() != "/" {
        return Err(KeyVaultError::InvalidVaultUrl(
            "it must be the vault's root, e.g. https://<vault>.vault.azure.net/",
        ));
    }
    Ok(url)
}

impl fmt::Debug for Inner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyVault")
            .field("vault_url", &self.vault_url.as_str())
            .field("challenge_learned", &self.challenge_learned.initialized())
            .finish_non_exhaustive()
    }
}

/// A policy placed after the SDK's authorization policy: records that a request went out with an
/// `Authorization` header, which proves the SDK client has learned the vault's challenge.
#[derive(Debug, Default)]
struct AuthorizedRequestSeen(AtomicBool);

impl AuthorizedRequestSeen {
    fn get(&self) -> bool {
        self.0.load(Ordering::Acquire)
    }
}

#[async_trait]
impl Policy for AuthorizedRequestSeen {
    async fn send(
        &self,
        ctx: &Context,
        request: &mut Request,
        next: &[Arc<dyn Policy>],
    ) -> PolicyResult {
        // Compared by name: the SDK's header lookups format an error message even when the
        // header is there, ≈2,300 instructions per call.
        if request
            .headers()
            .iter()
            .any(|(name, _)| *name == AUTHORIZATION)
        {
            self.0.store(true, Ordering::Release);
        }
        let Some((following, rest)) = next.split_first() else {
            return Err(azure_core::Error::with_message(
                ErrorKind::Other,
                "no transport after the challenge observer",
            ));
        };
        following.send(ctx, request, rest).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clients::names::assert_rejected;

    #[test]
    fn secret_value_never_prints_itself() {
        let value = SecretValue::new("hunter2");
        assert_eq!(format!("{value}"), "<redacted>");
        assert_eq!(format!("{value:?}"), "<redacted>");
        assert_eq!(value.expose(), "hunter2");
        let secret = Secret {
            name: "db".into(),
            value,
            version: None,
            content_type: None,
        };
        assert!(!format!("{secret:?}").contains("hunter2"));
    }

    #[test]
    fn a_wiped_value_leaves_zeros_in_its_buffer() {
        let mut value = SecretValue::new(String::with_capacity(32) + "hunter2");
        let (ptr, capacity) = (value.0.as_ptr(), value.0.capacity());
        value.wipe();
        assert_eq!(value.expose(), "");
        // The String still owns its buffer (zeroize keeps the allocation), so reading it is sound.
        assert_eq!(value.0.as_ptr(), ptr);
        let buffer = unsafe { std::slice::from_raw_parts(ptr, capacity) };
        assert!(buffer.iter().all(|byte| *byte == 0));
    }

    #[test]
    fn vault_urls_must_be_https_roots() {
        assert!(validate_vault_url("https://myvault.vault.azure.net/").is_ok());
        assert!(validate_vault_url("https://myvault.vault.azure.net").is_ok());
        assert!(validate_vault_url("https://127.0.0.1:8443").is_ok());
        assert_rejected(
            validate_vault_url,
            &[
                "",
                "myvault.vault.azure.net",
                "http://myvault.vault.azure.net/",
                "https://user:pw@myvault.vault.azure.net/",
                "https://myvault.vault.azure.net/?x=1",
                "https://myvault.vault.azure.net/#f",
                "https://myvault.vault.azure.net/secrets/",
            ],
        );
    }

    #[test]
    fn ids_split_into_name_and_version() {
        assert_eq!(
            name_and_version_from_id(
                "https://v.vault.azure.net/secrets/Db-Pass/0123456789abcdef0123456789abcdef"
            ),
            Some((
                "Db-Pass".to_string(),
                "0123456789abcdef0123456789abcdef".to_string()
            ))
        );
        assert_eq!(
            name_and_version_from_id("https://v.vault.azure.net/secrets/db"),
            None
        );
        assert_eq!(name_and_version_from_id("not a url"), None);
        assert_eq!(
            name_and_version_from_id(
                "https://v.vault.azure.net/secrets/db/0123456789abcdef0123456789abcdef?api-version=7.5"
            ),
            Some((
                "db".to_string(),
                "0123456789abcdef0123456789abcdef".to_string()
            ))
        );
        assert_eq!(
            name_and_version_from_id("https://v/secrets/db/0123456789abcdef0123456789abcdef/x"),
            None
        );
        assert_eq!(
            name_and_version_from_id("https://v/secrets/d%62/0123456789abcdef0123456789abcdef"),
            None,
            "an encoded name is not a valid name"
        );
        assert_eq!(name_and_version_from_id("https://v.vault.azure.net"), None);
        assert_eq!(
            name_and_version_from_id("https://v/keys/db/0123456789abcdef0123456789abcdef"),
            None
        );
    }

    #[test]
    fn a_secret_bundle_decodes_to_its_value_id_and_content_type() {
        let body = br#"{"value":"s3cr\"t","id":"https://v.vault.azure.net/secrets/db/0123456789abcdef0123456789abcdef","contentType":"text/plain","attributes":{"enabled":true,"created":1700000000,"updated":1700000000,"recoveryLevel":"Recoverable"},"tags":{"a":"b"}}"#;
        let bundle: SecretBundle<'_> = serde_json::from_slice(body).unwrap();
        let secret = secret_from_bundle(bundle, "requested").unwrap();
        assert_eq!(secret.value.expose(), "s3cr\"t");
        assert_eq!(secret.name, "db");
        assert_eq!(
            secret.version.as_deref(),
            Some("0123456789abcdef0123456789abcdef")
        );
        assert_eq!(secret.content_type.as_deref(), Some("text/plain"));
        let bare: SecretBundle<'_> = serde_json::from_slice(br#"{"value":"v"}"#).unwrap();
        let secret = secret_from_bundle(bare, "requested").unwrap();
        assert_eq!((secret.name.as_str(), secret.version), ("requested", None));
        let escaped_id: SecretBundle<'_> = serde_json::from_slice(
            br#"{"value":"v","id":"https:\/\/v\/secrets\/db\/0123456789abcdef0123456789abcdef"}"#,
        )
        .unwrap();
        assert_eq!(secret_from_bundle(escaped_id, "x").unwrap().name, "db");
        let no_value: SecretBundle<'_> = serde_json::from_slice(br#"{"id":null}"#).unwrap();
        assert!(secret_from_bundle(no_value, "x").is_err());
        assert!(serde_json::from_slice::<SecretBundle<'_>>(b"not json").is_err());
    }

    fn http_error(status: azure_core::http::StatusCode, code: &str) -> azure_core::Error {
        azure_core::Error::with_message(
            ErrorKind::HttpResponse {
                status,
                error_code: Some(code.to_string()),
                raw_response: None,
            },
            "service message",
        )
    }

    #[test]
    fn statuses_classify_into_actionable_errors() {
        use azure_core::http::StatusCode;
        let forbidden =
            KeyVaultError::from_sdk(&http_error(StatusCode::Forbidden, "Forbidden"), "db", None);
        assert!(matches!(
            forbidden,
            KeyVaultError::Call(CallError::Forbidden { .. })
        ));
        assert!(forbidden.to_string().contains(SECRETS_READER_ROLE));
        let missing = KeyVaultError::from_sdk(
            &http_error(StatusCode::NotFound, "SecretNotFound"),
            "db",
            Some("0123456789abcdef0123456789abcdef"),
        );
        assert_eq!(
            missing.to_string(),
            "secret 'db' version 0123456789abcdef0123456789abcdef was not found in the vault"
        );
        let other = KeyVaultError::from_sdk(
            &http_error(StatusCode::BadGateway, "BadGateway"),
            "db",
            None,
        );
        assert_eq!(
            other.to_string(),
            "Key Vault request failed: status 502, error code BadGateway"
        );
    }
}
