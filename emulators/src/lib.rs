//! emulators

pub mod host;
