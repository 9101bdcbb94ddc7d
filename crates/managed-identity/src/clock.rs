//! The wall clock the cache and the sources read, replaceable in tests.

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

    pub(crate) fn now(&self) -> OffsetDateTime {
        match self {
            Self::System => OffsetDateTime::now_utc(),
            Self::Anchored { wall, at } => *wall + at.elapsed(),
        }
    }
}
