//! The app end to end: the runtime in process with functions of the test's own, the real binary
//! started as the host starts it, and each function against the emulators (Key Vault, Storage,
//! identity, service to service), directly or through the host emulator. One module per area.

mod binary;
mod blob_e2e;
mod host_e2e;
mod identity_e2e;
mod keyvault_e2e;
mod runtime;
mod service_to_service_e2e;
