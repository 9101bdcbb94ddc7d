//! A token endpoint's success body, typed: `access_token` and an expiry are required;
//! `expires_on` in any known form, `expires_in` anchored at the request's start (the earlier
//! expiry wins), `refresh_in` if present. App Service, the legacy endpoint and IMDS all answer
//! this shape.

use serde::{Deserialize, Deserializer};
use serde_json::Value;
use time::{Duration, OffsetDateTime};

use super::ParsedToken;
use crate::SourceKind;
use crate::error::IdentityError;
use crate::expiry::{self, Field};
use crate::secret::{AccessTokenSecret, redacted_excerpt};

/// What an identity endpoint answers on success. Every field is read leniently (a value of the
/// wrong type is as good as absent, or [`Field::Unreadable`] for the expiries), so reading it
/// never fails and the checks below decide, in their order, what is fatal.
#[derive(Debug, Deserialize)]
struct TokenResponse {
    #[serde(default, deserialize_with = "non_empty_text")]
    access_token: Option<String>,
    #[serde(default, deserialize_with = "expiry::expires_on")]
    expires_on: Field<OffsetDateTime>,
    #[serde(default, deserialize_with = "expiry::seconds")]
    expires_in: Field<Duration>,
    #[serde(default, deserialize_with = "expiry::seconds")]
    refresh_in: Field<Duration>,
    #[serde(default, deserialize_with = "non_empty_text")]
    resource: Option<String>,
    #[serde(default, deserialize_with = "non_empty_text")]
    token_type: Option<String>,
}

/// `deserialize_with` for a text field that counts only as a non-empty string.
pub(super) fn non_empty_text<'de, D>(deserializer: D) -> Result<Option<String>, D::Error>
where
    D: Deserializer<'de>,
{
    Ok(any_text(deserializer)?.filter(|text| !text.is_empty()))
}

/// `deserialize_with` for a text field that counts only as a string (of any length).
pub(super) fn any_text<'de, D>(deserializer: D) -> Result<Option<String>, D::Error>
where
    D: Deserializer<'de>,
{
    Ok(match Value::deserialize(deserializer)? {
        Value::String(text) => Some(text),
        _ => None,
    })
}

/// Reads a token endpoint's success body exactly as a fetch does, keeping only whether it was
/// accepted and the expiry it found: the entry point `crates/fuzz` drives, since the parsed token
/// itself stays inside this crate.
pub fn check_token_body(
    kind: SourceKind,
    body: &[u8],
    issued: OffsetDateTime,
) -> Result<OffsetDateTime, IdentityError> {
    parse_token_body(kind, body, issued).map(|token| token.expires_on)
}

/// Reads a success body (see the module docs).
pub(crate) fn parse_token_body(
    kind: SourceKind,
    body: &[u8],
    issued: OffsetDateTime,
) -> Result<ParsedToken, IdentityError> {
    let malformed = |detail: String| IdentityError::Malformed {
        source_kind: kind,
        detail,
    };
    // Through `Value` first: "not JSON" and "not an object" get their own messages, a missing
    // token lists the members that were there, and a repeated member counts once (the last).
    let value = match serde_json::from_slice::<Value>(body) {
        Ok(value) => value,
        Err(_) => {
            return Err(malformed(format!(
                "the body is not JSON: \"{}\"",
                redacted_excerpt(&String::from_utf8_lossy(body))
            )));
        }
    };
    let Value::Object(members) = &value else {
        return Err(malformed("the body is JSON but not an object".into()));
    };
    let answer = TokenResponse::deserialize(&value).map_err(|e| malformed(e.to_string()))?;
    let Some(access_token) = answer.access_token.map(AccessTokenSecret::new) else {
        let fields: Vec<&str> = members.keys().map(String::as_str).collect();
        return Err(malformed(format!(
            "no access_token (fields present: {})",
            fields.join(", ")
        )));
    };
    let absolute = match answer.expires_on {
        Field::Absent => None,
        Field::Read(expires_on) => Some(expires_on),
        Field::Unreadable(why) => return Err(malformed(why)),
    };
    let relative = match answer.expires_in {
        Field::Absent => None,
        Field::Read(lifetime) => Some(
            issued
                .checked_add(lifetime)
                .ok_or_else(|| malformed("expires_in is out of range".into()))?,
        ),
        Field::Unreadable(why) => return Err(malformed(format!("expires_in: {why}"))),
    };
    let expires_on = match (absolute, relative) {
        (Some(a), Some(r)) => a.min(r),
        (Some(a), None) => a,
        (None, Some(r)) => r,
        (None, None) => {
            return Err(malformed(
                "neither expires_on nor expires_in is present; refusing to guess a lifetime".into(),
            ));
        }
    };
    if expires_on <= issued {
        return Err(malformed(format!(
            "the token expired already ({expires_on}); is the system clock right?"
        )));
    }
    Ok(ParsedToken {
        access_token,
        expires_on,
        refresh_in: answer.refresh_in.ok(),
        resource: answer.resource,
        token_type: answer.token_type,
    })
}
