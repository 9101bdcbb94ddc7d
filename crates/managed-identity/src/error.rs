//! Errors of the identity module: one for configuration (detected at start-up), one for token
//! acquisition. Messages name the source and the setting to check, quote what the service said,
//! and never contain a token or a header secret.

use std::fmt;
use std::time::Duration;

use super::{IdentitySelector, SourceKind};

/// The identity settings in the environment are unusable. Raised by
/// [`IdentityConfig::from_lookup`](super::IdentityConfig::from_lookup) and
/// [`ManagedIdentity::new`](super::ManagedIdentity::new), before any network call.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdentityConfigError {
    /// An endpoint variable does not hold a usable http(s) URL.
    #[error("{variable} is not a usable endpoint URL: {reason}")]
    InvalidUrl {
        /// The variable that holds the URL.
        variable: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// One variable of a pair that only works together is set without the other.
    #[error("{present} is set but {missing} is not; set both or neither")]
    IncompletePair {
        /// The variable that is set.
        present: &'static str,
        /// The variable that is missing.
        missing: &'static str,
    },
    /// The environment describes a managed-identity platform this module does not implement.
    #[error(
        "{platform} managed identity (detected from {variables}) is not supported by this handler; \
         run it on App Service / Functions or a VM (IMDS)"
    )]
    UnsupportedPlatform {
        /// Azure Arc, Service Fabric or Cloud Shell.
        platform: &'static str,
        /// The variables that identified it.
        variables: &'static str,
    },
    /// More than one explicit identity setting is present.
    #[error("only one of {found} may be set: they select different user-assigned identities")]
    ConflictingIdentity {
        /// The variables found, comma-separated.
        found: String,
    },
    /// A setting has a value this module cannot use (never quotes secret values).
    #[error("{variable} is invalid: {reason}")]
    InvalidValue {
        /// The variable.
        variable: &'static str,
        /// Why it is unusable.
        reason: String,
    },
    /// The HTTP client for the identity endpoint could not be built.
    #[error("cannot build the HTTP client for the identity endpoint: {0}")]
    HttpClient(String),
}

/// What an identity endpoint said in an error body: its message, error code and correlation id,
/// already scrubbed of anything that looks like a token.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ServiceDetail {
    /// The service's message (`message`, `error_description`) or an excerpt of a non-JSON body.
    pub message: Option<String>,
    /// The service's error code (`error`, `error.code`).
    pub code: Option<String>,
    /// App Service's `correlationId`, to quote in a support request.
    pub correlation_id: Option<String>,
}

impl fmt::Display for ServiceDetail {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(message) = &self.message {
            write!(f, "; service said \"{message}\"")?;
        }
        if let Some(code) = &self.code {
            write!(f, "; error {code}")?;
        }
        if let Some(id) = &self.correlation_id {
            write!(f, "; correlationId {id}")?;
        }
        Ok(())
    }
}

/// Why the Azure CLI could not produce a token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CliFailure {
    /// `az` is not installed or not on PATH.
    NotInstalled,
    /// The developer is not logged in (`az login`).
    NotLoggedIn,
    /// `az` did not finish within the time limit.
    TimedOut,
    /// Any other failure (the detail quotes redacted output).
    Failed,
}

/// A token could not be acquired. `Clone` so one failed fetch can be reported to every caller that
/// waited for it.
#[derive(Debug, Clone, thiserror::Error)]
pub enum IdentityError {
    /// The scope or resource string cannot be used.
    #[error("invalid scope \"{scope}\": {reason}")]
    InvalidScope {
        /// The scope as given (not a secret).
        scope: String,
        /// Why it was refused.
        reason: &'static str,
    },
    /// The source cannot select the requested identity (e.g. an object id on the 2017 protocol).
    #[error("{source_kind} cannot request a token for {identity}: {reason}")]
    UnsupportedIdentity {
        /// The source in use.
        source_kind: SourceKind,
        /// The identity requested.
        identity: IdentitySelector,
        /// Why, and what to do instead.
        reason: String,
    },
    /// HTTP 400: the identity is not assigned, the id is unknown, or a parameter is wrong.
    #[error(
        "{source_kind}: identity not found (HTTP 400) for {identity}, resource \"{resource}\"{service}; hint: {hint}"
    )]
    IdentityNotFound {
        /// The source in use.
        source_kind: SourceKind,
        /// The identity requested.
        identity: IdentitySelector,
        /// The resource requested.
        resource: String,
        /// What the service said.
        service: Box<ServiceDetail>,
        /// What to check.
        hint: String,
    },
    /// HTTP 401/403: the endpoint refused the request (wrong header secret, policy).
    #[error("{source_kind}: forbidden (HTTP {status}) for {identity}{service}; hint: {hint}")]
    Forbidden {
        /// The source in use.
        source_kind: SourceKind,
        /// 401 or 403.
        status: u16,
        /// The identity requested.
        identity: IdentitySelector,
        /// What the service said.
        service: Box<ServiceDetail>,
        /// What to check.
        hint: String,
    },
    /// The endpoint could not be reached or kept failing (connect errors, timeouts, 5xx) until the
    /// retries or the deadline ran out.
    #[error(
        "{source_kind}: unavailable after {attempts} attempt(s): {detail}{service}; check {setting}"
    )]
    Unavailable {
        /// The source in use.
        source_kind: SourceKind,
        /// Requests made.
        attempts: u32,
        /// The last failure.
        detail: String,
        /// What the service said in its last answer, if anything.
        service: Box<ServiceDetail>,
        /// The setting that points at the endpoint.
        setting: &'static str,
    },
    /// HTTP 429 until the retries ran out (or `Retry-After` exceeded what we may wait).
    #[error("{source_kind}: throttled (HTTP 429) after {attempts} attempt(s){}{service}", retry_after_text(.retry_after))]
    Throttled {
        /// The source in use.
        source_kind: SourceKind,
        /// Requests made.
        attempts: u32,
        /// How long the service asked us to wait, when it said.
        retry_after: Option<Duration>,
        /// What the service said.
        service: Box<ServiceDetail>,
    },
    /// Any other status the endpoint answered with (404 on App Service, a redirect, ...).
    #[error("{source_kind}: unexpected HTTP {status}{service}; hint: {hint}")]
    Rejected {
        /// The source in use.
        source_kind: SourceKind,
        /// The status.
        status: u16,
        /// What the service said.
        service: Box<ServiceDetail>,
        /// What to check.
        hint: String,
    },
    /// The endpoint answered 200 with something we cannot use.
    #[error("{source_kind}: malformed token response: {detail}")]
    Malformed {
        /// The source in use.
        source_kind: SourceKind,
        /// What is wrong (never the token; quoted bodies are redacted).
        detail: String,
    },
    /// The Azure CLI developer fallback failed.
    #[error("{source_kind}: {detail}")]
    Cli {
        /// Always [`SourceKind::AzureCli`].
        source_kind: SourceKind,
        /// What kind of failure.
        failure: CliFailure,
        /// What happened and what to do (output redacted).
        detail: String,
    },
}

fn retry_after_text(retry_after: &Option<Duration>) -> String {
    match retry_after {
        Some(d) => format!("; retry after {} s", d.as_secs()),
        None => String::new(),
    }
}

impl IdentityError {
    /// The source the error came from, when one was involved.
    pub fn source_kind(&self) -> Option<SourceKind> {
        match self {
            Self::InvalidScope { .. } => None,
            Self::UnsupportedIdentity { source_kind, .. }
            | Self::IdentityNotFound { source_kind, .. }
            | Self::Forbidden { source_kind, .. }
            | Self::Unavailable { source_kind, .. }
            | Self::Throttled { source_kind, .. }
            | Self::Rejected { source_kind, .. }
            | Self::Malformed { source_kind, .. }
            | Self::Cli { source_kind, .. } => Some(*source_kind),
        }
    }

    /// Whether trying again later may succeed (endpoint down, throttled), as opposed to a
    /// configuration problem that needs a person.
    pub fn is_transient(&self) -> bool {
        matches!(self, Self::Unavailable { .. } | Self::Throttled { .. })
            || matches!(
                self,
                Self::Cli {
                    failure: CliFailure::TimedOut,
                    ..
                }
            )
    }
}
