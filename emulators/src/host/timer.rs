//! Timer schedules (NCRONTAB) and the `TimerInfo` payload the host sends for a timer firing.

use std::str::FromStr;

use chrono::{DateTime, Utc};
use serde_json::{Value, json};

/// A parsed NCRONTAB schedule (six fields `sec min hour day month day-of-week`, or five fields
/// taken as having no seconds, as the timer extension accepts), evaluated in UTC.
#[derive(Debug, Clone)]
pub struct TimerSchedule {
    schedule: cron::Schedule,
}

impl TimerSchedule {
    /// Parses an NCRONTAB expression. TimeSpan schedules (`00:05:00`) are refused: they are an
    /// App Service-only feature the emulator does not model.
    pub fn parse(expression: &str) -> Result<Self, String> {
        let fields: Vec<&str> = expression.split_whitespace().collect();
        let six: Vec<String> = match fields.len() {
            6 => fields.iter().map(|f| f.to_string()).collect(),
            5 => std::iter::once("0".to_string())
                .chain(fields.iter().map(|f| f.to_string()))
                .collect(),
            n => return Err(format!("expected 6 (or 5) fields, found {n}")),
        };
        let day_of_week = translate_day_of_week(&six[5])?;
        let cron_text = format!(
            "{} {} {} {} {} {}",
            six[0], six[1], six[2], six[3], six[4], day_of_week
        );
        let schedule = cron::Schedule::from_str(&cron_text).map_err(|e| e.to_string())?;
        if schedule.after(&Utc::now()).next().is_none() {
            return Err("the schedule never fires".to_string());
        }
        Ok(Self { schedule })
    }

    /// The first occurrence strictly after `after`.
    pub fn next_after(&self, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
        self.schedule.after(&after).next()
    }

    /// True when two consecutive occurrences are less than a minute apart, which makes the
    /// timer extension turn schedule monitoring off.
    pub fn fires_more_than_once_a_minute(&self) -> bool {
        let occurrences: Vec<DateTime<Utc>> = self.schedule.after(&Utc::now()).take(4).collect();
        occurrences
            .windows(2)
            .any(|pair| (pair[1] - pair[0]).num_seconds() < 60)
    }
}

/// NCRONTAB numbers days of the week 0-6 from Sunday; the `cron` crate uses 1-7 from Sunday.
/// Shifts every number in the field (names and `*` are the same in both).
fn translate_day_of_week(field: &str) -> Result<String, String> {
    let mut out = String::new();
    let mut number = String::new();
    let mut after_slash = false;
    for c in field.chars().chain(std::iter::once('\0')) {
        if c.is_ascii_digit() {
            number.push(c);
            continue;
        }
        if !number.is_empty() {
            let value: u32 = number.parse().map_err(|_| "bad day of week")?;
            if after_slash {
                out.push_str(&value.to_string());
            } else if value <= 6 {
                out.push_str(&(value + 1).to_string());
            } else {
                return Err(format!("day of week {value} is out of range 0-6"));
            }
            number.clear();
        }
        if c != '\0' {
            after_slash = c == '/';
            out.push(c);
        }
    }
    Ok(out)
}

/// The monitor record of one timer, as the timer listener keeps it: `None` fields are the
/// "never" value (`0001-01-01T00:00:00+00:00`) of a timer that has not run yet.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ScheduleStatus {
    /// When the previous run started (`None` before the first run).
    pub last: Option<DateTime<Utc>>,
    /// The occurrence that is running now (for a scheduled firing) or the next one.
    pub next: DateTime<Utc>,
    /// When the record was last written (`None` before the first run).
    pub last_updated: Option<DateTime<Utc>>,
}

impl ScheduleStatus {
    /// The record before any run: next occurrence after `now`, the rest "never".
    pub fn initial(schedule: &TimerSchedule, now: DateTime<Utc>) -> Option<Self> {
        Some(Self {
            last: None,
            next: schedule.next_after(now)?,
            last_updated: None,
        })
    }

    /// The record after a run that started at `invocation_time`. A scheduled run that fired a
    /// little early counts as having run at its occurrence, so the same occurrence never
    /// fires twice (the listener's rule).
    pub fn after_run(
        &self,
        schedule: &TimerSchedule,
        invocation_time: DateTime<Utc>,
        scheduled: bool,
    ) -> Option<Self> {
        let effective = if scheduled && self.next > invocation_time {
            self.next
        } else {
            invocation_time
        };
        Some(Self {
            last: Some(effective),
            next: schedule.next_after(effective)?,
            last_updated: Some(effective),
        })
    }
}

/// `0001-01-01T00:00:00+00:00`: .NET's default date, used for "never".
const NEVER: &str = "0001-01-01T00:00:00+00:00";

/// Builds the host-shaped `TimerInfo` value; `status` is `None` when monitoring is off.
pub fn timer_info(status: Option<&ScheduleStatus>, is_past_due: bool) -> Value {
    let schedule_status = match status {
        None => Value::Null,
        Some(status) => json!({
            "Last": status.last.map_or_else(|| NEVER.to_string(), dotnet_offset),
            "Next": dotnet_offset(status.next),
            "LastUpdated": status.last_updated.map_or_else(|| NEVER.to_string(), dotnet_offset),
        }),
    };
    json!({
        "Schedule": {"AdjustForDST": true},
        "ScheduleStatus": schedule_status,
        "IsPastDue": is_past_due,
    })
}

/// Newtonsoft's DateTimeOffset format: `yyyy-MM-ddTHH:mm:ss.FFFFFFF+00:00` (fraction digits
/// trimmed, dropped when zero).
pub fn dotnet_offset(at: DateTime<Utc>) -> String {
    format!("{}+00:00", seconds_and_fraction(at, false))
}

/// `sys.UtcNow`: round-trip UTC with seven fraction digits and `Z`.
pub fn dotnet_utc_now(at: DateTime<Utc>) -> String {
    format!("{}Z", seconds_and_fraction(at, true))
}

fn seconds_and_fraction(at: DateTime<Utc>, keep_all_digits: bool) -> String {
    let base = at.format("%Y-%m-%dT%H:%M:%S").to_string();
    let ticks = at.timestamp_subsec_nanos() / 100;
    let digits = format!("{ticks:07}");
    let digits = if keep_all_digits {
        digits.as_str()
    } else {
        digits.trim_end_matches('0')
    };
    if digits.is_empty() {
        base
    } else {
        format!("{base}.{digits}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn at(h: u32, m: u32, s: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2024, 10, 24, h, m, s).unwrap()
    }

    #[test]
    fn six_field_schedule_fires_on_the_minute_pattern() {
        let schedule = TimerSchedule::parse("0 */5 * * * *").unwrap();
        assert_eq!(schedule.next_after(at(17, 41, 0)), Some(at(17, 45, 0)));
        assert!(!schedule.fires_more_than_once_a_minute());
    }

    #[test]
    fn five_fields_mean_no_seconds() {
        let schedule = TimerSchedule::parse("*/5 * * * *").unwrap();
        assert_eq!(schedule.next_after(at(17, 41, 30)), Some(at(17, 45, 0)));
    }

    #[test]
    fn every_second_disables_monitoring() {
        assert!(
            TimerSchedule::parse("*/1 * * * * *")
                .unwrap()
                .fires_more_than_once_a_minute()
        );
    }

    #[test]
    fn day_of_week_zero_is_sunday() {
        // 2024-10-27 is a Sunday.
        let schedule = TimerSchedule::parse("0 0 9 * * 0").unwrap();
        let next = schedule.next_after(at(17, 0, 0)).unwrap();
        assert_eq!(next, Utc.with_ymd_and_hms(2024, 10, 27, 9, 0, 0).unwrap());
        assert_eq!(translate_day_of_week("1-5/2").unwrap(), "2-6/2");
        assert!(TimerSchedule::parse("0 0 9 * * 7").is_err());
    }

    #[test]
    fn impossible_dates_and_names() {
        assert!(TimerSchedule::parse("0 0 0 31 2 *").is_err());
        assert!(TimerSchedule::parse("0 30 9 * * MON-FRI").is_ok());
        assert!(TimerSchedule::parse("0 30 9 * Jan *").is_ok());
        assert!(TimerSchedule::parse("x y z a b c").is_err());
    }

    #[test]
    fn refuses_wrong_field_counts() {
        assert!(TimerSchedule::parse("00:05:00").is_err());
        assert!(TimerSchedule::parse("").is_err());
    }

    #[test]
    fn status_moves_on_after_each_run() {
        let schedule = TimerSchedule::parse("0 */5 * * * *").unwrap();
        let initial = ScheduleStatus::initial(&schedule, at(17, 41, 0)).unwrap();
        // Fired a little early: counts as the 17:45 occurrence.
        let early = initial.after_run(&schedule, at(17, 44, 59), true).unwrap();
        assert_eq!(early.last, Some(at(17, 45, 0)));
        assert_eq!(early.next, at(17, 50, 0));
        // Fired late: the real start time is kept.
        let late_time = at(17, 45, 0) + chrono::Duration::milliseconds(5);
        let late = initial.after_run(&schedule, late_time, true).unwrap();
        assert_eq!(late.last, Some(late_time));
        assert_eq!(late.last_updated, Some(late_time));
        // A start-up run moves the record on from the time it ran.
        let startup = initial.after_run(&schedule, at(17, 41, 0), false).unwrap();
        assert_eq!(
            (startup.last, startup.next),
            (Some(at(17, 41, 0)), at(17, 45, 0))
        );
    }

    #[test]
    fn timestamps_use_dotnet_shapes() {
        let t = at(17, 45, 0) + chrono::Duration::nanoseconds(4_913_600);
        assert_eq!(dotnet_offset(at(17, 45, 0)), "2024-10-24T17:45:00+00:00");
        assert_eq!(dotnet_offset(t), "2024-10-24T17:45:00.0049136+00:00");
        assert_eq!(dotnet_utc_now(at(1, 2, 3)), "2024-10-24T01:02:03.0000000Z");
    }

    #[test]
    fn first_run_timer_info_has_year_one_last() {
        let schedule = TimerSchedule::parse("0 */5 * * * *").unwrap();
        let status = ScheduleStatus::initial(&schedule, at(17, 41, 0)).unwrap();
        let info = timer_info(Some(&status), false);
        assert_eq!(info["ScheduleStatus"]["Last"], "0001-01-01T00:00:00+00:00");
        assert_eq!(
            info["ScheduleStatus"]["LastUpdated"],
            "0001-01-01T00:00:00+00:00"
        );
        assert_eq!(info["ScheduleStatus"]["Next"], "2024-10-24T17:45:00+00:00");
        assert_eq!(info["Schedule"]["AdjustForDST"], true);
        assert_eq!(timer_info(None, false)["ScheduleStatus"], Value::Null);
    }
}
