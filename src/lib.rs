//! handler
pub mod config;
pub mod identity;
