//! Token claims and the success bodies of the three protocols.
//!
//! Claims follow AAD v1 managed-identity access tokens: `aud` (the resource exactly as requested),
//! `iss` `https://sts.windows.net/{tenant}/`, `iat`, `nbf`, `exp`, `oid`, `sub` (= oid), `tid`,
//! `appid` (client id), `appidacr` "2", `idtyp` "app", `ver` "1.0", `roles` (omitted when empty),
//! `uti` (random), and `xms_mirid` (the identity's resource id, when configured).

use serde::Deserialize;
use serde_json::{Map, Value, json};
use time::OffsetDateTime;
use time::macros::format_description;

use super::config::IdentityConfig;
use super::protocol::Protocol;

/// How a response writes `expires_on`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ExpiresOnFormat {
    /// `"1700000000"`: what App Service 2019 and IMDS send.
    EpochString,
    /// `1700000000`: a JSON number, as Azure ML sends.
    EpochNumber,
    /// `"1/16/2020 5:24:12 AM +00:00"`: legacy 2017 on Windows.
    DateWindows,
    /// `"06/20/2019 02:57:58 +00:00"`: legacy 2017 on Linux.
    DateLinux,
    /// `"09/14/2017 00:00:00 PM +00:00"`: the docs' sample, a 12-hour clock that writes 12 as 00.
    DatePm,
}

impl ExpiresOnFormat {
    /// Renders `expires_on` (epoch seconds, UTC) in this format.
    pub fn render(self, expires_on: i64) -> Value {
        let Ok(at) = OffsetDateTime::from_unix_timestamp(expires_on) else {
            return Value::String(expires_on.to_string());
        };
        match self {
            Self::EpochString => Value::String(expires_on.to_string()),
            Self::EpochNumber => Value::from(expires_on),
            Self::DateWindows => Value::String(windows_date(at)),
            Self::DateLinux => Value::String(format_or_epoch(at, expires_on)),
            Self::DatePm => Value::String(pm_date(at)),
        }
    }
}

fn twelve_hour(hour: u8) -> (u8, &'static str) {
    let suffix = if hour < 12 { "AM" } else { "PM" };
    (hour % 12, suffix)
}

fn windows_date(at: OffsetDateTime) -> String {
    let (hour, suffix) = twelve_hour(at.hour());
    let hour = if hour == 0 { 12 } else { hour };
    month_day_year_time(at, hour, suffix, false)
}

fn pm_date(at: OffsetDateTime) -> String {
    let (hour, suffix) = twelve_hour(at.hour());
    month_day_year_time(at, hour, suffix, true)
}

/// `M/D/YYYY h:mm:ss AM +00:00`, the layout both twelve-hour formats share; `padded` writes
/// month, day and hour with two digits.
fn month_day_year_time(at: OffsetDateTime, hour: u8, suffix: &str, padded: bool) -> String {
    let width = if padded { 2 } else { 1 };
    format!(
        "{:0width$}/{:0width$}/{} {:0width$}:{:02}:{:02} {suffix} +00:00",
        u8::from(at.month()),
        at.day(),
        at.year(),
        hour,
        at.minute(),
        at.second()
    )
}

fn format_or_epoch(at: OffsetDateTime, expires_on: i64) -> String {
    let linux = format_description!("[month]/[day]/[year] [hour]:[minute]:[second] +00:00");
    at.format(linux).unwrap_or_else(|_| expires_on.to_string())
}

/// Times of one token, in epoch seconds.
#[derive(Debug, Clone, Copy)]
pub struct Validity {
    /// Issued at (also `nbf`).
    pub issued_at: i64,
    /// Expiry (`exp`, `expires_on`).
    pub expires_on: i64,
}

impl Validity {
    /// A token issued now, living `lifetime_secs`.
    pub fn starting_now(lifetime_secs: u64) -> Self {
        let issued_at = OffsetDateTime::now_utc().unix_timestamp();
        let lifetime = i64::try_from(lifetime_secs).unwrap_or(i64::MAX / 4);
        Self {
            issued_at,
            expires_on: issued_at.saturating_add(lifetime),
        }
    }

    fn lifetime(&self) -> i64 {
        self.expires_on - self.issued_at
    }
}

/// The claims of an access token for `identity` and `audience`.
pub fn claims(
    tenant_id: &str,
    identity: &IdentityConfig,
    audience: &str,
    validity: Validity,
) -> Value {
    let mut claims = Map::new();
    claims.insert("aud".into(), audience.into());
    claims.insert(
        "iss".into(),
        format!("https://sts.windows.net/{tenant_id}/").into(),
    );
    claims.insert("iat".into(), validity.issued_at.into());
    claims.insert("nbf".into(), validity.issued_at.into());
    claims.insert("exp".into(), validity.expires_on.into());
    claims.insert("aio".into(), "emulator".into());
    claims.insert("appid".into(), identity.client_id.as_str().into());
    claims.insert("appidacr".into(), "2".into());
    claims.insert(
        "idp".into(),
        format!("https://sts.windows.net/{tenant_id}/").into(),
    );
    claims.insert("idtyp".into(), "app".into());
    claims.insert("oid".into(), identity.object_id.as_str().into());
    let roles = identity.roles_for(audience);
    if !roles.is_empty() {
        claims.insert("roles".into(), json!(roles));
    }
    claims.insert("sub".into(), identity.object_id.as_str().into());
    claims.insert("tid".into(), tenant_id.into());
    claims.insert("uti".into(), random_uti().into());
    claims.insert("ver".into(), "1.0".into());
    if let Some(resource_id) = &identity.resource_id {
        claims.insert("xms_mirid".into(), resource_id.as_str().into());
    }
    Value::Object(claims)
}

/// A random 22-character token id, like AAD's `uti`.
fn random_uti() -> String {
    let mut bytes = [0u8; 16];
    if aws_lc_rs::rand::fill(&mut bytes).is_err() {
        return uuid::Uuid::new_v4().simple().to_string();
    }
    crate::jwt::b64url(&bytes)
}

/// The success body for `protocol`, with `expires_on` written as `format`.
pub fn success_body(
    protocol: Protocol,
    access_token: &str,
    resource: &str,
    client_id: &str,
    validity: Validity,
    format: ExpiresOnFormat,
) -> Value {
    let mut body = json!({
        "access_token": access_token,
        "expires_on": format.render(validity.expires_on),
        "resource": resource,
        "token_type": "Bearer",
        "client_id": client_id,
    });
    if protocol == Protocol::Imds {
        let lifetime = validity.lifetime().to_string();
        body["refresh_token"] = "".into();
        body["expires_in"] = lifetime.clone().into();
        body["ext_expires_in"] = lifetime.into();
        body["not_before"] = validity.issued_at.to_string().into();
    }
    body
}

#[cfg(test)]
mod tests {
    use super::*;

    // 2020-01-16T05:24:12Z and 2017-09-14T12:00:00Z
    const MORNING: i64 = 1_579_152_252;
    const NOON: i64 = 1_505_390_400;

    #[test]
    fn renders_every_expires_on_format() {
        let cases = [
            (ExpiresOnFormat::EpochString, MORNING, json!("1579152252")),
            (ExpiresOnFormat::EpochNumber, MORNING, json!(1_579_152_252)),
            (
                ExpiresOnFormat::DateWindows,
                MORNING,
                json!("1/16/2020 5:24:12 AM +00:00"),
            ),
            (
                ExpiresOnFormat::DateLinux,
                MORNING,
                json!("01/16/2020 05:24:12 +00:00"),
            ),
            (
                ExpiresOnFormat::DatePm,
                NOON,
                json!("09/14/2017 00:00:00 PM +00:00"),
            ),
            (
                ExpiresOnFormat::DateWindows,
                NOON,
                json!("9/14/2017 12:00:00 PM +00:00"),
            ),
        ];
        for (format, at, expected) in cases {
            assert_eq!(format.render(at), expected, "{format:?} at {at}");
        }
    }

    #[test]
    fn imds_body_has_the_extra_fields() {
        let validity = Validity {
            issued_at: 100,
            expires_on: 3700,
        };
        let body_for = |protocol| {
            success_body(
                protocol,
                "t",
                "r",
                "c",
                validity,
                ExpiresOnFormat::EpochString,
            )
        };
        let body = body_for(Protocol::Imds);
        assert_eq!(body["expires_in"], "3600");
        assert_eq!(body["not_before"], "100");
        assert_eq!(body["refresh_token"], "");
        let app = body_for(Protocol::AppService2019);
        assert!(app.get("expires_in").is_none());
        assert_eq!(app["expires_on"], "3700");
    }
}
