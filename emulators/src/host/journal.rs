//! The invocation log: each invocation's `Logs` printed with its function and id, a summary
//! line, and a bounded ring buffer served at `GET /_emulator/invocations` for tests; and the
//! host's own log as the real host would record it (level, category, invocation id), served at
//! `GET /_emulator/logs`, so a test can see each line arrive once at its level.

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

/// A thread-safe ring buffer that keeps the newest `N` items: the journal and the host log
/// are both one, listed and cleared the same way by their `/_emulator/` endpoints.
#[derive(Debug)]
pub struct Ring<T, const N: usize> {
    items: Mutex<VecDeque<T>>,
}

impl<T, const N: usize> Default for Ring<T, N> {
    fn default() -> Self {
        Self {
            items: Mutex::new(VecDeque::new()),
        }
    }
}

impl<T: Clone, const N: usize> Ring<T, N> {
    /// Appends one item, dropping the oldest when full.
    pub fn push(&self, item: T) {
        if let Ok(mut items) = self.items.lock() {
            if items.len() >= N {
                items.pop_front();
            }
            items.push_back(item);
        }
    }

    /// The stored items, oldest first.
    pub fn list(&self) -> Vec<T> {
        self.items
            .lock()
            .map(|items| items.iter().cloned().collect())
            .unwrap_or_default()
    }

    /// Forgets every stored item.
    pub fn clear(&self) {
        if let Ok(mut items) = self.items.lock() {
            items.clear();
        }
    }
}

/// Thread-safe ring buffer of recent invocations.
#[derive(Debug, Default)]
pub struct Journal {
    /// The stored invocations, listed and cleared by `/_emulator/invocations`.
    pub records: Ring<InvocationRecord, JOURNAL_CAPACITY>,
}

impl Journal {
    /// Prints the invocation's log lines and summary, then stores it.
    pub fn record(&self, record: InvocationRecord) {
        print_invocation(&record);
        self.records.push(record);
    }
}

/// How many entries the host log keeps.
pub const HOST_LOG_CAPACITY: usize = 5000;

/// One line as the real host records it (an ILogger call, then Application Insights).
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct LogEntry {
    /// `Information`, `Warning` or `Error`.
    pub level: &'static str,
    /// The logger category: `Function.<Name>.User` for an invocation's `Logs`, `Function.<Name>`
    /// for its outcome, `Host.Function.Console` for the handler's stdout and stderr.
    pub category: String,
    /// The invocation the line is attached to (Application Insights' `InvocationId`), if any.
    pub invocation_id: Option<String>,
    /// The text.
    pub message: String,
}

/// The host's log, bounded.
#[derive(Debug, Default)]
pub struct HostLog {
    /// The entries, listed and cleared by `/_emulator/logs`.
    pub entries: Ring<LogEntry, HOST_LOG_CAPACITY>,
}

impl HostLog {
    /// Appends one entry.
    pub fn push(&self, entry: LogEntry) {
        self.entries.push(entry);
    }

    /// A line the handler wrote: stdout is Information; stderr is Warning when it contains
    /// "warn" (any case), otherwise Error (custom handlers use stderr for errors only). Neither
    /// is attached to an invocation: the console is read apart from any invocation.
    ///
    /// A line starting with `LanguageWorkerConsoleLog` (any case) goes to the host's own worker
    /// log, the prefix removed, instead of the user's console category.
    pub fn console(&self, from_stderr: bool, text: &str) {
        let level = match from_stderr {
            false => "Information",
            true if text.to_ascii_lowercase().contains("warn") => "Warning",
            true => "Error",
        };
        const PREFIX: &str = "languageworkerconsolelog";
        let (category, message) = match text.get(..PREFIX.len()) {
            Some(head) if head.eq_ignore_ascii_case(PREFIX) => {
                ("Worker.HttpWorkerProcess", text[PREFIX.len()..].to_owned())
            }
            _ => ("Host.Function.Console", text.to_owned()),
        };
        self.push(LogEntry {
            level,
            category: category.into(),
            invocation_id: None,
            message,
        });
    }

    /// An invocation's `Logs` (each one Information, attached to the invocation) and its outcome.
    pub fn invocation(&self, record: &InvocationRecord) {
        for line in &record.logs {
            self.push(LogEntry {
                level: "Information",
                category: format!("Function.{}.User", record.function),
                invocation_id: Some(record.invocation_id.clone()),
                message: line.clone(),
            });
        }
        let (level, message) = match &record.error {
            None => (
                "Information",
                format!(
                    "Executed 'Functions.{}' (Succeeded, Id={}, Duration={}ms)",
                    record.function, record.invocation_id, record.duration_ms
                ),
            ),
            Some(error) => (
                "Error",
                format!(
                    "Executed 'Functions.{}' (Failed, Id={}, Duration={}ms) {error}",
                    record.function, record.invocation_id, record.duration_ms
                ),
            ),
        };
        self.push(LogEntry {
            level,
            category: format!("Function.{}", record.function),
            invocation_id: Some(record.invocation_id.clone()),
            message,
        });
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
        let list = journal.records.list();
        assert_eq!(list.len(), JOURNAL_CAPACITY);
        assert_eq!(list[0].function, "F3");
        journal.records.clear();
        assert!(journal.records.list().is_empty());
    }

    #[test]
    fn console_lines_get_the_hosts_levels_and_categories() {
        let log = HostLog::default();
        log.console(false, "ERROR on stdout is still information");
        log.console(true, "WARN something");
        log.console(true, "a failure with a warning word");
        log.console(true, "ERROR plain");
        log.console(false, "LanguageWorkerConsoleLogstarted");
        let entries = log.entries.list();
        let levels: Vec<&str> = entries.iter().map(|e| e.level).collect();
        assert_eq!(
            levels,
            ["Information", "Warning", "Warning", "Error", "Information"]
        );
        assert_eq!(entries[4].category, "Worker.HttpWorkerProcess");
        assert_eq!(entries[4].message, "started");
        assert!(entries.iter().all(|e| e.invocation_id.is_none()));
    }
}
