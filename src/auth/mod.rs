//! Validation of incoming AAD bearer tokens, for functions that protect themselves.
//!
//! [`AuthConfig`] reads the settings, [`TokenValidator`] checks a request's `Authorization`
//! header against the authority's published keys and answers with the [`Caller`] or an
//! [`AuthError`] that knows its HTTP status and `WWW-Authenticate` challenge.
//!
//! What a token must satisfy:
//! - an allowed RSA algorithm (RS256/384/512, PS256/384/512), checked on the header before any
//!   key is used, so `none` and HS* tokens never reach a key;
//! - a signature by a key of the authority's JWKS (found through its OpenID discovery document);
//! - `exp` present and not passed, `nbf` (if present) reached, each with 5 minutes of clock skew;
//! - `iss` exactly `https://sts.windows.net/<tenant>/` or
//!   `https://login.microsoftonline.com/<tenant>/v2.0` for the configured tenant;
//! - `aud` one of the configured audiences (a trailing `/` aside);
//! - the required role in `roles`, when one is configured.

mod config;
mod error;
mod keys;
mod validator;

pub use config::{
    AUDIENCE_SETTING, AUTHORITY_SETTING, AuthConfig, AuthConfigError, REQUIRED_ROLE_SETTING,
};
pub use error::AuthError;
pub use keys::usable_kids;
pub use validator::{
    Caller, TokenValidator, ValidatorOptions, check_unsigned, default_http_client,
};
