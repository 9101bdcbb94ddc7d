//! TokenInfo's report: everything about a token but the token, and its answer written fast.
//!
//! All of a report but `expires_in` depends on the token alone, so each worker thread keeps the
//! last few reports rendered and a call writes only that number between two kept pieces.

use std::cell::RefCell;

use serde::Serialize;

use custom_handler::http::HttpResponse;
use managed_identity::claims::Claims;
use managed_identity::{IdentitySelector, SourceKind, Token};

/// What the caller gets: everything about the token except the token. Borrows from the cached
/// token rather than copying its claims on every call.
#[derive(Debug, Serialize)]
pub struct TokenReport<'a> {
    /// Where the token came from, e.g. "App Service 2019-08-01 (IDENTITY_ENDPOINT)".
    pub source: String,
    /// Whose token it is, e.g. "system-assigned".
    pub identity: String,
    /// The resource (audience) it is for.
    pub resource: &'a str,
    /// Usually "Bearer".
    pub token_type: &'a str,
    /// When it expires, epoch seconds.
    pub expires_on: i64,
    /// Seconds it has left.
    pub expires_in: i64,
    /// From when the module refreshes it ahead of expiry, epoch seconds.
    pub refresh_on: i64,
    /// The decoded claims (aud, iss, oid, tid, appid, roles, exp, ...), unverified.
    pub claims: Option<&'a Claims>,
}

impl<'a> TokenReport<'a> {
    /// Describes `token` without revealing it.
    pub fn of(token: &'a Token) -> Self {
        Facts::of(token).report(now())
    }
}

/// What a token's report shows, borrowed from the token: all of it but the time left.
#[derive(Clone, Copy)]
struct Facts<'a> {
    source: SourceKind,
    identity: &'a IdentitySelector,
    resource: &'a str,
    token_type: &'a str,
    expires_on: i64,
    refresh_on: i64,
    claims: Option<&'a Claims>,
}

impl<'a> Facts<'a> {
    fn of(token: &'a Token) -> Self {
        Self {
            source: token.source,
            identity: &token.identity,
            resource: &token.resource,
            token_type: &token.token_type,
            expires_on: token.expires_on.unix_timestamp(),
            refresh_on: token.refresh_on.unix_timestamp(),
            claims: token.claims(),
        }
    }

    /// The report as of `now` (epoch seconds).
    fn report(self, now: i64) -> TokenReport<'a> {
        TokenReport {
            source: self.source.to_string(),
            identity: self.identity.to_string(),
            resource: self.resource,
            token_type: self.token_type,
            expires_on: self.expires_on,
            expires_in: self.expires_on - now,
            refresh_on: self.refresh_on,
            claims: self.claims,
        }
    }
}

/// The report on `token` as TokenInfo's answer, logging the time it has left.
pub(super) fn answer(token: &Token) -> HttpResponse {
    let facts = Facts::of(token);
    let now = now();
    RENDERED.with(|kept| {
        let mut kept = kept.borrow_mut();
        let Some(rendered) = Rendered::find_or_add(&mut kept, facts) else {
            // Not renderable ahead (serializing the claims failed): the plain way.
            let report = facts.report(now);
            log::info!(
                target: super::LOG_TARGET,
                "token for {} from {} ({}): {} s left",
                report.resource,
                report.source,
                report.identity,
                report.expires_in
            );
            return HttpResponse::json(200, &report);
        };
        let expires_in = facts.expires_on - now;
        // The number as text (itoa), once for the line and the body, rather than an integer
        // argument: the formatting machinery's integer path was a tenth of this function's cost.
        let mut digits = itoa::Buffer::new();
        let seconds = digits.format(expires_in);
        log::info!(target: super::LOG_TARGET, "{}{seconds} s left", rendered.log_head);
        HttpResponse::json_written(200, |body, escaped| rendered.write(body, escaped, seconds))
    })
}

/// Now, in seconds since 1970, read without the calendar conversion an `OffsetDateTime` makes.
fn now() -> i64 {
    use std::time::{SystemTime, UNIX_EPOCH};
    match SystemTime::now().duration_since(UNIX_EPOCH) {
        Ok(after) => after.as_secs() as i64,
        Err(before) => -(before.duration().as_secs_f64().ceil() as i64),
    }
}

/// How many tokens' reports a worker thread keeps rendered (the app asks for a handful of
/// resources at most).
const RENDERED_KEPT: usize = 4;

thread_local! {
    /// The reports last rendered on this thread, newest last.
    static RENDERED: RefCell<Vec<Rendered>> = const { RefCell::new(Vec::new()) };
}

/// A token's report rendered once: all of it but `expires_in` depends on the token alone, so a
/// call for a token the cache handed out before writes only that number between two kept pieces
/// of text, in the form its answer needs (plain, or escaped as a JSON string's content inside a
/// JSON-mode envelope). The pieces are kept with everything they show of the token (its claims
/// included), and reused only while a token shows exactly that: a refreshed token, with its new
/// expiry and claims, is rendered anew.
struct Rendered {
    facts: KeptFacts,
    /// `{"source":…,"expires_on":…,"expires_in":`.
    head: String,
    /// `,"refresh_on":…,"claims":…}`.
    tail: String,
    head_escaped: String,
    tail_escaped: String,
    /// The log line up to its number of seconds: `token for R from S (I): `.
    log_head: String,
}

/// [`Facts`], owned.
#[derive(PartialEq)]
struct KeptFacts {
    source: SourceKind,
    identity: IdentitySelector,
    resource: String,
    token_type: String,
    expires_on: i64,
    refresh_on: i64,
    claims: Option<Claims>,
}

impl KeptFacts {
    fn of(facts: Facts<'_>) -> Self {
        Self {
            source: facts.source,
            identity: facts.identity.clone(),
            resource: facts.resource.to_owned(),
            token_type: facts.token_type.to_owned(),
            expires_on: facts.expires_on,
            refresh_on: facts.refresh_on,
            claims: facts.claims.cloned(),
        }
    }

    fn matches(&self, facts: Facts<'_>) -> bool {
        self.expires_on == facts.expires_on
            && self.refresh_on == facts.refresh_on
            && self.source == facts.source
            && self.resource == facts.resource
            && self.token_type == facts.token_type
            && self.identity == *facts.identity
            && self.claims.as_ref() == facts.claims
    }
}

impl Rendered {
    /// The kept rendering of a report showing `facts`, rendering it (and dropping the oldest
    /// when full) if none matches; `None` only if its JSON cannot be written.
    fn find_or_add<'k>(kept: &'k mut Vec<Rendered>, facts: Facts<'_>) -> Option<&'k Rendered> {
        let index = match kept.iter().position(|r| r.facts.matches(facts)) {
            Some(index) => index,
            None => {
                let rendered = Self::of(facts)?;
                if kept.len() >= RENDERED_KEPT {
                    kept.remove(0);
                }
                kept.push(rendered);
                kept.len() - 1
            }
        };
        kept.get(index)
    }

    fn of(facts: Facts<'_>) -> Option<Self> {
        let report = facts.report(0);
        let (head, tail) = report_pieces(&report).ok()?;
        Some(Self {
            head_escaped: escape(&head).ok()?,
            tail_escaped: escape(&tail).ok()?,
            head,
            tail,
            log_head: format!(
                "token for {} from {} ({}): ",
                report.resource, report.source, report.identity
            ),
            facts: KeptFacts::of(facts),
        })
    }

    /// The report with `seconds` (the time left, as digits) as `expires_in`. A number reads the
    /// same escaped or not.
    fn write(&self, body: &mut Vec<u8>, escaped: bool, seconds: &str) {
        let (head, tail) = if escaped {
            (&self.head_escaped, &self.tail_escaped)
        } else {
            (&self.head, &self.tail)
        };
        body.reserve_exact(head.len() + seconds.len() + tail.len());
        body.extend_from_slice(head.as_bytes());
        body.extend_from_slice(seconds.as_bytes());
        body.extend_from_slice(tail.as_bytes());
    }
}

/// The report's JSON before and after the value of `expires_in`, member by member as serde_json
/// writes [`TokenReport`] (a test compares the two).
fn report_pieces(report: &TokenReport<'_>) -> Result<(String, String), serde_json::Error> {
    use serde_json::to_string as json;
    let head = format!(
        "{{\"source\":{},\"identity\":{},\"resource\":{},\"token_type\":{},\"expires_on\":{},\"expires_in\":",
        json(&report.source)?,
        json(&report.identity)?,
        json(&report.resource)?,
        json(&report.token_type)?,
        report.expires_on,
    );
    let tail = format!(
        ",\"refresh_on\":{},\"claims\":{}}}",
        report.refresh_on,
        json(&report.claims)?
    );
    Ok((head, tail))
}

/// `text` escaped as a JSON string's content (splitting a text between characters splits its
/// escaped form the same way, so pieces escape one by one).
fn escape(text: &str) -> Result<String, serde_json::Error> {
    let quoted = serde_json::to_string(text)?;
    Ok(quoted
        .strip_prefix('"')
        .and_then(|q| q.strip_suffix('"'))
        .unwrap_or(&quoted)
        .to_owned())
}

#[cfg(test)]
mod tests {
    use managed_identity::UserAssignedId;

    use super::*;

    const CLIENT: &str = "00000000-0000-4000-8000-00000000b001";

    #[test]
    fn now_is_the_unix_time_in_seconds() {
        let expected = time::OffsetDateTime::now_utc().unix_timestamp();
        assert!((now() - expected).abs() <= 1, "{} vs {expected}", now());
    }

    fn claims(oid: &str) -> Claims {
        Claims {
            aud: Some("https://vault.azure.net".into()),
            oid: Some(oid.into()),
            tid: Some("t \"quoted\" \\ back\nslash é 😀 \u{1}".into()),
            roles: vec!["Reader".into(), "Writer".into()],
            exp: Some(1_700_003_600),
            ..Claims::default()
        }
    }

    fn facts<'a>(
        identity: &'a IdentitySelector,
        claims: Option<&'a Claims>,
        expires_on: i64,
    ) -> Facts<'a> {
        Facts {
            source: SourceKind::AppService2019,
            identity,
            resource: "https://vault.azure.net",
            token_type: "Bearer",
            expires_on,
            refresh_on: expires_on - 1800,
            claims,
        }
    }

    fn written(rendered: &Rendered, escaped: bool, expires_in: i64) -> String {
        let mut body = Vec::new();
        rendered.write(&mut body, escaped, itoa::Buffer::new().format(expires_in));
        String::from_utf8(body).unwrap()
    }

    #[test]
    fn a_rendered_report_is_what_serializing_it_writes_plain_and_escaped() {
        let user = IdentitySelector::UserAssigned(UserAssignedId::ClientId(CLIENT.into()));
        let with_claims = claims("o\"1");
        for identity in [&IdentitySelector::SystemAssigned, &user] {
            for claims in [Some(&with_claims), None] {
                let facts = facts(identity, claims, 1_700_003_600);
                let rendered = Rendered::of(facts).unwrap();
                for now in [1_700_000_000, 1_700_003_600, 1_800_000_000] {
                    let report = facts.report(now);
                    let plain = serde_json::to_string(&report).unwrap();
                    assert_eq!(written(&rendered, false, report.expires_in), plain);
                    let mut escaped = Vec::new();
                    custom_handler::escaped::to_writer(&mut escaped, &report).unwrap();
                    let escaped = String::from_utf8(escaped).unwrap();
                    assert_eq!(written(&rendered, true, report.expires_in), escaped);
                    assert_eq!(
                        format!("{}{} s left", rendered.log_head, report.expires_in),
                        format!(
                            "token for {} from {} ({}): {} s left",
                            report.resource, report.source, report.identity, report.expires_in
                        )
                    );
                }
            }
        }
    }

    #[test]
    fn a_kept_rendering_serves_only_a_token_showing_the_same_facts() {
        let system = IdentitySelector::SystemAssigned;
        let user = IdentitySelector::UserAssigned(UserAssignedId::ObjectId(CLIENT.into()));
        let (old_claims, new_claims) = (claims("o1"), claims("o2"));
        let mut kept = Vec::new();
        let first = facts(&system, Some(&old_claims), 1_700_003_600);
        Rendered::find_or_add(&mut kept, first).unwrap();
        assert_eq!(kept.len(), 1);
        // The same facts, borrowed from another copy of the token: the kept text.
        let copy = old_claims.clone();
        Rendered::find_or_add(&mut kept, facts(&system, Some(&copy), 1_700_003_600)).unwrap();
        assert_eq!(kept.len(), 1);
        // A refreshed token (new expiry), new claims under the same expiry, another identity,
        // resource, source or token type: each rendered anew, showing its own facts.
        let other_resource = Facts {
            resource: "https://storage.azure.com",
            ..first
        };
        let other_source = Facts {
            source: SourceKind::Imds,
            ..first
        };
        let other_type = Facts {
            token_type: "PoP",
            ..first
        };
        let changed = [
            facts(&system, Some(&old_claims), 1_700_007_200),
            facts(&system, Some(&new_claims), 1_700_003_600),
            facts(&user, Some(&old_claims), 1_700_003_600),
            facts(&system, None, 1_700_003_600),
            other_resource,
            other_source,
            other_type,
        ];
        for facts in changed {
            let rendered = Rendered::find_or_add(&mut kept, facts).unwrap();
            let report = facts.report(1_700_000_000);
            assert_eq!(
                written(rendered, false, report.expires_in),
                serde_json::to_string(&report).unwrap()
            );
        }
        assert_eq!(kept.len(), RENDERED_KEPT, "the oldest are dropped");
        assert!(kept.last().unwrap().facts.matches(other_type));
        assert!(!kept.iter().any(|r| r.facts.matches(first)));
    }
}
