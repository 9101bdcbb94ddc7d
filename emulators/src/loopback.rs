//! The emulators' admin endpoints (fault injection, token minting, request logs, admin invoke)
//! answer only requests whose `Host` header names the loopback interface.
//!
//! Why: they listen on 127.0.0.1, but a web page can still reach them through DNS rebinding (a
//! name that first resolves to the attacker, then to 127.0.0.1): the browser then sends the
//! attacker's name as `Host`. Refusing any other `Host` closes that door without breaking local
//! tools, which always send `127.0.0.1:<port>`, `localhost:<port>` or `[::1]:<port>`.

use bytes::Bytes;
use http_body_util::Full;
use hyper::header::{CONTENT_TYPE, HeaderValue};
use hyper::{Response, StatusCode};

/// Whether a `Host` header value is `127.0.0.1`, `localhost` or `[::1]`, with an optional port.
pub fn is_loopback_host(host: Option<&str>) -> bool {
    let Some(host) = host.map(str::trim) else {
        return false;
    };
    let (name, port) = match host.rsplit_once(':') {
        Some((name, port)) if !name.is_empty() && name != "[" && !name.ends_with(':') => {
            (name, Some(port))
        }
        _ => (host, None),
    };
    let port_ok = port.is_none_or(|port| {
        (1..=5).contains(&port.len()) && port.bytes().all(|b| b.is_ascii_digit())
    });
    let name_ok = name == "127.0.0.1" || name.eq_ignore_ascii_case("localhost") || name == "[::1]";
    port_ok && name_ok
}

/// The `Host` header of a request's headers, when it is text.
pub fn host_header(headers: &hyper::HeaderMap) -> Option<&str> {
    headers
        .get(hyper::header::HOST)
        .and_then(|value| value.to_str().ok())
}

/// 403 for an admin request whose `Host` is not loopback.
pub fn refused() -> Response<Full<Bytes>> {
    let body = serde_json::json!({
        "error": "admin endpoints answer only a loopback Host header: 127.0.0.1, localhost or [::1], with an optional port"
    });
    let mut response = Response::new(Full::new(Bytes::from(body.to_string())));
    *response.status_mut() = StatusCode::FORBIDDEN;
    response.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("application/json; charset=utf-8"),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_loopback_names_pass() {
        for good in [
            "127.0.0.1",
            "127.0.0.1:7071",
            "localhost",
            "LocalHost:1",
            "[::1]",
            "[::1]:65535",
        ] {
            assert!(is_loopback_host(Some(good)), "{good}");
        }
        for bad in [
            "",
            "evil.example",
            "evil.example:7071",
            "127.0.0.1.evil.example",
            "localhost.evil.example:80",
            "127.0.0.2:80",
            "0.0.0.0:80",
            "[::2]:80",
            "::1",
            "127.0.0.1:",
            "127.0.0.1:80x",
            "127.0.0.1:123456",
            "localhost:80:80",
            "user@127.0.0.1",
        ] {
            assert!(!is_loopback_host(Some(bad)), "{bad}");
        }
        assert!(!is_loopback_host(None));
    }
}
