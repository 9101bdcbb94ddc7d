//! The one place where the app's typed errors become an HTTP status and a message, through the
//! runtime's `custom_handler::Failure` trait (the runtime's own failures are its `RuntimeError`).
//!
//! Every message says what went wrong and what to do, and none carries a token, an identity
//! header, a function key or a secret value: the types that hold those redact themselves, and
//! the messages here are built from names and statuses only.

use std::time::Duration;

use custom_handler::{Failure, RuntimeError};

use crate::auth::AuthError;
use crate::clients::blob::StorageError;
use crate::clients::downstream::DownstreamError;
use crate::clients::keyvault::KeyVaultError;
use crate::clients::names::InputError;
use crate::identity::IdentityError;

/// Everything a function invocation can fail with.
#[derive(Debug, thiserror::Error)]
pub enum FunctionError {
    /// The caller sent something this function cannot accept (a bad name, a missing parameter).
    #[error("{0}")]
    BadRequest(String),
    /// The caller may not do this.
    #[error("{0}")]
    Forbidden(String),
    /// What was asked for does not exist.
    #[error("{0}")]
    NotFound(String),
    /// A setting this function needs is missing or invalid; other functions keep working.
    #[error("this function needs the {setting} app setting: {problem}")]
    NotConfigured {
        /// The setting's name.
        setting: &'static str,
        /// What is wrong with it and what to set.
        problem: String,
    },
    /// The managed identity could not give a token.
    #[error("could not get a managed-identity token: {0}")]
    Identity(#[from] IdentityError),
    /// The managed-identity settings are unusable; every function that needs a token says so.
    #[error("the managed identity is not configured: {0}")]
    IdentityNotConfigured(String),
    /// Key Vault refused or failed.
    #[error(transparent)]
    KeyVault(#[from] KeyVaultError),
    /// Blob Storage refused or failed.
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// An incoming bearer token was missing, invalid or lacked the role (Whoami).
    #[error("{0}")]
    Auth(#[from] AuthError),
    /// The downstream API could not be called (CallApi).
    #[error(transparent)]
    Downstream(#[from] DownstreamError),
    /// Another upstream failure, already described.
    #[error("{0}")]
    Upstream(String),
    /// A failure the runtime defines (an unsupported media type, a body over the limit), used
    /// by a function as the runtime would: it answers the runtime's status, code and headers.
    #[error(transparent)]
    Runtime(#[from] RuntimeError),
}

impl Failure for FunctionError {
    /// The HTTP status this error answers with.
    fn status(&self) -> u16 {
        match self {
            Self::Identity(IdentityError::InvalidScope { .. }) => 400,
            Self::Identity(_) => 503,
            Self::IdentityNotConfigured(_) => 500,
            Self::KeyVault(error) => keyvault_status(error),
            Self::Storage(error) => storage_status(error),
            Self::Auth(error) => error.status(),
            Self::Downstream(error) => error.status(),
            Self::Upstream(_) => 502,
            Self::BadRequest(_) => 400,
            Self::Forbidden(_) => 403,
            Self::NotFound(_) => 404,
            Self::NotConfigured { .. } => 500,
            Self::Runtime(error) => error.status(),
        }
    }

    /// A stable machine-readable code for the error body.
    fn code(&self) -> &str {
        match self {
            Self::Identity(IdentityError::InvalidScope { .. }) => "BadRequest",
            Self::Identity(_) => "TokenUnavailable",
            Self::IdentityNotConfigured(_) => "NotConfigured",
            Self::Auth(AuthError::MissingRole { .. }) => "Forbidden",
            Self::Auth(AuthError::Unavailable(_)) => "ServiceUnavailable",
            Self::Auth(_) => "InvalidToken",
            Self::KeyVault(_) | Self::Storage(_) | Self::Downstream(_) | Self::Upstream(_) => {
                status_code_name(self.status())
            }
            Self::BadRequest(_) => "BadRequest",
            Self::Forbidden(_) => "Forbidden",
            Self::NotFound(_) => "NotFound",
            Self::NotConfigured { .. } => "NotConfigured",
            Self::Runtime(error) => error.code(),
        }
    }

    /// Retry-After on a throttle, WWW-Authenticate on a refused bearer token, and what a
    /// runtime failure carries.
    fn headers(&self) -> Vec<(&'static str, String)> {
        if let Self::Runtime(error) = self {
            return error.headers();
        }
        let mut headers = Vec::new();
        if let Some(wait) = self.retry_after() {
            headers.push(("Retry-After", wait.as_secs().max(1).to_string()));
        }
        if let Self::Auth(error) = self
            && let Some(challenge) = error.www_authenticate()
        {
            headers.push(("WWW-Authenticate", challenge));
        }
        headers
    }
}

impl FunctionError {
    /// How long the caller should wait before trying again, when the error is a throttle.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Self::Identity(IdentityError::Throttled { retry_after, .. })
            | Self::KeyVault(KeyVaultError::Throttled { retry_after })
            | Self::Storage(StorageError::Throttled { retry_after }) => {
                Some(retry_after.unwrap_or(DEFAULT_RETRY_AFTER))
            }
            _ => None,
        }
    }
}

/// What a throttled caller is told to wait when the service did not say.
const DEFAULT_RETRY_AFTER: Duration = Duration::from_secs(5);

/// Key Vault: 403 → 403 (the message names the role), 404 → 404, 429 → 503 with Retry-After,
/// a token failure → 503, other upstream failures → 502.
fn keyvault_status(error: &KeyVaultError) -> u16 {
    match error {
        KeyVaultError::InvalidVaultUrl(_) => 500,
        KeyVaultError::InvalidName(_) => 400,
        KeyVaultError::Forbidden { .. } => 403,
        KeyVaultError::NotFound { .. } => 404,
        KeyVaultError::Throttled { .. } | KeyVaultError::Credential { .. } => 503,
        KeyVaultError::Upstream(_) => 502,
        KeyVaultError::Timeout => 504,
    }
}

/// Storage: the same map as Key Vault, plus 413 for a blob over the limit.
fn storage_status(error: &StorageError) -> u16 {
    match error {
        StorageError::InvalidStorageUrl(_) => 500,
        StorageError::InvalidInput(InputError::BodyTooLarge { .. }) => 413,
        StorageError::InvalidInput(_) => 400,
        StorageError::Forbidden { .. } => 403,
        StorageError::NotFound { .. } => 404,
        StorageError::BlobTooLarge { .. } => 413,
        StorageError::Throttled { .. } | StorageError::Credential { .. } => 503,
        StorageError::Upstream(_) => 502,
        StorageError::Timeout => 504,
    }
}

fn status_code_name(status: u16) -> &'static str {
    match status {
        400 => "BadRequest",
        403 => "Forbidden",
        404 => "NotFound",
        413 => "PayloadTooLarge",
        500 => "NotConfigured",
        502 => "UpstreamFailed",
        503 => "ServiceUnavailable",
        504 => "Timeout",
        _ => "Error",
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
        assert_eq!(response.header("X-Content-Type-Options"), Some("nosniff"));
        let body: serde_json::Value = serde_json::from_slice(&response.body).unwrap();
        assert_eq!(body["error"]["code"], "NotConfigured");
        assert!(
            body["error"]["message"]
                .as_str()
                .unwrap()
                .contains("KEY_VAULT_URL")
        );
        let too_large = FunctionError::from(RuntimeError::PayloadTooLarge { limit: 10 });
        assert_eq!(too_large.status(), 413);
        let timeout = FunctionError::from(RuntimeError::Timeout(Duration::from_secs(3)));
        assert_eq!(timeout.status(), 504);
    }

    #[test]
    fn upstream_failures_follow_the_documented_map() {
        let forbidden = FunctionError::from(KeyVaultError::Forbidden {
            name: "db".into(),
            code: "Forbidden".into(),
        });
        assert_eq!(forbidden.status(), 403);
        assert!(forbidden.to_string().contains("Key Vault Secrets User"));
        let missing = FunctionError::from(KeyVaultError::NotFound {
            name: "db".into(),
            version: None,
        });
        assert_eq!(missing.status(), 404);
        let throttled = FunctionError::from(KeyVaultError::Throttled {
            retry_after: Some(Duration::from_secs(7)),
        });
        let response = throttled.to_response();
        assert_eq!(response.status, 503);
        assert_eq!(response.header("Retry-After"), Some("7"));
        let unsaid =
            FunctionError::from(StorageError::Throttled { retry_after: None }).to_response();
        assert_eq!(unsaid.header("Retry-After"), Some("5"));
        assert_eq!(
            FunctionError::from(KeyVaultError::Credential {
                message: "x".into()
            })
            .status(),
            503
        );
        assert_eq!(FunctionError::from(KeyVaultError::Timeout).status(), 504);
        assert_eq!(
            FunctionError::from(StorageError::BlobTooLarge { limit: 1 }).status(),
            413
        );
        assert_eq!(FunctionError::Upstream("x".into()).status(), 502);
    }
}
