//! `TokenInfo`: what the app's managed identity gets for a resource — source, identity, claims
//! and expiry — without the token itself. The first thing to call when a function cannot reach
//! a service.
//!
//! A caller with the function key can ask only for the audiences in `TOKEN_INFO_RESOURCES` (by
//! default the ones the app itself uses) and, per call, only for the identities in
//! `TOKEN_INFO_IDENTITIES` (by default none but the app's default identity). Anything else is
//! refused before the identity module is asked, so it costs no request to the identity endpoint
//! and no cache entry.

use std::cell::RefCell;
use std::sync::Arc;

use serde::Serialize;

use crate::app::App;
use crate::error::FunctionError;
use custom_handler::http::{HttpRequest, HttpResponse};
use managed_identity::claims::Claims;
use managed_identity::{IdentitySelector, SourceKind, Token, UserAssignedId, normalize_scope};

/// The resource asked for when the caller names none.
pub const DEFAULT_RESOURCE: &str = "https://vault.azure.net";

/// The setting listing the audiences TokenInfo serves.
pub const RESOURCES_SETTING: &str = "TOKEN_INFO_RESOURCES";
/// The setting listing the identities a TokenInfo call may name.
pub const IDENTITIES_SETTING: &str = "TOKEN_INFO_IDENTITIES";

/// Key Vault and Storage: what the app's own clients get tokens for.
const APP_RESOURCES: &[&str] = &["https://vault.azure.net", "https://storage.azure.com"];

/// The longest identity id looked at; ARM resource ids of identities are well under this.
const MAX_IDENTITY_LEN: usize = 512;

/// Which audiences and identities TokenInfo serves (`TOKEN_INFO_RESOURCES`,
/// `TOKEN_INFO_IDENTITIES`), parsed once at start-up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenInfoPolicy {
    /// Resources (scopes without `/.default`, without a trailing `/`), as listed.
    resources: Vec<String>,
    /// Identity ids a call may name, lower-cased (GUIDs and ARM ids compare without case).
    identities: Vec<String>,
}

/// Why TOKEN_INFO_RESOURCES or TOKEN_INFO_IDENTITIES cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{setting}: \"{value}\" {reason}")]
pub struct PolicyError {
    /// The setting.
    pub setting: &'static str,
    /// The entry refused (a resource or an identity id: not secrets).
    pub value: String,
    /// Why.
    pub reason: String,
}

impl TokenInfoPolicy {
    /// Reads the two settings. `resources` absent: Key Vault, Storage, `downstream_scope` and
    /// `refresh_resources` (entries of those that are not valid scopes are left out: their own
    /// functions report them). `identities` absent: none beyond the default identity.
    pub fn parse(
        resources: Option<&str>,
        identities: Option<&str>,
        downstream_scope: Option<&str>,
        refresh_resources: &[String],
    ) -> Result<Self, PolicyError> {
        let resources = match resources {
            Some(list) => split(list)
                .map(|entry| {
                    normalize_scope(entry)
                        .map(|r| comparable(&r))
                        .map_err(|e| PolicyError {
                            setting: RESOURCES_SETTING,
                            value: entry.chars().take(100).collect(),
                            reason: format!("is not a valid resource or scope ({e})"),
                        })
                })
                .collect::<Result<Vec<_>, _>>()?,
            None => APP_RESOURCES
                .iter()
                .copied()
                .chain(downstream_scope)
                .chain(refresh_resources.iter().map(String::as_str))
                .filter_map(|entry| normalize_scope(entry).ok())
                .map(|r| comparable(&r))
                .collect(),
        };
        let identities = identities
            .map(|list| {
                split(list)
                    .map(|entry| {
                        if is_identity_id(entry) {
                            Ok(entry.to_ascii_lowercase())
                        } else {
                            Err(PolicyError {
                                setting: IDENTITIES_SETTING,
                                value: entry.chars().take(100).collect(),
                                reason: "is neither a client or object id (GUID) nor the resource id of a user-assigned identity".into(),
                            })
                        }
                    })
                    .collect::<Result<Vec<_>, _>>()
            })
            .transpose()?
            .unwrap_or_default();
        Ok(Self {
            resources,
            identities,
        })
    }

    /// The resource `scope` names, if TokenInfo serves it: 400 for a scope outside the grammar,
    /// 403 naming TOKEN_INFO_RESOURCES for one that is not listed.
    pub fn check_resource(&self, scope: &str) -> Result<String, FunctionError> {
        let resource = normalize_scope(scope)?;
        let wanted = resource.trim_end_matches('/');
        if self.resources.iter().any(|listed| listed == wanted) {
            Ok(resource)
        } else {
            Err(FunctionError::Forbidden(format!(
                "TokenInfo does not serve tokens for \"{resource}\"; to allow it, add it to the {RESOURCES_SETTING} app setting"
            )))
        }
    }

    /// Whether a call may name `identity`: it is listed in TOKEN_INFO_IDENTITIES, or it is the
    /// app's default identity. 400 for an id of the wrong shape, 403 naming the setting else.
    pub fn check_identity(
        &self,
        identity: &UserAssignedId,
        default: &IdentitySelector,
    ) -> Result<(), FunctionError> {
        let value = identity.value();
        if !is_identity_id(value) {
            return Err(FunctionError::BadRequest(format!(
                "{} must be a GUID (client_id, object_id) or the ARM resource id of a user-assigned identity (resource_id)",
                identity.kind_words()
            )));
        }
        let is_default = matches!(default, IdentitySelector::UserAssigned(d)
            if std::mem::discriminant(d) == std::mem::discriminant(identity)
                && d.value().eq_ignore_ascii_case(value));
        if is_default || self.identities.contains(&value.to_ascii_lowercase()) {
            Ok(())
        } else {
            Err(FunctionError::Forbidden(format!(
                "TokenInfo does not serve tokens for the identity with {} {value}; to allow it, add it to the {IDENTITIES_SETTING} app setting",
                identity.kind_words()
            )))
        }
    }
}

fn split(list: &str) -> impl Iterator<Item = &str> {
    list.split(',').map(str::trim).filter(|e| !e.is_empty())
}

/// `https://storage.azure.com/` and `https://storage.azure.com` name one audience.
fn comparable(resource: &str) -> String {
    resource.trim_end_matches('/').to_owned()
}

/// A client or object id (GUID), or an ARM resource id of a user-assigned identity:
/// `/subscriptions/<sub>/resourceGroups/<rg>/providers/Microsoft.ManagedIdentity/userAssignedIdentities/<name>`.
fn is_identity_id(value: &str) -> bool {
    if value.len() > MAX_IDENTITY_LEN {
        return false;
    }
    if managed_identity::is_app_id(value) {
        return true;
    }
    let segments: Vec<&str> = value.split('/').collect();
    let name_ok = |s: &str| {
        !s.is_empty()
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'(' | b')'))
    };
    matches!(
        segments.as_slice(),
        ["", subscriptions, sub, groups, rg, providers, namespace, kind, name]
            if subscriptions.eq_ignore_ascii_case("subscriptions")
                && managed_identity::is_app_id(sub)
                && groups.eq_ignore_ascii_case("resourceGroups")
                && name_ok(rg)
                && providers.eq_ignore_ascii_case("providers")
                && namespace.eq_ignore_ascii_case("Microsoft.ManagedIdentity")
                && kind.eq_ignore_ascii_case("userAssignedIdentities")
                && name_ok(name)
    )
}

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

/// `GET /api/token[?resource=R][&client_id=|&object_id=|&resource_id=]`.
pub async fn run(app: Arc<App>, request: HttpRequest) -> Result<HttpResponse, FunctionError> {
    let policy = app.token_info_policy()?;
    let resource = policy.check_resource(request.query("resource").unwrap_or(DEFAULT_RESOURCE))?;
    let identity = requested_identity(&request)?;
    let credential = app.identity()?;
    if let Some(identity) = &identity {
        policy.check_identity(identity, credential.default_identity())?;
    }
    let token = credential.get_token(&resource, identity.as_ref()).await?;
    let facts = Facts::of(&token);
    let now = now();
    let response = RENDERED.with(|kept| {
        let mut kept = kept.borrow_mut();
        let Some(rendered) = Rendered::find_or_add(&mut kept, facts) else {
            // Not renderable ahead (serializing the claims failed): the plain way.
            let report = facts.report(now);
            log::info!(
                "token for {} from {} ({}): {} s left",
                report.resource,
                report.source,
                report.identity,
                report.expires_in
            );
            return HttpResponse::json(200, &report);
        };
        let expires_in = facts.expires_on - now;
        log::info!("{}{expires_in} s left", rendered.log_head);
        HttpResponse::json_written(200, |body, escaped| {
            rendered.write(body, escaped, expires_in)
        })
    });
    Ok(response.with_header("Cache-Control", "no-store"))
}

fn now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
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

    fn write(&self, body: &mut Vec<u8>, escaped: bool, expires_in: i64) {
        use std::io::Write as _;
        let (head, tail) = if escaped {
            (&self.head_escaped, &self.tail_escaped)
        } else {
            (&self.head, &self.tail)
        };
        body.extend_from_slice(head.as_bytes());
        // A number reads the same escaped or not.
        let _ = write!(body, "{expires_in}");
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

/// A user-assigned identity named in the query, at most one.
fn requested_identity(request: &HttpRequest) -> Result<Option<UserAssignedId>, FunctionError> {
    let named: Vec<UserAssignedId> = [
        request
            .query("client_id")
            .map(|v| UserAssignedId::ClientId(v.to_owned())),
        request
            .query("object_id")
            .map(|v| UserAssignedId::ObjectId(v.to_owned())),
        request
            .query("resource_id")
            .map(|v| UserAssignedId::ResourceId(v.to_owned())),
    ]
    .into_iter()
    .flatten()
    .collect();
    match named.as_slice() {
        [] => Ok(None),
        [one] => Ok(Some(one.clone())),
        _ => Err(FunctionError::BadRequest(
            "name at most one of client_id, object_id and resource_id".into(),
        )),
    }
}

#[cfg(test)]
mod tests {
    use custom_handler::Failure as _;

    use super::*;

    const SUB: &str = "00000000-0000-4000-8000-000000000001";
    const CLIENT: &str = "00000000-0000-4000-8000-00000000b001";

    fn defaults() -> TokenInfoPolicy {
        TokenInfoPolicy::parse(
            None,
            None,
            Some("api://00000000-0000-4000-8000-0000000a9100/.default"),
            &[
                "https://management.azure.com/".to_owned(),
                "not a scope".to_owned(),
            ],
        )
        .unwrap()
    }

    #[test]
    fn by_default_only_the_apps_own_audiences_are_served() {
        let policy = defaults();
        for ok in [
            "https://vault.azure.net",
            "https://vault.azure.net/.default",
            "https://storage.azure.com/",
            "api://00000000-0000-4000-8000-0000000a9100",
            "https://management.azure.com",
        ] {
            assert!(policy.check_resource(ok).is_ok(), "{ok}");
        }
        for refused in [
            "https://graph.microsoft.com",
            "https://vault.azure.net.evil.com",
            "api://other",
        ] {
            let error = policy.check_resource(refused).unwrap_err();
            assert_eq!(error.status(), 403, "{refused}");
            assert!(
                error.to_string().contains("TOKEN_INFO_RESOURCES"),
                "{error}"
            );
        }
        let bad = policy
            .check_resource("https://vault.azure.net%26calc")
            .unwrap_err();
        assert_eq!(bad.status(), 400);
    }

    #[test]
    fn a_listed_setting_replaces_the_defaults() {
        let policy = TokenInfoPolicy::parse(
            Some("https://graph.microsoft.com/.default"),
            None,
            None,
            &[],
        )
        .unwrap();
        assert!(policy.check_resource("https://graph.microsoft.com").is_ok());
        assert_eq!(
            policy
                .check_resource("https://vault.azure.net")
                .unwrap_err()
                .status(),
            403
        );
        let error = TokenInfoPolicy::parse(Some("https://ok.example.com, x&calc"), None, None, &[])
            .unwrap_err();
        assert_eq!(error.setting, RESOURCES_SETTING);
    }

    /// The identity check's outcome, a refusal as its status.
    fn checked(
        policy: &TokenInfoPolicy,
        identity: UserAssignedId,
        default: &IdentitySelector,
    ) -> Result<(), u16> {
        policy
            .check_identity(&identity, default)
            .map_err(|error| error.status())
    }

    #[test]
    fn only_listed_identities_or_the_default_one_may_be_named() {
        let rid = format!(
            "/subscriptions/{SUB}/resourceGroups/rg/providers/Microsoft.ManagedIdentity/userAssignedIdentities/reader"
        );
        let policy = TokenInfoPolicy::parse(
            None,
            Some(&format!("{CLIENT}, {}", rid.to_uppercase())),
            None,
            &[],
        )
        .unwrap();
        let system = IdentitySelector::SystemAssigned;
        assert_eq!(
            checked(
                &policy,
                UserAssignedId::ClientId(CLIENT.to_uppercase()),
                &system
            ),
            Ok(())
        );
        assert_eq!(
            checked(&policy, UserAssignedId::ResourceId(rid.clone()), &system),
            Ok(())
        );
        let other = "00000000-0000-4000-8000-00000000c001";
        let error = policy
            .check_identity(&UserAssignedId::ObjectId(other.into()), &system)
            .unwrap_err();
        assert_eq!(error.status(), 403);
        assert!(
            error.to_string().contains("TOKEN_INFO_IDENTITIES"),
            "{error}"
        );
        // Unset: only the default identity, named by the same kind of id.
        let unset = TokenInfoPolicy::parse(None, None, None, &[]).unwrap();
        let default = IdentitySelector::UserAssigned(UserAssignedId::ClientId(CLIENT.into()));
        assert_eq!(
            checked(&unset, UserAssignedId::ClientId(CLIENT.into()), &default),
            Ok(())
        );
        assert_eq!(
            checked(&unset, UserAssignedId::ObjectId(CLIENT.into()), &default),
            Err(403)
        );
        assert_eq!(
            checked(&unset, UserAssignedId::ClientId(CLIENT.into()), &system),
            Err(403)
        );
        for malformed in [
            "x",
            "00000000-0000-4000-8000-00000000b001&a=b",
            "/subscriptions/x/y",
            "",
        ] {
            assert_eq!(
                checked(&unset, UserAssignedId::ClientId(malformed.into()), &system),
                Err(400),
                "{malformed}"
            );
        }
        let error = TokenInfoPolicy::parse(None, Some("not-an-id"), None, &[]).unwrap_err();
        assert_eq!(error.setting, IDENTITIES_SETTING);
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
        rendered.write(&mut body, escaped, expires_in);
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
