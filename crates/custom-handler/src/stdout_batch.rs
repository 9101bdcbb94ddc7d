//! Stdout lines written in batches while the server is busy.
//!
//! A forwarded invocation's log line reaches the host through stdout, and one `write` per line
//! is a large share of a small invocation's cost. Once [`enable`] is called (the runtime that
//! [`crate::server::tokio_runtime`] builds does), lines collect in one buffer and are written
//! whole when a worker thread goes idle, which is right after the answer when traffic is light;
//! under load, when the buffer passes [`FLUSH_BYTES`] or its first line is [`MAX_AGE`] old.
//! So a line never waits behind a slow request, the answer leaves before its line is written, and
//! a busy server writes many lines per syscall. Lines keep their order: one buffer, drained under
//! one lock. What is lost on a kill is at most what was logged since a worker last went idle; a
//! panic and the end of `main` write the buffer out ([`flush`]).
//!
//! Without [`enable`] every line is written at once, as before.

use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// A batch this large is written at once: well under a pipe's 64 KiB buffer.
pub const FLUSH_BYTES: usize = 16 * 1024;
/// A line older than this is written with the next line logged, even if no worker went idle.
pub const MAX_AGE: Duration = Duration::from_millis(50);

static ENABLED: AtomicBool = AtomicBool::new(false);
/// Set while `PENDING` holds a line: lets an idle worker's check skip the lock.
static HAS_PENDING: AtomicBool = AtomicBool::new(false);
static PENDING: Mutex<Batch> = Mutex::new(Batch::new());
/// Held while a batch is written, so two flushes never reorder; keeps the written buffer for
/// reuse.
static WRITING: Mutex<Vec<u8>> = Mutex::new(Vec::new());

/// Lines not yet written, and when the first of them came.
#[derive(Debug)]
struct Batch {
    text: Vec<u8>,
    since: Option<Instant>,
}

impl Batch {
    const fn new() -> Self {
        Self {
            text: Vec::new(),
            since: None,
        }
    }

    /// Adds lines (each gets its newline); true when the batch should be written now.
    fn push(&mut self, lines: &[String], now: impl FnOnce() -> Instant) -> bool {
        for line in lines {
            self.text.extend_from_slice(line.as_bytes());
            self.text.push(b'\n');
        }
        let now = now();
        let since = *self.since.get_or_insert(now);
        self.text.len() >= FLUSH_BYTES || now.duration_since(since) >= MAX_AGE
    }

    /// Hands the batch's text over (swapped with `into`, which must be empty) and starts anew.
    fn take_into(&mut self, into: &mut Vec<u8>) {
        std::mem::swap(&mut self.text, into);
        self.since = None;
    }
}

/// From now on, stdout lines are batched; the caller must make sure [`flush`] runs when a
/// worker goes idle and before the process exits.
pub fn enable() {
    ENABLED.store(true, Ordering::Release);
    install_panic_flush();
}

/// Writes lines to stdout: at once, or into the batch when batching is on.
pub(crate) fn write_lines(lines: &[String]) {
    if !ENABLED.load(Ordering::Acquire) {
        write_each(std::io::stdout().lock(), lines);
        return;
    }
    let due = {
        let mut pending = lock(&PENDING);
        HAS_PENDING.store(true, Ordering::Release);
        pending.push(lines, Instant::now)
    };
    if due {
        flush();
    }
}

/// Writes out every batched line. Cheap when there is none: a worker calls this each time it
/// goes idle.
pub fn flush() {
    if !HAS_PENDING.load(Ordering::Acquire) {
        return;
    }
    let mut text = lock(&WRITING);
    write_out(&mut text, lock(&PENDING));
}

/// Takes the batch (`text` is the writer's buffer, held under its lock) and writes it.
fn write_out(text: &mut Vec<u8>, mut pending: MutexGuard<'_, Batch>) {
    HAS_PENDING.store(false, Ordering::Release);
    pending.take_into(text);
    drop(pending);
    if !text.is_empty() {
        let mut out = std::io::stdout().lock();
        let _ = out.write_all(text);
        let _ = out.flush();
        text.clear();
    }
}

/// Writes each line with its newline to `out` (a locked stream, so lines never interleave),
/// then flushes; a closed stream is ignored.
pub(crate) fn write_each(mut out: impl Write, lines: &[String]) {
    for line in lines {
        let _ = writeln!(out, "{line}");
    }
    let _ = out.flush();
}

/// A poisoned lock still holds whole lines (nothing in them can panic halfway through a push
/// that matters), so logging carries on.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// A panic's own message goes to stderr through the previous hook; the lines logged before it
/// are written first, so they are not lost if the panic ends the process.
fn install_panic_flush() {
    static INSTALLED: std::sync::Once = std::sync::Once::new();
    INSTALLED.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            flush_if_free();
            previous(info);
        }));
    });
}

/// [`flush`] unless another thread is in the middle of one (or this one panicked inside one):
/// a panic hook must never wait on a lock.
fn flush_if_free() {
    let Ok(mut text) = WRITING.try_lock() else {
        return;
    };
    let Ok(pending) = PENDING.try_lock() else {
        return;
    };
    write_out(&mut text, pending);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(texts: &[&str]) -> Vec<String> {
        texts.iter().map(|text| text.to_string()).collect()
    }

    #[test]
    fn lines_wait_in_order_each_with_its_newline() {
        let start = Instant::now();
        let mut batch = Batch::new();
        assert!(!batch.push(&lines(&["one", "two"]), || start));
        assert!(!batch.push(&lines(&["three"]), || start + MAX_AGE / 2));
        let mut text = Vec::new();
        batch.take_into(&mut text);
        assert_eq!(text, b"one\ntwo\nthree\n");
        assert!(batch.text.is_empty() && batch.since.is_none());
    }

    #[test]
    fn a_full_batch_is_due() {
        let start = Instant::now();
        let mut batch = Batch::new();
        let long = "x".repeat(FLUSH_BYTES / 2);
        assert!(!batch.push(&lines(&[&long]), || start));
        assert!(batch.push(&lines(&[&long]), || start));
    }

    #[test]
    fn an_old_line_makes_the_next_push_due() {
        let start = Instant::now();
        let mut batch = Batch::new();
        assert!(!batch.push(&lines(&["first"]), || start));
        assert!(batch.push(&lines(&["later"]), || start + MAX_AGE));
    }

    #[test]
    fn a_taken_batch_starts_its_age_anew() {
        let start = Instant::now();
        let mut batch = Batch::new();
        batch.push(&lines(&["first"]), || start);
        batch.take_into(&mut Vec::new());
        assert!(!batch.push(&lines(&["next"]), || start + MAX_AGE * 3));
        assert!(!batch.push(&lines(&["after"]), || start + MAX_AGE * 3));
    }
}
