//! The one request recorder: what a fake received ([`Recorded`]), the log of it ([`Recorder`]),
//! and what the fake answers ([`Reply`]). The TCP fakes of [`crate::server`] and the in-memory
//! transport of [`crate::azure`] share them, so a test reads requests the same way whichever
//! fake it uses.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;

/// One request as a fake received it.
#[derive(Debug, Clone)]
pub struct Recorded {
    /// The method.
    pub method: String,
    /// Scheme and authority the request went to (`https://127.0.0.1:443`), from the URL an
    /// in-memory transport was given, or from the Host header a server saw.
    pub origin: String,
    /// The request target as sent: path and query, still percent-encoded.
    pub target: String,
    /// The headers, names lower-cased, in the order they came.
    pub headers: Vec<(String, String)>,
    /// The body.
    pub body: Vec<u8>,
}

impl Recorded {
    /// The path, without the query.
    pub fn path(&self) -> &str {
        self.target.split('?').next().unwrap_or_default()
    }

    /// The query, when there is one.
    pub fn query(&self) -> Option<&str> {
        self.target.split_once('?').map(|(_, query)| query)
    }

    /// One query parameter, decoded.
    pub fn query_param(&self, key: &str) -> Option<String> {
        url::form_urlencoded::parse(self.query()?.as_bytes())
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.into_owned())
    }

    /// The path, percent-decoded, split on '/', without empty segments.
    pub fn path_segments(&self) -> Vec<String> {
        self.path()
            .split('/')
            .filter(|s| !s.is_empty())
            .map(percent_decode)
            .collect()
    }

    /// The full URL (origin and target).
    pub fn url(&self) -> url::Url {
        url::Url::parse(&format!("{}{}", self.origin, self.target))
            .unwrap_or_else(|e| panic!("{}{} is not a URL: {e}", self.origin, self.target))
    }

    /// A header's first value, by lower-case name.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(candidate, _)| candidate == name)
            .map(|(_, value)| value.as_str())
    }

    /// Whether the request carried an Authorization header.
    pub fn is_authorized(&self) -> bool {
        self.header("authorization").is_some()
    }
}

fn percent_decode(segment: &str) -> String {
    url::form_urlencoded::parse(format!("x={}", segment.replace('+', "%2B")).as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default()
}

/// Every request a fake received, in order; clones share the log.
#[derive(Debug, Clone, Default)]
pub struct Recorder {
    log: Arc<Mutex<Vec<Recorded>>>,
}

impl Recorder {
    /// Keeps `request`.
    pub fn record(&self, request: Recorded) {
        self.log.lock().expect("request log").push(request);
    }

    /// Every request so far.
    pub fn requests(&self) -> Vec<Recorded> {
        self.log.lock().expect("request log").clone()
    }

    /// How many requests so far.
    pub fn count(&self) -> usize {
        self.log.lock().expect("request log").len()
    }

    /// How many requests had exactly this path (query ignored).
    pub fn hits(&self, path: &str) -> usize {
        self.requests().iter().filter(|r| r.path() == path).count()
    }

    /// How many requests came without an Authorization header.
    pub fn unauthenticated_count(&self) -> usize {
        self.requests()
            .iter()
            .filter(|r| !r.is_authorized())
            .count()
    }

    /// Forgets every request so far.
    pub fn clear(&self) {
        self.log.lock().expect("request log").clear();
    }
}

/// What a fake answers.
#[derive(Debug, Clone)]
pub struct Reply {
    /// The status.
    pub status: u16,
    /// Headers (a server adds Content-Length or Transfer-Encoding, and Connection).
    pub headers: Vec<(String, String)>,
    /// The body.
    pub body: Vec<u8>,
    /// Wait this long before answering (servers only).
    pub delay: Duration,
    /// Send the body chunked, without Content-Length (servers only).
    pub chunked: bool,
}

impl Reply {
    /// An answer with `status`, no headers and no body.
    pub fn new(status: u16) -> Self {
        Self {
            status,
            headers: Vec::new(),
            body: Vec::new(),
            delay: Duration::ZERO,
            chunked: false,
        }
    }

    /// A JSON answer.
    pub fn json(status: u16, value: &Value) -> Self {
        Self::new(status).with_json(value)
    }

    /// An answer with `body` of `content_type`.
    pub fn bytes(status: u16, content_type: &str, body: impl Into<Vec<u8>>) -> Self {
        Self::new(status)
            .header("content-type", content_type)
            .body(body)
    }

    /// Adds a header.
    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.to_owned(), value.to_owned()));
        self
    }

    /// Sets the body.
    pub fn body(mut self, body: impl Into<Vec<u8>>) -> Self {
        self.body = body.into();
        self
    }

    /// Sets a JSON body and its content type.
    pub fn with_json(self, value: &Value) -> Self {
        self.header("content-type", "application/json")
            .body(value.to_string())
    }
}
