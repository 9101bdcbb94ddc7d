//! The invocation log: each invocation's `Logs` printed with its function and id, a summary
//! line, and a bounded ring buffer served at `GET /_emulator/invocations` for tests.

use std::collections::VecDeque;
use std::sync::Mutex;

use serde::Serialize;

/// How many invocations the ring buffer keeps.
pub const JOURNAL_CAPACITY: usize = 500;

/// One finished invocation, as reported by `GET /_emulator/invocations`.
#[derive(Debug, Clone, Serialize)]
pub struct InvocationRecord {
    /// Function (folder) name.
    pub function: String,
    /// The `X-Azure-Functions-InvocationId` sent to the handler.
    pub invocation_id: String,
    /// `http`, `timer` or `admin`.
    pub trigger: &'static str,
    /// `json` or `forwarding`.
    pub mode: &'static str,
    /// `succeeded` or `failed` (failed: the host would log an exception for the function).
    pub status: &'static str,
    /// The status code the HTTP client received (HTTP triggers only).
    pub http_status: Option<u16>,
    /// Why the invocation failed, if it did (never a key or token).
    pub error: Option<String>,
    /// The handler's `Logs` (empty when dropped by a failure, and in forwarding mode).
    pub logs: Vec<String>,
    /// `TimerInfo.IsPastDue` / start reason for timers: `schedule`, `startup` or `admin`.
    pub reason: Option<&'static str>,
    /// Start time, UTC, RFC 3339.
    pub started_at: String,
    /// Wall-clock duration in milliseconds.
    pub duration_ms: u64,
}

/// Thread-safe ring buffer of recent invocations.
#[derive(Debug, Default)]
pub struct Journal {
    records: Mutex<VecDeque<InvocationRecord>>,
}

impl Journal {
    /// Prints the invocation's log lines and summary, then stores it.
    pub fn record(&self, record: InvocationRecord) {
        print_invocation(&record);
        if let Ok(mut records) = self.records.lock() {
            if records.len() >= JOURNAL_CAPACITY {
                records.pop_front();
            }
            records.push_back(record);
        }
    }

    /// The stored invocations, oldest first.
    pub fn list(&self) -> Vec<InvocationRecord> {
        self.records
            .lock()
            .map(|records| records.iter().cloned().collect())
            .unwrap_or_default()
    }

    /// Forgets every stored invocation.
    pub fn clear(&self) {
        if let Ok(mut records) = self.records.lock() {
            records.clear();
        }
    }
}

/// `[Function id] line` for each log entry, then one summary line.
fn print_invocation(record: &InvocationRecord) {
    for line in &record.logs {
        log::info!(target: "function", "[{} {}] {}", record.function, record.invocation_id, line);
    }
    let http = record
        .http_status
        .map(|s| format!(", http {s}"))
        .unwrap_or_default();
    let summary = format!(
        "Executed '{}' ({}, {}, {}{http}) in {} ms, id {}",
        record.function,
        record.trigger,
        record.mode,
        record.status,
        record.duration_ms,
        record.invocation_id
    );
    match &record.error {
        None => log::info!(target: "host", "{summary}"),
        Some(error) => log::error!(target: "host", "{summary}: {error}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(n: usize) -> InvocationRecord {
        InvocationRecord {
            function: format!("F{n}"),
            invocation_id: n.to_string(),
            trigger: "timer",
            mode: "json",
            status: "succeeded",
            http_status: None,
            error: None,
            logs: vec![],
            reason: None,
            started_at: String::new(),
            duration_ms: 0,
        }
    }

    #[test]
    fn keeps_only_the_most_recent() {
        let journal = Journal::default();
        for n in 0..JOURNAL_CAPACITY + 3 {
            journal.record(record(n));
        }
        let list = journal.list();
        assert_eq!(list.len(), JOURNAL_CAPACITY);
        assert_eq!(list[0].function, "F3");
        journal.clear();
        assert!(journal.list().is_empty());
    }
}
