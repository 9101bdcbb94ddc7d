//! Log set-up, so that each line reaches the Functions host once, at its level.
//!
//! What the host does with our output (see docs/host-contract.md): every stdout line becomes an
//! Information line; every stderr line an Error, or a Warning when it contains "warn"; every
//! `Logs` entry of a JSON-mode answer an Information line of that invocation. Hence:
//!
//! - errors and warnings go to stderr only (their level word makes the host's rule pick the
//!   right level);
//! - ordinary lines of a JSON-mode invocation go into its `Logs` only (and to stdout if the
//!   answer turns out to be a failure, whose `Logs` the host drops);
//! - every other ordinary line goes to stdout only.
//!
//! Lines logged inside an invocation carry its function and id, so one invocation's lines can
//! be found in Application Insights even where the host does not attach the id itself.

use std::fmt;
use std::io::Write;
use std::time::SystemTime;

use env_logger::{Builder, Env, Logger};
use log::{Level, Log, Metadata, Record};
use time::OffsetDateTime;

use crate::invocation::{self, Invocation};

/// Routes records by level and mode; `filter` only decides what is logged (`RUST_LOG`).
struct HandlerLogger {
    filter: Logger,
    /// Command-line tools print ordinary lines to stderr so stdout carries only their output.
    ordinary_to_stderr: bool,
}

impl Log for HandlerLogger {
    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        self.filter.enabled(metadata)
    }

    fn log(&self, record: &Record<'_>) {
        if !self.filter.matches(record) {
            return;
        }
        let at = SystemTime::now();
        // The current invocation is borrowed where it lives rather than cloned out of it.
        let logged = invocation::with_current(|inv| {
            if record.level() > Level::Warn && inv.captures() {
                // Kept for `Logs`. Its console form is needed only if the answer ends up carrying
                // no `Logs` (a failure), so only its parts are kept and the line is formatted then.
                let mut logs = String::with_capacity(128);
                logs.push_str(record.level().as_str());
                logs.push_str(": ");
                let _ = fmt::Write::write_fmt(&mut logs, *record.args());
                inv.record_deferred(logs, at, record.level(), record.target());
            } else {
                self.print(at, Some(inv), record);
            }
        });
        if logged.is_none() {
            self.print(at, None, record);
        }
    }

    fn flush(&self) {
        crate::stdout_batch::flush();
        let _ = std::io::stdout().flush();
        let _ = std::io::stderr().flush();
    }
}

impl HandlerLogger {
    /// Writes a record as one console line: errors and warnings (or every line, for a
    /// command-line tool) to stderr, others to stdout.
    fn print(&self, at: SystemTime, invocation: Option<&Invocation>, record: &Record<'_>) {
        let text = console_line(
            at,
            record.level(),
            invocation,
            record.target(),
            *record.args(),
        );
        let to_stderr = record.level() <= Level::Warn || self.ordinary_to_stderr;
        write_lines(to_stderr, std::slice::from_ref(&text));
    }
}

/// One console line: time, level, the invocation it belongs to (if any), target, message.
///
/// Built piece by piece into one buffer, written whole: through a format string, its padding and
/// nested arguments took about half of a printed line's cost, and formatting into the locked
/// stream costs a newline search (stdout) or a write (stderr) per piece.
pub(crate) fn console_line(
    at: SystemTime,
    level: Level,
    invocation: Option<&Invocation>,
    target: &str,
    message: fmt::Arguments<'_>,
) -> String {
    let mut line = String::with_capacity(256);
    let mut stamp = [0u8; 32];
    let written = timestamp(at, &mut stamp);
    line.push_str(std::str::from_utf8(&stamp[..written]).unwrap_or_default());
    line.push_str(padded_level(level));
    if let Some(inv) = invocation {
        line.push_str(" [");
        line.push_str(inv.function());
        line.push(' ');
        line.push_str(inv.id());
        line.push(']');
    }
    line.push(' ');
    line.push_str(target);
    line.push_str(": ");
    match message.as_str() {
        Some(text) => line.push_str(text),
        None => {
            let _ = fmt::Write::write_fmt(&mut line, message);
        }
    }
    line
}

/// A console line's timestamp, as the `time` crate writes it.
const FORMAT: &[time::format_description::BorrowedFormatItem<'_>] = time::macros::format_description!(
    "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z"
);

/// `at` as `YYYY-MM-DDTHH:MM:SS.mmmZ` in UTC (milliseconds truncated) into `out`; the bytes
/// written. By hand from the seconds since 1970 for years up to 9999 (every line's case: the
/// `time` crate's conversion and general formatter took ≈ 1,400 instructions a line), by the
/// `time` crate otherwise.
fn timestamp(at: SystemTime, out: &mut [u8; 32]) -> usize {
    if let Some(written) = four_digit_stamp(at, out) {
        return written;
    }
    let mut rest = &mut out[..];
    if let Ok(since) = at.duration_since(SystemTime::UNIX_EPOCH).map_or_else(
        |before| OffsetDateTime::from_unix_timestamp_nanos(-(before.duration().as_nanos() as i128)),
        |after| OffsetDateTime::from_unix_timestamp_nanos(after.as_nanos() as i128),
    ) {
        let _ = since.format_into(&mut rest, FORMAT);
    }
    32 - rest.len()
}

/// The level as `{:<5}` writes it, after a space.
fn padded_level(level: Level) -> &'static str {
    match level {
        Level::Error => " ERROR",
        Level::Warn => " WARN ",
        Level::Info => " INFO ",
        Level::Debug => " DEBUG",
        Level::Trace => " TRACE",
    }
}

/// The fast path of [`timestamp`]: `None` before 1970 or after 9999.
fn four_digit_stamp(at: SystemTime, out: &mut [u8; 32]) -> Option<usize> {
    const SECONDS_A_DAY: u64 = 86_400;
    let since = at.duration_since(SystemTime::UNIX_EPOCH).ok()?;
    let seconds = since.as_secs();
    let (year, month, day) = civil_date(seconds / SECONDS_A_DAY);
    if year > 9999 {
        return None;
    }
    let of_day = (seconds % SECONDS_A_DAY) as u32;
    let fields = [
        (year as u32, 4, b'-'),
        (month, 2, b'-'),
        (day, 2, b'T'),
        (of_day / 3600, 2, b':'),
        (of_day / 60 % 60, 2, b':'),
        (of_day % 60, 2, b'.'),
        (since.subsec_millis(), 3, b'Z'),
    ];
    let mut at_byte = 0;
    for (value, width, after) in fields {
        let mut rest = value;
        for index in (0..width).rev() {
            out[at_byte + index] = b'0' + (rest % 10) as u8;
            rest /= 10;
        }
        out[at_byte + width] = after;
        at_byte += width + 1;
    }
    Some(at_byte)
}

/// The proleptic Gregorian (year, month, day) of a count of days since 1970-01-01, by Howard
/// Hinnant's `civil_from_days` (https://howardhinnant.github.io/date_algorithms.html): counted
/// in 400-year eras of 146,097 days, from a year that starts on March 1st so that the leap day
/// comes last.
fn civil_date(days_since_1970: u64) -> (u64, u32, u32) {
    // 1970-01-01 is day 719,468 counted from 0000-03-01.
    let days = days_since_1970 + 719_468;
    let era = days / 146_097;
    let day_of_era = days % 146_097;
    let year_of_era =
        (day_of_era - day_of_era / 1_460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_from_march = (5 * day_of_year + 2) / 153;
    let day = (day_of_year - (153 * month_from_march + 2) / 5 + 1) as u32;
    let month = if month_from_march < 10 {
        month_from_march + 3
    } else {
        month_from_march - 9
    } as u32;
    let year = year_of_era + era * 400 + u64::from(month <= 2);
    (year, month, day)
}

/// Writes whole lines to stderr or stdout, each stream locked once so lines never interleave.
/// Stdout lines may wait in a batch (see [`crate::stdout_batch`]); a stderr line is written at
/// once, after the stdout lines logged before it. A closed stream is ignored: logging must never
/// fail an invocation.
pub fn write_lines(to_stderr: bool, lines: &[String]) {
    if !to_stderr {
        crate::stdout_batch::write_lines(lines);
        return;
    }
    crate::stdout_batch::flush();
    crate::stdout_batch::write_each(std::io::stderr().lock(), lines);
}

/// Installs the logger once per process; `RUST_LOG` filters it (default `info`). Later calls
/// do nothing, so tests may call it freely.
pub fn init() {
    install(false);
}

/// For a binary's command-line tools: every line to stderr, so that
/// stdout carries only the command's output.
pub fn init_cli() {
    install(true);
}

fn install(ordinary_to_stderr: bool) {
    let filter = Builder::from_env(Env::default().default_filter_or("info")).build();
    let max_level = filter.filter();
    let logger = HandlerLogger {
        filter,
        ordinary_to_stderr,
    };
    if log::set_boxed_logger(Box::new(logger)).is_ok() {
        log::set_max_level(max_level);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stamp(at: OffsetDateTime) -> String {
        let mut out = [0u8; 32];
        let written = timestamp(SystemTime::from(at), &mut out);
        String::from_utf8(out[..written].to_vec()).unwrap()
    }

    #[test]
    fn the_hand_written_timestamp_is_what_the_format_writes() {
        let base = time::macros::datetime!(2026-11-30 10:20:30.456789 UTC);
        let mut times = vec![
            base,
            time::macros::datetime!(1970-01-01 00:00:00 UTC),
            time::macros::datetime!(2000-02-29 23:59:59.999 UTC),
            time::macros::datetime!(2100-03-01 00:00:00.001 UTC),
            time::macros::datetime!(9999-12-31 23:59:59.999999999 UTC),
            time::macros::datetime!(2024-02-29 12:00:00.5 +02:00),
        ];
        // Every day for four centuries (a whole Gregorian cycle), at a varying time of day.
        times.extend((0..146_097).map(|day| {
            base + time::Duration::days(day)
                + time::Duration::milliseconds(day * 7_654_321 % 86_400_000)
        }));
        for at in times {
            let mut out = [0u8; 32];
            let written = four_digit_stamp(SystemTime::from(at), &mut out)
                .unwrap_or_else(|| panic!("{at} is in the fast path's range"));
            assert_eq!(
                std::str::from_utf8(&out[..written]).unwrap(),
                at.to_offset(time::UtcOffset::UTC).format(FORMAT).unwrap(),
                "{at}"
            );
        }
    }

    #[test]
    fn times_outside_the_fast_path_are_written_by_the_format() {
        for at in [
            time::macros::datetime!(1969-12-31 23:59:59.999 UTC),
            time::macros::datetime!(0999-01-02 03:04:05.000999999 UTC),
            time::macros::datetime!(0000-01-01 00:00:00 UTC),
        ] {
            assert_eq!(four_digit_stamp(SystemTime::from(at), &mut [0u8; 32]), None);
            assert_eq!(stamp(at), at.format(FORMAT).unwrap(), "{at}");
        }
    }

    #[test]
    fn a_console_line_reads_as_its_format_string_would_write_it() {
        let at = SystemTime::from(time::macros::datetime!(2026-11-30 10:20:30.456789 UTC));
        let invocation = Invocation::forwarded("TokenInfo", "1b4e28ba-2fa1-11d2-883f-0016d3cca427");
        for level in [
            Level::Error,
            Level::Warn,
            Level::Info,
            Level::Debug,
            Level::Trace,
        ] {
            let message = format_args!("token for {} : {} s left", "https://x", 42);
            assert_eq!(
                console_line(at, level, None, "handler::functions", message),
                format!(
                    "2026-11-30T10:20:30.456Z {level:<5} handler::functions: token for https://x : 42 s left"
                )
            );
            assert_eq!(
                console_line(at, level, Some(&invocation), "t", format_args!("plain")),
                format!(
                    "2026-11-30T10:20:30.456Z {level:<5} [TokenInfo 1b4e28ba-2fa1-11d2-883f-0016d3cca427] t: plain"
                )
            );
        }
    }
}
