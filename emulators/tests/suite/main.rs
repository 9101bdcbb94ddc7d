//! The emulators as their clients see them: the Functions host, the identity endpoint and
//! authority, Key Vault, the PKI command, the official reference clients, and the emulators' own
//! boundaries replayed as attacks. One module per area; `support` holds what several share.

mod host;
mod identity;
mod identity_authority;
mod identity_faults;
mod keyvault;
mod keyvault_reference;
mod pki_cli;
mod reference_clients;
mod security;
mod support;
