//! Socket-free fakes for the client tests: an `HttpClient` that records every request and answers
//! from a script, and a `TokenCredential` that counts its calls.
#![allow(dead_code)]

pub mod tls;

use async_trait::async_trait;
use azure_core::{
    credentials::{AccessToken, TokenCredential, TokenRequestOptions},
    error::ErrorKind,
    http::{AsyncRawResponse, Body, HttpClient, Request, StatusCode, headers::Headers},
    time::{Duration as SdkDuration, OffsetDateTime},
};
use handler::clients::http::{AzureHttp, HttpSettings};
use std::{
    collections::HashMap,
    sync::{
        Arc, Mutex,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};
use url::Url;

/// The token the fake credential hands out.
pub const TOKEN: &str = "fake-access-token-value";

/// One request as the fake transport saw it.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub method: String,
    pub url: Url,
    pub headers: HashMap<String, String>,
    pub body: Vec<u8>,
}

impl Recorded {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(String::as_str)
    }

    pub fn is_authorized(&self) -> bool {
        self.header("authorization").is_some()
    }

    /// The path, percent-decoded, split on '/', without empty segments.
    pub fn path_segments(&self) -> Vec<String> {
        self.url
            .path()
            .split('/')
            .filter(|s| !s.is_empty())
            .map(percent_decode)
            .collect()
    }

    pub fn query(&self, key: &str) -> Option<String> {
        self.url
            .query_pairs()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.into_owned())
    }
}

fn percent_decode(segment: &str) -> String {
    url::form_urlencoded::parse(format!("x={}", segment.replace('+', "%2B")).as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default()
}

/// A scripted answer.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Reply {
    pub fn new(status: u16) -> Self {
        Self {
            status,
            headers: Vec::new(),
            body: Vec::new(),
        }
    }

    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.to_string(), value.to_string()));
        self
    }

    pub fn body(mut self, body: impl Into<Vec<u8>>) -> Self {
        self.body = body.into();
        self
    }

    pub fn json(self, body: serde_json::Value) -> Self {
        self.header("content-type", "application/json")
            .body(body.to_string())
    }
}

/// What the fake does with a request.
pub enum Action {
    Reply(Reply),
    /// Never answer (for timeout tests).
    Hang,
}

type Script = dyn Fn(&Recorded) -> Action + Send + Sync;

/// A fake service behind azure_core's `HttpClient`: records, yields once (so concurrent callers
/// really interleave, as they would on a network), then answers from the script.
#[derive(Clone)]
pub struct FakeService {
    log: Arc<Mutex<Vec<Recorded>>>,
    script: Arc<Script>,
}

impl std::fmt::Debug for FakeService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("FakeService")
    }
}

impl FakeService {
    pub fn new(script: impl Fn(&Recorded) -> Action + Send + Sync + 'static) -> Self {
        Self {
            log: Arc::default(),
            script: Arc::new(script),
        }
    }

    pub fn requests(&self) -> Vec<Recorded> {
        self.log.lock().unwrap().clone()
    }

    pub fn count(&self) -> usize {
        self.log.lock().unwrap().len()
    }

    pub fn unauthenticated_count(&self) -> usize {
        self.requests()
            .iter()
            .filter(|r| !r.is_authorized())
            .count()
    }

    pub fn clear(&self) {
        self.log.lock().unwrap().clear();
    }

    /// Plumbing for the clients with this fake as transport and fast, short retries.
    pub fn http(&self) -> AzureHttp {
        AzureHttp::with_client(Arc::new(self.clone()), test_settings())
    }
}

/// Settings for tests: production timeouts, two retries with a 1 ms pause.
pub fn test_settings() -> HttpSettings {
    HttpSettings {
        retry_delay: Duration::from_millis(1),
        ..HttpSettings::default()
    }
}

fn record(request: &Request) -> Recorded {
    let headers = request
        .headers()
        .iter()
        .map(|(k, v)| (k.as_str().to_ascii_lowercase(), v.as_str().to_string()))
        .collect();
    let body = match request.body() {
        Body::Bytes(bytes) => bytes.to_vec(),
        Body::SeekableStream(_) => b"<stream>".to_vec(),
    };
    Recorded {
        method: request.method().to_string(),
        url: request.url().clone(),
        headers,
        body,
    }
}

#[async_trait]
impl HttpClient for FakeService {
    async fn execute_request(&self, request: &Request) -> azure_core::Result<AsyncRawResponse> {
        let recorded = record(request);
        self.log.lock().unwrap().push(recorded.clone());
        tokio::task::yield_now().await;
        match (self.script)(&recorded) {
            Action::Reply(reply) => Ok(to_response(reply)),
            Action::Hang => std::future::pending().await,
        }
    }
}

fn to_response(reply: Reply) -> AsyncRawResponse {
    let mut headers = Headers::new();
    for (name, value) in reply.headers {
        headers.insert(name, value);
    }
    AsyncRawResponse::from_bytes(StatusCode::from(reply.status), headers, reply.body)
}

/// A credential that counts calls, records the scopes asked for, and can be told to fail.
#[derive(Debug, Default)]
pub struct FakeCredential {
    calls: AtomicUsize,
    scopes: Mutex<Vec<String>>,
    failures_left: AtomicUsize,
}

impl FakeCredential {
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    /// Fails the next `n` calls with a credential error.
    pub fn failing(n: usize) -> Arc<Self> {
        let credential = Self::default();
        credential.failures_left.store(n, Ordering::SeqCst);
        Arc::new(credential)
    }

    pub fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }

    pub fn scopes(&self) -> Vec<String> {
        self.scopes.lock().unwrap().clone()
    }
}

#[async_trait]
impl TokenCredential for FakeCredential {
    async fn get_token(
        &self,
        scopes: &[&str],
        _options: Option<TokenRequestOptions<'_>>,
    ) -> azure_core::Result<AccessToken> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        self.scopes
            .lock()
            .unwrap()
            .extend(scopes.iter().map(|s| s.to_string()));
        let failing = self
            .failures_left
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok();
        if failing {
            return Err(azure_core::Error::with_message(
                ErrorKind::Credential,
                "managed identity endpoint unavailable (fake)",
            ));
        }
        Ok(AccessToken::new(
            TOKEN.to_string(),
            OffsetDateTime::now_utc() + SdkDuration::hours(1),
        ))
    }
}
