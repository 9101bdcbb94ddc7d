//! The settings of incoming-token validation: which authority issues the tokens, which audiences
//! they may be for and which app role, if any, the caller must hold.

use url::Url;

use crate::net::is_loopback;

/// The setting naming the authority, e.g. `https://login.microsoftonline.com/<tenant>/v2.0`.
pub const AUTHORITY_SETTING: &str = "AUTH_AUTHORITY";
/// The setting listing the accepted audiences (comma-separated App ID URIs and/or client ids).
pub const AUDIENCE_SETTING: &str = "AUTH_AUDIENCE";
/// The setting naming the app role the caller must hold, when set.
pub const REQUIRED_ROLE_SETTING: &str = "AUTH_REQUIRED_ROLE";

/// Authority path segments that stand for "any tenant": a token from any tenant would pass, so
/// they are refused; the authority must name one tenant.
const MULTI_TENANT_SEGMENTS: &[&str] = &["common", "organizations", "consumers"];

/// How incoming bearer tokens are validated, read once at start-up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthConfig {
    /// The token issuer's authority (AUTH_AUTHORITY), e.g.
    /// `https://login.microsoftonline.com/<tenant>/v2.0`; its first path segment is the tenant.
    pub authority: Url,
    /// The accepted audiences (AUTH_AUDIENCE): the App ID URI and/or the app's client id.
    pub audiences: Vec<String>,
    /// The app role the caller must hold (AUTH_REQUIRED_ROLE), when set.
    pub required_role: Option<String>,
}

/// A validation setting that is missing or unusable, named so the message says what to fix.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthConfigError {
    /// A required setting is not set (or is blank).
    #[error("{setting} is not set: {hint}")]
    Missing {
        /// The setting's name.
        setting: &'static str,
        /// What to set it to.
        hint: &'static str,
    },
    /// A setting is set to something unusable.
    #[error("{setting}='{value}' is not valid: {reason}")]
    Invalid {
        /// The setting's name.
        setting: &'static str,
        /// The value as given (these settings are never secret).
        value: String,
        /// What is wrong and what is expected.
        reason: String,
    },
}

impl AuthConfigError {
    /// The name of the setting at fault.
    pub fn setting(&self) -> &'static str {
        match self {
            Self::Missing { setting, .. } | Self::Invalid { setting, .. } => setting,
        }
    }
}

impl AuthConfig {
    /// Reads AUTH_AUTHORITY, AUTH_AUDIENCE and AUTH_REQUIRED_ROLE through `lookup`, so tests need
    /// not touch the process environment.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, AuthConfigError> {
        let authority = read_authority(lookup(AUTHORITY_SETTING))?;
        let audiences = read_audiences(lookup(AUDIENCE_SETTING))?;
        let required_role = lookup(REQUIRED_ROLE_SETTING)
            .map(|role| role.trim().to_owned())
            .filter(|role| !role.is_empty());
        Ok(Self {
            authority,
            audiences,
            required_role,
        })
    }

    /// The tenant the authority names: its first path segment.
    pub fn authority_tenant(&self) -> Option<&str> {
        first_path_segment(&self.authority)
    }
}

fn read_authority(value: Option<String>) -> Result<Url, AuthConfigError> {
    let value = value
        .filter(|v| !v.trim().is_empty())
        .ok_or(AuthConfigError::Missing {
            setting: AUTHORITY_SETTING,
            hint: "set it to the tenant's authority, e.g. https://login.microsoftonline.com/<tenant id>/v2.0",
        })?;
    let invalid = |reason: &str| AuthConfigError::Invalid {
        setting: AUTHORITY_SETTING,
        value: value.clone(),
        reason: reason.to_owned(),
    };
    let url = Url::parse(value.trim()).map_err(|_| invalid("expected an absolute URL"))?;
    check_transport(&url).map_err(|reason| invalid(&reason))?;
    if !url.username().is_empty() || url.password().is_some() {
        return Err(invalid("the URL must not carry a user name or password"));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(invalid("the URL must not have a query or fragment"));
    }
    match first_path_segment(&url) {
        None => Err(invalid(
            "the path must start with the tenant, e.g. https://login.microsoftonline.com/<tenant id>/v2.0",
        )),
        Some(tenant) if is_multi_tenant(tenant) => Err(invalid(
            "name one tenant (its id or domain): common, organizations and consumers accept tokens from any tenant",
        )),
        Some(_) => Ok(url),
    }
}

fn read_audiences(value: Option<String>) -> Result<Vec<String>, AuthConfigError> {
    let audiences: Vec<String> = value
        .unwrap_or_default()
        .split(',')
        .map(str::trim)
        .filter(|audience| !audience.is_empty())
        .map(str::to_owned)
        .collect();
    if audiences.is_empty() {
        return Err(AuthConfigError::Missing {
            setting: AUDIENCE_SETTING,
            hint: "set it to the API's Application ID URI (api://<guid>) and/or its client id, comma-separated",
        });
    }
    Ok(audiences)
}

/// Plain http is allowed only towards a loopback host (a local emulator); anything else is https.
pub(crate) fn check_transport(url: &Url) -> Result<(), String> {
    match url.scheme() {
        "https" if url.host().is_some() => Ok(()),
        "http" if is_loopback(url) => Ok(()),
        "http" => Err("plain http is allowed only for a loopback host; use https".into()),
        _ => Err("expected an https URL".into()),
    }
}

fn first_path_segment(url: &Url) -> Option<&str> {
    url.path_segments()?
        .next()
        .filter(|segment| !segment.is_empty())
}

fn is_multi_tenant(tenant: &str) -> bool {
    MULTI_TENANT_SEGMENTS
        .iter()
        .any(|name| name.eq_ignore_ascii_case(tenant))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::lookup;

    const TENANT: &str = "72f988bf-86f1-41af-91ab-2d7cd011db47";

    #[test]
    fn all_three_settings_are_read() {
        let authority = format!("https://login.microsoftonline.com/{TENANT}/v2.0");
        let config = AuthConfig::from_lookup(lookup(&[
            (AUTHORITY_SETTING, &authority),
            (
                AUDIENCE_SETTING,
                " api://my-api , 0e3c2b6a-1111-2222-3333-444455556666,",
            ),
            (REQUIRED_ROLE_SETTING, " Api.Read "),
        ]))
        .unwrap();
        assert_eq!(config.authority.as_str(), authority);
        assert_eq!(
            config.audiences,
            ["api://my-api", "0e3c2b6a-1111-2222-3333-444455556666"]
        );
        assert_eq!(config.required_role.as_deref(), Some("Api.Read"));
        assert_eq!(config.authority_tenant(), Some(TENANT));
    }

    #[test]
    fn a_blank_role_means_no_role_is_required() {
        let config = AuthConfig::from_lookup(lookup(&[
            (AUTHORITY_SETTING, "http://127.0.0.1:8080/t/v2.0"),
            (AUDIENCE_SETTING, "api://x"),
            (REQUIRED_ROLE_SETTING, "  "),
        ]))
        .unwrap();
        assert_eq!(config.required_role, None);
    }

    #[test]
    fn missing_settings_are_named() {
        let no_authority = AuthConfig::from_lookup(lookup(&[(AUDIENCE_SETTING, "api://x")]));
        assert_eq!(no_authority.unwrap_err().setting(), AUTHORITY_SETTING);
        let no_audience = AuthConfig::from_lookup(lookup(&[
            (
                AUTHORITY_SETTING,
                "https://login.microsoftonline.com/t/v2.0",
            ),
            (AUDIENCE_SETTING, " , "),
        ]));
        let error = no_audience.unwrap_err();
        assert_eq!(error.setting(), AUDIENCE_SETTING);
        assert!(matches!(error, AuthConfigError::Missing { .. }));
    }

    #[test]
    fn unusable_authorities_are_refused_with_the_reason() {
        let cases = [
            ("login.microsoftonline.com/t/v2.0", "absolute URL"),
            ("http://login.microsoftonline.com/t/v2.0", "loopback"),
            ("http://10.0.0.1/t/v2.0", "loopback"),
            ("ftp://127.0.0.1/t", "https"),
            ("https://login.microsoftonline.com/", "tenant"),
            (
                "https://login.microsoftonline.com/common/v2.0",
                "one tenant",
            ),
            (
                "https://login.microsoftonline.com/Organizations/v2.0",
                "one tenant",
            ),
            (
                "https://user:pw@login.microsoftonline.com/t/v2.0",
                "user name",
            ),
            ("https://login.microsoftonline.com/t/v2.0?x=1", "query"),
        ];
        for (value, reason) in cases {
            let error = AuthConfig::from_lookup(lookup(&[
                (AUTHORITY_SETTING, value),
                (AUDIENCE_SETTING, "api://x"),
            ]))
            .unwrap_err();
            assert_eq!(error.setting(), AUTHORITY_SETTING, "{value}");
            assert!(error.to_string().contains(reason), "{value}: {error}");
        }
    }

    #[test]
    fn loopback_http_authorities_are_allowed() {
        for value in [
            "http://127.0.0.1:1234/t/v2.0",
            "http://127.8.9.10/t/v2.0",
            "http://[::1]:99/t/v2.0",
            "http://localhost:5000/t/v2.0",
            "http://localhost./t/v2.0",
            "http://login.localhost/t/v2.0",
            "http://[::ffff:127.0.0.1]:99/t/v2.0",
        ] {
            let config = AuthConfig::from_lookup(lookup(&[
                (AUTHORITY_SETTING, value),
                (AUDIENCE_SETTING, "api://x"),
            ]));
            assert!(config.is_ok(), "{value}");
        }
    }
}
