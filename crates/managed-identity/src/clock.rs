//! The wall clock the cache and the sources read, replaceable in tests.

use std::time::SystemTime;

use time::OffsetDateTime;

/// Wall-clock time for expiry decisions. `Anchored` follows tokio's clock, so tests on a paused
/// clock can move "now" with `tokio::time::advance`.
#[derive(Debug, Clone)]
pub(crate) enum Clock {
    /// The system clock.
    System,
    /// `wall` at `at`, advancing with tokio time.
    #[cfg_attr(not(test), allow(dead_code))]
    Anchored {
        wall: OffsetDateTime,
        at: tokio::time::Instant,
    },
}

impl Clock {
    /// A clock that starts at `wall` now and advances with tokio time.
    #[cfg(test)]
    pub(crate) fn anchored(wall: OffsetDateTime) -> Self {
        Self::Anchored {
            wall,
            at: tokio::time::Instant::now(),
        }
    }

    /// Now, in nanoseconds since 1970 (negative before).
    pub(crate) fn unix_nanos(&self) -> i128 {
        match self {
            Self::System => match SystemTime::now().duration_since(SystemTime::UNIX_EPOCH) {
                Ok(after) => after.as_nanos() as i128,
                Err(before) => -(before.duration().as_nanos() as i128),
            },
            Self::Anchored { wall, at } => {
                wall.unix_timestamp_nanos() + at.elapsed().as_nanos() as i128
            }
        }
    }

    pub(crate) fn now(&self) -> OffsetDateTime {
        match self {
            Self::System => OffsetDateTime::now_utc(),
            Self::Anchored { wall, at } => *wall + at.elapsed(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn nanoseconds_since_1970_agree_with_the_date_time() {
        let anchored = Clock::anchored(time::macros::datetime!(2026-11-30 10:20:30.123456789 UTC));
        tokio::time::advance(std::time::Duration::from_millis(1500)).await;
        assert_eq!(
            anchored.unix_nanos(),
            anchored.now().unix_timestamp_nanos(),
            "the same moment"
        );
        assert_eq!(anchored.unix_nanos(), 1_796_034_031_623_456_789);
        let system = Clock::System;
        let gap = system.now().unix_timestamp_nanos() - system.unix_nanos();
        assert!(gap.abs() < 1_000_000_000, "{gap} ns apart");
    }
}
