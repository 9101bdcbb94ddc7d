//! The one HTTP operation the module needs (a GET with headers), behind a trait so the cache and
//! retry logic can be tested with a scripted transport on a paused clock.

use crate::capped_body::{CappedBodyError, read_capped};
use crate::error_chain::error_chain;
use std::fmt;

use async_trait::async_trait;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use url::Url;

use super::error::IdentityConfigError;
use super::secret::HeaderSecret;

/// Largest response body we read; identity answers are a few kilobytes.
const MAX_BODY_BYTES: usize = 64 * 1024;

/// A header value that is either public or a secret (sent, never printed).
#[derive(Clone, Debug)]
pub(crate) enum HeaderText {
    Plain(&'static str),
    Secret(HeaderSecret),
}

impl HeaderText {
    pub(crate) fn value(&self) -> &str {
        match self {
            Self::Plain(v) => v,
            Self::Secret(s) => s.expose(),
        }
    }
}

/// A GET request to an identity endpoint. `Debug` shows the URL and header names only.
#[derive(Clone)]
pub(crate) struct HttpRequest {
    pub(crate) url: Url,
    pub(crate) headers: Vec<(&'static str, HeaderText)>,
}

impl fmt::Debug for HttpRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<&str> = self.headers.iter().map(|(name, _)| *name).collect();
        f.debug_struct("HttpRequest")
            .field("url", &self.url.as_str())
            .field("headers", &names)
            .finish()
    }
}

/// What came back: status, `Retry-After` (raw), `Location` presence and a bounded body.
#[derive(Clone, Debug)]
pub(crate) struct HttpResponse {
    pub(crate) status: u16,
    pub(crate) retry_after: Option<String>,
    pub(crate) body: Vec<u8>,
}

/// Why no response arrived.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum TransportError {
    /// Could not connect (refused, unreachable, connect timeout).
    Connect(String),
    /// The request timed out after connecting.
    Timeout,
    /// Anything else (reset, protocol error, body read failure).
    Other(String),
}

impl fmt::Display for TransportError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Connect(detail) => write!(f, "cannot connect: {detail}"),
            Self::Timeout => f.write_str("request timed out"),
            Self::Other(detail) => write!(f, "request failed: {detail}"),
        }
    }
}

/// Sends one GET request. Implementations must not follow redirects.
#[async_trait]
pub(crate) trait Transport: Send + Sync + fmt::Debug {
    async fn get(&self, request: &HttpRequest) -> Result<HttpResponse, TransportError>;
}

/// The production transport: reqwest with no redirects, no proxy, connect and total timeouts.
#[derive(Debug, Clone)]
pub(crate) struct ReqwestTransport {
    client: reqwest::Client,
}

impl ReqwestTransport {
    /// A client with `tls` as its TLS configuration, or reqwest's own rustls set-up (the
    /// platform's roots, read when the client is built) when `tls` is `None`.
    pub(crate) fn new(
        connect_timeout: std::time::Duration,
        request_timeout: std::time::Duration,
        tls: Option<rustls::ClientConfig>,
    ) -> Result<Self, IdentityConfigError> {
        let builder = match tls {
            Some(tls) => reqwest::Client::builder().tls_backend_preconfigured(tls),
            None => reqwest::Client::builder(),
        };
        let client = builder
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .connect_timeout(connect_timeout)
            .timeout(request_timeout)
            .user_agent(concat!(
                "handler/",
                env!("CARGO_PKG_VERSION"),
                " managed-identity"
            ))
            .build()
            .map_err(|e| IdentityConfigError::HttpClient(e.to_string()))?;
        Ok(Self { client })
    }
}

#[async_trait]
impl Transport for ReqwestTransport {
    async fn get(&self, request: &HttpRequest) -> Result<HttpResponse, TransportError> {
        let mut headers = HeaderMap::new();
        for (name, text) in &request.headers {
            let mut value = HeaderValue::from_str(text.value())
                .map_err(|_| TransportError::Other(format!("invalid value for header {name}")))?;
            if matches!(text, HeaderText::Secret(_)) {
                value.set_sensitive(true);
            }
            let name = HeaderName::from_bytes(name.as_bytes())
                .map_err(|_| TransportError::Other(format!("invalid header name {name}")))?;
            headers.insert(name, value);
        }
        let response = self
            .client
            .get(request.url.clone())
            .headers(headers)
            .send()
            .await
            .map_err(classify)?;
        let status = response.status().as_u16();
        let retry_after = response
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        // An oversized answer keeps its status (which decides retries) and the start of its
        // body (which error messages quote).
        let body = match read_capped(response, MAX_BODY_BYTES).await {
            Ok(body) | Err(CappedBodyError::TooLarge { head: body }) => body,
            Err(CappedBodyError::Read(error)) => return Err(classify(error)),
        };
        Ok(HttpResponse {
            status,
            retry_after,
            body,
        })
    }
}

/// Maps a reqwest error to our kinds. reqwest's messages hold the URL (endpoint, resource and
/// identity id: not secrets) and never header values.
fn classify(error: reqwest::Error) -> TransportError {
    if error.is_timeout() {
        TransportError::Timeout
    } else if error.is_connect() {
        TransportError::Connect(error_chain(&error))
    } else {
        TransportError::Other(error_chain(&error))
    }
}
