//! Log set-up: ordinary lines to stdout, errors to stderr, and a copy of every line logged inside
//! an invocation into that invocation's `Logs`.
//!
//! The host logs each stderr line as an Error (unless it contains "warn"), and env_logger writes
//! to stderr by default, so without this every info line would show up as an error.

use std::io::Write;

use env_logger::{Builder, Env, Logger, Target};
use log::{Level, Log, Metadata, Record};

use crate::invocation;

/// Routes records by level and captures them per invocation.
struct HandlerLogger {
    stdout: Logger,
    stderr: Logger,
}

impl Log for HandlerLogger {
    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        self.stdout.enabled(metadata)
    }

    fn log(&self, record: &Record<'_>) {
        if !self.enabled(record.metadata()) {
            return;
        }
        if record.level() == Level::Error {
            self.stderr.log(record);
        } else {
            self.stdout.log(record);
        }
        invocation::with_current(|inv| {
            inv.record(format!("{}: {}", record.level(), record.args()))
        });
    }

    fn flush(&self) {
        self.stdout.flush();
        self.stderr.flush();
    }
}

/// Installs the logger once per process; `RUST_LOG` filters it (default `info`). Later calls
/// do nothing, so tests may call it freely.
pub fn init() {
    install(Target::Stdout);
}

/// For the command-line tools (`handler token`, `handler check`): every line to stderr, so that
/// stdout carries only the command's output.
pub fn init_cli() {
    install(Target::Stderr);
}

fn install(ordinary: Target) {
    let stdout = builder(ordinary).build();
    let stderr = builder(Target::Stderr).build();
    let max_level = stdout.filter();
    if log::set_boxed_logger(Box::new(HandlerLogger { stdout, stderr })).is_ok() {
        log::set_max_level(max_level);
    }
}

/// One line per record: time, level, the invocation it belongs to (if any), target, message.
fn builder(target: Target) -> Builder {
    let mut builder = Builder::from_env(Env::default().default_filter_or("info"));
    builder.target(target).format(|buf, record| {
        let timestamp = buf.timestamp_millis();
        let context = invocation::with_current(|inv| format!(" [{} {}]", inv.function(), inv.id()))
            .unwrap_or_default();
        writeln!(
            buf,
            "{timestamp} {:<5}{context} {}: {}",
            record.level(),
            record.target(),
            record.args()
        )
    });
    builder
}
