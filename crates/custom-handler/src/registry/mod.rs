//! The function registry: the function folders' `function.json` files are the single source of
//! truth for names, triggers, routes, methods and binding names. The registry reads them at
//! start-up, pairs each with the code that implements it, and says precisely where the two
//! disagree.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use serde_json::Value;

use crate::contract::TimerInfo;
use crate::dispatch::RuntimeOptions;
use crate::error::FunctionError;
use crate::http::{HttpRequest, HttpResponse};

/// Runs an HTTP function: the app state and the request in, a response or a typed error out.
pub type HttpFn<S> =
    fn(Arc<S>, HttpRequest) -> BoxFuture<'static, Result<HttpResponse, FunctionError>>;
/// Runs a timer function.
pub type TimerFn<S> = fn(Arc<S>, TimerInfo) -> BoxFuture<'static, Result<(), FunctionError>>;

/// A function as the code implements it; `S` is the app state the code needs.
pub struct Implemented<S> {
    /// The function's name: its folder's name.
    pub name: &'static str,
    /// What triggers it and the code to run.
    pub trigger: ImplementedTrigger<S>,
}

/// The trigger the code expects, with the entry point.
pub enum ImplementedTrigger<S> {
    /// An HTTP trigger with the route template and methods function.json must declare.
    Http {
        /// The route template, e.g. `secrets/{name}`.
        route: &'static str,
        /// The methods, upper case.
        methods: &'static [&'static str],
        /// The entry point.
        run: HttpFn<S>,
    },
    /// A timer trigger.
    Timer {
        /// The entry point.
        run: TimerFn<S>,
    },
}

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

/// One difference between the function folders and the code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mismatch {
    /// A folder the code has no implementation for.
    DeclaredNotImplemented(String),
    /// Code with no folder: the host would never call it.
    ImplementedNotDeclared(String),
    /// The trigger types differ.
    Trigger {
        function: String,
        declared: String,
        implemented: String,
    },
    /// The routes differ.
    Route {
        function: String,
        declared: String,
        implemented: String,
    },
    /// The methods differ.
    Methods {
        function: String,
        declared: String,
        implemented: String,
    },
}

impl fmt::Display for Mismatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::DeclaredNotImplemented(name) => {
                write!(
                    f,
                    "{name}/function.json declares a function this handler does not implement"
                )
            }
            Self::ImplementedNotDeclared(name) => write!(
                f,
                "the handler implements {name} but there is no {name}/function.json, so the host will never call it"
            ),
            Self::Trigger {
                function,
                declared,
                implemented,
            } => write!(
                f,
                "{function}: function.json declares a {declared} trigger, the code implements {implemented}"
            ),
            Self::Route {
                function,
                declared,
                implemented,
            } => write!(
                f,
                "{function}: function.json declares route '{declared}', the code implements '{implemented}'"
            ),
            Self::Methods {
                function,
                declared,
                implemented,
            } => write!(
                f,
                "{function}: function.json declares methods {declared}, the code implements {implemented}"
            ),
        }
    }
}

/// Reads the runtime's options from `<app root>/host.json`: the route prefix and the function
/// timeout. A missing host.json gives the host's defaults; a malformed one is an error.
pub fn load_host_options(app_root: &Path) -> Result<RuntimeOptions, RegistryError> {
    let path = app_root.join("host.json");
    let invalid = |reason: String| RegistryError::FunctionJson {
        path: path.clone(),
        reason,
    };
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(RuntimeOptions::default()),
        Err(e) => return Err(invalid(e.to_string())),
    };
    parse_host_options(&text).map_err(invalid)
}

/// Reads the runtime's options from host.json's text (what [`load_host_options`] does once the
/// file is read; public for `crates/fuzz`). The error is the reason, without the path.
pub fn parse_host_options(text: &str) -> Result<RuntimeOptions, String> {
    let invalid = |reason: String| reason;
    let json: Value =
        serde_json::from_str(text).map_err(|e| invalid(format!("not valid JSON: {e}")))?;
    let mut options = RuntimeOptions::default();
    if let Some(prefix) = json
        .pointer("/extensions/http/routePrefix")
        .and_then(Value::as_str)
    {
        options.route_prefix = prefix.trim_matches('/').to_owned();
    }
    if let Some(timeout) = json.get("functionTimeout").and_then(Value::as_str) {
        options.function_timeout = parse_timespan(timeout).map_err(invalid)?;
    }
    Ok(options)
}

/// Reads a .NET TimeSpan as host.json writes it (`hh:mm:ss`, `d.hh:mm:ss`); `-1` means no limit.
fn parse_timespan(text: &str) -> Result<Option<Duration>, String> {
    let bad =
        || format!("functionTimeout '{text}' is not a TimeSpan like 00:05:00 (or -1 for none)");
    if text.trim() == "-1" {
        return Ok(None);
    }
    let (days, clock) = match text.split_once('.') {
        Some((days, clock)) if clock.contains(':') => {
            (days.parse::<u64>().map_err(|_| bad())?, clock)
        }
        _ => (0, text),
    };
    let parts: Vec<f64> = clock
        .split(':')
        .map(|p| p.parse::<f64>().map_err(|_| bad()))
        .collect::<Result<_, _>>()?;
    let [hours, minutes, seconds] = parts.as_slice() else {
        return Err(bad());
    };
    let total = days as f64 * 86400.0 + hours * 3600.0 + minutes * 60.0 + seconds;
    if !total.is_finite() || total <= 0.0 {
        return Err(bad());
    }
    // Finite is not enough: hours in the quintillions overflow a Duration, which would panic.
    Duration::try_from_secs_f64(total)
        .map(Some)
        .map_err(|_| bad())
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

/// One part of a route template.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    /// Matched without regard to case.
    Literal(String),
    /// `{name}`, `{name?}` or `{name:constraint}`.
    Param { name: String, optional: bool },
    /// `{*name}`: the rest of the path, slashes included.
    CatchAll { name: String },
}

/// A parsed route template such as `blobs/{container}/{name}` or `call/{*path}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteTemplate {
    text: String,
    segments: Vec<Segment>,
}

impl RouteTemplate {
    /// Parses a template; constraints (`{id:int}`) are accepted and not enforced.
    pub fn parse(text: &str) -> Result<Self, String> {
        let trimmed = text.trim_matches('/');
        let mut segments = Vec::new();
        for part in trimmed.split('/').filter(|p| !p.is_empty()) {
            segments.push(parse_segment(part).map_err(|e| format!("route '{text}': {e}"))?);
        }
        let catch_all = segments
            .iter()
            .position(|s| matches!(s, Segment::CatchAll { .. }));
        if catch_all.is_some_and(|at| at + 1 != segments.len()) {
            return Err(format!(
                "route '{text}': a catch-all parameter must come last"
            ));
        }
        Ok(Self {
            text: trimmed.to_owned(),
            segments,
        })
    }

    /// The template as written, without surrounding slashes.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// Matches a request path (already stripped of the route prefix, percent-decoded per
    /// segment by the caller) and returns the route parameters.
    pub fn matches(&self, path: &str) -> Option<BTreeMap<String, String>> {
        let parts: Vec<&str> = path
            .trim_matches('/')
            .split('/')
            .filter(|p| !p.is_empty())
            .collect();
        let mut params = BTreeMap::new();
        let mut index = 0;
        for segment in &self.segments {
            match segment {
                Segment::Literal(literal) => {
                    let part = parts.get(index)?;
                    if !part.eq_ignore_ascii_case(literal) {
                        return None;
                    }
                    index += 1;
                }
                Segment::Param { name, optional } => match parts.get(index) {
                    Some(part) => {
                        params.insert(name.clone(), (*part).to_owned());
                        index += 1;
                    }
                    None if *optional => {}
                    None => return None,
                },
                Segment::CatchAll { name } => {
                    params.insert(name.clone(), parts[index.min(parts.len())..].join("/"));
                    index = parts.len();
                }
            }
        }
        (index == parts.len()).then_some(params)
    }
}

fn parse_segment(part: &str) -> Result<Segment, String> {
    let Some(inner) = part.strip_prefix('{').and_then(|p| p.strip_suffix('}')) else {
        if part.contains(['{', '}']) {
            return Err(format!(
                "segment '{part}' mixes text and parameters, which this handler does not support"
            ));
        }
        return Ok(Segment::Literal(part.to_owned()));
    };
    if let Some(name) = inner.strip_prefix('*') {
        return Ok(Segment::CatchAll {
            name: name.split(':').next().unwrap_or(name).to_owned(),
        });
    }
    let optional = inner.ends_with('?');
    let inner = inner.trim_end_matches('?');
    let name = inner.split([':', '=']).next().unwrap_or(inner);
    if name.is_empty() {
        return Err(format!("segment '{part}' has an empty parameter name"));
    }
    Ok(Segment::Param {
        name: name.to_owned(),
        optional,
    })
}

/// A function that is both declared and implemented: what the dispatcher calls.
pub struct Entry<S> {
    /// The declaration, whose binding names the envelopes use.
    pub declared: Declared,
    /// The code.
    pub trigger: ImplementedTrigger<S>,
}

/// The functions this process serves, and the mismatches that kept others out.
pub struct Registry<S> {
    entries: Vec<Entry<S>>,
    mismatches: Vec<Mismatch>,
}

impl<S> Registry<S> {
    /// Pairs the declarations with the implementations; a function is served only when both
    /// agree on trigger, route and methods.
    pub fn new(declared: Vec<Declared>, implemented: Vec<Implemented<S>>) -> Self {
        let mismatches = compare(&declared, &implemented);
        let mut implemented = implemented;
        let mut entries = Vec::new();
        for declaration in declared {
            let broken = mismatches
                .iter()
                .any(|m| mismatch_names(m) == declaration.name);
            let position = implemented.iter().position(|i| i.name == declaration.name);
            if let (false, Some(position)) = (broken, position) {
                let code = implemented.swap_remove(position);
                entries.push(Entry {
                    declared: declaration,
                    trigger: code.trigger,
                });
            }
        }
        Self {
            entries,
            mismatches,
        }
    }

    /// Every difference between folders and code; empty when they agree.
    pub fn mismatches(&self) -> &[Mismatch] {
        &self.mismatches
    }

    /// The functions served.
    pub fn entries(&self) -> &[Entry<S>] {
        &self.entries
    }

    /// The function named `name`, without regard to case (the JSON-mode URL keeps the folder's case,
    /// but nothing obliges a host or a test to).
    pub fn by_name(&self, name: &str) -> Option<&Entry<S>> {
        self.entries
            .iter()
            .find(|e| e.declared.name.eq_ignore_ascii_case(name))
    }

    /// The HTTP function whose route matches `path` (below the route prefix), if any, with its
    /// parameters, and whether its methods allow `method`.
    pub fn by_route(&self, method: &str, path: &str) -> RouteMatch<'_, S> {
        let mut wrong_method = false;
        for entry in &self.entries {
            let DeclaredTrigger::Http(http) = &entry.declared.trigger else {
                continue;
            };
            let Some(params) = http.route.matches(path) else {
                continue;
            };
            let allowed = http
                .methods
                .as_ref()
                .is_none_or(|methods| methods.iter().any(|m| m.eq_ignore_ascii_case(method)));
            if allowed {
                return RouteMatch::Found { entry, params };
            }
            wrong_method = true;
        }
        if wrong_method {
            RouteMatch::MethodNotAllowed
        } else {
            RouteMatch::NotFound
        }
    }
}

/// The outcome of routing a forwarded request.
pub enum RouteMatch<'a, S> {
    /// A function and its route parameters.
    Found {
        /// The function.
        entry: &'a Entry<S>,
        /// Its route parameters.
        params: BTreeMap<String, String>,
    },
    /// A route matched but none of its functions accepts the method.
    MethodNotAllowed,
    /// No route matched.
    NotFound,
}

fn mismatch_names(mismatch: &Mismatch) -> &str {
    match mismatch {
        Mismatch::DeclaredNotImplemented(name) | Mismatch::ImplementedNotDeclared(name) => name,
        Mismatch::Trigger { function, .. }
        | Mismatch::Route { function, .. }
        | Mismatch::Methods { function, .. } => function,
    }
}

/// Compares folders and code: every function declared but not implemented, implemented but not
/// declared, or with a different trigger type, route or methods.
pub fn compare<S>(declared: &[Declared], implemented: &[Implemented<S>]) -> Vec<Mismatch> {
    let mut mismatches = Vec::new();
    for declaration in declared {
        match implemented.iter().find(|i| i.name == declaration.name) {
            None => mismatches.push(Mismatch::DeclaredNotImplemented(declaration.name.clone())),
            Some(code) => mismatches.extend(compare_one(declaration, &code.trigger)),
        }
    }
    for code in implemented {
        if !declared.iter().any(|d| d.name == code.name) {
            mismatches.push(Mismatch::ImplementedNotDeclared(code.name.to_owned()));
        }
    }
    mismatches
}

fn compare_one<S>(declared: &Declared, code: &ImplementedTrigger<S>) -> Option<Mismatch> {
    let function = declared.name.clone();
    match (&declared.trigger, code) {
        (DeclaredTrigger::Http(http), ImplementedTrigger::Http { route, methods, .. }) => {
            let implemented_route = RouteTemplate::parse(route).ok()?;
            if !http
                .route
                .as_str()
                .eq_ignore_ascii_case(implemented_route.as_str())
            {
                return Some(Mismatch::Route {
                    function,
                    declared: http.route.as_str().to_owned(),
                    implemented: implemented_route.as_str().to_owned(),
                });
            }
            let mut wanted: Vec<String> = methods.iter().map(|m| m.to_ascii_uppercase()).collect();
            wanted.sort();
            let mut have = http.methods.clone().unwrap_or_else(|| vec!["(all)".into()]);
            have.sort();
            (have != wanted).then(|| Mismatch::Methods {
                function,
                declared: have.join(","),
                implemented: wanted.join(","),
            })
        }
        (DeclaredTrigger::Timer { .. }, ImplementedTrigger::Timer { .. }) => None,
        (declared_trigger, code) => Some(Mismatch::Trigger {
            function,
            declared: trigger_kind(declared_trigger),
            implemented: match code {
                ImplementedTrigger::Http { .. } => "httpTrigger".into(),
                ImplementedTrigger::Timer { .. } => "timerTrigger".into(),
            },
        }),
    }
}

fn trigger_kind(trigger: &DeclaredTrigger) -> String {
    match trigger {
        DeclaredTrigger::Http(_) => "httpTrigger".into(),
        DeclaredTrigger::Timer { .. } => "timerTrigger".into(),
        DeclaredTrigger::Other { kind } => kind.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn route(text: &str) -> RouteTemplate {
        RouteTemplate::parse(text).unwrap()
    }

    #[test]
    fn routes_match_without_regard_to_case_and_bind_parameters() {
        let params = route("blobs/{container}/{name}")
            .matches("/BLOBS/photos/cat.png")
            .unwrap();
        assert_eq!(params["container"], "photos");
        assert_eq!(params["name"], "cat.png");
        assert!(
            route("blobs/{container}/{name}")
                .matches("blobs/photos")
                .is_none()
        );
        assert!(
            route("blobs/{container}/{name}")
                .matches("blobs/a/b/c")
                .is_none()
        );
    }

    #[test]
    fn function_timeouts_read_as_timespans() {
        assert_eq!(
            parse_timespan("00:05:00"),
            Ok(Some(Duration::from_secs(300)))
        );
        assert_eq!(
            parse_timespan("1.00:00:01"),
            Ok(Some(Duration::from_secs(86401)))
        );
        assert_eq!(parse_timespan("-1"), Ok(None));
        assert!(parse_timespan("5 minutes").is_err());
        // Found by scripts/fuzz: a finite value past Duration's range was a panic at start-up.
        assert!(parse_timespan("10675199.02:48:059999999999999999999999.4775807").is_err());
        assert!(parse_timespan("99999999999999999999:00:00").is_err());
        assert!(parse_timespan("00:00:00").is_err());
    }

    #[test]
    fn optional_and_catch_all_parameters() {
        let template = route("items/{id:int?}");
        assert_eq!(template.matches("items/7").unwrap()["id"], "7");
        assert!(template.matches("items").unwrap().is_empty());
        let rest = route("call/{*path}");
        assert_eq!(rest.matches("call/a/b/c").unwrap()["path"], "a/b/c");
        assert_eq!(rest.matches("call").unwrap()["path"], "");
        assert!(RouteTemplate::parse("a/{*rest}/b").is_err());
        assert!(RouteTemplate::parse("a/x{y}").is_err());
    }
}
