//! Socket-free fakes for the client tests: azure_core's `HttpClient` recording every request in
//! the one [`Recorder`] and answering from a script, and a `TokenCredential` that counts its calls.

use std::sync::{
    Arc, Mutex,
    atomic::{AtomicUsize, Ordering},
};

use async_trait::async_trait;
use azure_core::{
    credentials::{AccessToken, TokenCredential, TokenRequestOptions},
    error::ErrorKind,
    http::{AsyncRawResponse, Body, HttpClient, Request, StatusCode, headers::Headers},
    time::{Duration as SdkDuration, OffsetDateTime},
};

use crate::recorder::{Recorded, Recorder, Reply};

/// The token the fake credential hands out.
pub const TOKEN: &str = "fake-access-token-value";

/// What the fake does with a request.
pub enum Action {
    /// Answer.
    Reply(Reply),
    /// Never answer (for timeout tests).
    Hang,
}

type Script = dyn Fn(&Recorded) -> Action + Send + Sync;

/// A fake service behind azure_core's `HttpClient`: records, yields once (so concurrent callers
/// really interleave, as they would on a network), then answers from the script.
#[derive(Clone)]
pub struct FakeService {
    /// What it received.
    pub recorder: Recorder,
    script: Arc<Script>,
}

impl std::fmt::Debug for FakeService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("FakeService")
    }
}

impl FakeService {
    /// A fake answering with `script`.
    pub fn new(script: impl Fn(&Recorded) -> Action + Send + Sync + 'static) -> Self {
        Self {
            recorder: Recorder::default(),
            script: Arc::new(script),
        }
    }

    /// Every request so far.
    pub fn requests(&self) -> Vec<Recorded> {
        self.recorder.requests()
    }

    /// How many requests so far.
    pub fn count(&self) -> usize {
        self.recorder.count()
    }

    /// How many requests came without an Authorization header.
    pub fn unauthenticated_count(&self) -> usize {
        self.recorder.unauthenticated_count()
    }

    /// Forgets every request so far.
    pub fn clear(&self) {
        self.recorder.clear();
    }
}

fn record(request: &Request) -> Recorded {
    let url = request.url();
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
        origin: url.origin().ascii_serialization(),
        target: url[url::Position::BeforePath..].to_string(),
        headers,
        body,
    }
}

#[async_trait]
impl HttpClient for FakeService {
    async fn execute_request(&self, request: &Request) -> azure_core::Result<AsyncRawResponse> {
        let recorded = record(request);
        self.recorder.record(recorded.clone());
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
    /// A credential that always succeeds.
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    /// Fails the next `n` calls with a credential error.
    pub fn failing(n: usize) -> Arc<Self> {
        let credential = Self::default();
        credential.failures_left.store(n, Ordering::SeqCst);
        Arc::new(credential)
    }

    /// How many tokens were asked for.
    pub fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }

    /// Every scope asked for, in order.
    pub fn scopes(&self) -> Vec<String> {
        self.scopes.lock().expect("scopes").clone()
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
            .expect("scopes")
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

/// Asserts that `build` refuses each of `bad` with an error `expected` accepts: the check a client's
/// constructor gets for the URLs it must not take. A failure names the input.
pub fn assert_each_refused<T, E: std::fmt::Debug>(
    bad: &[&str],
    build: impl Fn(&str) -> Result<T, E>,
    expected: impl Fn(&E) -> bool,
) {
    for input in bad {
        match build(input) {
            Ok(_) => panic!("{input:?} was accepted"),
            Err(error) => assert!(expected(&error), "{input:?}: {error:?}"),
        }
    }
}
