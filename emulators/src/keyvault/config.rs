//! The emulator's JSON config file: tenant, seeded secrets and per-caller access rules
//! (format documented in the parent module).

use std::collections::BTreeMap;
use std::path::Path;

use serde::Deserialize;

use super::KeyVaultError;

/// The whole config file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VaultConfig {
    /// Tenant named in the challenge and required in the token issuer.
    pub tenant_id: String,
    /// Seeded secrets: name → versions, oldest first.
    #[serde(default)]
    pub secrets: BTreeMap<String, Vec<SeedVersion>>,
    /// Grants per caller object id (`"*"` = every authenticated caller).
    #[serde(default)]
    pub access: BTreeMap<String, AccessRules>,
}

/// One seeded secret version.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SeedVersion {
    /// The secret value.
    pub value: String,
    /// Optional fixed version id (32 hex); random when omitted.
    #[serde(default)]
    pub version: Option<String>,
    /// Optional content type, returned as `contentType`.
    #[serde(default, rename = "contentType")]
    pub content_type: Option<String>,
    /// Optional tags.
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
}

/// Secret-name patterns a caller may use per permission.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AccessRules {
    /// May read values (latest or by version).
    #[serde(default)]
    pub get: Vec<String>,
    /// May create new versions.
    #[serde(default)]
    pub set: Vec<String>,
    /// May list versions.
    #[serde(default)]
    pub list: Vec<String>,
}

/// The three permissions the secrets API checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Permission {
    /// Read a secret value.
    Get,
    /// Write a new version.
    Set,
    /// List versions (metadata only).
    List,
}

impl Permission {
    /// The RBAC data action the real service names in its 403 message.
    pub fn rbac_action(self) -> &'static str {
        match self {
            Permission::Get => "Microsoft.KeyVault/vaults/secrets/getSecret/action",
            Permission::Set => "Microsoft.KeyVault/vaults/secrets/setSecret/action",
            Permission::List => "Microsoft.KeyVault/vaults/secrets/readMetadata/action",
        }
    }
}

impl VaultConfig {
    /// Reads and validates the config file.
    pub fn load(path: &Path) -> Result<Self, KeyVaultError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| KeyVaultError::Config(format!("cannot read {}: {e}", path.display())))?;
        Self::parse(&text)
    }

    /// Parses and validates config JSON.
    pub fn parse(text: &str) -> Result<Self, KeyVaultError> {
        let config: VaultConfig =
            serde_json::from_str(text).map_err(|e| KeyVaultError::Config(e.to_string()))?;
        config.validate()?;
        Ok(config)
    }

    fn validate(&self) -> Result<(), KeyVaultError> {
        if !is_valid_tenant(&self.tenant_id) {
            return Err(KeyVaultError::Config(
                "tenant_id must be a GUID or domain (letters, digits, '.', '-')".into(),
            ));
        }
        for (name, versions) in &self.secrets {
            if !is_valid_secret_name(name) {
                return Err(KeyVaultError::Config(format!(
                    "secret name {name:?} breaks Key Vault's rules (1-127 of 0-9 a-z A-Z -)"
                )));
            }
            for version in versions.iter().filter_map(|v| v.version.as_deref()) {
                if !is_valid_version(version) {
                    return Err(KeyVaultError::Config(format!(
                        "version {version:?} of {name:?} must be 32 hex digits"
                    )));
                }
            }
        }
        for (oid, rules) in &self.access {
            let patterns = rules.get.iter().chain(&rules.set).chain(&rules.list);
            if let Some(bad) = patterns.into_iter().find(|p| !is_valid_pattern(p)) {
                return Err(KeyVaultError::Config(format!(
                    "access pattern {bad:?} for {oid:?} must be a secret name, a prefix ending in '*', or '*'"
                )));
            }
        }
        Ok(())
    }

    /// Whether the caller `oid` holds `permission` on secret `name`.
    pub fn allows(&self, oid: Option<&str>, permission: Permission, name: &str) -> bool {
        let callers = oid.into_iter().chain(std::iter::once("*"));
        callers
            .filter_map(|caller| self.access.get(caller))
            .any(|rules| rules.patterns(permission).iter().any(|p| matches(p, name)))
    }
}

impl AccessRules {
    fn patterns(&self, permission: Permission) -> &[String] {
        match permission {
            Permission::Get => &self.get,
            Permission::Set => &self.set,
            Permission::List => &self.list,
        }
    }
}

/// Case-insensitive match of a name against an exact name, `prefix*` or `*`.
fn matches(pattern: &str, name: &str) -> bool {
    let pattern = pattern.to_ascii_lowercase();
    let name = name.to_ascii_lowercase();
    match pattern.strip_suffix('*') {
        Some(prefix) => name.starts_with(prefix),
        None => pattern == name,
    }
}

fn is_valid_pattern(pattern: &str) -> bool {
    if pattern == "*" {
        return true;
    }
    let prefix = pattern.strip_suffix('*').unwrap_or(pattern);
    !prefix.is_empty()
        && prefix
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-')
}

fn is_valid_tenant(tenant: &str) -> bool {
    !tenant.is_empty()
        && tenant.len() <= 253
        && tenant
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.')
}

/// Key Vault's object-name rule: 1-127 characters of 0-9, a-z, A-Z and '-'.
pub fn is_valid_secret_name(name: &str) -> bool {
    (1..=127).contains(&name.len()) && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
}

/// A secret version id: exactly 32 hex digits.
pub fn is_valid_version(version: &str) -> bool {
    version.len() == 32 && version.chars().all(|c| c.is_ascii_hexdigit())
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = r#"{
        "tenant_id": "tenant-1",
        "secrets": {"demo": [{"value": "v1", "version": "0123456789abcdef0123456789abcdef"}, {"value": "v2"}]},
        "access": {"oid-a": {"get": ["demo", "app-*"], "set": ["*"]}, "*": {"list": ["pub-*"]}}
    }"#;

    #[test]
    fn grants_follow_patterns_and_wildcard_caller() {
        let config = VaultConfig::parse(SAMPLE).unwrap();
        assert!(config.allows(Some("oid-a"), Permission::Get, "DEMO"));
        assert!(config.allows(Some("oid-a"), Permission::Get, "app-one"));
        assert!(!config.allows(Some("oid-a"), Permission::Get, "other"));
        assert!(config.allows(Some("oid-a"), Permission::Set, "anything"));
        assert!(!config.allows(Some("oid-b"), Permission::Get, "demo"));
        assert!(config.allows(Some("oid-b"), Permission::List, "pub-x"));
        assert!(config.allows(None, Permission::List, "pub-x"));
        assert!(!config.allows(None, Permission::Get, "demo"));
    }

    #[test]
    fn rejects_invalid_configs() {
        for bad in [
            r#"{"tenant_id": ""}"#,
            r#"{"tenant_id": "t\"x"}"#,
            r#"{"tenant_id": "t", "secrets": {"bad_name": []}}"#,
            r#"{"tenant_id": "t", "secrets": {"ok": [{"value": "v", "version": "xyz"}]}}"#,
            r#"{"tenant_id": "t", "access": {"o": {"get": ["a*b"]}}}"#,
            r#"{"tenant_id": "t", "access": {"o": {"get": [""]}}}"#,
            r#"{"tenant_id": "t", "unknown": 1}"#,
            "not json",
        ] {
            assert!(VaultConfig::parse(bad).is_err(), "accepted {bad}");
        }
    }

    #[test]
    fn name_and_version_rules() {
        assert!(is_valid_secret_name("a"));
        assert!(is_valid_secret_name(&"a".repeat(127)));
        assert!(!is_valid_secret_name(&"a".repeat(128)));
        assert!(!is_valid_secret_name(""));
        assert!(!is_valid_secret_name("a_b"));
        assert!(!is_valid_secret_name("a%2Fb"));
        assert!(is_valid_version("0123456789ABCDEF0123456789abcdef"));
        assert!(!is_valid_version("0123"));
    }
}
