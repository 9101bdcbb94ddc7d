//! Which failures are retried, and the back-off between attempts.
//!
//! App Service and legacy: connect errors, time-outs, 408, 429, 500, 502, 503, 504. IMDS also
//! 404, 410 and every 5xx; a 410 ("updating, back within 70 s") switches to a slower schedule with
//! a longer budget. 400, 401 and 403 are never retried. `Retry-After` (seconds) is honoured up to a
//! cap; a longer one ends the attempt so the caller sees how long the service asked to wait.
//! Sleeps use tokio time, so tests on a paused clock run instantly.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::time::Duration;

use tokio::time::Instant;

use super::SourceKind;
use super::retry_after::{RetryAfter, parse_retry_after};
use super::transport::{HttpRequest, HttpResponse, Transport, TransportError};

/// Back-off schedule and limits. Scale it down in tests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetryPolicy {
    /// First back-off; doubles per retry (0.5 s → 0.5, 1, 2 s ...).
    pub base_delay: Duration,
    /// Longest single back-off.
    pub max_delay: Duration,
    /// Retries after the first attempt for App Service and legacy.
    pub max_retries: u32,
    /// Retries after the first attempt for IMDS.
    pub imds_max_retries: u32,
    /// Wait between attempts while IMDS answers 410.
    pub gone_delay: Duration,
    /// Total budget once IMDS answered 410 (replaces the acquisition deadline if longer).
    pub gone_budget: Duration,
    /// Longest `Retry-After` we wait for; a longer one ends the attempt as throttled.
    pub retry_after_cap: Duration,
    /// Spread each back-off by ±20 % so many instances do not retry in lockstep.
    pub jitter: bool,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            base_delay: Duration::from_millis(500),
            max_delay: Duration::from_secs(8),
            max_retries: 3,
            imds_max_retries: 5,
            gone_delay: Duration::from_secs(10),
            gone_budget: Duration::from_secs(80),
            retry_after_cap: Duration::from_secs(10),
            jitter: true,
        }
    }
}

impl RetryPolicy {
    /// The back-off before retry number `retry` (1-based), before jitter.
    pub fn backoff(&self, retry: u32) -> Duration {
        let factor = 2u32.saturating_pow(retry.saturating_sub(1));
        self.base_delay.saturating_mul(factor).min(self.max_delay)
    }

    fn retry_limit(&self, kind: SourceKind, gone_seen: bool) -> u32 {
        if gone_seen {
            let per_step = self.gone_delay.as_millis().max(1);
            let steps = self.gone_budget.as_millis() / per_step;
            u32::try_from(steps)
                .unwrap_or(u32::MAX)
                .max(self.imds_max_retries)
        } else if kind == SourceKind::Imds {
            self.imds_max_retries
        } else {
            self.max_retries
        }
    }

    fn jittered(&self, delay: Duration) -> Duration {
        if !self.jitter {
            return delay;
        }
        delay.mul_f64(0.8 + 0.4 * random_fraction())
    }
}

/// A number in [0, 1) that differs between calls, without a random-number dependency.
fn random_fraction() -> f64 {
    let mut hasher = RandomState::new().build_hasher();
    hasher.write_u64(0x5eed);
    (hasher.finish() >> 11) as f64 / (1u64 << 53) as f64
}

/// Whether a status is worth another attempt on this source.
pub(crate) fn is_retryable_status(kind: SourceKind, status: u16) -> bool {
    match status {
        408 | 429 | 500 | 502 | 503 | 504 => true,
        404 | 410 | 501 | 505..=599 => kind == SourceKind::Imds,
        _ => false,
    }
}

/// The `Retry-After` an identity endpoint's answer asks for, in seconds; the HTTP-date form is
/// ignored (we fall back to our back-off).
pub(crate) fn honoured_retry_after(value: &str) -> Option<Duration> {
    parse_retry_after(value).and_then(RetryAfter::delay)
}

/// Why the loop stopped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum StopReason {
    /// The last answer is not retryable (success or a final error).
    Final,
    /// Retries used up.
    RetriesExhausted,
    /// The next wait would pass the acquisition deadline.
    Deadline,
    /// The service asked us to wait longer than the cap.
    RetryAfterTooLong(Duration),
}

/// The last thing that happened and how many requests it took.
#[derive(Debug)]
pub(crate) struct RetryOutcome {
    pub(crate) last: Result<HttpResponse, TransportError>,
    pub(crate) attempts: u32,
    pub(crate) stop: StopReason,
}

/// How long one acquisition may take: `deadline` in all (counted from `started`), each attempt
/// at most `request_timeout`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Budget {
    pub(crate) started: Instant,
    pub(crate) deadline: Duration,
    pub(crate) request_timeout: Duration,
}

/// Sends `request` until it gets a final answer, the retries are used up or the deadline would
/// pass.
pub(crate) async fn send_with_retries(
    transport: &dyn Transport,
    request: &HttpRequest,
    kind: SourceKind,
    policy: &RetryPolicy,
    budget: Budget,
) -> RetryOutcome {
    let Budget {
        started,
        deadline: acquisition_deadline,
        request_timeout,
    } = budget;
    let mut attempts = 0u32;
    let mut gone_seen = false;
    // Once IMDS says 410 ("back within 70 s") the budget grows to `gone_budget`.
    let deadline = |gone_seen: bool| {
        started
            + if gone_seen {
                acquisition_deadline.max(policy.gone_budget)
            } else {
                acquisition_deadline
            }
    };
    loop {
        attempts += 1;
        let budget = deadline(gone_seen)
            .saturating_duration_since(Instant::now())
            .min(request_timeout);
        let last = match tokio::time::timeout(budget, transport.get(request)).await {
            Ok(result) => result,
            Err(_) => Err(TransportError::Timeout),
        };
        let status = last.as_ref().ok().map(|r| r.status);
        if status.is_some_and(|s| !is_retryable_status(kind, s)) {
            return RetryOutcome {
                last,
                attempts,
                stop: StopReason::Final,
            };
        }
        gone_seen |= kind == SourceKind::Imds && status == Some(410);
        let outcome = |stop| RetryOutcome {
            last: last.clone(),
            attempts,
            stop,
        };
        if attempts > policy.retry_limit(kind, gone_seen) {
            return outcome(StopReason::RetriesExhausted);
        }
        let asked = last
            .as_ref()
            .ok()
            .and_then(|r| r.retry_after.as_deref())
            .and_then(honoured_retry_after);
        let delay = match asked {
            Some(wait) if wait > policy.retry_after_cap => {
                return outcome(StopReason::RetryAfterTooLong(wait));
            }
            Some(wait) => wait,
            None if gone_seen => policy.gone_delay,
            None => policy.jittered(policy.backoff(attempts)),
        };
        if Instant::now() + delay >= deadline(gone_seen) {
            return outcome(StopReason::Deadline);
        }
        match &last {
            Ok(response) => log::debug!(
                "{kind}: attempt {attempts} answered HTTP {}; retrying in {delay:?}",
                response.status
            ),
            Err(error) => {
                log::debug!("{kind}: attempt {attempts} failed ({error}); retrying in {delay:?}")
            }
        }
        tokio::time::sleep(delay).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let policy = RetryPolicy::default();
        assert_eq!(policy.backoff(1), Duration::from_millis(500));
        assert_eq!(policy.backoff(2), Duration::from_secs(1));
        assert_eq!(policy.backoff(3), Duration::from_secs(2));
        assert_eq!(policy.backoff(30), Duration::from_secs(8));
    }

    #[test]
    fn jitter_stays_within_twenty_percent() {
        let policy = RetryPolicy::default();
        for _ in 0..100 {
            let d = policy.jittered(Duration::from_secs(1));
            assert!(
                d >= Duration::from_millis(800) && d < Duration::from_millis(1200),
                "{d:?}"
            );
        }
    }

    #[test]
    fn retryable_statuses_per_source() {
        for status in [408, 429, 500, 502, 503, 504] {
            assert!(is_retryable_status(SourceKind::AppService2019, status));
            assert!(is_retryable_status(SourceKind::AppService2017, status));
            assert!(is_retryable_status(SourceKind::Imds, status));
        }
        for status in [404, 410] {
            assert!(!is_retryable_status(SourceKind::AppService2019, status));
            assert!(is_retryable_status(SourceKind::Imds, status));
        }
        for status in [200, 307, 400, 401, 403] {
            for kind in [
                SourceKind::AppService2019,
                SourceKind::AppService2017,
                SourceKind::Imds,
            ] {
                assert!(!is_retryable_status(kind, status), "{kind} {status}");
            }
        }
    }

    #[test]
    fn retry_after_seconds_only() {
        assert_eq!(honoured_retry_after(" 2 "), Some(Duration::from_secs(2)));
        assert_eq!(honoured_retry_after("Wed, 21 Oct 2015 07:28:00 GMT"), None);
    }

    #[test]
    fn gone_budget_allows_at_least_seventy_seconds() {
        let policy = RetryPolicy {
            jitter: false,
            ..RetryPolicy::default()
        };
        let limit = policy.retry_limit(SourceKind::Imds, true);
        assert!(policy.gone_delay * limit >= Duration::from_secs(70));
    }
}
