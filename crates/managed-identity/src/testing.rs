//! Test support: a scripted token endpoint on the test kit's recording server, and an in-memory
//! transport for tests on a paused clock.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use test_kit::recorder::Reply;
use test_kit::server::FakeServer;
use tokio::sync::Semaphore;
use tokio::time::Instant;

use super::config::{IdentityConfig, Timing};
use super::retry::RetryPolicy;
use super::transport::{HttpRequest, HttpResponse, Transport, TransportError};

/// A fake token endpoint on 127.0.0.1 (the test kit's recording server) that answers request
/// number n (0-based) with `replies[n]`, repeating the last one.
pub(crate) async fn scripted_endpoint(replies: Vec<Reply>) -> FakeServer {
    let next = AtomicUsize::new(0);
    FakeServer::http(move |_| {
        let index = next.fetch_add(1, Ordering::SeqCst);
        replies[index.min(replies.len() - 1)].clone()
    })
    .await
}

/// An answer with a JSON body, as the token endpoints send.
pub(crate) fn json_reply(status: u16, body: impl Into<Vec<u8>>) -> Reply {
    Reply::new(status)
        .header("Content-Type", "application/json")
        .body(body)
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
