//! One invocation's context: its id, its function, and — in JSON mode — the lines it logged.
//!
//! The host records each entry of a JSON-mode answer's `Logs` as an Information line of that
//! invocation (with its id, in Application Insights), and each stdout line as an Information
//! line of no invocation. So in JSON mode the ordinary lines of an invocation are kept here and
//! returned in `Logs` instead of being printed; in forwarding mode there is no `Logs`, and every
//! line is printed with the function and invocation id in its text. Each invocation runs in a
//! task-local scope, so concurrent invocations never mix their lines.

use std::future::Future;
use std::sync::{Arc, Mutex};

/// The most lines one invocation keeps for `Logs`; more are counted, not kept, so a chatty
/// function cannot grow the response without bound.
pub const MAX_LOG_LINES: usize = 1000;

tokio::task_local! {
    static CURRENT: Invocation;
}

/// The context of one running invocation. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Invocation {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    id: String,
    function: String,
    captures: bool,
    lines: Mutex<Captured>,
}

/// One kept line, in both of the forms it may leave in.
#[derive(Debug, Clone)]
struct Line {
    /// As a `Logs` entry.
    logs: String,
    /// As a console line, with its time and context, for when `Logs` will not be read.
    console: Console,
}

/// A kept line's console form: given whole, or formatted only when it is needed (rarely: the
/// answer carried no `Logs`) from what the logger saw.
#[derive(Debug, Clone)]
enum Console {
    Text(String),
    Deferred {
        at: std::time::SystemTime,
        level: log::Level,
        target: String,
    },
}

#[derive(Debug, Default)]
struct Captured {
    kept: Vec<Line>,
    dropped: usize,
}

impl Invocation {
    /// A JSON-mode invocation: its ordinary lines are kept for `Logs`.
    pub fn json(function: &str, id: impl Into<String>) -> Self {
        Self::build(function, id.into(), true)
    }

    /// A forwarded invocation: every line is printed, none is kept.
    pub fn forwarded(function: &str, id: impl Into<String>) -> Self {
        Self::build(function, id.into(), false)
    }

    fn build(function: &str, id: String, captures: bool) -> Self {
        Self {
            inner: Arc::new(Inner {
                id,
                function: function.to_owned(),
                captures,
                lines: Mutex::new(Captured::default()),
            }),
        }
    }

    /// The host's invocation id (or one we made up when the header was missing).
    pub fn id(&self) -> &str {
        &self.inner.id
    }

    /// The function's name.
    pub fn function(&self) -> &str {
        &self.inner.function
    }

    /// Whether ordinary lines are kept for `Logs` (JSON mode) rather than printed.
    pub fn captures(&self) -> bool {
        self.inner.captures
    }

    /// Runs `work` with this invocation as the current one, so its log lines are captured.
    pub async fn scope<F: Future>(&self, work: F) -> F::Output {
        CURRENT.scope(self.clone(), work).await
    }

    /// Runs `f` with this invocation as the current one, outside any future.
    pub fn sync_scope<R>(&self, f: impl FnOnce() -> R) -> R {
        CURRENT.sync_scope(self.clone(), f)
    }

    /// Keeps a line for `Logs` (`logs`), with its console form (`console`) in case the answer
    /// ends up not carrying `Logs`.
    pub fn record(&self, logs: String, console: String) {
        let mut captured = self.lock();
        if captured.kept.len() < MAX_LOG_LINES {
            captured.kept.push(Line {
                logs,
                console: Console::Text(console),
            });
        } else {
            captured.dropped += 1;
        }
    }

    /// Keeps a line for `Logs` (`logs`, which reads `"{level}: {message}"`), and what its console
    /// form is made of, formatted only if [`Invocation::take_console_lines`] asks for it.
    pub(crate) fn record_deferred(
        &self,
        logs: String,
        at: std::time::SystemTime,
        level: log::Level,
        target: &str,
    ) {
        let mut captured = self.lock();
        if captured.kept.len() < MAX_LOG_LINES {
            let target = target.to_owned();
            let console = Console::Deferred { at, level, target };
            captured.kept.push(Line { logs, console });
        } else {
            captured.dropped += 1;
        }
    }

    /// A kept line in console form.
    fn console_text(&self, line: Line) -> String {
        match line.console {
            Console::Text(text) => text,
            Console::Deferred { at, level, target } => {
                let message = line
                    .logs
                    .strip_prefix(level.as_str())
                    .and_then(|rest| rest.strip_prefix(": "))
                    .unwrap_or(&line.logs);
                crate::logging::console_line(
                    at,
                    level,
                    Some(self),
                    &target,
                    format_args!("{message}"),
                )
            }
        }
    }

    /// The lines kept so far as `Logs` entries, ending with a count of any that were dropped: a
    /// copy, for tests that look without taking.
    #[cfg(test)]
    fn logs(&self) -> Vec<String> {
        let captured = self.lock();
        let lines = captured.kept.iter().map(|l| l.logs.clone()).collect();
        with_dropped_count(lines, captured.dropped)
    }

    /// The lines kept so far as `Logs` entries, taken out for the answer that carries them (no
    /// copy of each line), ending with a count of any that were dropped.
    pub fn take_logs(&self) -> Vec<String> {
        let mut captured = self.lock();
        let lines = std::mem::take(&mut captured.kept)
            .into_iter()
            .map(|line| line.logs)
            .collect();
        with_dropped_count(lines, std::mem::take(&mut captured.dropped))
    }

    /// The kept lines in console form, taken out: for an answer the host reads no `Logs` from
    /// (a failure), so that they reach the host's log through stdout instead of nowhere.
    pub fn take_console_lines(&self) -> Vec<String> {
        let mut captured = self.lock();
        let kept = std::mem::take(&mut captured.kept);
        let mut lines: Vec<String> = kept.into_iter().map(|l| self.console_text(l)).collect();
        if captured.dropped > 0 {
            lines.push(format!(
                "({} more log lines of invocation {} were dropped)",
                captured.dropped, self.inner.id
            ));
            captured.dropped = 0;
        }
        lines
    }

    /// A poisoned lock only means a logging call panicked elsewhere; the lines are still good.
    fn lock(&self) -> std::sync::MutexGuard<'_, Captured> {
        self.inner
            .lines
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// Calls `f` with the current invocation, if the caller runs inside one.
pub fn with_current<R>(f: impl FnOnce(&Invocation) -> R) -> Option<R> {
    CURRENT.try_with(|invocation| f(invocation)).ok()
}

/// `lines`, and a last line counting the `dropped` ones when there were any.
fn with_dropped_count(mut lines: Vec<String>, dropped: usize) -> Vec<String> {
    if dropped > 0 {
        lines.push(format!("({dropped} more log lines were dropped)"));
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn lines_recorded_in_a_scope_belong_to_that_invocation_only() {
        let a = Invocation::json("A", "1");
        let b = Invocation::json("B", "2");
        let record = |text: &'static str| {
            with_current(|inv| inv.record(text.to_owned(), format!("console {text}")))
        };
        let (ra, rb) = tokio::join!(
            a.scope(async {
                record("from a");
                tokio::task::yield_now().await;
                record("a again");
            }),
            b.scope(async {
                record("from b");
            })
        );
        assert_eq!((ra, rb), ((), ()));
        assert_eq!(a.logs(), ["from a", "a again"]);
        assert_eq!(b.logs(), ["from b"]);
        assert!(with_current(|_| ()).is_none());
        assert_eq!(b.take_console_lines(), ["console from b"]);
        assert!(
            b.logs().is_empty(),
            "taken lines are not also returned in Logs"
        );
    }

    #[test]
    fn a_deferred_line_becomes_its_console_form_only_when_taken() {
        let inv = Invocation::json("GetSecret", "id-1");
        let at = std::time::SystemTime::from(time::macros::datetime!(2026-11-30 10:20:30.456 UTC));
        inv.record_deferred(
            "INFO: read secret 'db'".to_owned(),
            at,
            log::Level::Info,
            "app::f",
        );
        assert_eq!(inv.logs(), ["INFO: read secret 'db'"]);
        assert_eq!(
            inv.take_console_lines(),
            ["2026-11-30T10:20:30.456Z INFO  [GetSecret id-1] app::f: read secret 'db'"]
        );
    }

    #[test]
    fn lines_past_the_cap_are_counted_not_kept() {
        let inv = Invocation::json("A", "1");
        for n in 0..MAX_LOG_LINES + 5 {
            inv.record(n.to_string(), n.to_string());
        }
        let logs = inv.logs();
        assert_eq!(logs.len(), MAX_LOG_LINES + 1);
        assert_eq!(logs.last().unwrap(), "(5 more log lines were dropped)");
        assert_eq!(inv.take_logs(), logs);
        assert!(inv.logs().is_empty(), "taken lines are gone");
        assert!(inv.captures());
        assert!(!Invocation::forwarded("A", "1").captures());
    }
}
