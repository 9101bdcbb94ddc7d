//! The HTTP request and response as a function sees them, the same in JSON and forwarding mode.
//!
//! Functions read these and never the host's envelopes, so one function body serves both modes.

use std::collections::BTreeMap;

use bytes::Bytes;
use serde::Serialize;

/// An HTTP request to a function, with its route parameters resolved. `Debug` hides credentials
/// (`crate::redact`): the `Authorization`, cookie and function-key headers and `?code=`.
#[derive(Clone, Default, PartialEq)]
pub struct HttpRequest {
    /// The method, upper case.
    pub method: String,
    /// Route parameters from the function's route template; unmatched optionals are absent.
    pub params: BTreeMap<String, String>,
    /// Query parameters (may include the function key as `code`: never log them whole).
    pub query: BTreeMap<String, String>,
    /// Headers, name as sent; one entry per value.
    pub headers: Vec<(String, String)>,
    /// The body bytes (decoded from base64 where the host encoded them).
    pub body: Bytes,
}

impl std::fmt::Debug for HttpRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        use crate::redact::{is_sensitive_header, is_sensitive_query, shown};
        let query: BTreeMap<&str, &str> = self
            .query
            .iter()
            .map(|(k, v)| (k.as_str(), shown(v, is_sensitive_query(k))))
            .collect();
        let headers: Vec<(&str, &str)> = self
            .headers
            .iter()
            .map(|(k, v)| (k.as_str(), shown(v, is_sensitive_header(k))))
            .collect();
        f.debug_struct("HttpRequest")
            .field("method", &self.method)
            .field("params", &self.params)
            .field("query", &query)
            .field("headers", &headers)
            .field("body", &format_args!("{} bytes", self.body.len()))
            .finish()
    }
}

impl HttpRequest {
    /// A route parameter.
    pub fn param(&self, name: &str) -> Option<&str> {
        self.params.get(name).map(String::as_str)
    }

    /// A query parameter, by exact name.
    pub fn query(&self, name: &str) -> Option<&str> {
        self.query.get(name).map(String::as_str)
    }

    /// The first value of a header, by name without regard to case.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(candidate, _)| candidate.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_str())
    }

    /// The request's content type, if it sent one.
    pub fn content_type(&self) -> Option<&str> {
        self.header("content-type")
    }
}

/// An HTTP response from a function.
#[derive(Debug, Clone, PartialEq)]
pub struct HttpResponse {
    /// The status code.
    pub status: u16,
    /// Headers; `Content-Type` is always among them.
    pub headers: BTreeMap<String, String>,
    /// The body bytes.
    pub body: Bytes,
}

impl HttpResponse {
    /// A response with `body` of `content_type`.
    pub fn new(status: u16, content_type: &str, body: impl Into<Bytes>) -> Self {
        let headers = BTreeMap::from([("Content-Type".to_owned(), content_type.to_owned())]);
        Self {
            status,
            headers,
            body: body.into(),
        }
    }

    /// A JSON response. Serializing our own response types cannot fail; if it ever did the
    /// caller gets a 500 saying so rather than a panic.
    pub fn json(status: u16, value: &impl Serialize) -> Self {
        match serde_json::to_vec(value) {
            Ok(body) => Self::new(status, "application/json; charset=utf-8", body),
            Err(error) => Self::new(
                500,
                "text/plain; charset=utf-8",
                format!("the response could not be serialized: {error}"),
            ),
        }
    }

    /// Adds or replaces a header.
    pub fn with_header(mut self, name: &str, value: impl Into<String>) -> Self {
        self.headers.insert(name.to_owned(), value.into());
        self
    }

    /// The same response with another status.
    pub fn with_status(mut self, status: u16) -> Self {
        self.status = status;
        self
    }

    /// A header's value, by name without regard to case.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(candidate, _)| candidate.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_str())
    }
}
