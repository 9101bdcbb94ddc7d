//! What `Debug` output of a request must never show: credentials in headers, cookies and the
//! function key in the query string. The request types' `Debug` impls (`HttpRequest`, and
//! `HttpTriggerData` in the contract) print these as `<redacted>`.

/// Header names whose values are credentials (compared without regard to case).
pub const SENSITIVE_HEADERS: &[&str] = &[
    "authorization",
    "proxy-authorization",
    "cookie",
    "set-cookie",
    "x-functions-key",
    "x-identity-header",
    "x-ms-token-aad-access-token",
    "x-ms-token-aad-id-token",
    "x-ms-token-aad-refresh-token",
];

/// Query parameters whose values are credentials: the function key.
pub const SENSITIVE_QUERY: &[&str] = &["code"];

/// What is printed instead of a sensitive value.
pub const REDACTED: &str = "<redacted>";

/// Whether a header's value must not be printed.
pub fn is_sensitive_header(name: &str) -> bool {
    SENSITIVE_HEADERS
        .iter()
        .any(|sensitive| sensitive.eq_ignore_ascii_case(name))
}

/// Whether a query parameter's value must not be printed.
pub fn is_sensitive_query(name: &str) -> bool {
    SENSITIVE_QUERY
        .iter()
        .any(|sensitive| sensitive.eq_ignore_ascii_case(name))
}

/// `value`, or [`REDACTED`] when `sensitive`.
pub fn shown(value: &str, sensitive: bool) -> &str {
    if sensitive { REDACTED } else { value }
}

/// A query map for printing, with the values of sensitive parameters replaced.
pub fn query(
    query: &std::collections::BTreeMap<String, String>,
) -> std::collections::BTreeMap<&str, &str> {
    query
        .iter()
        .map(|(k, v)| (k.as_str(), shown(v, is_sensitive_query(k))))
        .collect()
}

/// A URL with the values of sensitive query parameters replaced (`?code=abc&x=1` →
/// `?code=<redacted>&x=1`); the rest as given.
pub fn url(raw: &str) -> String {
    let Some((base, rest)) = raw.split_once('?') else {
        return raw.to_owned();
    };
    let (query, fragment) = match rest.split_once('#') {
        Some((query, fragment)) => (query, Some(fragment)),
        None => (rest, None),
    };
    let pairs: Vec<String> = query
        .split('&')
        .map(|pair| match pair.split_once('=') {
            Some((name, _)) if is_sensitive_query(&decoded(name)) => format!("{name}={REDACTED}"),
            _ => pair.to_owned(),
        })
        .collect();
    let mut out = format!("{base}?{}", pairs.join("&"));
    if let Some(fragment) = fragment {
        out.push('#');
        out.push_str(fragment);
    }
    out
}

fn decoded(name: &str) -> String {
    percent_encoding::percent_decode_str(&name.replace('+', " "))
        .decode_utf8_lossy()
        .into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_credentials_are_hidden() {
        assert!(is_sensitive_header("Authorization"));
        assert!(is_sensitive_header("X-Functions-Key"));
        assert!(is_sensitive_header("COOKIE"));
        assert!(!is_sensitive_header("Content-Type"));
        assert_eq!(
            url("https://app/api/x?code=k3y&resource=r&%63ode=k2#f"),
            "https://app/api/x?code=<redacted>&resource=r&%63ode=<redacted>#f"
        );
        assert_eq!(
            url("https://app/api/x?Code=k"),
            "https://app/api/x?Code=<redacted>"
        );
        assert_eq!(url("https://app/api/x"), "https://app/api/x");
    }
}
