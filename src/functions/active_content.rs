//! Answers that carry content someone else chose (a stored blob, a downstream API's body) must
//! never run as a page on the app's origin, where the function keys' callers live.
//!
//! Every such answer gets `X-Content-Type-Options: nosniff`, so a browser never guesses a more
//! dangerous type than the one sent. A type not on the short list of types a browser only ever
//! shows as data ([`SAFE_TYPES`], plus any `+json`) is served inert: `Content-Security-Policy:
//! sandbox` (no script, an opaque origin, should a browser render it anyway) and
//! `Content-Disposition: attachment` (download it, do not render it). The rule is an allowlist on
//! purpose: html, svg, xml and `+xml`, javascript and ecmascript, pdf, anything unknown and a
//! missing or malformed type are all inert. The Content-Type itself is kept, so API clients still
//! learn what the bytes are.

use custom_handler::http::HttpResponse;

/// Media types (the part before any `;`, compared without regard to case) a browser shows as
/// data and never as a document that runs script.
pub const SAFE_TYPES: &[&str] = &[
    "application/gzip",
    "application/json",
    "application/octet-stream",
    "application/zip",
    "audio/mpeg",
    "audio/ogg",
    "audio/wav",
    "audio/webm",
    "image/avif",
    "image/bmp",
    "image/gif",
    "image/jpeg",
    "image/png",
    "image/webp",
    "text/csv",
    "text/plain",
    "video/mp4",
    "video/webm",
];

/// Whether `content_type` is on the safe list (or a `+json` type).
pub fn is_safe(content_type: &str) -> bool {
    let essence = content_type
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    let Some((kind, subtype)) = essence.split_once('/') else {
        return false;
    };
    let token = |part: &str| {
        !part.is_empty()
            && part
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"!#$&^_.+-".contains(&b))
    };
    if !token(kind) || !token(subtype) {
        return false;
    }
    SAFE_TYPES.contains(&essence.as_str()) || (kind == "application" && subtype.ends_with("+json"))
}

/// `response` with `nosniff`, and served inert unless its Content-Type is safe.
pub fn served_inert(response: HttpResponse) -> HttpResponse {
    let safe = response.header("Content-Type").is_some_and(is_safe);
    let response = response.with_header("X-Content-Type-Options", "nosniff");
    if safe {
        return response;
    }
    response
        .with_header("Content-Security-Policy", "sandbox")
        .with_header("Content-Disposition", "attachment")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn script_capable_and_unknown_types_are_not_safe() {
        for risky in [
            "text/html",
            "TEXT/HTML; charset=utf-8",
            "image/svg+xml",
            "application/xhtml+xml",
            "application/xml",
            "text/xml",
            "application/rss+xml",
            "text/javascript",
            "application/javascript",
            "application/ecmascript",
            "text/ecmascript",
            "application/x-javascript",
            "text/xsl",
            "application/pdf",
            "multipart/x-mixed-replace; boundary=x",
            "text/vnd.whatever",
            "",
            "html",
            "text/",
            "/plain",
            "text/plain\u{0}",
            "text/plain x/y",
        ] {
            assert!(!is_safe(risky), "{risky:?}");
        }
    }

    #[test]
    fn data_types_are_safe_whatever_their_case_and_parameters() {
        for safe in [
            "text/plain",
            "Text/Plain; charset=utf-8",
            "application/json; charset=utf-8",
            "application/problem+json",
            "application/octet-stream",
            "image/png",
            " image/jpeg ",
            "text/csv;header=present",
        ] {
            assert!(is_safe(safe), "{safe:?}");
        }
    }

    #[test]
    fn every_answer_gets_nosniff_and_risky_ones_are_inert() {
        let html = served_inert(HttpResponse::new(200, "text/html", "<script>1</script>"));
        assert_eq!(html.header("X-Content-Type-Options"), Some("nosniff"));
        assert_eq!(html.header("Content-Security-Policy"), Some("sandbox"));
        assert_eq!(html.header("Content-Disposition"), Some("attachment"));
        assert_eq!(html.header("Content-Type"), Some("text/html"));
        let text = served_inert(HttpResponse::new(200, "text/plain", "hi"));
        assert_eq!(text.header("X-Content-Type-Options"), Some("nosniff"));
        assert_eq!(text.header("Content-Security-Policy"), None);
        assert_eq!(text.header("Content-Disposition"), None);
    }
}
