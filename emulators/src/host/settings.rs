//! `%NAME%` app-setting references, as the Functions host resolves them.
//!
//! Binding values (a timer `schedule`, a queue name, ...) may name an app setting as `%NAME%`.
//! The real host resolves them through its name resolver and refuses to load a function whose
//! reference does not resolve; the emulator does the same with its own environment.

use serde_json::Value;

/// A lookup from app-setting name to value (the process environment in production,
/// a map in unit tests).
pub type SettingLookup<'a> = &'a dyn Fn(&str) -> Option<String>;

/// Replaces every `%NAME%` in `text` with the setting's value.
///
/// Fails with the first name that does not resolve, so the caller can say which setting is
/// missing (never its value).
pub fn resolve_references(text: &str, lookup: SettingLookup<'_>) -> Result<String, String> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find('%') {
        let after = &rest[start + 1..];
        let Some(end) = after.find('%') else { break };
        let name = &after[..end];
        out.push_str(&rest[..start]);
        if name.is_empty() {
            // "%%" is not a reference; keep it literally.
            out.push_str("%%");
        } else {
            match lookup(name) {
                Some(value) => out.push_str(&value),
                None => return Err(name.to_string()),
            }
        }
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

/// Expands `%NAME%` like .NET's `Environment.ExpandEnvironmentVariables` with the host's
/// argument sanitising: an unresolved reference is deleted (used for handler arguments and the
/// executable path, where the host does not refuse to start).
pub fn expand_or_delete(text: &str, lookup: SettingLookup<'_>) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find('%') {
        let after = &rest[start + 1..];
        let Some(end) = after.find('%') else { break };
        let name = &after[..end];
        out.push_str(&rest[..start]);
        if let Some(value) = lookup(name).filter(|_| !name.is_empty()) {
            out.push_str(&value);
        }
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    out
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

#[cfg(test)]
mod tests {
    use super::*;

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
