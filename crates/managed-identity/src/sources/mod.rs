//! Getting one token from the configured source: one module per protocol ([`app_service`],
//! [`legacy`], [`imds`], [`azure_cli`]), the App Service api-version fallback ([`api_version`]),
//! the typed success body ([`response`]) and the status-to-error mapping ([`status`]). No
//! caching here: [`Fetcher`] is what the cache calls on a miss or a refresh.

mod api_version;
mod app_service;
mod azure_cli;
mod imds;
mod legacy;
mod response;
mod status;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use time::{Duration, OffsetDateTime};
use tokio::time::Instant;
use url::Url;

use crate::clock::Clock;
use crate::config::{IdentityOrigin, SourceConfig, Timing};
use crate::error::IdentityError;
use crate::lifetime::{EXPIRY_MARGIN, refresh_on};
use crate::retry::{Budget, send_with_retries};
use crate::secret::AccessTokenSecret;
use crate::transport::{HttpRequest, Transport};
use crate::{IdentitySelector, SourceKind, Token, UserAssignedId};

pub use response::check_token_body;
pub use status::service_detail;

/// One token request: what, for whom, and where the identity choice came from (for hints).
#[derive(Debug, Clone, Copy)]
pub(crate) struct TokenRequest<'a> {
    pub(crate) resource: &'a str,
    pub(crate) identity: &'a IdentitySelector,
    pub(crate) origin: IdentityOrigin,
}

/// A successful answer, before cache bookkeeping.
#[derive(Debug)]
pub(crate) struct ParsedToken {
    pub(crate) access_token: AccessTokenSecret,
    pub(crate) expires_on: OffsetDateTime,
    pub(crate) refresh_in: Option<Duration>,
    pub(crate) resource: Option<String>,
    pub(crate) token_type: Option<String>,
}

/// Fetches tokens from the configured source (no caching here).
#[derive(Debug)]
pub(crate) struct Fetcher {
    source: SourceConfig,
    transport: Arc<dyn Transport>,
    timing: Timing,
    clock: Clock,
    cli_program: String,
    /// Set once the 2019 endpoint said `UnsupportedApiVersion`; from then on we speak 2017.
    use_legacy: AtomicBool,
    /// One permit per acquisition in flight (`Timing::max_concurrent_requests`).
    permits: tokio::sync::Semaphore,
}

impl Fetcher {
    pub(crate) fn new(
        source: SourceConfig,
        transport: Arc<dyn Transport>,
        timing: Timing,
        clock: Clock,
        cli_program: String,
    ) -> Self {
        let permits = tokio::sync::Semaphore::new(timing.max_concurrent_requests.max(1));
        Self {
            source,
            transport,
            timing,
            clock,
            permits,
            cli_program,
            use_legacy: AtomicBool::new(false),
        }
    }

    /// The source requests currently go to (App Service switches to legacy after a fallback).
    pub(crate) fn current_kind(&self) -> SourceKind {
        match &self.source {
            SourceConfig::AppService {
                legacy: Some(_), ..
            } if self.use_legacy.load(Ordering::Acquire) => SourceKind::AppService2017,
            other => other.kind(),
        }
    }

    /// Refuses identities the source cannot select, before touching the cache or network.
    pub(crate) fn check_supported(&self, identity: &IdentitySelector) -> Result<(), IdentityError> {
        let kind = self.current_kind();
        let reason = match (kind, identity) {
            (SourceKind::AzureCli, IdentitySelector::UserAssigned(_)) => {
                "the Azure CLI issues tokens for the account signed in with `az login` and cannot select a user-assigned identity"
            }
            (
                SourceKind::AppService2017,
                IdentitySelector::UserAssigned(
                    UserAssignedId::ObjectId(_) | UserAssignedId::ResourceId(_),
                ),
            ) => legacy::CLIENT_ID_ONLY,
            _ => return Ok(()),
        };
        Err(IdentityError::UnsupportedIdentity {
            source_kind: kind,
            identity: identity.clone(),
            reason: reason.into(),
        })
    }

    /// Gets one token from the source, with retries, inside the acquisition deadline.
    pub(crate) async fn fetch(&self, request: TokenRequest<'_>) -> Result<Token, IdentityError> {
        let started = Instant::now();
        // The permit is held for the whole acquisition, retries and the CLI run included.
        let Ok(Ok(_permit)) =
            tokio::time::timeout(self.timing.deadline, self.permits.acquire()).await
        else {
            let kind = self.current_kind();
            return Err(IdentityError::Unavailable {
                source_kind: kind,
                attempts: 0,
                detail: format!(
                    "{} token requests were already in flight and none finished within {} s",
                    self.timing.max_concurrent_requests,
                    self.timing.deadline.as_secs()
                ),
                service: Box::default(),
                setting: kind.settings(),
            });
        };
        let issued = self.clock.now();
        let (parsed, kind) = match &self.source {
            SourceConfig::AzureCli { tenant } => {
                let parsed = azure_cli::fetch(
                    &self.cli_program,
                    request.resource,
                    tenant.as_deref(),
                    self.timing.cli_timeout,
                    issued,
                )
                .await?;
                (parsed, SourceKind::AzureCli)
            }
            SourceConfig::Imds { endpoint } => {
                let http = imds::request(endpoint, request);
                let parsed = self
                    .fetch_http(SourceKind::Imds, &http, request, started, issued)
                    .await?;
                (parsed, SourceKind::Imds)
            }
            SourceConfig::Legacy(legacy) => {
                let http = legacy::request(&legacy.endpoint, &legacy.secret, request)?;
                let kind = SourceKind::AppService2017;
                (
                    self.fetch_http(kind, &http, request, started, issued)
                        .await?,
                    kind,
                )
            }
            SourceConfig::AppService {
                endpoint,
                header,
                legacy,
            } => {
                self.fetch_app_service(endpoint, header, legacy.as_ref(), request, started, issued)
                    .await?
            }
        };
        Ok(self.finish(parsed, kind, request, issued))
    }

    async fn fetch_http(
        &self,
        kind: SourceKind,
        http: &HttpRequest,
        request: TokenRequest<'_>,
        started: Instant,
        issued: OffsetDateTime,
    ) -> Result<ParsedToken, IdentityError> {
        log_request(kind, http, request);
        let outcome = send_with_retries(
            self.transport.as_ref(),
            http,
            kind,
            &self.timing.retry,
            self.budget(started),
        )
        .await;
        status::interpret(
            kind,
            http,
            outcome.last,
            outcome.attempts,
            outcome.stop,
            request,
            issued,
        )
    }

    fn finish(
        &self,
        parsed: ParsedToken,
        kind: SourceKind,
        request: TokenRequest<'_>,
        issued: OffsetDateTime,
    ) -> Token {
        let refresh_on = refresh_on(issued, parsed.expires_on, parsed.refresh_in);
        log::info!(
            "{kind}: got a token for {} as {}, expires {}, refresh from {}",
            request.resource,
            request.identity,
            parsed.expires_on,
            refresh_on
        );
        if parsed.expires_on - issued < EXPIRY_MARGIN {
            log::warn!(
                "{kind}: the token for {} lives less than 5 minutes; every call will fetch a new one",
                request.resource
            );
        }
        Token {
            access_token: parsed.access_token,
            token_type: parsed.token_type.map_or_else(|| "Bearer".into(), Arc::from),
            resource: parsed
                .resource
                .map_or_else(|| Arc::from(request.resource), Arc::from),
            expires_on: parsed.expires_on,
            refresh_on,
            source: kind,
            identity: request.identity.clone(),
            claims: Default::default(),
        }
    }

    /// The time limits of an acquisition that started at `started`.
    fn budget(&self, started: Instant) -> Budget {
        Budget {
            started,
            deadline: self.timing.deadline,
            request_timeout: self.timing.request_timeout,
        }
    }
}

/// Logs what is requested (the URL holds the resource and identity id, never a secret; the
/// request's `Debug` lists header names only).
fn log_request(kind: SourceKind, http: &HttpRequest, request: TokenRequest<'_>) {
    log::debug!(
        "{kind}: requesting a token for {} as {}",
        request.resource,
        request.identity
    );
    log::trace!("{kind}: GET {http:?}");
}

/// Form-encodes a query like Python's `urlencode`, as the official Python SDK's requests are:
/// unreserved characters stay, space becomes `+`, everything else is `%XX`.
pub(crate) fn encode_query(pairs: &[(&str, &str)]) -> String {
    pairs
        .iter()
        .map(|(k, v)| format!("{}={}", form_encode(k), form_encode(v)))
        .collect::<Vec<_>>()
        .join("&")
}

fn form_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                out.push(byte as char)
            }
            b' ' => out.push('+'),
            other => out.push_str(&format!("%{other:02X}")),
        }
    }
    out
}

fn with_query(endpoint: &Url, pairs: &[(&str, &str)]) -> Url {
    let mut url = endpoint.clone();
    url.set_query(Some(&encode_query(pairs)));
    url
}

/// `endpoint` with the query `api-version`, `resource` and the user-assigned selector, spelled
/// as the source spells it: `names` are its parameters for a client id, an object id and a
/// resource id, in that order.
fn selector_url(
    endpoint: &Url,
    api_version: &str,
    request: &TokenRequest<'_>,
    [client, object, resource]: [&'static str; 3],
) -> Url {
    let mut pairs = vec![("api-version", api_version), ("resource", request.resource)];
    if let IdentitySelector::UserAssigned(id) = request.identity {
        let name = match id {
            UserAssignedId::ClientId(_) => client,
            UserAssignedId::ObjectId(_) => object,
            UserAssignedId::ResourceId(_) => resource,
        };
        pairs.push((name, id.value()));
    }
    with_query(endpoint, &pairs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_is_encoded_like_python_urlencode() {
        assert_eq!(
            encode_query(&[("resource", "https://vault.azure.net"), ("x", "a b~c*é/")]),
            "resource=https%3A%2F%2Fvault.azure.net&x=a+b~c%2A%C3%A9%2F"
        );
    }
}
