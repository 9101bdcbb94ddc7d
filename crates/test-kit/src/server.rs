//! A recording fake HTTP server on 127.0.0.1 (an ephemeral port): every request it receives is
//! kept in a [`Recorder`], so a test can assert that a refusal cost zero requests, and a scripted
//! [`Reply`] goes back, late or chunked when the test asks. Plain HTTP (a downstream API, a token
//! endpoint, a JWKS on loopback) or HTTPS with the test PKI's leaf (a Storage account or a vault,
//! which the handler only reaches over https). [`storage_account`] scripts an in-memory blob
//! account.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpListener;

use crate::recorder::{Recorded, Recorder, Reply};

/// Largest request the fake reads (head and body).
const MAX_REQUEST_BYTES: usize = 64 * 1024 * 1024;

type Script = Arc<dyn Fn(&Recorded) -> Reply + Send + Sync>;

/// A running fake, until the test's runtime ends.
pub struct FakeServer {
    /// `http://127.0.0.1:<port>` or `https://127.0.0.1:<port>`.
    pub base: String,
    /// What it received.
    pub recorder: Recorder,
}

impl FakeServer {
    /// Plain HTTP, answering with `script`.
    pub async fn http(script: impl Fn(&Recorded) -> Reply + Send + Sync + 'static) -> Self {
        Self::start(None, Arc::new(script)).await
    }

    /// HTTPS with the leaf certificate of the test PKI in `pki_dir` (`leaf.pem`, `leaf.key`, as
    /// `emulators pki` and [`crate::pki::TestPki`] write them), answering with `script`.
    pub async fn https(
        pki_dir: &Path,
        script: impl Fn(&Recorded) -> Reply + Send + Sync + 'static,
    ) -> Self {
        let config = crate::pki::server_config(pki_dir);
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        Self::start(Some(acceptor), Arc::new(script)).await
    }

    async fn start(tls: Option<tokio_rustls::TlsAcceptor>, script: Script) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let scheme = if tls.is_some() { "https" } else { "http" };
        let recorder = Recorder::default();
        let log = recorder.clone();
        tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let (tls, script, log) = (tls.clone(), script.clone(), log.clone());
                tokio::spawn(async move {
                    match tls {
                        Some(acceptor) => {
                            if let Ok(stream) = acceptor.accept(tcp).await {
                                serve_one(stream, scheme, &script, &log).await;
                            }
                        }
                        None => serve_one(tcp, scheme, &script, &log).await,
                    }
                });
            }
        });
        Self {
            base: format!("{scheme}://127.0.0.1:{port}"),
            recorder,
        }
    }

    /// Every request received so far.
    pub fn requests(&self) -> Vec<Recorded> {
        self.recorder.requests()
    }

    /// How many requests arrived so far.
    pub fn count(&self) -> usize {
        self.recorder.count()
    }

    /// How many requests had exactly this path (query ignored).
    pub fn hits(&self, path: &str) -> usize {
        self.recorder.hits(path)
    }
}

/// Reads one request, records it, answers it and closes the connection.
async fn serve_one(
    mut stream: impl AsyncRead + AsyncWrite + Unpin,
    scheme: &str,
    script: &Script,
    log: &Recorder,
) {
    let Some(request) = read_request(&mut stream, scheme).await else {
        return;
    };
    log.record(request.clone());
    let reply = script(&request);
    tokio::time::sleep(reply.delay).await;
    let mut head = format!("HTTP/1.1 {} Fake\r\nconnection: close\r\n", reply.status);
    for (name, value) in &reply.headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    if reply.chunked {
        head.push_str("transfer-encoding: chunked\r\n\r\n");
        let _ = stream.write_all(head.as_bytes()).await;
        for chunk in reply.body.chunks(64 * 1024) {
            let _ = stream
                .write_all(format!("{:x}\r\n", chunk.len()).as_bytes())
                .await;
            let _ = stream.write_all(chunk).await;
            let _ = stream.write_all(b"\r\n").await;
        }
        let _ = stream.write_all(b"0\r\n\r\n").await;
    } else {
        head.push_str(&format!("content-length: {}\r\n\r\n", reply.body.len()));
        let _ = stream.write_all(head.as_bytes()).await;
        let _ = stream.write_all(&reply.body).await;
    }
    let _ = stream.shutdown().await;
}

async fn read_request(stream: &mut (impl AsyncRead + Unpin), scheme: &str) -> Option<Recorded> {
    let mut buffer = Vec::new();
    let mut chunk = vec![0u8; 64 * 1024];
    let head_end = loop {
        if let Some(end) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
            break end;
        }
        let read = stream.read(&mut chunk).await.ok().filter(|n| *n > 0)?;
        buffer.extend_from_slice(&chunk[..read]);
        if buffer.len() > MAX_REQUEST_BYTES {
            return None;
        }
    };
    let head = String::from_utf8_lossy(&buffer[..head_end]).into_owned();
    let mut lines = head.split("\r\n");
    let mut request_line = lines.next()?.split(' ');
    let method = request_line.next()?.to_owned();
    let target = request_line.next()?.to_owned();
    let headers: Vec<(String, String)> = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(name, value)| (name.trim().to_ascii_lowercase(), value.trim().to_owned()))
        .collect();
    let length: usize = headers
        .iter()
        .find(|(name, _)| name == "content-length")
        .and_then(|(_, value)| value.parse().ok())
        .unwrap_or(0);
    let mut body = buffer[head_end + 4..].to_vec();
    while body.len() < length.min(MAX_REQUEST_BYTES) {
        let read = stream.read(&mut chunk).await.ok().filter(|n| *n > 0)?;
        body.extend_from_slice(&chunk[..read]);
    }
    let host = headers
        .iter()
        .find(|(name, _)| name == "host")
        .map_or("127.0.0.1", |(_, value)| value.as_str());
    Some(Recorded {
        method,
        origin: format!("{scheme}://{host}"),
        target,
        headers,
        body,
    })
}

/// A Storage account in memory, as far as WriteBlob and ReadBlob use it: Create Container, Put
/// Blob (with `x-ms-blob-content-type`) and Get Blob (with `x-ms-range`). Paths are
/// `/<account>/<container>/<blob>`, kept as the client encoded them.
pub fn storage_account() -> impl Fn(&Recorded) -> Reply + Send + Sync + 'static {
    let blobs: Mutex<HashMap<String, (Vec<u8>, String)>> = Mutex::default();
    move |request| {
        let segments = request
            .path()
            .trim_start_matches('/')
            .splitn(3, '/')
            .count();
        let is_container = request
            .query()
            .is_some_and(|q| q.contains("restype=container"));
        let mut blobs = blobs.lock().expect("blobs");
        match (request.method.as_str(), is_container, segments) {
            ("PUT", true, _) => Reply::new(201).header("etag", "\"0x1\""),
            ("PUT", false, 3) => {
                let content_type = request
                    .header("x-ms-blob-content-type")
                    .unwrap_or("application/octet-stream")
                    .to_owned();
                blobs.insert(
                    request.path().to_owned(),
                    (request.body.clone(), content_type),
                );
                Reply::new(201).header("etag", "\"0x1\"")
            }
            ("GET", false, 3) => match blobs.get(request.path()) {
                Some((bytes, content_type)) => {
                    let end = bytes.len().saturating_sub(1);
                    Reply::new(206)
                        .header("content-type", content_type)
                        .header("content-range", &format!("bytes 0-{end}/{}", bytes.len()))
                        .header("etag", "\"0x1\"")
                        .header("x-ms-blob-type", "BlockBlob")
                        .body(bytes.clone())
                }
                None => storage_error(404, "BlobNotFound"),
            },
            _ => storage_error(400, "UnsupportedHttpVerb"),
        }
    }
}

/// A Storage error answer: the code in `x-ms-error-code` and in the XML body, as the service sends it.
pub fn storage_error(status: u16, code: &str) -> Reply {
    Reply::new(status)
        .header("x-ms-error-code", code)
        .header("content-type", "application/xml")
        .body(format!(
            "<?xml version=\"1.0\" encoding=\"utf-8\"?><Error><Code>{code}</Code><Message>fake</Message></Error>"
        ))
}
