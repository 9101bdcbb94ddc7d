//! One invocation's context: its id, its function, and the log lines it produced.
//!
//! The host records only what comes back in an invocation's `Logs` against that invocation (and so
//! in Application Insights); stdout lines carry no invocation id. Each invocation therefore runs in
//! a task-local scope, and the logger copies every line logged inside it into that scope's buffer.
//! Task-local, not global: concurrent invocations never mix their lines.

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
    lines: Mutex<Captured>,
}

#[derive(Debug, Default)]
struct Captured {
    kept: Vec<String>,
    dropped: usize,
}

impl Invocation {
    /// A new invocation of `function`, identified by the host's `X-Azure-Functions-InvocationId`.
    pub fn new(function: &str, id: &str) -> Self {
        Self {
            inner: Arc::new(Inner {
                id: id.to_owned(),
                function: function.to_owned(),
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

    /// Runs `work` with this invocation as the current one, so its log lines are captured.
    pub async fn scope<F: Future>(&self, work: F) -> F::Output {
        CURRENT.scope(self.clone(), work).await
    }

    /// Appends a line to this invocation's `Logs`.
    pub fn record(&self, line: String) {
        let mut captured = self.lock();
        if captured.kept.len() < MAX_LOG_LINES {
            captured.kept.push(line);
        } else {
            captured.dropped += 1;
        }
    }

    /// The lines captured so far, ending with a count of any that were dropped.
    pub fn logs(&self) -> Vec<String> {
        let captured = self.lock();
        let mut lines = captured.kept.clone();
        if captured.dropped > 0 {
            lines.push(format!(
                "({} more log lines were dropped)",
                captured.dropped
            ));
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

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn lines_recorded_in_a_scope_belong_to_that_invocation_only() {
        let a = Invocation::new("A", "1");
        let b = Invocation::new("B", "2");
        let record = |text: &'static str| with_current(|inv| inv.record(text.to_owned()));
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
    }

    #[test]
    fn lines_past_the_cap_are_counted_not_kept() {
        let inv = Invocation::new("A", "1");
        for n in 0..MAX_LOG_LINES + 5 {
            inv.record(n.to_string());
        }
        let logs = inv.logs();
        assert_eq!(logs.len(), MAX_LOG_LINES + 1);
        assert_eq!(logs.last().unwrap(), "(5 more log lines were dropped)");
    }
}
