//! `handler`: an Azure Functions custom handler that reaches Key Vault and Storage through a
//! managed identity, with no secret in any config.
//!
//! The data flows one way: the host's request is decoded, routed and dispatched by the
//! `custom_handler` runtime to a function in [`functions`] (paired with its function.json by the
//! runtime's registry), which calls a client that gets its token from the identity module;
//! [`error`] turns any failure of the app into a status and message in one place.

pub mod app;
pub mod auth;
pub mod clients;
pub mod config;
pub mod doctor;
pub mod error;
pub mod error_chain;
pub mod functions;
pub mod identity;
pub mod net;
pub mod token_command;
