//! function.json: what each function folder declares (trigger, route, methods, binding names).

use std::path::{Path, PathBuf};

use serde_json::Value;

use super::route_template::RouteTemplate;

/// A function as its function.json declares it.
#[derive(Debug, Clone, PartialEq)]
pub struct Declared {
    /// The folder name.
    pub name: String,
    /// The trigger binding.
    pub trigger: DeclaredTrigger,
}

/// The declared trigger, with the binding names the JSON-mode envelopes use.
#[derive(Debug, Clone, PartialEq)]
pub enum DeclaredTrigger {
    /// `httpTrigger`.
    Http(HttpBinding),
    /// `timerTrigger`.
    Timer {
        /// The trigger binding's name, the key in `Data`.
        binding: String,
        /// The schedule as written (may be a `%SETTING%` reference).
        schedule: String,
    },
    /// A trigger type this handler does not serve.
    Other {
        /// The binding's `type`.
        kind: String,
    },
}

/// What an `httpTrigger` function.json declares.
#[derive(Debug, Clone, PartialEq)]
pub struct HttpBinding {
    /// The trigger binding's name, the key in `Data`.
    pub binding: String,
    /// The http output binding's name, the key in `Outputs` (exact case).
    pub output: String,
    /// The route template; the function name when function.json has none.
    pub route: RouteTemplate,
    /// The allowed methods, upper case; `None` allows every method.
    pub methods: Option<Vec<String>>,
    /// `anonymous`, `function` or `admin`.
    pub auth_level: String,
}

/// Why the function folders could not be read.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    /// The app root is not a readable directory.
    #[error("cannot read the function app root {path}: {source}")]
    AppRoot {
        /// The path tried.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A function.json could not be read or is not the shape the host accepts.
    #[error("{path}: {reason}")]
    FunctionJson {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
}

/// Reads every `<app root>/<Function>/function.json`, in name order. A folder whose function.json
/// is broken is reported in the second list and left out, so the others still run (the host,
/// too, indexes the functions it can). Only an unreadable app root fails the whole load.
pub fn load_declared(
    app_root: &Path,
) -> Result<(Vec<Declared>, Vec<RegistryError>), RegistryError> {
    let entries = std::fs::read_dir(app_root).map_err(|source| RegistryError::AppRoot {
        path: app_root.to_owned(),
        source,
    })?;
    let mut folders: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .map(|entry| entry.path())
        .filter(|path| path.join("function.json").is_file())
        .collect();
    folders.sort();
    let mut declared = Vec::new();
    let mut broken = Vec::new();
    for folder in &folders {
        match read_function_json(folder) {
            Ok(function) => declared.push(function),
            Err(error) => broken.push(error),
        }
    }
    Ok((declared, broken))
}

fn read_function_json(folder: &Path) -> Result<Declared, RegistryError> {
    let path = folder.join("function.json");
    let invalid = |reason: String| RegistryError::FunctionJson {
        path: path.clone(),
        reason,
    };
    let text = std::fs::read_to_string(&path).map_err(|e| invalid(e.to_string()))?;
    let name = folder
        .file_name()
        .and_then(|n| n.to_str())
        .ok_or_else(|| invalid("the folder name is not valid UTF-8".into()))?;
    parse_function_json(name, &text).map_err(invalid)
}

/// Reads one function.json's text for the function (folder) `name`: what [`load_declared`]
/// does per folder once the file is read; public for `crates/fuzz`. The error is the reason.
pub fn parse_function_json(name: &str, text: &str) -> Result<Declared, String> {
    let invalid = |reason: String| reason;
    let json: Value =
        serde_json::from_str(text).map_err(|e| invalid(format!("not valid JSON: {e}")))?;
    let name = name.to_owned();
    let bindings = json
        .get("bindings")
        .and_then(Value::as_array)
        .ok_or_else(|| invalid("it has no \"bindings\" array".into()))?;
    let trigger = declared_trigger(&name, bindings).map_err(invalid)?;
    Ok(Declared { name, trigger })
}

fn declared_trigger(name: &str, bindings: &[Value]) -> Result<DeclaredTrigger, String> {
    let text =
        |binding: &Value, key: &str| binding.get(key).and_then(Value::as_str).map(str::to_owned);
    let is_trigger = |binding: &&Value| {
        text(binding, "type").is_some_and(|kind| kind.to_ascii_lowercase().ends_with("trigger"))
    };
    let triggers: Vec<&Value> = bindings.iter().filter(is_trigger).collect();
    let [trigger] = triggers.as_slice() else {
        return Err(format!(
            "it must declare exactly one trigger binding, found {}",
            triggers.len()
        ));
    };
    let kind = text(trigger, "type").unwrap_or_default();
    let binding = text(trigger, "name").ok_or("the trigger binding has no \"name\"")?;
    match kind.to_ascii_lowercase().as_str() {
        "httptrigger" => {
            let output = bindings
                .iter()
                .find(|b| text(b, "type").is_some_and(|t| t.eq_ignore_ascii_case("http")))
                .and_then(|b| text(b, "name"))
                .ok_or("an httpTrigger function needs an http output binding (\"type\": \"http\", \"direction\": \"out\")")?;
            let route_text = text(trigger, "route").unwrap_or_else(|| name.to_owned());
            let route = RouteTemplate::parse(&route_text)?;
            let methods = trigger
                .get("methods")
                .and_then(Value::as_array)
                .map(|list| {
                    list.iter()
                        .filter_map(Value::as_str)
                        .map(str::to_ascii_uppercase)
                        .collect()
                });
            let auth_level = text(trigger, "authLevel").unwrap_or_else(|| "function".into());
            Ok(DeclaredTrigger::Http(HttpBinding {
                binding,
                output,
                route,
                methods,
                auth_level,
            }))
        }
        "timertrigger" => {
            let schedule =
                text(trigger, "schedule").ok_or("the timer trigger has no \"schedule\"")?;
            Ok(DeclaredTrigger::Timer { binding, schedule })
        }
        _ => Ok(DeclaredTrigger::Other { kind }),
    }
}
