//! The HTTP server: routing only. Readiness, JSON-mode invocations (`POST /{FunctionName}`) and
//! forwarded requests (`/{routePrefix}/{route}`) are each one filter; everything they do is in
//! `dispatch`.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;

use bytes::{Buf, BytesMut};
use futures::{Stream, StreamExt};
use tokio::net::TcpListener;
use warp::http::{HeaderMap, Method, Response, StatusCode};
use warp::path::FullPath;
use warp::{Filter, Rejection, Reply};

use crate::dispatch::{Body, ForwardedRequest, MAX_REQUEST_BYTES, Runtime};
use crate::error::FunctionError;
use crate::http::HttpResponse;

/// The header carrying the host's invocation id, kept for log correlation.
pub const INVOCATION_ID_HEADER: &str = "x-azure-functions-invocationid";

/// Serves `runtime` on `listener` until `shutdown` completes, then lets in-flight requests finish.
///
/// The listener is bound by the caller before any slow set-up, so the host's readiness poll
/// (`GET /` every 25 ms) is answered as soon as the process runs.
pub async fn run<S: Send + Sync + 'static>(
    listener: TcpListener,
    runtime: Arc<Runtime<S>>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) {
    let routes = readiness()
        .or(invocation(runtime.clone()))
        .or(forwarded(runtime));
    warp::serve(routes)
        .incoming(listener)
        .graceful(shutdown)
        .run()
        .await;
}

/// `GET /`: the host polls it until it answers, then pings it now and then. Kept cheap.
fn readiness() -> impl Filter<Extract = (impl Reply,), Error = Rejection> + Clone {
    warp::get().and(warp::path::end()).map(|| "ok")
}

/// `POST /{FunctionName}`: a JSON-mode invocation of a function this runtime serves.
fn invocation<S: Send + Sync + 'static>(
    runtime: Arc<Runtime<S>>,
) -> impl Filter<Extract = (Response<bytes::Bytes>,), Error = Rejection> + Clone {
    let served = {
        let runtime = runtime.clone();
        warp::path::param::<String>().and_then(move |name: String| {
            let known = runtime.serves(&name);
            async move {
                if known {
                    Ok(name)
                } else {
                    Err(warp::reject::not_found())
                }
            }
        })
    };
    warp::post()
        .and(served)
        .and(warp::path::end())
        .and(warp::header::optional::<String>(INVOCATION_ID_HEADER))
        .and(limited_body())
        .then(move |name: String, id: Option<String>, body: Body| {
            let runtime = runtime.clone();
            async move {
                let envelope = runtime.invoke_json(&name, id.as_deref(), body).await;
                json_reply(envelope.to_json())
            }
        })
}

/// Any other request: forwarded to the function whose route matches.
fn forwarded<S: Send + Sync + 'static>(
    runtime: Arc<Runtime<S>>,
) -> impl Filter<Extract = (Response<bytes::Bytes>,), Error = Infallible> + Clone {
    warp::method()
        .and(warp::path::full())
        .and(raw_query())
        .and(warp::header::headers_cloned())
        .and(limited_body())
        .then(
            move |method: Method, path: FullPath, query: String, headers: HeaderMap, body: Body| {
                let runtime = runtime.clone();
                async move {
                    let request = ForwardedRequest {
                        method: method.as_str().to_ascii_uppercase(),
                        path: path.as_str().to_owned(),
                        query: parse_query(&query),
                        invocation_id: header_text(&headers, INVOCATION_ID_HEADER),
                        headers: header_pairs(&headers),
                        body,
                    };
                    http_reply(runtime.forward(request).await)
                }
            },
        )
        .or(warp::any().map(|| {
            http_reply(
                FunctionError::BadRequest("the request could not be read".into()).to_response(),
            )
        }))
        .unify()
}

/// The raw query string, or empty when there is none.
fn raw_query() -> impl Filter<Extract = (String,), Error = Infallible> + Clone {
    warp::query::raw().or(warp::any().map(String::new)).unify()
}

/// The body, read up to [`MAX_REQUEST_BYTES`]. Never rejects: the host sends chunked bodies with
/// no Content-Length, which warp's length filter would refuse, and an over-long body becomes a
/// typed error the function's output reports.
fn limited_body() -> impl Filter<Extract = (Body,), Error = Rejection> + Clone {
    warp::body::stream().then(|stream| read_limited(stream, MAX_REQUEST_BYTES))
}

async fn read_limited<B: Buf>(
    stream: impl Stream<Item = Result<B, warp::Error>>,
    limit: usize,
) -> Body {
    let mut stream = std::pin::pin!(stream);
    let mut collected = BytesMut::new();
    while let Some(chunk) = stream.next().await {
        let mut chunk = chunk.map_err(|e| {
            FunctionError::BadRequest(format!("the request body could not be read: {e}"))
        })?;
        if collected.len() + chunk.remaining() > limit {
            return Err(FunctionError::PayloadTooLarge { limit });
        }
        while chunk.has_remaining() {
            let piece = chunk.chunk();
            collected.extend_from_slice(piece);
            let read = piece.len();
            chunk.advance(read);
        }
    }
    Ok(collected.freeze())
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

fn header_pairs(headers: &HeaderMap) -> Vec<(String, String)> {
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

fn header_text(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get(name)
        .and_then(|value| value.to_str().ok())
        .map(str::to_owned)
}

/// The host requires 200 and a JSON content type, and hangs on an empty body.
fn json_reply(body: Vec<u8>) -> Response<bytes::Bytes> {
    let mut response = Response::new(bytes::Bytes::from(body));
    response.headers_mut().insert(
        warp::http::header::CONTENT_TYPE,
        warp::http::HeaderValue::from_static("application/json; charset=utf-8"),
    );
    response
}

/// A function's response as it is, for forwarding mode. Headers that are not valid HTTP are
/// dropped with a warning rather than failing the whole answer.
fn http_reply(response: HttpResponse) -> Response<bytes::Bytes> {
    let mut reply = Response::new(response.body);
    *reply.status_mut() =
        StatusCode::from_u16(response.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    for (name, value) in &response.headers {
        match (
            warp::http::HeaderName::from_bytes(name.as_bytes()),
            warp::http::HeaderValue::from_str(value),
        ) {
            (Ok(name), Ok(value)) => {
                reply.headers_mut().insert(name, value);
            }
            _ => log::warn!("dropped response header '{name}': not a valid HTTP header"),
        }
    }
    reply
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

    fn chunks(count: usize, size: usize) -> impl Stream<Item = Result<bytes::Bytes, warp::Error>> {
        futures::stream::iter((0..count).map(move |_| Ok(bytes::Bytes::from(vec![1u8; size]))))
    }

    #[tokio::test]
    async fn bodies_over_the_limit_are_refused_without_reading_further() {
        assert!(matches!(
            read_limited(chunks(3, 8), 16).await,
            Err(FunctionError::PayloadTooLarge { limit: 16 })
        ));
        assert_eq!(read_limited(chunks(2, 8), 16).await.unwrap().len(), 16);
    }
}
