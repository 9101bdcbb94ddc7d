//! How a failure becomes an answer: the [`Failure`] trait, which a function's error type
//! implements (as a handler's return type implements axum's `IntoResponse`), and
//! [`RuntimeError`], the failures of the runtime itself.

use std::fmt;
use std::time::Duration;

use serde::Serialize;

use crate::contract::PayloadError;
use crate::http::HttpResponse;

/// A failure that answers an HTTP status: a function's error type implements it, and the runtime
/// turns it into the response `{"error": {"code": ..., "message": ...}}` with the status, the
/// message its `Display` writes and the headers it names.
pub trait Failure: fmt::Display + Send + 'static {
    /// The HTTP status this failure answers with.
    fn status(&self) -> u16;

    /// A stable machine-readable code for the error body, e.g. `NotFound`.
    fn code(&self) -> &str;

    /// Headers the answer carries besides the body's, e.g. `Retry-After` or `WWW-Authenticate`.
    fn headers(&self) -> Vec<(&'static str, String)> {
        Vec::new()
    }

    /// The failure as the response the caller gets.
    fn to_response(&self) -> HttpResponse {
        let body = ErrorBody {
            error: ErrorDetail {
                code: self.code(),
                message: self.to_string(),
            },
        };
        // nosniff on every error: a function that promises it on its answers keeps the promise
        // when it fails.
        let mut response = HttpResponse::json(self.status(), &body)
            .with_header("Cache-Control", "no-store")
            .with_header("X-Content-Type-Options", "nosniff");
        for (name, value) in self.headers() {
            response = response.with_header(name, value);
        }
        response
    }
}

/// A function's failure, whatever its type: what a registered entry point returns.
pub type BoxFailure = Box<dyn Failure>;

impl<F: Failure + ?Sized> Failure for Box<F> {
    fn status(&self) -> u16 {
        (**self).status()
    }

    fn code(&self) -> &str {
        (**self).code()
    }

    fn headers(&self) -> Vec<(&'static str, String)> {
        (**self).headers()
    }
}

/// The JSON body of every error answer: `{"error": {"code": ..., "message": ...}}`.
#[derive(Debug, Serialize)]
struct ErrorBody<'a> {
    error: ErrorDetail<'a>,
}

#[derive(Debug, Serialize)]
struct ErrorDetail<'a> {
    code: &'a str,
    message: String,
}

/// What a caller turned away by the in-flight cap or by shutdown is told to wait: invocations
/// last about a second, so one frees soon.
const OVERLOAD_RETRY_AFTER: Duration = Duration::from_secs(1);

/// The failures of the runtime itself, before, around or after a function runs.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    /// The host's invocation payload could not be read.
    #[error("the invocation payload could not be read: {0}")]
    Payload(#[from] PayloadError),
    /// The request body could not be read off the connection.
    #[error("the request body could not be read: {0}")]
    BodyUnreadable(String),
    /// The request body exceeds the function's limit.
    #[error("the request body is larger than the limit of {limit} bytes; send a smaller body")]
    PayloadTooLarge {
        /// The limit in bytes.
        limit: usize,
    },
    /// No function is served under this name (JSON mode) or route (forwarding).
    #[error("{0}")]
    NotFound(String),
    /// A route matched, but none of its functions accepts the method.
    #[error("{0}")]
    MethodNotAllowed(String),
    /// The function panicked: a bug in the handler, never the caller's fault.
    #[error(
        "the function failed unexpectedly (a bug in the handler); its log on stderr has the details"
    )]
    Panicked,
    /// The function ran out of time.
    #[error("the function did not finish within {} s (host.json functionTimeout)", .0.as_secs())]
    Timeout(Duration),
    /// JSON mode altered this body before the handler saw it (the host reads every body that is
    /// not octet-stream or multipart as UTF-8 text), so acting on it would act on something else.
    #[error(
        "a {0} body cannot arrive intact in JSON mode: the Functions host decodes it as UTF-8 text first; send it as application/octet-stream, or turn on customHandler.enableForwardingHttpRequest in host.json"
    )]
    UnsupportedMediaType(String),
    /// JSON mode cannot carry this response body back unchanged (the host writes a string body
    /// as UTF-8 and ignores Content-Transfer-Encoding).
    #[error(
        "{0}; JSON mode carries response bodies as text, so the caller would get other bytes: turn on customHandler.enableForwardingHttpRequest in host.json"
    )]
    NotAcceptable(String),
    /// More invocations are running than the handler accepts at once.
    #[error(
        "the handler is running its limit of {limit} invocations at once; retry shortly (MAX_CONCURRENT_INVOCATIONS)"
    )]
    Overloaded {
        /// The cap.
        limit: usize,
    },
    /// The client did not send the body in time.
    #[error(
        "the request body did not arrive within {} s (REQUEST_BODY_TIMEOUT_SECONDS)", .0.as_secs()
    )]
    BodyTimeout(Duration),
    /// The handler is stopping and takes no new work.
    #[error("the handler is shutting down; retry on another instance")]
    ShuttingDown,
}

impl Failure for RuntimeError {
    fn status(&self) -> u16 {
        match self {
            Self::Payload(_) | Self::BodyUnreadable(_) => 400,
            Self::PayloadTooLarge { .. } => 413,
            Self::NotFound(_) => 404,
            Self::MethodNotAllowed(_) => 405,
            Self::Panicked => 500,
            Self::Timeout(_) => 504,
            Self::UnsupportedMediaType(_) => 415,
            Self::NotAcceptable(_) => 406,
            Self::Overloaded { .. } | Self::ShuttingDown => 503,
            Self::BodyTimeout(_) => 408,
        }
    }

    fn code(&self) -> &str {
        match self {
            Self::Payload(_) => "BadInvocation",
            // A wrong method has always answered the code of a bad request, with status 405.
            Self::BodyUnreadable(_) | Self::MethodNotAllowed(_) => "BadRequest",
            Self::PayloadTooLarge { .. } => "PayloadTooLarge",
            Self::NotFound(_) => "NotFound",
            Self::Panicked => "InternalError",
            Self::Timeout(_) => "Timeout",
            Self::UnsupportedMediaType(_) => "UnsupportedMediaType",
            Self::NotAcceptable(_) => "NotAcceptable",
            Self::Overloaded { .. } | Self::ShuttingDown => "ServiceUnavailable",
            Self::BodyTimeout(_) => "RequestTimeout",
        }
    }

    fn headers(&self) -> Vec<(&'static str, String)> {
        match self {
            Self::Overloaded { .. } | Self::ShuttingDown => vec![(
                "Retry-After",
                OVERLOAD_RETRY_AFTER.as_secs().max(1).to_string(),
            )],
            _ => Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runtime_failures_answer_their_status_code_and_headers_in_the_error_body() {
        let overloaded = RuntimeError::Overloaded { limit: 2 }.to_response();
        assert_eq!(overloaded.status, 503);
        assert_eq!(overloaded.header("Retry-After"), Some("1"));
        assert_eq!(overloaded.header("Cache-Control"), Some("no-store"));
        assert_eq!(overloaded.header("X-Content-Type-Options"), Some("nosniff"));
        let body: serde_json::Value = serde_json::from_slice(&overloaded.body).unwrap();
        assert_eq!(body["error"]["code"], "ServiceUnavailable");
        assert!(
            body["error"]["message"]
                .as_str()
                .unwrap()
                .contains("MAX_CONCURRENT_INVOCATIONS")
        );
        assert_eq!(RuntimeError::PayloadTooLarge { limit: 10 }.status(), 413);
        assert_eq!(RuntimeError::Timeout(Duration::from_secs(3)).status(), 504);
        let wrong_method = RuntimeError::MethodNotAllowed("no".into());
        assert_eq!(
            (wrong_method.status(), wrong_method.code()),
            (405, "BadRequest")
        );
        assert!(RuntimeError::Panicked.headers().is_empty());
        let boxed: BoxFailure = Box::new(RuntimeError::ShuttingDown);
        assert_eq!(boxed.to_response().header("Retry-After"), Some("1"));
    }
}
