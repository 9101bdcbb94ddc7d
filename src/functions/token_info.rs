//! `TokenInfo`: what the app's managed identity gets for a resource — source, identity, claims
//! and expiry — without the token itself. The first thing to call when a function cannot reach
//! a service.
//!
//! A caller with the function key can ask only for the audiences in `TOKEN_INFO_RESOURCES` (by
//! default the ones the app itself uses) and, per call, only for the identities in
//! `TOKEN_INFO_IDENTITIES` (by default none but the app's default identity). Anything else is
//! refused before the identity module is asked, so it costs no request to the identity endpoint
//! and no cache entry.

use std::sync::Arc;

use crate::app::App;
use crate::error::FunctionError;
use custom_handler::http::{HttpRequest, HttpResponse};
use managed_identity::{IdentitySelector, UserAssignedId, normalize_scope};

mod report;
pub use report::TokenReport;

/// The report's log line names the function's module, as every function's lines do.
const LOG_TARGET: &str = module_path!();

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
    if managed_identity::is_guid(value) {
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
                && managed_identity::is_guid(sub)
                && groups.eq_ignore_ascii_case("resourceGroups")
                && name_ok(rg)
                && providers.eq_ignore_ascii_case("providers")
                && namespace.eq_ignore_ascii_case("Microsoft.ManagedIdentity")
                && kind.eq_ignore_ascii_case("userAssignedIdentities")
                && name_ok(name)
    )
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
    Ok(report::answer(&token).with_header("Cache-Control", "no-store"))
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
}
