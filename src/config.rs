//! Settings, read from the environment once at start-up into typed values and validated.
//!
//! This is the only module that reads the process environment: everything else receives what it
//! needs from here, so tests never have to mutate the process's environment.

/// One app setting the handler reads.
#[derive(Debug, Clone, Copy)]
pub struct AppSetting {
    /// The variable name, exactly as it must appear in the Function App's settings.
    pub name: &'static str,
    /// Whether a deployment to Azure must set it for every function to work.
    pub deployed: bool,
    /// What it is for, as the README's settings table says it.
    pub purpose: &'static str,
}

/// Every app setting the handler reads. The deployment template is checked against this list.
pub const APP_SETTINGS: &[AppSetting] = &[
    AppSetting {
        name: "KEY_VAULT_URL",
        deployed: true,
        purpose: "the vault's URL, e.g. https://<vault>.vault.azure.net/ (GetSecret)",
    },
    AppSetting {
        name: "STORAGE_BLOB_URL",
        deployed: true,
        purpose: "the account's blob endpoint, e.g. https://<account>.blob.core.windows.net (WriteBlob, ReadBlob)",
    },
    AppSetting {
        name: "AZURE_CLIENT_ID",
        deployed: true,
        purpose: "client id of the user-assigned identity to use by default; absent means system-assigned",
    },
    AppSetting {
        name: "ALLOWED_SECRETS",
        deployed: true,
        purpose: "comma-separated secret names or prefixes (app-*) that GetSecret may read; absent allows none",
    },
    AppSetting {
        name: "ALLOWED_CONTAINERS",
        deployed: true,
        purpose: "comma-separated container names or prefixes (logs-*) that WriteBlob and ReadBlob may use; absent allows none; azure-webjobs-*, scm-* and app-package-* never",
    },
    AppSetting {
        name: "SECRET_CACHE_SECONDS",
        deployed: false,
        purpose: "seconds GetSecret serves a secret's latest version from memory; default 60, 0 turns the cache off",
    },
    AppSetting {
        name: "TOKEN_REFRESH_SCHEDULE",
        deployed: true,
        purpose: "six-field NCRONTAB schedule of RefreshTokens, e.g. 0 */5 * * * *",
    },
    AppSetting {
        name: "TOKEN_REFRESH_RESOURCES",
        deployed: false,
        purpose: "comma-separated resources RefreshTokens keeps warm; default Key Vault and Storage",
    },
    AppSetting {
        name: "TOKEN_INFO_RESOURCES",
        deployed: false,
        purpose: "comma-separated audiences TokenInfo serves; default Key Vault, Storage, DOWNSTREAM_API_SCOPE and TOKEN_REFRESH_RESOURCES",
    },
    AppSetting {
        name: "TOKEN_INFO_IDENTITIES",
        deployed: false,
        purpose: "comma-separated client ids, object ids or resource ids a TokenInfo call may name; absent allows only the default identity",
    },
    AppSetting {
        name: "DOWNSTREAM_API_URL",
        deployed: true,
        purpose: "base URL of the API that CallApi calls",
    },
    AppSetting {
        name: "DOWNSTREAM_API_SCOPE",
        deployed: true,
        purpose: "Application ID URI of that API (api://<guid>, /.default optional)",
    },
    AppSetting {
        name: "AUTH_AUTHORITY",
        deployed: true,
        purpose: "issuer authority for Whoami, e.g. https://login.microsoftonline.com/<tenant>/v2.0",
    },
    AppSetting {
        name: "AUTH_AUDIENCE",
        deployed: true,
        purpose: "audiences Whoami accepts, comma-separated: the App ID URI and/or the app's client id",
    },
    AppSetting {
        name: "AUTH_REQUIRED_ROLE",
        deployed: false,
        purpose: "app role Whoami requires in the roles claim, when set",
    },
    AppSetting {
        name: "MAX_CONCURRENT_INVOCATIONS",
        deployed: false,
        purpose: "invocations run at once; more are answered 503 with Retry-After (default 64)",
    },
    AppSetting {
        name: "MAX_CONNECTIONS",
        deployed: false,
        purpose: "connections from the host held open at once; more wait to be accepted (default 256)",
    },
    AppSetting {
        name: "REQUEST_HEADER_TIMEOUT_SECONDS",
        deployed: false,
        purpose: "time to send a request head, and the idle limit between requests on a connection (default 30)",
    },
    AppSetting {
        name: "REQUEST_BODY_TIMEOUT_SECONDS",
        deployed: false,
        purpose: "time to send a request body (default 60)",
    },
];

use std::path::PathBuf;
use std::time::Duration;

use custom_handler::Limits;

/// Reads one setting from the process environment, for the commands (`handler doctor`) that take
/// a lookup function so their tests need not touch the environment.
pub fn env_lookup(name: &str) -> Option<String> {
    std::env::var(name).ok()
}

/// A setting that is missing or invalid, named so the message says what to fix.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ConfigError {
    /// A required setting is not set.
    #[error("{name} is not set: {hint}")]
    Missing {
        /// The setting's name.
        name: &'static str,
        /// What to set it to.
        hint: &'static str,
    },
    /// A setting is set to something unusable.
    #[error("{name}='{value}' is not valid: {reason}")]
    Invalid {
        /// The setting's name.
        name: &'static str,
        /// The value as given (never a secret: only non-secret settings are quoted).
        value: String,
        /// What is wrong and what is expected.
        reason: String,
    },
}

/// What the server needs before anything else: its port, where the function folders are, and
/// the limits it holds every request to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerConfig {
    /// The port the host told us to listen on (on 127.0.0.1).
    pub port: u16,
    /// The folder holding host.json and the function folders.
    pub app_root: PathBuf,
    /// Connection, concurrency and read-time limits.
    pub limits: Limits,
}

/// Reads the server's four limit settings into the runtime's `Limits`; each absent one keeps
/// the runtime's default.
pub fn server_limits(lookup: &impl Fn(&str) -> Option<String>) -> Result<Limits, ConfigError> {
    let defaults = Limits::default();
    let count = |name: &'static str, default: usize| -> Result<usize, ConfigError> {
        match lookup(name).filter(|v| !v.trim().is_empty()) {
            None => Ok(default),
            Some(value) => match value.trim().parse::<usize>() {
                Ok(n) if (1..=100_000).contains(&n) => Ok(n),
                _ => Err(ConfigError::Invalid {
                    name,
                    value,
                    reason: "expected a whole number from 1 to 100000".into(),
                }),
            },
        }
    };
    let seconds = |name: &'static str, default: Duration| -> Result<Duration, ConfigError> {
        match lookup(name).filter(|v| !v.trim().is_empty()) {
            None => Ok(default),
            Some(value) => match value.trim().parse::<u64>() {
                Ok(n) if (1..=3600).contains(&n) => Ok(Duration::from_secs(n)),
                _ => Err(ConfigError::Invalid {
                    name,
                    value,
                    reason: "expected whole seconds from 1 to 3600".into(),
                }),
            },
        }
    };
    Ok(Limits {
        max_in_flight: count("MAX_CONCURRENT_INVOCATIONS", defaults.max_in_flight)?,
        max_connections: count("MAX_CONNECTIONS", defaults.max_connections)?,
        header_timeout: seconds("REQUEST_HEADER_TIMEOUT_SECONDS", defaults.header_timeout)?,
        body_timeout: seconds("REQUEST_BODY_TIMEOUT_SECONDS", defaults.body_timeout)?,
    })
}

impl ServerConfig {
    /// Reads the process environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads the settings through `lookup`, so tests need not touch the process environment.
    ///
    /// The port comes from FUNCTIONS_CUSTOMHANDLER_PORT (or its legacy twin, which the host sets
    /// to the same value); the app root from FUNCTIONS_APP_ROOT_PATH, else AzureWebJobsScriptRoot
    /// (Core Tools and Linux images), else the working directory.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let port = read_port(&lookup)?;
        let app_root = ["FUNCTIONS_APP_ROOT_PATH", "AzureWebJobsScriptRoot"]
            .iter()
            .find_map(|name| lookup(name).filter(|v| !v.trim().is_empty()))
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from("."));
        let limits = server_limits(&lookup)?;
        Ok(Self {
            port,
            app_root,
            limits,
        })
    }
}

fn read_port(lookup: &impl Fn(&str) -> Option<String>) -> Result<u16, ConfigError> {
    const NAME: &str = "FUNCTIONS_CUSTOMHANDLER_PORT";
    let value = lookup(NAME).or_else(|| lookup("FUNCTIONS_HTTPWORKER_PORT")).ok_or(ConfigError::Missing {
        name: NAME,
        hint: "the Functions host sets it when it starts the handler; to run the handler by hand, set it to a free port, e.g. FUNCTIONS_CUSTOMHANDLER_PORT=8080",
    })?;
    match value.trim().parse::<u16>() {
        Ok(port) if port > 0 => Ok(port),
        _ => Err(ConfigError::Invalid {
            name: NAME,
            value,
            reason: "expected a TCP port number from 1 to 65535".into(),
        }),
    }
}

/// A settings lookup over fixed pairs, for tests of every module that reads settings.
#[cfg(test)]
pub(crate) fn lookup(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> + use<> {
    let map: std::collections::HashMap<String, String> = pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    move |name| map.get(name).cloned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_port_and_app_root_come_from_the_hosts_variables() {
        let config = ServerConfig::from_lookup(lookup(&[
            ("FUNCTIONS_CUSTOMHANDLER_PORT", "4321"),
            ("FUNCTIONS_APP_ROOT_PATH", "/home/site/wwwroot"),
            ("AzureWebJobsScriptRoot", "/elsewhere"),
        ]))
        .unwrap();
        assert_eq!(
            config,
            ServerConfig {
                port: 4321,
                app_root: "/home/site/wwwroot".into(),
                limits: Limits::default(),
            }
        );
        let legacy =
            ServerConfig::from_lookup(lookup(&[("FUNCTIONS_HTTPWORKER_PORT", "99")])).unwrap();
        assert_eq!(legacy.port, 99);
        assert_eq!(legacy.app_root, PathBuf::from("."));
    }

    #[test]
    fn server_limits_have_defaults_and_name_a_bad_value() {
        let port = ("FUNCTIONS_CUSTOMHANDLER_PORT", "1");
        let set = ServerConfig::from_lookup(lookup(&[
            port,
            ("MAX_CONCURRENT_INVOCATIONS", "4"),
            ("REQUEST_BODY_TIMEOUT_SECONDS", "2"),
        ]))
        .unwrap();
        assert_eq!(set.limits.max_in_flight, 4);
        assert_eq!(set.limits.body_timeout, Duration::from_secs(2));
        assert_eq!(set.limits.max_connections, 256);
        for (name, bad) in [
            ("MAX_CONNECTIONS", "0"),
            ("MAX_CONCURRENT_INVOCATIONS", "lots"),
            ("REQUEST_HEADER_TIMEOUT_SECONDS", "-1"),
        ] {
            let error = ServerConfig::from_lookup(lookup(&[port, (name, bad)])).unwrap_err();
            assert!(
                error.to_string().starts_with(&format!("{name}='{bad}'")),
                "{error}"
            );
        }
    }

    #[test]
    fn a_missing_or_bad_port_is_named_in_the_error() {
        let missing = ServerConfig::from_lookup(lookup(&[])).unwrap_err();
        assert!(
            missing
                .to_string()
                .starts_with("FUNCTIONS_CUSTOMHANDLER_PORT is not set")
        );
        for bad in ["abc", "0", "70000", ""] {
            let error = ServerConfig::from_lookup(lookup(&[("FUNCTIONS_CUSTOMHANDLER_PORT", bad)]))
                .unwrap_err();
            assert!(
                matches!(
                    error,
                    ConfigError::Invalid {
                        name: "FUNCTIONS_CUSTOMHANDLER_PORT",
                        ..
                    }
                ),
                "{bad}"
            );
        }
    }
}

/// The resources RefreshTokens keeps warm when TOKEN_REFRESH_RESOURCES is not set.
pub const DEFAULT_REFRESH_RESOURCES: &[&str] =
    &["https://vault.azure.net", "https://storage.azure.com"];

/// The functions' settings, read once at start-up. URLs and lists are kept as given here and
/// validated by the app when it builds the client that uses them, so a bad one fails only the
/// functions that need it, with a message naming the setting.
#[derive(Debug)]
pub struct AppSettings {
    /// KEY_VAULT_URL.
    pub key_vault_url: Option<String>,
    /// STORAGE_BLOB_URL.
    pub storage_blob_url: Option<String>,
    /// ALLOWED_SECRETS.
    pub allowed_secrets: Option<String>,
    /// ALLOWED_CONTAINERS.
    pub allowed_containers: Option<String>,
    /// SECRET_CACHE_SECONDS, validated by the app (GetSecret's cache).
    pub secret_cache_seconds: Option<String>,
    /// TOKEN_REFRESH_RESOURCES, split on commas; the default when unset.
    pub refresh_resources: Vec<String>,
    /// TOKEN_INFO_RESOURCES: the audiences TokenInfo serves (unset: the app's own).
    pub token_info_resources: Option<String>,
    /// TOKEN_INFO_IDENTITIES: the identities a TokenInfo call may name (unset: the default only).
    pub token_info_identities: Option<String>,
    /// DOWNSTREAM_API_URL: the base URL CallApi calls.
    pub downstream_api_url: Option<String>,
    /// DOWNSTREAM_API_SCOPE: the Application ID URI CallApi gets tokens for.
    pub downstream_api_scope: Option<String>,
    /// The managed-identity settings, detected and validated by the identity module.
    pub identity: Result<crate::identity::IdentityConfig, crate::identity::IdentityConfigError>,
    /// AUTH_AUTHORITY, AUTH_AUDIENCE, AUTH_REQUIRED_ROLE, validated by the auth module (Whoami).
    pub auth: Result<crate::auth::AuthConfig, crate::auth::AuthConfigError>,
}

impl AppSettings {
    /// Reads the process environment.
    pub fn from_env() -> Self {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads the settings through `lookup`; empty values count as unset.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Self {
        let get = |name: &str| {
            lookup(name)
                .map(|v| v.trim().to_owned())
                .filter(|v| !v.is_empty())
        };
        let refresh_resources = get("TOKEN_REFRESH_RESOURCES")
            .map(|list| {
                list.split(',')
                    .map(str::trim)
                    .filter(|r| !r.is_empty())
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_else(|| {
                DEFAULT_REFRESH_RESOURCES
                    .iter()
                    .map(|r| (*r).to_owned())
                    .collect()
            });
        Self {
            key_vault_url: get("KEY_VAULT_URL"),
            storage_blob_url: get("STORAGE_BLOB_URL"),
            allowed_secrets: get("ALLOWED_SECRETS"),
            allowed_containers: get("ALLOWED_CONTAINERS"),
            secret_cache_seconds: get("SECRET_CACHE_SECONDS"),
            refresh_resources,
            token_info_resources: get("TOKEN_INFO_RESOURCES"),
            token_info_identities: get("TOKEN_INFO_IDENTITIES"),
            downstream_api_url: get("DOWNSTREAM_API_URL"),
            downstream_api_scope: get("DOWNSTREAM_API_SCOPE"),
            identity: crate::identity::IdentityConfig::from_lookup(&lookup),
            auth: crate::auth::AuthConfig::from_lookup(&lookup),
        }
    }
}
