//! A direct HTTP/1.1 transport for the Azure SDK clients: hyper's HTTP/1.1 connections over
//! rustls, kept in a small pool of our own, without reqwest in between.
//!
//! reqwest was about a third of an uncached secret read's instructions (docs/performance.md,
//! *GetSecret*): converting the SDK's request into its own, its tower layers, and its redirect
//! layer parsing every request URL (and the response's) again although redirects are off. This
//! transport hands the SDK's request to a hyper connection as it is and reads the answer whole.
//! hyper-util's pooled client (reqwest's own) is not used either: its checkout, its request
//! wrapper and the task it spawns per request cost a tenth of a read again, and a second copy of
//! it (generic over connector and body) made the binary ≈ 50 KB larger.
//!
//! It keeps what the reqwest transport ([`crate::clients::http`]) guarantees: the same rustls
//! configuration and trust roots (loaded lazily, off the start-up path), https only, TCP_NODELAY,
//! a connect timeout (name resolution, TCP connect and TLS handshake together) and a timeout on
//! every request, no redirects, no decompression, and the same error kinds, so a failure is
//! classified exactly as before ([`crate::clients::failure`]). It also caps the answer's size.
//!
//! Connections are kept alive and reused, newest first, per scheme and host: each is driven by a
//! task of its own, which notices when the server closes it. A pooled connection is used only
//! while it is open and has been idle less than 90 s (reqwest's limit); one the server closed
//! meanwhile, or that turns out closed as the request is handed to it (hyper gives the unsent
//! request back), is dropped and the request goes on the next one or a new one. At most 32 idle
//! connections are kept; a timer closes each once its 90 s are up.
//!
//! It never goes through a proxy: the caller picks it only for a service no proxy variable applies
//! to ([`crate::net::proxy_applies`]).

use crate::clients::http::HttpSettings;
use async_trait::async_trait;
use azure_core::{
    error::{Error, ErrorKind},
    http::{
        AsyncRawResponse, HttpClient, Method, Request, Url,
        headers::{HeaderName, HeaderValue, Headers},
        request::Body,
    },
};
use bytes::Bytes;
use http_body_util::{BodyExt as _, Full, LengthLimitError, Limited};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use rustls::pki_types::ServerName;
use std::{
    collections::HashMap,
    fmt, io,
    net::SocketAddr,
    pin::Pin,
    sync::{Arc, Mutex, MutexGuard, PoisonError, Weak},
    task::{Context, Poll},
    time::{Duration, Instant},
};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::{TlsConnector, client::TlsStream};
use url::{Host, Position};

/// The largest answer read from a service (a Key Vault secret is at most 25 KB; its JSON with
/// attributes and tags stays far below this).
pub const MAX_RESPONSE_BYTES: usize = 1024 * 1024;

/// How long an idle pooled connection is kept (reqwest's default, which the transport before
/// this one used).
const POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(90);

/// How many idle connections are kept; one more returning is closed instead. The transport serves
/// one vault, and a handler rarely has more requests to it in flight at once.
const POOL_MAX_IDLE: usize = 32;

/// The message of every failure to send or open a connection (the reqwest transport's kinds, and
/// the text the transport on hyper-util's client gave). Never the request: its Authorization
/// header must not reach an error.
const NOT_SENT: &str = "the request could not be sent";

/// See the module docs. Cheap to share behind an `Arc`; its connection pool is shared by clones
/// of the SDK client that hold it.
pub struct DirectTransport {
    tls: TlsConnector,
    allow_plain_http: bool,
    connect_timeout: Duration,
    request_timeout: Duration,
    max_response_bytes: usize,
    pool: Arc<Pool>,
}

impl fmt::Debug for DirectTransport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DirectTransport")
            .field("connect_timeout", &self.connect_timeout)
            .field("request_timeout", &self.request_timeout)
            .field("max_response_bytes", &self.max_response_bytes)
            .finish_non_exhaustive()
    }
}

impl DirectTransport {
    /// An https-only transport trusting what `tls` trusts (the process's lazily loaded roots in
    /// production), with the timeouts of `settings`.
    pub fn new(settings: &HttpSettings, tls: rustls::ClientConfig) -> Self {
        Self::build(settings, tls, false, MAX_RESPONSE_BYTES, POOL_IDLE_TIMEOUT)
    }

    fn build(
        settings: &HttpSettings,
        tls: rustls::ClientConfig,
        allow_plain_http: bool,
        max_response_bytes: usize,
        idle_timeout: Duration,
    ) -> Self {
        Self {
            // The configuration as it is (its ALPN included: `http/1.1`, as the other clients
            // offer).
            tls: TlsConnector::from(Arc::new(tls)),
            allow_plain_http,
            connect_timeout: settings.connect_timeout,
            request_timeout: settings.request_timeout,
            max_response_bytes,
            pool: Arc::new(Pool {
                state: Mutex::new(PoolState::default()),
                idle_timeout,
                max_idle: POOL_MAX_IDLE,
            }),
        }
    }

    async fn send(&self, request: &Request) -> azure_core::Result<AsyncRawResponse> {
        let url = request.url();
        let https = match url.scheme() {
            "https" => true,
            "http" if self.allow_plain_http => false,
            // A connection error, as hyper-rustls' connector gave for it.
            _ => {
                return Err(Error::with_message(
                    ErrorKind::Connection,
                    "the direct transport sends https only",
                ));
            }
        };
        // Host and port as the Host header gives them (the url crate leaves a scheme's default
        // port out, and keeps an IPv6 address's brackets); a pooled connection is reused only
        // for the same scheme and authority.
        let authority = &url[Position::BeforeHost..Position::AfterPort];
        let mut outgoing = to_hyper_request(request, authority)?;
        while let Some(mut pooled) = self.pool.checkout(https, authority) {
            // Closed by the server while idle (its task has seen it): the next one.
            if pooled.sender.ready().await.is_err() {
                continue;
            }
            match pooled.sender.try_send_request(outgoing).await {
                Ok(response) => return self.read(response, pooled).await,
                Err(mut error) => match error.take_message() {
                    // Never written: the connection closed as it was handed over.
                    Some(unsent) => outgoing = unsent,
                    None => return Err(not_sent(ErrorKind::Io, error.into_error())),
                },
            }
        }
        let mut fresh = Pooled {
            https,
            authority: authority.into(),
            sender: self.connect(url, https).await?,
            since: Instant::now(),
        };
        match fresh.sender.try_send_request(outgoing).await {
            Ok(response) => self.read(response, fresh).await,
            Err(error) => Err(not_sent(ErrorKind::Io, error.into_error())),
        }
    }

    /// Reads the answer whole, within the size cap, then gives its connection back to the pool
    /// (only then: a connection is reusable once its answer has been read to the end).
    async fn read(
        &self,
        response: hyper::Response<hyper::body::Incoming>,
        pooled: Pooled,
    ) -> azure_core::Result<AsyncRawResponse> {
        let (parts, body) = response.into_parts();
        let body = Limited::new(body, self.max_response_bytes)
            .collect()
            .await
            .map_err(|error| {
                if error.is::<LengthLimitError>() {
                    // Not Io: an answer that large would be refused again, so it is not retried.
                    Error::with_message(
                        ErrorKind::Other,
                        format!(
                            "the service's answer is larger than {} bytes",
                            self.max_response_bytes
                        ),
                    )
                } else {
                    Error::with_error(ErrorKind::Io, BoxedError(error), "the answer was cut short")
                }
            })?
            .to_bytes();
        self.pool.check_in(pooled);
        Ok(AsyncRawResponse::from_bytes(
            parts.status.as_u16().into(),
            to_sdk_headers(&parts.headers),
            body,
        ))
    }

    /// A new connection to the request's host, within the connect timeout, with its task
    /// spawned. Every failure is a connection error (a timeout one wrapping an I/O `TimedOut`, as
    /// hyper-util's connector gave), which the SDK retries.
    async fn connect(&self, url: &Url, https: bool) -> azure_core::Result<Sender> {
        let connecting = async {
            let (Some(host), Some(port)) = (url.host(), url.port_or_known_default()) else {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    "the request's URL has no host",
                ));
            };
            let tcp = connect_tcp(&host, port, self.connect_timeout).await?;
            tcp.set_nodelay(true)?;
            let stream = if https {
                let name = match host {
                    Host::Domain(name) => ServerName::try_from(name.to_owned())
                        .map_err(|error| io::Error::new(io::ErrorKind::InvalidInput, error))?,
                    Host::Ipv4(ip) => ServerName::from(std::net::IpAddr::V4(ip)),
                    Host::Ipv6(ip) => ServerName::from(std::net::IpAddr::V6(ip)),
                };
                Stream::Tls(Box::new(self.tls.connect(name, tcp).await?))
            } else {
                Stream::Plain(tcp)
            };
            hyper::client::conn::http1::handshake(TokioIo::new(stream))
                .await
                .map_err(io::Error::other)
        };
        let (sender, connection) =
            match tokio::time::timeout(self.connect_timeout, connecting).await {
                Ok(Ok(opened)) => opened,
                Ok(Err(error)) => return Err(not_sent(ErrorKind::Connection, error)),
                Err(_) => return Err(not_sent(ErrorKind::Connection, connect_timed_out())),
            };
        // The connection's own task reads and writes it; when the server closes it, the task
        // ends and the sender reports itself closed, so the pool never hands it out again.
        tokio::spawn(async move {
            let _ = connection.await;
        });
        Ok(sender)
    }
}

fn connect_timed_out() -> io::Error {
    io::Error::new(io::ErrorKind::TimedOut, "connect timeout")
}

fn not_sent<E>(kind: ErrorKind, error: E) -> Error
where
    E: std::error::Error + Send + Sync + 'static,
{
    Error::with_error(kind, error, NOT_SENT)
}

/// Tries the host's addresses in turn, each within an equal share of `timeout` (as hyper-util's
/// connector does), so that an address that never answers (an IPv6 route that drops packets)
/// leaves time for the next.
async fn connect_tcp(host: &Host<&str>, port: u16, timeout: Duration) -> io::Result<TcpStream> {
    let addresses: Vec<SocketAddr> = match *host {
        Host::Domain(name) => tokio::net::lookup_host((name, port)).await?.collect(),
        Host::Ipv4(ip) => vec![SocketAddr::from((ip, port))],
        Host::Ipv6(ip) => vec![SocketAddr::from((ip, port))],
    };
    let share = timeout / u32::try_from(addresses.len()).unwrap_or(u32::MAX).max(1);
    let mut last_error = None;
    for address in addresses {
        match tokio::time::timeout(share, TcpStream::connect(address)).await {
            Ok(Ok(tcp)) => return Ok(tcp),
            Ok(Err(error)) => last_error = Some(error),
            Err(_) => last_error = Some(connect_timed_out()),
        }
    }
    Err(last_error
        .unwrap_or_else(|| io::Error::new(io::ErrorKind::NotFound, "the host has no address")))
}

#[async_trait]
impl HttpClient for DirectTransport {
    async fn execute_request(&self, request: &Request) -> azure_core::Result<AsyncRawResponse> {
        match tokio::time::timeout(self.request_timeout, self.send(request)).await {
            Ok(result) => result,
            // An io::Error of kind TimedOut, as the failure classifier reads a timeout; Io, so
            // the SDK's retry policy treats it as reqwest's timeouts were treated.
            Err(_) => Err(Error::with_error(
                ErrorKind::Io,
                io::Error::from(io::ErrorKind::TimedOut),
                "the request timed out",
            )),
        }
    }
}

type Sender = SendRequest<Full<Bytes>>;

/// A connection the pool holds or a request is using, with what it is for.
struct Pooled {
    https: bool,
    /// Host and port, as the request's Host header.
    authority: Box<str>,
    sender: Sender,
    /// When it was last given back (its idle time counts from there).
    since: Instant,
}

/// The idle connections, newest last, and a timer closing them once their idle time is up.
struct Pool {
    state: Mutex<PoolState>,
    idle_timeout: Duration,
    max_idle: usize,
}

#[derive(Default)]
struct PoolState {
    idle: Vec<Pooled>,
    /// Whether the task closing expired connections runs (it ends when the pool is empty).
    reaping: bool,
}

impl Pool {
    fn lock(&self) -> MutexGuard<'_, PoolState> {
        // Nothing panics while holding it; and a poisoned list of connections is still a list.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn is_fresh(&self, pooled: &Pooled, now: Instant) -> bool {
        now.saturating_duration_since(pooled.since) < self.idle_timeout
            && !pooled.sender.is_closed()
    }

    /// The newest idle connection for `https` and `authority` that is still open and within its
    /// idle limit; the stale ones met on the way are dropped (closed).
    fn checkout(&self, https: bool, authority: &str) -> Option<Pooled> {
        let mut state = self.lock();
        let now = Instant::now();
        while let Some(index) = state
            .idle
            .iter()
            .rposition(|pooled| pooled.https == https && *pooled.authority == *authority)
        {
            let pooled = state.idle.remove(index);
            if self.is_fresh(&pooled, now) {
                return Some(pooled);
            }
        }
        None
    }

    /// Keeps a connection whose answer was read for the next request, unless it is closed or the
    /// pool is full of live ones (then it is closed, as hyper-util's pool does).
    fn check_in(self: &Arc<Self>, mut pooled: Pooled) {
        if pooled.sender.is_closed() {
            return;
        }
        pooled.since = Instant::now();
        let mut state = self.lock();
        if state.idle.len() >= self.max_idle {
            state.idle.retain(|idle| self.is_fresh(idle, pooled.since));
            if state.idle.len() >= self.max_idle {
                return;
            }
        }
        state.idle.push(pooled);
        if !state.reaping {
            state.reaping = true;
            drop(state);
            tokio::spawn(reap(Arc::downgrade(self)));
        }
    }
}

/// Closes each idle connection once its idle time is up, so that none stays open long after the
/// last request (a descriptor and the server's resources); sleeps until the oldest one expires,
/// and ends when the pool is empty or gone.
async fn reap(pool: Weak<Pool>) {
    loop {
        let wake = {
            let Some(pool) = pool.upgrade() else {
                return;
            };
            let mut state = pool.lock();
            let now = Instant::now();
            state.idle.retain(|idle| pool.is_fresh(idle, now));
            match state.idle.iter().map(|idle| idle.since).min() {
                Some(oldest) => oldest + pool.idle_timeout,
                None => {
                    state.reaping = false;
                    return;
                }
            }
        };
        tokio::time::sleep_until(wake.into()).await;
    }
}

/// A connection's byte stream: TLS, or plain TCP (tests only). One type, so that hyper's
/// connection code is built once.
enum Stream {
    Tls(Box<TlsStream<TcpStream>>),
    Plain(TcpStream),
}

impl AsyncRead for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Tls(tls) => Pin::new(tls.as_mut()).poll_read(cx, buf),
            Self::Plain(tcp) => Pin::new(tcp).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Stream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Self::Tls(tls) => Pin::new(tls.as_mut()).poll_write(cx, buf),
            Self::Plain(tcp) => Pin::new(tcp).poll_write(cx, buf),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Self::Tls(tls) => Pin::new(tls.as_mut()).poll_write_vectored(cx, bufs),
            Self::Plain(tcp) => Pin::new(tcp).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            Self::Tls(tls) => tls.is_write_vectored(),
            Self::Plain(tcp) => tcp.is_write_vectored(),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Tls(tls) => Pin::new(tls.as_mut()).poll_flush(cx),
            Self::Plain(tcp) => Pin::new(tcp).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Tls(tls) => Pin::new(tls.as_mut()).poll_shutdown(cx),
            Self::Plain(tcp) => Pin::new(tcp).poll_shutdown(cx),
        }
    }
}

/// The SDK's request as hyper's: the URL's path and query as the URI (origin form, as a request
/// straight to the server is written), a Host header unless the SDK gave one, every header, the
/// body's bytes.
fn to_hyper_request(
    request: &Request,
    authority: &str,
) -> azure_core::Result<hyper::Request<Full<Bytes>>> {
    let body = match request.body() {
        Body::Bytes(bytes) => Full::new(bytes.clone()),
        Body::SeekableStream(_) => {
            return Err(Error::with_message(
                ErrorKind::Other,
                "the direct transport sends whole bodies only, not streams",
            ));
        }
    };
    let url = request.url();
    let mut builder = hyper::Request::builder()
        .method(to_hyper_method(request.method())?)
        .uri(&url[Position::BeforePath..Position::AfterQuery]);
    if let Some(headers) = builder.headers_mut() {
        headers.reserve(request.headers().iter().size_hint().0 + 1);
        for (name, value) in request.headers().iter() {
            let name = http::HeaderName::from_bytes(name.as_str().as_bytes());
            let value = http::HeaderValue::from_str(value.as_str());
            match (name, value) {
                (Ok(name), Ok(value)) => {
                    headers.append(name, value);
                }
                _ => {
                    return Err(Error::with_message(
                        ErrorKind::Other,
                        "a request header is not valid HTTP",
                    ));
                }
            }
        }
        if let http::header::Entry::Vacant(host) = headers.entry(http::header::HOST) {
            let value = http::HeaderValue::from_str(authority).map_err(|error| {
                Error::with_error(
                    ErrorKind::Other,
                    error,
                    "the request's host is not valid HTTP",
                )
            })?;
            host.insert(value);
        }
    }
    builder.body(body).map_err(|error| {
        Error::with_error(ErrorKind::Other, error, "the request is not valid HTTP")
    })
}

fn to_hyper_method(method: Method) -> azure_core::Result<http::Method> {
    Ok(match method {
        Method::Delete => http::Method::DELETE,
        Method::Get => http::Method::GET,
        Method::Head => http::Method::HEAD,
        Method::Patch => http::Method::PATCH,
        Method::Post => http::Method::POST,
        Method::Put => http::Method::PUT,
        // The SDK's list may grow; a method it adds is sent by its name.
        other => http::Method::from_bytes(other.as_ref().as_bytes()).map_err(|error| {
            Error::with_error(
                ErrorKind::Other,
                error,
                "the request method is not valid HTTP",
            )
        })?,
    })
}

/// The answer's headers as the SDK keeps them; a value that is not UTF-8 is left out, as the
/// reqwest transport does.
fn to_sdk_headers(headers: &http::HeaderMap) -> Headers {
    let mut map = HashMap::with_capacity(headers.len());
    for (name, value) in headers {
        if let Ok(value) = value.to_str() {
            map.insert(
                HeaderName::from(name.as_str().to_owned()),
                HeaderValue::from(value.to_owned()),
            );
        }
    }
    Headers::from(map)
}

/// hyper's body errors come boxed; this gives them a type the SDK's error can hold.
#[derive(Debug)]
struct BoxedError(Box<dyn std::error::Error + Send + Sync>);

impl fmt::Display for BoxedError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

impl std::error::Error for BoxedError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.0.source()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clients::failure::Failure;
    use crate::clients::tls::TrustRoots;
    use azure_core::http::{StatusCode, Url};
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    use tokio::net::TcpListener;
    use tokio::sync::mpsc;

    fn settings(request_timeout: Duration) -> HttpSettings {
        HttpSettings {
            request_timeout,
            ..HttpSettings::default()
        }
    }

    /// A transport that also speaks plain http, for the local servers below.
    fn plain(request_timeout: Duration, max_response_bytes: usize) -> DirectTransport {
        plain_idle_for(request_timeout, max_response_bytes, POOL_IDLE_TIMEOUT)
    }

    /// [`plain`] whose idle connections are kept for `idle_timeout`.
    fn plain_idle_for(
        request_timeout: Duration,
        max_response_bytes: usize,
        idle_timeout: Duration,
    ) -> DirectTransport {
        let tls = TrustRoots::new().client_config();
        DirectTransport::build(
            &settings(request_timeout),
            tls,
            true,
            max_response_bytes,
            idle_timeout,
        )
    }

    /// A server that answers every request on every connection with `answer` (`None`: never
    /// answers), and reports each request head it read, numbered by its connection.
    async fn server(
        answer: Option<&'static [u8]>,
    ) -> (Url, mpsc::UnboundedReceiver<(usize, String)>) {
        let served = server_with(answer, Behaviour::default()).await;
        (served.url, served.heads)
    }

    /// What [`server_with`] does besides answering.
    #[derive(Clone, Copy, Default)]
    struct Behaviour {
        /// Closes each connection right after its first answer (without saying so in it).
        close_after_answer: bool,
        /// Holds every answer until this many requests have arrived, over all connections.
        answer_once_seen: usize,
    }

    struct Served {
        url: Url,
        /// Each request head read, with the number of its connection.
        heads: mpsc::UnboundedReceiver<(usize, String)>,
        /// The number of each connection once it is closed, by either side.
        closed: mpsc::UnboundedReceiver<usize>,
    }

    async fn server_with(answer: Option<&'static [u8]>, behaviour: Behaviour) -> Served {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = Url::parse(&format!("http://{}/", listener.local_addr().unwrap())).unwrap();
        let (heads, received) = mpsc::unbounded_channel();
        let (closes, closed) = mpsc::unbounded_channel();
        let (seen, _) = tokio::sync::watch::channel(0usize);
        tokio::spawn(async move {
            for connection in 0.. {
                let Ok((mut socket, _)) = listener.accept().await else {
                    return;
                };
                let (heads, closes, seen) = (heads.clone(), closes.clone(), seen.clone());
                tokio::spawn(async move {
                    let mut buffer = Vec::new();
                    let mut chunk = [0u8; 4096];
                    'connection: while let Ok(read) = socket.read(&mut chunk).await {
                        if read == 0 {
                            break;
                        }
                        buffer.extend_from_slice(&chunk[..read]);
                        while let Some(end) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
                            let head: Vec<u8> = buffer.drain(..end + 4).collect();
                            let _ = heads
                                .send((connection, String::from_utf8_lossy(&head).into_owned()));
                            seen.send_modify(|count| *count += 1);
                            let _ = seen
                                .subscribe()
                                .wait_for(|count| *count >= behaviour.answer_once_seen)
                                .await;
                            match answer {
                                Some(answer) => {
                                    if socket.write_all(answer).await.is_err() {
                                        break 'connection;
                                    }
                                }
                                None => std::future::pending::<()>().await,
                            }
                            if behaviour.close_after_answer {
                                break 'connection;
                            }
                        }
                    }
                    drop(socket);
                    let _ = closes.send(connection);
                });
            }
        });
        Served {
            url,
            heads: received,
            closed,
        }
    }

    fn get(url: &Url, path: &str) -> Request {
        let mut request = Request::new(url.join(path).unwrap(), Method::Get);
        request.insert_header("x-ms-client-request-id", "abc-123");
        request.insert_header("authorization", "Bearer not-a-real-token");
        request
    }

    #[tokio::test]
    async fn status_headers_and_body_come_back_as_the_service_sent_them() {
        let (url, mut heads) = server(Some(
            b"HTTP/1.1 404 Not Found\r\nContent-Length: 7\r\nx-ms-error-code: SecretNotFound\r\nRetry-After: 3\r\n\r\n{\"a\":1}",
        ))
        .await;
        let transport = plain(Duration::from_secs(10), 1024);
        let response = transport
            .execute_request(&get(&url, "secrets/db?api-version=7.6"))
            .await
            .unwrap();
        let (status, headers, body) = response.deconstruct();
        assert_eq!(status, StatusCode::NotFound);
        assert_eq!(
            headers.get_optional_str(&"x-ms-error-code".into()),
            Some("SecretNotFound")
        );
        assert_eq!(headers.get_optional_str(&"retry-after".into()), Some("3"));
        assert_eq!(body.collect().await.unwrap().as_ref(), b"{\"a\":1}");
        let (_, head) = heads.recv().await.unwrap();
        assert!(
            head.starts_with("GET /secrets/db?api-version=7.6 HTTP/1.1\r\n"),
            "{head}"
        );
        assert!(
            head.contains("x-ms-client-request-id: abc-123\r\n"),
            "{head}"
        );
        assert!(
            head.contains("authorization: Bearer not-a-real-token\r\n"),
            "{head}"
        );
        let host = format!(
            "host: {}:{}\r\n",
            url.host_str().unwrap(),
            url.port().unwrap()
        );
        assert!(head.contains(&host), "{head}");
    }

    #[tokio::test]
    async fn a_kept_alive_connection_serves_the_next_request() {
        let (url, mut heads) =
            server(Some(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}")).await;
        let transport = plain(Duration::from_secs(10), 1024);
        for _ in 0..3 {
            let response = transport.execute_request(&get(&url, "x")).await.unwrap();
            assert_eq!(response.status(), StatusCode::Ok);
        }
        let connections: Vec<usize> = [(); 3].map(|_| heads.try_recv().unwrap().0).to_vec();
        assert_eq!(connections, [0, 0, 0]);
    }

    #[tokio::test]
    async fn an_answer_over_the_limit_is_refused_whether_announced_or_streamed() {
        let announced = b"HTTP/1.1 200 OK\r\nContent-Length: 20\r\n\r\n01234567890123456789";
        let streamed = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n8\r\n01234567\r\n8\r\n89012345\r\n0\r\n\r\n";
        for answer in [&announced[..], &streamed[..]] {
            let (url, _heads) = server(Some(answer)).await;
            let error = plain(Duration::from_secs(10), 10)
                .execute_request(&get(&url, "x"))
                .await
                .unwrap_err();
            assert!(matches!(error.kind(), ErrorKind::Other), "{error:?}");
            assert!(
                error.to_string().contains("larger than 10 bytes"),
                "{error}"
            );
        }
        let (url, _heads) = server(Some(
            b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n0123456789",
        ))
        .await;
        let response = plain(Duration::from_secs(10), 10)
            .execute_request(&get(&url, "x"))
            .await
            .unwrap();
        assert_eq!(response.into_body().collect().await.unwrap().len(), 10);
    }

    #[tokio::test]
    async fn a_service_that_never_answers_times_out_as_a_timeout() {
        let (url, _heads) = server(None).await;
        let error = plain(Duration::from_millis(200), 1024)
            .execute_request(&get(&url, "x"))
            .await
            .unwrap_err();
        assert!(matches!(error.kind(), ErrorKind::Io), "{error:?}");
        assert_eq!(Failure::from_sdk(&error), Failure::Timeout);
    }

    #[tokio::test]
    async fn a_refused_connection_is_a_connection_error() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = Url::parse(&format!("http://{}/", listener.local_addr().unwrap())).unwrap();
        drop(listener);
        let error = plain(Duration::from_secs(10), 1024)
            .execute_request(&get(&url, "x"))
            .await
            .unwrap_err();
        assert!(matches!(error.kind(), ErrorKind::Connection), "{error:?}");
        assert!(matches!(Failure::from_sdk(&error), Failure::Transport(_)));
    }

    #[tokio::test]
    async fn the_production_transport_refuses_plain_http() {
        let (url, mut heads) =
            server(Some(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}")).await;
        let transport = DirectTransport::new(
            &settings(Duration::from_secs(10)),
            TrustRoots::new().client_config(),
        );
        assert!(transport.execute_request(&get(&url, "x")).await.is_err());
        assert!(heads.try_recv().is_err(), "nothing was sent in clear text");
    }

    #[tokio::test]
    async fn a_streamed_request_body_is_refused_before_sending() {
        let (url, mut heads) =
            server(Some(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}")).await;
        let mut request = get(&url, "x");
        request.set_body(azure_core::stream::BytesStream::new(Bytes::from_static(
            b"data",
        )));
        let error = plain(Duration::from_secs(10), 1024)
            .execute_request(&request)
            .await
            .unwrap_err();
        assert!(error.to_string().contains("whole bodies only"), "{error}");
        assert!(heads.try_recv().is_err());
    }

    const OK: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}";

    /// The connection numbers of the `count` request heads the server read so far, in order.
    fn connections_of(
        heads: &mut mpsc::UnboundedReceiver<(usize, String)>,
        count: usize,
    ) -> Vec<usize> {
        (0..count).map(|_| heads.try_recv().unwrap().0).collect()
    }

    fn idle_count(transport: &DirectTransport) -> usize {
        transport.pool.lock().idle.len()
    }

    #[tokio::test]
    async fn a_connection_the_server_closed_while_idle_is_not_reused() {
        let mut served = server_with(
            Some(OK),
            Behaviour {
                close_after_answer: true,
                ..Behaviour::default()
            },
        )
        .await;
        let transport = plain(Duration::from_secs(10), 1024);
        let first = transport.execute_request(&get(&served.url, "x")).await;
        assert_eq!(first.unwrap().status(), StatusCode::Ok);
        // The server has closed the connection the answer came on; the client may or may not
        // have noticed yet (its task sees the close, or the request handed to it comes back
        // unsent): either way the next request must not fail, and goes on a new connection.
        assert_eq!(served.closed.recv().await, Some(0));
        let second = transport.execute_request(&get(&served.url, "x")).await;
        assert_eq!(second.unwrap().status(), StatusCode::Ok);
        assert_eq!(connections_of(&mut served.heads, 2), [0, 1]);
    }

    #[tokio::test]
    async fn concurrent_requests_open_their_own_connections_and_each_returns_to_the_pool() {
        // The server answers only once both requests are in: one connection for both would
        // never be answered.
        let mut served = answering_pairs().await;
        let transport = plain(Duration::from_secs(10), 1024);
        for _ in 0..2 {
            two_at_once(&transport, &served.url).await;
            assert_eq!(idle_count(&transport), 2);
            let mut connections = connections_of(&mut served.heads, 2);
            connections.sort_unstable();
            // The second pair goes on the two connections the first opened.
            assert_eq!(connections, [0, 1]);
        }
    }

    #[tokio::test]
    async fn no_more_idle_connections_are_kept_than_the_limit() {
        let served = answering_pairs().await;
        let mut transport = plain(Duration::from_secs(10), 1024);
        Arc::get_mut(&mut transport.pool).unwrap().max_idle = 1;
        two_at_once(&transport, &served.url).await;
        assert_eq!(idle_count(&transport), 1);
    }

    /// A server that answers only once two requests are in, so two requests sent at once need
    /// two connections.
    async fn answering_pairs() -> Served {
        server_with(
            Some(OK),
            Behaviour {
                answer_once_seen: 2,
                ..Behaviour::default()
            },
        )
        .await
    }

    /// Sends two requests at once and checks both are answered 200.
    async fn two_at_once(transport: &DirectTransport, url: &Url) {
        let (first, second) = (get(url, "a"), get(url, "b"));
        let (a, b) = tokio::join!(
            transport.execute_request(&first),
            transport.execute_request(&second),
        );
        assert_eq!(a.unwrap().status(), StatusCode::Ok);
        assert_eq!(b.unwrap().status(), StatusCode::Ok);
    }

    #[tokio::test]
    async fn an_idle_connection_past_the_idle_limit_is_not_reused() {
        let mut served = server_with(Some(OK), Behaviour::default()).await;
        let transport = plain_idle_for(Duration::from_secs(10), 1024, Duration::ZERO);
        for _ in 0..2 {
            let response = transport.execute_request(&get(&served.url, "x")).await;
            assert_eq!(response.unwrap().status(), StatusCode::Ok);
        }
        assert_eq!(connections_of(&mut served.heads, 2), [0, 1]);
    }

    #[tokio::test]
    async fn an_idle_connection_is_closed_once_its_idle_limit_is_up() {
        let mut served = server_with(Some(OK), Behaviour::default()).await;
        let transport = plain_idle_for(Duration::from_secs(10), 1024, Duration::from_millis(50));
        let response = transport.execute_request(&get(&served.url, "x")).await;
        assert_eq!(response.unwrap().status(), StatusCode::Ok);
        // No further request comes: the pool's timer closes it (the server sees it closed).
        let closed = tokio::time::timeout(Duration::from_secs(30), served.closed.recv()).await;
        assert_eq!(
            closed.expect("the idle connection was never closed"),
            Some(0)
        );
        assert_eq!(idle_count(&transport), 0);
    }

    #[tokio::test]
    async fn a_connection_closed_before_the_answer_fails_without_the_token_in_the_error() {
        let served = server_with(
            Some(b""),
            Behaviour {
                close_after_answer: true,
                ..Behaviour::default()
            },
        )
        .await;
        let transport = plain(Duration::from_secs(10), 1024);
        let error = transport
            .execute_request(&get(&served.url, "x"))
            .await
            .unwrap_err();
        assert!(matches!(error.kind(), ErrorKind::Io), "{error:?}");
        assert!(matches!(Failure::from_sdk(&error), Failure::Transport(_)));
        let described = format!("{error} {error:?}");
        assert!(!described.contains("not-a-real-token"), "{described}");
        assert_eq!(idle_count(&transport), 0);
    }
}
