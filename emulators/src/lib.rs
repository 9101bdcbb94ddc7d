//! Local stand-ins for the Azure services the handler talks to, used by tests and the local stack.
//!
//! One binary (`emulators`) with a subcommand per emulator; this library holds their code so that
//! integration tests and other emulators can reuse the pieces (PKI, JWT signing, serving helpers).
//! Nothing here is linked into the `handler` binary.

pub mod host;
pub mod identity;
pub mod jwt;
pub mod keyvault;
pub mod loopback;
pub mod pki;
pub mod serve;

/// Helpers the unit tests of several modules share.
#[cfg(test)]
mod test_support {
    /// A command line as `std::env::args` gives it, from string literals.
    pub fn args(items: &[&str]) -> Vec<String> {
        items.iter().map(|s| s.to_string()).collect()
    }
}
