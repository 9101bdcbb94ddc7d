//! The one place where a typed error becomes an HTTP status and a message.
//!
//! Every message says what went wrong and what to do, and none carries a token, an identity
//! header, a function key or a secret value: the types that hold those redact themselves, and
//! the messages here are built from names and statuses only.

use std::time::Duration;

use serde::Serialize;

use crate::http::HttpResponse;

/// Everything a function invocation can fail with.
#[derive(Debug, thiserror::Error)]
pub enum FunctionError {
    /// The caller sent something this function cannot accept (a bad name, a missing parameter).
    #[error("{0}")]
    BadRequest(String),
    /// The host's invocation payload could not be read.
    #[error("the invocation payload could not be read: {0}")]
    Payload(#[from] crate::contract::PayloadError),
    /// The caller may not do this.
    #[error("{0}")]
    Forbidden(String),
    /// What was asked for does not exist.
    #[error("{0}")]
    NotFound(String),
    /// The request body exceeds the limit.
    #[error("the request body is larger than the limit of {limit} bytes; send a smaller body")]
    PayloadTooLarge {
        /// The limit in bytes.
        limit: usize,
    },
    /// A setting this function needs is missing or invalid; other functions keep working.
    #[error("this function needs the {setting} app setting: {problem}")]
    NotConfigured {
        /// The setting's name.
        setting: &'static str,
        /// What is wrong with it and what to set.
        problem: String,
    },
    /// The function panicked: a bug in the handler, never the caller's fault.
    #[error(
        "the function failed unexpectedly (a bug in the handler); its log on stderr has the details"
    )]
    Panicked,
    /// The function ran out of time.
    #[error("the function did not finish within {} s (host.json functionTimeout)", .0.as_secs())]
    Timeout(Duration),
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

impl FunctionError {
    /// The HTTP status this error answers with.
    pub fn status(&self) -> u16 {
        match self {
            Self::BadRequest(_) | Self::Payload(_) => 400,
            Self::Forbidden(_) => 403,
            Self::NotFound(_) => 404,
            Self::PayloadTooLarge { .. } => 413,
            Self::NotConfigured { .. } | Self::Panicked => 500,
            Self::Timeout(_) => 504,
        }
    }

    /// A stable machine-readable code for the error body.
    pub fn code(&self) -> &'static str {
        match self {
            Self::BadRequest(_) => "BadRequest",
            Self::Payload(_) => "BadInvocation",
            Self::Forbidden(_) => "Forbidden",
            Self::NotFound(_) => "NotFound",
            Self::PayloadTooLarge { .. } => "PayloadTooLarge",
            Self::NotConfigured { .. } => "NotConfigured",
            Self::Panicked => "InternalError",
            Self::Timeout(_) => "Timeout",
        }
    }

    /// How long the caller should wait before trying again, when the error is a throttle.
    pub fn retry_after(&self) -> Option<Duration> {
        None
    }

    /// The error as the response the caller gets.
    pub fn to_response(&self) -> HttpResponse {
        let body = ErrorBody {
            error: ErrorDetail {
                code: self.code(),
                message: self.to_string(),
            },
        };
        let response =
            HttpResponse::json(self.status(), &body).with_header("Cache-Control", "no-store");
        match self.retry_after() {
            Some(wait) => response.with_header("Retry-After", wait.as_secs().max(1).to_string()),
            None => response,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_error_answers_its_status_with_a_json_body_naming_it() {
        let error = FunctionError::NotConfigured {
            setting: "KEY_VAULT_URL",
            problem: "it is not set; set it to https://<vault>.vault.azure.net/".into(),
        };
        let response = error.to_response();
        assert_eq!(response.status, 500);
        let body: serde_json::Value = serde_json::from_slice(&response.body).unwrap();
        assert_eq!(body["error"]["code"], "NotConfigured");
        assert!(
            body["error"]["message"]
                .as_str()
                .unwrap()
                .contains("KEY_VAULT_URL")
        );
        assert_eq!(FunctionError::PayloadTooLarge { limit: 10 }.status(), 413);
        assert_eq!(FunctionError::Timeout(Duration::from_secs(3)).status(), 504);
    }
}
