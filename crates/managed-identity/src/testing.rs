//! Test support: a tiny HTTP/1.1 endpoint on 127.0.0.1 that records requests and replays
//! scripted answers, and an in-memory transport for tests on a paused clock.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::config::{IdentityConfig, Timing};
use super::retry::RetryPolicy;
use super::transport::{HttpRequest, HttpResponse, Transport, TransportError};

/// A request as the fake endpoint received it. Header names are lower-cased.
#[derive(Debug, Clone)]
pub(crate) struct Recorded {
    pub(crate) method: String,
    pub(crate) target: String,
    pub(crate) headers: Vec<(String, String)>,
}

impl Recorded {
    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub(crate) fn path(&self) -> &str {
        self.target.split('?').next().unwrap_or("")
    }

    pub(crate) fn query(&self) -> &str {
        self.target.split_once('?').map_or("", |(_, q)| q)
    }
}

/// A scripted answer.
#[derive(Debug, Clone)]
pub(crate) struct Reply {
    pub(crate) status: u16,
    pub(crate) headers: Vec<(String, String)>,
    pub(crate) body: String,
}

impl Reply {
    pub(crate) fn new(status: u16, body: impl Into<String>) -> Self {
        Self {
            status,
            headers: vec![("Content-Type".into(), "application/json".into())],
            body: body.into(),
        }
    }

    pub(crate) fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }
}

type Handler = dyn Fn(&Recorded, usize) -> Reply + Send + Sync;

/// The fake endpoint. Dropping it stops the server.
pub(crate) struct FakeEndpoint {
    pub(crate) base: String,
    requests: Arc<Mutex<Vec<Recorded>>>,
    task: JoinHandle<()>,
}

impl Drop for FakeEndpoint {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl FakeEndpoint {
    /// Answers request number n (0-based) with `replies[n]`, repeating the last one.
    pub(crate) async fn scripted(replies: Vec<Reply>) -> Self {
        Self::start(move |_, n| replies[n.min(replies.len() - 1)].clone()).await
    }

    pub(crate) async fn start(
        handler: impl Fn(&Recorded, usize) -> Reply + Send + Sync + 'static,
    ) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let requests = Arc::new(Mutex::new(Vec::new()));
        let handler: Arc<Handler> = Arc::new(handler);
        let recorded = requests.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((mut stream, _)) = listener.accept().await else {
                    return;
                };
                let recorded = recorded.clone();
                let handler = handler.clone();
                tokio::spawn(async move {
                    let Some(request) = read_request(&mut stream).await else {
                        return;
                    };
                    let index = {
                        let mut all = recorded.lock().unwrap();
                        all.push(request.clone());
                        all.len() - 1
                    };
                    let reply = handler(&request, index);
                    let mut head = format!(
                        "HTTP/1.1 {} Scripted\r\nContent-Length: {}\r\nConnection: close\r\n",
                        reply.status,
                        reply.body.len()
                    );
                    for (name, value) in &reply.headers {
                        head.push_str(&format!("{name}: {value}\r\n"));
                    }
                    head.push_str("\r\n");
                    let _ = stream.write_all(head.as_bytes()).await;
                    let _ = stream.write_all(reply.body.as_bytes()).await;
                    let _ = stream.shutdown().await;
                });
            }
        });
        Self {
            base,
            requests,
            task,
        }
    }

    pub(crate) fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub(crate) fn requests(&self) -> Vec<Recorded> {
        self.requests.lock().unwrap().clone()
    }
}

async fn read_request(stream: &mut tokio::net::TcpStream) -> Option<Recorded> {
    let mut buffer = Vec::new();
    let mut chunk = [0u8; 4096];
    while !buffer.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = stream.read(&mut chunk).await.ok()?;
        if n == 0 || buffer.len() > 64 * 1024 {
            return None;
        }
        buffer.extend_from_slice(&chunk[..n]);
    }
    let text = String::from_utf8_lossy(&buffer);
    let mut lines = text.split("\r\n");
    let mut request_line = lines.next()?.split(' ');
    let method = request_line.next()?.to_owned();
    let target = request_line.next()?.to_owned();
    let headers = lines
        .take_while(|l| !l.is_empty())
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    Some(Recorded {
        method,
        target,
        headers,
    })
}

/// A success body with the given token and epoch expiry (as a string, like App Service).
pub(crate) fn token_body(token: &str, expires_on: i64) -> String {
    format!(
        r#"{{"access_token":"{token}","expires_on":"{expires_on}","resource":"https://vault.azure.net","token_type":"Bearer","client_id":"c1"}}"#
    )
}

/// Looks up settings in a fixed list.
pub(crate) fn config_from(vars: &[(&str, &str)]) -> IdentityConfig {
    let map: HashMap<String, String> = vars
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    IdentityConfig::from_lookup(|name| map.get(name).cloned())
        .unwrap()
        .with_timing(fast_timing())
}

/// Millisecond back-offs, no jitter, short deadlines: tests run fast on a real clock.
pub(crate) fn fast_timing() -> Timing {
    use std::time::Duration;
    Timing {
        connect_timeout: Duration::from_secs(2),
        request_timeout: Duration::from_secs(5),
        deadline: Duration::from_secs(10),
        cli_timeout: Duration::from_secs(5),
        refresh_failure_backoff: Duration::from_secs(30),
        retry: RetryPolicy {
            base_delay: Duration::from_millis(1),
            max_delay: Duration::from_millis(4),
            max_retries: 3,
            imds_max_retries: 5,
            gone_delay: Duration::from_millis(2),
            gone_budget: Duration::from_millis(20),
            retry_after_cap: Duration::from_secs(10),
            jitter: false,
        },
        ..Timing::default()
    }
}

type Script = dyn Fn(&HttpRequest, usize) -> Result<HttpResponse, TransportError> + Send + Sync;

/// In-memory transport: answers from a script, records each request with its (tokio) time, and
/// can hold requests at a gate until the test releases them.
pub(crate) struct ScriptedTransport {
    script: Box<Script>,
    pub(crate) requests: Mutex<Vec<(HttpRequest, Instant)>>,
    gate: Option<Arc<Semaphore>>,
    in_flight: AtomicUsize,
    pub(crate) max_in_flight: AtomicUsize,
}

impl std::fmt::Debug for ScriptedTransport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ScriptedTransport")
    }
}

impl ScriptedTransport {
    pub(crate) fn new(
        script: impl Fn(&HttpRequest, usize) -> Result<HttpResponse, TransportError>
        + Send
        + Sync
        + 'static,
    ) -> Arc<Self> {
        Arc::new(Self {
            script: Box::new(script),
            requests: Mutex::new(Vec::new()),
            gate: None,
            in_flight: AtomicUsize::new(0),
            max_in_flight: AtomicUsize::new(0),
        })
    }

    /// Like `new`, but every request waits for a permit on the returned semaphore.
    pub(crate) fn gated(
        script: impl Fn(&HttpRequest, usize) -> Result<HttpResponse, TransportError>
        + Send
        + Sync
        + 'static,
    ) -> (Arc<Self>, Arc<Semaphore>) {
        let gate = Arc::new(Semaphore::new(0));
        let transport = Arc::new(Self {
            script: Box::new(script),
            requests: Mutex::new(Vec::new()),
            gate: Some(gate.clone()),
            in_flight: AtomicUsize::new(0),
            max_in_flight: AtomicUsize::new(0),
        });
        (transport, gate)
    }

    /// Answers each request with the next entry, repeating the last.
    pub(crate) fn sequence(replies: Vec<Result<HttpResponse, TransportError>>) -> Arc<Self> {
        Self::new(move |_, n| replies[n.min(replies.len() - 1)].clone())
    }

    pub(crate) fn count(&self) -> usize {
        self.requests.lock().unwrap().len()
    }

    pub(crate) fn times(&self) -> Vec<Instant> {
        self.requests
            .lock()
            .unwrap()
            .iter()
            .map(|(_, t)| *t)
            .collect()
    }
}

#[async_trait]
impl Transport for ScriptedTransport {
    async fn get(&self, request: &HttpRequest) -> Result<HttpResponse, TransportError> {
        let index = {
            let mut all = self.requests.lock().unwrap();
            all.push((request.clone(), Instant::now()));
            all.len() - 1
        };
        let now = self.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        self.max_in_flight.fetch_max(now, Ordering::SeqCst);
        if let Some(gate) = &self.gate {
            gate.acquire().await.unwrap().forget();
        }
        self.in_flight.fetch_sub(1, Ordering::SeqCst);
        (self.script)(request, index)
    }
}

/// An HTTP answer for the scripted transport.
pub(crate) fn response(status: u16, body: &str) -> Result<HttpResponse, TransportError> {
    Ok(HttpResponse {
        status,
        retry_after: None,
        body: body.as_bytes().to_vec(),
    })
}
