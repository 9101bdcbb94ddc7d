//! Reading a token's claims for diagnostics, without verifying its signature.
//!
//! The result is for showing what a token says (audience, roles, expiry), never for trusting it:
//! incoming tokens are validated elsewhere. Errors never quote the token.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Deserializer, Serialize};
use time::OffsetDateTime;

/// The claims of an Entra ID access token that are useful to show. Unknown claims are ignored.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// Audience: the resource the token is for (several audiences are joined with a space).
    #[serde(default, deserialize_with = "string_or_list")]
    pub aud: Option<String>,
    /// Issuer (`https://sts.windows.net/{tenant}/` for v1 tokens).
    #[serde(default)]
    pub iss: Option<String>,
    /// Object id of the identity.
    #[serde(default)]
    pub oid: Option<String>,
    /// Subject.
    #[serde(default)]
    pub sub: Option<String>,
    /// Tenant id.
    #[serde(default)]
    pub tid: Option<String>,
    /// Client (application) id, v1 tokens.
    #[serde(default)]
    pub appid: Option<String>,
    /// Client (application) id, v2 tokens.
    #[serde(default)]
    pub azp: Option<String>,
    /// `app` for application (managed identity) tokens.
    #[serde(default)]
    pub idtyp: Option<String>,
    /// Token version (`1.0` or `2.0`).
    #[serde(default)]
    pub ver: Option<String>,
    /// App roles granted to the identity on the audience.
    #[serde(default)]
    pub roles: Vec<String>,
    /// Delegated scopes (user tokens, e.g. from the Azure CLI).
    #[serde(default)]
    pub scp: Option<String>,
    /// ARM resource id of the managed identity.
    #[serde(default)]
    pub xms_mirid: Option<String>,
    /// Expiry, epoch seconds.
    #[serde(default)]
    pub exp: Option<i64>,
    /// Not before, epoch seconds.
    #[serde(default)]
    pub nbf: Option<i64>,
    /// Issued at, epoch seconds.
    #[serde(default)]
    pub iat: Option<i64>,
}

impl Claims {
    /// `exp` as a date, if present and in range.
    pub fn expires_at(&self) -> Option<OffsetDateTime> {
        self.exp
            .and_then(|s| OffsetDateTime::from_unix_timestamp(s).ok())
    }
}

/// Why a token's claims could not be read. Never contains the token.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClaimsError {
    /// Not three dot-separated parts.
    #[error("not a JWT: expected 3 dot-separated parts, found {0}")]
    NotAJwt(usize),
    /// The payload is not base64url.
    #[error("the JWT payload is not base64url")]
    Base64,
    /// The payload is not a JSON object with the expected claim types.
    #[error("the JWT payload is not valid claims JSON: {0}")]
    Json(String),
}

/// Decodes a JWT's payload without checking its signature, for diagnostics only.
pub fn decode_unverified(token: &str) -> Result<Claims, ClaimsError> {
    let parts: Vec<&str> = token.split('.').collect();
    let [_, payload, _] = parts.as_slice() else {
        return Err(ClaimsError::NotAJwt(parts.len()));
    };
    let bytes = URL_SAFE_NO_PAD
        .decode(payload.trim_end_matches('='))
        .map_err(|_| ClaimsError::Base64)?;
    // serde_json's messages can quote claim values, so report only the kind and position.
    serde_json::from_slice(&bytes).map_err(|e| {
        ClaimsError::Json(format!("{:?} error at column {}", e.classify(), e.column()))
    })
}

fn string_or_list<'de, D>(deserializer: D) -> Result<Option<String>, D::Error>
where
    D: Deserializer<'de>,
{
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMany {
        One(String),
        Many(Vec<String>),
    }
    Ok(match Option::<OneOrMany>::deserialize(deserializer)? {
        None => None,
        Some(OneOrMany::One(s)) => Some(s),
        Some(OneOrMany::Many(list)) => Some(list.join(" ")),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn jwt(payload: &str) -> String {
        format!(
            "{}.{}.c2ln",
            URL_SAFE_NO_PAD.encode(r#"{"alg":"RS256","typ":"JWT"}"#),
            URL_SAFE_NO_PAD.encode(payload)
        )
    }

    #[test]
    fn decodes_managed_identity_claims() {
        let token = jwt(
            r#"{"aud":"https://vault.azure.net","iss":"https://sts.windows.net/t1/","oid":"o1","tid":"t1","appid":"c1","roles":["Api.Read"],"exp":2000000000,"nbf":1999990000,"iat":1999990000,"uti":"x"}"#,
        );
        let claims = decode_unverified(&token).unwrap();
        assert_eq!(claims.aud.as_deref(), Some("https://vault.azure.net"));
        assert_eq!(claims.oid.as_deref(), Some("o1"));
        assert_eq!(claims.tid.as_deref(), Some("t1"));
        assert_eq!(claims.appid.as_deref(), Some("c1"));
        assert_eq!(claims.roles, vec!["Api.Read".to_owned()]);
        assert_eq!(claims.exp, Some(2000000000));
        assert_eq!(
            claims.expires_at().unwrap(),
            OffsetDateTime::from_unix_timestamp(2000000000).unwrap()
        );
        let json = serde_json::to_value(&claims).unwrap();
        assert_eq!(json["aud"], "https://vault.azure.net");
    }

    #[test]
    fn audience_list_and_missing_claims() {
        let claims = decode_unverified(&jwt(r#"{"aud":["a","b"]}"#)).unwrap();
        assert_eq!(claims.aud.as_deref(), Some("a b"));
        assert!(claims.roles.is_empty());
        assert_eq!(claims.exp, None);
    }

    #[test]
    fn errors_never_quote_the_token() {
        let secretish = "eyJzZWNyZXQiOiJ2YWx1ZSJ9";
        for bad in [
            secretish.to_owned(),
            format!("a.{secretish}!.c"),
            jwt(r#"{"exp":"soon-SECRET"}"#),
            jwt("not json SECRET"),
        ] {
            let err = decode_unverified(&bad).unwrap_err().to_string();
            assert!(!err.contains("SECRET") && !err.contains(secretish), "{err}");
        }
    }
}
