//! emulators
pub mod keyvault;
