//! Function keys and the master key, stored in a JSON file, and the host's key check.
//!
//! File format: `{"functionKeys":{"default":"<key>"},"masterKey":"<key>"}`, created with mode
//! 0600 when missing. Key values never appear in logs or error messages.

use std::collections::BTreeMap;
use std::path::Path;

use base64::Engine;
use serde::{Deserialize, Serialize};

/// The keys the emulator accepts.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct HostKeys {
    /// Named function (host-level) keys; each gives level `Function`.
    #[serde(rename = "functionKeys", default)]
    pub function_keys: BTreeMap<String, String>,
    /// The master key; gives level `Admin`.
    #[serde(rename = "masterKey")]
    pub master_key: String,
}

/// The level a presented key grants, with the key's name (the `keyid` claim).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyMatch {
    /// A function key, by name.
    Function(String),
    /// The master key.
    Master,
}

/// Errors reading or creating the keys file (the path is shown; key values never are).
#[derive(Debug, thiserror::Error)]
pub enum KeysError {
    /// I/O failure.
    #[error("keys file {path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// Not the expected JSON shape.
    #[error(
        "keys file {path} is not {{\"functionKeys\":{{...}},\"masterKey\":\"...\"}}: {message}"
    )]
    Format {
        /// The file.
        path: String,
        /// The parser's message (serde does not echo string values for these errors).
        message: String,
    },
}

impl HostKeys {
    /// Reads the keys file, or creates it with fresh random keys (mode 0600) when missing.
    pub fn load_or_create(path: &Path) -> Result<Self, KeysError> {
        let io = |source| KeysError::Io {
            path: path.display().to_string(),
            source,
        };
        match std::fs::read_to_string(path) {
            Ok(text) => {
                let keys: HostKeys =
                    serde_json::from_str(&text).map_err(|e| KeysError::Format {
                        path: path.display().to_string(),
                        message: format!("line {} column {}", e.line(), e.column()),
                    })?;
                if keys.master_key.is_empty() {
                    return Err(KeysError::Format {
                        path: path.display().to_string(),
                        message: "masterKey is empty".to_string(),
                    });
                }
                Ok(keys)
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let keys = HostKeys {
                    function_keys: BTreeMap::from([("default".to_string(), random_key())]),
                    master_key: random_key(),
                };
                write_private(path, &keys).map_err(io)?;
                Ok(keys)
            }
            Err(e) => Err(io(e)),
        }
    }

    /// The key named `default`, else the first function key, else the master key (for the
    /// ready line).
    pub fn default_function_key(&self) -> &str {
        self.function_keys
            .get("default")
            .or_else(|| self.function_keys.values().next())
            .map_or(self.master_key.as_str(), String::as_str)
    }

    /// Which key, if any, `presented` is (compared in constant time).
    pub fn classify(&self, presented: &str) -> Option<KeyMatch> {
        if presented.is_empty() {
            return None;
        }
        if constant_time_eq(presented, &self.master_key) {
            return Some(KeyMatch::Master);
        }
        self.function_keys
            .iter()
            .find(|(_, value)| !value.is_empty() && constant_time_eq(presented, value))
            .map(|(name, _)| KeyMatch::Function(name.clone()))
    }
}

/// 48 random bytes, base64url without padding (uuid v4 draws from the OS generator).
fn random_key() -> String {
    let mut bytes = Vec::with_capacity(48);
    for _ in 0..3 {
        bytes.extend_from_slice(uuid::Uuid::new_v4().as_bytes());
    }
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// Writes the file readable by the owner only, creating parent folders.
fn write_private(path: &Path, keys: &HostKeys) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)?;
    }
    let text = serde_json::to_string_pretty(keys).map_err(std::io::Error::other)?;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    file.write_all(text.as_bytes())?;
    file.write_all(b"\n")
}

/// Compares two strings without an early exit on the first differing byte.
fn constant_time_eq(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn creates_a_private_file_and_reads_it_back() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(".local/host-keys.json");
        let created = HostKeys::load_or_create(&path).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let again = HostKeys::load_or_create(&path).unwrap();
        assert_eq!(again.master_key, created.master_key);
        assert_ne!(created.master_key, created.default_function_key());
        assert!(created.master_key.len() >= 40);
    }

    #[test]
    fn classifies_keys() {
        let keys = HostKeys {
            function_keys: BTreeMap::from([("ci".to_string(), "fk".to_string())]),
            master_key: "mk".to_string(),
        };
        assert_eq!(keys.classify("mk"), Some(KeyMatch::Master));
        assert_eq!(keys.classify("fk"), Some(KeyMatch::Function("ci".into())));
        assert_eq!(keys.classify("nope"), None);
        assert_eq!(keys.classify(""), None);
    }

    #[test]
    fn bad_file_is_an_error_without_values() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k.json");
        std::fs::write(&path, r#"{"masterKey": 5, "secretish": "s3cr3t"}"#).unwrap();
        let err = HostKeys::load_or_create(&path).unwrap_err().to_string();
        assert!(!err.contains("s3cr3t"));
    }
}
