//! The one test kit of the workspace, shared by the handler's integration tests and the
//! emulators' own tests, so that no test file carries a copy of a helper.
//!
//! - [`recorder`]: the one request recorder ([`recorder::Recorded`], [`recorder::Recorder`]) and
//!   the scripted answer ([`recorder::Reply`]) every fake below shares;
//! - [`server`]: a recording fake HTTP/HTTPS server on 127.0.0.1, and an in-memory Storage account;
//! - [`azure`]: the same recorder behind azure_core's `HttpClient`, and a counting credential;
//! - [`pki`]: the test CA and leaf (the emulators' own generator) and an HTTPS server config;
//! - [`jwt`]: RSA keys generated at test time, JWKS documents and token minting;
//! - [`logs`]: every log line of the test process, to prove no secret is logged;
//! - [`emulator`]: an `emulators` subcommand started and read until its ready line;
//! - [`stack`]: the local stack (identity, Key Vault, Azurite) and the settings that reach it;
//! - [`handler`]: the `handler` binary started as the Functions host starts it, and requests
//!   shaped the way the host sends them.
//!
//! It never links `handler`'s library: tests that test the library import it themselves.

pub mod attacks;
pub mod azure;
pub mod emulator;
pub mod handler;
pub mod jwt;
pub mod logs;
pub mod pki;
pub mod recorder;
pub mod server;
pub mod stack;
