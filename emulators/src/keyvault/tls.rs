//! TLS server configuration from the PEM files given on the command line.

use std::path::Path;
use std::sync::Arc;

use rustls::ServerConfig;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use super::KeyVaultError;

/// Builds a rustls server config (aws-lc-rs, HTTP/1.1 ALPN) from a PEM chain and key.
pub fn server_config(cert: &Path, key: &Path) -> Result<Arc<ServerConfig>, KeyVaultError> {
    let cert_pem = read(cert)?;
    let key_pem = read(key)?;
    let chain = CertificateDer::pem_slice_iter(&cert_pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| KeyVaultError::Tls(format!("{}: {e}", cert.display())))?;
    if chain.is_empty() {
        return Err(KeyVaultError::Tls(format!(
            "{}: no certificate",
            cert.display()
        )));
    }
    let private_key = PrivateKeyDer::from_pem_slice(&key_pem)
        .map_err(|e| KeyVaultError::Tls(format!("{}: {e}", key.display())))?;
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| KeyVaultError::Tls(e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(chain, private_key)
        .map_err(|e| KeyVaultError::Tls(format!("certificate and key do not fit: {e}")))?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

fn read(path: &Path) -> Result<Vec<u8>, KeyVaultError> {
    std::fs::read(path)
        .map_err(|e| KeyVaultError::Tls(format!("cannot read {}: {e}", path.display())))
}
