//! Shared serving helpers for every emulator subcommand.
//!
//! The conventions all emulators follow (docs/emulators.md, 'Conventions every emulator follows'):
//! bind 127.0.0.1 only, print one JSON ready line first thing on stdout, log to stdout afterwards,
//! exit cleanly on SIGTERM/SIGINT, keep admin endpoints under `/_emulator/`. This module
//! implements those once:
//!
//! - [`bind_loopback`] and [`base_url`]: the listener and the URL to announce;
//! - [`announce_ready`]: the ready line;
//! - [`init_logging`]: env_logger to stdout, `RUST_LOG` or `info`;
//! - [`tls_acceptor`]: an optional rustls acceptor from PEM cert chain + PKCS#8 key files;
//! - [`serve`] / [`serve_until`]: the accept loop; it buffers each request body (up to
//!   [`MAX_BODY_BYTES`]) and hands a `Request<Bytes>` to a [`Handler`], until SIGTERM/SIGINT
//!   (or a future of your choice);
//! - [`json_response`], [`text_response`], [`query_pairs`]: small response/request utilities.

use std::future::Future;
use std::io::Write;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::Path;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::header::{CONNECTION, CONTENT_TYPE, HeaderValue};
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use log::{debug, info, warn};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

/// Largest request body an emulator accepts; larger bodies get 413 without reaching the handler.
pub const MAX_BODY_BYTES: usize = 1024 * 1024;

/// The response type every handler returns.
pub type HttpResponse = Response<Full<Bytes>>;

/// Errors from setting up a listener or TLS.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// Binding or writing to stdout failed.
    #[error("i/o error: {0}")]
    Io(#[from] std::io::Error),
    /// A PEM file could not be read or held no usable item.
    #[error("cannot read PEM file {path}: {reason}")]
    Pem {
        /// The file that failed.
        path: String,
        /// What went wrong (never key material).
        reason: String,
    },
    /// rustls refused the certificate/key pair.
    #[error("TLS configuration rejected: {0}")]
    Tls(#[from] rustls::Error),
}

/// Marks a response that must not be sent: the connection is closed instead, which the client
/// sees as a reset (fault injection only). See [`close_without_answer`] and [`deliver`].
#[derive(Debug, Clone, Copy)]
pub struct CloseWithoutAnswer;

/// Marks a response to hold back this long before it is sent (fault injection only).
#[derive(Debug, Clone, Copy)]
pub struct DelayAnswer(pub std::time::Duration);

/// A response that closes the connection instead of answering.
pub fn close_without_answer() -> HttpResponse {
    let mut response = text_response(StatusCode::INTERNAL_SERVER_ERROR, "");
    response.extensions_mut().insert(CloseWithoutAnswer);
    response
}

/// Why a connection was closed without an answer.
#[derive(Debug, thiserror::Error)]
#[error("connection closed without an answer (injected fault)")]
pub struct ClosedOnPurpose;

/// Applies the fault markers of a response: waits for [`DelayAnswer`], and turns
/// [`CloseWithoutAnswer`] into an error, on which hyper closes the connection unanswered.
pub async fn deliver(response: HttpResponse) -> Result<HttpResponse, ClosedOnPurpose> {
    if let Some(DelayAnswer(delay)) = response.extensions().get::<DelayAnswer>().copied() {
        tokio::time::sleep(delay).await;
    }
    if response.extensions().get::<CloseWithoutAnswer>().is_some() {
        return Err(ClosedOnPurpose);
    }
    Ok(response)
}

/// One emulator's request handler. Receives the whole request body already buffered.
pub trait Handler: Send + Sync + 'static {
    /// Answers one request. Must not panic; every failure becomes an HTTP response.
    fn handle(&self, request: Request<Bytes>) -> impl Future<Output = HttpResponse> + Send;
}

/// Binds `127.0.0.1:port` (`0` = an ephemeral port). Never binds a wildcard address.
pub async fn bind_loopback(port: u16) -> Result<TcpListener, ServeError> {
    Ok(TcpListener::bind(SocketAddr::from((Ipv4Addr::LOCALHOST, port))).await?)
}

/// `http://127.0.0.1:P` or `https://127.0.0.1:P` for a bound listener.
pub fn base_url(listener: &TcpListener, tls: bool) -> Result<String, ServeError> {
    let port = listener.local_addr()?.port();
    let scheme = if tls { "https" } else { "http" };
    Ok(format!("{scheme}://127.0.0.1:{port}"))
}

/// Prints the ready line `{"ready":"<base_url>", ...extra}` (with `ready` first) on stdout and flushes it.
///
/// Call it once, as soon as the listener is bound and before any log line.
pub fn announce_ready(
    base_url: &str,
    extra: serde_json::Map<String, serde_json::Value>,
) -> Result<(), ServeError> {
    let mut line = format!("{{\"ready\":{}", serde_json::Value::from(base_url));
    for (name, value) in extra.into_iter().filter(|(name, _)| name != "ready") {
        line.push_str(&format!(",{}:{value}", serde_json::Value::from(name)));
    }
    line.push('}');
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "{line}")?;
    stdout.flush()?;
    Ok(())
}

/// Sends logs to stdout with the level from `RUST_LOG` (default `info`). Safe to call twice.
pub fn init_logging() {
    let env = env_logger::Env::default().default_filter_or("info");
    let _already_set = env_logger::Builder::from_env(env)
        .target(env_logger::Target::Stdout)
        .try_init();
}

/// Builds a TLS acceptor from a PEM certificate chain and a PEM private key (PKCS#8, PKCS#1 or SEC1).
pub fn tls_acceptor(cert_path: &Path, key_path: &Path) -> Result<TlsAcceptor, ServeError> {
    let certs = read_cert_chain(cert_path)?;
    let key = read_private_key(key_path)?;
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(certs, key)?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(config)))
}

fn read_pem_file(path: &Path) -> Result<Vec<u8>, ServeError> {
    std::fs::read(path).map_err(|e| pem_error(path, &e.to_string()))
}

fn pem_error(path: &Path, reason: &str) -> ServeError {
    ServeError::Pem {
        path: path.display().to_string(),
        reason: reason.to_string(),
    }
}

fn read_cert_chain(path: &Path) -> Result<Vec<CertificateDer<'static>>, ServeError> {
    let pem = read_pem_file(path)?;
    let certs = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|_| pem_error(path, "not a PEM certificate chain"))?;
    if certs.is_empty() {
        return Err(pem_error(path, "no CERTIFICATE block"));
    }
    Ok(certs)
}

fn read_private_key(path: &Path) -> Result<PrivateKeyDer<'static>, ServeError> {
    let pem = read_pem_file(path)?;
    PrivateKeyDer::from_pem_slice(&pem).map_err(|_| pem_error(path, "no usable private key block"))
}

/// Accepts connections until SIGTERM/SIGINT, serving each with `handler` (over TLS if `tls` is set).
pub async fn serve<H: Handler>(
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    handler: Arc<H>,
) -> Result<(), ServeError> {
    serve_until(listener, tls, handler, shutdown_signal()).await
}

/// Like [`serve`], but stops when `shutdown` resolves (for in-process tests and embedding).
/// Connections already accepted finish on their own tasks.
pub async fn serve_until<H: Handler>(
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    handler: Arc<H>,
    shutdown: impl Future<Output = ()>,
) -> Result<(), ServeError> {
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            () = &mut shutdown => {
                info!("shutdown requested, exiting");
                return Ok(());
            }
            accepted = listener.accept() => match accepted {
                Ok((stream, _peer)) => spawn_connection(stream, tls.clone(), handler.clone()),
                Err(error) => warn!("accept failed: {error}"),
            }
        }
    }
}

fn spawn_connection<H: Handler>(
    stream: tokio::net::TcpStream,
    tls: Option<TlsAcceptor>,
    handler: Arc<H>,
) {
    tokio::spawn(async move {
        match tls {
            None => serve_connection(TokioIo::new(stream), handler).await,
            Some(acceptor) => match acceptor.accept(stream).await {
                Ok(tls_stream) => serve_connection(TokioIo::new(tls_stream), handler).await,
                Err(error) => debug!("TLS handshake failed: {error}"),
            },
        }
    });
}

async fn serve_connection<I, H>(io: I, handler: Arc<H>)
where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
    H: Handler,
{
    let service = service_fn(move |request| {
        let handler = handler.clone();
        async move { deliver(buffer_and_handle(handler, request).await).await }
    });
    if let Err(error) = hyper::server::conn::http1::Builder::new()
        .serve_connection(io, service)
        .await
    {
        debug!("connection ended with an error: {error}");
    }
}

async fn buffer_and_handle<H: Handler>(
    handler: Arc<H>,
    request: Request<Incoming>,
) -> HttpResponse {
    let (parts, body) = request.into_parts();
    match Limited::new(body, MAX_BODY_BYTES).collect().await {
        Ok(collected) => {
            handler
                .handle(Request::from_parts(parts, collected.to_bytes()))
                .await
        }
        Err(_) => closing(text_response(
            StatusCode::PAYLOAD_TOO_LARGE,
            "request body too large or unreadable",
        )),
    }
}

/// `response` to a request whose body was left unread: the connection cannot carry another
/// request, and `Connection: close` says so, so a pooled client does not send its next request
/// on a connection about to be dropped.
pub fn closing(mut response: HttpResponse) -> HttpResponse {
    response
        .headers_mut()
        .insert(CONNECTION, HeaderValue::from_static("close"));
    response
}

/// Resolves on SIGTERM or SIGINT. If a handler cannot be installed, only the other one counts.
pub async fn shutdown_signal() {
    let interrupt = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        () = interrupt => {}
        () = terminate => {}
    }
}

/// A response with a JSON body and `Content-Type: application/json; charset=utf-8`.
pub fn json_response(status: StatusCode, body: &serde_json::Value) -> HttpResponse {
    let mut response = Response::new(Full::new(Bytes::from(body.to_string())));
    *response.status_mut() = status;
    response.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("application/json; charset=utf-8"),
    );
    response
}

/// A response with a plain-text body.
pub fn text_response(status: StatusCode, body: &str) -> HttpResponse {
    let mut response = Response::new(Full::new(Bytes::from(body.to_string())));
    *response.status_mut() = status;
    response.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

/// The decoded query parameters of a request, in order, duplicates kept.
pub fn query_pairs<B>(request: &Request<B>) -> Vec<(String, String)> {
    let query = request.uri().query().unwrap_or("");
    url::form_urlencoded::parse(query.as_bytes())
        .map(|(name, value)| (name.into_owned(), value.into_owned()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Echo;

    impl Handler for Echo {
        async fn handle(&self, request: Request<Bytes>) -> HttpResponse {
            let body = serde_json::json!({
                "path": request.uri().path(),
                "query": query_pairs(&request),
                "body": String::from_utf8_lossy(request.body()),
            });
            json_response(StatusCode::OK, &body)
        }
    }

    async fn start(tls: Option<TlsAcceptor>) -> (String, tokio::sync::oneshot::Sender<()>) {
        let listener = bind_loopback(0).await.unwrap();
        assert!(listener.local_addr().unwrap().ip().is_loopback());
        let url = base_url(&listener, tls.is_some()).unwrap();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(serve_until(listener, tls, Arc::new(Echo), async {
            let _ = stopped.await;
        }));
        (url, stop)
    }

    #[tokio::test]
    async fn serves_plain_http_with_buffered_body_and_decoded_query() {
        let (url, _stop) = start(None).await;
        let client = reqwest::Client::builder().no_proxy().build().unwrap();
        let answer = client
            .post(format!("{url}/x?a=1&b=%20two"))
            .body("hello")
            .send()
            .await
            .unwrap();
        assert_eq!(
            answer.headers()["content-type"],
            "application/json; charset=utf-8"
        );
        let json: serde_json::Value = serde_json::from_str(&answer.text().await.unwrap()).unwrap();
        assert_eq!(json["path"], "/x");
        assert_eq!(
            json["query"],
            serde_json::json!([["a", "1"], ["b", " two"]])
        );
        assert_eq!(json["body"], "hello");
    }

    #[tokio::test]
    async fn serves_tls_with_the_test_pki_and_stops_on_request() {
        let dir = tempfile::tempdir().unwrap();
        let pki = crate::pki::ensure_pki(dir.path()).unwrap();
        let acceptor = tls_acceptor(&pki.leaf_cert, &pki.leaf_key).unwrap();
        let (url, stop) = start(Some(acceptor)).await;
        let ca = reqwest::Certificate::from_pem(&std::fs::read(&pki.ca_cert).unwrap()).unwrap();
        let client = reqwest::Client::builder()
            .no_proxy()
            .tls_certs_only([ca])
            .build()
            .unwrap();
        let answer = client.get(format!("{url}/tls")).send().await.unwrap();
        assert_eq!(answer.status(), StatusCode::OK);
        stop.send(()).unwrap();
    }

    #[test]
    fn tls_acceptor_reports_missing_files_by_path() {
        let result = tls_acceptor(
            Path::new("/nonexistent/c.pem"),
            Path::new("/nonexistent/k.pem"),
        );
        let Err(error) = result else {
            panic!("missing files must be an error");
        };
        assert!(error.to_string().contains("/nonexistent/c.pem"));
    }
}
