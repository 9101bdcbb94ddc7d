//! host.json's `extensions.http.maxConcurrentRequests` and `maxOutstandingRequests`, as the
//! host's request queue applies them (azure-functions-host, `HttpRequestQueue` and
//! `HttpThrottleMiddleware`): when either is set, every request but an admin one runs through a
//! queue that runs at most `maxConcurrentRequests` at once and holds at most
//! `maxOutstandingRequests` (running and waiting together); one more is refused at once with 429
//! and `X-FUNCTION-SCALEOUT: 1`, and the host logs "Http request queue limit of N has been
//! exceeded." Both default to unbounded (`-1`) outside Windows Consumption, so with neither set
//! nothing waits.

use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};

use bytes::Bytes;
use http_body_util::Full;
use hyper::{Response, StatusCode};
use serde_json::Value;
use tokio::sync::Semaphore;

use super::journal::{HostLog, LogEntry};

/// The two limits as host.json gives them; `None` is unbounded (`-1`, or not set).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Limits {
    /// `maxConcurrentRequests`.
    pub max_concurrent: Option<usize>,
    /// `maxOutstandingRequests`.
    pub max_outstanding: Option<usize>,
}

impl Limits {
    /// Reads the limits from host.json's `extensions.http` (names in any case); a value that is
    /// neither `-1` nor a positive whole number is left out with a note (the real host fails to
    /// start on it).
    pub fn from_http_section(http: Option<&Value>, notes: &mut Vec<String>) -> Self {
        let mut read = |name: &str| {
            let value = http?
                .as_object()?
                .iter()
                .find(|(key, _)| key.eq_ignore_ascii_case(name))?
                .1;
            match value.as_i64() {
                Some(-1) => None,
                Some(n) if n > 0 => usize::try_from(n).ok(),
                _ => {
                    notes.push(format!(
                        "extensions.http.{name} {value} is neither -1 nor a positive number; left unbounded"
                    ));
                    None
                }
            }
        };
        Self {
            max_concurrent: read("maxConcurrentRequests"),
            max_outstanding: read("maxOutstandingRequests"),
        }
    }
}

/// The host's request queue; absent when both limits are unbounded.
#[derive(Debug)]
pub struct RequestQueue {
    limits: Limits,
    running: Semaphore,
    outstanding: AtomicUsize,
}

impl RequestQueue {
    /// The queue for `limits`, or `None` when neither is set (the host then adds no queue).
    pub fn new(limits: Limits) -> Option<Self> {
        if limits == Limits::default() {
            return None;
        }
        let permits = limits.max_concurrent.unwrap_or(Semaphore::MAX_PERMITS);
        Some(Self {
            limits,
            running: Semaphore::new(permits),
            outstanding: AtomicUsize::new(0),
        })
    }

    /// Runs `request` once a slot is free, or refuses it at once when the queue is full.
    pub async fn run(
        &self,
        log: &HostLog,
        request: impl Future<Output = Response<Full<Bytes>>>,
    ) -> Response<Full<Bytes>> {
        let Some(_place) = self.enter() else {
            log.push(LogEntry {
                level: "Information",
                category: "HttpThrottleMiddleware".into(),
                invocation_id: None,
                message: format!(
                    "Http request queue limit of {} has been exceeded.",
                    self.outstanding_limit()
                ),
            });
            return refused();
        };
        // The semaphore is never closed, so acquiring only waits.
        let _running = self.running.acquire().await;
        request.await
    }

    /// `maxOutstandingRequests`, unbounded as the largest count.
    fn outstanding_limit(&self) -> usize {
        self.limits.max_outstanding.unwrap_or(usize::MAX)
    }

    /// A place among the outstanding requests, held until dropped.
    fn enter(&self) -> Option<Place<'_>> {
        let limit = self.outstanding_limit();
        self.outstanding
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |held| {
                (held < limit).then_some(held + 1)
            })
            .ok()
            .map(|_| Place(&self.outstanding))
    }
}

struct Place<'a>(&'a AtomicUsize);

impl Drop for Place<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// The host's refusal: 429, no body, and the header that asks the platform to scale out.
fn refused() -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::new()));
    *response.status_mut() = StatusCode::TOO_MANY_REQUESTS;
    response.headers_mut().insert(
        "X-FUNCTION-SCALEOUT",
        hyper::header::HeaderValue::from_static("1"),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::sync::Arc;

    fn limits(http: Value) -> (Limits, Vec<String>) {
        let mut notes = Vec::new();
        (Limits::from_http_section(Some(&http), &mut notes), notes)
    }

    #[test]
    fn limits_are_read_in_any_case_and_minus_one_is_unbounded() {
        let (read, notes) =
            limits(json!({"MaxConcurrentRequests": 48, "maxoutstandingrequests": -1}));
        assert_eq!(read.max_concurrent, Some(48));
        assert_eq!(read.max_outstanding, None);
        assert!(notes.is_empty());
        assert!(
            RequestQueue::new(Limits::default()).is_none(),
            "no queue when unbounded"
        );
    }

    #[test]
    fn a_value_that_is_not_a_positive_number_is_noted_and_left_unbounded() {
        let (read, notes) =
            limits(json!({"maxConcurrentRequests": 0, "maxOutstandingRequests": "9"}));
        assert_eq!(read, Limits::default());
        assert_eq!(notes.len(), 2, "{notes:?}");
    }

    #[tokio::test]
    async fn requests_past_the_concurrent_limit_wait_and_past_the_outstanding_limit_get_429() {
        let queue = Arc::new(
            RequestQueue::new(Limits {
                max_concurrent: Some(1),
                max_outstanding: Some(2),
            })
            .unwrap(),
        );
        let log = Arc::new(HostLog::default());
        let (release, held) = tokio::sync::oneshot::channel::<()>();
        let first = tokio::spawn({
            let (queue, log) = (Arc::clone(&queue), Arc::clone(&log));
            async move {
                queue
                    .run(&log, async {
                        let _ = held.await;
                        Response::new(Full::new(Bytes::from("first")))
                    })
                    .await
            }
        });
        while queue.running.available_permits() > 0 {
            tokio::task::yield_now().await;
        }
        let second = tokio::spawn({
            let (queue, log) = (Arc::clone(&queue), Arc::clone(&log));
            async move {
                queue
                    .run(&log, async {
                        Response::new(Full::new(Bytes::from("second")))
                    })
                    .await
            }
        });
        while queue.outstanding.load(Ordering::Acquire) < 2 {
            tokio::task::yield_now().await;
        }
        let third = queue
            .run(&log, async { Response::new(Full::new(Bytes::new())) })
            .await;
        assert_eq!(third.status(), 429);
        assert_eq!(third.headers()["x-function-scaleout"], "1");
        assert!(
            !second.is_finished(),
            "the second waits while the first runs"
        );
        release.send(()).unwrap();
        assert_eq!(first.await.unwrap().status(), 200);
        assert_eq!(second.await.unwrap().status(), 200);
        assert_eq!(queue.outstanding.load(Ordering::Acquire), 0);
        let lines = log.entries.list();
        assert_eq!(lines.len(), 1);
        assert_eq!(
            lines[0].message,
            "Http request queue limit of 2 has been exceeded."
        );
    }
}
