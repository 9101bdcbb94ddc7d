//! What several areas of the emulators' tests share, beside the workspace's test kit.

pub mod host;
pub mod identity;
pub mod keyvault;
pub mod reference;
