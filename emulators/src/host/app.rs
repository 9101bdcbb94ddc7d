//! Reading a function app: `host.json` (custom-handler description, forwarding flag, route
//! prefix) and every `<folder>/function.json`, the way the Functions host indexes them.

use std::path::{Path, PathBuf};

use serde_json::Value;

use super::route::RouteTemplate;
use super::settings::{SettingLookup, resolve_binding};
use super::timer::TimerSchedule;

/// Why the app cannot be started at all (the real host fails start-up for these).
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// host.json is missing or unreadable.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// host.json is not JSON.
    #[error("{path} is not valid JSON: {message}")]
    Json {
        /// The file.
        path: String,
        /// The parser's message.
        message: String,
    },
    /// host.json has no `customHandler.description` (the host's own message).
    #[error("Missing worker Description. (host.json needs customHandler.description)")]
    MissingDescription,
}

/// The `customHandler` section of host.json.
#[derive(Debug, Clone, Default)]
pub struct HandlerDescription {
    /// `description.defaultExecutablePath` as written (unexpanded).
    pub default_executable_path: String,
    /// `description.arguments`.
    pub arguments: Vec<String>,
    /// `description.workerDirectory`, if set.
    pub worker_directory: Option<String>,
    /// `description.workingDirectory`, if set and not empty.
    pub working_directory: Option<String>,
    /// `enableForwardingHttpRequest` (the legacy `httpWorker` section always forwards).
    pub enable_forwarding: bool,
    /// `initializationTimeout` in seconds (default 30).
    pub initialization_timeout_secs: u64,
}

/// Host-wide settings read from host.json.
#[derive(Debug, Clone)]
pub struct HostConfig {
    /// The custom-handler description.
    pub handler: HandlerDescription,
    /// `extensions.http.routePrefix`, default `api`, without surrounding slashes.
    pub route_prefix: String,
    /// Warnings to log once the ready line is out (stdout must start with it).
    pub notes: Vec<String>,
    /// `functionTimeout` in seconds: when host.json has none, the host's default, 30 minutes on
    /// every plan but Consumption (`WEBSITE_SKU=Dynamic`: 5 minutes); `-1` → 24 h, since the
    /// emulator keeps a timeout on every call.
    pub function_timeout_secs: u64,
    /// Whether host.json set `functionTimeout` (otherwise the plan's default applies).
    pub function_timeout_set: bool,
    /// `extensions.http.maxConcurrentRequests` and `maxOutstandingRequests`.
    pub http_limits: super::throttle::Limits,
}

/// An HTTP function's authorization level.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthLevel {
    /// No key needed.
    Anonymous,
    /// A function key or the master key.
    Function,
    /// The master key only.
    Admin,
}

impl AuthLevel {
    /// The name used in function.json and the ready line.
    pub fn as_str(self) -> &'static str {
        match self {
            AuthLevel::Anonymous => "anonymous",
            AuthLevel::Function => "function",
            AuthLevel::Admin => "admin",
        }
    }
}

/// An `httpTrigger` function's routing and output settings.
#[derive(Debug, Clone)]
pub struct HttpTrigger {
    /// The trigger binding's name (key under `Data`).
    pub binding_name: String,
    /// Required key level.
    pub auth_level: AuthLevel,
    /// Allowed methods, upper case; `None` allows all.
    pub methods: Option<Vec<String>>,
    /// The route as written (or the function name).
    pub route_text: String,
    /// The parsed route template.
    pub route: RouteTemplate,
    /// The name of the `http` output binding, if any.
    pub output_name: Option<String>,
    /// True when the function has exactly one input (this trigger) and one `http` output.
    pub forwardable: bool,
}

/// A `timerTrigger` function's schedule settings.
#[derive(Debug, Clone)]
pub struct TimerTrigger {
    /// The trigger binding's name (key under `Data`).
    pub binding_name: String,
    /// The parsed schedule.
    pub schedule: TimerSchedule,
    /// `runOnStartup`.
    pub run_on_startup: bool,
    /// `useMonitor` after the host's rule (off for schedules firing more than once a minute).
    pub use_monitor: bool,
}

/// What starts a function.
#[derive(Debug, Clone)]
pub enum Trigger {
    /// An HTTP trigger.
    Http(HttpTrigger),
    /// A timer trigger.
    Timer(TimerTrigger),
    /// Any other trigger: indexed, invocable through the admin API only.
    Other {
        /// Binding type, e.g. `queueTrigger`.
        kind: String,
        /// Binding name.
        binding_name: String,
    },
}

impl Trigger {
    /// Short name for logs and the ready line.
    pub fn kind(&self) -> &str {
        match self {
            Trigger::Http(_) => "httpTrigger",
            Trigger::Timer(_) => "timerTrigger",
            Trigger::Other { kind, .. } => kind,
        }
    }
}

/// One indexed function.
#[derive(Debug, Clone)]
pub struct FunctionDef {
    /// Folder name, case kept.
    pub name: String,
    /// The trigger.
    pub trigger: Trigger,
    /// The type of the output binding named `$return`, if there is one.
    pub return_binding_type: Option<String>,
    /// Warnings about parts of function.json the emulator does not model.
    pub notes: Vec<String>,
}

/// A function folder the host would refuse, and why.
#[derive(Debug, Clone, serde::Serialize)]
pub struct NotIndexed {
    /// Folder name.
    pub name: String,
    /// Human-readable reason (never a setting value).
    pub reason: String,
}

/// The indexed app.
#[derive(Debug, Clone)]
pub struct App {
    /// Absolute app root.
    pub root: PathBuf,
    /// host.json settings.
    pub host: HostConfig,
    /// Functions that loaded.
    pub functions: Vec<FunctionDef>,
    /// Functions that did not load.
    pub not_indexed: Vec<NotIndexed>,
}

/// Reads host.json and every function.json under `root`.
pub fn load_app(root: &Path, lookup: SettingLookup<'_>) -> Result<App, AppError> {
    let mut host = load_host_config(root)?;
    if !host.function_timeout_set && lookup("WEBSITE_SKU").as_deref() == Some("Dynamic") {
        host.function_timeout_secs = 300;
    }
    let (functions, not_indexed) = load_functions(root, lookup);
    Ok(App {
        root: root.to_path_buf(),
        host,
        functions,
        not_indexed,
    })
}

/// Case-insensitive member lookup, as the host's option binder does.
pub fn get_ci<'a>(value: &'a Value, key: &str) -> Option<&'a Value> {
    value
        .as_object()?
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(key))
        .map(|(_, v)| v)
}

/// A string member (case-insensitive key).
fn str_ci<'a>(value: &'a Value, key: &str) -> Option<&'a str> {
    get_ci(value, key).and_then(Value::as_str)
}

/// A bool member that may also be written as a string.
fn bool_ci(value: &Value, key: &str) -> Option<bool> {
    match get_ci(value, key)? {
        Value::Bool(b) => Some(*b),
        Value::String(s) => {
            s.trim()
                .parse::<bool>()
                .ok()
                .or_else(|| match s.trim().to_ascii_lowercase().as_str() {
                    "true" => Some(true),
                    "false" => Some(false),
                    _ => None,
                })
        }
        _ => None,
    }
}

fn read_json(path: &Path) -> Result<Value, AppError> {
    let text = std::fs::read_to_string(path).map_err(|source| AppError::Read {
        path: path.display().to_string(),
        source,
    })?;
    serde_json::from_str(text.trim_start_matches('\u{feff}')).map_err(|e| AppError::Json {
        path: path.display().to_string(),
        message: e.to_string(),
    })
}

/// Parses host.json's custom-handler section and route prefix.
pub fn load_host_config(root: &Path) -> Result<HostConfig, AppError> {
    let json = read_json(&root.join("host.json"))?;
    let custom = get_ci(&json, "customHandler");
    let legacy = get_ci(&json, "httpWorker");
    let mut notes = Vec::new();
    if custom.is_some() && legacy.is_some() {
        notes.push(
            "host.json has both customHandler and httpWorker; customHandler wins".to_string(),
        );
    }
    let section = custom.or(legacy).ok_or(AppError::MissingDescription)?;
    let description = get_ci(section, "description").ok_or(AppError::MissingDescription)?;
    if !description.is_object() {
        return Err(AppError::MissingDescription);
    }
    let arguments = get_ci(description, "arguments")
        .and_then(Value::as_array)
        .map(|items| {
            items
                .iter()
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    let handler = HandlerDescription {
        default_executable_path: str_ci(description, "defaultExecutablePath")
            .unwrap_or_default()
            .to_string(),
        arguments,
        worker_directory: str_ci(description, "workerDirectory")
            .filter(|s| !s.is_empty())
            .map(str::to_string),
        working_directory: str_ci(description, "workingDirectory")
            .filter(|s| !s.is_empty())
            .map(str::to_string),
        enable_forwarding: custom.is_none()
            || bool_ci(section, "enableForwardingHttpRequest").unwrap_or(false),
        initialization_timeout_secs: str_ci(section, "initializationTimeout")
            .and_then(parse_timespan_secs)
            .unwrap_or(30),
    };
    let http_section = get_ci(&json, "extensions").and_then(|e| get_ci(e, "http"));
    let http_limits = super::throttle::Limits::from_http_section(http_section, &mut notes);
    let route_prefix = http_section
        .and_then(|h| str_ci(h, "routePrefix"))
        .unwrap_or("api")
        .trim_matches('/')
        .to_string();
    let function_timeout_set = str_ci(&json, "functionTimeout").is_some();
    let function_timeout_secs = match str_ci(&json, "functionTimeout").map(str::trim) {
        None => 30 * 60,
        Some("-1") => 24 * 3600,
        Some(text) => match parse_timespan_secs(text) {
            Some(secs) if secs > 0 => secs,
            _ => {
                notes.push(format!(
                    "functionTimeout '{text}' is not hh:mm:ss; using 00:05:00"
                ));
                300
            }
        },
    };
    Ok(HostConfig {
        handler,
        route_prefix,
        notes,
        function_timeout_secs,
        function_timeout_set,
        http_limits,
    })
}

/// Parses a .NET TimeSpan `hh:mm:ss` into whole seconds.
fn parse_timespan_secs(text: &str) -> Option<u64> {
    let parts: Vec<&str> = text.trim().split(':').collect();
    let [h, m, s] = parts.as_slice() else {
        return None;
    };
    let seconds = s.split('.').next()?.parse::<u64>().ok()?;
    Some(h.parse::<u64>().ok()? * 3600 + m.parse::<u64>().ok()? * 60 + seconds)
}

/// Indexes every `<folder>/function.json`, sorted by folder name.
fn load_functions(root: &Path, lookup: SettingLookup<'_>) -> (Vec<FunctionDef>, Vec<NotIndexed>) {
    let mut folders: Vec<PathBuf> = std::fs::read_dir(root)
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .map(|e| e.path())
                .filter(|p| p.join("function.json").is_file())
                .collect()
        })
        .unwrap_or_default();
    folders.sort();
    let mut functions: Vec<FunctionDef> = Vec::new();
    let mut not_indexed = Vec::new();
    for folder in folders {
        let name = folder
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let result = read_json(&folder.join("function.json"))
            .map_err(|e| e.to_string())
            .and_then(|json| index_function(&name, &json, lookup))
            .and_then(|f| check_route_conflict(f, &functions));
        match result {
            Ok(Some(function)) => functions.push(function),
            Ok(None) => not_indexed.push(NotIndexed {
                name,
                reason: "disabled".to_string(),
            }),
            Err(reason) => not_indexed.push(NotIndexed { name, reason }),
        }
    }
    (functions, not_indexed)
}

/// Refuses a second HTTP function with the same route and overlapping methods.
fn check_route_conflict(
    function: Option<FunctionDef>,
    existing: &[FunctionDef],
) -> Result<Option<FunctionDef>, String> {
    let Some(Trigger::Http(new)) = function.as_ref().map(|f| &f.trigger) else {
        return Ok(function);
    };
    for other in existing {
        let Trigger::Http(old) = &other.trigger else {
            continue;
        };
        let same_route = old
            .route_text
            .trim_matches('/')
            .eq_ignore_ascii_case(new.route_text.trim_matches('/'));
        let overlap = match (&old.methods, &new.methods) {
            (Some(a), Some(b)) => a.iter().any(|m| b.contains(m)),
            _ => true,
        };
        if same_route && overlap {
            return Err(format!(
                "route '{}' conflicts with function '{}'",
                new.route_text, other.name
            ));
        }
    }
    Ok(function)
}

/// Builds one function from its function.json; `Ok(None)` when it is disabled.
fn index_function(
    name: &str,
    json: &Value,
    lookup: SettingLookup<'_>,
) -> Result<Option<FunctionDef>, String> {
    if bool_ci(json, "disabled").unwrap_or(false) || setting_disables(name, lookup) {
        return Ok(None);
    }
    let raw_bindings = get_ci(json, "bindings")
        .and_then(Value::as_array)
        .ok_or("function.json has no bindings array")?;
    let mut bindings = Vec::new();
    for raw in raw_bindings {
        let resolved = resolve_binding(raw, lookup).map_err(|missing| {
            format!("'%{missing}%' does not resolve to a value (app setting {missing} is not set)")
        })?;
        bindings.push(resolved);
    }
    check_unique_names(&bindings)?;
    let inputs: Vec<&Value> = bindings.iter().filter(|b| is_direction(b, "in")).collect();
    let outputs: Vec<&Value> = bindings.iter().filter(|b| is_direction(b, "out")).collect();
    let triggers: Vec<&&Value> = inputs
        .iter()
        .filter(|b| binding_type(b).to_ascii_lowercase().ends_with("trigger"))
        .collect();
    let [trigger] = triggers.as_slice() else {
        return Err(format!(
            "expected exactly one trigger binding, found {}",
            triggers.len()
        ));
    };
    let mut notes = Vec::new();
    if inputs.len() > 1 {
        notes.push(
            "extra input bindings are not emulated; only the trigger reaches Data".to_string(),
        );
    }
    let return_binding_type = outputs
        .iter()
        .find(|b| binding_name(b) == "$return")
        .map(|b| binding_type(b).to_string());
    let trigger = build_trigger(name, trigger, &inputs, &outputs)?;
    Ok(Some(FunctionDef {
        name: name.to_string(),
        trigger,
        return_binding_type,
        notes,
    }))
}

/// `AzureWebJobs.<name>.Disabled` app setting, as the host honours it.
fn setting_disables(name: &str, lookup: SettingLookup<'_>) -> bool {
    lookup(&format!("AzureWebJobs.{name}.Disabled"))
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("true") || v.trim() == "1")
}

fn check_unique_names(bindings: &[Value]) -> Result<(), String> {
    let mut seen: Vec<String> = Vec::new();
    for binding in bindings {
        let name = binding_name(binding).to_ascii_lowercase();
        if name.is_empty() {
            return Err("a binding has no name".to_string());
        }
        if seen.contains(&name) {
            return Err(format!(
                "binding name '{}' is used twice",
                binding_name(binding)
            ));
        }
        seen.push(name);
    }
    Ok(())
}

/// A binding's `type`.
fn binding_type(binding: &Value) -> &str {
    str_ci(binding, "type").unwrap_or_default()
}

/// A binding's `name`.
fn binding_name(binding: &Value) -> &str {
    str_ci(binding, "name").unwrap_or_default()
}

fn is_direction(binding: &Value, direction: &str) -> bool {
    str_ci(binding, "direction").is_some_and(|d| d.eq_ignore_ascii_case(direction))
}

/// Turns the trigger binding into the emulator's trigger model.
fn build_trigger(
    function_name: &str,
    trigger: &Value,
    inputs: &[&Value],
    outputs: &[&Value],
) -> Result<Trigger, String> {
    let kind = binding_type(trigger);
    let trigger_name = binding_name(trigger).to_string();
    if kind.eq_ignore_ascii_case("httpTrigger") {
        let output_name = outputs
            .iter()
            .find(|b| binding_type(b).eq_ignore_ascii_case("http"))
            .map(|b| binding_name(b).to_string());
        let forwardable = inputs.len() == 1 && outputs.len() == 1 && output_name.is_some();
        let http = build_http(
            function_name,
            trigger,
            trigger_name,
            output_name,
            forwardable,
        )?;
        return Ok(Trigger::Http(http));
    }
    if kind.eq_ignore_ascii_case("timerTrigger") {
        let schedule_text = str_ci(trigger, "schedule").ok_or("timer trigger has no schedule")?;
        let schedule = TimerSchedule::parse(schedule_text)
            .map_err(|e| format!("invalid timer schedule '{schedule_text}': {e}"))?;
        let use_monitor = bool_ci(trigger, "useMonitor").unwrap_or(true)
            && !schedule.fires_more_than_once_a_minute();
        return Ok(Trigger::Timer(TimerTrigger {
            binding_name: trigger_name,
            schedule,
            run_on_startup: bool_ci(trigger, "runOnStartup").unwrap_or(false),
            use_monitor,
        }));
    }
    Ok(Trigger::Other {
        kind: kind.to_string(),
        binding_name: trigger_name,
    })
}

fn build_http(
    function_name: &str,
    trigger: &Value,
    binding_name: String,
    output_name: Option<String>,
    forwardable: bool,
) -> Result<HttpTrigger, String> {
    let auth_level = match str_ci(trigger, "authLevel").map(str::to_ascii_lowercase) {
        None => AuthLevel::Function,
        Some(level) => match level.as_str() {
            "anonymous" => AuthLevel::Anonymous,
            "function" | "user" | "system" => AuthLevel::Function,
            "admin" => AuthLevel::Admin,
            other => return Err(format!("unknown authLevel '{other}'")),
        },
    };
    let methods = get_ci(trigger, "methods")
        .and_then(Value::as_array)
        .filter(|m| !m.is_empty())
        .map(|m| {
            m.iter()
                .filter_map(Value::as_str)
                .map(str::to_ascii_uppercase)
                .collect()
        });
    let route_text = str_ci(trigger, "route")
        .filter(|r| !r.trim().is_empty())
        .unwrap_or(function_name)
        .trim_matches('/')
        .to_string();
    let first = route_text.split('/').next().unwrap_or_default();
    if first.eq_ignore_ascii_case("admin") || first.eq_ignore_ascii_case("runtime") {
        return Err(format!(
            "route '{route_text}' starts with a reserved segment (admin/runtime)"
        ));
    }
    let route = RouteTemplate::parse(&route_text)?;
    Ok(HttpTrigger {
        binding_name,
        auth_level,
        methods,
        route_text,
        route,
        output_name,
        forwardable,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, rel: &str, text: &str) {
        let path = dir.join(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }

    fn no_settings(_: &str) -> Option<String> {
        None
    }

    #[test]
    fn missing_description_is_fatal() {
        let dir = tempfile::tempdir().unwrap();
        write(
            dir.path(),
            "host.json",
            r#"{"version":"2.0","customHandler":{}}"#,
        );
        assert!(matches!(
            load_host_config(dir.path()),
            Err(AppError::MissingDescription)
        ));
    }

    #[test]
    fn reads_prefix_forwarding_and_timeout() {
        let dir = tempfile::tempdir().unwrap();
        write(
            dir.path(),
            "host.json",
            r#"{"CustomHandler":{"Description":{"defaultExecutablePath":"h","arguments":["-v"]},
               "enableForwardingHttpRequest":true,"initializationTimeout":"00:01:05"},
               "functionTimeout":"00:10:00",
               "extensions":{"http":{"routePrefix":"/x/"}}}"#,
        );
        let host = load_host_config(dir.path()).unwrap();
        assert_eq!(host.route_prefix, "x");
        assert!(host.handler.enable_forwarding);
        assert_eq!(host.handler.arguments, vec!["-v"]);
        assert_eq!(host.handler.initialization_timeout_secs, 65);
        assert_eq!(host.function_timeout_secs, 600);
    }

    #[test]
    fn indexes_http_and_refuses_bad_functions() {
        let dir = tempfile::tempdir().unwrap();
        write(
            dir.path(),
            "host.json",
            r#"{"customHandler":{"description":{"defaultExecutablePath":"h"}}}"#,
        );
        write(
            dir.path(),
            "Echo/function.json",
            r#"{"bindings":[{"type":"httpTrigger","direction":"in","name":"req","methods":["get"]},
                {"type":"http","direction":"out","name":"res"}]}"#,
        );
        write(
            dir.path(),
            "Tick/function.json",
            r#"{"bindings":[{"type":"timerTrigger","direction":"in","name":"t","schedule":"%NOPE%"}]}"#,
        );
        write(
            dir.path(),
            "Admin/function.json",
            r#"{"bindings":[{"type":"httpTrigger","direction":"in","name":"req","route":"admin/x"}]}"#,
        );
        let app = load_app(dir.path(), &no_settings).unwrap();
        assert_eq!(app.functions.len(), 1);
        let Trigger::Http(http) = &app.functions[0].trigger else {
            panic!("not http")
        };
        assert_eq!(http.auth_level, AuthLevel::Function);
        assert!(http.forwardable);
        assert_eq!(http.route_text, "Echo");
        let reasons: Vec<&str> = app.not_indexed.iter().map(|n| n.reason.as_str()).collect();
        assert!(reasons.iter().any(|r| r.contains("%NOPE%")), "{reasons:?}");
        assert!(
            reasons.iter().any(|r| r.contains("reserved")),
            "{reasons:?}"
        );
    }
}
