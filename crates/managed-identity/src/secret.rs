//! Types that hold secrets (the access token, the endpoint's header secret) and the helpers that
//! scrub secrets out of text we quote in errors.
//!
//! Neither type implements `Serialize`, and both redact in `Debug` and `Display`, so a secret can
//! only leave through the explicit `expose` call.

use std::fmt;
use std::sync::Arc;

/// `Debug` and `Display` for a secret type that print fixed placeholders, never the value.
macro_rules! redacted_fmt {
    ($secret:ty, $debug:literal, $display:literal) => {
        impl fmt::Debug for $secret {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str($debug)
            }
        }

        impl fmt::Display for $secret {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str($display)
            }
        }
    };
}

/// An access token. `Debug` and `Display` print a placeholder; [`AccessTokenSecret::expose`] is the
/// only way to read the value, so every place that sends it somewhere is easy to find.
///
/// Shared, not copied, by every clone: the cache hands out a copy of its token on every call,
/// and a token is one to two kilobytes.
#[derive(Clone, PartialEq, Eq)]
pub struct AccessTokenSecret(Arc<str>);

impl AccessTokenSecret {
    /// Wraps a token value.
    pub fn new(value: impl Into<String>) -> Self {
        Self(Arc::from(value.into()))
    }

    /// The token itself, for an `Authorization: Bearer` header or a caller that asked for it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

redacted_fmt!(
    AccessTokenSecret,
    "AccessTokenSecret(<redacted>)",
    "<redacted access token>"
);

/// The secret an App Service identity endpoint requires in a header (`IDENTITY_HEADER`,
/// `MSI_SECRET`). It protects against SSRF, so it must never be logged or sent elsewhere.
#[derive(Clone, PartialEq, Eq)]
pub struct HeaderSecret(String);

impl HeaderSecret {
    /// Wraps a header secret value.
    pub(crate) fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The value, only for building the header of a request to the configured endpoint.
    pub(crate) fn expose(&self) -> &str {
        &self.0
    }
}

redacted_fmt!(
    HeaderSecret,
    "HeaderSecret(<redacted>)",
    "<redacted header secret>"
);

/// JSON keys whose string values are credentials and must be masked before quoting a body.
const SECRET_KEYS: &[&str] = &[
    "access_token",
    "accessToken",
    "refresh_token",
    "refreshToken",
    "id_token",
    "token",
];

/// Longest excerpt of a foreign body or process output we quote in an error.
const MAX_EXCERPT_CHARS: usize = 300;

/// Makes a short, printable, secret-free excerpt of text we received (a response body, CLI
/// output) so an error can quote it: credential-valued JSON fields and anything shaped like a JWT
/// are replaced with `****`, control characters are dropped, and the result is truncated.
pub(crate) fn redacted_excerpt(text: &str) -> String {
    let masked = mask_jwt_like(&mask_secret_fields(text));
    let mut out = String::new();
    for (count, c) in masked.chars().filter(|c| !c.is_control()).enumerate() {
        if count >= MAX_EXCERPT_CHARS {
            out.push('…');
            break;
        }
        out.push(c);
    }
    out
}

/// Replaces the string value after every `"<secret key>"` + `:` with `****`.
fn mask_secret_fields(text: &str) -> String {
    let mut out = text.to_owned();
    for key in SECRET_KEYS {
        out = mask_one_key(&out, key);
    }
    out
}

fn mask_one_key(text: &str, key: &str) -> String {
    let needle = format!("\"{key}\"");
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(pos) = rest.find(&needle) {
        let after_key = pos + needle.len();
        out.push_str(&rest[..after_key]);
        rest = &rest[after_key..];
        let trimmed = rest.trim_start();
        let Some(after_colon) = trimmed.strip_prefix(':') else {
            continue;
        };
        let value = after_colon.trim_start();
        let Some(inner) = value.strip_prefix('"') else {
            continue;
        };
        out.push_str(&rest[..rest.len() - value.len()]);
        out.push_str("\"****\"");
        rest = skip_json_string(inner);
    }
    out.push_str(rest);
    out
}

/// Returns what follows the closing quote of a JSON string whose opening quote was just consumed
/// (or the empty string if it never closes, so an unterminated secret is dropped entirely).
fn skip_json_string(inner: &str) -> &str {
    let mut escaped = false;
    for (i, c) in inner.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' => escaped = true,
            '"' => return &inner[i + 1..],
            _ => {}
        }
    }
    ""
}

/// Replaces every run that looks like a JWT (`eyJ…` followed by base64url and dots) with `****`.
fn mask_jwt_like(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(pos) = rest.find("eyJ") {
        out.push_str(&rest[..pos]);
        let tail = &rest[pos..];
        let len = tail
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.'))
            .unwrap_or(tail.len());
        out.push_str("****");
        rest = &tail[len..];
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_and_display_never_show_the_value() {
        let token = AccessTokenSecret::new("tok-VALUE-123");
        let header = HeaderSecret::new("hdr-VALUE-456");
        for text in [
            format!("{token:?}"),
            format!("{token}"),
            format!("{header:?}"),
            format!("{header}"),
        ] {
            assert!(!text.contains("VALUE"), "{text}");
        }
        assert_eq!(token.expose(), "tok-VALUE-123");
        assert_eq!(header.expose(), "hdr-VALUE-456");
    }

    #[test]
    fn a_cloned_token_shares_its_value_instead_of_copying_it() {
        let token = AccessTokenSecret::new("a".repeat(1500));
        let copy = token.clone();
        assert_eq!(copy, token);
        assert!(std::ptr::eq(copy.expose(), token.expose()));
    }

    #[test]
    fn excerpt_masks_token_fields_and_jwts() {
        let body = r#"{"access_token" : "abc\"def", "expires_on":"x", "refresh_token":"r1", "other":"eyJhbGci.eyJzdWIi.sig-_x more"}"#;
        let excerpt = redacted_excerpt(body);
        assert!(!excerpt.contains("abc"), "{excerpt}");
        assert!(!excerpt.contains("def"), "{excerpt}");
        assert!(!excerpt.contains("r1"), "{excerpt}");
        assert!(!excerpt.contains("eyJ"), "{excerpt}");
        assert!(excerpt.contains(r#""access_token" : "****""#), "{excerpt}");
        assert!(excerpt.contains("\"expires_on\":\"x\""), "{excerpt}");
        assert!(excerpt.contains("**** more"), "{excerpt}");
    }

    #[test]
    fn excerpt_drops_unterminated_secret_and_truncates() {
        let excerpt = redacted_excerpt(r#"{"access_token":"never-closed"#);
        assert!(!excerpt.contains("never"), "{excerpt}");
        let long = "x".repeat(1000);
        let excerpt = redacted_excerpt(&long);
        assert_eq!(excerpt.chars().count(), MAX_EXCERPT_CHARS + 1);
    }
}
