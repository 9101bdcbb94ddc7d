//! Turning an endpoint's answer into a token or a typed [`IdentityError`] with a hint: which
//! status means which failure, and what an error body says.

use serde::Deserialize;
use serde_json::Value;
use time::OffsetDateTime;

use super::response::{any_text, parse_token_body};
use super::{ParsedToken, TokenRequest};
use crate::config::IdentityOrigin;
use crate::error::{IdentityError, ServiceDetail};
use crate::retry::{StopReason, honoured_retry_after, is_retryable_status};
use crate::secret::redacted_excerpt;
use crate::transport::{HeaderText, HttpRequest, HttpResponse, TransportError};
use crate::{IdentitySelector, SourceKind};

/// Turns the last outcome of the retry loop into a token or a typed error.
pub(crate) fn interpret(
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
                    .and_then(honoured_retry_after),
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
        _ if is_retryable_status(kind, status) => IdentityError::Unavailable {
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

/// What an error body may say: App Service's `{"statusCode", "message", "correlationId"}`,
/// IMDS's OAuth `{"error", "error_description"}`, or a nested `{"error": {"code", "message"}}`.
/// Members of another type count as absent.
#[derive(Debug, Default, Deserialize)]
struct ErrorBody {
    #[serde(default, deserialize_with = "any_text")]
    message: Option<String>,
    #[serde(rename = "Message", default, deserialize_with = "any_text")]
    message_pascal: Option<String>,
    #[serde(default, deserialize_with = "any_text")]
    error_description: Option<String>,
    #[serde(default)]
    error: ErrorMember,
    #[serde(rename = "correlationId", default, deserialize_with = "any_text")]
    correlation_id: Option<String>,
}

/// The `error` member: a code, an object with a code and message, or anything else (ignored).
#[derive(Debug, Default)]
enum ErrorMember {
    #[default]
    Other,
    Code(String),
    Nested(NestedError),
}

impl<'de> Deserialize<'de> for ErrorMember {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Ok(match Value::deserialize(deserializer)? {
            Value::String(code) => Self::Code(code),
            nested @ Value::Object(_) => {
                Self::Nested(NestedError::deserialize(&nested).map_err(serde::de::Error::custom)?)
            }
            _ => Self::Other,
        })
    }
}

#[derive(Debug, Default, Deserialize)]
struct NestedError {
    #[serde(default, deserialize_with = "any_text")]
    code: Option<String>,
    #[serde(default, deserialize_with = "any_text")]
    message: Option<String>,
}

/// Reads `message` / `error_description` / `error` / `correlationId` from an error body, or an
/// excerpt of a non-JSON body; always redacted.
pub fn service_detail(body: &[u8]) -> ServiceDetail {
    let read = match serde_json::from_slice::<Value>(body) {
        Ok(value @ Value::Object(_)) => ErrorBody::deserialize(&value).ok(),
        _ => None,
    };
    match read {
        Some(answer) => {
            let (code, nested_message) = match answer.error {
                ErrorMember::Code(code) => (Some(code), None),
                ErrorMember::Nested(nested) => (nested.code, nested.message),
                ErrorMember::Other => (None, None),
            };
            let redacted = |text: Option<String>| text.as_deref().map(redacted_excerpt);
            ServiceDetail {
                message: redacted(
                    answer
                        .message
                        .or(answer.message_pascal)
                        .or(answer.error_description)
                        .or(nested_message),
                ),
                code: redacted(code),
                correlation_id: redacted(answer.correlation_id),
            }
        }
        None if body.iter().all(u8::is_ascii_whitespace) => ServiceDetail::default(),
        None => ServiceDetail {
            message: Some(redacted_excerpt(&String::from_utf8_lossy(body))),
            ..ServiceDetail::default()
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
