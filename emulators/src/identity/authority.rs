//! The OpenID authority part: discovery documents and JWKS, the way Entra ID serves them.
//!
//! For the configured tenant `T` (and the multi-tenant aliases `common`, `organizations`):
//! - `GET /{T}/v2.0/.well-known/openid-configuration`: issuer `https://login.microsoftonline.com/{T}/v2.0`,
//!   `jwks_uri` `<base>/{T}/discovery/v2.0/keys`;
//! - `GET /{T}/.well-known/openid-configuration`: issuer `https://sts.windows.net/{T}/`,
//!   `jwks_uri` `<base>/{T}/discovery/keys`;
//! - `GET /{T}/discovery/v2.0/keys` and `/{T}/discovery/keys`: the JWKS.
//!
//! For the aliases the issuer holds the literal `{tenantid}` placeholder, as Entra ID does.
//! Any other tenant gets Entra ID's `AADSTS90002` 400.

use hyper::StatusCode;
use serde_json::{Value, json};

use super::server::IdentityEmulator;
use crate::serve::{HttpResponse, json_response};

/// Tenant aliases served besides the configured tenant.
const TENANT_ALIASES: [&str; 2] = ["common", "organizations"];

/// Answers an authority path, or `None` if `path` is not one.
pub fn handle(emulator: &IdentityEmulator, path: &str) -> Option<HttpResponse> {
    let trimmed = path.trim_start_matches('/');
    let (tenant, rest) = trimmed.split_once('/')?;
    let document = match rest {
        "v2.0/.well-known/openid-configuration" => Document::DiscoveryV2,
        ".well-known/openid-configuration" => Document::DiscoveryV1,
        "discovery/v2.0/keys" | "discovery/keys" => Document::Keys,
        _ => return None,
    };
    Some(answer(emulator, tenant, document))
}

enum Document {
    DiscoveryV2,
    DiscoveryV1,
    Keys,
}

fn answer(emulator: &IdentityEmulator, tenant: &str, document: Document) -> HttpResponse {
    let issuer_tenant = if tenant == emulator.config.tenant_id {
        tenant
    } else if TENANT_ALIASES.contains(&tenant) {
        "{tenantid}"
    } else {
        return unknown_tenant(tenant);
    };
    let body = match document {
        Document::DiscoveryV2 => discovery_v2(&emulator.base_url, tenant, issuer_tenant),
        Document::DiscoveryV1 => discovery_v1(&emulator.base_url, tenant, issuer_tenant),
        Document::Keys => emulator.keys().jwks(),
    };
    json_response(StatusCode::OK, &body)
}

fn discovery_v2(base: &str, tenant: &str, issuer_tenant: &str) -> Value {
    json!({
        "issuer": format!("https://login.microsoftonline.com/{issuer_tenant}/v2.0"),
        "jwks_uri": format!("{base}/{tenant}/discovery/v2.0/keys"),
        "token_endpoint": format!("{base}/{tenant}/oauth2/v2.0/token"),
        "authorization_endpoint": format!("{base}/{tenant}/oauth2/v2.0/authorize"),
        "id_token_signing_alg_values_supported": ["RS256"],
        "response_types_supported": ["code", "id_token", "code id_token", "id_token token"],
        "subject_types_supported": ["pairwise"],
        "token_endpoint_auth_methods_supported": ["client_secret_post", "private_key_jwt", "client_secret_basic"],
        "tenant_region_scope": null,
    })
}

fn discovery_v1(base: &str, tenant: &str, issuer_tenant: &str) -> Value {
    json!({
        "issuer": format!("https://sts.windows.net/{issuer_tenant}/"),
        "jwks_uri": format!("{base}/{tenant}/discovery/keys"),
        "token_endpoint": format!("{base}/{tenant}/oauth2/token"),
        "authorization_endpoint": format!("{base}/{tenant}/oauth2/authorize"),
        "id_token_signing_alg_values_supported": ["RS256"],
        "response_types_supported": ["code", "id_token", "code id_token", "token id_token", "token"],
        "subject_types_supported": ["pairwise"],
        "token_endpoint_auth_methods_supported": ["client_secret_post", "private_key_jwt", "client_secret_basic"],
    })
}

fn unknown_tenant(tenant: &str) -> HttpResponse {
    let shown: String = tenant
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '.')
        .take(64)
        .collect();
    json_response(
        StatusCode::BAD_REQUEST,
        &json!({
            "error": "invalid_tenant",
            "error_description": format!("AADSTS90002: Tenant '{shown}' not found."),
            "error_codes": [90002],
        }),
    )
}
