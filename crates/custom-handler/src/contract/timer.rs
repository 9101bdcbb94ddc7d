//! The timer trigger's `TimerInfo` input (docs/host-contract.md in the repository).

use serde_json::{Map, Value};
use time::{Date, Month, OffsetDateTime, PrimitiveDateTime, Time, UtcOffset};

use super::decode::{as_text, object_or_encoded};

/// What the host tells a timer function about this firing.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TimerInfo {
    /// `null` when schedule monitoring is off (`useMonitor: false`, or a schedule that fires more
    /// than once a minute).
    pub schedule_status: Option<ScheduleStatus>,
    /// True when this run makes up for an occurrence missed while the app was down.
    pub is_past_due: bool,
}

/// The schedule monitor's record. `next` is the occurrence running now, not the next one.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ScheduleStatus {
    /// The previous occurrence (`0001-01-01T00:00:00+00:00` on the first ever run).
    pub last: Option<Timestamp>,
    /// The occurrence that is running now.
    pub next: Option<Timestamp>,
    /// When the monitor record was last written.
    pub last_updated: Option<Timestamp>,
}

/// A host timestamp: always kept as the text sent, parsed when it can be (host#7391 shows values
/// a strict RFC 3339 parser rejects, so a parse failure is never an error).
#[derive(Debug, Clone, PartialEq)]
pub struct Timestamp {
    /// The text exactly as the host sent it.
    pub text: String,
    /// The instant, when the text could be read; a missing offset is taken as UTC.
    pub parsed: Option<OffsetDateTime>,
}

impl TimerInfo {
    pub(super) fn from_object(object: &Map<String, Value>) -> Self {
        let status = object.get("ScheduleStatus").filter(|v| !v.is_null());
        Self {
            schedule_status: status
                .map(|value| ScheduleStatus::from_object(&object_or_encoded(Some(value)))),
            is_past_due: object.get("IsPastDue").map(is_true).unwrap_or(false),
        }
    }
}

impl ScheduleStatus {
    fn from_object(object: &Map<String, Value>) -> Self {
        let stamp = |key: &str| {
            object
                .get(key)
                .filter(|v| !v.is_null())
                .map(|v| Timestamp::new(as_text(v)))
        };
        Self {
            last: stamp("Last"),
            next: stamp("Next"),
            last_updated: stamp("LastUpdated"),
        }
    }
}

impl Timestamp {
    /// Keeps `text` and parses it leniently.
    pub fn new(text: String) -> Self {
        let parsed = parse_lenient(&text);
        Self { text, parsed }
    }
}

fn is_true(value: &Value) -> bool {
    match value {
        Value::Bool(flag) => *flag,
        other => as_text(other).eq_ignore_ascii_case("true"),
    }
}

/// Reads `YYYY-MM-DDTHH:MM:SS[.f{0,7}][Z|±HH:MM]`; no offset means UTC.
fn parse_lenient(text: &str) -> Option<OffsetDateTime> {
    let text = text.trim();
    let (date_part, rest) = text.split_once(['T', ' '])?;
    let date = parse_date(date_part)?;
    let (clock, offset) = split_offset(rest)?;
    let time = parse_clock(clock)?;
    Some(PrimitiveDateTime::new(date, time).assume_offset(offset))
}

fn parse_date(text: &str) -> Option<Date> {
    let mut parts = text.split('-');
    let year: i32 = parts.next()?.parse().ok()?;
    let month: u8 = parts.next()?.parse().ok()?;
    let day: u8 = parts.next()?.parse().ok()?;
    if parts.next().is_some() {
        return None;
    }
    Date::from_calendar_date(year, Month::try_from(month).ok()?, day).ok()
}

fn split_offset(text: &str) -> Option<(&str, UtcOffset)> {
    if let Some(clock) = text.strip_suffix(['Z', 'z']) {
        return Some((clock, UtcOffset::UTC));
    }
    match text.rfind(['+', '-']) {
        Some(at) => {
            let (clock, offset) = text.split_at(at);
            let sign: i8 = if offset.starts_with('-') { -1 } else { 1 };
            let (hours, minutes) = offset[1..].split_once(':')?;
            let hours: i8 = hours.parse().ok()?;
            let minutes: i8 = minutes.parse().ok()?;
            let offset = UtcOffset::from_hms(sign * hours, sign * minutes, 0).ok()?;
            Some((clock, offset))
        }
        None => Some((text, UtcOffset::UTC)),
    }
}

fn parse_clock(text: &str) -> Option<Time> {
    let (whole, fraction) = text.split_once('.').unwrap_or((text, ""));
    let mut parts = whole.split(':');
    let hour: u8 = parts.next()?.parse().ok()?;
    let minute: u8 = parts.next()?.parse().ok()?;
    let second: u8 = parts.next()?.parse().ok()?;
    if parts.next().is_some() || fraction.len() > 9 || !fraction.bytes().all(|b| b.is_ascii_digit())
    {
        return None;
    }
    let nanos = format!("{fraction:0<9}").parse::<u32>().ok()?;
    Time::from_hms_nano(hour, minute, second, nanos).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use time::macros::datetime;

    fn timer(value: Value) -> TimerInfo {
        TimerInfo::from_object(value.as_object().unwrap())
    }

    #[test]
    fn the_specs_timer_example_parses() {
        let info = timer(json!({"Schedule": {"AdjustForDST": true},
            "ScheduleStatus": {"Last": "2024-10-24T17:40:00.0049136+00:00", "Next": "2024-10-24T17:45:00+00:00",
                               "LastUpdated": "2024-10-24T17:40:00.0049136+00:00"},
            "IsPastDue": false}));
        let status = info.schedule_status.unwrap();
        assert_eq!(
            status.next.unwrap().parsed,
            Some(datetime!(2024-10-24 17:45:00 UTC))
        );
        assert_eq!(
            status.last.unwrap().parsed,
            Some(datetime!(2024-10-24 17:40:00.0049136 UTC))
        );
        assert!(!info.is_past_due);
    }

    #[test]
    fn schedule_status_null_and_first_run_values_are_accepted() {
        let info = timer(
            json!({"Schedule": {"AdjustForDST": true}, "ScheduleStatus": null, "IsPastDue": "true"}),
        );
        assert_eq!(info.schedule_status, None);
        assert!(info.is_past_due);
        let first = Timestamp::new("0001-01-01T00:00:00+00:00".into());
        assert_eq!(first.parsed, Some(datetime!(0001-01-01 00:00:00 UTC)));
    }

    #[test]
    fn every_timestamp_form_the_host_sends_is_read() {
        let cases = [
            ("2024-10-24T17:45:00", datetime!(2024-10-24 17:45:00 UTC)),
            ("2024-10-24T17:45:00Z", datetime!(2024-10-24 17:45:00 UTC)),
            (
                "2024-10-24T17:45:00.1Z",
                datetime!(2024-10-24 17:45:00.1 UTC),
            ),
            (
                "2024-10-24T19:45:00.1234567+02:00",
                datetime!(2024-10-24 17:45:00.1234567 UTC),
            ),
            (
                "2024-10-24T12:45:00-05:00",
                datetime!(2024-10-24 17:45:00 UTC),
            ),
        ];
        for (text, expected) in cases {
            assert_eq!(Timestamp::new(text.into()).parsed, Some(expected), "{text}");
        }
    }

    #[test]
    fn timestamps_that_do_not_parse_are_kept_as_text() {
        for text in [
            "10/24/2024 5:45:00 PM",
            "",
            "2024-13-01T00:00:00",
            "2024-10-24T25:00:00Z",
        ] {
            let stamp = Timestamp::new(text.into());
            assert_eq!(stamp.text, text);
            assert_eq!(stamp.parsed, None, "{text}");
        }
    }
}
