//! handler
pub mod config;
