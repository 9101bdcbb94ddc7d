//! Test-control state: the request log tests read back and the fault queue they fill.
//! Neither ever holds a secret value or a token.

use std::collections::VecDeque;

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

/// Most request records kept (the counters keep counting past it).
const MAX_RECORDS: usize = 10_000;
/// Most faults that may wait in the queue.
const MAX_FAULTS: usize = 1_000;

/// One handled secrets-API request, as `GET /_emulator/requests` lists it.
#[derive(Debug, Clone, Serialize)]
pub struct RequestRecord {
    /// HTTP method.
    pub method: String,
    /// Path without the query.
    pub path: String,
    /// Whether the request carried a valid token.
    pub authenticated: bool,
    /// Response status.
    pub status: u16,
    /// The `api-version` query parameter, if any.
    pub api_version: Option<String>,
    /// The `x-ms-client-request-id` header, if any.
    pub client_request_id: Option<String>,
}

/// Every secrets-API request since the last reset.
#[derive(Debug, Default)]
pub struct RequestLog {
    records: VecDeque<RequestRecord>,
    count: u64,
    unauthenticated: u64,
}

impl RequestLog {
    /// Adds one record, dropping the oldest past the cap.
    pub fn record(&mut self, record: RequestRecord) {
        self.count += 1;
        if !record.authenticated {
            self.unauthenticated += 1;
        }
        if self.records.len() == MAX_RECORDS {
            self.records.pop_front();
        }
        self.records.push_back(record);
    }

    /// The JSON that `GET /_emulator/requests` returns.
    pub fn to_json(&self) -> Value {
        json!({
            "count": self.count,
            "unauthenticated": self.unauthenticated,
            "requests": self.records,
        })
    }

    /// Forgets everything.
    pub fn clear(&mut self) {
        *self = RequestLog::default();
    }
}

/// A fault as posted to `POST /_emulator/faults`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FaultSpec {
    /// Status to answer with (400-599); absent with `delay_ms` alone, the normal answer comes late.
    #[serde(default)]
    pub status: Option<u16>,
    /// Wait this long before answering (at most 60 000 ms).
    #[serde(default)]
    pub delay_ms: u64,
    /// Close the connection without any answer (after `delay_ms`).
    #[serde(default)]
    pub reset: bool,
    /// Optional `Retry-After` header value (string or number).
    #[serde(default)]
    pub retry_after: Option<Value>,
    /// How many requests it applies to (default 1).
    #[serde(default = "one")]
    pub times: u32,
    /// Optional JSON body; a Key Vault-shaped error by default.
    #[serde(default)]
    pub body: Option<Value>,
}

fn one() -> u32 {
    1
}

/// A validated fault with its remaining uses.
#[derive(Debug, Clone)]
pub struct Fault {
    /// Status to answer with; `None`: the normal answer, after `delay_ms`.
    pub status: Option<u16>,
    /// Wait before answering.
    pub delay_ms: u64,
    /// Close the connection instead of answering.
    pub reset: bool,
    /// `Retry-After` header value.
    pub retry_after: Option<String>,
    /// Response body.
    pub body: Value,
    remaining: u32,
}

impl FaultSpec {
    /// Checks the spec and turns it into a queueable fault.
    pub fn into_fault(self) -> Result<Fault, String> {
        match self.status {
            Some(status) if !(400..=599).contains(&status) => {
                return Err("status must be 400-599".into());
            }
            None if self.delay_ms == 0 && !self.reset => {
                return Err("a fault needs a status, delay_ms or reset".into());
            }
            _ => {}
        }
        if self.delay_ms > 60_000 {
            return Err("delay_ms must be at most 60000".into());
        }
        if self.times == 0 {
            return Err("times must be at least 1".into());
        }
        let retry_after = match self.retry_after {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) if is_header_safe(&s) => Some(s),
            Some(Value::Number(n)) => Some(n.to_string()),
            Some(_) => {
                return Err("retry_after must be a short printable string or a number".into());
            }
        };
        Ok(Fault {
            status: self.status,
            delay_ms: self.delay_ms,
            reset: self.reset,
            retry_after,
            body: self
                .body
                .unwrap_or_else(|| default_fault_body(self.status.unwrap_or(500))),
            remaining: self.times,
        })
    }
}

fn is_header_safe(value: &str) -> bool {
    !value.is_empty()
        && value.len() <= 64
        && value.chars().all(|c| c.is_ascii_graphic() || c == ' ')
}

/// Key Vault-shaped error body for a fault status.
fn default_fault_body(status: u16) -> Value {
    let (code, message) = match status {
        429 => (
            "Throttled",
            "Request was not processed because too many requests were received. Reason: emulated fault",
        ),
        500 => (
            "InternalServerError",
            "An internal server error occurred (emulated fault).",
        ),
        502 => ("BadGateway", "Bad gateway (emulated fault)."),
        503 => (
            "ServiceUnavailable",
            "The service is unavailable (emulated fault).",
        ),
        504 => ("GatewayTimeout", "Gateway timeout (emulated fault)."),
        _ => ("EmulatedFault", "Emulated fault."),
    };
    json!({"error": {"code": code, "message": message}})
}

/// Faults waiting to be applied, first in first out.
#[derive(Debug, Default)]
pub struct FaultQueue {
    faults: VecDeque<Fault>,
}

impl FaultQueue {
    /// Queues a fault; returns how many requests are now due to fail.
    pub fn push(&mut self, fault: Fault) -> Result<u64, String> {
        if self.faults.len() >= MAX_FAULTS {
            return Err("too many queued faults".into());
        }
        self.faults.push_back(fault);
        Ok(self.pending())
    }

    /// Takes one use of the front fault, if any.
    pub fn next(&mut self) -> Option<Fault> {
        let front = self.faults.front_mut()?;
        front.remaining = front.remaining.saturating_sub(1);
        let fault = front.clone();
        if front.remaining == 0 {
            self.faults.pop_front();
        }
        Some(fault)
    }

    /// Requests still due to fail.
    pub fn pending(&self) -> u64 {
        self.faults.iter().map(|f| u64::from(f.remaining)).sum()
    }

    /// Drops every queued fault.
    pub fn clear(&mut self) {
        self.faults.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fault(json: Value) -> Result<Fault, String> {
        serde_json::from_value::<FaultSpec>(json)
            .map_err(|e| e.to_string())?
            .into_fault()
    }

    #[test]
    fn faults_apply_fifo_with_counts() {
        let mut queue = FaultQueue::default();
        queue
            .push(fault(json!({"status": 429, "retry_after": "1", "times": 2})).unwrap())
            .unwrap();
        assert_eq!(
            queue.push(fault(json!({"status": 503})).unwrap()).unwrap(),
            3
        );
        let first = queue.next().unwrap();
        assert_eq!(
            (first.status, first.retry_after.as_deref()),
            (Some(429), Some("1"))
        );
        assert_eq!(first.body["error"]["code"], "Throttled");
        assert_eq!(queue.next().unwrap().status, Some(429));
        assert_eq!(queue.next().unwrap().status, Some(503));
        assert!(queue.next().is_none());
    }

    #[test]
    fn invalid_faults_are_refused() {
        assert!(fault(json!({"status": 200})).is_err());
        assert!(fault(json!({})).is_err());
        assert!(fault(json!({"delay_ms": 60_001})).is_err());
        let slow = fault(json!({"delay_ms": 1500, "times": 3})).unwrap();
        assert_eq!(
            (slow.status, slow.delay_ms, slow.reset),
            (None, 1500, false)
        );
        assert!(fault(json!({"reset": true})).unwrap().reset);
        assert!(fault(json!({"status": 500, "times": 0})).is_err());
        assert!(fault(json!({"status": 500, "retry_after": "a\nb"})).is_err());
        assert!(fault(json!({"status": 500, "retry_after": [1]})).is_err());
        assert_eq!(
            fault(json!({"status": 429, "retry_after": 7}))
                .unwrap()
                .retry_after
                .as_deref(),
            Some("7")
        );
    }

    #[test]
    fn log_counts_unauthenticated() {
        let mut log = RequestLog::default();
        for authenticated in [false, true, true] {
            log.record(RequestRecord {
                method: "GET".into(),
                path: "/secrets/a".into(),
                authenticated,
                status: 200,
                api_version: None,
                client_request_id: None,
            });
        }
        let json = log.to_json();
        assert_eq!(
            (json["count"].as_u64(), json["unauthenticated"].as_u64()),
            (Some(3), Some(1))
        );
        log.clear();
        assert_eq!(log.to_json()["count"], 0);
    }
}
