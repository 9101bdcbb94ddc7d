//! The HTTP server: connections, limits and routing only. Readiness (`GET /`), JSON-mode
//! invocations (`POST /{FunctionName}`) and forwarded requests (`/{routePrefix}/{route}`); what
//! each does is in `dispatch`.
//!
//! Every request is held to limits (README, "Request limits"): the head must arrive within the
//! header timeout (which also closes a kept-alive connection idle that long); the body within the
//! body timeout and under the function's own limit, checked from Content-Length before any byte
//! is read and again while reading; at most `max_in_flight` invocations run at once (more are
//! answered 503 with Retry-After before their body is read); at most `max_connections`
//! connections are open (more wait in the listen backlog). On shutdown, idle connections and
//! connections still sending a head are closed at once; running invocations finish.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http_body_util::BodyExt as _;
use hyper::body::{Frame, Incoming};
use hyper::header::{HeaderName, HeaderValue};
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, watch};
use tokio::task::JoinSet;

use crate::config::ServerLimits;
use crate::dispatch::{Answer, Body, ForwardedRequest, INVOCATION_ID_HEADER, Route, Runtime};
use crate::error::FunctionError;

/// Serves `runtime` on `listener` with the default limits until `shutdown` completes.
pub async fn run<S: Send + Sync + 'static>(
    listener: TcpListener,
    runtime: Arc<Runtime<S>>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) {
    run_with(listener, runtime, ServerLimits::default(), shutdown).await;
}

/// Serves `runtime` on `listener` under `limits` until `shutdown` completes, then closes idle
/// connections at once and lets running invocations finish.
///
/// The listener is bound by the caller before any slow set-up, so the host's readiness poll
/// (`GET /` every 25 ms) is answered as soon as the process runs.
pub async fn run_with<S: Send + Sync + 'static>(
    listener: TcpListener,
    runtime: Arc<Runtime<S>>,
    limits: ServerLimits,
    shutdown: impl Future<Output = ()> + Send + 'static,
) {
    let shared = Arc::new(Shared {
        runtime,
        limits,
        in_flight: Arc::new(Semaphore::new(limits.max_in_flight)),
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
    limits: ServerLimits,
    in_flight: Arc<Semaphore>,
    stopping: watch::Sender<bool>,
}

/// Serves one connection until it closes, or until shutdown finds it with no request running.
async fn serve_connection<S: Send + Sync + 'static>(
    stream: TcpStream,
    shared: Arc<Shared<S>>,
    _slot: OwnedSemaphorePermit,
) {
    let _ = stream.set_nodelay(true);
    let busy = Arc::new(AtomicUsize::new(0));
    let service = {
        let shared = Arc::clone(&shared);
        let busy = Arc::clone(&busy);
        hyper::service::service_fn(move |request| {
            let shared = Arc::clone(&shared);
            let guard = Busy::new(&busy);
            async move { Ok::<_, Infallible>(handle(&shared, request, guard).await) }
        })
    };
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(shared.limits.header_timeout)
        .max_headers(200)
        .max_buf_size(256 * 1024);
    let connection = builder.serve_connection(TokioIo::new(stream), service);
    let mut connection = std::pin::pin!(connection);
    let mut stopping = shared.stopping.subscribe();
    tokio::select! {
        _ = connection.as_mut() => return,
        _ = stopping.wait_for(|stop| *stop) => {}
    }
    if busy.load(Ordering::Acquire) == 0 {
        // Idle, or still sending a head: nothing of ours is lost by closing it now.
        return;
    }
    connection.as_mut().graceful_shutdown();
    let _ = connection.await;
}

/// Counts a request on its connection from the moment its head is read until hyper has written
/// its response (the guard travels in the response body), so shutdown never cuts an answer.
struct Busy {
    count: Arc<AtomicUsize>,
    in_flight: Option<OwnedSemaphorePermit>,
}

impl Busy {
    fn new(count: &Arc<AtomicUsize>) -> Self {
        count.fetch_add(1, Ordering::AcqRel);
        Self {
            count: Arc::clone(count),
            in_flight: None,
        }
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        self.count.fetch_sub(1, Ordering::AcqRel);
    }
}

/// A response body: the bytes, then — for an aborted answer — an error that makes hyper cut
/// the connection. It holds the request's guard until hyper is done with it.
pub struct ReplyBody {
    data: Option<Bytes>,
    abort: bool,
    _guard: Option<Busy>,
}

impl hyper::body::Body for ReplyBody {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        if let Some(data) = self.data.take().filter(|data| !data.is_empty()) {
            return Poll::Ready(Some(Ok(Frame::data(data))));
        }
        if self.abort {
            self.abort = false;
            return Poll::Ready(Some(Err(std::io::Error::other(
                "the invocation failed; the connection is cut so that the host records it",
            ))));
        }
        Poll::Ready(None)
    }

    fn is_end_stream(&self) -> bool {
        !self.abort && self.data.as_ref().is_none_or(Bytes::is_empty)
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        match (&self.data, self.abort) {
            (_, true) => hyper::body::SizeHint::default(),
            (Some(data), false) => hyper::body::SizeHint::with_exact(data.len() as u64),
            (None, false) => hyper::body::SizeHint::with_exact(0),
        }
    }
}

/// Routes one request and answers it.
async fn handle<S: Send + Sync + 'static>(
    shared: &Shared<S>,
    request: Request<Incoming>,
    mut guard: Busy,
) -> Response<ReplyBody> {
    let method = request.method().as_str().to_ascii_uppercase();
    let path = request.uri().path().to_owned();
    if method == "GET" && path == "/" {
        // The host's readiness poll and pings: kept cheap.
        return reply(plain(200, "ok"), guard);
    }
    let runtime = &shared.runtime;
    let route = runtime.route(&method, &path);
    if let Route::Answer(answer) = route {
        return reply(answer, guard);
    }
    let limit = runtime.body_limit(&route);
    let admitted = match Arc::clone(&shared.in_flight).try_acquire_owned() {
        Ok(permit) => {
            guard.in_flight = Some(permit);
            None
        }
        Err(_) => Some(FunctionError::Overloaded {
            limit: shared.limits.max_in_flight,
        }),
    };
    let (parts, incoming) = request.into_parts();
    let body = match admitted {
        Some(refusal) => Err(refusal),
        None => {
            read_body(
                &parts.headers,
                incoming,
                limit,
                shared.limits.body_timeout,
                shared.stopping.subscribe(),
            )
            .await
        }
    };
    let answer = match route {
        Route::Json(entry) => {
            let id = header_text(&parts.headers, INVOCATION_ID_HEADER);
            runtime.invoke_json(entry, id.as_deref(), body).await
        }
        Route::Forwarded { entry, params } => {
            let request = ForwardedRequest {
                method,
                path,
                query: parse_query(parts.uri.query().unwrap_or_default()),
                headers: header_pairs(&parts.headers),
                body,
            };
            runtime.forward(entry, params, request).await
        }
        Route::Answer(answer) => answer,
    };
    reply(answer, guard)
}

/// Reads the body under `limit`: refused from Content-Length before any byte is read, and while
/// reading once the bytes pass it; given up after `timeout` or when the server starts stopping.
async fn read_body(
    headers: &hyper::HeaderMap,
    incoming: Incoming,
    limit: usize,
    timeout: Duration,
    mut stopping: watch::Receiver<bool>,
) -> Body {
    let declared = headers
        .get(hyper::header::CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.trim().parse::<u64>().ok());
    if declared.is_some_and(|length| length > limit as u64) {
        return Err(FunctionError::PayloadTooLarge { limit });
    }
    let reading = read_limited(incoming, limit);
    tokio::select! {
        body = tokio::time::timeout(timeout, reading) => {
            body.unwrap_or(Err(FunctionError::BodyTimeout(timeout)))
        }
        _ = stopping.wait_for(|stop| *stop) => Err(FunctionError::ShuttingDown),
    }
}

async fn read_limited(mut incoming: Incoming, limit: usize) -> Body {
    let mut collected = BytesMut::new();
    while let Some(frame) = incoming.frame().await {
        let frame = frame.map_err(|e| {
            FunctionError::BadRequest(format!("the request body could not be read: {e}"))
        })?;
        if let Ok(data) = frame.into_data() {
            if collected.len() + data.len() > limit {
                return Err(FunctionError::PayloadTooLarge { limit });
            }
            collected.extend_from_slice(&data);
        }
    }
    Ok(collected.freeze())
}

fn plain(status: u16, text: &'static str) -> Answer {
    Answer {
        status,
        reason: None,
        headers: BTreeMap::from([("Content-Type".to_owned(), "text/plain".to_owned())]),
        body: Bytes::from_static(text.as_bytes()),
        abort: false,
    }
}

/// Query parameters; a key given twice has its values joined with `,`, as the host does.
fn parse_query(raw: &str) -> BTreeMap<String, String> {
    let mut query: BTreeMap<String, String> = BTreeMap::new();
    for (key, value) in url::form_urlencoded::parse(raw.as_bytes()) {
        query
            .entry(key.into_owned())
            .and_modify(|existing| {
                existing.push(',');
                existing.push_str(&value);
            })
            .or_insert_with(|| value.into_owned());
    }
    query
}

fn header_pairs(headers: &hyper::HeaderMap) -> Vec<(String, String)> {
    headers
        .iter()
        .map(|(name, value)| {
            (
                name.as_str().to_owned(),
                String::from_utf8_lossy(value.as_bytes()).into_owned(),
            )
        })
        .collect()
}

/// Every value of a header, joined with ", " as one list.
fn header_text(headers: &hyper::HeaderMap, name: &str) -> Option<String> {
    let values: Vec<&str> = headers
        .get_all(name)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .collect();
    (!values.is_empty()).then(|| values.join(", "))
}

/// An answer as a hyper response. Headers that are not valid HTTP are dropped with a warning
/// rather than failing the whole answer; a reason phrase goes on the status line.
fn reply(answer: Answer, guard: Busy) -> Response<ReplyBody> {
    let mut response = Response::new(ReplyBody {
        data: Some(answer.body),
        abort: answer.abort,
        _guard: Some(guard),
    });
    *response.status_mut() =
        StatusCode::from_u16(answer.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    for (name, value) in &answer.headers {
        match (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_str(value),
        ) {
            (Ok(name), Ok(value)) => {
                response.headers_mut().insert(name, value);
            }
            _ => log::warn!("dropped response header '{name}': not a valid HTTP header"),
        }
    }
    if let Some(reason) = answer.reason
        && let Ok(phrase) = hyper::ext::ReasonPhrase::try_from(reason.into_bytes())
    {
        response.extensions_mut().insert(phrase);
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

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
            header_text(&headers, INVOCATION_ID_HEADER).as_deref(),
            Some("forged, host-id")
        );
    }
}
