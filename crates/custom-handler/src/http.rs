//! The HTTP request and response as a function sees them, the same in JSON and forwarding mode.
//!
//! Functions read these and never the host's envelopes, so one function body serves both modes.

use std::borrow::Cow;
use std::collections::BTreeMap;

use bytes::Bytes;
use hyper::header::{self, HeaderMap, HeaderName, HeaderValue};
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
    /// Headers; one entry per value.
    pub headers: Headers,
    /// The body bytes (decoded from base64 where the host encoded them).
    pub body: Bytes,
    /// How the request reached the handler, and so what the host may have done to the body.
    pub transport: Transport,
}

/// A request's headers, one entry per value, in the order sent. Names are as the host wrote
/// them in JSON mode, lower case when forwarded (HTTP/1 names are case-insensitive); read them
/// with [`Headers::get`], which ignores case.
#[derive(Clone, Default)]
pub struct Headers(HeaderStore);

#[derive(Clone)]
enum HeaderStore {
    /// Read from a JSON-mode envelope, or built by hand.
    Pairs(Vec<(String, String)>),
    /// A forwarded request's own header map, kept as hyper parsed it rather than copied into
    /// strings; every value in it is UTF-8 (checked when it was kept).
    Wire(HeaderMap),
}

impl Default for HeaderStore {
    fn default() -> Self {
        Self::Pairs(Vec::new())
    }
}

impl Headers {
    /// A forwarded request's headers. A value that is not UTF-8 (HTTP allows any byte from 0x80
    /// up) is read lossily, as the host reads it, which takes a copy of them all.
    pub fn from_wire(map: HeaderMap) -> Self {
        if map.values().all(|value| {
            let bytes = value.as_bytes();
            bytes.is_ascii() || std::str::from_utf8(bytes).is_ok()
        }) {
            return Self(HeaderStore::Wire(map));
        }
        let pairs = map
            .iter()
            .map(|(name, value)| {
                let value = String::from_utf8_lossy(value.as_bytes()).into_owned();
                (name.as_str().to_owned(), value)
            })
            .collect();
        Self(HeaderStore::Pairs(pairs))
    }

    /// The first value of a header, by name without regard to case.
    pub fn get(&self, name: &str) -> Option<&str> {
        match &self.0 {
            HeaderStore::Pairs(pairs) => pairs
                .iter()
                .find(|(candidate, _)| candidate.eq_ignore_ascii_case(name))
                .map(|(_, value)| value.as_str()),
            HeaderStore::Wire(map) => map.get(name).map(wire_text),
        }
    }

    /// Every value of a header, by name without regard to case, in the order sent.
    pub fn all<'a>(&'a self, name: &'a str) -> HeaderValues<'a> {
        match &self.0 {
            HeaderStore::Pairs(pairs) => HeaderValues(Values::Pairs(pairs.iter(), name)),
            HeaderStore::Wire(map) => HeaderValues(Values::Wire(map.get_all(name).iter())),
        }
    }

    /// [`Headers::all`] by a name parsed once, which a forwarded request's map finds without
    /// parsing it again.
    pub fn all_of<'a>(&'a self, name: &'a HeaderName) -> HeaderValues<'a> {
        match &self.0 {
            HeaderStore::Pairs(pairs) => HeaderValues(Values::Pairs(pairs.iter(), name.as_str())),
            HeaderStore::Wire(map) => HeaderValues(Values::Wire(map.get_all(name).iter())),
        }
    }

    /// Every (name, value), one per value, in the order sent.
    pub fn iter(&self) -> HeaderIter<'_> {
        match &self.0 {
            HeaderStore::Pairs(pairs) => HeaderIter(Entries::Pairs(pairs.iter())),
            HeaderStore::Wire(map) => HeaderIter(Entries::Wire(map.iter())),
        }
    }

    /// How many values there are.
    pub fn len(&self) -> usize {
        match &self.0 {
            HeaderStore::Pairs(pairs) => pairs.len(),
            HeaderStore::Wire(map) => map.len(),
        }
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A value of a kept header map as text: checked to be UTF-8 when the map was kept. Nearly
/// always visible ASCII, which `to_str` checks in a simpler loop than UTF-8 decoding takes.
fn wire_text(value: &HeaderValue) -> &str {
    value
        .to_str()
        .ok()
        .or_else(|| std::str::from_utf8(value.as_bytes()).ok())
        .unwrap_or_default()
}

impl From<Vec<(String, String)>> for Headers {
    fn from(pairs: Vec<(String, String)>) -> Self {
        Self(HeaderStore::Pairs(pairs))
    }
}

impl std::fmt::Debug for Headers {
    /// Credentials (`Authorization`, cookies, function keys) are shown as a placeholder
    /// (`crate::redact`).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        use crate::redact::{is_sensitive_header, shown};
        f.debug_list()
            .entries(
                self.iter()
                    .map(|(name, value)| (name, shown(value, is_sensitive_header(name)))),
            )
            .finish()
    }
}

impl PartialEq for Headers {
    fn eq(&self, other: &Self) -> bool {
        self.iter().eq(other.iter())
    }
}

/// The values of one header of [`Headers`].
pub struct HeaderValues<'a>(Values<'a>);

enum Values<'a> {
    Pairs(std::slice::Iter<'a, (String, String)>, &'a str),
    Wire(header::ValueIter<'a, HeaderValue>),
}

impl<'a> Iterator for HeaderValues<'a> {
    type Item = &'a str;

    fn next(&mut self) -> Option<Self::Item> {
        match &mut self.0 {
            Values::Pairs(pairs, name) => pairs
                .find(|(candidate, _)| candidate.eq_ignore_ascii_case(name))
                .map(|(_, value)| value.as_str()),
            Values::Wire(values) => values.next().map(wire_text),
        }
    }
}

/// The (name, value) pairs of [`Headers`].
pub struct HeaderIter<'a>(Entries<'a>);

enum Entries<'a> {
    Pairs(std::slice::Iter<'a, (String, String)>),
    Wire(header::Iter<'a, HeaderValue>),
}

impl<'a> Iterator for HeaderIter<'a> {
    type Item = (&'a str, &'a str);

    fn next(&mut self) -> Option<Self::Item> {
        match &mut self.0 {
            Entries::Pairs(pairs) => pairs
                .next()
                .map(|(name, value)| (name.as_str(), value.as_str())),
            Entries::Wire(wire) => wire
                .next()
                .map(|(name, value)| (name.as_str(), wire_text(value))),
        }
    }
}

/// How a request reached the handler.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Transport {
    /// Forwarded as the client sent it (`enableForwardingHttpRequest`): the body is the client's
    /// bytes, and the response goes back as it is.
    #[default]
    Forwarded,
    /// Inside a JSON-mode payload. The host sends octet-stream and multipart bodies as base64
    /// (exact) and reads every other body as UTF-8 text (invalid bytes become U+FFFD, a BOM is
    /// dropped); the response body goes back as a string. See docs/host-contract.md.
    Json,
}

/// The media type of a Content-Type value, lower case, without parameters.
pub fn media_type(content_type: &str) -> String {
    content_type
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase()
}

/// Whether the host sends a body of this content type as base64 in JSON mode: a valid media type
/// that is exactly `application/octet-stream` or contains `multipart/` (so `multipart/*` and
/// `x-multipart/*`). An unparsable Content-Type is read as text.
pub fn host_sends_base64(content_type: Option<&str>) -> bool {
    let media = media_type(content_type.unwrap_or_default());
    let token = |part: &str| {
        !part.is_empty()
            && part
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
    };
    let valid = media
        .split_once('/')
        .is_some_and(|(kind, subtype)| token(kind) && token(subtype));
    valid && (media == "application/octet-stream" || media.contains("multipart/"))
}

/// Whether a body of this content type is text that the host's UTF-8 reading keeps: a textual
/// media type whose charset, if named, is UTF-8 or ASCII.
pub fn is_utf8_text(content_type: &str) -> bool {
    let media = media_type(content_type);
    let textual = media.starts_with("text/")
        || media.ends_with("+json")
        || media.ends_with("+xml")
        || matches!(
            media.as_str(),
            "application/json"
                | "application/xml"
                | "application/javascript"
                | "application/ecmascript"
                | "application/x-www-form-urlencoded"
                | "application/x-ndjson"
                | "application/yaml"
        );
    let charset_ok =
        content_type
            .split(';')
            .skip(1)
            .all(|parameter| match parameter.split_once('=') {
                Some((name, value)) if name.trim().eq_ignore_ascii_case("charset") => {
                    let value = value.trim().trim_matches('"').to_ascii_lowercase();
                    matches!(value.as_str(), "utf-8" | "utf8" | "us-ascii")
                }
                _ => true,
            });
    textual && charset_ok
}

impl std::fmt::Debug for HttpRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let query = crate::redact::query(&self.query);
        f.debug_struct("HttpRequest")
            .field("method", &self.method)
            .field("params", &self.params)
            .field("query", &query)
            .field("headers", &self.headers)
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
        self.headers.get(name)
    }

    /// The request's content type, if it sent one.
    pub fn content_type(&self) -> Option<&str> {
        self.header("content-type")
    }

    /// In JSON mode, the content type (or `untyped`) of a body the host has already decoded as
    /// UTF-8 text although it is not text, so that its bytes may differ from the client's.
    /// `None` when the body is what the client sent: forwarded, empty, base64-carried or text.
    pub fn body_altered_by_host(&self) -> Option<String> {
        if self.transport != Transport::Json || self.body.is_empty() {
            return None;
        }
        match self.content_type() {
            None => Some("untyped (no Content-Type)".to_owned()),
            Some(kind) if host_sends_base64(Some(kind)) || is_utf8_text(kind) => None,
            Some(kind) => Some(format!("'{}'", media_type(kind))),
        }
    }
}

/// A response's headers, in the order they were set, one value per name: setting a name again
/// (in any case) replaces its value. Names and values written as literals are kept without a
/// copy. Serializes as a JSON object (the host's `headers`).
#[derive(Clone, Default, PartialEq, Eq)]
pub struct ResponseHeaders(Vec<(Cow<'static, str>, Cow<'static, str>)>);

impl ResponseHeaders {
    /// Sets a header, replacing any value it had.
    pub fn set(&mut self, name: impl Into<Cow<'static, str>>, value: impl Into<Cow<'static, str>>) {
        let (name, value) = (name.into(), value.into());
        match self.position(&name) {
            Some(at) => self.0[at].1 = value,
            None => self.0.push((name, value)),
        }
    }

    /// A header's value, by name without regard to case.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.position(name).map(|at| &*self.0[at].1)
    }

    /// Whether a header is set, by name without regard to case.
    pub fn contains(&self, name: &str) -> bool {
        self.position(name).is_some()
    }

    /// Every (name, value), in the order set.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(name, value)| (&**name, &**value))
    }

    /// How many headers are set.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether none is.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    fn position(&self, name: &str) -> Option<usize> {
        self.0
            .iter()
            .position(|(candidate, _)| candidate.eq_ignore_ascii_case(name))
    }
}

impl IntoIterator for ResponseHeaders {
    type Item = (Cow<'static, str>, Cow<'static, str>);
    type IntoIter = std::vec::IntoIter<Self::Item>;

    fn into_iter(self) -> Self::IntoIter {
        self.0.into_iter()
    }
}

impl<N, V> FromIterator<(N, V)> for ResponseHeaders
where
    N: Into<Cow<'static, str>>,
    V: Into<Cow<'static, str>>,
{
    fn from_iter<I: IntoIterator<Item = (N, V)>>(pairs: I) -> Self {
        let mut headers = Self::default();
        for (name, value) in pairs {
            headers.set(name, value);
        }
        headers
    }
}

impl<N, V, const LEN: usize> From<[(N, V); LEN]> for ResponseHeaders
where
    N: Into<Cow<'static, str>>,
    V: Into<Cow<'static, str>>,
{
    fn from(pairs: [(N, V); LEN]) -> Self {
        pairs.into_iter().collect()
    }
}

impl std::fmt::Debug for ResponseHeaders {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_map().entries(self.iter()).finish()
    }
}

impl Serialize for ResponseHeaders {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_map(self.iter())
    }
}

/// An HTTP response from a function.
#[derive(Clone)]
pub struct HttpResponse {
    /// The status code.
    pub status: u16,
    /// Headers; `Content-Type` is always among them.
    pub headers: ResponseHeaders,
    /// The body bytes. Inside a JSON-mode invocation, a body [`HttpResponse::json`] wrote is
    /// already in the form the host's envelope carries it in: the JSON text escaped as a
    /// string's content.
    pub body: Bytes,
    /// When `body` is in that escaped form: a second handle on its bytes, so that the runtime
    /// can tell the body was not replaced since (a `Bytes` never changes while a handle lives).
    escaped: Option<Bytes>,
}

impl PartialEq for HttpResponse {
    fn eq(&self, other: &Self) -> bool {
        (self.status, &self.headers, &self.body) == (other.status, &other.headers, &other.body)
    }
}

impl std::fmt::Debug for HttpResponse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpResponse")
            .field("status", &self.status)
            .field("headers", &self.headers)
            .field("body", &self.body)
            .finish()
    }
}

impl HttpResponse {
    /// A response with `body` of `content_type`.
    pub fn new(
        status: u16,
        content_type: impl Into<Cow<'static, str>>,
        body: impl Into<Bytes>,
    ) -> Self {
        let headers = ResponseHeaders::from([("Content-Type", content_type)]);
        Self {
            status,
            headers,
            body: body.into(),
            escaped: None,
        }
    }

    /// A JSON response. Serializing our own response types cannot fail; if it ever did the
    /// caller gets a 500 saying so rather than a panic.
    ///
    /// Inside a JSON-mode invocation the host reads the body back as a string of the envelope,
    /// so the JSON is written straight in that string's escaped form (`crate::escaped`) and the
    /// runtime does not escape it a second time.
    pub fn json(status: u16, value: &impl Serialize) -> Self {
        // Room for a typical answer up front: growing from empty took several reallocations.
        let mut body = Vec::with_capacity(512);
        let escaped =
            crate::invocation::with_current(|invocation| invocation.captures()).unwrap_or(false);
        let written = if escaped {
            crate::escaped::to_writer(&mut body, value)
        } else {
            serde_json::to_writer(&mut body, value)
        };
        match written {
            Ok(()) => {
                let mut response = Self::new(status, "application/json; charset=utf-8", body);
                if escaped {
                    response.escaped = Some(response.body.clone());
                }
                response
            }
            Err(error) => Self::new(
                500,
                "text/plain; charset=utf-8",
                format!("the response could not be serialized: {error}"),
            ),
        }
    }

    /// A JSON response whose text the caller writes itself, typically from parts it keeps
    /// rendered between calls. `write` gets the body's buffer and the form to write: `false`
    /// for the JSON text as it is, `true` for that text escaped as a JSON string's content
    /// (what [`HttpResponse::json`] writes inside a JSON-mode invocation; `crate::escaped`).
    /// Whatever `write` puts there must be valid JSON in the form asked for. The buffer starts
    /// empty: reserving what it will hold saves growing it (and shrinking it into the body).
    pub fn json_written(status: u16, write: impl FnOnce(&mut Vec<u8>, bool)) -> Self {
        let mut body = Vec::new();
        let escaped =
            crate::invocation::with_current(|invocation| invocation.captures()).unwrap_or(false);
        write(&mut body, escaped);
        let mut response = Self::new(status, "application/json; charset=utf-8", body);
        if escaped {
            response.escaped = Some(response.body.clone());
        }
        response
    }

    /// The body, and whether it is already escaped as a JSON string's content (see
    /// [`HttpResponse::json`]): only when it is still the very bytes `json` wrote.
    pub(crate) fn into_parts(self) -> (u16, ResponseHeaders, Bytes, bool) {
        let escaped = self.escaped.is_some_and(|escaped| {
            escaped.as_ptr() == self.body.as_ptr() && escaped.len() == self.body.len()
        });
        (self.status, self.headers, self.body, escaped)
    }

    /// Adds or replaces a header (its name compared without regard to case).
    pub fn with_header(
        mut self,
        name: impl Into<Cow<'static, str>>,
        value: impl Into<Cow<'static, str>>,
    ) -> Self {
        self.headers.set(name, value);
        self
    }

    /// The same response with another status.
    pub fn with_status(mut self, status: u16) -> Self {
        self.status = status;
        self
    }

    /// A header's value, by name without regard to case.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn json_request(content_type: Option<&str>, body: &'static [u8]) -> HttpRequest {
        HttpRequest {
            headers: content_type
                .map(|kind| vec![("Content-Type".to_owned(), kind.to_owned())])
                .unwrap_or_default()
                .into(),
            body: Bytes::from_static(body),
            transport: Transport::Json,
            ..HttpRequest::default()
        }
    }

    fn wire(pairs: &[(&'static str, &'static [u8])]) -> Headers {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(*name, HeaderValue::from_bytes(value).unwrap());
        }
        Headers::from_wire(map)
    }

    #[test]
    fn forwarded_headers_read_like_the_ones_from_an_envelope() {
        let forwarded = wire(&[("accept", b"*/*"), ("x-many", b"a"), ("x-many", b"b")]);
        assert!(
            matches!(forwarded.0, HeaderStore::Wire(_)),
            "kept as parsed"
        );
        let pairs = Headers::from(vec![
            ("accept".to_owned(), "*/*".to_owned()),
            ("x-many".to_owned(), "a".to_owned()),
            ("x-many".to_owned(), "b".to_owned()),
        ]);
        assert_eq!(forwarded, pairs);
        assert_eq!(forwarded.len(), 3);
        for headers in [&forwarded, &pairs] {
            assert_eq!(
                headers.get("X-Many"),
                Some("a"),
                "the first value, any case"
            );
            assert_eq!(headers.get("Accept"), Some("*/*"));
            assert_eq!(headers.get("absent"), None);
            assert_eq!(headers.get("not a name"), None);
        }
    }

    #[test]
    fn a_forwarded_value_that_is_not_utf8_is_read_lossily() {
        let headers = wire(&[("x-latin1", b"caf\xe9"), ("accept", b"*/*")]);
        assert!(matches!(headers.0, HeaderStore::Pairs(_)));
        assert_eq!(headers.get("x-latin1"), Some("caf\u{fffd}"));
        let utf8 = wire(&[("x-name", "Zoë".as_bytes())]);
        assert!(
            matches!(utf8.0, HeaderStore::Wire(_)),
            "UTF-8 is kept as parsed"
        );
        assert_eq!(utf8.get("x-name"), Some("Zoë"));
        assert_eq!(
            headers.iter().collect::<Vec<_>>(),
            [("x-latin1", "caf\u{fffd}"), ("accept", "*/*")]
        );
    }

    #[test]
    fn forwarded_credentials_never_show_in_debug() {
        let request = HttpRequest {
            headers: wire(&[
                ("authorization", b"Bearer SECRET-1"),
                ("x-functions-key", b"SECRET-2"),
                ("accept", b"text/plain"),
            ]),
            ..HttpRequest::default()
        };
        let shown = format!("{request:?}");
        assert!(!shown.contains("SECRET"), "{shown}");
        assert!(shown.contains("text/plain"), "{shown}");
    }

    #[test]
    fn a_response_header_set_again_in_any_case_replaces_its_value_in_place() {
        let mut headers = ResponseHeaders::from([("Content-Type", "text/plain")]);
        headers.set("Cache-Control", "no-store");
        headers.set("content-type".to_owned(), "application/json".to_owned());
        assert_eq!(
            headers.iter().collect::<Vec<_>>(),
            [
                ("Content-Type", "application/json"),
                ("Cache-Control", "no-store")
            ]
        );
        assert_eq!(headers.get("CACHE-CONTROL"), Some("no-store"));
        assert!(headers.contains("content-type") && !headers.contains("age"));
        assert_eq!(headers.len(), 2);
        assert_eq!(
            serde_json::to_string(&headers).unwrap(),
            r#"{"Content-Type":"application/json","Cache-Control":"no-store"}"#
        );
    }

    #[test]
    fn the_host_base64_rule_is_octet_stream_exactly_or_any_multipart() {
        assert!(host_sends_base64(Some("Application/Octet-Stream; x=1")));
        assert!(host_sends_base64(Some("multipart/form-data; boundary=b")));
        assert!(host_sends_base64(Some("x-multipart/mixed")));
        assert!(!host_sends_base64(Some("application/x-multipart/mixed")));
        assert!(!host_sends_base64(Some("application/octet-streams")));
        assert!(!host_sends_base64(Some("image/png")));
        assert!(!host_sends_base64(None));
    }

    #[test]
    fn json_mode_bodies_that_are_neither_text_nor_base64_are_named_as_altered() {
        let png = json_request(Some("image/png"), b"\x89PNG");
        assert_eq!(png.body_altered_by_host().as_deref(), Some("'image/png'"));
        assert!(
            json_request(None, b"x")
                .body_altered_by_host()
                .unwrap()
                .contains("untyped")
        );
        let latin1 = json_request(Some("text/plain; charset=iso-8859-1"), b"x");
        assert!(latin1.body_altered_by_host().is_some());
        for fine in [
            "text/plain; charset=utf-8",
            "application/json",
            "application/vnd.api+json",
            "application/octet-stream",
        ] {
            assert_eq!(
                json_request(Some(fine), b"x").body_altered_by_host(),
                None,
                "{fine}"
            );
        }
        assert_eq!(json_request(None, b"").body_altered_by_host(), None);
        let forwarded = HttpRequest {
            transport: Transport::Forwarded,
            ..json_request(Some("image/png"), b"x")
        };
        assert_eq!(forwarded.body_altered_by_host(), None);
    }
}
