//! The function registry: the function folders' `function.json` files are the single source of
//! truth for names, triggers, routes, methods and binding names. The registry reads them at
//! start-up, pairs each with the code that implements it, and says precisely where the two
//! disagree.

mod function_json;
mod host_json;
mod route_template;

use std::collections::BTreeMap;
use std::fmt;
use std::future::Future;
use std::sync::Arc;

use futures::TryFutureExt as _;
use futures::future::BoxFuture;

use crate::contract::TimerInfo;
use crate::failure::{BoxFailure, Failure};
use crate::http::{HttpRequest, HttpResponse};

pub use function_json::{
    Declared, DeclaredTrigger, HttpBinding, RegistryError, load_declared, parse_function_json,
};
pub use host_json::{RuntimeOptions, load_host_options, parse_host_options};
pub use route_template::RouteTemplate;

/// An HTTP function's entry point, boxed once where it is registered ([`Implemented::http`]).
pub type HttpFn<S> = Box<
    dyn Fn(Arc<S>, HttpRequest) -> BoxFuture<'static, Result<HttpResponse, BoxFailure>>
        + Send
        + Sync,
>;
/// A timer function's entry point, boxed once where it is registered ([`Implemented::timer`]).
pub type TimerFn<S> =
    Box<dyn Fn(Arc<S>, TimerInfo) -> BoxFuture<'static, Result<(), BoxFailure>> + Send + Sync>;

/// The body limit of an HTTP function registered without one: the Functions host's own cap on
/// a request body (100 MB).
pub const DEFAULT_BODY_LIMIT: usize = 100 * 1024 * 1024;

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
        /// The most body bytes a request may carry (none is read for a function whose methods
        /// never carry a body: GET, HEAD, DELETE, OPTIONS).
        body_limit: usize,
        /// The entry point.
        run: HttpFn<S>,
    },
    /// A timer trigger.
    Timer {
        /// The entry point.
        run: TimerFn<S>,
    },
}

impl<S> Implemented<S> {
    /// An HTTP function: any `async fn(Arc<S>, HttpRequest) -> Result<HttpResponse, E>` whose
    /// error implements [`Failure`]. Its future is boxed here, once, so that functions stay
    /// plain `async fn`s. The body limit is [`DEFAULT_BODY_LIMIT`] until
    /// [`with_body_limit`](Self::with_body_limit) says otherwise.
    pub fn http<F, Fut, E>(
        name: &'static str,
        route: &'static str,
        methods: &'static [&'static str],
        run: F,
    ) -> Self
    where
        F: Fn(Arc<S>, HttpRequest) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<HttpResponse, E>> + Send + 'static,
        E: Failure,
    {
        let run: HttpFn<S> = Box::new(move |state, request| {
            Box::pin(run(state, request).map_err(|error| Box::new(error) as BoxFailure))
        });
        Self {
            name,
            trigger: ImplementedTrigger::Http {
                route,
                methods,
                body_limit: DEFAULT_BODY_LIMIT,
                run,
            },
        }
    }

    /// A timer function: any `async fn(Arc<S>, TimerInfo) -> Result<(), E>`, boxed here once.
    pub fn timer<F, Fut, E>(name: &'static str, run: F) -> Self
    where
        F: Fn(Arc<S>, TimerInfo) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), E>> + Send + 'static,
        E: Failure,
    {
        let run: TimerFn<S> = Box::new(move |state, timer| {
            Box::pin(run(state, timer).map_err(|error| Box::new(error) as BoxFailure))
        });
        Self {
            name,
            trigger: ImplementedTrigger::Timer { run },
        }
    }

    /// Sets the most body bytes an HTTP function accepts (a timer function has no body).
    #[must_use]
    pub fn with_body_limit(mut self, limit: usize) -> Self {
        if let ImplementedTrigger::Http { body_limit, .. } = &mut self.trigger {
            *body_limit = limit;
        }
        self
    }
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
        let parts = route_template::path_segments(path);
        for entry in &self.entries {
            let DeclaredTrigger::Http(http) = &entry.declared.trigger else {
                continue;
            };
            let Some(params) = http.route.matches_segments(&parts) else {
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
