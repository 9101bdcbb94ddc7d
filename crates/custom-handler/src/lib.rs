//! A runtime for [Azure Functions custom handlers]: the small web server the Functions host
//! starts beside itself and calls for every invocation.
//!
//! The function folders' `function.json` files stay the single source of truth: the
//! [`registry`] reads them and pairs each with the code that implements it, saying where the
//! two disagree. The [`server`] answers the host's readiness poll, JSON-mode invocations
//! (`POST /{FunctionName}` with the host's envelope, decoded by [`contract`]) and forwarded
//! requests (`enableForwardingHttpRequest`, routed by the declared route templates), holding
//! each to limits (connections, in-flight invocations, header and body timeouts, body size).
//! [`dispatch`] runs the function inside its invocation's scope ([`invocation`]), so its log
//! lines ([`logging`]) reach the host's invocation log, under host.json's `functionTimeout`,
//! and a panic fails only that invocation.
//!
//! Functions are plain `async fn`s taking the app's state and an [`HttpRequest`] (or a
//! [`TimerInfo`](contract::TimerInfo)); their error type implements [`Failure`], which says the
//! status, code and headers the caller gets, as a handler's return type implements axum's
//! `IntoResponse`. The runtime's own failures are [`RuntimeError`].
//!
//! ```no_run
//! use std::fmt;
//! use std::path::Path;
//! use std::sync::Arc;
//!
//! use custom_handler::registry::{Implemented, Registry, load_declared, load_host_options};
//! use custom_handler::{Failure, HttpRequest, HttpResponse, Runtime};
//!
//! /// What every invocation shares.
//! struct App {
//!     greeting: String,
//! }
//!
//! /// The one way `Hello` fails.
//! struct NoName;
//!
//! impl fmt::Display for NoName {
//!     fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
//!         f.write_str("say who to greet: /api/hello/{name}")
//!     }
//! }
//!
//! impl Failure for NoName {
//!     fn status(&self) -> u16 {
//!         400
//!     }
//!     fn code(&self) -> &str {
//!         "BadRequest"
//!     }
//! }
//!
//! /// `Hello/function.json` declares an httpTrigger with route `hello/{name}`, method GET.
//! async fn hello(app: Arc<App>, request: HttpRequest) -> Result<HttpResponse, NoName> {
//!     let name = request.param("name").ok_or(NoName)?;
//!     Ok(HttpResponse::new(200, "text/plain", format!("{}, {name}", app.greeting)))
//! }
//!
//! #[tokio::main]
//! async fn main() -> Result<(), Box<dyn std::error::Error>> {
//!     let root = Path::new(".");
//!     let (declared, _broken) = load_declared(root)?;
//!     let implemented = vec![Implemented::http("Hello", "hello/{name}", &["GET"], hello)];
//!     let registry = Registry::new(declared, implemented);
//!     let app = Arc::new(App { greeting: "Hello".into() });
//!     let runtime = Runtime::new(app, registry, load_host_options(root)?);
//!     let port: u16 = std::env::var("FUNCTIONS_CUSTOMHANDLER_PORT")?.parse()?;
//!     let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
//!     let shutdown = async {
//!         let _ = tokio::signal::ctrl_c().await;
//!     };
//!     custom_handler::server::run(listener, Arc::new(runtime), shutdown).await;
//!     Ok(())
//! }
//! ```
//!
//! The crate knows nothing of any Azure service: what a function reaches is the app's business.
//!
//! [Azure Functions custom handlers]: https://learn.microsoft.com/azure/azure-functions/functions-custom-handlers

pub mod contract;
pub mod dispatch;
pub mod escaped;
pub mod failure;
pub mod http;
pub mod invocation;
pub mod logging;
pub mod redact;
pub mod registry;
pub mod server;
pub mod stdout_batch;

pub use dispatch::Runtime;
pub use failure::{BoxFailure, Failure, RuntimeError};
pub use http::{HttpRequest, HttpResponse};
pub use registry::{Implemented, Registry, RuntimeOptions};
pub use server::Limits;
