//! Key Vault secrets emulator: an HTTPS stand-in for the Azure Key Vault data plane
//! (`/secrets/...`), close enough to the real service that the official Python and Rust
//! clients run against it unchanged. What it does and why:
//! docs/emulators.md, 'The Key Vault emulator'.
//!
//! # Command line
//! ```text
//! emulators keyvault --port 0 --cert leaf.pem --key leaf.key --jwks-url URL --config FILE
//! ```
//! * `--port` (default 0 = ephemeral) is bound on 127.0.0.1 only.
//! * `--cert` is the PEM certificate chain (leaf first), `--key` its PKCS#8/PKCS#1/SEC1 PEM key.
//! * `--jwks-url` is where signing keys are fetched, e.g. the identity emulator's
//!   `<base>/{tenant}/discovery/v2.0/keys` (http or https, 5 s timeout).
//! * `--config` is the JSON file described below.
//!
//! As soon as it listens it prints `{"ready":"https://127.0.0.1:P"}` as the first stdout line.
//! Request logs follow on stdout (method, path, status, caller oid — never values or tokens).
//!
//! # Config file
//! ```json
//! {
//!   "tenant_id": "72f988bf-86f1-41af-91ab-2d7cd011db47",
//!   "secrets": {
//!     "demo-secret": [
//!       {"value": "old", "version": "0123456789abcdef0123456789abcdef"},
//!       {"value": "current", "contentType": "text/plain", "tags": {"env": "test"}}
//!     ]
//!   },
//!   "access": {
//!     "<object id>": {"get": ["demo-secret", "app-*"], "set": ["*"], "list": ["demo-secret"]},
//!     "*": {"get": ["public-*"]}
//!   }
//! }
//! ```
//! * `tenant_id` (required) is used in the challenge (`authorization="https://login.microsoftonline.com/<tenant>"`)
//!   and for the issuer check: `iss` must be `https://sts.windows.net/<tenant>/` (AAD v1) or
//!   `https://login.microsoftonline.com/<tenant>/v2.0` (AAD v2).
//! * `secrets` seeds the store. Each name maps to its versions, oldest first; the last is the
//!   latest. `version` (32 hex) is optional and random when omitted; `contentType` and `tags` are optional.
//! * `access` grants per caller object id (the token's `oid` claim); the key `"*"` applies to every
//!   authenticated caller. Permissions: `get` (read a value, latest or by version), `set` (PUT),
//!   `list` (`GET /secrets/{name}/versions`). A pattern is an exact name (case-insensitive), a prefix
//!   ending in `*`, or `*` for all. Anything not granted answers 403 `ForbiddenByRbac`.
//!
//! # Secrets API (any `api-version`, but one must be present)
//! * `GET /secrets/{name}` and `GET /secrets/{name}/` — latest version.
//! * `GET /secrets/{name}/{version}` — one version.
//! * `GET /secrets/{name}/versions` — `{"value":[{id, attributes, tags, contentType?}], "nextLink":null}`.
//! * `PUT /secrets/{name}` with `{"value", "contentType"?, "tags"?}` — creates a new 32-hex version.
//!
//! Without `Authorization: Bearer`, every request gets 401 with the Key Vault challenge
//! `WWW-Authenticate: Bearer authorization="…/<tenant>", resource="https://vault.azure.net"`.
//! A token must be RS256, signed by a key from the JWKS, have `aud` `https://vault.azure.net`
//! (with or without trailing slash), the tenant's issuer, and valid `exp`/`nbf` (60 s skew).
//!
//! # Admin API (no authentication, same listener)
//! * `GET /_emulator/requests` → `{"count":N,"unauthenticated":M,"requests":[{"method","path","authenticated","status","api_version"}]}`.
//! * `DELETE /_emulator/requests` resets that log (204).
//! * `POST /_emulator/faults` with `{"status":429,"retry_after":"1","times":2,"body":{...}?}` queues a
//!   fault; faults apply FIFO to the next authenticated secret requests → `{"pending":N}`.
//!   `"delay_ms":N` (at most 60 000) answers late — with only a delay, the normal answer comes
//!   late (a slow vault); `"reset":true` closes the connection without any answer.
//! * `DELETE /_emulator/faults` drops every queued fault (204).

mod admin;
mod api;
mod auth;
mod config;
mod server;
mod store;
mod tls;

use std::path::PathBuf;

pub use config::{AccessRules, Permission, SeedVersion, VaultConfig};

/// Parsed command-line flags of `emulators keyvault`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyVaultArgs {
    /// Port on 127.0.0.1; 0 picks an ephemeral one.
    pub port: u16,
    /// PEM certificate chain served to clients (leaf first).
    pub cert: PathBuf,
    /// PEM private key of the leaf certificate.
    pub key: PathBuf,
    /// URL of the JWKS that signs accepted tokens.
    pub jwks_url: String,
    /// JSON config file (tenant, seeded secrets, access rules).
    pub config: PathBuf,
}

/// Everything that stops the emulator from starting; each variant says which input is wrong.
#[derive(Debug, thiserror::Error)]
pub enum KeyVaultError {
    /// Bad or missing command-line flag.
    #[error("usage: {0}\n{USAGE}")]
    Usage(String),
    /// The config file cannot be read or is invalid.
    #[error("config: {0}")]
    Config(String),
    /// The certificate or key cannot be loaded.
    #[error("tls: {0}")]
    Tls(String),
    /// Binding or serving failed.
    #[error("io: {0}")]
    Io(#[from] std::io::Error),
}

/// One-line usage text shown with flag errors.
pub const USAGE: &str =
    "emulators keyvault [--port N] --cert LEAF.pem --key LEAF.key --jwks-url URL --config FILE";

/// Parses the flags that follow the `keyvault` subcommand (`--flag value` or `--flag=value`).
pub fn parse_args(args: &[String]) -> Result<KeyVaultArgs, KeyVaultError> {
    let mut port = 0u16;
    let (mut cert, mut key, mut jwks_url, mut config) = (None, None, None, None);
    let mut rest = args.iter();
    while let Some(arg) = rest.next() {
        let (flag, inline) = match arg.split_once('=') {
            Some((flag, value)) => (flag, Some(value.to_string())),
            None => (arg.as_str(), None),
        };
        let mut value = || {
            inline
                .clone()
                .or_else(|| rest.next().cloned())
                .ok_or_else(|| KeyVaultError::Usage(format!("{flag} needs a value")))
        };
        match flag {
            "--port" => {
                port = value()?
                    .parse()
                    .map_err(|_| KeyVaultError::Usage("--port must be 0-65535".into()))?
            }
            "--cert" => cert = Some(PathBuf::from(value()?)),
            "--key" => key = Some(PathBuf::from(value()?)),
            "--jwks-url" => jwks_url = Some(value()?),
            "--config" => config = Some(PathBuf::from(value()?)),
            other => return Err(KeyVaultError::Usage(format!("unknown argument {other}"))),
        }
    }
    let missing = |name: &str| KeyVaultError::Usage(format!("{name} is required"));
    Ok(KeyVaultArgs {
        port,
        cert: cert.ok_or_else(|| missing("--cert"))?,
        key: key.ok_or_else(|| missing("--key"))?,
        jwks_url: jwks_url.ok_or_else(|| missing("--jwks-url"))?,
        config: config.ok_or_else(|| missing("--config"))?,
    })
}

/// Loads config and TLS material, listens on 127.0.0.1, prints the ready line and serves
/// until SIGTERM/SIGINT.
pub async fn run(args: KeyVaultArgs) -> Result<(), KeyVaultError> {
    let config = VaultConfig::load(&args.config)?;
    let tls = tls::server_config(&args.cert, &args.key)?;
    let jwks_url = url::Url::parse(&args.jwks_url)
        .map_err(|e| KeyVaultError::Usage(format!("--jwks-url is not a URL: {e}")))?;
    server::serve(args.port, tls, config, jwks_url).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::args;

    #[test]
    fn parses_all_flags_in_both_forms() {
        let parsed = parse_args(&args(&[
            "--port=8443",
            "--cert",
            "c.pem",
            "--key",
            "k.pem",
            "--jwks-url",
            "http://127.0.0.1:1/keys",
            "--config=cfg.json",
        ]))
        .unwrap();
        assert_eq!(parsed.port, 8443);
        assert_eq!(parsed.cert, PathBuf::from("c.pem"));
        assert_eq!(parsed.key, PathBuf::from("k.pem"));
        assert_eq!(parsed.jwks_url, "http://127.0.0.1:1/keys");
        assert_eq!(parsed.config, PathBuf::from("cfg.json"));
    }

    #[test]
    fn rejects_missing_unknown_and_bad_flags() {
        assert!(parse_args(&args(&["--cert", "c"])).is_err());
        assert!(parse_args(&args(&["--bogus", "1"])).is_err());
        assert!(parse_args(&args(&["--port", "99999"])).is_err());
        assert!(parse_args(&args(&["--port"])).is_err());
    }
}
