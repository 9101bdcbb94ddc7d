//! Reads an `azure_core::Error` into the facts both clients classify on, without ever copying a
//! response body or a header value other than Retry-After into a message, and turns them into
//! [`CallError`]: the failures every Azure service call shares, so that `src/error.rs` maps them
//! to statuses once for Key Vault and Storage alike.

use azure_core::{error::ErrorKind, http::headers::Headers};
use managed_identity::error_chain::chain;
use managed_identity::parse_retry_after;
use std::{fmt, time::Duration};

/// What went wrong with a request that did not succeed, in the terms callers act on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Failure {
    /// The service answered with an error status.
    Status {
        /// The HTTP status.
        status: u16,
        /// The service's error code (`x-ms-error-code` or the JSON `error.code`).
        code: Option<String>,
        /// Parsed Retry-After, when the response had one.
        retry_after: Option<Duration>,
    },
    /// The credential could not produce a token; carries the credential's message.
    Credential(String),
    /// The request or the call's deadline timed out.
    Timeout,
    /// No usable response: connection, TLS, challenge or decoding problems.
    Transport(String),
}

impl Failure {
    /// Classifies an SDK error.
    pub(crate) fn from_sdk(error: &azure_core::Error) -> Self {
        if is_timeout(error) {
            return Self::Timeout;
        }
        match error.kind() {
            ErrorKind::HttpResponse {
                status,
                error_code,
                raw_response,
            } => Self::Status {
                status: u16::from(*status),
                code: error_code.clone().filter(|code| is_printable_code(code)),
                retry_after: raw_response.as_ref().and_then(|r| retry_after(r.headers())),
            },
            ErrorKind::Credential => Self::Credential(describe(innermost_sdk_error(error))),
            ErrorKind::DataConversion => {
                Self::Transport("the response could not be decoded".to_string())
            }
            ErrorKind::Connection => Self::Transport(format!("connection failed: {error}")),
            _ => Self::Transport(describe(error)),
        }
    }
}

/// A service error code is echoed only when it looks like one (`SecretNotFound`), never free text.
fn is_printable_code(code: &str) -> bool {
    !code.is_empty()
        && code.len() <= 100
        && code
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'_' || b == b'-')
}

/// The SDK wraps errors in context layers ("non-transport error occurred which will not be
/// retried"); the innermost `azure_core::Error` is the one the credential itself returned.
fn innermost_sdk_error(error: &azure_core::Error) -> &azure_core::Error {
    chain(error)
        .filter_map(|inner| inner.downcast_ref::<azure_core::Error>())
        .last()
        .unwrap_or(error)
}

/// The chain's messages, each cause added only when the text so far does not already say it.
fn describe(error: &azure_core::Error) -> String {
    let mut causes = chain(error);
    let mut text = causes.next().map(ToString::to_string).unwrap_or_default();
    for inner in causes {
        let next = inner.to_string();
        if !text.contains(&next) {
            text.push_str(": ");
            text.push_str(&next);
        }
    }
    text
}

fn is_timeout(error: &azure_core::Error) -> bool {
    chain(error).any(|inner| {
        let reqwest_timeout = inner
            .downcast_ref::<reqwest::Error>()
            .is_some_and(reqwest::Error::is_timeout);
        let io_timeout = inner
            .downcast_ref::<std::io::Error>()
            .is_some_and(|e| e.kind() == std::io::ErrorKind::TimedOut);
        reqwest_timeout || io_timeout
    })
}

/// Parses how long the service asked us to wait: `x-ms-retry-after-ms` / `retry-after-ms`
/// (milliseconds), then `Retry-After` (seconds or an HTTP date).
pub(crate) fn retry_after(headers: &Headers) -> Option<Duration> {
    let millis = ["x-ms-retry-after-ms", "retry-after-ms"]
        .into_iter()
        .find_map(|name| headers.get_optional_str(&name.into()))
        .and_then(|value| value.trim().parse::<u64>().ok())
        .map(Duration::from_millis);
    // Both forms count here: seconds, or an HTTP date counted from now.
    millis.or_else(|| {
        headers
            .get_optional_str(&"retry-after".into())
            .and_then(parse_retry_after)
            .map(|asked| asked.wait_from(azure_core::time::OffsetDateTime::now_utc()))
    })
}

/// What an Azure service call was about: it names the service and the thing a 403 or a 404
/// speaks of, so that one [`CallError`] carries each service's own messages.
pub trait CallTarget: fmt::Debug {
    /// The service's name as messages give it, e.g. `Key Vault`.
    const SERVICE: &'static str;
    /// The error code a 403 that names none is reported with.
    const DENIED_CODE: &'static str;
    /// Writes the message of a 403 with the service's error `code`: what was denied and the role
    /// the managed identity needs.
    fn fmt_denied(&self, code: &str, f: &mut fmt::Formatter<'_>) -> fmt::Result;
    /// Writes the message of a 404 with the service's error `code`, when it sent one.
    fn fmt_missing(&self, code: Option<&str>, f: &mut fmt::Formatter<'_>) -> fmt::Result;
    /// Whether an error status (with its code) means the service is throttling: 429 everywhere.
    fn is_throttling(status: u16, _code: Option<&str>) -> bool {
        status == 429
    }
}

/// Why a call to an Azure service failed once it was made: what every service shares. `T` is
/// what the call was about (a secret, a blob), which the 403 and 404 messages name. No message
/// carries a token, a secret value or a response body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CallError<T> {
    /// 403: the identity lacks access (or its token was refused).
    Forbidden {
        /// What the call was about.
        target: T,
        /// The service's error code (e.g. `Forbidden`, `AuthorizationPermissionMismatch`).
        code: String,
    },
    /// 404: what the call was about does not exist.
    NotFound {
        /// What the call was about.
        target: T,
        /// The service's error code (e.g. `ContainerNotFound`), when it sent one.
        code: Option<String>,
    },
    /// The service is throttling; retry after the given time when it said so.
    Throttled {
        /// The service's Retry-After, when present.
        retry_after: Option<Duration>,
    },
    /// The credential could not produce a token.
    Credential {
        /// The credential's own message.
        message: String,
    },
    /// Any other status, or no usable response (transport, TLS, challenge verification).
    Upstream(UpstreamDetail),
    /// The request or the whole call ran out of time.
    Timeout,
}

impl<T: CallTarget> fmt::Display for CallError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let service = T::SERVICE;
        match self {
            Self::Forbidden { target, code } => target.fmt_denied(code, f),
            Self::NotFound { target, code } => target.fmt_missing(code.as_deref(), f),
            Self::Throttled { retry_after } => {
                write!(f, "{service} is throttling requests")?;
                match retry_after {
                    Some(wait) => write!(f, "; retry after {} s", wait.as_secs()),
                    None => Ok(()),
                }
            }
            Self::Credential { message } => {
                write!(f, "could not get a token for {service}: {message}")
            }
            Self::Upstream(detail) => write!(f, "{service} request failed: {detail}"),
            Self::Timeout => write!(f, "{service} request timed out"),
        }
    }
}

impl<T: CallTarget> std::error::Error for CallError<T> {}

impl<T: CallTarget> CallError<T> {
    /// Classifies an SDK error from a call about `target`.
    pub(crate) fn from_sdk(error: &azure_core::Error, target: T) -> Self {
        match Failure::from_sdk(error) {
            Failure::Status {
                status: 403, code, ..
            } => Self::Forbidden {
                target,
                code: code.unwrap_or_else(|| T::DENIED_CODE.to_string()),
            },
            Failure::Status {
                status: 404, code, ..
            } => Self::NotFound { target, code },
            Failure::Status {
                status,
                code,
                retry_after,
            } if T::is_throttling(status, code.as_deref()) => Self::Throttled { retry_after },
            Failure::Status { status, code, .. } => {
                Self::Upstream(UpstreamDetail::status(status, code))
            }
            Failure::Credential(message) => Self::Credential { message },
            Failure::Timeout => Self::Timeout,
            Failure::Transport(reason) => Self::Upstream(UpstreamDetail::reason(reason)),
        }
    }
}

/// The status and error code of an upstream failure, for messages and the error type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpstreamDetail {
    /// HTTP status, when the service answered.
    pub status: Option<u16>,
    /// The service's error code, when it sent one.
    pub code: Option<String>,
    /// What failed when there was no status (transport, TLS, challenge verification).
    pub reason: Option<String>,
}

impl fmt::Display for UpstreamDetail {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.status, &self.code, &self.reason) {
            (Some(status), Some(code), _) => write!(f, "status {status}, error code {code}"),
            (Some(status), None, _) => write!(f, "status {status}"),
            (None, _, Some(reason)) => f.write_str(reason),
            (None, _, None) => f.write_str("no response"),
        }
    }
}

impl UpstreamDetail {
    /// An upstream answer with a status.
    pub(crate) fn status(status: u16, code: Option<String>) -> Self {
        Self {
            status: Some(status),
            code,
            reason: None,
        }
    }

    /// A failure without a response.
    pub(crate) fn reason(reason: String) -> Self {
        Self {
            status: None,
            code: None,
            reason: Some(reason),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use azure_core::http::{RawResponse, StatusCode, headers::HeaderName};

    fn headers(pairs: &[(&'static str, &str)]) -> Headers {
        let mut headers = Headers::new();
        for (name, value) in pairs {
            headers.insert(HeaderName::from_static(name), value.to_string());
        }
        headers
    }

    #[test]
    fn retry_after_reads_seconds_dates_and_milliseconds() {
        assert_eq!(
            retry_after(&headers(&[("retry-after", "7")])),
            Some(Duration::from_secs(7))
        );
        assert_eq!(
            retry_after(&headers(&[
                ("x-ms-retry-after-ms", "1500"),
                ("retry-after", "7")
            ])),
            Some(Duration::from_millis(1500))
        );
        assert_eq!(
            retry_after(&headers(&[(
                "retry-after",
                "Fri, 01 Jan 2021 00:00:00 GMT"
            )])),
            Some(Duration::ZERO),
            "a date in the past means retry now"
        );
        assert_eq!(retry_after(&headers(&[("retry-after", "soon")])), None);
        assert_eq!(retry_after(&Headers::new()), None);
    }

    #[test]
    fn http_errors_keep_status_code_and_retry_after() {
        let raw = RawResponse::from_bytes(
            StatusCode::TooManyRequests,
            headers(&[("retry-after", "3")]),
            "{}",
        );
        let error = azure_core::Error::with_message(
            ErrorKind::HttpResponse {
                status: StatusCode::TooManyRequests,
                error_code: Some("Throttled".into()),
                raw_response: Some(Box::new(raw)),
            },
            "too many",
        );
        assert_eq!(
            Failure::from_sdk(&error),
            Failure::Status {
                status: 429,
                code: Some("Throttled".into()),
                retry_after: Some(Duration::from_secs(3)),
            }
        );
    }

    #[test]
    fn free_text_error_codes_are_dropped() {
        let error = azure_core::Error::with_message(
            ErrorKind::HttpResponse {
                status: StatusCode::InternalServerError,
                error_code: Some("500: <html>secret-ish body</html>".into()),
                raw_response: None,
            },
            "boom",
        );
        assert_eq!(
            Failure::from_sdk(&error),
            Failure::Status {
                status: 500,
                code: None,
                retry_after: None
            }
        );
    }

    #[test]
    fn credential_and_decoding_errors_are_told_apart() {
        let credential = azure_core::Error::with_message(ErrorKind::Credential, "no identity")
            .with_context("non-transport error occurred which will not be retried");
        assert_eq!(
            Failure::from_sdk(&credential),
            Failure::Credential("no identity".into())
        );
        let decoding =
            azure_core::Error::with_message(ErrorKind::DataConversion, "value \"hunter2\"");
        let Failure::Transport(reason) = Failure::from_sdk(&decoding) else {
            panic!("decoding errors are transport failures");
        };
        assert!(
            !reason.contains("hunter2"),
            "decoder messages may quote the body"
        );
    }

    #[test]
    fn io_timeouts_are_timeouts() {
        let io = std::io::Error::new(std::io::ErrorKind::TimedOut, "slow");
        let error = azure_core::Error::with_error(ErrorKind::Io, io, "request failed");
        assert_eq!(Failure::from_sdk(&error), Failure::Timeout);
    }

    #[test]
    fn upstream_detail_prints_status_and_code_only() {
        assert_eq!(
            UpstreamDetail::status(500, Some("InternalError".into())).to_string(),
            "status 500, error code InternalError"
        );
        assert_eq!(UpstreamDetail::status(502, None).to_string(), "status 502");
        assert_eq!(
            UpstreamDetail::reason("connection failed".into()).to_string(),
            "connection failed"
        );
    }
}
