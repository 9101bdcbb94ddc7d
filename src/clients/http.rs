//! The HTTP transports and retry behaviour shared by the Key Vault and Blob clients.
//!
//! Key Vault, when no proxy variable applies to the vault, goes through the direct transport on
//! hyper ([`crate::clients::direct`]), which costs half the instructions reqwest did per call; Blob
//! Storage (streamed uploads and downloads) and any service behind a proxy go through reqwest.
//!
//! Built once at start-up: a `reqwest` client with connect and request timeouts, redirects off,
//! automatic decompression off (the Blob SDK needs the raw bytes) and https only. TLS trust is the
//! platform's roots through rustls-platform-verifier, which on Linux loads them with
//! `rustls-native-certs`: it reads `SSL_CERT_FILE` (and `SSL_CERT_DIR`) **instead of** the system
//! store when set. That is the only way to trust an extra CA (for the local emulators): certificate
//! verification is never turned off. The roots are read once per process, off the start-up path
//! ([`crate::clients::tls`]), so building the client costs no file reads.

use crate::clients::direct::DirectTransport;
use crate::clients::tls::TrustRoots;
use azure_core::http::{
    ClientOptions, HttpClient, RetryOptions, StatusCode, Transport, Url,
    policies::{Policy, RetryHeaders, RetryPolicy},
};
use azure_core::time::Duration as SdkDuration;
use managed_identity::error_chain::error_chain;
use std::{fmt, sync::Arc, time::Duration};
use thiserror::Error;

/// Timeouts and retries for the Azure clients. `Default` is what production uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpSettings {
    /// Time allowed to open the TCP + TLS connection (default 5 s).
    pub connect_timeout: Duration,
    /// Time allowed for one HTTP request, from sending to the last body byte (default 30 s).
    pub request_timeout: Duration,
    /// Time allowed for one client call, including the Key Vault challenge and retries (default 45 s).
    pub operation_timeout: Duration,
    /// How many times a transient failure (connection error, 408, 500, 502, 503, 504) is retried
    /// (default 2). 429 is never retried here: it goes back to the caller with its Retry-After.
    pub max_retries: u32,
    /// Pause before the first retry; doubles for each further one (default 200 ms).
    pub retry_delay: Duration,
}

impl Default for HttpSettings {
    fn default() -> Self {
        Self {
            connect_timeout: Duration::from_secs(5),
            request_timeout: Duration::from_secs(30),
            operation_timeout: Duration::from_secs(45),
            max_retries: 2,
            retry_delay: Duration::from_millis(200),
        }
    }
}

/// The transport could not be built (for example `SSL_CERT_FILE` names a file without certificates
/// and there are no other roots).
#[derive(Debug, Error)]
#[error("could not build the HTTPS client: {0}")]
pub struct TransportError(String);

/// The shared HTTP plumbing handed to [`crate::clients::keyvault::KeyVault::new`] and
/// [`crate::clients::blob::BlobStore::new`]: one transport, one retry policy, one call deadline.
/// Cheap to clone.
#[derive(Clone)]
pub struct AzureHttp {
    client: Arc<dyn HttpClient>,
    /// The direct transport ([`DirectTransport`]) for services no proxy variable applies to;
    /// `None` when [`AzureHttp::with_client`] gave a transport of the caller's.
    direct: Option<Arc<dyn HttpClient>>,
    settings: HttpSettings,
}

impl fmt::Debug for AzureHttp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AzureHttp")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

impl AzureHttp {
    /// Builds the production transports once: `reqwest` + rustls (see the module docs), and the
    /// direct one on hyper ([`DirectTransport`]) with the same TLS configuration. Neither reads a
    /// certificate until the first connection.
    pub fn new(settings: HttpSettings) -> Result<Self, TransportError> {
        let client = build_reqwest_client(&settings)?;
        let direct = DirectTransport::new(&settings, crate::clients::tls::client_config());
        Ok(Self {
            client: Arc::new(client),
            direct: Some(Arc::new(direct)),
            settings,
        })
    }

    /// Uses another [`HttpClient`] for every service, e.g. a socket-free fake in tests.
    pub fn with_client(client: Arc<dyn HttpClient>, settings: HttpSettings) -> Self {
        Self {
            client,
            direct: None,
            settings,
        }
    }

    /// The settings this plumbing was built with.
    pub fn settings(&self) -> &HttpSettings {
        &self.settings
    }

    /// SDK client options carrying the shared transport, our retry policy and `per_try` policies
    /// (they run after the SDK's authorization policy, just before the transport). Public so any
    /// other SDK client the handler builds uses the same transport and retry behaviour.
    pub fn client_options(&self, per_try_policies: Vec<Arc<dyn Policy>>) -> ClientOptions {
        self.options_with(self.client.clone(), per_try_policies)
    }

    /// [`AzureHttp::client_options`] for a client of the service at `service_url`: the direct
    /// transport when no proxy variable applies to that URL (loopback never goes through one),
    /// else reqwest, which sends it through the proxy.
    pub fn client_options_for(
        &self,
        service_url: &Url,
        per_try_policies: Vec<Arc<dyn Policy>>,
    ) -> ClientOptions {
        self.options_with(self.transport_for(service_url), per_try_policies)
    }

    /// The transport [`AzureHttp::client_options_for`] picks for `service_url`.
    fn transport_for(&self, service_url: &Url) -> Arc<dyn HttpClient> {
        match &self.direct {
            Some(direct) if !crate::net::proxy_applies(service_url) => direct.clone(),
            _ => self.client.clone(),
        }
    }

    fn options_with(
        &self,
        transport: Arc<dyn HttpClient>,
        per_try_policies: Vec<Arc<dyn Policy>>,
    ) -> ClientOptions {
        ClientOptions {
            transport: Some(Transport::new(transport)),
            retry: RetryOptions::custom(Arc::new(TransientRetry::from(&self.settings))),
            per_try_policies,
            ..Default::default()
        }
    }
}

/// Builds the `reqwest` client described in the module docs, trusting the process's roots.
pub fn build_reqwest_client(settings: &HttpSettings) -> Result<reqwest::Client, TransportError> {
    build_reqwest_client_trusting(settings, TrustRoots::platform())
}

/// [`build_reqwest_client`] with roots of the caller's (tests that change `SSL_CERT_FILE`).
pub fn build_reqwest_client_trusting(
    settings: &HttpSettings,
    roots: &TrustRoots,
) -> Result<reqwest::Client, TransportError> {
    reqwest::Client::builder()
        .proxy(crate::net::proxy_unless_loopback())
        .tls_backend_preconfigured(roots.client_config())
        .connect_timeout(settings.connect_timeout)
        .timeout(settings.request_timeout)
        .redirect(reqwest::redirect::Policy::none())
        .no_gzip()
        .no_brotli()
        .no_deflate()
        .no_zstd()
        .https_only(true)
        .build()
        .map_err(|e| TransportError(error_chain(&e)))
}

/// Retries transient failures a few times with a doubling pause. Not 429: a throttled call is
/// returned to the caller with the service's Retry-After instead of sleeping inside the invocation.
#[derive(Debug)]
struct TransientRetry {
    max_retries: u32,
    first_delay: SdkDuration,
    max_elapsed: SdkDuration,
}

/// Statuses retried by [`TransientRetry`].
const TRANSIENT_STATUSES: &[StatusCode] = &[
    StatusCode::RequestTimeout,
    StatusCode::InternalServerError,
    StatusCode::BadGateway,
    StatusCode::ServiceUnavailable,
    StatusCode::GatewayTimeout,
];

impl From<&HttpSettings> for TransientRetry {
    fn from(settings: &HttpSettings) -> Self {
        Self {
            max_retries: settings.max_retries,
            first_delay: to_sdk_duration(settings.retry_delay),
            max_elapsed: to_sdk_duration(settings.operation_timeout),
        }
    }
}

fn to_sdk_duration(duration: Duration) -> SdkDuration {
    SdkDuration::try_from(duration).unwrap_or(SdkDuration::MAX)
}

impl RetryPolicy for TransientRetry {
    fn is_expired(&self, since_start: SdkDuration, retry_count: u32) -> bool {
        retry_count >= self.max_retries || since_start >= self.max_elapsed
    }

    fn retry_headers(&self) -> Option<&RetryHeaders> {
        None
    }

    fn retry_status_codes(&self) -> &[StatusCode] {
        TRANSIENT_STATUSES
    }

    fn sleep_duration(&self, retry_count: u32) -> SdkDuration {
        let factor = 2_i32.saturating_pow(retry_count.saturating_sub(1).min(16));
        self.first_delay.saturating_mul(factor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn production_client_builds_with_platform_roots() {
        assert!(build_reqwest_client(&HttpSettings::default()).is_ok());
    }

    #[test]
    fn retry_stops_after_max_retries_and_doubles_its_pause() {
        let retry = TransientRetry::from(&HttpSettings::default());
        assert!(!retry.is_expired(SdkDuration::ZERO, 1));
        assert!(retry.is_expired(SdkDuration::ZERO, 2));
        assert!(retry.is_expired(SdkDuration::seconds(46), 0));
        assert_eq!(retry.sleep_duration(1), SdkDuration::milliseconds(200));
        assert_eq!(retry.sleep_duration(2), SdkDuration::milliseconds(400));
        assert_eq!(
            retry.sleep_duration(u32::MAX),
            SdkDuration::milliseconds(200 * 65536)
        );
    }

    #[test]
    fn throttling_is_not_retried() {
        let retry = TransientRetry::from(&HttpSettings::default());
        assert!(
            !retry
                .retry_status_codes()
                .contains(&StatusCode::TooManyRequests)
        );
        assert!(
            retry
                .retry_status_codes()
                .contains(&StatusCode::ServiceUnavailable)
        );
    }
}
