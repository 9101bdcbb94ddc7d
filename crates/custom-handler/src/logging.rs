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
        let at = OffsetDateTime::now_utc();
        let current = invocation::with_current(Invocation::clone);
        if record.level() > Level::Warn
            && let Some(inv) = current.as_ref().filter(|inv| inv.captures())
        {
            // Kept for `Logs`. Its console form is needed only if the answer ends up carrying no
            // `Logs` (a failure), so only its parts are kept and the line is formatted then.
            let mut logs = String::with_capacity(128);
            logs.push_str(record.level().as_str());
            logs.push_str(": ");
            let _ = fmt::Write::write_fmt(&mut logs, *record.args());
            inv.record_deferred(logs, at, record.level(), record.target());
            return;
        }
        let line = ConsoleLine {
            at,
            level: record.level(),
            invocation: current.as_ref(),
            target: record.target(),
            message: record.args(),
        };
        // Formatted once into one buffer and written whole: formatting piece by piece into the
        // locked stream costs a newline search (stdout) or a write (stderr) per piece.
        let mut text = String::with_capacity(256);
        let _ = fmt::Write::write_fmt(&mut text, format_args!("{line}"));
        let to_stderr = record.level() <= Level::Warn || self.ordinary_to_stderr;
        write_lines(to_stderr, std::slice::from_ref(&text));
    }

    fn flush(&self) {
        crate::stdout_batch::flush();
        let _ = std::io::stdout().flush();
        let _ = std::io::stderr().flush();
    }
}

/// One console line: time, level, the invocation it belongs to (if any), target, message.
pub(crate) struct ConsoleLine<'a, M> {
    pub(crate) at: OffsetDateTime,
    pub(crate) level: Level,
    pub(crate) invocation: Option<&'a Invocation>,
    pub(crate) target: &'a str,
    pub(crate) message: M,
}

impl<M: fmt::Display> fmt::Display for ConsoleLine<'_, M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const FORMAT: &[time::format_description::BorrowedFormatItem<'_>] = time::macros::format_description!(
            "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z"
        );
        // The timestamp is formatted into a buffer on the stack (at most 24 bytes in this format),
        // by hand for years of four digits (every line's case; time's general formatter took
        // ≈ 1,100 instructions a line), by FORMAT otherwise.
        let mut stamp = [0u8; 32];
        let written = match four_digit_stamp(self.at, &mut stamp) {
            Some(written) => written,
            None => {
                let mut rest = &mut stamp[..];
                let _ = self.at.format_into(&mut rest, FORMAT);
                32 - rest.len()
            }
        };
        // Piece by piece rather than through a format string: its padding and nested arguments
        // took about half of a printed line's cost.
        f.write_str(std::str::from_utf8(&stamp[..written]).unwrap_or_default())?;
        f.write_str(padded_level(self.level))?;
        if let Some(inv) = self.invocation {
            f.write_str(" [")?;
            f.write_str(inv.function())?;
            f.write_str(" ")?;
            f.write_str(inv.id())?;
            f.write_str("]")?;
        }
        f.write_str(" ")?;
        f.write_str(self.target)?;
        f.write_str(": ")?;
        self.message.fmt(f)
    }
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

/// `at` as `YYYY-MM-DDTHH:MM:SS.mmmZ` (its own date and time, milliseconds truncated: what the
/// console line's format writes), when its year has four digits; the bytes written.
fn four_digit_stamp(at: OffsetDateTime, out: &mut [u8; 32]) -> Option<usize> {
    let year = u32::try_from(at.year()).ok().filter(|year| *year <= 9999)?;
    let fields = [
        (year, 4, b'-'),
        (u32::from(u8::from(at.month())), 2, b'-'),
        (u32::from(at.day()), 2, b'T'),
        (u32::from(at.hour()), 2, b':'),
        (u32::from(at.minute()), 2, b':'),
        (u32::from(at.second()), 2, b'.'),
        (at.nanosecond() / 1_000_000, 3, b'Z'),
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

    #[test]
    fn the_hand_written_timestamp_is_what_the_format_writes() {
        const FORMAT: &[time::format_description::BorrowedFormatItem<'_>] = time::macros::format_description!(
            "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z"
        );
        let base = time::macros::datetime!(2026-11-30 10:20:30.456789 UTC);
        let mut times = vec![
            base,
            time::macros::datetime!(0999-01-02 03:04:05.000999999 UTC),
            time::macros::datetime!(9999-12-31 23:59:59.999999999 UTC),
            time::macros::datetime!(0000-01-01 00:00:00 UTC),
            time::macros::datetime!(2024-02-29 12:00:00.5 +02:00),
        ];
        times.extend((0..200).map(|n| base + time::Duration::milliseconds(n * 7_654_321 + n)));
        for at in times {
            let mut out = [0u8; 32];
            let written = four_digit_stamp(at, &mut out).unwrap();
            assert_eq!(
                std::str::from_utf8(&out[..written]).unwrap(),
                at.format(FORMAT).unwrap(),
                "{at}"
            );
        }
        let far = time::macros::datetime!(-0001-01-01 00:00:00 UTC);
        assert_eq!(four_digit_stamp(far, &mut [0u8; 32]), None);
    }

    #[test]
    fn a_console_line_reads_as_its_format_string_would_write_it() {
        let at = time::macros::datetime!(2026-11-30 10:20:30.456789 UTC);
        for level in [
            Level::Error,
            Level::Warn,
            Level::Info,
            Level::Debug,
            Level::Trace,
        ] {
            let message = format_args!("token for {} : {} s left", "https://x", 42);
            let line = ConsoleLine {
                at,
                level,
                invocation: None,
                target: "handler::functions",
                message,
            };
            assert_eq!(
                line.to_string(),
                format!(
                    "2026-11-30T10:20:30.456Z {level:<5} handler::functions: token for https://x : 42 s left"
                )
            );
        }
    }
}
