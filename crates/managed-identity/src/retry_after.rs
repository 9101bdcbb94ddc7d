//! The `Retry-After` header (<https://www.rfc-editor.org/rfc/rfc9110#field.retry-after>): a number
//! of seconds or an HTTP date. The one parser of the repository; each caller decides which forms
//! it honours (the identity retry loop takes seconds only, the service clients both).

use std::time::Duration;

use time::OffsetDateTime;

/// A parsed `Retry-After` value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RetryAfter {
    /// `Retry-After: 120`: wait this long.
    Delay(Duration),
    /// `Retry-After: Wed, 21 Oct 2015 07:28:00 GMT`: wait until then.
    At(OffsetDateTime),
}

impl RetryAfter {
    /// The wait when the value was a number of seconds; `None` for a date.
    pub fn delay(self) -> Option<Duration> {
        match self {
            Self::Delay(wait) => Some(wait),
            Self::At(_) => None,
        }
    }

    /// How long to wait counted from `now`: a date in the past means no wait.
    pub fn wait_from(self, now: OffsetDateTime) -> Duration {
        match self {
            Self::Delay(wait) => wait,
            Self::At(at) => Duration::try_from(at - now).unwrap_or(Duration::ZERO),
        }
    }
}

/// Reads a `Retry-After` value: whole seconds (surrounding spaces allowed) or an RFC 7231 date.
pub fn parse_retry_after(value: &str) -> Option<RetryAfter> {
    let value = value.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(RetryAfter::Delay(Duration::from_secs(seconds)));
    }
    azure_core::time::parse_rfc7231(value)
        .ok()
        .map(RetryAfter::At)
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn seconds_and_dates() {
        assert_eq!(
            parse_retry_after(" 2 "),
            Some(RetryAfter::Delay(Duration::from_secs(2)))
        );
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT"),
            Some(RetryAfter::At(datetime!(2015-10-21 07:28:00 UTC)))
        );
        for bad in ["soon", "-1", "1.5", ""] {
            assert_eq!(parse_retry_after(bad), None, "{bad}");
        }
    }

    #[test]
    fn waits_count_from_now_and_never_go_negative() {
        let now = datetime!(2015-10-21 07:28:00 UTC);
        let date = RetryAfter::At(datetime!(2015-10-21 07:28:30 UTC));
        assert_eq!(date.wait_from(now), Duration::from_secs(30));
        assert_eq!(date.delay(), None);
        let past = RetryAfter::At(datetime!(2015-10-21 07:00:00 UTC));
        assert_eq!(past.wait_from(now), Duration::ZERO);
        let seconds = RetryAfter::Delay(Duration::from_secs(7));
        assert_eq!(seconds.wait_from(now), Duration::from_secs(7));
        assert_eq!(seconds.delay(), Some(Duration::from_secs(7)));
    }
}
