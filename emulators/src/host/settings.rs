//! `%NAME%` app-setting references, as the Functions host resolves them.
//!
//! Binding values (a timer `schedule`, a queue name, ...) may name an app setting as `%NAME%`.
//! The real host resolves them through its name resolver and refuses to load a function whose
//! reference does not resolve; the emulator does the same with its own environment.

use serde_json::Value;

/// A lookup from app-setting name to value (the process environment in production,
/// a map in unit tests).
pub type SettingLookup<'a> = &'a dyn Fn(&str) -> Option<String>;

/// Replaces every `%NAME%` in `text` with what `replace` gives for `NAME` (`NAME` may be empty,
/// for `%%`); the one scanner behind both reference rules below, which differ only in that.
fn substitute<E>(
    text: &str,
    mut replace: impl FnMut(&str) -> Result<String, E>,
) -> Result<String, E> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find('%') {
        let after = &rest[start + 1..];
        let Some(end) = after.find('%') else { break };
        let name = &after[..end];
        out.push_str(&rest[..start]);
        out.push_str(&replace(name)?);
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

/// Replaces every `%NAME%` in `text` with the setting's value.
///
/// Fails with the first name that does not resolve, so the caller can say which setting is
/// missing (never its value).
pub fn resolve_references(text: &str, lookup: SettingLookup<'_>) -> Result<String, String> {
    substitute(text, |name| {
        if name.is_empty() {
            // "%%" is not a reference; keep it literally.
            return Ok("%%".to_string());
        }
        lookup(name).ok_or_else(|| name.to_string())
    })
}

/// Expands `%NAME%` like .NET's `Environment.ExpandEnvironmentVariables` with the host's
/// argument sanitising: an unresolved reference is deleted (used for handler arguments and the
/// executable path, where the host does not refuse to start).
pub fn expand_or_delete(text: &str, lookup: SettingLookup<'_>) -> String {
    let expanded: Result<String, std::convert::Infallible> = substitute(text, |name| {
        Ok(lookup(name)
            .filter(|_| !name.is_empty())
            .unwrap_or_default())
    });
    match expanded {
        Ok(text) => text,
        Err(never) => match never {},
    }
}

/// Resolves `%NAME%` references in every string of a binding object (top-level strings and
/// strings inside arrays), returning the unresolved setting name on failure.
pub fn resolve_binding(binding: &Value, lookup: SettingLookup<'_>) -> Result<Value, String> {
    match binding {
        Value::String(text) => resolve_references(text, lookup).map(Value::String),
        Value::Array(items) => items
            .iter()
            .map(|item| resolve_binding(item, lookup))
            .collect::<Result<Vec<_>, _>>()
            .map(Value::Array),
        Value::Object(map) => {
            let mut resolved = serde_json::Map::new();
            for (key, value) in map {
                resolved.insert(key.clone(), resolve_binding(value, lookup)?);
            }
            Ok(Value::Object(resolved))
        }
        other => Ok(other.clone()),
    }
}

/// Settings to add (name, value) and notes to log, as read from local.settings.json.
pub type LocalSettings = (Vec<(String, String)>, Vec<String>);

/// App settings from a local.settings.json `Values` object, applied the way Core Tools does:
/// a name already set in the environment keeps its environment value (and a note says so).
///
/// Returns the settings to add and the notes to log (names only, never values).
pub fn load_local_settings(
    path: &std::path::Path,
    environment: SettingLookup<'_>,
) -> Result<LocalSettings, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let json: Value = serde_json::from_str(text.trim_start_matches('\u{feff}'))
        .map_err(|e| format!("{} is not valid JSON: {e}", path.display()))?;
    let values = json
        .get("Values")
        .and_then(Value::as_object)
        .ok_or_else(|| format!("{} has no \"Values\" object", path.display()))?;
    let mut settings = Vec::new();
    let mut notes = Vec::new();
    for (name, value) in values {
        let Some(value) = value.as_str() else {
            notes.push(format!("local setting {name} is not a string; skipped"));
            continue;
        };
        if environment(name).is_some() {
            notes.push(format!(
                "local setting {name} is already set in the environment; the environment value wins"
            ));
            continue;
        }
        settings.push((name.clone(), value.to_string()));
    }
    Ok((settings, notes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_settings_yield_to_the_environment() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("local.settings.json");
        std::fs::write(
            &path,
            r#"{"IsEncrypted":false,"Values":{"SCHEDULE":"x","OTHER":"y","N":1}}"#,
        )
        .unwrap();
        let (settings, notes) = load_local_settings(&path, &lookup).unwrap();
        assert_eq!(settings, vec![("OTHER".to_string(), "y".to_string())]);
        assert_eq!(notes.len(), 2);
        assert!(!notes.iter().any(|n| n.contains("*/5")));
    }

    fn lookup(name: &str) -> Option<String> {
        (name == "SCHEDULE").then(|| "0 */5 * * * *".to_string())
    }

    #[test]
    fn resolves_a_whole_value_reference() {
        assert_eq!(
            resolve_references("%SCHEDULE%", &lookup).unwrap(),
            "0 */5 * * * *"
        );
    }

    #[test]
    fn reports_the_unresolved_name() {
        assert_eq!(
            resolve_references("a-%MISSING%-b", &lookup).unwrap_err(),
            "MISSING"
        );
    }

    #[test]
    fn keeps_text_without_references() {
        assert_eq!(resolve_references("50% off", &lookup).unwrap(), "50% off");
    }

    #[test]
    fn a_double_percent_is_kept_by_resolve_and_deleted_by_expand() {
        assert_eq!(resolve_references("a%%b", &lookup).unwrap(), "a%%b");
        assert_eq!(expand_or_delete("a%%b", &lookup), "ab");
    }

    #[test]
    fn expand_deletes_unresolved_references() {
        assert_eq!(expand_or_delete("--x=%NOPE%y", &lookup), "--x=y");
        assert_eq!(expand_or_delete("%SCHEDULE%", &lookup), "0 */5 * * * *");
    }

    #[test]
    fn resolves_nested_binding_strings() {
        let binding = serde_json::json!({"schedule": "%SCHEDULE%", "methods": ["get"], "n": 1});
        let resolved = resolve_binding(&binding, &lookup).unwrap();
        assert_eq!(resolved["schedule"], "0 */5 * * * *");
        assert_eq!(resolved["n"], 1);
    }
}
