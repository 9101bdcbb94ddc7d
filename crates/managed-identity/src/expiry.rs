//! Parsing of the expiry fields the identity endpoints send.
//!
//! `expires_on` arrives as epoch seconds (a JSON number or a string of digits), as a US-style
//! date with an offset (`3/21/2019 11:39:40 AM +00:00`, `06/20/2019 02:57:58 +00:00`,
//! `09/14/2017 00:00:00 PM +00:00`) from the legacy 2017 endpoint, or as RFC 3339. `expires_in`
//! and `refresh_in` are durations in seconds (number or string).
//!
//! The typed answers in `sources` read these fields through [`expires_on`] and [`seconds`]
//! (`#[serde(deserialize_with = ...)]`), which never fail: a value they cannot read becomes
//! [`Field::Unreadable`] with the reason, so the caller reports problems in its own order.

use serde::{Deserialize, Deserializer};
use serde_json::Value;
use time::format_description::well_known::Rfc3339;
use time::{Date, Duration, Month, OffsetDateTime, PrimitiveDateTime, Time, UtcOffset};

/// Reads an `expires_on` value in any form the endpoints use. The error says what was wrong
/// (it quotes the value, which is not a secret).
pub fn parse_expires_on(value: &Value) -> Result<OffsetDateTime, String> {
    match value {
        Value::Number(n) => epoch_from_number(n),
        Value::String(s) => parse_expires_on_text(s),
        other => Err(format!(
            "expires_on has type {}, expected a number or a string",
            json_type(other)
        )),
    }
}

/// Reads a duration in whole seconds (`expires_in`, `refresh_in`), as a number or digit string.
pub fn parse_seconds(value: &Value) -> Result<Duration, String> {
    let seconds = match value {
        Value::Number(n) => n.as_i64().or_else(|| {
            n.as_f64()
                .filter(|f| f.is_finite())
                .map(|f| f.floor() as i64)
        }),
        Value::String(s) => s.trim().parse::<i64>().ok(),
        _ => None,
    };
    match seconds {
        Some(s) if s >= 0 => Ok(Duration::seconds(s)),
        _ => Err(format!("{value} is not a number of seconds")),
    }
}

/// A field of an endpoint's answer, read leniently.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) enum Field<T> {
    /// Not there, `null`, or a blank string.
    #[default]
    Absent,
    /// Read.
    Read(T),
    /// There, but not readable; says why (quoting the value, which is not a secret).
    Unreadable(String),
}

impl<T> Field<T> {
    /// The value when it was read; `None` when absent or unreadable.
    pub(crate) fn ok(self) -> Option<T> {
        match self {
            Self::Read(value) => Some(value),
            Self::Absent | Self::Unreadable(_) => None,
        }
    }
}

/// Absent for `null` and blank strings: some endpoints send `"expires_in": ""`.
fn is_blank(value: &Value) -> bool {
    match value {
        Value::Null => true,
        Value::String(s) => s.trim().is_empty(),
        _ => false,
    }
}

fn lenient<'de, D, T>(
    deserializer: D,
    parse: impl FnOnce(&Value) -> Result<T, String>,
) -> Result<Field<T>, D::Error>
where
    D: Deserializer<'de>,
{
    let value = Value::deserialize(deserializer)?;
    if is_blank(&value) {
        return Ok(Field::Absent);
    }
    Ok(match parse(&value) {
        Ok(read) => Field::Read(read),
        Err(why) => Field::Unreadable(why),
    })
}

/// `deserialize_with` for an `expires_on` field: [`parse_expires_on`], leniently.
pub(crate) fn expires_on<'de, D>(deserializer: D) -> Result<Field<OffsetDateTime>, D::Error>
where
    D: Deserializer<'de>,
{
    lenient(deserializer, parse_expires_on)
}

/// `deserialize_with` for `expires_in` / `refresh_in`: [`parse_seconds`], leniently.
pub(crate) fn seconds<'de, D>(deserializer: D) -> Result<Field<Duration>, D::Error>
where
    D: Deserializer<'de>,
{
    lenient(deserializer, parse_seconds)
}

fn json_type(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "bool",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

fn epoch_from_number(n: &serde_json::Number) -> Result<OffsetDateTime, String> {
    let seconds = n
        .as_i64()
        .or_else(|| {
            n.as_f64()
                .filter(|f| f.is_finite())
                .map(|f| f.floor() as i64)
        })
        .ok_or_else(|| format!("expires_on {n} is not a usable epoch value"))?;
    epoch(seconds)
}

fn epoch(seconds: i64) -> Result<OffsetDateTime, String> {
    OffsetDateTime::from_unix_timestamp(seconds)
        .map_err(|_| format!("expires_on {seconds} is out of range"))
}

fn parse_expires_on_text(text: &str) -> Result<OffsetDateTime, String> {
    let text = text.trim();
    if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) {
        let seconds = text
            .parse::<i64>()
            .map_err(|_| format!("expires_on \"{text}\" is out of range"))?;
        return epoch(seconds);
    }
    if let Ok(parsed) = OffsetDateTime::parse(text, &Rfc3339) {
        return Ok(parsed);
    }
    parse_us_date(text).ok_or_else(|| {
        format!(
            "expires_on \"{text}\" is neither epoch seconds, RFC 3339, nor M/D/YYYY H:MM:SS [AM|PM] +HH:MM"
        )
    })
}

/// `M/D/YYYY H:MM:SS [AM|PM] ±HH:MM` as the legacy endpoint writes it. Hour 00 with PM (seen in
/// the documentation) is read as 00, the earlier of the two readings, so we refresh early.
fn parse_us_date(text: &str) -> Option<OffsetDateTime> {
    let parts: Vec<&str> = text.split_whitespace().collect();
    let (date, clock, meridiem, offset) = match parts.as_slice() {
        [date, clock, offset] => (*date, *clock, None, *offset),
        [date, clock, meridiem, offset] => (*date, *clock, Some(*meridiem), *offset),
        _ => return None,
    };
    let date = parse_month_day_year(date)?;
    let (hour, minute, second) = parse_clock(clock)?;
    let hour = apply_meridiem(hour, meridiem)?;
    let offset = parse_offset(offset)?;
    let time = Time::from_hms(hour, minute, second).ok()?;
    Some(PrimitiveDateTime::new(date, time).assume_offset(offset))
}

fn parse_month_day_year(text: &str) -> Option<Date> {
    let mut fields = text.split('/');
    let month: u8 = fields.next()?.parse().ok()?;
    let day: u8 = fields.next()?.parse().ok()?;
    let year: i32 = fields.next()?.parse().ok()?;
    if fields.next().is_some() {
        return None;
    }
    Date::from_calendar_date(year, Month::try_from(month).ok()?, day).ok()
}

fn parse_clock(text: &str) -> Option<(u8, u8, u8)> {
    let mut fields = text.split(':');
    let hour = fields.next()?.parse().ok()?;
    let minute = fields.next()?.parse().ok()?;
    // Ignore fractional seconds if a platform ever sends them.
    let second = fields.next()?.split('.').next()?.parse().ok()?;
    if fields.next().is_some() {
        return None;
    }
    Some((hour, minute, second))
}

fn apply_meridiem(hour: u8, meridiem: Option<&str>) -> Option<u8> {
    let Some(meridiem) = meridiem else {
        return Some(hour);
    };
    match (meridiem.to_ascii_uppercase().as_str(), hour) {
        (_, 0) => Some(0),
        ("AM", 12) => Some(0),
        ("AM", 1..=11) => Some(hour),
        ("PM", 1..=11) => Some(hour + 12),
        ("PM", 12..=23) => Some(hour),
        _ => None,
    }
}

fn parse_offset(text: &str) -> Option<UtcOffset> {
    if text.eq_ignore_ascii_case("Z") || text.eq_ignore_ascii_case("UTC") {
        return Some(UtcOffset::UTC);
    }
    let (sign, rest) = match text.as_bytes().first()? {
        b'+' => (1i8, &text[1..]),
        b'-' => (-1i8, &text[1..]),
        _ => return None,
    };
    let (hours, minutes) = match rest.split_once(':') {
        Some((h, m)) => (h, m),
        // `split_at_checked`: four bytes are not always four characters, and a split inside
        // one would panic.
        None if rest.len() == 4 => rest.split_at_checked(2)?,
        None => return None,
    };
    if !(hours.bytes().all(|b| b.is_ascii_digit()) && minutes.bytes().all(|b| b.is_ascii_digit())) {
        return None;
    }
    let hours: i8 = hours.parse().ok()?;
    let minutes: i8 = minutes.parse().ok()?;
    UtcOffset::from_hms(sign * hours, sign * minutes, 0).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use time::macros::datetime;

    fn parsed(value: Value) -> OffsetDateTime {
        parse_expires_on(&value).unwrap()
    }

    #[test]
    fn an_offset_with_a_multibyte_character_is_refused_not_a_panic() {
        // Found by scripts/fuzz: "+\u{fffd}0" is four bytes, and splitting it at byte 2 panicked.
        assert!(parse_expires_on(&json!("09/14/2017 00:00:00 PM +\u{fffd}0")).is_err());
        assert!(parse_expires_on(&json!("3/21/2019 11:39:40 AM -é00")).is_err());
    }

    #[test]
    fn epoch_as_string_and_number() {
        let expected = datetime!(2020-04-15 21:05:35 UTC);
        assert_eq!(parsed(json!("1586984735")), expected);
        assert_eq!(parsed(json!(1586984735)), expected);
        assert_eq!(parsed(json!(1586984735.0)), expected);
        assert_eq!(parsed(json!(" 1586984735 ")), expected);
    }

    /// Each text reads as the instant written after it in RFC 3339; a failure names the text.
    fn assert_reads(cases: &[(&str, &str)]) {
        for (text, expected) in cases {
            let expected = OffsetDateTime::parse(expected, &Rfc3339).unwrap();
            assert_eq!(parsed(json!(text)), expected, "{text}");
        }
    }

    #[test]
    fn windows_twelve_hour_form() {
        assert_reads(&[
            ("3/21/2019 11:39:40 AM +00:00", "2019-03-21T11:39:40Z"),
            ("1/16/2020 5:24:12 PM +00:00", "2020-01-16T17:24:12Z"),
            ("1/16/2020 12:24:12 AM +00:00", "2020-01-16T00:24:12Z"),
            ("1/16/2020 12:24:12 PM +00:00", "2020-01-16T12:24:12Z"),
        ]);
    }

    #[test]
    fn linux_twenty_four_hour_form() {
        assert_reads(&[
            ("06/20/2019 02:57:58 +00:00", "2019-06-20T02:57:58Z"),
            ("06/20/2019 14:57:58 -02:30", "2019-06-20T17:27:58Z"),
        ]);
    }

    #[test]
    fn hour_zero_with_pm_takes_the_earlier_reading() {
        assert_reads(&[("09/14/2017 00:00:00 PM +00:00", "2017-09-14T00:00:00Z")]);
    }

    #[test]
    fn rfc3339() {
        assert_reads(&[
            ("2038-01-18T00:00:00Z", "2038-01-18T00:00:00Z"),
            ("2024-05-01T10:00:00.5+02:00", "2024-05-01T08:00:00.5Z"),
        ]);
    }

    #[test]
    fn rejects_garbage() {
        for bad in [
            json!(""),
            json!("soon"),
            json!("13/01/2020 01:00:00 +00:00"),
            json!("1/1/2020 13:00:00 AM +00:00"),
            json!("1/1/2020 01:00:00"),
            json!(true),
            json!(null),
            json!("99999999999999999999999"),
            json!("1/1/2020 01:00:00 --128:00"),
            json!("1/1/2020 01:00:00 +-1:00"),
        ] {
            assert!(parse_expires_on(&bad).is_err(), "{bad} was accepted");
        }
    }

    #[derive(Debug, Deserialize)]
    struct Answer {
        #[serde(default, deserialize_with = "expires_on")]
        expires_on: Field<OffsetDateTime>,
        #[serde(default, deserialize_with = "seconds")]
        expires_in: Field<Duration>,
    }

    fn answer(value: Value) -> Answer {
        Answer::deserialize(&value).unwrap()
    }

    #[test]
    fn fields_read_leniently_never_fail() {
        let read = answer(json!({"expires_on": "1586984735", "expires_in": 3599}));
        assert_eq!(
            read.expires_on,
            Field::Read(datetime!(2020-04-15 21:05:35 UTC))
        );
        assert_eq!(read.expires_in, Field::Read(Duration::seconds(3599)));
        for blank in [json!({}), json!({"expires_on": null, "expires_in": " "})] {
            let blank = answer(blank);
            assert_eq!(blank.expires_on, Field::Absent);
            assert_eq!(blank.expires_in, Field::Absent);
        }
        let bad = answer(json!({"expires_on": true, "expires_in": "x"}));
        assert_eq!(
            bad.expires_on,
            Field::Unreadable("expires_on has type bool, expected a number or a string".into())
        );
        assert_eq!(
            bad.expires_in,
            Field::Unreadable("\"x\" is not a number of seconds".into())
        );
    }

    #[test]
    fn seconds_as_number_or_string() {
        assert_eq!(
            parse_seconds(&json!("3599")).unwrap(),
            Duration::seconds(3599)
        );
        assert_eq!(
            parse_seconds(&json!(86400)).unwrap(),
            Duration::seconds(86400)
        );
        assert!(parse_seconds(&json!("-5")).is_err());
        assert!(parse_seconds(&json!("x")).is_err());
    }
}
