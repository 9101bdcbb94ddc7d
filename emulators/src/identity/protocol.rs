//! Recognising a token request and checking it the way each platform endpoint does.
//!
//! | protocol | path | api-version | guard header | selectors |
//! |---|---|---|---|---|
//! | App Service 2019 | `/msi/token` | `2019-08-01` | `X-IDENTITY-HEADER: <secret>` | `client_id`, `principal_id`, `object_id`, `mi_res_id` |
//! | legacy 2017 / Azure ML | `/msi/token` | `2017-09-01` | `secret: <secret>` | `clientid` |
//! | IMDS | `/metadata/identity/oauth2/token` | `2018-02-01` (also `2019-08-01`) | `Metadata: true` | `client_id`, `object_id`, `msi_res_id` |
//!
//! Errors use each platform's shape: App Service
//! `{"statusCode":400,"message":…,"correlationId":…}`, IMDS `{"error":…,"error_description":…}`.
//! A missing guard header is a 400, a wrong secret a 401 (App Service family; reports of the real
//! endpoint show both statuses, and no public source pins which case gets which). A selector that
//! belongs to another protocol (or the undocumented `resource_id`) is refused like an unknown id.
//! A scope sent as the resource (`…/.default`) gets Entra ID's AADSTS500011 (App Service: 500,
//! IMDS: 400 `invalid_resource`), so a client that forgets to strip it fails here as in Azure.

use hyper::{HeaderMap, StatusCode};
use serde_json::{Value, json};

use super::config::{Config, IdentityConfig, SelectorKind};

/// Path of the App Service (2019 and 2017) token endpoint.
pub const APP_SERVICE_PATH: &str = "/msi/token";
/// Path of the IMDS token endpoint.
pub const IMDS_PATH: &str = "/metadata/identity/oauth2/token";

/// Every query parameter some protocol uses to pick a user-assigned identity.
const ALL_SELECTORS: [&str; 7] = [
    "client_id",
    "clientid",
    "principal_id",
    "object_id",
    "mi_res_id",
    "msi_res_id",
    "resource_id",
];

/// One of the emulated token protocols.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// App Service / Functions, api-version 2019-08-01.
    AppService2019,
    /// App Service legacy / Azure ML, api-version 2017-09-01.
    Legacy2017,
    /// Azure Instance Metadata Service.
    Imds,
}

impl Protocol {
    /// The name used in logs, the request log and fault rules.
    pub fn name(self) -> &'static str {
        match self {
            Self::AppService2019 => "appservice2019",
            Self::Legacy2017 => "legacy2017",
            Self::Imds => "imds",
        }
    }

    /// Which selector names this protocol understands, and what they select.
    fn selector(self, name: &str) -> Option<SelectorKind> {
        match (self, name) {
            (Self::AppService2019 | Self::Imds, "client_id") => Some(SelectorKind::ClientId),
            (Self::Legacy2017, "clientid") => Some(SelectorKind::ClientId),
            (Self::AppService2019, "principal_id" | "object_id") => Some(SelectorKind::ObjectId),
            (Self::Imds, "object_id") => Some(SelectorKind::ObjectId),
            (Self::AppService2019, "mi_res_id") => Some(SelectorKind::ResourceId),
            (Self::Imds, "msi_res_id") => Some(SelectorKind::ResourceId),
            _ => None,
        }
    }
}

/// A refused request: the status and body to send.
#[derive(Debug, Clone)]
pub struct Rejection {
    /// HTTP status.
    pub status: StatusCode,
    /// JSON body in the platform's shape.
    pub body: Value,
}

/// Where a request landed, before any check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    /// `/msi/token`.
    AppService,
    /// `/metadata/identity/oauth2/token`.
    Imds,
}

impl Endpoint {
    /// The token endpoint at `path`, if it is one.
    pub fn from_path(path: &str) -> Option<Self> {
        match path.trim_end_matches('/') {
            APP_SERVICE_PATH => Some(Self::AppService),
            IMDS_PATH => Some(Self::Imds),
            _ => None,
        }
    }

    /// The protocol a request most likely meant, for logging when the api-version is unusable.
    pub fn guess_protocol(self, headers: &HeaderMap) -> Protocol {
        match self {
            Self::Imds => Protocol::Imds,
            Self::AppService if headers.contains_key("secret") => Protocol::Legacy2017,
            Self::AppService => Protocol::AppService2019,
        }
    }

    /// The protocol for this endpoint and api-version, or the platform's UnsupportedApiVersion 400.
    pub fn protocol(self, api_version: Option<&str>) -> Result<Protocol, Rejection> {
        match (self, api_version) {
            (Self::AppService, Some("2019-08-01")) => Ok(Protocol::AppService2019),
            (Self::AppService, Some("2017-09-01")) => Ok(Protocol::Legacy2017),
            (Self::Imds, Some("2018-02-01" | "2019-08-01")) => Ok(Protocol::Imds),
            (endpoint, version) => Err(unsupported_api_version(endpoint, version)),
        }
    }
}

/// The UnsupportedApiVersion 400 in the endpoint's error shape.
pub fn unsupported_api_version(endpoint: Endpoint, version: Option<&str>) -> Rejection {
    let shown = version.unwrap_or("(none)");
    match endpoint {
        Endpoint::AppService => app_service_error(
            StatusCode::BAD_REQUEST,
            &format!(
                "UnsupportedApiVersion: The HTTP resource does not support the api-version '{shown}'."
            ),
        ),
        Endpoint::Imds => imds_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            &format!("UnsupportedApiVersion: Invalid api-version '{shown}'"),
        ),
    }
}

/// An App Service error body with a fresh correlation id.
pub fn app_service_error(status: StatusCode, message: &str) -> Rejection {
    Rejection {
        status,
        body: json!({
            "statusCode": status.as_u16(),
            "message": message,
            "correlationId": uuid::Uuid::new_v4().to_string(),
        }),
    }
}

/// An IMDS error body.
pub fn imds_error(status: StatusCode, error: &str, description: &str) -> Rejection {
    Rejection {
        status,
        body: json!({"error": error, "error_description": description}),
    }
}

/// The "wrong identity" 400 of a protocol.
fn identity_not_found(protocol: Protocol) -> Rejection {
    match protocol {
        Protocol::Imds => imds_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "Identity not found",
        ),
        _ => app_service_error(
            StatusCode::BAD_REQUEST,
            "Unable to load the proper Managed Identity.",
        ),
    }
}

/// Checks the guard header: the secret for App Service 2019 / legacy 2017, `Metadata: true` for IMDS.
pub fn check_guard_header(
    protocol: Protocol,
    headers: &HeaderMap,
    secret: &str,
) -> Result<(), Rejection> {
    match protocol {
        Protocol::AppService2019 => check_secret(headers, "x-identity-header", secret),
        Protocol::Legacy2017 => check_secret(headers, "secret", secret),
        Protocol::Imds => check_metadata(headers),
    }
}

fn check_secret(headers: &HeaderMap, name: &str, secret: &str) -> Result<(), Rejection> {
    let Some(value) = headers.get(name) else {
        return Err(app_service_error(
            StatusCode::BAD_REQUEST,
            &format!("The request is missing the {name} header."),
        ));
    };
    if constant_time_eq(value.as_bytes(), secret.as_bytes()) {
        Ok(())
    } else {
        Err(app_service_error(
            StatusCode::UNAUTHORIZED,
            &format!("The {name} header value is not valid."),
        ))
    }
}

fn check_metadata(headers: &HeaderMap) -> Result<(), Rejection> {
    match headers.get("metadata") {
        Some(value) if value.as_bytes() == b"true" => Ok(()),
        _ => Err(imds_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "Required metadata header not specified",
        )),
    }
}

/// Compares without stopping at the first difference, so timing does not leak the secret.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The identity and resource a valid request asks for.
#[derive(Debug, Clone)]
pub struct TokenTarget<'a> {
    /// The identity that gets the token.
    pub identity: &'a IdentityConfig,
    /// The `resource` parameter exactly as sent.
    pub resource: String,
}

/// Validates `resource` and the selector and resolves the identity.
pub fn resolve_target<'a>(
    protocol: Protocol,
    query: &[(String, String)],
    config: &'a Config,
) -> Result<TokenTarget<'a>, Rejection> {
    let resource = required_resource(protocol, query)?;
    let identity = select_identity(protocol, query, config)?;
    Ok(TokenTarget { identity, resource })
}

fn required_resource(protocol: Protocol, query: &[(String, String)]) -> Result<String, Rejection> {
    let resources: Vec<&String> = query
        .iter()
        .filter(|(n, _)| n == "resource")
        .map(|(_, v)| v)
        .collect();
    match resources.as_slice() {
        [resource] if resource.ends_with("/.default") => Err(scope_as_resource(protocol, resource)),
        [resource] if !resource.is_empty() => Ok((*resource).clone()),
        _ if protocol == Protocol::Imds => Err(imds_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "Required audience parameter not specified",
        )),
        _ => Err(app_service_error(
            StatusCode::BAD_REQUEST,
            "The resource parameter is required and must be given once.",
        )),
    }
}

/// A scope (`…/.default`) sent as `resource` is not a resource principal: Entra ID refuses it
/// (AADSTS500011), which App Service passes on as a 500 and IMDS as a 400 `invalid_resource`.
fn scope_as_resource(protocol: Protocol, resource: &str) -> Rejection {
    let shown: String = resource.chars().take(200).collect();
    let message = format!(
        "AADSTS500011: The resource principal named {shown} was not found in the tenant. \
         (A scope was sent as the resource: strip the trailing /.default.)"
    );
    match protocol {
        Protocol::Imds => imds_error(StatusCode::BAD_REQUEST, "invalid_resource", &message),
        _ => app_service_error(StatusCode::INTERNAL_SERVER_ERROR, &message),
    }
}

fn select_identity<'a>(
    protocol: Protocol,
    query: &[(String, String)],
    config: &'a Config,
) -> Result<&'a IdentityConfig, Rejection> {
    let selectors: Vec<&(String, String)> = query
        .iter()
        .filter(|(name, _)| ALL_SELECTORS.contains(&name.as_str()))
        .collect();
    match selectors.as_slice() {
        [] => config
            .system_identity()
            .ok_or_else(|| identity_not_found(protocol)),
        [(name, value)] => {
            let kind = protocol
                .selector(name)
                .ok_or_else(|| identity_not_found(protocol))?;
            config
                .find(kind, value)
                .ok_or_else(|| identity_not_found(protocol))
        }
        _ => Err(more_than_one_selector(protocol)),
    }
}

fn more_than_one_selector(protocol: Protocol) -> Rejection {
    let message = "Only one of client_id, object_id or resource id may be specified.";
    match protocol {
        Protocol::Imds => imds_error(StatusCode::BAD_REQUEST, "invalid_request", message),
        _ => app_service_error(StatusCode::BAD_REQUEST, message),
    }
}

/// The selector of a request as `name=value`, or `system`, for log lines.
pub fn describe_selector(query: &[(String, String)]) -> String {
    let selectors: Vec<String> = query
        .iter()
        .filter(|(name, _)| ALL_SELECTORS.contains(&name.as_str()))
        .map(|(name, value)| format!("{name}={value}"))
        .collect();
    if selectors.is_empty() {
        "system".to_string()
    } else {
        selectors.join(",")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> Config {
        serde_json::from_value(json!({"tenant_id": "t", "identities": [
            {"name": "sys", "system_assigned": true, "client_id": "c-sys", "object_id": "o-sys"},
            {"name": "ua", "client_id": "c-ua", "object_id": "o-ua", "resource_id": "/r/ua"}
        ]}))
        .unwrap()
    }

    fn query(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    }

    fn pick(protocol: Protocol, pairs: &[(&str, &str)]) -> Result<String, StatusCode> {
        let config = config();
        let mut all = query(&[("resource", "https://vault.azure.net")]);
        all.extend(query(pairs));
        resolve_target(protocol, &all, &config)
            .map(|t| t.identity.name.clone())
            .map_err(|r| r.status)
    }

    #[test]
    fn each_protocol_accepts_only_its_own_selectors() {
        use Protocol::*;
        // (protocol, selectors, the identity picked)
        type Case = (
            Protocol,
            &'static [(&'static str, &'static str)],
            &'static str,
        );
        let accepted: [Case; 8] = [
            (AppService2019, &[], "sys"),
            (AppService2019, &[("client_id", "c-ua")], "ua"),
            (AppService2019, &[("principal_id", "o-ua")], "ua"),
            (AppService2019, &[("object_id", "o-ua")], "ua"),
            (AppService2019, &[("mi_res_id", "/R/UA")], "ua"),
            (Legacy2017, &[("clientid", "c-ua")], "ua"),
            (Imds, &[("msi_res_id", "/r/ua")], "ua"),
            (Imds, &[("object_id", "o-ua")], "ua"),
        ];
        for (protocol, selectors, identity) in accepted {
            assert_eq!(
                pick(protocol, selectors).unwrap(),
                identity,
                "{protocol:?} {selectors:?}"
            );
        }
        for (protocol, name) in [
            (AppService2019, "clientid"),
            (AppService2019, "msi_res_id"),
            (Legacy2017, "client_id"),
            (Imds, "mi_res_id"),
            (Imds, "principal_id"),
            (Imds, "resource_id"),
        ] {
            let value = if name.contains("res") {
                "/r/ua"
            } else {
                "c-ua"
            };
            assert_eq!(
                pick(protocol, &[(name, value)]),
                Err(StatusCode::BAD_REQUEST),
                "{name}"
            );
        }
        assert_eq!(
            pick(
                AppService2019,
                &[("client_id", "c-ua"), ("object_id", "o-ua")]
            ),
            Err(StatusCode::BAD_REQUEST)
        );
        assert_eq!(
            pick(Imds, &[("client_id", "nope")]),
            Err(StatusCode::BAD_REQUEST)
        );
    }

    #[test]
    fn a_scope_sent_as_resource_is_refused() {
        let config = config();
        let query = query(&[("resource", "https://vault.azure.net/.default")]);
        let app_service = resolve_target(Protocol::AppService2019, &query, &config).unwrap_err();
        assert_eq!(app_service.status, StatusCode::INTERNAL_SERVER_ERROR);
        assert!(
            app_service.body["message"]
                .as_str()
                .unwrap()
                .contains("AADSTS500011")
        );
        let imds = resolve_target(Protocol::Imds, &query, &config).unwrap_err();
        assert_eq!(imds.body["error"], "invalid_resource");
    }

    #[test]
    fn guard_headers() {
        let mut headers = HeaderMap::new();
        // Each step adds one header (or none) to what the steps before added.
        let steps = [
            (None, Protocol::AppService2019, Err(StatusCode::BAD_REQUEST)),
            (
                Some(("X-Identity-Header", "wrong")),
                Protocol::AppService2019,
                Err(StatusCode::UNAUTHORIZED),
            ),
            (
                Some(("x-identity-header", "s")),
                Protocol::AppService2019,
                Ok(()),
            ),
            (None, Protocol::Imds, Err(StatusCode::BAD_REQUEST)),
            (Some(("Metadata", "true")), Protocol::Imds, Ok(())),
        ];
        for (added, protocol, expected) in steps {
            if let Some((name, value)) = added {
                headers.insert(name, value.parse().unwrap());
            }
            assert_eq!(
                check_guard_header(protocol, &headers, "s").map_err(|e| e.status),
                expected,
                "{protocol:?} after adding {added:?}"
            );
        }
    }
}
