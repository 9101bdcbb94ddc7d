//! The one check every scope or resource passes before any source sees it (the HTTP endpoints put
//! it in a query string, the Azure CLI gets it as a command-line argument).
//!
//! Grammar (ASCII only, at most [`MAX_SCOPE_LEN`] characters in all):
//!
//! ```text
//! scope     = resource [ "/.default" ]
//! resource  = https-uri / api-uri / app-id
//! https-uri = "https://" host [ ":" port ] *( "/" segment )
//! api-uri   = "api://" segment *( "/" segment )      ; first segment not empty
//! app-id    = 8HEX "-" 4HEX "-" 4HEX "-" 4HEX "-" 12HEX   ; an application (client) id
//! host      = label *( "." label )                   ; label: 1-63 of ALPHA / DIGIT / "-",
//!                                                    ;        not starting or ending with "-"
//! port      = 1*5DIGIT
//! segment   = *( ALPHA / DIGIT / "-" / "." / "_" / "~" )  ; never "." or ".."
//! ```
//!
//! So a scope never holds whitespace, quotes, `&|<>^%!`, `?`, `#`, `@`, `\`, or a control
//! character: nothing a shell, cmd.exe or a query string gives a meaning to. This is stricter
//! than the official SDKs' character check (letters, digits and `-_.:/`), which they rely on
//! because they start `az` through a shell; here `az` is started without one and the grammar
//! is a second wall. Entra resources look like `https://vault.azure.net`,
//! `https://management.azure.com/` and Application ID URIs like `api://<guid>`; an App ID URI
//! in another form (`urn:`, `http://`) is not accepted.

use super::IdentityError;

/// The longest scope accepted, `/.default` included. Entra's own resource URIs and Application
/// ID URIs are far shorter.
pub const MAX_SCOPE_LEN: usize = 256;

const DEFAULT_SUFFIX: &str = "/.default";

/// Checks `scope` against the grammar above and returns the resource it names (one trailing
/// `/.default` removed, so `https://management.azure.com//.default` keeps its `/`).
pub fn normalize_scope(scope: &str) -> Result<String, IdentityError> {
    // A function asks for the same one or two scopes on every call (TokenInfo checks its scope,
    // then get_token checks the resource that gave): the last two accepted on this thread are
    // remembered. The check is a pure function of the text, so a remembered answer is its answer.
    if let Some(resource) = RECENT.with_borrow(|recent| {
        recent
            .iter()
            .flatten()
            .find(|(known, _)| known == scope)
            .map(|(_, resource)| resource.clone())
    }) {
        return Ok(resource);
    }
    let resource = check_scope(scope)?;
    RECENT.with_borrow_mut(|recent| {
        recent.rotate_right(1);
        recent[0] = Some((scope.to_owned(), resource.clone()));
    });
    Ok(resource)
}

thread_local! {
    /// The scopes [`normalize_scope`] accepted last on this thread, with their resources.
    static RECENT: std::cell::RefCell<[Option<(String, String)>; 2]> =
        const { std::cell::RefCell::new([None, None]) };
}

fn check_scope(scope: &str) -> Result<String, IdentityError> {
    let invalid = |reason: &'static str| IdentityError::InvalidScope {
        scope: printable(scope),
        reason,
    };
    if scope.is_empty() {
        return Err(invalid("it is empty"));
    }
    if scope.len() > MAX_SCOPE_LEN {
        return Err(invalid("it is longer than 256 characters"));
    }
    // Every allowed character is ASCII, so a byte test decides; the characters are looked at
    // only to word the refusal.
    if !scope.bytes().all(is_allowed_byte)
        && let Some(bad) = scope.chars().find(|c| !is_allowed_char(*c))
    {
        return Err(invalid(if bad.is_whitespace() {
            "exactly one scope is allowed, without spaces"
        } else {
            "only letters, digits and - . _ ~ : / are allowed"
        }));
    }
    let resource = scope.strip_suffix(DEFAULT_SUFFIX).unwrap_or(scope);
    if resource.is_empty() {
        return Err(invalid("it names no resource"));
    }
    let well_formed = if let Some(rest) = resource.strip_prefix("https://") {
        is_https_rest(rest)
    } else if let Some(rest) = resource.strip_prefix("api://") {
        is_api_rest(rest)
    } else {
        is_guid(resource)
    };
    if !well_formed {
        return Err(invalid(
            "expected an https:// resource URI, an api:// Application ID URI or an application id (GUID), optionally ending in /.default",
        ));
    }
    Ok(resource.to_owned())
}

fn is_allowed_char(c: char) -> bool {
    u8::try_from(c).is_ok_and(is_allowed_byte)
}

fn is_allowed_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~' | b':' | b'/')
}

/// The scope as it may appear in a message: at most 100 characters, anything unusual as `?`.
fn printable(scope: &str) -> String {
    scope
        .chars()
        .take(100)
        .map(|c| if is_allowed_char(c) { c } else { '?' })
        .collect()
}

// The parts below are cut and checked as bytes: the scope is ASCII by now, and this runs on
// every token request, where splitting by `char` cost more than the rest of the request's
// bookkeeping.

fn is_https_rest(rest: &str) -> bool {
    let rest = rest.as_bytes();
    let (authority, path) = split_once(rest, b'/').unwrap_or((rest, b""));
    let (host, port) = match split_once(authority, b':') {
        Some((host, port)) => (host, Some(port)),
        None => (authority, None),
    };
    let port_ok =
        port.is_none_or(|p| (1..=5).contains(&p.len()) && p.iter().all(u8::is_ascii_digit));
    port_ok && is_host(host) && (path.is_empty() || path.split(|&b| b == b'/').all(is_segment))
}

fn is_api_rest(rest: &str) -> bool {
    let mut segments = rest.as_bytes().split(|&b| b == b'/');
    segments
        .next()
        .is_some_and(|first| !first.is_empty() && is_segment(first))
        && segments.all(is_segment)
}

fn split_once(text: &[u8], at: u8) -> Option<(&[u8], &[u8])> {
    let index = text.iter().position(|&b| b == at)?;
    Some((&text[..index], &text[index + 1..]))
}

fn is_host(host: &[u8]) -> bool {
    !host.is_empty()
        && host.split(|&b| b == b'.').all(|label| {
            (1..=63).contains(&label.len())
                && label.first() != Some(&b'-')
                && label.last() != Some(&b'-')
                && label
                    .iter()
                    .all(|&b| b.is_ascii_alphanumeric() || b == b'-')
        })
}

fn is_segment(segment: &[u8]) -> bool {
    segment != b"."
        && segment != b".."
        && segment
            .iter()
            .all(|&b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~'))
}

/// A GUID in its 8-4-4-4-12 form (hex digits, dashes at 8, 13, 18 and 23: what splitting at `-`
/// into groups of those lengths accepts), as Entra ID writes application, object, tenant and
/// subscription ids, and the Functions host its invocation ids.
pub fn is_guid(text: &str) -> bool {
    text.len() == 36
        && text.bytes().enumerate().all(|(index, b)| match index {
            8 | 13 | 18 | 23 => b == b'-',
            _ => b.is_ascii_hexdigit(),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn azure_resources_and_app_id_uris_pass() {
        for (scope, resource) in [
            ("https://vault.azure.net", "https://vault.azure.net"),
            (
                "https://vault.azure.net/.default",
                "https://vault.azure.net",
            ),
            ("https://storage.azure.com/", "https://storage.azure.com/"),
            (
                "https://management.azure.com//.default",
                "https://management.azure.com/",
            ),
            ("https://127.0.0.1:8443/x", "https://127.0.0.1:8443/x"),
            (
                "api://00000000-0000-4000-8000-0000000a9100/.default",
                "api://00000000-0000-4000-8000-0000000a9100",
            ),
            ("api://contoso.com/my-api_v2", "api://contoso.com/my-api_v2"),
            ("api://app-1/.default", "api://app-1"),
            (
                "00000000-0000-4000-8000-0000000a9100",
                "00000000-0000-4000-8000-0000000a9100",
            ),
            (
                "AAAAAAAA-0000-4000-8000-0000000A9100/.default",
                "AAAAAAAA-0000-4000-8000-0000000A9100",
            ),
        ] {
            assert_eq!(normalize_scope(scope).unwrap(), resource, "{scope}");
        }
    }

    #[test]
    fn remembered_scopes_answer_as_the_check_does() {
        for _ in 0..3 {
            for (scope, resource) in [
                (
                    "https://vault.azure.net/.default",
                    Some("https://vault.azure.net"),
                ),
                ("https://vault.azure.net", Some("https://vault.azure.net")),
                ("https://vault.azure.net/.default ", None),
                (
                    "https://storage.azure.com/",
                    Some("https://storage.azure.com/"),
                ),
                (
                    "https://vault.azure.net/.default/.default",
                    Some("https://vault.azure.net/.default"),
                ),
            ] {
                assert_eq!(
                    normalize_scope(scope).ok().as_deref(),
                    resource,
                    "{scope:?}"
                );
                assert_eq!(
                    normalize_scope(scope).ok(),
                    check_scope(scope).ok(),
                    "{scope:?}"
                );
            }
        }
    }

    #[test]
    fn shell_and_query_metacharacters_are_refused() {
        for bad in [
            "https://vault.azure.net&calc",
            "https://vault.azure.net%26calc",
            "https://vault.azure.net|calc",
            "https://vault.azure.net\"&calc",
            "https://vault.azure.net'",
            "https://vault.azure.net<x",
            "https://vault.azure.net>x",
            "https://vault.azure.net^x",
            "https://vault.azure.net!x!",
            "https://vault.azure.net%PATH%",
            "https://vault.azure.net;calc",
            "https://vault.azure.net`calc`",
            "https://vault.azure.net$(calc)",
            "https://vault.azure.net?x=1",
            "https://vault.azure.net#x",
            "https://user@vault.azure.net",
            "https://vault.azure.net\\x",
            "https://vault.azure.net x",
            "https://vault.azure.net\tx",
            "https://vault.azure.net\nx",
            "https://vault.azure.net\u{0}",
            "https://vault.azure.net\u{2028}",
            "https://vault.azüre.net",
        ] {
            let error = normalize_scope(bad).unwrap_err();
            assert!(
                matches!(error, IdentityError::InvalidScope { .. }),
                "{bad:?}"
            );
            // The message never repeats the dangerous characters.
            let text = error.to_string();
            for c in ['&', '|', '<', '>', '%', '\n', '\u{0}'] {
                assert!(!text.contains(c), "{bad:?} -> {text}");
            }
        }
    }

    #[test]
    fn malformed_resources_are_refused() {
        let long = format!("https://{}.net", "a".repeat(MAX_SCOPE_LEN));
        for bad in [
            "",
            "/.default",
            "--resource",
            "-x",
            "vault.azure.net",
            "http://vault.azure.net",
            "HTTPS://vault.azure.net",
            "urn:x",
            "file:///etc/passwd",
            "https://",
            "https://-vault.azure.net",
            "https://vault..azure.net",
            "https://vault.azure.net:",
            "https://vault.azure.net:123456",
            "https://vault.azure.net/../x",
            "https://vault.azure.net/./x",
            "api://",
            "api:///x",
            "api://x/..",
            "00000000-0000-4000-8000-0000000a910",
            "0000000g-0000-4000-8000-0000000a9100",
            long.as_str(),
        ] {
            assert!(normalize_scope(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn only_guids_in_their_8_4_4_4_12_form_are_guids() {
        const GUID: &str = "8d0a7a55-6e61-4a4e-9b55-2bd7d0bd6a86";
        assert!(is_guid(GUID));
        assert!(is_guid(&GUID.to_uppercase()));
        for not_guid in [
            "",
            "local-1",
            "8d0a7a55-6e61-4a4e-9b55-2bd7d0bd6a8",
            "8d0a7a55-6e61-4a4e-9b55-2bd7d0bd6a866",
            "8d0a7a556e614a4e9b552bd7d0bd6a86",
            "8d0a7a55-6e61-4a4e-9b55+2bd7d0bd6a86",
            "8d0a7a55-6e61-4a4e-9b55-2bd7d0bd6a8g",
            "8d0a7a55-6e61-4a4e-9b55-2bd7d0bd6a8\u{e9}",
        ] {
            assert!(!is_guid(not_guid), "{not_guid:?}");
        }
    }
}
