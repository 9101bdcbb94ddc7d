//! In-memory secret store with Key Vault's versioning: every write creates a new 32-hex version,
//! names and versions are case-insensitive, and the most recent version is "latest".

use std::collections::{BTreeMap, HashMap};

use serde_json::{Value, json};

use super::config::SeedVersion;

/// One stored version of a secret.
#[derive(Debug, Clone)]
pub struct SecretVersion {
    /// 32 lowercase hex digits.
    pub version: String,
    /// The secret value.
    pub value: String,
    /// Optional `contentType`.
    pub content_type: Option<String>,
    /// Tags.
    pub tags: BTreeMap<String, String>,
    /// Unix seconds at creation (also `updated`).
    pub created: i64,
}

/// A secret: the name as first written plus its versions, oldest first.
#[derive(Debug, Clone)]
struct Secret {
    name: String,
    versions: Vec<SecretVersion>,
}

/// All secrets, keyed by lowercase name.
#[derive(Debug, Default)]
pub struct SecretStore {
    secrets: HashMap<String, Secret>,
}

/// What a write supplies besides the name.
#[derive(Debug, Clone, Default)]
pub struct NewVersion {
    /// The value.
    pub value: String,
    /// Optional content type.
    pub content_type: Option<String>,
    /// Tags.
    pub tags: BTreeMap<String, String>,
}

impl SecretStore {
    /// Builds the store from the config's seeds; versions get `now` as their timestamp.
    pub fn seeded(seeds: &BTreeMap<String, Vec<SeedVersion>>, now: i64) -> Self {
        let mut store = SecretStore::default();
        for (name, versions) in seeds {
            for seed in versions {
                let new = NewVersion {
                    value: seed.value.clone(),
                    content_type: seed.content_type.clone(),
                    tags: seed.tags.clone(),
                };
                store.insert(name, seed.version.clone(), new, now);
            }
        }
        store
    }

    /// Adds a new version and returns it (with its display name).
    pub fn set(&mut self, name: &str, new: NewVersion, now: i64) -> (String, SecretVersion) {
        self.insert(name, None, new, now)
    }

    fn insert(
        &mut self,
        name: &str,
        version: Option<String>,
        new: NewVersion,
        now: i64,
    ) -> (String, SecretVersion) {
        let version = version
            .map(|v| v.to_ascii_lowercase())
            .unwrap_or_else(|| uuid::Uuid::new_v4().simple().to_string());
        let entry = SecretVersion {
            version,
            value: new.value,
            content_type: new.content_type,
            tags: new.tags,
            created: now,
        };
        let secret = self
            .secrets
            .entry(name.to_ascii_lowercase())
            .or_insert_with(|| Secret {
                name: name.to_string(),
                versions: Vec::new(),
            });
        secret.versions.push(entry.clone());
        (secret.name.clone(), entry)
    }

    /// The latest version of `name`, with the stored display name.
    pub fn latest(&self, name: &str) -> Option<(&str, &SecretVersion)> {
        let secret = self.secrets.get(&name.to_ascii_lowercase())?;
        Some((secret.name.as_str(), secret.versions.last()?))
    }

    /// A specific version of `name`.
    pub fn version(&self, name: &str, version: &str) -> Option<(&str, &SecretVersion)> {
        let secret = self.secrets.get(&name.to_ascii_lowercase())?;
        let wanted = version.to_ascii_lowercase();
        let found = secret.versions.iter().find(|v| v.version == wanted)?;
        Some((secret.name.as_str(), found))
    }

    /// Every version of `name`, oldest first.
    pub fn versions(&self, name: &str) -> Option<(&str, &[SecretVersion])> {
        let secret = self.secrets.get(&name.to_ascii_lowercase())?;
        Some((secret.name.as_str(), secret.versions.as_slice()))
    }
}

/// The `id` Key Vault returns: `https://<host>/secrets/<name>/<version>`.
pub fn secret_id(host: &str, name: &str, version: &str) -> String {
    format!("https://{host}/secrets/{name}/{version}")
}

/// Metadata without the value (the shape of one item in a versions listing).
pub fn item_json(host: &str, name: &str, secret: &SecretVersion) -> Value {
    let mut item = json!({
        "id": secret_id(host, name, &secret.version),
        "attributes": {
            "enabled": true,
            "created": secret.created,
            "updated": secret.created,
            "recoveryLevel": "Recoverable+Purgeable",
            "recoverableDays": 90
        },
        "tags": secret.tags,
    });
    if let (Some(content_type), Some(map)) = (&secret.content_type, item.as_object_mut()) {
        map.insert("contentType".into(), json!(content_type));
    }
    item
}

/// The full secret bundle (metadata plus `value`), as GET and PUT return it.
pub fn bundle_json(host: &str, name: &str, secret: &SecretVersion) -> Value {
    let mut bundle = item_json(host, name, secret);
    if let Some(map) = bundle.as_object_mut() {
        map.insert("value".into(), json!(secret.value));
    }
    bundle
}

#[cfg(test)]
mod tests {
    use super::*;

    fn new(value: &str) -> NewVersion {
        NewVersion {
            value: value.into(),
            ..NewVersion::default()
        }
    }

    #[test]
    fn versions_accumulate_and_latest_is_last() {
        let mut store = SecretStore::default();
        let (_, first) = store.set("Demo", new("one"), 10);
        let (name, second) = store.set("demo", new("two"), 20);
        assert_eq!(name, "Demo");
        assert_ne!(first.version, second.version);
        assert_eq!(second.version.len(), 32);
        assert_eq!(store.latest("DEMO").unwrap().1.value, "two");
        let upper = first.version.to_ascii_uppercase();
        assert_eq!(store.version("demo", &upper).unwrap().1.value, "one");
        assert_eq!(store.versions("demo").unwrap().1.len(), 2);
        assert!(store.latest("missing").is_none());
        assert!(store.version("demo", "nope").is_none());
    }

    #[test]
    fn bundle_has_the_real_shape() {
        let mut store = SecretStore::default();
        let (name, v) = store.set(
            "s",
            NewVersion {
                value: "x".into(),
                content_type: Some("text/plain".into()),
                tags: BTreeMap::new(),
            },
            5,
        );
        let bundle = bundle_json("h:1", &name, &v);
        assert_eq!(bundle["value"], "x");
        assert_eq!(bundle["id"], format!("https://h:1/secrets/s/{}", v.version));
        assert_eq!(bundle["contentType"], "text/plain");
        assert_eq!(
            bundle["attributes"]["recoveryLevel"],
            "Recoverable+Purgeable"
        );
        assert_eq!(bundle["attributes"]["created"], 5);
        assert!(item_json("h", &name, &v).get("value").is_none());
    }
}
