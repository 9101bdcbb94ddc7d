//! Fault and response-shape rules, queued by `POST /_emulator/faults`.
//!
//! A rule is one JSON object (or post an array of them); every field is optional:
//!
//! ```json
//! {
//!   "protocol": "appservice2019 | legacy2017 | imds | any",   // default "any"
//!   "times": 2,              // matching token requests that consume it (default 1)
//!   "persistent": false,     // true: never used up, applies until DELETE /_emulator/faults
//!   "delay_ms": 0,           // wait before answering (at most 60000)
//!   "status": 500,           // answer with this status instead of a token...
//!   "body": "...",           // ...and this body (default: the platform's error shape)
//!   "retry_after": "2",      // ...and this Retry-After header (string or number)
//!   "unsupported_api_version": true,   // answer the UnsupportedApiVersion 400
//!   "malformed": true,       // answer 200 with a non-JSON (HTML) body
//!   "reset": true,           // close the connection without any answer (after delay_ms)
//!   "expires_on_format": "epoch-string | epoch-number | date-windows | date-linux | date-pm",
//!   "lifetime_secs": 600     // lifetime of the token issued
//! }
//! ```
//!
//! Each token request that passes the guard-header check consumes the first queued rule whose
//! `protocol` matches (FIFO). `status` wins over `unsupported_api_version`, which wins over
//! `malformed`; the shape knobs (`expires_on_format`, `lifetime_secs`) change a successful answer.
//! Requests refused for a missing/wrong guard header never consume a rule.

use std::collections::VecDeque;

use hyper::StatusCode;
use hyper::header::HeaderValue;
use serde::Deserialize;
use serde_json::Value;

use super::protocol::Protocol;
use super::token::ExpiresOnFormat;

/// The longest delay a rule may ask for.
pub const MAX_DELAY_MS: u64 = 60_000;

/// Which token requests a rule applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ProtocolMatch {
    /// Every protocol.
    #[default]
    Any,
    /// App Service 2019 only.
    #[serde(rename = "appservice2019")]
    AppService2019,
    /// Legacy 2017 / Azure ML only.
    #[serde(rename = "legacy2017")]
    Legacy2017,
    /// IMDS only.
    Imds,
}

impl ProtocolMatch {
    fn matches(self, protocol: Protocol) -> bool {
        match self {
            Self::Any => true,
            Self::AppService2019 => protocol == Protocol::AppService2019,
            Self::Legacy2017 => protocol == Protocol::Legacy2017,
            Self::Imds => protocol == Protocol::Imds,
        }
    }
}

/// A rule as posted (see the module docs).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RuleRequest {
    #[serde(default)]
    protocol: ProtocolMatch,
    times: Option<u32>,
    #[serde(default)]
    persistent: bool,
    #[serde(default)]
    delay_ms: u64,
    status: Option<u16>,
    body: Option<String>,
    retry_after: Option<Value>,
    #[serde(default)]
    unsupported_api_version: bool,
    #[serde(default)]
    malformed: bool,
    #[serde(default)]
    reset: bool,
    expires_on_format: Option<ExpiresOnFormat>,
    lifetime_secs: Option<u64>,
}

/// What a consumed rule does to one token request.
#[derive(Debug, Clone, Default)]
pub struct Effect {
    /// Wait this long first.
    pub delay_ms: u64,
    /// Replace the answer with this status...
    pub status: Option<StatusCode>,
    /// ...this body...
    pub body: Option<String>,
    /// ...and this Retry-After value.
    pub retry_after: Option<HeaderValue>,
    /// Answer the UnsupportedApiVersion 400.
    pub unsupported_api_version: bool,
    /// Answer 200 with a body that is not JSON.
    pub malformed: bool,
    /// Close the connection without answering (wins over every other effect but the delay).
    pub reset: bool,
    /// Write `expires_on` this way.
    pub expires_on_format: Option<ExpiresOnFormat>,
    /// Issue a token with this lifetime.
    pub lifetime_secs: Option<u64>,
}

#[derive(Debug, Clone)]
struct Rule {
    protocol: ProtocolMatch,
    remaining: Option<u32>,
    effect: Effect,
}

/// The FIFO of pending rules.
#[derive(Debug, Default)]
pub struct RuleQueue {
    rules: VecDeque<Rule>,
}

impl RuleQueue {
    /// Parses one rule or an array of rules and appends them. Returns the queue length.
    pub fn push_json(&mut self, body: &[u8]) -> Result<usize, String> {
        let value: Value =
            serde_json::from_slice(body).map_err(|e| format!("body is not JSON: {e}"))?;
        let requests: Vec<RuleRequest> = match value {
            Value::Array(items) => serde_json::from_value(Value::Array(items)),
            other => serde_json::from_value(other).map(|rule| vec![rule]),
        }
        .map_err(|e| format!("invalid fault rule: {e}"))?;
        let rules = requests
            .into_iter()
            .map(validate)
            .collect::<Result<Vec<_>, _>>()?;
        self.rules.extend(rules);
        Ok(self.rules.len())
    }

    /// Number of pending rules.
    pub fn len(&self) -> usize {
        self.rules.len()
    }

    /// True when no rule is pending.
    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// Drops every rule.
    pub fn clear(&mut self) {
        self.rules.clear();
    }

    /// Consumes one use of the first rule matching `protocol` and returns its effect.
    pub fn take(&mut self, protocol: Protocol) -> Option<Effect> {
        let index = self
            .rules
            .iter()
            .position(|r| r.protocol.matches(protocol))?;
        let rule = self.rules.get_mut(index)?;
        let effect = rule.effect.clone();
        if let Some(remaining) = rule.remaining.as_mut() {
            *remaining = remaining.saturating_sub(1);
            if *remaining == 0 {
                self.rules.remove(index);
            }
        }
        Some(effect)
    }
}

fn validate(request: RuleRequest) -> Result<Rule, String> {
    if request.delay_ms > MAX_DELAY_MS {
        return Err(format!("delay_ms must be at most {MAX_DELAY_MS}"));
    }
    let times = request.times.unwrap_or(1);
    if times == 0 {
        return Err("times must be at least 1".into());
    }
    let status = request
        .status
        .map(|code| StatusCode::from_u16(code).map_err(|_| format!("invalid status {code}")))
        .transpose()?;
    let retry_after = request
        .retry_after
        .as_ref()
        .map(retry_after_header)
        .transpose()?;
    Ok(Rule {
        protocol: request.protocol,
        remaining: (!request.persistent).then_some(times),
        effect: Effect {
            delay_ms: request.delay_ms,
            status,
            body: request.body,
            retry_after,
            unsupported_api_version: request.unsupported_api_version,
            malformed: request.malformed,
            reset: request.reset,
            expires_on_format: request.expires_on_format,
            lifetime_secs: request.lifetime_secs,
        },
    })
}

fn retry_after_header(value: &Value) -> Result<HeaderValue, String> {
    let text = match value {
        Value::String(text) => text.clone(),
        Value::Number(number) => number.to_string(),
        _ => return Err("retry_after must be a string or a number".into()),
    };
    HeaderValue::from_str(&text).map_err(|_| "retry_after is not a valid header value".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn consumes_matching_rules_in_order() {
        let mut queue = RuleQueue::default();
        queue
            .push_json(br#"[{"protocol":"imds","status":503},{"status":500,"times":2}]"#)
            .unwrap();
        let first = queue.take(Protocol::AppService2019).unwrap();
        assert_eq!(first.status, Some(StatusCode::INTERNAL_SERVER_ERROR));
        assert_eq!(
            queue.take(Protocol::Imds).unwrap().status,
            Some(StatusCode::SERVICE_UNAVAILABLE)
        );
        assert_eq!(
            queue.take(Protocol::Imds).unwrap().status,
            Some(StatusCode::INTERNAL_SERVER_ERROR)
        );
        assert!(queue.take(Protocol::Imds).is_none());
        assert!(queue.is_empty());
    }

    #[test]
    fn persistent_rules_stay_and_bad_rules_are_refused() {
        let mut queue = RuleQueue::default();
        queue
            .push_json(br#"{"persistent":true,"expires_on_format":"date-linux"}"#)
            .unwrap();
        for _ in 0..3 {
            assert_eq!(
                queue.take(Protocol::Legacy2017).unwrap().expires_on_format,
                Some(ExpiresOnFormat::DateLinux)
            );
        }
        assert!(queue.push_json(br#"{"status":42}"#).is_err());
        assert!(queue.push_json(br#"{"times":0}"#).is_err());
        assert!(queue.push_json(br#"{"delay_ms":999999}"#).is_err());
        assert!(queue.push_json(br#"{"colour":"red"}"#).is_err());
        assert!(queue.push_json(br#"{"retry_after":"a\nb"}"#).is_err());
        assert!(queue.push_json(b"nope").is_err());
        assert_eq!(queue.len(), 1);
    }
}
