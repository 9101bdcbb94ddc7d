//! How long a token is handed out and when it is refreshed: shared by the sources, which stamp
//! each new token with its refresh time, and the cache, which stops serving a token near expiry.

use time::{Duration, OffsetDateTime};

/// Tokens are never handed out with less than this left.
pub(crate) const EXPIRY_MARGIN: Duration = Duration::minutes(5);
/// Tokens living at least this long are refreshed at half-life.
const HALF_LIFE_THRESHOLD: Duration = Duration::hours(2);

/// When the cache should start refreshing: `refresh_in` if the service sent one, else half-life
/// for tokens living ≥ 2 h, never later than 5 minutes before expiry.
pub(crate) fn refresh_on(
    issued: OffsetDateTime,
    expires_on: OffsetDateTime,
    refresh_in: Option<Duration>,
) -> OffsetDateTime {
    let last_moment = expires_on - EXPIRY_MARGIN;
    let lifetime = expires_on - issued;
    let proposed = match refresh_in {
        Some(refresh_in) => issued.checked_add(refresh_in).unwrap_or(last_moment),
        None if lifetime >= HALF_LIFE_THRESHOLD => issued + lifetime / 2,
        None => last_moment,
    };
    proposed.min(last_moment)
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn refresh_on_rules() {
        let issued = datetime!(2030-01-01 00:00 UTC);
        let day = issued + Duration::hours(24);
        assert_eq!(refresh_on(issued, day, None), issued + Duration::hours(12));
        let two_hours = issued + Duration::hours(2);
        assert_eq!(
            refresh_on(issued, two_hours, None),
            issued + Duration::hours(1)
        );
        let hour = issued + Duration::hours(1);
        assert_eq!(refresh_on(issued, hour, None), hour - EXPIRY_MARGIN);
        assert_eq!(
            refresh_on(issued, day, Some(Duration::minutes(10))),
            issued + Duration::minutes(10)
        );
        // refresh_in can never push refreshing into the 5-minute margin.
        assert_eq!(
            refresh_on(issued, hour, Some(Duration::hours(2))),
            hour - EXPIRY_MARGIN
        );
    }
}
