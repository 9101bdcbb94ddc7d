//! An Azure managed-identity credential: detects the platform's identity endpoint once, requests
//! tokens exactly as the official SDKs do, caches them per identity and resource, and hands them
//! to Azure SDK clients through [`azure_core::credentials::TokenCredential`]. It knows no web
//! server and no runtime beyond tokio; settings come through a lookup the caller supplies.
//!
//! # Example
//!
//! ```no_run
//! use managed_identity::{IdentityConfig, ManagedIdentity};
//!
//! # async fn example() -> Result<(), Box<dyn std::error::Error>> {
//! // Detect the source (App Service, legacy App Service, IMDS or the Azure CLI) from the
//! // process environment; nothing is sent yet.
//! let config = IdentityConfig::from_lookup(|name| std::env::var(name).ok())?;
//! let credential = ManagedIdentity::new(config)?;
//!
//! // A token for Key Vault as the default identity, from the cache when it can be.
//! let token = credential
//!     .get_token("https://vault.azure.net/.default", None)
//!     .await?;
//! println!("a {} token from {}, expires {}", token.token_type, token.source, token.expires_on);
//! # Ok(())
//! # }
//! ```
//!
//! An `Arc<ManagedIdentity>` is an `Arc<dyn TokenCredential>` for the Azure SDK's clients.
//!
//! # Sources, in order of precedence
//!
//! | # | source | detected by | request |
//! |---|---|---|---|
//! | 1 | App Service / Functions 2019-08-01 | `IDENTITY_ENDPOINT` + `IDENTITY_HEADER` | `GET {IDENTITY_ENDPOINT}?api-version=2019-08-01&resource=R` (+ `client_id`, `principal_id` or `mi_res_id`), headers `X-IDENTITY-HEADER`, `Metadata: true` |
//! | 2 | App Service legacy 2017-09-01 (also Azure ML) | `MSI_ENDPOINT` + `MSI_SECRET` | `GET {MSI_ENDPOINT}?api-version=2017-09-01&resource=R` (+ `clientid`), header `secret` |
//! | – | Azure Arc, Service Fabric, Cloud Shell | `IDENTITY_ENDPOINT` + `IMDS_ENDPOINT`; `IDENTITY_SERVER_THUMBPRINT`; `MSI_ENDPOINT` alone | configuration error (not supported) |
//! | 3 | Azure CLI (developer fallback) | no platform variable and `AZURE_TOKEN_CREDENTIALS` = `dev` or `AzureCliCredential` | `az account get-access-token --output json --resource R [--tenant T]` |
//! | 4 | IMDS (VM, VMSS, AKS) | otherwise | `GET {AZURE_POD_IDENTITY_AUTHORITY_HOST or http://169.254.169.254}/metadata/identity/oauth2/token?api-version=2018-02-01&resource=R` (+ `client_id`, `object_id` or `msi_res_id`), header `Metadata: true` |
//!
//! When both App Service pairs are set and the 2019 endpoint answers 400 `UnsupportedApiVersion`,
//! the credential switches to 2017-09-01 once and stays there. Redirects are never followed and no
//! proxy is used for these endpoints.
//!
//! # Settings
//!
//! | setting | meaning |
//! |---|---|
//! | `IDENTITY_ENDPOINT`, `IDENTITY_HEADER` | App Service 2019 endpoint and its secret header (set by the platform) |
//! | `MSI_ENDPOINT`, `MSI_SECRET` | legacy 2017 endpoint and secret (set by the platform) |
//! | `AZURE_POD_IDENTITY_AUTHORITY_HOST` | replaces the IMDS base URL (e.g. a local emulator) |
//! | `IDENTITY_SERVER_THUMBPRINT`, `IMDS_ENDPOINT` | only detected, to refuse Service Fabric / Arc clearly |
//! | `MANAGED_IDENTITY_CLIENT_ID` / `MANAGED_IDENTITY_OBJECT_ID` / `MANAGED_IDENTITY_RESOURCE_ID` | default user-assigned identity (at most one) |
//! | `AZURE_CLIENT_ID` | default user-assigned identity by client id, when none of the above is set |
//! | `AZURE_TOKEN_CREDENTIALS` | `dev` / `AzureCliCredential`: use the Azure CLI when no platform variable is set; `prod` / `ManagedIdentityCredential`: never |
//! | `AZURE_TENANT_ID` | tenant passed to the Azure CLI (`--tenant`), optional |
//!
//! Without an identity setting the system-assigned identity is used. A call may name another
//! user-assigned identity.
//!
//! # Retries and time limits
//!
//! App Service and legacy retry connect errors, time-outs, 408, 429, 500, 502, 503 and 504 with
//! jittered exponential back-off (0.5, 1, 2 s); IMDS also retries 404, 410 (up to 80 s) and every
//! 5xx. `Retry-After` (seconds) is honoured up to 10 s. 400, 401 and 403 are never retried. Each
//! request has a 2 s connect and 10 s total limit, a whole acquisition 30 s, `az` 10 s
//! ([`Timing`], [`RetryPolicy`]).
//!
//! # Tokens and cache
//!
//! `expires_on` is read as epoch seconds (number or string), the legacy `M/D/YYYY h:mm:ss AM +00:00`
//! forms, or RFC 3339; `expires_in` counts from the request start and the earlier expiry wins.
//! A token is never handed out with less than 5 minutes left; tokens living ≥ 2 h are refreshed
//! from half-life on while the cached one keeps being served. Tokens and header secrets live in
//! redacting types and never appear in logs or errors.
//!
//! # Bounds
//!
//! Every scope passes the grammar of [`normalize_scope`] before any source sees it. The cache holds at
//! most [`Timing::max_cache_entries`] keys and never evicts one in use; a failed acquisition is
//! remembered for [`Timing::failure_memory`]; at most [`Timing::max_concurrent_requests`]
//! acquisitions run at once.

mod cache;
mod capped_body;
pub mod claims;
mod clock;
mod config;
mod error;
pub mod error_chain;
mod expiry;
mod lifetime;
mod loopback;
mod retry;
mod retry_after;
mod scope;
mod secret;
mod sources;
#[cfg(test)]
mod testing;
#[cfg(test)]
mod tests;
mod transport;

use std::fmt;
use std::sync::Arc;

use time::OffsetDateTime;

pub use capped_body::{CappedBodyError, read_capped};
pub use config::{
    AZURE_CLIENT_ID, AZURE_POD_IDENTITY_AUTHORITY_HOST, AZURE_TENANT_ID, AZURE_TOKEN_CREDENTIALS,
    IDENTITY_ENDPOINT, IDENTITY_HEADER, IDENTITY_SERVER_THUMBPRINT, IMDS_ENDPOINT, IdentityConfig,
    MANAGED_IDENTITY_CLIENT_ID, MANAGED_IDENTITY_OBJECT_ID, MANAGED_IDENTITY_RESOURCE_ID,
    MSI_ENDPOINT, MSI_SECRET, Timing,
};
pub use error::{CliFailure, IdentityConfigError, IdentityError, ServiceDetail};
/// The parsers of what an identity endpoint answers, public so that `crates/fuzz` can throw
/// generated input at them; the credential reaches them the same way.
pub use expiry::{parse_expires_on, parse_seconds};
pub use loopback::{is_loopback, is_loopback_host};
pub use retry::RetryPolicy;
pub use retry_after::{RetryAfter, parse_retry_after};
pub use scope::{MAX_SCOPE_LEN, is_guid, normalize_scope};
pub use secret::AccessTokenSecret;
pub use sources::{check_token_body, service_detail};

use cache::{CacheKey, CacheLimits, TokenCache};
use clock::Clock;
use config::IdentityOrigin;
use sources::{Fetcher, TokenRequest};
use transport::{ReqwestTransport, Transport};

/// Every setting this crate reads, with its meaning (for the README and the settings check).
pub const SETTINGS: &[(&str, &str)] = &[
    (
        IDENTITY_ENDPOINT,
        "App Service / Functions 2019-08-01 identity endpoint (set by the platform)",
    ),
    (
        IDENTITY_HEADER,
        "secret header for IDENTITY_ENDPOINT (set by the platform, rotated)",
    ),
    (
        MSI_ENDPOINT,
        "legacy 2017-09-01 identity endpoint (set by the platform); alone it means Cloud Shell (unsupported)",
    ),
    (
        MSI_SECRET,
        "secret header for MSI_ENDPOINT (set by the platform)",
    ),
    (
        IDENTITY_SERVER_THUMBPRINT,
        "marks Service Fabric, which is refused",
    ),
    (
        IMDS_ENDPOINT,
        "with IDENTITY_ENDPOINT marks Azure Arc, which is refused; never an IMDS override",
    ),
    (
        AZURE_POD_IDENTITY_AUTHORITY_HOST,
        "replaces the IMDS base URL http://169.254.169.254 (e.g. a local emulator)",
    ),
    (
        MANAGED_IDENTITY_CLIENT_ID,
        "default user-assigned identity by client id",
    ),
    (
        MANAGED_IDENTITY_OBJECT_ID,
        "default user-assigned identity by object (principal) id",
    ),
    (
        MANAGED_IDENTITY_RESOURCE_ID,
        "default user-assigned identity by ARM resource id",
    ),
    (
        AZURE_CLIENT_ID,
        "default user-assigned identity by client id when no MANAGED_IDENTITY_* is set; absent means system-assigned",
    ),
    (
        AZURE_TOKEN_CREDENTIALS,
        "dev or AzureCliCredential: use the Azure CLI when no platform variable is set; prod or ManagedIdentityCredential: never",
    ),
    (
        AZURE_TENANT_ID,
        "tenant for the Azure CLI fallback (--tenant), optional",
    ),
];

/// A user-assigned managed identity, named by one of its three ids.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum UserAssignedId {
    /// The identity's client (application) id.
    ClientId(String),
    /// The identity's object (principal) id.
    ObjectId(String),
    /// The identity's ARM resource id (`/subscriptions/…/userAssignedIdentities/…`).
    ResourceId(String),
}

impl UserAssignedId {
    /// The id itself.
    pub fn value(&self) -> &str {
        match self {
            Self::ClientId(v) | Self::ObjectId(v) | Self::ResourceId(v) => v,
        }
    }

    /// "client id", "object id" or "resource id", for messages.
    pub fn kind_words(&self) -> &'static str {
        match self {
            Self::ClientId(_) => "client id",
            Self::ObjectId(_) => "object id",
            Self::ResourceId(_) => "resource id",
        }
    }
}

impl fmt::Display for UserAssignedId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::ClientId(v) => write!(f, "client_id={v}"),
            Self::ObjectId(v) => write!(f, "object_id={v}"),
            Self::ResourceId(v) => write!(f, "resource_id={v}"),
        }
    }
}

/// Which identity a token is for: the system-assigned one or a user-assigned one.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum IdentitySelector {
    /// The app's system-assigned identity (or, for the Azure CLI, the signed-in account).
    SystemAssigned,
    /// A user-assigned identity.
    UserAssigned(UserAssignedId),
}

impl fmt::Display for IdentitySelector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::SystemAssigned => f.write_str("system-assigned"),
            Self::UserAssigned(id) => write!(f, "user-assigned {id}"),
        }
    }
}

/// The kind of endpoint tokens come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SourceKind {
    /// App Service / Functions, api-version 2019-08-01.
    AppService2019,
    /// App Service legacy (and Azure ML), api-version 2017-09-01.
    AppService2017,
    /// Azure Instance Metadata Service, api-version 2018-02-01.
    Imds,
    /// `az account get-access-token` (developer fallback).
    AzureCli,
}

impl SourceKind {
    /// The settings that configure this source, for "check …" hints.
    pub fn settings(&self) -> &'static str {
        match self {
            Self::AppService2019 => "IDENTITY_ENDPOINT and IDENTITY_HEADER",
            Self::AppService2017 => "MSI_ENDPOINT and MSI_SECRET",
            Self::Imds => {
                "AZURE_POD_IDENTITY_AUTHORITY_HOST (default http://169.254.169.254; off Azure, set AZURE_TOKEN_CREDENTIALS=dev to use the Azure CLI)"
            }
            Self::AzureCli => "AZURE_TOKEN_CREDENTIALS and `az login`",
        }
    }
}

impl fmt::Display for SourceKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::AppService2019 => "App Service 2019-08-01 (IDENTITY_ENDPOINT)",
            Self::AppService2017 => "App Service legacy 2017-09-01 (MSI_ENDPOINT)",
            Self::Imds => "IMDS 2018-02-01 (AZURE_POD_IDENTITY_AUTHORITY_HOST)",
            Self::AzureCli => "Azure CLI (AZURE_TOKEN_CREDENTIALS)",
        })
    }
}

/// An access token with what is known about it. `Debug` redacts the token.
#[derive(Debug, Clone)]
pub struct Token {
    /// The bearer token; read it with [`AccessTokenSecret::expose`].
    pub access_token: AccessTokenSecret,
    /// Usually `Bearer`. Shared, like the value, by every copy the cache hands out.
    pub token_type: Arc<str>,
    /// The resource (audience) the token is for, as the service echoed it or as requested.
    pub resource: Arc<str>,
    /// When the token stops working (the earliest of the expiries the service gave).
    pub expires_on: OffsetDateTime,
    /// From when the cache refreshes it ahead of expiry.
    pub refresh_on: OffsetDateTime,
    /// Where it came from.
    pub source: SourceKind,
    /// Whose token it is.
    pub identity: IdentitySelector,
    /// Its claims, decoded on first use and shared by every copy the cache hands out.
    pub(crate) claims: cache::ClaimsMemo,
}

/// The managed-identity credential: detects the source once, caches tokens per identity and
/// resource, and is cheap to clone (all clones share one cache).
#[derive(Clone)]
pub struct ManagedIdentity {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    default_identity: IdentitySelector,
    default_origin: IdentityOrigin,
    fetcher: Fetcher,
    cache: TokenCache,
}

impl fmt::Debug for ManagedIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ManagedIdentity")
            .field("source", &self.source().to_string())
            .field("default_identity", &self.inner.default_identity.to_string())
            .finish_non_exhaustive()
    }
}

impl ManagedIdentity {
    /// Builds the credential from a detected configuration and logs the configuration warnings.
    /// Makes no network call.
    ///
    /// Identity endpoints are plain HTTP on the platforms this supports, so TLS matters only for
    /// an HTTPS `AZURE_POD_IDENTITY_AUTHORITY_HOST`; this uses reqwest's rustls set-up, which
    /// reads the platform's root certificates now. An application that already has a rustls
    /// configuration (one that loads its roots lazily, say) passes it to
    /// [`ManagedIdentity::with_tls_config`] instead.
    pub fn new(config: IdentityConfig) -> Result<Self, IdentityConfigError> {
        let transport = Arc::new(ReqwestTransport::new(
            config.timing.connect_timeout,
            config.timing.request_timeout,
            None,
        )?);
        Ok(Self::with_parts(config, transport, Clock::System))
    }

    /// Like [`ManagedIdentity::new`], with `tls` as the configuration for HTTPS identity
    /// endpoints. Building it reads nothing more than `tls` itself does.
    pub fn with_tls_config(
        config: IdentityConfig,
        tls: rustls::ClientConfig,
    ) -> Result<Self, IdentityConfigError> {
        let transport = Arc::new(ReqwestTransport::new(
            config.timing.connect_timeout,
            config.timing.request_timeout,
            Some(tls),
        )?);
        Ok(Self::with_parts(config, transport, Clock::System))
    }

    pub(crate) fn with_parts(
        config: IdentityConfig,
        transport: Arc<dyn Transport>,
        clock: Clock,
    ) -> Self {
        for warning in &config.warnings {
            log::warn!("managed identity: {warning}");
        }
        let kind = config.source.kind();
        log::info!(
            "managed identity: tokens from {kind}, default identity {}",
            config.default_identity
        );
        let cache = TokenCache::new(
            clock.clone(),
            CacheLimits {
                refresh_failure_backoff: config.timing.refresh_failure_backoff,
                failure_memory: config.timing.failure_memory,
                max_entries: config.timing.max_cache_entries,
            },
        );
        let fetcher = Fetcher::new(
            config.source,
            transport,
            config.timing,
            clock,
            config.cli_program,
        );
        Self {
            inner: Arc::new(Inner {
                default_identity: config.default_identity,
                default_origin: config.default_origin,
                fetcher,
                cache,
            }),
        }
    }

    /// A token for `scope_or_resource` (`https://vault.azure.net/.default` and
    /// `https://vault.azure.net` are the same), for `identity` or the default identity. Served
    /// from the cache when it can be.
    pub async fn get_token(
        &self,
        scope_or_resource: &str,
        identity: Option<&UserAssignedId>,
    ) -> Result<Token, IdentityError> {
        let resource = normalize_scope(scope_or_resource)?;
        let (selector, origin) = match identity {
            Some(id) => (
                IdentitySelector::UserAssigned(id.clone()),
                IdentityOrigin::Caller,
            ),
            None => (
                self.inner.default_identity.clone(),
                self.inner.default_origin,
            ),
        };
        self.inner.fetcher.check_supported(&selector)?;
        let key = CacheKey {
            identity: selector,
            resource,
        };
        // The fetch owns what it needs, so a refresh-ahead can run in the background; it takes
        // its copies only when the cache cannot answer. Boxed: inline, the source's request
        // future (kilobytes) would make every caller's future that large, and each move of one
        // (the runtime boxes a function's future) a copy of it, cached answers included.
        let fetch = |key: &CacheKey| {
            let inner = Arc::clone(&self.inner);
            let (resource, selector) = (key.resource.clone(), key.identity.clone());
            Box::pin(async move {
                let request = TokenRequest {
                    resource: &resource,
                    identity: &selector,
                    origin,
                };
                inner.fetcher.fetch(request).await
            })
        };
        self.inner.cache.get(key, fetch).await
    }

    /// The source tokens come from (after an `UnsupportedApiVersion` fallback: the legacy one).
    pub fn source(&self) -> SourceKind {
        self.inner.fetcher.current_kind()
    }

    /// The identity used when a call names none.
    pub fn default_identity(&self) -> &IdentitySelector {
        &self.inner.default_identity
    }

    /// How many (identity, resource) entries the token cache holds now (at most
    /// [`Timing::max_cache_entries`]).
    pub fn cached_entries(&self) -> usize {
        self.inner.cache.len()
    }
}

#[async_trait::async_trait]
impl azure_core::credentials::TokenCredential for ManagedIdentity {
    /// Gets a token for exactly one scope as the default identity (the Azure SDK clients call this).
    async fn get_token(
        &self,
        scopes: &[&str],
        _options: Option<azure_core::credentials::TokenRequestOptions<'_>>,
    ) -> azure_core::Result<azure_core::credentials::AccessToken> {
        let [scope] = scopes else {
            return Err(azure_core::Error::with_message(
                azure_core::error::ErrorKind::Credential,
                format!(
                    "managed identity needs exactly one scope per token request, got {}",
                    scopes.len()
                ),
            ));
        };
        let token = ManagedIdentity::get_token(self, scope, None)
            .await
            .map_err(|e| azure_core::Error::new(azure_core::error::ErrorKind::Credential, e))?;
        Ok(azure_core::credentials::AccessToken::new(
            token.access_token.expose().to_owned(),
            token.expires_on,
        ))
    }
}
