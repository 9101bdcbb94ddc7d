//! The app: what every function shares, built once at start-up with no network call, and the
//! serve loop that puts it behind the host's port.

use std::net::Ipv4Addr;
use std::path::Path;
use std::sync::Arc;

use azure_core::credentials::TokenCredential;
use tokio::net::{TcpListener, TcpSocket};

use crate::auth::{TokenValidator, default_http_client};
use crate::clients::blob::BlobStore;
use crate::clients::downstream::DownstreamApi;
use crate::clients::http::{AzureHttp, HttpSettings};
use crate::clients::keyvault::KeyVault;
use crate::clients::names::{ContainerAllowlist, SecretAllowlist};
use crate::clients::secret_cache::SecretCache;
use crate::config::{AppSettings, ServerConfig};
use crate::error::FunctionError;
use crate::functions::token_info::TokenInfoPolicy;
use custom_handler::dispatch::Runtime;
use custom_handler::registry::{self, Implemented, Registry};
use managed_identity::ManagedIdentity;

/// The state every function receives: the identity and the clients, each built once at
/// start-up and shared. A piece whose setting is missing or bad is kept as the reason, so only
/// the functions that need it fail, and the others keep serving.
#[derive(Debug)]
pub struct App {
    identity: Result<ManagedIdentity, Unconfigured>,
    keyvault: Result<KeyVault, Unconfigured>,
    blobs: Result<BlobStore, Unconfigured>,
    allowed_secrets: Result<SecretAllowlist, Unconfigured>,
    allowed_containers: Result<ContainerAllowlist, Unconfigured>,
    secret_cache: Result<SecretCache, Unconfigured>,
    refresh_resources: Vec<String>,
    token_info: Result<TokenInfoPolicy, Unconfigured>,
    downstream: Result<Downstream, Unconfigured>,
    validator: Result<TokenValidator, Unconfigured>,
}

/// The API CallApi calls, and the Application ID URI its tokens are for.
#[derive(Debug)]
pub struct Downstream {
    /// The client, which only reaches paths under DOWNSTREAM_API_URL.
    pub api: DownstreamApi,
    /// DOWNSTREAM_API_SCOPE, e.g. `api://<guid>` (with or without `/.default`).
    pub scope: String,
}

/// Why a piece of the app is not available.
#[derive(Debug, Clone)]
enum Unconfigured {
    /// A setting is missing or invalid.
    Setting {
        setting: &'static str,
        problem: String,
    },
    /// The managed identity cannot be used (its message names the variable).
    Identity(String),
}

impl From<Unconfigured> for FunctionError {
    fn from(reason: Unconfigured) -> Self {
        match reason {
            Unconfigured::Setting { setting, problem } => {
                FunctionError::NotConfigured { setting, problem }
            }
            Unconfigured::Identity(message) => FunctionError::IdentityNotConfigured(message),
        }
    }
}

impl App {
    /// Builds the shared state. Nothing here touches the network, so start-up stays fast.
    pub fn new(settings: AppSettings) -> Self {
        let identity = settings
            .identity
            .and_then(|config| {
                ManagedIdentity::with_tls_config(config, crate::clients::tls::client_config())
            })
            .map_err(|e| Unconfigured::Identity(e.to_string()));
        let http = AzureHttp::new(HttpSettings::default()).map_err(|e| Unconfigured::Setting {
            setting: "SSL_CERT_FILE",
            problem: e.to_string(),
        });
        let keyvault = build_client(
            &identity,
            &http,
            settings.key_vault_url.as_deref(),
            KEY_VAULT_URL,
            |url, credential, http| KeyVault::new(url, credential, http).map_err(|e| e.to_string()),
        );
        let blobs = build_client(
            &identity,
            &http,
            settings.storage_blob_url.as_deref(),
            STORAGE_BLOB_URL,
            |url, credential, http| {
                BlobStore::new(url, credential, http).map_err(|e| e.to_string())
            },
        );
        let allowed_secrets =
            SecretAllowlist::parse(settings.allowed_secrets.as_deref()).map_err(|e| {
                Unconfigured::Setting {
                    setting: "ALLOWED_SECRETS",
                    problem: e.to_string(),
                }
            });
        let allowed_containers = ContainerAllowlist::parse(settings.allowed_containers.as_deref())
            .map_err(|e| Unconfigured::Setting {
                setting: "ALLOWED_CONTAINERS",
                problem: e.to_string(),
            });
        let secret_cache = SecretCache::ttl_from_setting(settings.secret_cache_seconds.as_deref())
            .map(SecretCache::new)
            .map_err(|problem| Unconfigured::Setting {
                setting: "SECRET_CACHE_SECONDS",
                problem,
            });
        for problem in [
            &identity.as_ref().err(),
            &secret_cache.as_ref().err(),
            &keyvault.as_ref().err(),
            &blobs.as_ref().err(),
        ]
        .into_iter()
        .flatten()
        {
            log::warn!("{}", FunctionError::from((*problem).clone()));
        }
        let token_info = TokenInfoPolicy::parse(
            settings.token_info_resources.as_deref(),
            settings.token_info_identities.as_deref(),
            settings.downstream_api_scope.as_deref(),
            &settings.refresh_resources,
        )
        .map_err(|e| Unconfigured::Setting {
            setting: e.setting,
            problem: e.to_string(),
        });
        let downstream = downstream(
            settings.downstream_api_url.as_deref(),
            settings.downstream_api_scope,
        );
        let validator = settings
            .auth
            .map_err(|e| Unconfigured::Setting {
                setting: e.setting(),
                problem: e.to_string(),
            })
            .and_then(|config| {
                let http = default_http_client().map_err(|e| Unconfigured::Setting {
                    setting: "AUTH_AUTHORITY",
                    problem: e.to_string(),
                })?;
                Ok(TokenValidator::new(config, http))
            });
        Self {
            identity,
            keyvault,
            blobs,
            allowed_secrets,
            allowed_containers,
            secret_cache,
            refresh_resources: settings.refresh_resources,
            token_info,
            downstream,
            validator,
        }
    }

    /// The resources RefreshTokens keeps warm.
    pub fn refresh_resources(&self) -> &[String] {
        &self.refresh_resources
    }
}

/// The accessors of the parts built at start-up: each hands out its part, or, when a setting kept
/// it from being built, the error naming that setting, so only the functions that need it fail.
macro_rules! parts {
    ($($(#[$doc:meta])* $name:ident: $field:ident -> $part:ty;)*) => {
        impl App {
            $(
                $(#[$doc])*
                pub fn $name(&self) -> Result<&$part, FunctionError> {
                    self.$field.as_ref().map_err(|e| e.clone().into())
                }
            )*
        }
    };
}

parts! {
    /// The downstream API and its scope (CallApi).
    downstream: downstream -> Downstream;
    /// The validator of incoming bearer tokens (Whoami).
    validator: validator -> TokenValidator;
    /// The shared managed identity.
    identity: identity -> ManagedIdentity;
    /// The Key Vault client (KEY_VAULT_URL).
    keyvault: keyvault -> KeyVault;
    /// The Blob Storage client (STORAGE_BLOB_URL).
    blobs: blobs -> BlobStore;
    /// The secrets GetSecret may read (ALLOWED_SECRETS).
    allowed_secrets: allowed_secrets -> SecretAllowlist;
    /// The audiences and identities TokenInfo serves (TOKEN_INFO_RESOURCES,
    /// TOKEN_INFO_IDENTITIES).
    token_info_policy: token_info -> TokenInfoPolicy;
    /// The containers WriteBlob and ReadBlob may use (ALLOWED_CONTAINERS).
    allowed_containers: allowed_containers -> ContainerAllowlist;
    /// GetSecret's cache (SECRET_CACHE_SECONDS).
    secret_cache: secret_cache -> SecretCache;
}

const KEY_VAULT_URL: (&str, &str) = (
    "KEY_VAULT_URL",
    "set it to the vault's URL, e.g. https://<vault>.vault.azure.net/",
);
const STORAGE_BLOB_URL: (&str, &str) = (
    "STORAGE_BLOB_URL",
    "set it to the account's blob endpoint, e.g. https://<account>.blob.core.windows.net",
);

/// Builds CallApi's client from DOWNSTREAM_API_URL and DOWNSTREAM_API_SCOPE.
fn downstream(url: Option<&str>, scope: Option<String>) -> Result<Downstream, Unconfigured> {
    let setting = "DOWNSTREAM_API_URL";
    let url = url.ok_or_else(|| Unconfigured::Setting {
        setting,
        problem: "it is not set; set it to the base URL of the API CallApi calls, e.g. https://<app>.azurewebsites.net/api".into(),
    })?;
    let base = url::Url::parse(url).map_err(|e| Unconfigured::Setting {
        setting,
        problem: format!("'{url}' is not a URL: {e}"),
    })?;
    let api = DownstreamApi::new(base).map_err(|e| Unconfigured::Setting {
        setting,
        problem: e.to_string(),
    })?;
    let scope = scope.ok_or_else(|| Unconfigured::Setting {
        setting: "DOWNSTREAM_API_SCOPE",
        problem: "it is not set; set it to the API's Application ID URI, e.g. api://<guid>".into(),
    })?;
    Ok(Downstream { api, scope })
}

/// Builds one service client from its URL setting and the shared identity and transport.
fn build_client<T>(
    identity: &Result<ManagedIdentity, Unconfigured>,
    http: &Result<AzureHttp, Unconfigured>,
    url: Option<&str>,
    (setting, hint): (&'static str, &'static str),
    build: impl FnOnce(&str, Arc<dyn TokenCredential>, &AzureHttp) -> Result<T, String>,
) -> Result<T, Unconfigured> {
    let url = url.ok_or_else(|| Unconfigured::Setting {
        setting,
        problem: format!("it is not set; {hint}"),
    })?;
    let credential: Arc<dyn TokenCredential> = Arc::new(identity.clone()?);
    build(url, credential, http.as_ref().map_err(Clone::clone)?).map_err(|problem| {
        Unconfigured::Setting {
            setting,
            problem: format!("{problem}; {hint}"),
        }
    })
}

/// Why the handler could not start serving.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The port could not be bound.
    #[error(
        "cannot listen on 127.0.0.1:{port}: {source}; is another process using the port FUNCTIONS_CUSTOMHANDLER_PORT names?"
    )]
    Bind {
        /// The port.
        port: u16,
        /// The I/O error.
        source: std::io::Error,
    },
}

/// Connection attempts the kernel queues for us while every `MAX_CONNECTIONS` slot is taken
/// (capped by `net.core.somaxconn`). std's default of 128 drops a larger burst, whose clients then
/// wait seconds for the kernel to retry.
const LISTEN_BACKLOG: u32 = 1024;

/// Binds 127.0.0.1 only (never 0.0.0.0: only the host may call us), before any slow set-up.
pub async fn bind(config: &ServerConfig) -> Result<TcpListener, StartError> {
    let listen = || {
        let socket = TcpSocket::new_v4()?;
        // As std's bind does: a restarted handler can take the port back at once.
        socket.set_reuseaddr(true)?;
        socket.bind((Ipv4Addr::LOCALHOST, config.port).into())?;
        socket.listen(LISTEN_BACKLOG)
    };
    listen().map_err(|source| StartError::Bind {
        port: config.port,
        source,
    })
}

/// Reads host.json and the function folders under `app_root` and pairs them with `implemented`.
/// Problems are logged and leave only the affected functions out: the host indexes what it can,
/// and a handler that refused to start would be restarted and then shut down with no clearer word.
pub fn runtime<S: Send + Sync + 'static>(
    app_root: &Path,
    state: Arc<S>,
    implemented: Vec<Implemented<S>>,
) -> Runtime<S> {
    let options = registry::load_host_options(app_root).unwrap_or_else(|error| {
        log::error!("host.json: {error}; using the host's defaults");
        Default::default()
    });
    let declared = match registry::load_declared(app_root) {
        Ok((declared, broken)) => {
            for error in broken {
                log::error!("function folder left out: {error}");
            }
            declared
        }
        Err(error) => {
            log::error!("{error}; no function can be served");
            Vec::new()
        }
    };
    log::info!(
        "serving {} function(s) from {} (route prefix '{}')",
        declared.len(),
        app_root.display(),
        options.route_prefix
    );
    Runtime::new(state, Registry::new(declared, implemented), options)
}
