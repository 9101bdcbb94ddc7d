//! The app: what every function shares, built once at start-up with no network call, and the
//! serve loop that puts it behind the host's port.

use std::net::Ipv4Addr;
use std::path::Path;
use std::sync::Arc;

use tokio::net::TcpListener;

use crate::config::ServerConfig;
use crate::dispatch::Runtime;
use crate::registry::{self, Implemented, Registry};

/// The state every function receives.
#[derive(Debug, Default)]
pub struct App {}

impl App {
    /// Builds the shared state. Nothing here touches the network, so start-up stays fast.
    pub fn new() -> Self {
        Self {}
    }
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

/// Binds 127.0.0.1 only (never 0.0.0.0: only the host may call us), before any slow set-up.
pub async fn bind(config: &ServerConfig) -> Result<TcpListener, StartError> {
    TcpListener::bind((Ipv4Addr::LOCALHOST, config.port))
        .await
        .map_err(|source| StartError::Bind {
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
