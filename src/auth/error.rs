//! Why a request's bearer token was refused, with the challenge to answer with (its status is
//! mapped in `src/error.rs`).
//!
//! Every message is a short fixed description (or a role name from the settings): none ever
//! quotes the token or any part of it.

/// Why a bearer token was not accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// The request has no `Authorization: Bearer <token>` header.
    #[error("no bearer token")]
    MissingToken,
    /// The token was refused; the description says why and is safe to send back.
    #[error("{0}")]
    Invalid(String),
    /// The token is valid but lacks the app role the settings require.
    #[error("the token lacks the required role '{role}'")]
    MissingRole {
        /// The role that was required.
        role: String,
    },
    /// The authority's discovery document or signing keys could not be fetched.
    #[error("the token cannot be checked now: {0}")]
    Unavailable(String),
}

impl AuthError {
    /// The `WWW-Authenticate` value (RFC 6750 §3): `error="invalid_token"` with a description for
    /// a missing or invalid token, `error="insufficient_scope"` for a missing role, none for 503.
    pub fn www_authenticate(&self) -> Option<String> {
        let error = match self {
            Self::MissingToken | Self::Invalid(_) => "invalid_token",
            Self::MissingRole { .. } => "insufficient_scope",
            Self::Unavailable(_) => return None,
        };
        Some(format!(
            "Bearer error=\"{error}\", error_description=\"{}\"",
            quoted_string_content(&self.to_string())
        ))
    }
}

/// The text made safe inside an HTTP quoted-string: quotes and backslashes escaped, anything
/// that is not printable ASCII dropped.
fn quoted_string_content(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for character in text.chars() {
        match character {
            '"' | '\\' => {
                out.push('\\');
                out.push(character);
            }
            ' '..='~' => out.push(character),
            _ => {}
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_challenge_names_the_error_and_escapes_quotes() {
        assert_eq!(
            AuthError::MissingToken.www_authenticate().as_deref(),
            Some("Bearer error=\"invalid_token\", error_description=\"no bearer token\"")
        );
        let invalid = AuthError::Invalid("a \"quoted\" \\ word\n\u{e9}".into());
        assert_eq!(
            invalid.www_authenticate().as_deref(),
            Some(
                "Bearer error=\"invalid_token\", error_description=\"a \\\"quoted\\\" \\\\ word\""
            )
        );
        let role = AuthError::MissingRole {
            role: "Api.Read".into(),
        };
        assert_eq!(
            role.www_authenticate().as_deref(),
            Some(
                "Bearer error=\"insufficient_scope\", error_description=\"the token lacks the required role 'Api.Read'\""
            )
        );
        assert_eq!(AuthError::Unavailable("x".into()).www_authenticate(), None);
    }
}
