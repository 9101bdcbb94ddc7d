//! The HTTPS listener: accepts TLS connections on 127.0.0.1, prints the ready line, serves
//! HTTP/1.1 until SIGTERM/SIGINT.

use std::io::Write;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use hyper::header::{AUTHORIZATION, HOST};
use hyper::service::service_fn;
use hyper::{Request, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use rustls::ServerConfig;
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;

use super::KeyVaultError;
use super::api::{ApiRequest, AppState, HttpResponse, handle};
use super::config::VaultConfig;

/// Largest request body accepted (Key Vault's own limit on a secret value is 25 KiB).
const MAX_BODY_BYTES: usize = 256 * 1024;
/// Time allowed for a TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Time allowed to receive request headers.
const HEADER_TIMEOUT: Duration = Duration::from_secs(30);
/// The header an Azure SDK client names each call with.
const CLIENT_REQUEST_ID: hyper::header::HeaderName =
    hyper::header::HeaderName::from_static("x-ms-client-request-id");

/// Binds 127.0.0.1:`port`, prints `{"ready":"https://127.0.0.1:P"}` and serves until a signal.
pub async fn serve(
    port: u16,
    tls: Arc<ServerConfig>,
    config: VaultConfig,
    jwks_url: url::Url,
) -> Result<(), KeyVaultError> {
    let listener = TcpListener::bind(("127.0.0.1", port)).await?;
    let addr = listener.local_addr()?;
    let state = Arc::new(AppState::new(
        config,
        jwks_url,
        format!("127.0.0.1:{}", addr.port()),
    ));
    let shutdown = install_shutdown_signals();
    print_ready(addr)?;
    let acceptor = TlsAcceptor::from(tls);
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            () = &mut shutdown => {
                log::info!("keyvault emulator shutting down");
                return Ok(());
            }
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    tokio::spawn(serve_connection(stream, acceptor.clone(), state.clone()));
                }
                Err(e) => {
                    log::warn!("accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
        }
    }
}

fn print_ready(addr: SocketAddr) -> std::io::Result<()> {
    let line = serde_json::json!({"ready": format!("https://{addr}")});
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "{line}")?;
    stdout.flush()
}

async fn serve_connection(stream: TcpStream, acceptor: TlsAcceptor, state: Arc<AppState>) {
    let tls = match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
        Ok(Ok(tls)) => tls,
        Ok(Err(e)) => {
            log::debug!("TLS handshake failed: {e}");
            return;
        }
        Err(_) => {
            log::debug!("TLS handshake timed out");
            return;
        }
    };
    let service = service_fn(move |request| {
        let state = state.clone();
        async move { crate::serve::deliver(dispatch(&state, request).await).await }
    });
    let result = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_TIMEOUT)
        .serve_connection(TokioIo::new(tls), service)
        .await;
    if let Err(e) = result {
        log::debug!("connection ended with an error: {e}");
    }
}

/// Reads the body (bounded) and hands the request to the API handler.
async fn dispatch(state: &AppState, request: Request<Incoming>) -> HttpResponse {
    let (parts, body) = request.into_parts();
    let body = match Limited::new(body, MAX_BODY_BYTES).collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(_) => return body_too_large(),
    };
    let header = |name| {
        parts
            .headers
            .get(name)
            .and_then(|v: &hyper::header::HeaderValue| v.to_str().ok())
            .map(str::to_string)
    };
    let request = ApiRequest {
        path: parts.uri.path().to_string(),
        query: parts.uri.query().map(str::to_string),
        host: header(HOST).or_else(|| parts.uri.authority().map(|a| a.to_string())),
        authorization: header(AUTHORIZATION),
        client_request_id: header(CLIENT_REQUEST_ID),
        method: parts.method,
        body,
    };
    handle(state, &request).await
}

fn body_too_large() -> HttpResponse {
    let body = serde_json::json!({"error": {"code": "BadParameter", "message": "The request body is too large or could not be read."}});
    let mut response =
        hyper::Response::new(http_body_util::Full::new(Bytes::from(body.to_string())));
    *response.status_mut() = StatusCode::PAYLOAD_TOO_LARGE;
    crate::serve::closing(response)
}

/// Registers SIGTERM/SIGINT handlers now (so a signal right after the ready line is not lost)
/// and returns a future that resolves when either arrives.
#[cfg(unix)]
fn install_shutdown_signals() -> impl std::future::Future<Output = ()> {
    use tokio::signal::unix::{SignalKind, signal};
    let term = signal(SignalKind::terminate());
    let interrupt = signal(SignalKind::interrupt());
    async move {
        match (term, interrupt) {
            (Ok(mut term), Ok(mut interrupt)) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = interrupt.recv() => {}
                }
            }
            (Ok(mut only), Err(_)) | (Err(_), Ok(mut only)) => {
                only.recv().await;
            }
            (Err(e), Err(_)) => {
                log::warn!("cannot listen for signals: {e}");
                std::future::pending::<()>().await;
            }
        }
    }
}

/// Resolves on Ctrl-C where Unix signals are not available.
#[cfg(not(unix))]
fn install_shutdown_signals() -> impl std::future::Future<Output = ()> {
    async {
        let _ = tokio::signal::ctrl_c().await;
    }
}
