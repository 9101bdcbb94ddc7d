//! Source detection: turns the identity-related settings (read through an injected lookup, never
//! from the process environment directly) into a typed, validated configuration.

use reqwest::header::HeaderValue;
use url::Url;

use super::error::IdentityConfigError;
use super::retry::RetryPolicy;
use super::secret::HeaderSecret;
use super::{IdentitySelector, SourceKind, UserAssignedId};

/// App Service / Functions 2019-08-01 endpoint.
pub const IDENTITY_ENDPOINT: &str = "IDENTITY_ENDPOINT";
/// Header secret for the 2019-08-01 endpoint.
pub const IDENTITY_HEADER: &str = "IDENTITY_HEADER";
/// Marks Service Fabric (unsupported).
pub const IDENTITY_SERVER_THUMBPRINT: &str = "IDENTITY_SERVER_THUMBPRINT";
/// Legacy 2017-09-01 endpoint (also Azure ML); alone it marks Cloud Shell.
pub const MSI_ENDPOINT: &str = "MSI_ENDPOINT";
/// Header secret for the 2017-09-01 endpoint.
pub const MSI_SECRET: &str = "MSI_SECRET";
/// Marks Azure Arc together with `IDENTITY_ENDPOINT`; never an IMDS override.
pub const IMDS_ENDPOINT: &str = "IMDS_ENDPOINT";
/// Replaces the IMDS base URL (`http://169.254.169.254`), e.g. for an emulator.
pub const AZURE_POD_IDENTITY_AUTHORITY_HOST: &str = "AZURE_POD_IDENTITY_AUTHORITY_HOST";
/// `dev` / `AzureCliCredential` select the Azure CLI when no platform variable is set.
pub const AZURE_TOKEN_CREDENTIALS: &str = "AZURE_TOKEN_CREDENTIALS";
/// Default user-assigned identity by client id (lowest precedence).
pub const AZURE_CLIENT_ID: &str = "AZURE_CLIENT_ID";
/// Tenant passed to `az account get-access-token --tenant` in the CLI fallback.
pub const AZURE_TENANT_ID: &str = "AZURE_TENANT_ID";
/// Explicit default identity by client id.
pub const MANAGED_IDENTITY_CLIENT_ID: &str = "MANAGED_IDENTITY_CLIENT_ID";
/// Explicit default identity by object (principal) id.
pub const MANAGED_IDENTITY_OBJECT_ID: &str = "MANAGED_IDENTITY_OBJECT_ID";
/// Explicit default identity by ARM resource id.
pub const MANAGED_IDENTITY_RESOURCE_ID: &str = "MANAGED_IDENTITY_RESOURCE_ID";

/// Variables whose presence means "we run on a managed-identity platform": with any of them set,
/// the developer fallback is never used, so a broken identity in Azure fails loudly.
const PLATFORM_VARIABLES: &[&str] = &[
    IDENTITY_ENDPOINT,
    IDENTITY_HEADER,
    IDENTITY_SERVER_THUMBPRINT,
    MSI_ENDPOINT,
    MSI_SECRET,
    IMDS_ENDPOINT,
    AZURE_POD_IDENTITY_AUTHORITY_HOST,
];

const IMDS_DEFAULT_BASE: &str = "http://169.254.169.254";
const IMDS_TOKEN_PATH: &str = "/metadata/identity/oauth2/token";

/// Time limits, retry schedule and the bounds on what callers can make the module hold or send.
/// The defaults suit a Functions invocation; tests shrink them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Timing {
    /// TCP connect limit per request.
    pub connect_timeout: std::time::Duration,
    /// Whole-request limit per attempt.
    pub request_timeout: std::time::Duration,
    /// Limit on one whole acquisition, retries included (IMDS 410 extends it, see [`RetryPolicy`]).
    pub deadline: std::time::Duration,
    /// Limit on one `az` run.
    pub cli_timeout: std::time::Duration,
    /// After a failed refresh-ahead, how long to keep serving the cached token before trying again.
    pub refresh_failure_backoff: std::time::Duration,
    /// Which failures are retried and how long to wait between attempts.
    pub retry: RetryPolicy,
    /// How long a failed acquisition is answered from memory: a flood of requests for one
    /// failing identity or resource costs one request to the endpoint per period.
    pub failure_memory: std::time::Duration,
    /// The most (identity, resource) entries the token cache holds; an entry in use is never
    /// evicted, and a key that finds the cache full of entries in use is served without one.
    pub max_cache_entries: usize,
    /// The most acquisitions (HTTP requests with their retries, or `az` runs) in flight at once;
    /// the others wait for a turn within the acquisition deadline.
    pub max_concurrent_requests: usize,
}

impl Default for Timing {
    fn default() -> Self {
        use std::time::Duration;
        Self {
            connect_timeout: Duration::from_secs(2),
            request_timeout: Duration::from_secs(10),
            deadline: Duration::from_secs(30),
            cli_timeout: Duration::from_secs(10),
            refresh_failure_backoff: Duration::from_secs(30),
            retry: RetryPolicy::default(),
            failure_memory: Duration::from_secs(10),
            max_cache_entries: 128,
            max_concurrent_requests: 8,
        }
    }
}

/// Where the default identity came from, so error hints can name the setting to fix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum IdentityOrigin {
    /// No identity setting: system-assigned.
    Default,
    /// From this setting.
    Setting(&'static str),
    /// Passed by the caller of `get_token`.
    Caller,
}

/// A legacy (2017-09-01) endpoint and its secret.
#[derive(Debug, Clone)]
pub(crate) struct LegacyEndpoint {
    pub(crate) endpoint: Url,
    pub(crate) secret: HeaderSecret,
}

/// The detected source with everything needed to call it.
#[derive(Debug, Clone)]
pub(crate) enum SourceConfig {
    /// 2019-08-01, with the legacy pair kept for the `UnsupportedApiVersion` fallback.
    AppService {
        endpoint: Url,
        header: HeaderSecret,
        legacy: Option<LegacyEndpoint>,
    },
    /// 2017-09-01 only.
    Legacy(LegacyEndpoint),
    /// IMDS token URL (base + path).
    Imds { endpoint: Url },
    /// `az account get-access-token`.
    AzureCli { tenant: Option<String> },
}

impl SourceConfig {
    pub(crate) fn kind(&self) -> SourceKind {
        match self {
            Self::AppService { .. } => SourceKind::AppService2019,
            Self::Legacy(_) => SourceKind::AppService2017,
            Self::Imds { .. } => SourceKind::Imds,
            Self::AzureCli { .. } => SourceKind::AzureCli,
        }
    }
}

/// The validated identity configuration: the source, the default identity and the timing.
/// Build it with [`IdentityConfig::from_lookup`]; pass it to
/// [`ManagedIdentity::new`](super::ManagedIdentity::new).
#[derive(Debug, Clone)]
pub struct IdentityConfig {
    pub(crate) source: SourceConfig,
    pub(crate) default_identity: IdentitySelector,
    pub(crate) default_origin: IdentityOrigin,
    pub(crate) timing: Timing,
    pub(crate) warnings: Vec<String>,
    pub(crate) cli_program: String,
}

/// What `AZURE_TOKEN_CREDENTIALS` asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum CredentialChoice {
    Unset,
    Developer,
    ManagedIdentity,
}

impl IdentityConfig {
    /// Detects the source and default identity from settings looked up by name (the caller
    /// decides where they come from; this never reads the process environment). Empty values
    /// count as unset. Precedence: App Service 2019 → legacy 2017 → unsupported platforms (error)
    /// → Azure CLI (only with `AZURE_TOKEN_CREDENTIALS=dev|AzureCliCredential` and no platform
    /// variable) → IMDS.
    pub fn from_lookup(
        lookup: impl Fn(&str) -> Option<String>,
    ) -> Result<Self, IdentityConfigError> {
        let get = |name: &str| {
            lookup(name)
                .map(|v| v.trim().to_owned())
                .filter(|v| !v.is_empty())
        };
        let mut warnings = Vec::new();
        let choice = credential_choice(get(AZURE_TOKEN_CREDENTIALS))?;
        let source = detect_source(&get, choice, &mut warnings)?;
        let (mut default_identity, mut default_origin) = detect_identity(&get)?;
        match (&source, &default_identity) {
            (SourceConfig::AzureCli { .. }, IdentitySelector::UserAssigned(_)) => {
                if let IdentityOrigin::Setting(variable) = default_origin {
                    warnings.push(format!(
                        "{variable} is ignored by the Azure CLI source: tokens are issued to the account signed in with `az login`"
                    ));
                }
                default_identity = IdentitySelector::SystemAssigned;
                default_origin = IdentityOrigin::Default;
            }
            (
                SourceConfig::Legacy(_),
                IdentitySelector::UserAssigned(
                    UserAssignedId::ObjectId(_) | UserAssignedId::ResourceId(_),
                ),
            ) => {
                let variable = match default_origin {
                    IdentityOrigin::Setting(v) => v,
                    _ => MANAGED_IDENTITY_OBJECT_ID,
                };
                return Err(IdentityConfigError::InvalidValue {
                    variable,
                    reason: "the legacy 2017-09-01 endpoint (MSI_ENDPOINT) selects user-assigned identities by client id only; use MANAGED_IDENTITY_CLIENT_ID".into(),
                });
            }
            _ => {}
        }
        Ok(Self {
            source,
            default_identity,
            default_origin,
            timing: Timing::default(),
            warnings,
            cli_program: "az".into(),
        })
    }

    /// Replaces the time limits and retry schedule (tests shorten them).
    pub fn with_timing(mut self, timing: Timing) -> Self {
        self.timing = timing;
        self
    }

    /// The detected source.
    pub fn source(&self) -> SourceKind {
        self.source.kind()
    }

    /// The identity used when a call does not name one.
    pub fn default_identity(&self) -> &IdentitySelector {
        &self.default_identity
    }

    /// The time limits in force.
    pub fn timing(&self) -> &Timing {
        &self.timing
    }

    /// Things worth a warning at start-up (non-local endpoint host, ignored settings). Never
    /// contains a secret. [`ManagedIdentity::new`](super::ManagedIdentity::new) logs them.
    pub fn warnings(&self) -> &[String] {
        &self.warnings
    }

    /// Replaces the Azure CLI program (tests point it at a script).
    #[cfg(test)]
    pub(crate) fn with_cli_program(mut self, program: impl Into<String>) -> Self {
        self.cli_program = program.into();
        self
    }
}

fn credential_choice(value: Option<String>) -> Result<CredentialChoice, IdentityConfigError> {
    let Some(value) = value else {
        return Ok(CredentialChoice::Unset);
    };
    match value.to_ascii_lowercase().as_str() {
        "dev" | "azureclicredential" => Ok(CredentialChoice::Developer),
        "prod" | "managedidentitycredential" => Ok(CredentialChoice::ManagedIdentity),
        _ => Err(IdentityConfigError::InvalidValue {
            variable: AZURE_TOKEN_CREDENTIALS,
            reason: format!(
                "\"{value}\" is not supported here; use dev, AzureCliCredential, prod or ManagedIdentityCredential"
            ),
        }),
    }
}

fn detect_source(
    get: &impl Fn(&str) -> Option<String>,
    choice: CredentialChoice,
    warnings: &mut Vec<String>,
) -> Result<SourceConfig, IdentityConfigError> {
    if get(IDENTITY_SERVER_THUMBPRINT).is_some() {
        return Err(IdentityConfigError::UnsupportedPlatform {
            platform: "Service Fabric",
            variables: "IDENTITY_SERVER_THUMBPRINT",
        });
    }
    let platform_variable = PLATFORM_VARIABLES.iter().find(|name| get(name).is_some());
    if let (Some(variable), CredentialChoice::Developer) = (platform_variable, choice) {
        warnings.push(format!(
            "{AZURE_TOKEN_CREDENTIALS} asks for developer credentials but {variable} is set: using the platform's managed identity"
        ));
    }
    match (get(IDENTITY_ENDPOINT), get(IDENTITY_HEADER)) {
        (Some(endpoint), Some(header)) => {
            let legacy = match (get(MSI_ENDPOINT), get(MSI_SECRET)) {
                (Some(endpoint), Some(secret)) => {
                    Some(legacy_endpoint(&endpoint, &secret, warnings)?)
                }
                _ => None,
            };
            return Ok(SourceConfig::AppService {
                endpoint: endpoint_url(IDENTITY_ENDPOINT, &endpoint, warnings)?,
                header: header_secret(IDENTITY_HEADER, header)?,
                legacy,
            });
        }
        (Some(_), None) if get(IMDS_ENDPOINT).is_some() => {
            return Err(IdentityConfigError::UnsupportedPlatform {
                platform: "Azure Arc",
                variables: "IDENTITY_ENDPOINT + IMDS_ENDPOINT",
            });
        }
        (Some(_), None) => {
            return Err(IdentityConfigError::IncompletePair {
                present: IDENTITY_ENDPOINT,
                missing: IDENTITY_HEADER,
            });
        }
        (None, Some(_)) => {
            return Err(IdentityConfigError::IncompletePair {
                present: IDENTITY_HEADER,
                missing: IDENTITY_ENDPOINT,
            });
        }
        (None, None) => {}
    }
    match (get(MSI_ENDPOINT), get(MSI_SECRET)) {
        (Some(endpoint), Some(secret)) => {
            return Ok(SourceConfig::Legacy(legacy_endpoint(
                &endpoint, &secret, warnings,
            )?));
        }
        (Some(_), None) => {
            return Err(IdentityConfigError::UnsupportedPlatform {
                platform: "Cloud Shell",
                variables: "MSI_ENDPOINT without MSI_SECRET",
            });
        }
        (None, Some(_)) => {
            return Err(IdentityConfigError::IncompletePair {
                present: MSI_SECRET,
                missing: MSI_ENDPOINT,
            });
        }
        (None, None) => {}
    }
    if get(IMDS_ENDPOINT).is_some() {
        warnings.push(format!(
            "{IMDS_ENDPOINT} is ignored: it is not an IMDS override (use {AZURE_POD_IDENTITY_AUTHORITY_HOST})"
        ));
    }
    if platform_variable.is_none() && choice == CredentialChoice::Developer {
        let tenant = get(AZURE_TENANT_ID).map(validated_tenant).transpose()?;
        return Ok(SourceConfig::AzureCli { tenant });
    }
    Ok(SourceConfig::Imds {
        endpoint: imds_url(get(AZURE_POD_IDENTITY_AUTHORITY_HOST), warnings)?,
    })
}

fn legacy_endpoint(
    endpoint: &str,
    secret: &str,
    warnings: &mut Vec<String>,
) -> Result<LegacyEndpoint, IdentityConfigError> {
    Ok(LegacyEndpoint {
        endpoint: endpoint_url(MSI_ENDPOINT, endpoint, warnings)?,
        secret: header_secret(MSI_SECRET, secret.to_owned())?,
    })
}

fn imds_url(
    authority: Option<String>,
    warnings: &mut Vec<String>,
) -> Result<Url, IdentityConfigError> {
    let Some(authority) = authority else {
        let full = format!("{IMDS_DEFAULT_BASE}{IMDS_TOKEN_PATH}");
        return Url::parse(&full).map_err(|e| IdentityConfigError::InvalidUrl {
            variable: AZURE_POD_IDENTITY_AUTHORITY_HOST,
            reason: e.to_string(),
        });
    };
    let base = endpoint_url(AZURE_POD_IDENTITY_AUTHORITY_HOST, &authority, warnings)?;
    let full = format!("{}{IMDS_TOKEN_PATH}", base.as_str().trim_end_matches('/'));
    Url::parse(&full).map_err(|e| IdentityConfigError::InvalidUrl {
        variable: AZURE_POD_IDENTITY_AUTHORITY_HOST,
        reason: e.to_string(),
    })
}

/// Parses and checks an endpoint URL: http(s), a host, no credentials, query or fragment. Warns
/// when the host is neither loopback nor link-local, which is unusual for an identity endpoint.
fn endpoint_url(
    variable: &'static str,
    raw: &str,
    warnings: &mut Vec<String>,
) -> Result<Url, IdentityConfigError> {
    let invalid = |reason: String| IdentityConfigError::InvalidUrl { variable, reason };
    let url = Url::parse(raw).map_err(|e| invalid(e.to_string()))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(invalid(format!(
            "scheme \"{}\" is not http or https",
            url.scheme()
        )));
    }
    let Some(host) = url.host() else {
        return Err(invalid("it has no host".into()));
    };
    if !url.username().is_empty() || url.password().is_some() {
        return Err(invalid("it must not contain credentials".into()));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(invalid("it must not contain a query or fragment".into()));
    }
    if !crate::loopback::is_local_host(&host) {
        warnings.push(format!(
            "{variable} points at {host}, which is neither loopback nor link-local; identity requests (and their secret header) go there"
        ));
    }
    Ok(url)
}

fn header_secret(
    variable: &'static str,
    value: String,
) -> Result<HeaderSecret, IdentityConfigError> {
    if HeaderValue::from_str(&value).is_err() {
        return Err(IdentityConfigError::InvalidValue {
            variable,
            reason: "it contains characters that cannot be sent in an HTTP header".into(),
        });
    }
    Ok(HeaderSecret::new(value))
}

fn validated_tenant(tenant: String) -> Result<String, IdentityConfigError> {
    let ok = !tenant.starts_with('-')
        && tenant
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.');
    if ok {
        Ok(tenant)
    } else {
        Err(IdentityConfigError::InvalidValue {
            variable: AZURE_TENANT_ID,
            reason: "a tenant is a GUID or a domain name".into(),
        })
    }
}

fn detect_identity(
    get: &impl Fn(&str) -> Option<String>,
) -> Result<(IdentitySelector, IdentityOrigin), IdentityConfigError> {
    let explicit: Vec<(&'static str, UserAssignedId)> = [
        (
            MANAGED_IDENTITY_CLIENT_ID,
            UserAssignedId::ClientId as fn(String) -> UserAssignedId,
        ),
        (MANAGED_IDENTITY_OBJECT_ID, UserAssignedId::ObjectId),
        (MANAGED_IDENTITY_RESOURCE_ID, UserAssignedId::ResourceId),
    ]
    .into_iter()
    .filter_map(|(name, make)| get(name).map(|value| (name, make(value))))
    .collect();
    if explicit.len() > 1 {
        let found: Vec<&str> = explicit.iter().map(|(name, _)| *name).collect();
        return Err(IdentityConfigError::ConflictingIdentity {
            found: found.join(", "),
        });
    }
    let chosen = explicit
        .into_iter()
        .next()
        .or_else(|| get(AZURE_CLIENT_ID).map(|id| (AZURE_CLIENT_ID, UserAssignedId::ClientId(id))));
    match chosen {
        Some((variable, id)) => {
            if id.value().chars().any(char::is_control) || id.value().len() > 1024 {
                return Err(IdentityConfigError::InvalidValue {
                    variable,
                    reason: "not an identity id".into(),
                });
            }
            Ok((
                IdentitySelector::UserAssigned(id),
                IdentityOrigin::Setting(variable),
            ))
        }
        None => Ok((IdentitySelector::SystemAssigned, IdentityOrigin::Default)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn config(vars: &[(&str, &str)]) -> Result<IdentityConfig, IdentityConfigError> {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        IdentityConfig::from_lookup(|name| map.get(name).cloned())
    }

    const APP: &[(&str, &str)] = &[
        (IDENTITY_ENDPOINT, "http://127.0.0.1:41000/msi/token"),
        (IDENTITY_HEADER, "hdr-secret"),
    ];
    const LEGACY: &[(&str, &str)] = &[
        (MSI_ENDPOINT, "http://127.0.0.1:41001/MSI/token/"),
        (MSI_SECRET, "msi-secret"),
    ];

    #[test]
    fn app_service_2019_wins_and_keeps_legacy_pair() {
        let vars: Vec<_> = APP.iter().chain(LEGACY).copied().collect();
        let config = config(&vars).unwrap();
        assert_eq!(config.source(), SourceKind::AppService2019);
        match &config.source {
            SourceConfig::AppService {
                endpoint, legacy, ..
            } => {
                assert_eq!(endpoint.as_str(), "http://127.0.0.1:41000/msi/token");
                assert_eq!(
                    legacy.as_ref().unwrap().endpoint.as_str(),
                    "http://127.0.0.1:41001/MSI/token/"
                );
            }
            other => panic!("{other:?}"),
        }
        assert!(config.warnings().is_empty(), "{:?}", config.warnings());
    }

    #[test]
    fn legacy_when_only_msi_pair() {
        assert_eq!(config(LEGACY).unwrap().source(), SourceKind::AppService2017);
    }

    #[test]
    fn imds_by_default_and_with_pod_identity_host() {
        let plain = config(&[]).unwrap();
        assert_eq!(plain.source(), SourceKind::Imds);
        match &plain.source {
            SourceConfig::Imds { endpoint } => assert_eq!(
                endpoint.as_str(),
                "http://169.254.169.254/metadata/identity/oauth2/token"
            ),
            other => panic!("{other:?}"),
        }
        let pod = config(&[(AZURE_POD_IDENTITY_AUTHORITY_HOST, "http://127.0.0.1:5000/")]).unwrap();
        match &pod.source {
            SourceConfig::Imds { endpoint } => assert_eq!(
                endpoint.as_str(),
                "http://127.0.0.1:5000/metadata/identity/oauth2/token"
            ),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn cli_only_when_asked_and_no_platform_variable() {
        for value in ["dev", "DEV", "AzureCliCredential", "azureclicredential"] {
            let c = config(&[
                (AZURE_TOKEN_CREDENTIALS, value),
                (AZURE_TENANT_ID, "contoso.onmicrosoft.com"),
            ])
            .unwrap();
            assert_eq!(c.source(), SourceKind::AzureCli, "{value}");
        }
        let with_platform: Vec<_> = APP
            .iter()
            .copied()
            .chain([(AZURE_TOKEN_CREDENTIALS, "dev")])
            .collect();
        let c = config(&with_platform).unwrap();
        assert_eq!(c.source(), SourceKind::AppService2019);
        assert!(
            c.warnings()
                .iter()
                .any(|w| w.contains(AZURE_TOKEN_CREDENTIALS))
        );
        assert_eq!(
            config(&[(AZURE_TOKEN_CREDENTIALS, "prod")])
                .unwrap()
                .source(),
            SourceKind::Imds
        );
        assert!(matches!(
            config(&[(AZURE_TOKEN_CREDENTIALS, "EnvironmentCredential")]),
            Err(IdentityConfigError::InvalidValue {
                variable: AZURE_TOKEN_CREDENTIALS,
                ..
            })
        ));
        assert!(matches!(
            config(&[
                (AZURE_TOKEN_CREDENTIALS, "dev"),
                (AZURE_TENANT_ID, "--evil")
            ]),
            Err(IdentityConfigError::InvalidValue {
                variable: AZURE_TENANT_ID,
                ..
            })
        ));
    }

    #[test]
    fn unsupported_platforms_are_errors() {
        let cases: [(&[(&str, &str)], &str); 3] = [
            (
                &[
                    (IDENTITY_ENDPOINT, "http://127.0.0.1:1/"),
                    (IDENTITY_HEADER, "h"),
                    (IDENTITY_SERVER_THUMBPRINT, "AB"),
                ],
                "Service Fabric",
            ),
            (
                &[
                    (IDENTITY_ENDPOINT, "http://127.0.0.1:1/"),
                    (IMDS_ENDPOINT, "http://127.0.0.1:2/"),
                ],
                "Azure Arc",
            ),
            (&[(MSI_ENDPOINT, "http://127.0.0.1:1/")], "Cloud Shell"),
        ];
        for (vars, expected) in cases {
            match config(vars) {
                Err(IdentityConfigError::UnsupportedPlatform { platform, .. }) => {
                    assert_eq!(platform, expected)
                }
                other => panic!("{expected}: {other:?}"),
            }
        }
    }

    #[test]
    fn half_pairs_are_errors() {
        assert_eq!(
            config(&[(IDENTITY_ENDPOINT, "http://127.0.0.1:1/")]).unwrap_err(),
            IdentityConfigError::IncompletePair {
                present: IDENTITY_ENDPOINT,
                missing: IDENTITY_HEADER
            }
        );
        assert_eq!(
            config(&[(MSI_SECRET, "s")]).unwrap_err(),
            IdentityConfigError::IncompletePair {
                present: MSI_SECRET,
                missing: MSI_ENDPOINT
            }
        );
    }

    #[test]
    fn bad_urls_name_the_variable_and_never_the_secret() {
        for bad in [
            "not a url",
            "ftp://127.0.0.1/x",
            "http://u:p@127.0.0.1/",
            "http://127.0.0.1/?a=b",
        ] {
            let err =
                config(&[(IDENTITY_ENDPOINT, bad), (IDENTITY_HEADER, "hdr-secret")]).unwrap_err();
            assert!(
                matches!(
                    err,
                    IdentityConfigError::InvalidUrl {
                        variable: IDENTITY_ENDPOINT,
                        ..
                    }
                ),
                "{bad}: {err:?}"
            );
            assert!(!err.to_string().contains("hdr-secret"));
        }
        let err = config(&[(AZURE_POD_IDENTITY_AUTHORITY_HOST, "169.254.169.254")]).unwrap_err();
        assert!(
            err.to_string().contains(AZURE_POD_IDENTITY_AUTHORITY_HOST),
            "{err}"
        );
        let err = config(&[
            (IDENTITY_ENDPOINT, "http://127.0.0.1/"),
            (IDENTITY_HEADER, "a\nb"),
        ])
        .unwrap_err();
        assert!(matches!(
            err,
            IdentityConfigError::InvalidValue {
                variable: IDENTITY_HEADER,
                ..
            }
        ));
    }

    #[test]
    fn non_local_endpoint_is_a_warning_without_secret() {
        let c = config(&[
            (IDENTITY_ENDPOINT, "http://identity.example.com/msi/token"),
            (IDENTITY_HEADER, "hdr-secret"),
        ])
        .unwrap();
        assert_eq!(c.warnings().len(), 1);
        assert!(c.warnings()[0].contains("identity.example.com"));
        assert!(!c.warnings()[0].contains("hdr-secret"));
        for local in [
            "http://localhost:8081/msi/token",
            "http://[::1]:1/",
            "http://169.254.1.2/",
            "http://[fe80::1]/",
        ] {
            let c = config(&[(IDENTITY_ENDPOINT, local), (IDENTITY_HEADER, "h")]).unwrap();
            assert!(c.warnings().is_empty(), "{local}: {:?}", c.warnings());
        }
    }

    #[test]
    fn identity_precedence() {
        let c = config(&[]).unwrap();
        assert_eq!(c.default_identity(), &IdentitySelector::SystemAssigned);
        let c = config(&[(AZURE_CLIENT_ID, "cid")]).unwrap();
        assert_eq!(
            c.default_identity(),
            &IdentitySelector::UserAssigned(UserAssignedId::ClientId("cid".into()))
        );
        assert_eq!(c.default_origin, IdentityOrigin::Setting(AZURE_CLIENT_ID));
        let c = config(&[
            (AZURE_CLIENT_ID, "cid"),
            (MANAGED_IDENTITY_OBJECT_ID, "oid"),
        ])
        .unwrap();
        assert_eq!(
            c.default_identity(),
            &IdentitySelector::UserAssigned(UserAssignedId::ObjectId("oid".into()))
        );
        let c = config(&[(MANAGED_IDENTITY_RESOURCE_ID, "/subscriptions/x")]).unwrap();
        assert_eq!(
            c.default_identity(),
            &IdentitySelector::UserAssigned(UserAssignedId::ResourceId("/subscriptions/x".into()))
        );
        assert!(matches!(
            config(&[
                (MANAGED_IDENTITY_CLIENT_ID, "a"),
                (MANAGED_IDENTITY_RESOURCE_ID, "b")
            ]),
            Err(IdentityConfigError::ConflictingIdentity { .. })
        ));
        assert_eq!(
            config(&[(AZURE_CLIENT_ID, "  ")])
                .unwrap()
                .default_identity(),
            &IdentitySelector::SystemAssigned
        );
    }

    #[test]
    fn legacy_rejects_object_id_default_and_cli_ignores_client_id() {
        let vars: Vec<_> = LEGACY
            .iter()
            .copied()
            .chain([(MANAGED_IDENTITY_OBJECT_ID, "oid")])
            .collect();
        assert!(matches!(
            config(&vars),
            Err(IdentityConfigError::InvalidValue {
                variable: MANAGED_IDENTITY_OBJECT_ID,
                ..
            })
        ));
        let c = config(&[(AZURE_TOKEN_CREDENTIALS, "dev"), (AZURE_CLIENT_ID, "cid")]).unwrap();
        assert_eq!(c.default_identity(), &IdentitySelector::SystemAssigned);
        assert!(c.warnings().iter().any(|w| w.contains(AZURE_CLIENT_ID)));
    }
}
