//! handler
pub mod clients;
pub mod config;
