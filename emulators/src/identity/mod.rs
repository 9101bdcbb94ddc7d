//! The managed-identity endpoint emulator (`emulators identity`).
//!
//! ```text
//! emulators identity --config FILE [--port N] [--header-secret S]
//! ```
//! Plain HTTP on 127.0.0.1 (like the real App Service endpoint). Ready line:
//! `{"ready":"http://127.0.0.1:P","header_secret":"…","tenant_id":"…"}`. The header secret comes
//! from `--header-secret`, else the config's `header_secret`, else a random value.
//!
//! Serves, on one listener:
//! - the token protocols App Service 2019, legacy 2017 / Azure ML and IMDS ([`protocol`]), with
//!   RS256 tokens shaped like AAD v1 managed-identity tokens ([`token`]);
//! - an OpenID authority with discovery documents and JWKS ([`authority`]);
//! - test controls under `/_emulator/` ([`admin`]), including fault rules ([`rules`]).
//!
//! Configuration: [`config`]. Each token request is logged as protocol, resource, selector and
//! status; token values and the header secret are never logged.

pub mod admin;
pub mod authority;
pub mod config;
pub mod protocol;
pub mod rules;
pub mod server;
pub mod token;

use std::path::PathBuf;
use std::sync::Arc;

use log::info;

use crate::jwt::{JwtError, KeyRing, b64url};
use crate::serve::{self, ServeError};
use config::{Config, ConfigError};
use server::IdentityEmulator;

/// Command-line options of `emulators identity`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Options {
    /// The JSON configuration file.
    pub config: PathBuf,
    /// Port on 127.0.0.1; 0 = ephemeral.
    pub port: u16,
    /// Secret header value; overrides the config file.
    pub header_secret: Option<String>,
}

impl Options {
    /// Parses `--config FILE [--port N] [--header-secret S]`.
    pub fn parse(args: &[String]) -> Result<Self, String> {
        let mut config = None;
        let mut port = 0u16;
        let mut header_secret = None;
        let mut rest = args.iter();
        while let Some(flag) = rest.next() {
            let mut value = || rest.next().ok_or_else(|| format!("{flag} needs a value"));
            match flag.as_str() {
                "--config" => config = Some(PathBuf::from(value()?)),
                "--port" => {
                    port = value()?
                        .parse()
                        .map_err(|_| "--port needs a number 0-65535".to_string())?
                }
                "--header-secret" => header_secret = Some(non_empty(value()?, flag)?),
                other => return Err(format!("identity: unknown flag `{other}`")),
            }
        }
        let config = config.ok_or("identity needs --config FILE")?;
        Ok(Self {
            config,
            port,
            header_secret,
        })
    }
}

fn non_empty(value: &str, flag: &str) -> Result<String, String> {
    if value.is_empty() {
        Err(format!("{flag} must not be empty"))
    } else {
        Ok(value.to_string())
    }
}

/// Why the emulator could not start.
#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    /// The configuration file was refused.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// Binding, TLS or stdout failed.
    #[error(transparent)]
    Serve(#[from] ServeError),
    /// The signing key could not be made.
    #[error(transparent)]
    Jwt(#[from] JwtError),
    /// No random secret could be generated.
    #[error("cannot generate a random header secret")]
    Random,
}

/// Starts the emulator and serves until SIGTERM/SIGINT.
pub async fn run(options: Options) -> Result<(), IdentityError> {
    serve::init_logging();
    let config = Config::load(&options.config)?;
    let secret = match options
        .header_secret
        .or_else(|| config.header_secret.clone())
    {
        Some(secret) => secret,
        None => random_secret()?,
    };
    let keys = KeyRing::generate()?;
    let listener = serve::bind_loopback(options.port).await?;
    let base_url = serve::base_url(&listener, false)?;
    let tenant_id = config.tenant_id.clone();
    let emulator = Arc::new(IdentityEmulator::new(
        config,
        secret.clone(),
        base_url.clone(),
        keys,
    ));
    let mut extra = serde_json::Map::new();
    extra.insert("header_secret".into(), secret.into());
    extra.insert("tenant_id".into(), tenant_id.into());
    serve::announce_ready(&base_url, extra)?;
    info!("identity emulator listening on {base_url}");
    serve::serve(listener, None, emulator).await?;
    Ok(())
}

/// 32 random bytes, base64url: the default header secret.
fn random_secret() -> Result<String, IdentityError> {
    let mut bytes = [0u8; 32];
    aws_lc_rs::rand::fill(&mut bytes).map_err(|_| IdentityError::Random)?;
    Ok(b64url(&bytes))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::args;

    #[test]
    fn parses_flags_and_reports_usage_errors() {
        let parsed = Options::parse(&args(&[
            "--config",
            "c.json",
            "--port",
            "0",
            "--header-secret",
            "s",
        ]))
        .unwrap();
        assert_eq!(parsed.config, PathBuf::from("c.json"));
        assert_eq!(parsed.header_secret.as_deref(), Some("s"));
        assert!(
            Options::parse(&args(&["--port", "0"]))
                .unwrap_err()
                .contains("--config")
        );
        assert!(
            Options::parse(&args(&["--config"]))
                .unwrap_err()
                .contains("needs a value")
        );
        assert!(Options::parse(&args(&["--config", "c", "--port", "x"])).is_err());
        assert!(
            Options::parse(&args(&["--config", "c", "--verbose"]))
                .unwrap_err()
                .contains("unknown flag")
        );
    }
}
