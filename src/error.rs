//! The one place where the app's typed errors become an HTTP status and a message, through the
//! runtime's `custom_handler::Failure` trait (the runtime's own failures are its `RuntimeError`).
//!
//! Every message says what went wrong and what to do, and none carries a token, an identity
//! header, a function key or a secret value: the types that hold those redact themselves, and
//! the messages here are built from names and statuses only.

use std::time::Duration;

use custom_handler::{Failure, RuntimeError};

use crate::auth::AuthError;
use crate::clients::CallError;
use crate::clients::blob::StorageError;
use crate::clients::downstream::DownstreamError;
use crate::clients::keyvault::KeyVaultError;
use crate::clients::names::InputError;
use managed_identity::IdentityError;

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
            Self::Auth(error) => auth_status(error),
            Self::Downstream(error) => downstream_status(error),
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
            Self::Identity(IdentityError::Throttled { retry_after, .. }) => {
                Some(retry_after.unwrap_or(DEFAULT_RETRY_AFTER))
            }
            Self::KeyVault(KeyVaultError::Call(error)) => call_retry_after(error),
            Self::Storage(StorageError::Call(error)) => call_retry_after(error),
            _ => None,
        }
    }
}

/// What a throttled caller is told to wait when the service did not say.
const DEFAULT_RETRY_AFTER: Duration = Duration::from_secs(5);

/// Key Vault: a bad URL is ours (500), a bad name the caller's (400); the call's failures as
/// [`call_status`] maps them.
fn keyvault_status(error: &KeyVaultError) -> u16 {
    match error {
        KeyVaultError::InvalidVaultUrl(_) => 500,
        KeyVaultError::InvalidName(_) => 400,
        KeyVaultError::Call(error) => call_status(error),
    }
}

/// Storage: as Key Vault, plus 413 for a body or a blob over the limit.
fn storage_status(error: &StorageError) -> u16 {
    match error {
        StorageError::InvalidStorageUrl(_) => 500,
        StorageError::InvalidInput(InputError::BodyTooLarge { .. }) => 413,
        StorageError::InvalidInput(_) => 400,
        StorageError::BlobTooLarge { .. } => 413,
        StorageError::Call(error) => call_status(error),
    }
}

/// Any Azure service call: 403 → 403 (the message names the role), 404 → 404, throttled → 503
/// with Retry-After, a token failure → 503, other upstream failures → 502, timeout → 504.
fn call_status<T>(error: &CallError<T>) -> u16 {
    match error {
        CallError::Forbidden { .. } => 403,
        CallError::NotFound { .. } => 404,
        CallError::Throttled { .. } | CallError::Credential { .. } => 503,
        CallError::Upstream(_) => 502,
        CallError::Timeout => 504,
    }
}

/// A throttled call's wait: the service's Retry-After, else [`DEFAULT_RETRY_AFTER`].
fn call_retry_after<T>(error: &CallError<T>) -> Option<Duration> {
    match error {
        CallError::Throttled { retry_after } => Some(retry_after.unwrap_or(DEFAULT_RETRY_AFTER)),
        _ => None,
    }
}

/// Whoami: 401 for a missing or invalid token, 403 for a missing role, 503 when the signing
/// keys could not be fetched.
fn auth_status(error: &AuthError) -> u16 {
    match error {
        AuthError::MissingToken | AuthError::Invalid(_) => 401,
        AuthError::MissingRole { .. } => 403,
        AuthError::Unavailable(_) => 503,
    }
}

/// CallApi: 400 for a refused path, 502 when the API failed or answered too much, 504 on
/// timeout, 500 for our own configuration.
fn downstream_status(error: &DownstreamError) -> u16 {
    match error {
        DownstreamError::InvalidPath(_) => 400,
        DownstreamError::Unreachable { .. } | DownstreamError::TooLarge { .. } => 502,
        DownstreamError::Timeout { .. } => 504,
        DownstreamError::InvalidBase(_)
        | DownstreamError::InvalidToken
        | DownstreamError::Client(_) => 500,
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
    fn each_auth_error_has_its_status() {
        let status = |error: AuthError| FunctionError::from(error).status();
        assert_eq!(status(AuthError::MissingToken), 401);
        assert_eq!(status(AuthError::Invalid("x".into())), 401);
        let role = AuthError::MissingRole { role: "R".into() };
        assert_eq!(status(role), 403);
        assert_eq!(status(AuthError::Unavailable("down".into())), 503);
    }

    #[test]
    fn upstream_failures_follow_the_documented_map() {
        use crate::clients::keyvault::SecretRef;
        let kv = |error: CallError<SecretRef>| FunctionError::from(KeyVaultError::from(error));
        let forbidden = kv(CallError::Forbidden {
            target: SecretRef::new("db", None),
            code: "Forbidden".into(),
        });
        assert_eq!(forbidden.status(), 403);
        assert!(forbidden.to_string().contains("Key Vault Secrets User"));
        let missing = kv(CallError::NotFound {
            target: SecretRef::new("db", None),
            code: None,
        });
        assert_eq!(missing.status(), 404);
        let throttled = kv(CallError::Throttled {
            retry_after: Some(Duration::from_secs(7)),
        });
        let response = throttled.to_response();
        assert_eq!(response.status, 503);
        assert_eq!(response.header("Retry-After"), Some("7"));
        let unsaid = FunctionError::from(StorageError::Call(CallError::Throttled {
            retry_after: None,
        }))
        .to_response();
        assert_eq!(unsaid.header("Retry-After"), Some("5"));
        assert_eq!(
            kv(CallError::Credential {
                message: "x".into()
            })
            .status(),
            503
        );
        assert_eq!(kv(CallError::Timeout).status(), 504);
        assert_eq!(
            FunctionError::from(StorageError::BlobTooLarge { limit: 1 }).status(),
            413
        );
        assert_eq!(FunctionError::Upstream("x".into()).status(), 502);
    }

    /// What a caller gets for an error: status, `error.code`, `error.message` and the
    /// `Retry-After` and `WWW-Authenticate` headers.
    fn answer(error: FunctionError) -> (u16, String, String, Option<String>, Option<String>) {
        let response = error.to_response();
        let body: serde_json::Value = serde_json::from_slice(&response.body).unwrap();
        let text = |pointer: &str| body.pointer(pointer).and_then(|v| v.as_str()).unwrap();
        (
            response.status,
            text("/error/code").to_owned(),
            text("/error/message").to_owned(),
            response.header("Retry-After").map(str::to_owned),
            response.header("WWW-Authenticate").map(str::to_owned),
        )
    }

    /// An error, then the status, code, message, Retry-After and WWW-Authenticate it answers.
    type Case<'a> = (
        FunctionError,
        u16,
        &'a str,
        &'a str,
        Option<&'a str>,
        Option<&'a str>,
    );

    fn check(cases: Vec<Case<'_>>) {
        for (error, status, code, message, retry_after, challenge) in cases {
            let expected = (
                status,
                code.to_owned(),
                message.to_owned(),
                retry_after.map(str::to_owned),
                challenge.map(str::to_owned),
            );
            assert_eq!(answer(error), expected);
        }
    }

    /// Every Key Vault and Storage failure, byte for byte as the caller gets it.
    #[test]
    fn service_call_failures_answer_their_status_code_message_and_retry_after() {
        use crate::clients::UpstreamDetail;
        use crate::clients::blob::{BlobOperation, BlobRef};
        use crate::clients::keyvault::SecretRef;
        const ROLE_KV: &str =
            "the managed identity needs the \"Key Vault Secrets User\" role on the vault";
        const VERSION: &str = "0123456789abcdef0123456789abcdef";
        let secs = Duration::from_secs;
        let kv = |error: CallError<SecretRef>| FunctionError::from(KeyVaultError::from(error));
        let storage = |error: CallError<BlobRef>| FunctionError::from(StorageError::from(error));
        let secret = |version: Option<&str>| SecretRef::new("db", version);
        let blob = |operation| BlobRef::new(operation, "data", "a.txt");
        check(vec![
            (
                KeyVaultError::InvalidVaultUrl("it must use https").into(),
                500,
                "NotConfigured",
                "invalid Key Vault URL: it must use https",
                None,
                None,
            ),
            (
                KeyVaultError::InvalidName(InputError::SecretName("it is empty")).into(),
                400,
                "BadRequest",
                "invalid secret name: it is empty",
                None,
                None,
            ),
            (
                kv(CallError::Forbidden {
                    target: secret(None),
                    code: "ForbiddenByRbac".into(),
                }),
                403,
                "Forbidden",
                &format!("access to secret 'db' was denied (ForbiddenByRbac): {ROLE_KV}"),
                None,
                None,
            ),
            (
                kv(CallError::NotFound {
                    target: secret(Some(VERSION)),
                    code: Some("SecretNotFound".into()),
                }),
                404,
                "NotFound",
                &format!("secret 'db' version {VERSION} was not found in the vault"),
                None,
                None,
            ),
            (
                kv(CallError::NotFound {
                    target: secret(None),
                    code: None,
                }),
                404,
                "NotFound",
                "secret 'db' was not found in the vault",
                None,
                None,
            ),
            (
                kv(CallError::Throttled {
                    retry_after: Some(secs(7)),
                }),
                503,
                "ServiceUnavailable",
                "Key Vault is throttling requests; retry after 7 s",
                Some("7"),
                None,
            ),
            (
                kv(CallError::Throttled {
                    retry_after: Some(secs(0)),
                }),
                503,
                "ServiceUnavailable",
                "Key Vault is throttling requests; retry after 0 s",
                Some("1"),
                None,
            ),
            (
                kv(CallError::Throttled { retry_after: None }),
                503,
                "ServiceUnavailable",
                "Key Vault is throttling requests",
                Some("5"),
                None,
            ),
            (
                kv(CallError::Credential {
                    message: "no identity".into(),
                }),
                503,
                "ServiceUnavailable",
                "could not get a token for Key Vault: no identity",
                None,
                None,
            ),
            (
                kv(CallError::Upstream(UpstreamDetail::status(
                    502,
                    Some("BadGateway".into()),
                ))),
                502,
                "UpstreamFailed",
                "Key Vault request failed: status 502, error code BadGateway",
                None,
                None,
            ),
            (
                kv(CallError::Upstream(UpstreamDetail::reason(
                    "connection failed".into(),
                ))),
                502,
                "UpstreamFailed",
                "Key Vault request failed: connection failed",
                None,
                None,
            ),
            (
                kv(CallError::Timeout),
                504,
                "Timeout",
                "Key Vault request timed out",
                None,
                None,
            ),
            (
                StorageError::InvalidStorageUrl("it must use https").into(),
                500,
                "NotConfigured",
                "invalid STORAGE_BLOB_URL: it must use https",
                None,
                None,
            ),
            (
                StorageError::InvalidInput(InputError::BodyTooLarge {
                    size: 20,
                    limit: 16,
                })
                .into(),
                413,
                "PayloadTooLarge",
                "blob body of 20 bytes is larger than the 16-byte limit",
                None,
                None,
            ),
            (
                StorageError::InvalidInput(InputError::ContainerName("it is empty")).into(),
                400,
                "BadRequest",
                "invalid container name: it is empty",
                None,
                None,
            ),
            (
                StorageError::BlobTooLarge { limit: 16 }.into(),
                413,
                "PayloadTooLarge",
                "the blob is larger than the 16-byte limit",
                None,
                None,
            ),
            (
                storage(CallError::Forbidden {
                    target: blob(BlobOperation::Write),
                    code: "AuthorizationPermissionMismatch".into(),
                }),
                403,
                "Forbidden",
                "write access was denied (AuthorizationPermissionMismatch): the managed identity needs the \"Storage Blob Data Contributor\" role on the storage account",
                None,
                None,
            ),
            (
                storage(CallError::Forbidden {
                    target: blob(BlobOperation::Read),
                    code: "AuthorizationFailure".into(),
                }),
                403,
                "Forbidden",
                "read access was denied (AuthorizationFailure): the managed identity needs the \"Storage Blob Data Reader\" role on the storage account",
                None,
                None,
            ),
            (
                storage(CallError::NotFound {
                    target: blob(BlobOperation::Read),
                    code: Some("ContainerNotFound".into()),
                }),
                404,
                "NotFound",
                "container 'data' was not found",
                None,
                None,
            ),
            (
                storage(CallError::NotFound {
                    target: blob(BlobOperation::Read),
                    code: Some("BlobNotFound".into()),
                }),
                404,
                "NotFound",
                "blob 'a.txt' in container 'data' was not found",
                None,
                None,
            ),
            (
                storage(CallError::Throttled {
                    retry_after: Some(secs(2)),
                }),
                503,
                "ServiceUnavailable",
                "Storage is throttling requests; retry after 2 s",
                Some("2"),
                None,
            ),
            (
                storage(CallError::Credential {
                    message: "no identity".into(),
                }),
                503,
                "ServiceUnavailable",
                "could not get a token for Storage: no identity",
                None,
                None,
            ),
            (
                storage(CallError::Upstream(UpstreamDetail::status(500, None))),
                502,
                "UpstreamFailed",
                "Storage request failed: status 500",
                None,
                None,
            ),
            (
                storage(CallError::Timeout),
                504,
                "Timeout",
                "Storage request timed out",
                None,
                None,
            ),
        ]);
    }

    /// Whoami's and CallApi's failures, byte for byte as the caller gets them.
    #[test]
    fn auth_and_downstream_failures_answer_their_status_code_message_and_headers() {
        use crate::clients::downstream::DownstreamError;
        let origin = || "https://api.example.com".to_owned();
        check(vec![
            (
                AuthError::MissingToken.into(),
                401,
                "InvalidToken",
                "no bearer token",
                None,
                Some("Bearer error=\"invalid_token\", error_description=\"no bearer token\""),
            ),
            (
                AuthError::Invalid("the token has expired".into()).into(),
                401,
                "InvalidToken",
                "the token has expired",
                None,
                Some("Bearer error=\"invalid_token\", error_description=\"the token has expired\""),
            ),
            (
                AuthError::MissingRole {
                    role: "Api.Read".into(),
                }
                .into(),
                403,
                "Forbidden",
                "the token lacks the required role 'Api.Read'",
                None,
                Some(
                    "Bearer error=\"insufficient_scope\", error_description=\"the token lacks the required role 'Api.Read'\"",
                ),
            ),
            (
                AuthError::Unavailable("the keys could not be fetched".into()).into(),
                503,
                "ServiceUnavailable",
                "the token cannot be checked now: the keys could not be fetched",
                None,
                None,
            ),
            (
                DownstreamError::InvalidPath("dot segments are not allowed".into()).into(),
                400,
                "BadRequest",
                "the path cannot be called: dot segments are not allowed",
                None,
                None,
            ),
            (
                DownstreamError::Unreachable {
                    origin: origin(),
                    reason: "connection refused".into(),
                }
                .into(),
                502,
                "UpstreamFailed",
                "the downstream API at https://api.example.com could not be reached: connection refused",
                None,
                None,
            ),
            (
                DownstreamError::TooLarge { limit: 10 }.into(),
                502,
                "UpstreamFailed",
                "the downstream API's response is larger than the limit of 10 bytes",
                None,
                None,
            ),
            (
                DownstreamError::Timeout {
                    origin: origin(),
                    after: Duration::from_millis(1500),
                }
                .into(),
                504,
                "Timeout",
                "the downstream API at https://api.example.com did not answer within 1500 ms",
                None,
                None,
            ),
            (
                DownstreamError::InvalidBase("expected an https URL".into()).into(),
                500,
                "NotConfigured",
                "DOWNSTREAM_API_URL is not usable: expected an https URL",
                None,
                None,
            ),
            (
                DownstreamError::InvalidToken.into(),
                500,
                "NotConfigured",
                "the access token cannot be sent in an HTTP header",
                None,
                None,
            ),
            (
                DownstreamError::Client("no TLS roots".into()).into(),
                500,
                "NotConfigured",
                "the HTTP client for the downstream API could not be built: no TLS roots",
                None,
                None,
            ),
        ]);
    }
}
