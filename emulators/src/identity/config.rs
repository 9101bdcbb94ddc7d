//! The identity emulator's configuration file (JSON).
//!
//! ```json
//! {
//!   "tenant_id": "72f988bf-86f1-41af-91ab-2d7cd011db47",
//!   "token_lifetime_secs": 86400,
//!   "header_secret": "optional; a random one is made and printed in the ready line otherwise",
//!   "legacy_expires_on_format": "epoch-string",
//!   "identities": [
//!     {"name": "system", "system_assigned": true,
//!      "client_id": "…", "object_id": "…",
//!      "resource_id": "/subscriptions/…/providers/Microsoft.ManagedIdentity/userAssignedIdentities/x",
//!      "roles": {"api://…": ["Api.Read"]}}
//!   ]
//! }
//! ```
//! Unknown fields are rejected so that a typo does not silently change behaviour.
//! `emulators/config/identity.sample.json` is a working example (a unit test loads it).

use std::collections::BTreeMap;
use std::path::Path;

use serde::Deserialize;

use super::token::ExpiresOnFormat;

/// Default token lifetime when the file does not set one (24 h, as managed identities often get).
pub const DEFAULT_LIFETIME_SECS: u64 = 86_400;

/// The whole configuration file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Tenant of every identity; goes into `tid` and `iss`.
    pub tenant_id: String,
    /// Lifetime of issued tokens in seconds.
    #[serde(default = "default_lifetime")]
    pub token_lifetime_secs: u64,
    /// The secret header value; the `--header-secret` flag wins over it.
    #[serde(default)]
    pub header_secret: Option<String>,
    /// How legacy 2017 responses write `expires_on` (default `epoch-string`).
    #[serde(default)]
    pub legacy_expires_on_format: Option<ExpiresOnFormat>,
    /// The identities attached to the emulated app.
    pub identities: Vec<IdentityConfig>,
}

fn default_lifetime() -> u64 {
    DEFAULT_LIFETIME_SECS
}

/// One managed identity.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IdentityConfig {
    /// A label for logs and `/_emulator/mint`.
    pub name: String,
    /// True for the system-assigned identity (at most one), served when no selector is given.
    #[serde(default)]
    pub system_assigned: bool,
    /// Application (client) id: `appid` claim and the `client_id` selector.
    pub client_id: String,
    /// Object (principal) id: `oid`/`sub` claims and the `object_id`/`principal_id` selector.
    pub object_id: String,
    /// ARM resource id, for `mi_res_id` / `msi_res_id` (compared case-insensitively).
    #[serde(default)]
    pub resource_id: Option<String>,
    /// App roles per audience, put in the `roles` claim when the token's audience matches.
    #[serde(default)]
    pub roles: BTreeMap<String, Vec<String>>,
}

impl IdentityConfig {
    /// Roles for `audience`, matching exactly or up to one trailing slash.
    pub fn roles_for(&self, audience: &str) -> &[String] {
        let wanted = audience.trim_end_matches('/');
        self.roles
            .iter()
            .find(|(aud, _)| aud.as_str() == audience || aud.trim_end_matches('/') == wanted)
            .map(|(_, roles)| roles.as_slice())
            .unwrap_or(&[])
    }
}

/// Why a configuration file was refused.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The JSON is malformed or has unknown/missing fields.
    #[error("invalid config {path}: {source}")]
    Parse {
        /// The file.
        path: String,
        /// The parser's message (positions and field names only).
        source: serde_json::Error,
    },
    /// The content is inconsistent.
    #[error("invalid config: {0}")]
    Invalid(String),
}

impl Config {
    /// Reads and validates a configuration file.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let shown = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: shown.clone(),
            source,
        })?;
        let config: Config = serde_json::from_str(&text).map_err(|source| ConfigError::Parse {
            path: shown,
            source,
        })?;
        config.validate()?;
        Ok(config)
    }

    /// Checks the rules serde cannot: non-empty ids, one system identity, unique selectors.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.tenant_id.trim().is_empty() {
            return Err(ConfigError::Invalid("tenant_id is empty".into()));
        }
        if self.identities.iter().filter(|i| i.system_assigned).count() > 1 {
            return Err(ConfigError::Invalid(
                "more than one identity has system_assigned: true".into(),
            ));
        }
        for identity in &self.identities {
            if identity.client_id.is_empty() || identity.object_id.is_empty() {
                return Err(ConfigError::Invalid(format!(
                    "identity `{}` needs client_id and object_id",
                    identity.name
                )));
            }
        }
        self.check_unique("client_id", |i| Some(i.client_id.as_str()))?;
        self.check_unique("object_id", |i| Some(i.object_id.as_str()))?;
        self.check_unique("resource_id", |i| i.resource_id.as_deref())
    }

    fn check_unique(
        &self,
        field: &str,
        value: impl Fn(&IdentityConfig) -> Option<&str>,
    ) -> Result<(), ConfigError> {
        let mut seen: Vec<String> = Vec::new();
        for identity in &self.identities {
            if let Some(v) = value(identity) {
                let v = v.to_ascii_lowercase();
                if seen.contains(&v) {
                    return Err(ConfigError::Invalid(format!("duplicate {field} `{v}`")));
                }
                seen.push(v);
            }
        }
        Ok(())
    }

    /// The system-assigned identity, if one is configured.
    pub fn system_identity(&self) -> Option<&IdentityConfig> {
        self.identities.iter().find(|i| i.system_assigned)
    }

    /// Finds an identity by client id, object id or resource id (case-insensitive).
    pub fn find(&self, kind: SelectorKind, value: &str) -> Option<&IdentityConfig> {
        self.identities.iter().find(|identity| {
            let candidate = match kind {
                SelectorKind::ClientId => Some(identity.client_id.as_str()),
                SelectorKind::ObjectId => Some(identity.object_id.as_str()),
                SelectorKind::ResourceId => identity.resource_id.as_deref(),
            };
            candidate.is_some_and(|c| c.eq_ignore_ascii_case(value))
        })
    }
}

/// What a user-assigned selector names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SelectorKind {
    /// `client_id` / `clientid`.
    ClientId,
    /// `object_id` / `principal_id`.
    ObjectId,
    /// `mi_res_id` / `msi_res_id`.
    ResourceId,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Config, String> {
        let config: Config = serde_json::from_str(text).map_err(|e| e.to_string())?;
        config.validate().map_err(|e| e.to_string())?;
        Ok(config)
    }

    #[test]
    fn the_sample_config_loads() {
        let sample = concat!(env!("CARGO_MANIFEST_DIR"), "/config/identity.sample.json");
        let config = Config::load(Path::new(sample)).unwrap();
        assert!(config.system_identity().is_some());
        assert_eq!(config.identities.len(), 2);
    }

    #[test]
    fn rejects_two_system_identities_and_duplicates() {
        let two = r#"{"tenant_id":"t","identities":[
            {"name":"a","system_assigned":true,"client_id":"1","object_id":"2"},
            {"name":"b","system_assigned":true,"client_id":"3","object_id":"4"}]}"#;
        assert!(parse(two).unwrap_err().contains("system_assigned"));
        let dup = r#"{"tenant_id":"t","identities":[
            {"name":"a","client_id":"AB","object_id":"2"},
            {"name":"b","client_id":"ab","object_id":"4"}]}"#;
        assert!(parse(dup).unwrap_err().contains("duplicate client_id"));
    }

    #[test]
    fn rejects_unknown_fields_and_finds_by_any_id() {
        assert!(parse(r#"{"tenant_id":"t","identities":[],"tenant":"x"}"#).is_err());
        let config = parse(
            r#"{"tenant_id":"t","identities":[{"name":"u","client_id":"C1","object_id":"O1",
            "resource_id":"/Subs/X","roles":{"api://a/":["R"]}}]}"#,
        )
        .unwrap();
        assert_eq!(config.token_lifetime_secs, DEFAULT_LIFETIME_SECS);
        assert!(config.find(SelectorKind::ClientId, "c1").is_some());
        assert!(config.find(SelectorKind::ObjectId, "o1").is_some());
        assert!(config.find(SelectorKind::ResourceId, "/subs/x").is_some());
        assert!(config.find(SelectorKind::ClientId, "O1").is_none());
        assert_eq!(config.identities[0].roles_for("api://a"), ["R".to_string()]);
        assert!(config.identities[0].roles_for("api://b").is_empty());
    }
}
