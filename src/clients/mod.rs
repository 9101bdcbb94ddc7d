//! Clients for the Azure services the functions call, on the official Azure SDK for Rust:
//! Key Vault secrets ([`keyvault`]) and Blob Storage ([`blob`]), and the downstream API CallApi calls
//! ([`downstream`], plain reqwest: it is not an Azure service).
//!
//! Both are built once at start-up from validated URLs, one shared transport ([`http::AzureHttp`])
//! and any `Arc<dyn TokenCredential>` (the managed identity in production, fakes in tests). Errors
//! are typed per service, share [`CallError`] for what any service call can end in, and never
//! carry a token or a secret value.
#![deny(missing_docs)]

pub mod blob;
pub mod direct;
pub mod downstream;
mod failure;
pub mod http;
pub mod keyvault;
pub mod names;
pub mod request_id;
pub mod secret_cache;
pub mod tls;

pub use failure::{CallError, CallTarget, UpstreamDetail};
