//! `handler`: an Azure Functions custom handler that reaches Key Vault and Storage through a
//! managed identity, with no secret in any config.
//!
//! The data flows one way: the host's request is decoded by [`contract`], routed by [`server`]
//! and [`dispatch`] to a function in [`functions`] (paired with its function.json by
//! [`registry`]), which calls a client that gets its token from the `managed_identity` crate; [`error`]
//! turns any failure into a status and message in one place.

pub mod app;
pub mod auth;
pub mod clients;
pub mod config;
pub mod contract;
pub mod dispatch;
pub mod doctor;
pub mod error;
pub mod functions;
pub mod http;
pub mod invocation;
pub mod logging;
pub mod net;
pub mod redact;
pub mod registry;
pub mod server;
pub mod token_command;
