//! Talking to each source: the exact request per protocol, reading the answer, turning
//! failures into [`IdentityError`]s with hints, the App Service `UnsupportedApiVersion`
//! fallback, and the Azure CLI developer fallback.

use std::path::Path;
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use serde_json::{Map, Value};
use time::{Duration, OffsetDateTime};
use tokio::time::Instant;
use url::Url;

use super::cache::Clock;
use super::config::{IdentityOrigin, SourceConfig, Timing};
use super::error::{CliFailure, IdentityError, ServiceDetail};
use super::expiry::{parse_expires_on, parse_seconds};
use super::retry::{StopReason, send_with_retries};
use super::secret::{AccessTokenSecret, HeaderSecret, redacted_excerpt};
use super::transport::{HeaderText, HttpRequest, HttpResponse, Transport, TransportError};
use super::{IdentitySelector, SourceKind, Token, UserAssignedId};

const API_VERSION_2019: &str = "2019-08-01";
const API_VERSION_2017: &str = "2017-09-01";
const API_VERSION_IMDS: &str = "2018-02-01";

/// Tokens are never handed out with less than this left.
pub(crate) const EXPIRY_MARGIN: Duration = Duration::minutes(5);
/// Tokens living at least this long are refreshed at half-life.
const HALF_LIFE_THRESHOLD: Duration = Duration::hours(2);

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
            ) => {
                "the legacy 2017-09-01 endpoint (MSI_ENDPOINT) selects user-assigned identities by client id only"
            }
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
                let parsed = fetch_from_cli(
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
                let http = imds_request(endpoint, request);
                let parsed = self
                    .fetch_http(SourceKind::Imds, &http, request, started, issued)
                    .await?;
                (parsed, SourceKind::Imds)
            }
            SourceConfig::Legacy(legacy) => {
                let http = legacy_request(&legacy.endpoint, &legacy.secret, request)?;
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

    async fn fetch_app_service(
        &self,
        endpoint: &Url,
        header: &HeaderSecret,
        legacy: Option<&super::config::LegacyEndpoint>,
        request: TokenRequest<'_>,
        started: Instant,
        issued: OffsetDateTime,
    ) -> Result<(ParsedToken, SourceKind), IdentityError> {
        if let Some(legacy) = legacy.filter(|_| self.use_legacy.load(Ordering::Acquire)) {
            let http = legacy_request(&legacy.endpoint, &legacy.secret, request)?;
            let kind = SourceKind::AppService2017;
            return Ok((
                self.fetch_http(kind, &http, request, started, issued)
                    .await?,
                kind,
            ));
        }
        let kind = SourceKind::AppService2019;
        let http = app_service_request(endpoint, header, request);
        log_request(kind, &http, request);
        let outcome =
            send_with_retries(self.transport.as_ref(), &http, kind, &self.timing, started).await;
        if let (Some(legacy), Ok(response)) = (legacy, &outcome.last)
            && is_unsupported_api_version(response)
        {
            log::warn!(
                "{kind} answered UnsupportedApiVersion; using the legacy 2017-09-01 protocol (MSI_ENDPOINT) from now on"
            );
            self.use_legacy.store(true, Ordering::Release);
            self.check_supported(request.identity)?;
            let http = legacy_request(&legacy.endpoint, &legacy.secret, request)?;
            let kind = SourceKind::AppService2017;
            return Ok((
                self.fetch_http(kind, &http, request, started, issued)
                    .await?,
                kind,
            ));
        }
        let parsed = interpret(
            kind,
            &http,
            outcome.last,
            outcome.attempts,
            outcome.stop,
            request,
            issued,
        )?;
        Ok((parsed, kind))
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
        let outcome =
            send_with_retries(self.transport.as_ref(), http, kind, &self.timing, started).await;
        interpret(
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
            token_type: parsed.token_type.unwrap_or_else(|| "Bearer".into()),
            resource: parsed
                .resource
                .unwrap_or_else(|| request.resource.to_owned()),
            expires_on: parsed.expires_on,
            refresh_on,
            source: kind,
            identity: request.identity.clone(),
            claims: Default::default(),
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

/// When the cache should start refreshing: `refresh_in` if the service sent one, else half-life
/// for tokens living ≥ 2 h, never later than 5 minutes before expiry.
pub(crate) fn refresh_on(
    issued: OffsetDateTime,
    expires_on: OffsetDateTime,
    refresh_in: Option<Duration>,
) -> OffsetDateTime {
    let last_moment = expires_on - EXPIRY_MARGIN;
    let lifetime = expires_on - issued;
    let proposed = match refresh_in {
        Some(refresh_in) => issued.checked_add(refresh_in).unwrap_or(last_moment),
        None if lifetime >= HALF_LIFE_THRESHOLD => issued + lifetime / 2,
        None => last_moment,
    };
    proposed.min(last_moment)
}

/// Form-encodes a query like Python's `urlencode` (which the SDKs' golden requests use):
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

/// App Service 2019-08-01: `client_id` / `principal_id` / `mi_res_id`, `X-IDENTITY-HEADER`, and
/// `Metadata: true` as MSAL and the Rust SDK send it.
pub(crate) fn app_service_request(
    endpoint: &Url,
    header: &HeaderSecret,
    request: TokenRequest<'_>,
) -> HttpRequest {
    let pairs = selector_query(
        API_VERSION_2019,
        &request,
        ["client_id", "principal_id", "mi_res_id"],
    );
    HttpRequest {
        url: with_query(endpoint, &pairs),
        headers: vec![
            ("x-identity-header", HeaderText::Secret(header.clone())),
            ("metadata", HeaderText::Plain("true")),
        ],
    }
}

/// Legacy 2017-09-01: `clientid` only, header `secret`.
pub(crate) fn legacy_request(
    endpoint: &Url,
    secret: &HeaderSecret,
    request: TokenRequest<'_>,
) -> Result<HttpRequest, IdentityError> {
    let mut pairs = vec![
        ("api-version", API_VERSION_2017),
        ("resource", request.resource),
    ];
    match request.identity {
        IdentitySelector::SystemAssigned => {}
        IdentitySelector::UserAssigned(UserAssignedId::ClientId(id)) => {
            pairs.push(("clientid", id))
        }
        IdentitySelector::UserAssigned(_) => {
            return Err(IdentityError::UnsupportedIdentity {
                source_kind: SourceKind::AppService2017,
                identity: request.identity.clone(),
                reason: "the legacy 2017-09-01 endpoint (MSI_ENDPOINT) selects user-assigned identities by client id only".into(),
            });
        }
    }
    Ok(HttpRequest {
        url: with_query(endpoint, &pairs),
        headers: vec![("secret", HeaderText::Secret(secret.clone()))],
    })
}

/// IMDS 2018-02-01: `client_id` / `object_id` / `msi_res_id`, `Metadata: true`.
pub(crate) fn imds_request(endpoint: &Url, request: TokenRequest<'_>) -> HttpRequest {
    let pairs = selector_query(
        API_VERSION_IMDS,
        &request,
        ["client_id", "object_id", "msi_res_id"],
    );
    HttpRequest {
        url: with_query(endpoint, &pairs),
        headers: vec![("metadata", HeaderText::Plain("true"))],
    }
}

/// `api-version`, `resource` and the user-assigned selector, spelled as the source spells it:
/// `names` are its parameters for a client id, an object id and a resource id, in that order.
fn selector_query<'a>(
    api_version: &'a str,
    request: &TokenRequest<'a>,
    [client, object, resource]: [&'static str; 3],
) -> Vec<(&'a str, &'a str)> {
    let mut pairs = vec![("api-version", api_version), ("resource", request.resource)];
    if let IdentitySelector::UserAssigned(id) = request.identity {
        let name = match id {
            UserAssignedId::ClientId(_) => client,
            UserAssignedId::ObjectId(_) => object,
            UserAssignedId::ResourceId(_) => resource,
        };
        pairs.push((name, id.value()));
    }
    pairs
}

/// Whether a 2019-08-01 answer says that api-version is not supported. Only the error body's
/// code counts, never a word anywhere in it (an endpoint may echo a caller's value in its
/// message): ASP.NET API versioning's `{"error": {"code": "UnsupportedApiVersion", …}}` (any
/// case of the member names), a string `error` or `code` member, or App Service's
/// `{"statusCode": 400, "message": "UnsupportedApiVersion: …"}` whose message starts with it.
pub(crate) fn is_unsupported_api_version(response: &HttpResponse) -> bool {
    const CODE: &str = "UnsupportedApiVersion";
    if response.status != 400 {
        return false;
    }
    let Ok(Value::Object(body)) = serde_json::from_slice::<Value>(&response.body) else {
        return false;
    };
    let member = |map: &Map<String, Value>, name: &str| -> Option<Value> {
        map.iter()
            .find(|(key, _)| key.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.clone())
    };
    let is_code = |value: Option<Value>| {
        value
            .as_ref()
            .and_then(Value::as_str)
            .is_some_and(|code| code.eq_ignore_ascii_case(CODE))
    };
    let nested_code = match member(&body, "error") {
        Some(Value::Object(error)) => is_code(member(&error, "code")),
        other => is_code(other),
    };
    let message_code = member(&body, "message")
        .as_ref()
        .and_then(Value::as_str)
        .and_then(|message| message.split_once(':'))
        .is_some_and(|(code, _)| code.trim() == CODE);
    nested_code || is_code(member(&body, "code")) || message_code
}

/// Turns the last outcome of the retry loop into a token or a typed error.
fn interpret(
    kind: SourceKind,
    http: &HttpRequest,
    last: Result<HttpResponse, TransportError>,
    attempts: u32,
    stop: StopReason,
    request: TokenRequest<'_>,
    issued: OffsetDateTime,
) -> Result<ParsedToken, IdentityError> {
    let response = match last {
        Ok(response) => response,
        Err(error) => {
            let detail = match stop {
                StopReason::Deadline => format!("{error} (acquisition deadline reached)"),
                _ => error.to_string(),
            };
            return Err(IdentityError::Unavailable {
                source_kind: kind,
                attempts,
                detail,
                service: Box::default(),
                setting: kind.settings(),
            });
        }
    };
    let status = response.status;
    if (200..300).contains(&status) {
        return parse_token_body(kind, &response.body, issued);
    }
    let body = without_header_secrets(&response.body, http);
    let service = Box::new(service_detail(&body));
    let identity = request.identity.clone();
    let error = match status {
        400 => IdentityError::IdentityNotFound {
            source_kind: kind,
            identity,
            resource: request.resource.to_owned(),
            service,
            hint: identity_hint(request),
        },
        403 if kind == SourceKind::Imds && body_mentions(&response.body, "unreachable") => {
            IdentityError::Unavailable {
                source_kind: kind,
                attempts,
                detail: "HTTP 403 from a proxy: the IMDS network is unreachable".into(),
                service,
                setting: kind.settings(),
            }
        }
        401 | 403 => IdentityError::Forbidden {
            source_kind: kind,
            status,
            identity,
            service,
            hint: forbidden_hint(kind, status, request),
        },
        429 => IdentityError::Throttled {
            source_kind: kind,
            attempts,
            retry_after: match stop {
                StopReason::RetryAfterTooLong(wait) => Some(wait),
                _ => response
                    .retry_after
                    .as_deref()
                    .and_then(super::retry::parse_retry_after),
            },
            service,
        },
        300..=399 => IdentityError::Rejected {
            source_kind: kind,
            status,
            service,
            hint: format!(
                "redirects are never followed (the secret header must not travel); point {} straight at the identity endpoint",
                kind.settings()
            ),
        },
        _ if super::retry::is_retryable_status(kind, status) => IdentityError::Unavailable {
            source_kind: kind,
            attempts,
            detail: match stop {
                StopReason::Deadline => format!("HTTP {status} (acquisition deadline reached)"),
                _ => format!("HTTP {status}"),
            },
            service,
            setting: kind.settings(),
        },
        _ => IdentityError::Rejected {
            source_kind: kind,
            status,
            service,
            hint: format!("check {}", kind.settings()),
        },
    };
    Err(error)
}

/// The body with every header secret we sent replaced, in case an endpoint echoes it back.
fn without_header_secrets(body: &[u8], http: &HttpRequest) -> Vec<u8> {
    let mut text = String::from_utf8_lossy(body).into_owned();
    for (_, value) in &http.headers {
        if let HeaderText::Secret(secret) = value
            && !secret.expose().is_empty()
        {
            text = text.replace(secret.expose(), "****");
        }
    }
    text.into_bytes()
}

fn body_mentions(body: &[u8], word: &str) -> bool {
    String::from_utf8_lossy(body)
        .to_ascii_lowercase()
        .contains(word)
}

fn origin_setting(origin: IdentityOrigin) -> &'static str {
    match origin {
        IdentityOrigin::Setting(variable) => variable,
        IdentityOrigin::Caller => "the identity the caller passed",
        IdentityOrigin::Default => "AZURE_CLIENT_ID",
    }
}

fn identity_hint(request: TokenRequest<'_>) -> String {
    let who = match request.identity {
        IdentitySelector::SystemAssigned => {
            "is the system-assigned identity enabled on the app? (to use a user-assigned identity set MANAGED_IDENTITY_CLIENT_ID or AZURE_CLIENT_ID)".to_owned()
        }
        IdentitySelector::UserAssigned(id) => format!(
            "is a user-assigned identity with {} {} attached to the app? check {}",
            id.kind_words(),
            id.value(),
            origin_setting(request.origin)
        ),
    };
    format!("{who}; is \"{}\" a valid resource?", request.resource)
}

fn forbidden_hint(kind: SourceKind, status: u16, request: TokenRequest<'_>) -> String {
    match kind {
        SourceKind::AppService2019 | SourceKind::AppService2017 => format!(
            "the endpoint refused the request for {}; is the secret in {} current? (the platform rotates it)",
            request.identity,
            kind.settings()
        ),
        _ => format!(
            "the endpoint refused the request (HTTP {status}) for {}; check {}",
            request.identity,
            kind.settings()
        ),
    }
}

/// Reads `message` / `error_description` / `error` / `correlationId` from an error body, or an
/// excerpt of a non-JSON body; always redacted.
pub fn service_detail(body: &[u8]) -> ServiceDetail {
    let text = |v: Option<&Value>| v.and_then(Value::as_str).map(redacted_excerpt);
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(map)) => {
            let nested = map.get("error").and_then(Value::as_object);
            ServiceDetail {
                message: text(map.get("message"))
                    .or_else(|| text(map.get("Message")))
                    .or_else(|| text(map.get("error_description")))
                    .or_else(|| text(nested.and_then(|e| e.get("message")))),
                code: text(map.get("error")).or_else(|| text(nested.and_then(|e| e.get("code")))),
                correlation_id: text(map.get("correlationId")),
            }
        }
        _ if body.iter().all(u8::is_ascii_whitespace) => ServiceDetail::default(),
        _ => ServiceDetail {
            message: Some(redacted_excerpt(&String::from_utf8_lossy(body))),
            ..ServiceDetail::default()
        },
    }
}

/// Reads a token endpoint's success body exactly as a fetch does, keeping only whether it was
/// accepted and the expiry it found: the entry point `crates/fuzz` drives, since the parsed token
/// itself stays inside this module.
pub fn check_token_body(
    kind: SourceKind,
    body: &[u8],
    issued: OffsetDateTime,
) -> Result<OffsetDateTime, IdentityError> {
    parse_token_body(kind, body, issued).map(|token| token.expires_on)
}

/// Reads a success body: `access_token` and an expiry are required; `expires_on` in any known
/// form, `expires_in` anchored at `issued` (the earlier expiry wins), `refresh_in` if present.
pub(crate) fn parse_token_body(
    kind: SourceKind,
    body: &[u8],
    issued: OffsetDateTime,
) -> Result<ParsedToken, IdentityError> {
    let malformed = |detail: String| IdentityError::Malformed {
        source_kind: kind,
        detail,
    };
    let map: Map<String, Value> = match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(map)) => map,
        Ok(_) => return Err(malformed("the body is JSON but not an object".into())),
        Err(_) => {
            return Err(malformed(format!(
                "the body is not JSON: \"{}\"",
                redacted_excerpt(&String::from_utf8_lossy(body))
            )));
        }
    };
    let access_token = match map.get("access_token") {
        Some(Value::String(token)) if !token.is_empty() => AccessTokenSecret::new(token.clone()),
        _ => {
            let fields: Vec<&str> = map.keys().map(String::as_str).collect();
            return Err(malformed(format!(
                "no access_token (fields present: {})",
                fields.join(", ")
            )));
        }
    };
    let absolute = map
        .get("expires_on")
        .filter(|v| !is_blank(v))
        .map(parse_expires_on)
        .transpose()
        .map_err(malformed)?;
    let relative = map
        .get("expires_in")
        .filter(|v| !is_blank(v))
        .map(parse_seconds)
        .transpose()
        .map_err(|e| malformed(format!("expires_in: {e}")))?
        .map(|lifetime| {
            issued
                .checked_add(lifetime)
                .ok_or_else(|| malformed("expires_in is out of range".into()))
        })
        .transpose()?;
    let expires_on = match (absolute, relative) {
        (Some(a), Some(r)) => a.min(r),
        (Some(a), None) => a,
        (None, Some(r)) => r,
        (None, None) => {
            return Err(malformed(
                "neither expires_on nor expires_in is present; refusing to guess a lifetime".into(),
            ));
        }
    };
    if expires_on <= issued {
        return Err(malformed(format!(
            "the token expired already ({expires_on}); is the system clock right?"
        )));
    }
    let refresh_in = map
        .get("refresh_in")
        .filter(|v| !is_blank(v))
        .and_then(|v| parse_seconds(v).ok());
    let optional = |name: &str| {
        map.get(name)
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
    };
    Ok(ParsedToken {
        access_token,
        expires_on,
        refresh_in,
        resource: optional("resource"),
        token_type: optional("token_type"),
    })
}

fn is_blank(value: &Value) -> bool {
    match value {
        Value::Null => true,
        Value::String(s) => s.trim().is_empty(),
        _ => false,
    }
}

/// Runs `az account get-access-token --output json --resource R [--tenant T]` with stdin closed,
/// no colour, and a time limit; output is only ever quoted redacted.
async fn fetch_from_cli(
    program: &str,
    resource: &str,
    tenant: Option<&str>,
    limit: std::time::Duration,
    issued: OffsetDateTime,
) -> Result<ParsedToken, IdentityError> {
    let fail = |failure: CliFailure, detail: String| IdentityError::Cli {
        source_kind: SourceKind::AzureCli,
        failure,
        detail,
    };
    // Checked again here, next to the process it protects (get_token has checked it already).
    super::scope::normalize_scope(resource)?;
    let mut command = cli_command(program);
    command.args([
        "account",
        "get-access-token",
        "--output",
        "json",
        "--resource",
        resource,
    ]);
    if let Some(tenant) = tenant {
        command.args(["--tenant", tenant]);
    }
    command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .env("AZURE_CORE_NO_COLOR", "true")
        .kill_on_drop(true);
    if Path::new("/bin").is_dir() {
        command.current_dir("/bin");
    }
    log::debug!("Azure CLI: requesting a token for {resource}");
    let child = command.spawn().map_err(|e| {
        if e.kind() == std::io::ErrorKind::NotFound {
            fail(
                CliFailure::NotInstalled,
                "the Azure CLI (az) is not installed or not on PATH; install it, or unset AZURE_TOKEN_CREDENTIALS".into(),
            )
        } else {
            fail(CliFailure::Failed, format!("cannot start az: {e}"))
        }
    })?;
    let output = match tokio::time::timeout(limit, child.wait_with_output()).await {
        Ok(Ok(output)) => output,
        Ok(Err(e)) => return Err(fail(CliFailure::Failed, format!("az failed: {e}"))),
        Err(_) => {
            return Err(fail(
                CliFailure::TimedOut,
                format!("az did not answer within {} s", limit.as_secs()),
            ));
        }
    };
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        let code = output.status.code();
        if code == Some(127) || stderr.contains("not recognized") {
            return Err(fail(
                CliFailure::NotInstalled,
                "the Azure CLI (az) is not installed or not on PATH".into(),
            ));
        }
        if (stderr.contains("az login") || stderr.contains("az account set"))
            && !stderr.contains("AADSTS")
        {
            return Err(fail(
                CliFailure::NotLoggedIn,
                "not logged in to the Azure CLI; run `az login`".into(),
            ));
        }
        return Err(fail(
            CliFailure::Failed,
            format!(
                "az exited with {}: {}",
                code.map_or_else(|| "a signal".to_owned(), |c| c.to_string()),
                redacted_excerpt(&stderr)
            ),
        ));
    }
    parse_cli_output(&output.stdout, issued)
}

/// The Azure CLI is started directly, never through a shell (`cmd /c`, `sh -c`), so no
/// argument is ever read as shell syntax.
fn cli_command(program: &str) -> tokio::process::Command {
    tokio::process::Command::new(cli_program(program, cfg!(windows)))
}

/// The program to start. On Windows `az` is a batch file, `az.cmd` (the installer puts its
/// folder on PATH): it is named with its extension so that the standard library finds it on
/// PATH and, being a batch file, quotes every argument for cmd.exe's rules itself — since Rust
/// 1.77 it refuses an argument it cannot quote safely instead of passing it on
/// (https://blog.rust-lang.org/2024/04/09/cve-2024-24576.html). The scope grammar keeps every
/// argument to characters cmd.exe gives no meaning to, so that is a second wall, not the only one.
pub(crate) fn cli_program(program: &str, windows: bool) -> String {
    if windows && Path::new(program).extension().is_none() {
        format!("{program}.cmd")
    } else {
        program.to_owned()
    }
}

/// Reads `az account get-access-token` JSON: `accessToken` and the epoch `expires_on` (CLI ≥ 2.54).
pub(crate) fn parse_cli_output(
    stdout: &[u8],
    issued: OffsetDateTime,
) -> Result<ParsedToken, IdentityError> {
    let fail = |detail: String| IdentityError::Cli {
        source_kind: SourceKind::AzureCli,
        failure: CliFailure::Failed,
        detail,
    };
    let Ok(Value::Object(map)) = serde_json::from_slice::<Value>(stdout) else {
        return Err(fail(format!(
            "az printed something that is not a JSON object: \"{}\"",
            redacted_excerpt(&String::from_utf8_lossy(stdout))
        )));
    };
    let access_token = match map.get("accessToken") {
        Some(Value::String(token)) if !token.is_empty() => AccessTokenSecret::new(token.clone()),
        _ => return Err(fail("az printed no accessToken".into())),
    };
    let Some(expires) = map.get("expires_on").filter(|v| !is_blank(v)) else {
        return Err(fail(
            "az printed no expires_on; upgrade the Azure CLI to 2.54 or later".into(),
        ));
    };
    let expires_on = parse_expires_on(expires).map_err(fail)?;
    if expires_on <= issued {
        return Err(fail(
            "az returned an expired token; run `az login` again".into(),
        ));
    }
    Ok(ParsedToken {
        access_token,
        expires_on,
        refresh_in: None,
        resource: None,
        token_type: map
            .get("tokenType")
            .and_then(Value::as_str)
            .map(str::to_owned),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn query_is_encoded_like_python_urlencode() {
        assert_eq!(
            encode_query(&[("resource", "https://vault.azure.net"), ("x", "a b~c*é/")]),
            "resource=https%3A%2F%2Fvault.azure.net&x=a+b~c%2A%C3%A9%2F"
        );
    }

    #[test]
    fn refresh_on_rules() {
        let issued = datetime!(2030-01-01 00:00 UTC);
        let day = issued + Duration::hours(24);
        assert_eq!(refresh_on(issued, day, None), issued + Duration::hours(12));
        let two_hours = issued + Duration::hours(2);
        assert_eq!(
            refresh_on(issued, two_hours, None),
            issued + Duration::hours(1)
        );
        let hour = issued + Duration::hours(1);
        assert_eq!(refresh_on(issued, hour, None), hour - EXPIRY_MARGIN);
        assert_eq!(
            refresh_on(issued, day, Some(Duration::minutes(10))),
            issued + Duration::minutes(10)
        );
        // refresh_in can never push refreshing into the 5-minute margin.
        assert_eq!(
            refresh_on(issued, hour, Some(Duration::hours(2))),
            hour - EXPIRY_MARGIN
        );
    }

    #[test]
    fn only_the_error_code_means_unsupported_api_version() {
        let answer = |status: u16, body: &str| HttpResponse {
            status,
            retry_after: None,
            body: body.as_bytes().to_vec(),
        };
        for yes in [
            r#"{"statusCode":400,"message":"UnsupportedApiVersion: The HTTP resource does not support the api-version '2019-08-01'.","correlationId":"c"}"#,
            r#"{"Error":{"Code":"UnsupportedApiVersion","Message":"The HTTP resource that matches the request URI does not support the API version '2019-08-01'.","InnerError":null}}"#,
            r#"{"error":{"code":"UnsupportedApiVersion","message":"x"}}"#,
            r#"{"error":"UnsupportedApiVersion","error_description":"x"}"#,
            r#"{"code":"UnsupportedApiVersion"}"#,
        ] {
            assert!(is_unsupported_api_version(&answer(400, yes)), "{yes}");
        }
        for no in [
            // a caller's value echoed back in an ordinary 400
            r#"{"statusCode":400,"message":"Unable to load the proper Managed Identity for client_id UnsupportedApiVersion.","correlationId":"c"}"#,
            r#"{"error":"invalid_request","error_description":"UnsupportedApiVersion"}"#,
            r#"{"error":{"code":"BadRequest","message":"UnsupportedApiVersion: no"}}"#,
            r#"{"statusCode":400,"message":"resource UnsupportedApiVersion: x"}"#,
            "UnsupportedApiVersion",
            "<html>UnsupportedApiVersion</html>",
            r#"["UnsupportedApiVersion"]"#,
        ] {
            assert!(!is_unsupported_api_version(&answer(400, no)), "{no}");
        }
        assert!(!is_unsupported_api_version(&answer(
            500,
            r#"{"error":{"code":"UnsupportedApiVersion"}}"#
        )));
    }

    #[test]
    fn the_cli_is_started_without_a_shell_on_every_os() {
        assert_eq!(cli_program("az", true), "az.cmd");
        assert_eq!(cli_program("az.cmd", true), "az.cmd");
        assert_eq!(cli_program(r"C:\tools\az.cmd", true), r"C:\tools\az.cmd");
        assert_eq!(cli_program("az", false), "az");
        let command = cli_command("az");
        let program = command
            .as_std()
            .get_program()
            .to_string_lossy()
            .into_owned();
        assert!(program == "az" || program == "az.cmd", "{program}");
        assert_eq!(command.as_std().get_args().count(), 0, "no shell switch");
    }

    #[test]
    fn cli_output_needs_token_and_epoch_expiry() {
        let issued = datetime!(2030-01-01 00:00 UTC);
        let parsed = parse_cli_output(
            br#"{"accessToken":"t","expires_on":1893459600,"expiresOn":"2030-01-01 01:00:00.000000","tokenType":"Bearer","tenant":"x"}"#,
            issued,
        )
        .unwrap();
        assert_eq!(parsed.expires_on, datetime!(2030-01-01 01:00 UTC));
        assert_eq!(parsed.access_token.expose(), "t");
        assert!(parse_cli_output(br#"{"expires_on":1893459600}"#, issued).is_err());
        assert!(parse_cli_output(b"not json accessToken", issued).is_err());
    }

    #[test]
    fn service_detail_shapes() {
        let app = service_detail(
            br#"{"statusCode":400,"message":"Unable to load","correlationId":"c-1"}"#,
        );
        assert_eq!(app.message.as_deref(), Some("Unable to load"));
        assert_eq!(app.correlation_id.as_deref(), Some("c-1"));
        let imds = service_detail(
            br#"{"error":"invalid_request","error_description":"Identity not found"}"#,
        );
        assert_eq!(imds.code.as_deref(), Some("invalid_request"));
        assert_eq!(imds.message.as_deref(), Some("Identity not found"));
        let nested =
            service_detail(br#"{"error":{"code":"SecretHeaderNotFound","message":"no secret"}}"#);
        assert_eq!(nested.code.as_deref(), Some("SecretHeaderNotFound"));
        assert_eq!(nested.message.as_deref(), Some("no secret"));
        assert_eq!(service_detail(b"  "), ServiceDetail::default());
        assert_eq!(
            service_detail(b"Bad Gateway").message.as_deref(),
            Some("Bad Gateway")
        );
    }
}
