//! The HTTP server. Connections and their limits are hyper's connection loop; routing is a warp
//! filter tree, served on each connection as a service: readiness (`GET /`), JSON-mode
//! invocations (`POST /{FunctionName}`) and forwarded requests (`/{routePrefix}/{route}`), with
//! the route decided by `dispatch` (which knows every function.json route); what each does is in
//! `dispatch`.
//!
//! Every request is held to limits (the repository's README.md, "Request limits"): the head must
//! arrive within the header timeout (which also closes a kept-alive connection idle that long); the
//! body within the body timeout and under the function's own limit, checked from Content-Length
//! before any byte is read and again while reading; at most `max_in_flight` invocations run at once
//! (more are answered 503 with Retry-After before their body is read); at most `max_connections`
//! connections are open (more wait in the listen backlog). On shutdown, idle connections and
//! connections still sending a head are closed at once; running invocations finish.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::convert::Infallible;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::{Buf, BufMut as _, Bytes, BytesMut};
use futures::{Stream, StreamExt as _};
use hyper::body::{Frame, Incoming};
use hyper::header::{HeaderName, HeaderValue};
use hyper::{HeaderMap, Method, Request, StatusCode};
use hyper_util::rt::TokioIo;
use serde::de::{Deserialize, Deserializer, MapAccess, Visitor};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, watch};
use tokio::task::JoinSet;
use tokio::time::Instant;
use tower_service::Service as _;
use warp::Filter;
use warp::path::FullPath;
use warp::reply::{Reply as _, Response};

use crate::dispatch::{Answer, Body, ForwardedRequest, INVOCATION_ID, Route, Runtime};
use crate::failure::RuntimeError;
use crate::http::{Headers, ResponseHeaders};

/// The limits the server holds every connection and request to. The names in parentheses are
/// the app settings a binary conventionally reads them from (the Overloaded and BodyTimeout
/// messages name them).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Invocations running at once (`MAX_CONCURRENT_INVOCATIONS`); more get 503 + Retry-After.
    pub max_in_flight: usize,
    /// Connections open at once (`MAX_CONNECTIONS`); more wait in the listen backlog.
    pub max_connections: usize,
    /// Time to receive a request head, also the idle limit of a kept-alive connection
    /// (`REQUEST_HEADER_TIMEOUT_SECONDS`).
    pub header_timeout: Duration,
    /// Time to receive a request body (`REQUEST_BODY_TIMEOUT_SECONDS`).
    pub body_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_in_flight: 64,
            max_connections: 256,
            header_timeout: Duration::from_secs(30),
            body_timeout: Duration::from_secs(60),
        }
    }
}

/// The tokio runtime a handler serves on: tokio's multi-thread scheduler, with stdout lines
/// batched and written whenever a worker goes idle (see [`crate::stdout_batch`]). Call
/// [`crate::stdout_batch::flush`] once the runtime has finished, before the process exits.
pub fn tokio_runtime() -> std::io::Result<tokio::runtime::Runtime> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .on_thread_park(crate::stdout_batch::flush)
        .build()?;
    crate::stdout_batch::enable();
    Ok(runtime)
}

/// Serves `runtime` on `listener` with the default limits until `shutdown` completes.
pub async fn run<S: Send + Sync + 'static>(
    listener: TcpListener,
    runtime: Arc<Runtime<S>>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) {
    run_with(listener, runtime, Limits::default(), shutdown).await;
}

/// Serves `runtime` on `listener` under `limits` until `shutdown` completes, then closes idle
/// connections at once and lets running invocations finish.
///
/// The listener is bound by the caller before any slow set-up, so the host's readiness poll
/// (`GET /` every 25 ms) is answered as soon as the process runs.
pub async fn run_with<S: Send + Sync + 'static>(
    listener: TcpListener,
    runtime: Arc<Runtime<S>>,
    limits: Limits,
    shutdown: impl Future<Output = ()> + Send + 'static,
) {
    let shared = Arc::new(Shared {
        runtime,
        limits,
        in_flight: Arc::new(InFlight::new(limits.max_in_flight)),
        stopping: watch::channel(false).0,
    });
    let connections = Arc::new(Semaphore::new(limits.max_connections));
    let mut tasks = JoinSet::new();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let accepted = tokio::select! {
            () = &mut shutdown => break,
            accepted = accept(&listener, &connections) => accepted,
        };
        while tasks.try_join_next().is_some() {}
        match accepted {
            Ok((stream, slot)) => {
                tasks.spawn(serve_connection(stream, Arc::clone(&shared), slot));
            }
            Err(error) => {
                // Out of file descriptors and the like: wait a moment instead of spinning.
                log::warn!("accepting a connection failed: {error}");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
    drop(listener);
    shared.stopping.send_replace(true);
    while tasks.join_next().await.is_some() {}
}

/// Waits for a free connection slot, then for a connection.
async fn accept(
    listener: &TcpListener,
    connections: &Arc<Semaphore>,
) -> std::io::Result<(TcpStream, OwnedSemaphorePermit)> {
    let slot = Arc::clone(connections)
        .acquire_owned()
        .await
        .map_err(std::io::Error::other)?;
    let (stream, _) = listener.accept().await?;
    Ok((stream, slot))
}

/// What every connection shares.
struct Shared<S> {
    runtime: Arc<Runtime<S>>,
    limits: Limits,
    in_flight: Arc<InFlight>,
    stopping: watch::Sender<bool>,
}

/// How many invocations run, against the most that may. A counter rather than a semaphore: a
/// request never waits for a slot (none left is a 503 at once), and a semaphore's release takes
/// its waiters' lock on every invocation, which the two workers then contend for.
struct InFlight {
    running: AtomicUsize,
    max: usize,
}

impl InFlight {
    fn new(max: usize) -> Self {
        Self {
            running: AtomicUsize::new(0),
            max,
        }
    }

    /// A slot, held until dropped; none when `max` invocations already run.
    fn enter(self: &Arc<Self>) -> Option<Slot> {
        self.running
            .fetch_update(Ordering::Acquire, Ordering::Relaxed, |running| {
                (running < self.max).then_some(running + 1)
            })
            .ok()
            .map(|_| Slot(Arc::clone(self)))
    }
}

/// One running invocation's place in [`InFlight`].
struct Slot(Arc<InFlight>);

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.running.fetch_sub(1, Ordering::Release);
    }
}

/// Serves one connection until it closes, until it has waited the header timeout for a request
/// head (idle, or still sending one), or until shutdown finds it with no request running.
async fn serve_connection<S: Send + Sync + 'static>(
    stream: TcpStream,
    shared: Arc<Shared<S>>,
    _slot: OwnedSemaphorePermit,
) {
    let _ = stream.set_nodelay(true);
    let activity = Arc::new(Activity::new());
    let handoff = HeadersHandOff::default();
    // The filter tree borrows what the connection shares: building it allocates nothing.
    let routes = warp::service(routes(&shared, &handoff));
    let service = hyper::service::service_fn(|mut request: Request<Incoming>| {
        let guard = Busy::new(&activity);
        handoff.put(std::mem::take(request.headers_mut()));
        // Called directly: warp's service is always ready, and a clone of it is a copy of the
        // filter tree's references.
        let answering = routes.clone().call(request);
        async move {
            let response = answering.await?;
            Ok::<_, Infallible>(response.map(|body| Guarded {
                body,
                _guard: guard,
            }))
        }
    });
    let mut builder = hyper::server::conn::http1::Builder::new();
    // More headers than hyper's default 100: the host's Kestrel admits 100, and the host adds
    // its own (invocation id, host version, user agent) before forwarding. Past 100, hyper
    // parses into a heap buffer rather than the stack (≈ 370 instructions a request), which
    // refusing what the host accepted would not be worth.
    builder.max_headers(200).max_buf_size(256 * 1024);
    let connection = builder.serve_connection(TokioIo::new(stream), service);
    let mut connection = std::pin::pin!(connection);
    let mut stopping = shared.stopping.subscribe();
    tokio::select! {
        _ = connection.as_mut() => return,
        () = activity.idle_for(shared.limits.header_timeout) => return,
        _ = stopping.wait_for(|stop| *stop) => {}
    }
    if !activity.is_busy() {
        // Idle, or still sending a head: nothing of ours is lost by closing it now.
        return;
    }
    connection.as_mut().graceful_shutdown();
    let _ = connection.await;
}

/// What a connection is doing: how many of its requests are between their head and the end of
/// their response, and since when it has had none.
///
/// The header timeout is kept here, with one timer per connection that wakes once per timeout,
/// rather than as hyper's header read timeout, which arms, registers and drops a timer of its
/// own for every request (about 1,200 instructions of a 30,000-instruction invocation). It
/// closes the connection in the same cases: a head not complete within the timeout of the
/// connection's start or its last answer, which includes a kept-alive connection idle that long.
struct Activity {
    busy: AtomicUsize,
    start: Instant,
    /// When `busy` last fell to zero, in nanoseconds since `start`.
    idle_since: AtomicU64,
}

impl Activity {
    fn new() -> Self {
        Self {
            busy: AtomicUsize::new(0),
            start: Instant::now(),
            idle_since: AtomicU64::new(0),
        }
    }

    fn is_busy(&self) -> bool {
        self.busy.load(Ordering::Acquire) > 0
    }

    fn idle_since(&self) -> Instant {
        self.start + Duration::from_nanos(self.idle_since.load(Ordering::Acquire))
    }

    fn became_idle(&self) {
        let since_start = self.start.elapsed().as_nanos();
        self.idle_since.store(
            u64::try_from(since_start).unwrap_or(u64::MAX),
            Ordering::Release,
        );
    }

    /// Completes once the connection has had no request running for `limit`.
    async fn idle_for(&self, limit: Duration) {
        let mut deadline = self.idle_since() + limit;
        loop {
            tokio::time::sleep_until(deadline).await;
            if self.is_busy() {
                // The running request has its own limits; the next head gets `limit` from its end.
                deadline = Instant::now() + limit;
                continue;
            }
            deadline = self.idle_since() + limit;
            if deadline <= Instant::now() {
                return;
            }
        }
    }
}

/// Counts a request on its connection from the moment hyper hands over its head until hyper has
/// written its response (the guard travels in the response body), so shutdown never cuts an
/// answer and the header timeout never runs while a request does.
struct Busy {
    activity: Arc<Activity>,
}

impl Busy {
    fn new(activity: &Arc<Activity>) -> Self {
        activity.busy.fetch_add(1, Ordering::AcqRel);
        Self {
            activity: Arc::clone(activity),
        }
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        if self.activity.busy.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.activity.became_idle();
        }
    }
}

/// warp's response body, holding the request's [`Busy`] guard until hyper is done with it.
struct Guarded<B> {
    body: B,
    _guard: Busy,
}

impl<B: hyper::body::Body + Unpin> hyper::body::Body for Guarded<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        Pin::new(&mut self.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        self.body.size_hint()
    }
}

/// The filter tree, one chain for every request (readiness included, so that no invocation
/// passes through a filter of its own first). `GET /` is the host's readiness poll; anything
/// else is routed by `dispatch` (`POST /{FunctionName}` of a served function is JSON mode,
/// anything else is forwarded by its function.json route), admitted under the in-flight cap,
/// held to its function's body limit from Content-Length — all before a byte of the body is
/// read — then read and run.
fn routes<'c, S: Send + Sync + 'static>(
    shared: &'c Shared<S>,
    handoff: &'c HeadersHandOff,
) -> impl Filter<Extract = (Response,), Error = warp::Rejection> + Clone + Send + Sync + 'c {
    // The filters only extract (none of them rejects); the request is routed, admitted and
    // checked in one step at the end, so that warp moves only what they extract from one
    // combinator's state to the next, not the routed call too.
    warp::method()
        .and(warp::path::full())
        .and(query())
        .and(warp::body::stream())
        .then(move |method: Method, path: FullPath, query, body| {
            let headers = handoff.take();
            let call = Call::route(shared, method, path.as_str())
                .admit(shared)
                .check_declared_length(&headers);
            // Boxed: hyper moves the request's future between its states several times, and
            // unboxed it holds the whole invocation.
            Box::pin(answer(shared, call, headers, query, body))
        })
}

/// A connection's request headers, handed from the connection to the end of the filter chain
/// instead of cloned by warp's headers filter (a copy of the map and of each value's handle, then
/// a second map to drop: ≈ 1,000 instructions a request). hyper serves one request of a
/// connection at a time, and the chain reaches its end at the first poll of the request's future,
/// before hyper reads the next head: the map put in is the one taken out.
#[derive(Default)]
struct HeadersHandOff(std::sync::Mutex<Option<HeaderMap>>);

impl HeadersHandOff {
    fn put(&self, headers: HeaderMap) {
        *self.lock() = Some(headers);
    }

    fn take(&self) -> HeaderMap {
        let taken = self.lock().take();
        debug_assert!(taken.is_some(), "a request's headers taken twice");
        taken.unwrap_or_default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<HeaderMap>> {
        // Nothing panics while holding it; a poisoned lock still holds a whole map.
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// A request on its way through the filters.
struct Call<'a, S> {
    /// The method as sent, which the answer's framing depends on.
    method: Method,
    /// The method as `dispatch` compares it (a forwarded request's; empty on other routes).
    method_name: String,
    /// The path (a forwarded request's; empty on other routes).
    path: String,
    route: Route<'a, S>,
    /// The most body bytes the function takes.
    limit: usize,
    /// The in-flight slot, held until the answer is written.
    permit: Option<Slot>,
    /// Why the body will not be read: over the in-flight cap, or declared over the limit.
    refusal: Option<RuntimeError>,
}

impl<'a, S: Send + Sync + 'static> Call<'a, S> {
    fn route(shared: &'a Shared<S>, method: Method, path: &str) -> Self {
        let method_name = if method.as_str().bytes().any(|b| b.is_ascii_lowercase()) {
            Cow::Owned(method.as_str().to_ascii_uppercase())
        } else {
            Cow::Borrowed(method.as_str())
        };
        // `GET /`: the host's readiness poll and pings. The method is compared without regard to
        // case, as `dispatch` compares it.
        let route = if path == "/" && method_name == "GET" {
            Route::Answer(plain(200, "ok"))
        } else {
            shared.runtime.route(&method_name, path)
        };
        let limit = shared.runtime.body_limit(&route);
        // Only a forwarded request passes its method and path on.
        let (method_name, path) = match route {
            Route::Forwarded { .. } => (method_name.into_owned(), path.to_owned()),
            _ => (String::new(), String::new()),
        };
        Self {
            method,
            method_name,
            path,
            route,
            limit,
            permit: None,
            refusal: None,
        }
    }

    fn runs(&self) -> bool {
        !matches!(self.route, Route::Answer(_))
    }

    /// Takes an in-flight slot for a request that runs a function; none left is a 503.
    fn admit(mut self, shared: &Shared<S>) -> Self {
        if self.runs() {
            match shared.in_flight.enter() {
                Some(slot) => self.permit = Some(slot),
                None => {
                    self.refusal = Some(RuntimeError::Overloaded {
                        limit: shared.limits.max_in_flight,
                    });
                }
            }
        }
        self
    }

    /// Refuses a body whose Content-Length is over the function's limit, before reading any.
    fn check_declared_length(mut self, headers: &HeaderMap) -> Self {
        if !self.runs() || self.refusal.is_some() {
            return self;
        }
        let declared = headers
            .get(hyper::header::CONTENT_LENGTH)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.trim().parse::<u64>().ok());
        if declared.is_some_and(|length| length > self.limit as u64) {
            self.refusal = Some(RuntimeError::PayloadTooLarge { limit: self.limit });
        }
        self
    }
}

/// Reads the body (unless refused) and runs the function; answers what it answered.
async fn answer<S, B>(
    shared: &Shared<S>,
    call: Call<'_, S>,
    headers: HeaderMap,
    query: Query,
    body: impl Stream<Item = Result<B, warp::Error>> + Send,
) -> Response
where
    S: Send + Sync + 'static,
    B: Buf,
{
    let Call {
        method,
        method_name,
        path,
        route,
        limit,
        permit,
        refusal,
    } = call;
    let runtime = &shared.runtime;
    let body = || async {
        match refusal {
            Some(refusal) => Err(refusal),
            None => read_body(body, limit, shared.limits.body_timeout, &shared.stopping).await,
        }
    };
    let answer = match route {
        Route::Answer(answer) => answer,
        Route::Json(entry) => {
            let id = header_text(&headers, &INVOCATION_ID);
            runtime
                .invoke_json(entry, id.as_deref(), body().await)
                .await
        }
        Route::Forwarded { entry, params } => {
            let request = ForwardedRequest {
                method: method_name,
                path,
                query: query.0,
                headers: Headers::from_wire(headers),
                body: body().await,
            };
            runtime.forward(entry, params, request).await
        }
    };
    reply(answer, &method, permit)
}

/// Reads the body under `limit`, refusing it once the bytes pass it; gives up after `timeout` or
/// when the server starts stopping.
async fn read_body<B: Buf>(
    body: impl Stream<Item = Result<B, warp::Error>>,
    limit: usize,
    timeout: Duration,
    stopping: &watch::Sender<bool>,
) -> Body {
    let mut reading = std::pin::pin!(read_limited(body, limit));
    // Most bodies arrive with the request's head, and most forwarded requests have none: a body
    // that is all here already is read without arming the timer or watching for shutdown.
    if let Poll::Ready(body) =
        std::future::poll_fn(|cx| Poll::Ready(reading.as_mut().poll(cx))).await
    {
        return body;
    }
    let mut stopping = stopping.subscribe();
    tokio::select! {
        body = tokio::time::timeout(timeout, reading) => {
            body.unwrap_or(Err(RuntimeError::BodyTimeout(timeout)))
        }
        _ = stopping.wait_for(|stop| *stop) => Err(RuntimeError::ShuttingDown),
    }
}

async fn read_limited<B: Buf>(
    body: impl Stream<Item = Result<B, warp::Error>>,
    limit: usize,
) -> Body {
    let mut body = std::pin::pin!(body);
    // The bytes so far are the first chunk as it came (no copy) until a second one arrives;
    // from then on they are in `collected`.
    let mut first = Bytes::new();
    let mut collected = BytesMut::new();
    while let Some(chunk) = body.next().await {
        let mut chunk = chunk.map_err(|e| RuntimeError::BodyUnreadable(e.to_string()))?;
        let so_far = first.len() + collected.len();
        if so_far + chunk.remaining() > limit {
            return Err(RuntimeError::PayloadTooLarge { limit });
        }
        if so_far == 0 {
            first = chunk.copy_to_bytes(chunk.remaining());
        } else {
            collected.put(std::mem::take(&mut first));
            collected.put(chunk);
        }
    }
    Ok(if collected.is_empty() {
        first
    } else {
        collected.freeze()
    })
}

/// Query parameters, as warp's query filter decodes them; a key given twice has its values
/// joined with `,`, as the host does.
#[derive(Debug, Default)]
struct Query(BTreeMap<String, String>);

impl<'de> Deserialize<'de> for Query {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Joined;

        impl<'de> Visitor<'de> for Joined {
            type Value = Query;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("query parameters")
            }

            fn visit_map<A: MapAccess<'de>>(self, mut pairs: A) -> Result<Query, A::Error> {
                let mut query: BTreeMap<String, String> = BTreeMap::new();
                while let Some((Text(key), Text(value))) = pairs.next_entry::<Text, Text>()? {
                    if let Some(existing) = query.get_mut(&*key) {
                        existing.push(',');
                        existing.push_str(&value);
                    } else {
                        query.insert(key.into_owned(), value.into_owned());
                    }
                }
                Ok(Query(query))
            }
        }

        deserializer.deserialize_map(Joined)
    }
}

/// A key or value of the query, borrowed from it when it needed no decoding (so that a repeated
/// key costs no copy).
struct Text<'de>(Cow<'de, str>);

impl<'de> Deserialize<'de> for Text<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Str;

        impl<'de> Visitor<'de> for Str {
            type Value = Text<'de>;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("text")
            }

            fn visit_borrowed_str<E>(self, text: &'de str) -> Result<Text<'de>, E> {
                Ok(Text(Cow::Borrowed(text)))
            }

            fn visit_str<E>(self, text: &str) -> Result<Text<'de>, E> {
                Ok(Text(Cow::Owned(text.to_owned())))
            }

            fn visit_string<E>(self, text: String) -> Result<Text<'de>, E> {
                Ok(Text(Cow::Owned(text)))
            }
        }

        deserializer.deserialize_str(Str)
    }
}

/// The query; never refuses a request (a query that cannot be decoded is read as none).
fn query() -> impl Filter<Extract = (Query,), Error = std::convert::Infallible> + Copy {
    warp::query::query::<Query>()
        .or(warp::any().map(Query::default))
        .unify()
}

/// Query parameters of a raw query string, decoded and joined as [`query`] does.
#[cfg(test)]
fn parse_query(raw: &str) -> BTreeMap<String, String> {
    let pairs = url::form_urlencoded::parse(raw.as_bytes());
    let deserializer = serde::de::value::MapDeserializer::<_, serde::de::value::Error>::new(pairs);
    Query::deserialize(deserializer)
        .map(|query| query.0)
        .unwrap_or_default()
}

fn plain(status: u16, text: &'static str) -> Answer {
    Answer {
        status,
        reason: None,
        headers: ResponseHeaders::from([("Content-Type", "text/plain")]),
        body: Bytes::from_static(text.as_bytes()),
        abort: false,
    }
}

/// Every value of a header, joined with ", " as one list; a single value (the usual case)
/// borrowed as it is.
fn header_text<'h>(headers: &'h HeaderMap, name: &HeaderName) -> Option<Cow<'h, str>> {
    let mut values = headers
        .get_all(name)
        .iter()
        .filter_map(|value| value.to_str().ok());
    let first = values.next()?;
    let Some(second) = values.next() else {
        return Some(Cow::Borrowed(first));
    };
    let mut joined = [first, second].join(", ");
    for value in values {
        joined.push_str(", ");
        joined.push_str(value);
    }
    Some(Cow::Owned(joined))
}

/// An answer as a warp response. Headers that are not valid HTTP are dropped with a warning
/// rather than failing the whole answer; a reason phrase goes on the status line.
///
/// An invocation's answer is a one-chunk stream that holds its in-flight slot until hyper has
/// written it, and — for an aborted answer — ends in an error, which makes hyper cut the
/// connection so that the host records a failed invocation. warp's only body that can carry
/// either is a stream, whose length hyper does not know, so the Content-Length hyper would have
/// written for the bytes is written here.
fn reply(answer: Answer, method: &Method, permit: Option<Slot>) -> Response {
    let status = StatusCode::from_u16(answer.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let length = answer.body.len();
    let streamed = permit.is_some() || answer.abort;
    let mut response = if streamed {
        warp::reply::stream(AnswerStream {
            data: Some(answer.body),
            abort: answer.abort,
            _permit: permit,
        })
        .into_response()
    } else {
        warp::http::Response::new(answer.body).into_response()
    };
    *response.status_mut() = status;
    for (name, value) in answer.headers {
        // The value's own buffer (or the literal) becomes the header's: checked, not copied.
        let bytes = match value {
            Cow::Borrowed(literal) => Bytes::from_static(literal.as_bytes()),
            Cow::Owned(text) => Bytes::from(text),
        };
        match (header_name(&name), HeaderValue::from_maybe_shared(bytes)) {
            (Ok(name), Ok(value)) => {
                response.headers_mut().insert(name, value);
            }
            _ => log::warn!("dropped response header '{name}': not a valid HTTP header"),
        }
    }
    if streamed && !answer.abort && declares_length(method, status, length) {
        response
            .headers_mut()
            .insert(hyper::header::CONTENT_LENGTH, length_value(length));
    }
    if let Some(reason) = answer.reason
        && let Ok(phrase) = hyper::ext::ReasonPhrase::try_from(reason.into_bytes())
    {
        response.extensions_mut().insert(phrase);
    }
    response
}

/// A response header's name: the two that nearly every answer carries are compared rather than
/// parsed (hyper's parse folds the case through a table, byte by byte).
fn header_name(name: &str) -> Result<HeaderName, hyper::header::InvalidHeaderName> {
    if name.eq_ignore_ascii_case("content-type") {
        Ok(hyper::header::CONTENT_TYPE)
    } else if name.eq_ignore_ascii_case("cache-control") {
        Ok(hyper::header::CACHE_CONTROL)
    } else {
        HeaderName::from_bytes(name.as_bytes())
    }
}

/// Whether hyper writes a Content-Length for a body of `length` bytes it knows the length of:
/// never on a status that has no body, and not a zero one in answer to HEAD.
fn declares_length(method: &Method, status: StatusCode, length: usize) -> bool {
    let bodiless = status.is_informational()
        || status == StatusCode::NO_CONTENT
        || status == StatusCode::NOT_MODIFIED
        || (method == Method::CONNECT && status.is_success());
    !bodiless && (length > 0 || method != Method::HEAD)
}

/// `length` as a header value, in one allocation (`HeaderValue::from(usize)` takes two).
fn length_value(length: usize) -> HeaderValue {
    let mut digits = itoa::Buffer::new();
    HeaderValue::from_str(digits.format(length)).unwrap_or_else(|_| HeaderValue::from(length))
}

/// An invocation's answer as warp's stream body: the bytes, then — when aborted — the error that
/// cuts the connection. It holds the in-flight slot until hyper drops it, done writing.
struct AnswerStream {
    data: Option<Bytes>,
    abort: bool,
    _permit: Option<Slot>,
}

impl Stream for AnswerStream {
    type Item = std::io::Result<Bytes>;

    fn poll_next(mut self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if let Some(data) = self.data.take().filter(|data| !data.is_empty()) {
            return Poll::Ready(Some(Ok(data)));
        }
        if self.abort {
            self.abort = false;
            return Poll::Ready(Some(Err(std::io::Error::other(
                "the invocation failed; the connection is cut so that the host records it",
            ))));
        }
        Poll::Ready(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dispatch::INVOCATION_ID_HEADER;

    /// Sends `head` (a request without a body) to a server with no functions; the status line
    /// and the body of its answer.
    async fn answer_to(head: &str) -> (String, String) {
        use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
        let registry = crate::registry::Registry::<()>::new(Vec::new(), Vec::new());
        let runtime = Runtime::new(Arc::new(()), registry, Default::default());
        let listener = TcpListener::bind(("127.0.0.1", 0)).await.unwrap();
        let address = listener.local_addr().unwrap();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(run(listener, Arc::new(runtime), async {
            let _ = stopped.await;
        }));
        let mut stream = TcpStream::connect(address).await.unwrap();
        stream.write_all(head.as_bytes()).await.unwrap();
        let mut text = String::new();
        stream.read_to_string(&mut text).await.unwrap();
        let _ = stop.send(());
        server.await.unwrap();
        let (head, body) = text.split_once("\r\n\r\n").unwrap();
        (head.lines().next().unwrap().to_owned(), body.to_owned())
    }

    #[tokio::test]
    async fn readiness_is_get_of_the_root_alone_with_the_method_in_any_case() {
        for request in ["GET / HTTP/1.1", "get /?x=1 HTTP/1.1", "GET / HTTP/1.0"] {
            let (status, body) = answer_to(&format!(
                "{request}\r\nHost: localhost\r\nConnection: close\r\n\r\n"
            ))
            .await;
            assert!(status.ends_with(" 200 OK"), "{request}: {status}");
            assert_eq!(body, "ok", "{request}");
        }
        for request in [
            "POST / HTTP/1.1",
            "HEAD / HTTP/1.1",
            "GET // HTTP/1.1",
            "GET /x HTTP/1.1",
        ] {
            let (status, body) = answer_to(&format!(
                "{request}\r\nHost: localhost\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
            ))
            .await;
            assert!(!status.ends_with(" 200 OK"), "{request}: {status}");
            assert_ne!(body, "ok", "{request}");
        }
    }

    #[tokio::test(start_paused = true)]
    async fn the_header_timeout_runs_only_while_no_request_does() {
        let start = Instant::now();
        let limit = Duration::from_secs(30);
        let activity = Arc::new(Activity::new());
        let request = Busy::new(&activity);
        let idle = activity.idle_for(limit);
        tokio::pin!(idle);
        let outlasting = tokio::time::timeout(Duration::from_secs(45), idle.as_mut()).await;
        assert!(
            outlasting.is_err(),
            "a request running past the limit keeps its connection"
        );
        drop(request);
        let early = tokio::time::timeout(Duration::from_secs(29), idle.as_mut()).await;
        assert!(
            early.is_err(),
            "closed before the limit had passed since the answer"
        );
        idle.await;
        assert_eq!(
            start.elapsed(),
            Duration::from_secs(75),
            "the answer's end plus the limit"
        );
    }

    #[test]
    fn response_header_names_read_as_hyper_parses_them() {
        for name in [
            "Content-Type",
            "content-type",
            "CACHE-CONTROL",
            "Cache-Control",
            "X-Custom",
            "Content-Typo",
        ] {
            assert_eq!(
                header_name(name).unwrap(),
                HeaderName::from_bytes(name.as_bytes()).unwrap(),
                "{name}"
            );
        }
        assert!(header_name("not a name").is_err());
    }

    #[test]
    fn a_length_header_holds_the_decimal_digits() {
        for length in [0, 7, 10, 512, 65_535, 1_000_001, usize::MAX] {
            assert_eq!(
                length_value(length),
                length.to_string().as_str(),
                "{length}"
            );
        }
    }

    #[test]
    fn repeated_query_keys_are_joined_with_commas() {
        let query = parse_query("x=1&x=2&name=a%20b&code=k");
        assert_eq!(query["x"], "1,2");
        assert_eq!(query["name"], "a b");
    }

    #[test]
    fn repeated_headers_are_read_as_one_list() {
        let mut headers = hyper::HeaderMap::new();
        headers.append(INVOCATION_ID_HEADER, HeaderValue::from_static("forged"));
        headers.append(INVOCATION_ID_HEADER, HeaderValue::from_static("host-id"));
        assert_eq!(
            header_text(&headers, &INVOCATION_ID).as_deref(),
            Some("forged, host-id")
        );
        headers.append(INVOCATION_ID_HEADER, HeaderValue::from_static("third"));
        assert_eq!(
            header_text(&headers, &INVOCATION_ID).as_deref(),
            Some("forged, host-id, third")
        );
        let mut one = hyper::HeaderMap::new();
        one.append(INVOCATION_ID_HEADER, HeaderValue::from_static("only"));
        assert!(matches!(
            header_text(&one, &INVOCATION_ID),
            Some(Cow::Borrowed("only"))
        ));
        assert_eq!(header_text(&hyper::HeaderMap::new(), &INVOCATION_ID), None);
    }

    fn chunks(parts: &[&'static str]) -> impl Stream<Item = Result<Bytes, warp::Error>> {
        futures::stream::iter(
            parts
                .iter()
                .map(|part| Ok(Bytes::from_static(part.as_bytes())))
                .collect::<Vec<_>>(),
        )
    }

    #[tokio::test]
    async fn a_body_in_one_chunk_is_taken_as_is_and_several_are_joined_in_order() {
        let one = Bytes::from_static(b"{\"Data\":{}}");
        let single = futures::stream::iter([Ok::<_, warp::Error>(one.clone())]);
        let read = read_limited(single, 64).await.unwrap();
        assert_eq!(read, one);
        assert_eq!(read.as_ptr(), one.as_ptr(), "a lone chunk is not copied");
        for parts in [
            &["ab", "", "cd", "e"][..],
            &["", "abcde"],
            &["abcd", "e"],
            &[],
        ] {
            let read = read_limited(chunks(parts), 64).await.unwrap();
            assert_eq!(read, parts.concat().as_bytes(), "{parts:?}");
        }
    }

    #[tokio::test]
    async fn a_body_is_refused_once_its_chunks_together_pass_the_limit() {
        assert!(read_limited(chunks(&["abc", "de"]), 5).await.is_ok());
        for parts in [
            &["abc", "def"][..],
            &["abcdef"],
            &["a", "b", "c", "d", "e", "f"],
        ] {
            let refused = read_limited(chunks(parts), 5).await;
            assert!(
                matches!(refused, Err(RuntimeError::PayloadTooLarge { limit: 5 })),
                "{parts:?}: {refused:?}"
            );
        }
    }

    #[test]
    fn in_flight_slots_run_out_at_the_cap_and_come_back_when_dropped() {
        let in_flight = Arc::new(InFlight::new(2));
        let first = in_flight.enter().expect("a first slot");
        let second = in_flight.enter().expect("a second slot");
        assert!(in_flight.enter().is_none(), "a third slot past a cap of 2");
        drop(first);
        let third = in_flight.enter().expect("the slot the first gave back");
        assert!(in_flight.enter().is_none());
        drop((second, third));
        assert_eq!(in_flight.running.load(Ordering::Relaxed), 0);
    }
}
