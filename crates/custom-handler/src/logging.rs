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

use std::io::Write;

use env_logger::{Builder, Env, Logger};
use log::{Level, Log, Metadata, Record};

use crate::invocation;

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
        let context = invocation::with_current(|inv| {
            (inv.clone(), format!(" [{} {}]", inv.function(), inv.id()))
        });
        let console = console_line(record, context.as_ref().map_or("", |(_, c)| c.as_str()));
        if record.level() <= Level::Warn {
            write_lines(true, std::slice::from_ref(&console));
            return;
        }
        match context {
            Some((inv, _)) if inv.captures() => {
                inv.record(format!("{}: {}", record.level(), record.args()), console);
            }
            _ => write_lines(self.ordinary_to_stderr, std::slice::from_ref(&console)),
        }
    }

    fn flush(&self) {
        let _ = std::io::stdout().flush();
        let _ = std::io::stderr().flush();
    }
}

/// One console line: time, level, the invocation it belongs to (if any), target, message.
fn console_line(record: &Record<'_>, context: &str) -> String {
    const FORMAT: &[time::format_description::BorrowedFormatItem<'_>] = time::macros::format_description!(
        "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z"
    );
    let timestamp = time::OffsetDateTime::now_utc()
        .format(FORMAT)
        .unwrap_or_default();
    format!(
        "{timestamp} {:<5}{context} {}: {}",
        record.level(),
        record.target(),
        record.args()
    )
}

/// Writes whole lines to stderr or stdout, each stream locked once so lines never interleave.
/// A closed stream is ignored: logging must never fail an invocation.
pub fn write_lines(to_stderr: bool, lines: &[String]) {
    fn write(mut out: impl Write, lines: &[String]) {
        for line in lines {
            let _ = writeln!(out, "{line}");
        }
        let _ = out.flush();
    }
    if to_stderr {
        write(std::io::stderr().lock(), lines);
    } else {
        write(std::io::stdout().lock(), lines);
    }
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
