//! The client CallApi uses: GET a path under DOWNSTREAM_API_URL with the caller's bearer token.
//!
//! The path comes from the request (`call/{*path}`), so it is checked segment by segment before
//! it is joined: it can only name something under the configured base URL, never another host,
//! scheme or a parent folder, whatever encoding it uses. Redirects are not followed (the token
//! must not travel to wherever a 3xx points): they are handed back as they came. The response
//! body is capped at [`MAX_RESPONSE_BYTES`]. The token is sent in a header marked sensitive and
//! never appears in a log line or an error.

use std::time::Duration;

use bytes::Bytes;
use reqwest::header::{AUTHORIZATION, CONTENT_TYPE, HeaderValue, LOCATION};
use url::Url;

use crate::net::{CappedBodyError, is_loopback, read_capped};

/// The largest response body passed on (10 MiB): CallApi holds it in memory and the Functions
/// host caps HTTP responses anyway; a larger one is refused with [`DownstreamError::TooLarge`].
pub const MAX_RESPONSE_BYTES: usize = 10 * 1024 * 1024;
/// How long one call may take, body included (30 s), unless [`DownstreamOptions`] says otherwise.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);
/// How long connecting may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// The longest path accepted, in bytes.
const MAX_PATH_BYTES: usize = 2048;
/// The query parameter that carries the function key: never forwarded.
const FUNCTION_KEY_PARAMETER: &str = "code";

/// Limits of a [`DownstreamApi`]; the default is what production uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DownstreamOptions {
    /// Timeout of one call, from connecting to the last body byte.
    pub timeout: Duration,
    /// The largest response body accepted.
    pub max_response_bytes: usize,
}

impl Default for DownstreamOptions {
    fn default() -> Self {
        Self {
            timeout: DEFAULT_TIMEOUT,
            max_response_bytes: MAX_RESPONSE_BYTES,
        }
    }
}

/// The downstream API CallApi reaches: one base URL and one HTTP client, built once.
#[derive(Debug, Clone)]
pub struct DownstreamApi {
    base: Url,
    /// The base path ending with `/`: every target's path starts with it.
    prefix: String,
    http: reqwest::Client,
    options: DownstreamOptions,
}

/// The downstream API's answer, as it came (a 3xx included).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DownstreamResponse {
    /// The HTTP status.
    pub status: u16,
    /// The `Content-Type` header, when it sent one.
    pub content_type: Option<String>,
    /// The `Location` header of a redirect (not followed), when it sent one.
    pub location: Option<String>,
    /// The body, at most the limit.
    pub body: Bytes,
}

/// Why a downstream call failed. No variant holds a token or a header value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DownstreamError {
    /// DOWNSTREAM_API_URL cannot be used as a base.
    #[error("DOWNSTREAM_API_URL is not usable: {0}")]
    InvalidBase(String),
    /// The requested path could reach outside the API, so it was not called.
    #[error("the path cannot be called: {0}")]
    InvalidPath(String),
    /// The token has characters an HTTP header cannot carry.
    #[error("the access token cannot be sent in an HTTP header")]
    InvalidToken,
    /// The API did not answer in time.
    #[error("the downstream API at {origin} did not answer within {} ms", after.as_millis())]
    Timeout {
        /// The API's origin.
        origin: String,
        /// The timeout that passed.
        after: Duration,
    },
    /// The API could not be reached or its answer could not be read.
    #[error("the downstream API at {origin} could not be reached: {reason}")]
    Unreachable {
        /// The API's origin.
        origin: String,
        /// What went wrong (no header values).
        reason: String,
    },
    /// The response body is larger than the limit.
    #[error("the downstream API's response is larger than the limit of {limit} bytes")]
    TooLarge {
        /// The limit in bytes.
        limit: usize,
    },
    /// The HTTP client could not be built.
    #[error("the HTTP client for the downstream API could not be built: {0}")]
    Client(String),
}

impl DownstreamApi {
    /// The API at `base` (DOWNSTREAM_API_URL) with the default limits. `base` must be https, or
    /// http on a loopback host, without credentials, query or fragment.
    pub fn new(base: Url) -> Result<Self, DownstreamError> {
        Self::with_options(base, DownstreamOptions::default())
    }

    /// The API at `base` with other limits (tests, or a slower API).
    pub fn with_options(base: Url, options: DownstreamOptions) -> Result<Self, DownstreamError> {
        check_base(&base).map_err(|reason| DownstreamError::InvalidBase(reason.to_owned()))?;
        let http = reqwest::Client::builder()
            .proxy(crate::net::proxy_unless_loopback())
            .tls_backend_preconfigured(crate::clients::tls::client_config())
            .connect_timeout(CONNECT_TIMEOUT.min(options.timeout))
            .timeout(options.timeout)
            .redirect(reqwest::redirect::Policy::none())
            .referer(false)
            .build()
            .map_err(|error| DownstreamError::Client(root_cause(&error)))?;
        let prefix = format!("{}/", base.path().trim_end_matches('/'));
        Ok(Self {
            base,
            prefix,
            http,
            options,
        })
    }

    /// The base URL.
    pub fn base(&self) -> &Url {
        &self.base
    }

    /// `path` (relative, from the request) joined under the base URL with `query` appended
    /// (without `code`, the function key), or why the path was refused.
    pub fn target(&self, path: &str, query: &[(String, String)]) -> Result<Url, DownstreamError> {
        let segments = checked_segments(path).map_err(DownstreamError::InvalidPath)?;
        let mut url = self.base.clone();
        if !segments.is_empty() {
            url.path_segments_mut()
                .map_err(|()| DownstreamError::InvalidBase("it cannot have a path".into()))?
                .pop_if_empty()
                .extend(segments.iter().map(String::as_str));
        }
        let forwarded: Vec<&(String, String)> = query
            .iter()
            .filter(|(name, _)| !name.eq_ignore_ascii_case(FUNCTION_KEY_PARAMETER))
            .collect();
        if !forwarded.is_empty() {
            url.query_pairs_mut().extend_pairs(forwarded);
        }
        self.check_under_base(&url)?;
        Ok(url)
    }

    /// GETs `path` under the base with `Authorization: Bearer <bearer>`. Any status is an answer;
    /// only transport failures, timeouts and oversized bodies are errors.
    pub async fn get(
        &self,
        path: &str,
        query: &[(String, String)],
        bearer: &str,
    ) -> Result<DownstreamResponse, DownstreamError> {
        let url = self.target(path, query)?;
        let authorization = authorization_value(bearer)?;
        let logged_path = url.path().to_owned();
        let response = self
            .http
            .get(url)
            .header(AUTHORIZATION, authorization)
            .send()
            .await
            .map_err(|error| self.transport_error(&error))?;
        let status = response.status().as_u16();
        let content_type = header_text(&response, CONTENT_TYPE);
        let location = header_text(&response, LOCATION);
        let body = self.read_body(response).await?;
        log::debug!(
            "GET {}{logged_path} answered {status} with {} bytes",
            self.origin(),
            body.len()
        );
        Ok(DownstreamResponse {
            status,
            content_type,
            location,
            body,
        })
    }

    /// The last line of defence: same origin, no credentials, path under the base path.
    fn check_under_base(&self, url: &Url) -> Result<(), DownstreamError> {
        let base_path = self.base.path();
        let under = url.path() == base_path || url.path().starts_with(&self.prefix);
        let same_origin = url.origin() == self.base.origin();
        let no_credentials = url.username().is_empty() && url.password().is_none();
        if under && same_origin && no_credentials && url.fragment().is_none() {
            Ok(())
        } else {
            Err(DownstreamError::InvalidPath(
                "it would leave the configured API".into(),
            ))
        }
    }

    async fn read_body(&self, response: reqwest::Response) -> Result<Bytes, DownstreamError> {
        let limit = self.options.max_response_bytes;
        match read_capped(response, limit).await {
            Ok(body) => Ok(Bytes::from(body)),
            Err(CappedBodyError::TooLarge { .. }) => Err(DownstreamError::TooLarge { limit }),
            Err(CappedBodyError::Read(error)) => Err(self.transport_error(&error)),
        }
    }

    fn transport_error(&self, error: &reqwest::Error) -> DownstreamError {
        let origin = self.origin();
        if error.is_timeout() {
            DownstreamError::Timeout {
                origin,
                after: self.options.timeout,
            }
        } else {
            DownstreamError::Unreachable {
                origin,
                reason: root_cause(error),
            }
        }
    }

    fn origin(&self) -> String {
        self.base.origin().ascii_serialization()
    }
}

/// https anywhere, http only on loopback; a host; no credentials, query or fragment.
fn check_base(base: &Url) -> Result<(), &'static str> {
    let transport_ok = match base.scheme() {
        "https" => true,
        "http" => is_loopback(base),
        _ => false,
    };
    if !transport_ok {
        return Err("expected an https URL (plain http only for a loopback host)");
    }
    if base.host().is_none() || base.cannot_be_a_base() {
        return Err("expected an absolute URL with a host");
    }
    if !base.username().is_empty() || base.password().is_some() {
        return Err("the URL must not carry a user name or password");
    }
    if base.query().is_some() || base.fragment().is_some() {
        return Err("the URL must not have a query or fragment");
    }
    Ok(())
}

/// The path's segments, percent-decoded once, or why the path is refused.
///
/// Refused: a leading `/` or `\`; empty segments (`//`); `.`, `..` or any all-dot segment, also
/// percent-encoded; every Unicode look-alike of a character refused or treated specially here
/// ([`LOOKALIKES`]: anything NFKC turns into `.`, `/`, `\`, …); a `:` in the first
/// segment (a scheme); `\`, `@`, `?`, `#`, `;` and control characters; malformed escapes; escapes
/// of `/`, `\` or `%` (double encoding) or of anything refused in plain form; non-UTF-8 bytes.
fn checked_segments(path: &str) -> Result<Vec<String>, String> {
    if path.is_empty() {
        return Ok(Vec::new());
    }
    if path.len() > MAX_PATH_BYTES {
        return Err(format!("the path is longer than {MAX_PATH_BYTES} bytes"));
    }
    if path.starts_with('/') || path.starts_with('\\') {
        return Err("the path must be relative to the API (no leading / or \\)".into());
    }
    let raw_segments: Vec<&str> = path.split('/').collect();
    let last = raw_segments.len() - 1;
    raw_segments
        .iter()
        .enumerate()
        .map(|(index, raw)| checked_segment(raw, index, index == last))
        .collect()
}

fn checked_segment(raw: &str, index: usize, is_last: bool) -> Result<String, String> {
    if raw.is_empty() && !is_last {
        return Err("empty segments (//) are not allowed".into());
    }
    let decoded = percent_decode_checked(raw)?;
    if let Some(refused) = decoded.chars().find(|c| refused_character(*c)) {
        return Err(describe_refused(refused, raw.contains('%')));
    }
    if !decoded.is_empty() && decoded.chars().all(|c| DOT_LIKE.contains(&c)) {
        return Err("dot segments (., ..) are not allowed, encoded or not".into());
    }
    if index == 0 && decoded.contains(':') {
        return Err("the path must not start with a scheme (a ':' in its first segment)".into());
    }
    Ok(decoded)
}

/// Decodes `%XX` escapes once; an escape of `/`, `\` or `%` is refused outright.
fn percent_decode_checked(raw: &str) -> Result<String, String> {
    let bytes = raw.as_bytes();
    let mut decoded = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while index < bytes.len() {
        if bytes[index] != b'%' {
            decoded.push(bytes[index]);
            index += 1;
            continue;
        }
        let byte = bytes
            .get(index + 1..index + 3)
            .and_then(|hex| std::str::from_utf8(hex).ok())
            .and_then(|hex| u8::from_str_radix(hex, 16).ok())
            .ok_or("a '%' must start a percent-encoded byte (%XX)")?;
        match byte {
            b'/' | b'\\' => return Err("encoded slashes (%2F, %5C) are not allowed".into()),
            b'%' => return Err("double percent-encoding (%25) is not allowed".into()),
            _ => decoded.push(byte),
        }
        index += 3;
    }
    String::from_utf8(decoded).map_err(|_| "percent-encoded bytes must be UTF-8".into())
}

/// Characters a server that trims names (Windows) may drop: a segment made only of these and `.`
/// is a dot segment in disguise.
const DOT_LIKE: &[char] = &['.', ' '];

/// Non-ASCII characters a server that normalizes Unicode may turn into characters this checker
/// refuses or treats specially: every character whose NFKC form contains `.`, `/`, `\`, `?`, `#`,
/// `@`, `;`, `%` or `:` (U+2024-U+2026 dot leaders, U+FF0E, U+FF0F, U+2100 "a/c", U+FE68, …), and
/// the slash-shaped characters with no decomposition (U+2044, U+2215, U+2216, U+29F5, U+29F8,
/// U+29F9) that a lenient server or a reader may take for one. Sorted, for a binary search; a
/// unit test checks the list against the Unicode tables of the `unicode-normalization` crate.
const LOOKALIKES: &[char] = &[
    '\u{037E}',
    '\u{2024}',
    '\u{2025}',
    '\u{2026}',
    '\u{2044}',
    '\u{2047}',
    '\u{2048}',
    '\u{2049}',
    '\u{2100}',
    '\u{2101}',
    '\u{2105}',
    '\u{2106}',
    '\u{2215}',
    '\u{2216}',
    '\u{2488}',
    '\u{2489}',
    '\u{248A}',
    '\u{248B}',
    '\u{248C}',
    '\u{248D}',
    '\u{248E}',
    '\u{248F}',
    '\u{2490}',
    '\u{2491}',
    '\u{2492}',
    '\u{2493}',
    '\u{2494}',
    '\u{2495}',
    '\u{2496}',
    '\u{2497}',
    '\u{2498}',
    '\u{2499}',
    '\u{249A}',
    '\u{249B}',
    '\u{29F5}',
    '\u{29F8}',
    '\u{29F9}',
    '\u{2A74}',
    '\u{33C2}',
    '\u{33C7}',
    '\u{33D8}',
    '\u{FE13}',
    '\u{FE14}',
    '\u{FE16}',
    '\u{FE19}',
    '\u{FE30}',
    '\u{FE52}',
    '\u{FE54}',
    '\u{FE55}',
    '\u{FE56}',
    '\u{FE5F}',
    '\u{FE68}',
    '\u{FE6A}',
    '\u{FE6B}',
    '\u{FF03}',
    '\u{FF05}',
    '\u{FF0E}',
    '\u{FF0F}',
    '\u{FF1A}',
    '\u{FF1B}',
    '\u{FF1F}',
    '\u{FF20}',
    '\u{FF3C}',
    '\u{1F100}',
];

fn refused_character(c: char) -> bool {
    c.is_control()
        || matches!(c, '\\' | '@' | '?' | '#' | ';' | '%' | '/')
        || LOOKALIKES.binary_search(&c).is_ok()
}

fn describe_refused(c: char, encoded: bool) -> String {
    let how = if encoded { " (even encoded)" } else { "" };
    if c.is_control() {
        format!("control characters are not allowed in the path{how}")
    } else {
        format!("'{c}' is not allowed in the path{how}")
    }
}

/// `Bearer <token>`, marked sensitive so it is never printed by the HTTP stack.
fn authorization_value(bearer: &str) -> Result<HeaderValue, DownstreamError> {
    if bearer.is_empty() {
        return Err(DownstreamError::InvalidToken);
    }
    let mut value = HeaderValue::from_str(&format!("Bearer {bearer}"))
        .map_err(|_| DownstreamError::InvalidToken)?;
    value.set_sensitive(true);
    Ok(value)
}

fn header_text(response: &reqwest::Response, name: reqwest::header::HeaderName) -> Option<String> {
    response
        .headers()
        .get(name)
        .and_then(|value| value.to_str().ok())
        .map(str::to_owned)
}

/// The innermost cause of an error: what actually failed, without reqwest's URL prefix.
fn root_cause(error: &(dyn std::error::Error + 'static)) -> String {
    managed_identity::error_chain::chain(error)
        .last()
        .unwrap_or(error)
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::FunctionError;
    use custom_handler::Failure;

    fn api(base: &str) -> DownstreamApi {
        DownstreamApi::new(Url::parse(base).unwrap()).unwrap()
    }

    fn no_query() -> Vec<(String, String)> {
        Vec::new()
    }

    #[test]
    fn safe_paths_are_joined_under_the_base() {
        let cases = [
            ("", "https://api.example.com/v1/"),
            ("users", "https://api.example.com/v1/users"),
            ("users/42", "https://api.example.com/v1/users/42"),
            ("users/", "https://api.example.com/v1/users/"),
            ("a b", "https://api.example.com/v1/a%20b"),
            ("a%20b", "https://api.example.com/v1/a%20b"),
            ("caf%C3%A9", "https://api.example.com/v1/caf%C3%A9"),
            ("café", "https://api.example.com/v1/caf%C3%A9"),
            ("items/a:b", "https://api.example.com/v1/items/a:b"),
            ("v1.2/..x/x..", "https://api.example.com/v1/v1.2/..x/x.."),
            ("evil.com", "https://api.example.com/v1/evil.com"),
            ("a+b~c_d-e", "https://api.example.com/v1/a+b~c_d-e"),
        ];
        let api = api("https://api.example.com/v1/");
        for (path, expected) in cases {
            assert_eq!(
                api.target(path, &no_query()).unwrap().as_str(),
                expected,
                "{path}"
            );
        }
    }

    #[test]
    fn a_base_without_trailing_slash_keeps_its_last_segment() {
        let api = api("https://api.example.com/v1");
        assert_eq!(
            api.target("users", &no_query()).unwrap().as_str(),
            "https://api.example.com/v1/users"
        );
        assert_eq!(
            api.target("", &no_query()).unwrap().as_str(),
            "https://api.example.com/v1"
        );
        let root = super::tests::api("https://api.example.com");
        assert_eq!(
            root.target("x", &no_query()).unwrap().as_str(),
            "https://api.example.com/x"
        );
    }

    #[test]
    fn unsafe_paths_are_refused() {
        let refused = [
            "/users",
            "//evil.com/x",
            "\\\\evil/x",
            "\\evil",
            "users\\x",
            "http://evil.com",
            "http:evil",
            "https:",
            "javascript:alert(1)",
            "..",
            "../x",
            "a/../../x",
            "a/..",
            ".",
            "./x",
            "a/./b",
            "...",
            ".. ",
            "%2e%2e/x",
            "%2E%2E",
            ".%2e",
            "%2e",
            "a/%2e%2e/%2e%2e/x",
            "a%2fb",
            "a%2F..%2F..",
            "a%5cb",
            "a%00b",
            "a%0ab",
            "a%0d%0aHost:%20evil",
            "a%7fb",
            "%252e%252e",
            "a%252fb",
            "a%25b",
            "user@evil",
            "a%40evil",
            "a//b",
            "a?x=1",
            "a%3fx=1",
            "a#frag",
            "a%23frag",
            "a;b",
            "..;/x",
            "a\tb",
            "a\nb",
            "a\u{7f}",
            "a\u{85}b",
            "a%zz",
            "a%2",
            "a%",
            "%C0%AE%C0%AE",
            "%ff",
            "%e2%80",
            "\u{FF0E}\u{FF0E}/x",
            "%EF%BC%8E%EF%BC%8E",
            "a\u{FF0F}..",
            "a%EF%BC%8Fb",
            "a\u{2215}b",
        ];
        let api = api("https://api.example.com/v1/");
        for path in refused {
            let error = api.target(path, &no_query()).unwrap_err();
            assert!(
                matches!(error, DownstreamError::InvalidPath(_)),
                "{path}: {error:?}"
            );
            assert_eq!(FunctionError::from(error).status(), 400);
        }
        let long = "a/".repeat(MAX_PATH_BYTES);
        assert!(matches!(
            api.target(&long, &no_query()),
            Err(DownstreamError::InvalidPath(_))
        ));
    }

    #[test]
    fn refusals_say_what_was_wrong() {
        let api = api("https://api.example.com/v1/");
        let message = |path: &str| api.target(path, &no_query()).unwrap_err().to_string();
        assert!(message("../x").contains("dot segments"));
        assert!(message("%2e%2e").contains("dot segments"));
        assert!(message("a%2fb").contains("encoded slashes"));
        assert!(message("%252e").contains("double percent-encoding"));
        assert!(message("//evil").contains("relative"));
        assert!(message("http:x").contains("scheme"));
        assert!(message("a%00").contains("control characters"));
        assert!(message("a@b").contains("'@'"));
    }

    #[test]
    fn the_query_is_encoded_and_the_function_key_dropped() {
        let api = api("https://api.example.com/v1/");
        let query = vec![
            ("q".to_owned(), "a b&c=d".to_owned()),
            ("code".to_owned(), "function-key".to_owned()),
            ("CODE".to_owned(), "function-key".to_owned()),
            ("next".to_owned(), "https://evil.example/".to_owned()),
        ];
        let url = api.target("search", &query).unwrap();
        assert_eq!(
            url.as_str(),
            "https://api.example.com/v1/search?q=a+b%26c%3Dd&next=https%3A%2F%2Fevil.example%2F"
        );
        let only_key = vec![("code".to_owned(), "k".to_owned())];
        assert_eq!(api.target("x", &only_key).unwrap().query(), None);
    }

    #[test]
    fn unusable_bases_are_refused() {
        for base in [
            "http://api.example.com/",
            "http://10.1.2.3/",
            "ftp://127.0.0.1/",
            "https://user:pw@api.example.com/",
            "https://api.example.com/?a=1",
            "https://api.example.com/#x",
            "mailto:someone@example.com",
        ] {
            let error = DownstreamApi::new(Url::parse(base).unwrap()).unwrap_err();
            assert!(matches!(error, DownstreamError::InvalidBase(_)), "{base}");
            assert_eq!(FunctionError::from(error).status(), 500);
        }
        for base in [
            "http://127.0.0.1:8080/api/",
            "http://localhost/",
            "http://[::1]:9/",
            "http://api.localhost./",
            "http://[::ffff:127.0.0.1]/",
        ] {
            assert!(
                DownstreamApi::new(Url::parse(base).unwrap()).is_ok(),
                "{base}"
            );
        }
    }

    #[test]
    fn a_token_unfit_for_a_header_is_refused_without_quoting_it() {
        for token in ["", "abc\r\nX-Injected: 1", "abc\u{0}"] {
            let error = authorization_value(token).unwrap_err();
            assert_eq!(error, DownstreamError::InvalidToken);
        }
        let value = authorization_value("eyJ.abc.def").unwrap();
        assert!(value.is_sensitive());
        assert_eq!(value.to_str().unwrap(), "Bearer eyJ.abc.def");
    }

    #[test]
    fn every_character_nfkc_turns_into_a_separator_dot_or_special_is_refused() {
        use unicode_normalization::UnicodeNormalization;
        let specials = ['.', '/', '\\', '?', '#', '@', ';', '%', ':'];
        let api = api("https://api.example.com/v1/");
        let mut missing = Vec::new();
        for c in (0x80..=0x10FFFF).filter_map(char::from_u32) {
            let normalized: String = c.nfkc().collect();
            if normalized.contains(specials) && api.target(&format!("x/a{c}b"), &no_query()).is_ok()
            {
                missing.push(format!("U+{:04X} -> {normalized:?}", c as u32));
            }
        }
        assert!(missing.is_empty(), "look-alikes let through: {missing:?}");
        assert!(
            LOOKALIKES.is_sorted(),
            "LOOKALIKES must stay sorted for the binary search"
        );
        for c in ['\u{2024}', '\u{2025}', '\u{2026}', '\u{FE19}', '\u{FE30}'] {
            assert!(api.target(&format!("{c}/x"), &no_query()).is_err(), "{c}");
            assert!(
                api.target(&format!("a/{c}{c}"), &no_query()).is_err(),
                "{c}"
            );
        }
    }
}
