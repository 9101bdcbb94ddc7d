//! A direct HTTP/1.1 transport for the Azure SDK clients: hyper's pooled client over rustls,
//! without reqwest in between.
//!
//! reqwest was about a third of an uncached secret read's instructions (docs/performance.md,
//! *GetSecret*): converting the SDK's request into its own, its tower layers, and its redirect
//! layer parsing every request URL (and the response's) again although redirects are off. This
//! transport hands the SDK's request to hyper as it is and reads the answer whole. It keeps what
//! the reqwest transport ([`crate::clients::http`]) guarantees: the same rustls configuration and
//! trust roots (loaded lazily, off the start-up path), https only, kept-alive connections, a
//! connect timeout and a timeout on every request, no redirects, no decompression, and the same
//! error kinds, so a failure is classified exactly as before ([`crate::clients::failure`]). It also
//! caps the answer's size. It never goes through a proxy: the caller picks it only for a service
//! no proxy variable applies to ([`crate::net::proxy_applies`]).

use crate::clients::http::HttpSettings;
use async_trait::async_trait;
use azure_core::{
    error::{Error, ErrorKind},
    http::{
        AsyncRawResponse, HttpClient, Method, Request,
        headers::{HeaderName, HeaderValue, Headers},
        request::Body,
    },
};
use bytes::Bytes;
use http_body_util::{BodyExt as _, Full, LengthLimitError, Limited};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::{Client, connect::HttpConnector};
use hyper_util::rt::{TokioExecutor, TokioTimer};
use std::{collections::HashMap, fmt, io, time::Duration};

/// The largest answer read from a service (a Key Vault secret is at most 25 KB; its JSON with
/// attributes and tags stays far below this).
pub const MAX_RESPONSE_BYTES: usize = 1024 * 1024;

/// How long an idle pooled connection is kept (reqwest's default, which the transport before
/// this one used).
const POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(90);

/// See the module docs. Cheap to share behind an `Arc`; its connection pool is shared by clones
/// of the SDK client that hold it.
pub struct DirectTransport {
    client: Client<HttpsConnector<HttpConnector>, Full<Bytes>>,
    request_timeout: Duration,
    max_response_bytes: usize,
}

impl fmt::Debug for DirectTransport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DirectTransport")
            .field("request_timeout", &self.request_timeout)
            .field("max_response_bytes", &self.max_response_bytes)
            .finish_non_exhaustive()
    }
}

impl DirectTransport {
    /// An https-only transport trusting what `tls` trusts (the process's lazily loaded roots in
    /// production), with the timeouts of `settings`.
    pub fn new(settings: &HttpSettings, tls: rustls::ClientConfig) -> Self {
        Self::build(settings, tls, false, MAX_RESPONSE_BYTES)
    }

    fn build(
        settings: &HttpSettings,
        tls: rustls::ClientConfig,
        allow_plain_http: bool,
        max_response_bytes: usize,
    ) -> Self {
        let mut tcp = HttpConnector::new();
        // The scheme is checked by the TLS layer (https only), which needs the TCP layer to let
        // https URLs through.
        tcp.enforce_http(false);
        tcp.set_connect_timeout(Some(settings.connect_timeout));
        tcp.set_nodelay(true);
        // The configuration as it is (its builder would refuse the ALPN `http/1.1` the other
        // clients offer).
        let mut connector = HttpsConnector::from((tcp, tls));
        if !allow_plain_http {
            connector.enforce_https();
        }
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(POOL_IDLE_TIMEOUT)
            .pool_timer(TokioTimer::new())
            .build(connector);
        Self {
            client,
            request_timeout: settings.request_timeout,
            max_response_bytes,
        }
    }

    async fn send(
        &self,
        request: hyper::Request<Full<Bytes>>,
    ) -> azure_core::Result<AsyncRawResponse> {
        let response = self.client.request(request).await.map_err(|error| {
            // The same kinds reqwest's transport gives: the SDK retries both.
            let kind = if error.is_connect() {
                ErrorKind::Connection
            } else {
                ErrorKind::Io
            };
            Error::with_error(kind, error, "the request could not be sent")
        })?;
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
        Ok(AsyncRawResponse::from_bytes(
            parts.status.as_u16().into(),
            to_sdk_headers(&parts.headers),
            body,
        ))
    }
}

#[async_trait]
impl HttpClient for DirectTransport {
    async fn execute_request(&self, request: &Request) -> azure_core::Result<AsyncRawResponse> {
        let outgoing = to_hyper_request(request)?;
        match tokio::time::timeout(self.request_timeout, self.send(outgoing)).await {
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

/// The SDK's request as hyper's: the URL's text as the URI, every header, the body's bytes.
fn to_hyper_request(request: &Request) -> azure_core::Result<hyper::Request<Full<Bytes>>> {
    let body = match request.body() {
        Body::Bytes(bytes) => Full::new(bytes.clone()),
        Body::SeekableStream(_) => {
            return Err(Error::with_message(
                ErrorKind::Other,
                "the direct transport sends whole bodies only, not streams",
            ));
        }
    };
    let mut builder = hyper::Request::builder()
        .method(to_hyper_method(request.method())?)
        .uri(request.url().as_str());
    if let Some(headers) = builder.headers_mut() {
        headers.reserve(request.headers().iter().size_hint().0);
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
        let tls = TrustRoots::new().client_config();
        DirectTransport::build(&settings(request_timeout), tls, true, max_response_bytes)
    }

    /// A server that answers every request on every connection with `answer` (`None`: never
    /// answers), and reports each request head it read, numbered by its connection.
    async fn server(
        answer: Option<&'static [u8]>,
    ) -> (Url, mpsc::UnboundedReceiver<(usize, String)>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = Url::parse(&format!("http://{}/", listener.local_addr().unwrap())).unwrap();
        let (heads, received) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            for connection in 0.. {
                let Ok((mut socket, _)) = listener.accept().await else {
                    return;
                };
                let heads = heads.clone();
                tokio::spawn(async move {
                    let mut buffer = Vec::new();
                    let mut chunk = [0u8; 4096];
                    loop {
                        let Ok(read) = socket.read(&mut chunk).await else {
                            return;
                        };
                        if read == 0 {
                            return;
                        }
                        buffer.extend_from_slice(&chunk[..read]);
                        while let Some(end) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
                            let head: Vec<u8> = buffer.drain(..end + 4).collect();
                            let _ = heads
                                .send((connection, String::from_utf8_lossy(&head).into_owned()));
                            match answer {
                                Some(answer) => socket.write_all(answer).await.unwrap(),
                                None => std::future::pending::<()>().await,
                            }
                        }
                    }
                });
            }
        });
        (url, received)
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
}
