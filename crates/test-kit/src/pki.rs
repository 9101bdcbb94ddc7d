//! The one test PKI: a CA and a CA-signed leaf for 127.0.0.1, localhost, `*.vault.azure.net` and
//! `*.blob.core.windows.net` (rustls refuses a CA used as the end entity), made by the same
//! generator as `emulators pki`, in a temporary directory that lives as long as the value.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

/// `ca.pem`, `leaf.pem` and `leaf.key` in a temporary directory.
pub struct TestPki {
    dir: tempfile::TempDir,
    /// The CA certificate, PEM: what clients trust.
    pub ca_pem: String,
    /// Path of `ca.pem`.
    pub ca_path: PathBuf,
    /// Path of `leaf.pem`, the certificate servers present.
    pub cert_path: PathBuf,
    /// Path of `leaf.key` (PKCS#8 PEM).
    pub key_path: PathBuf,
}

impl TestPki {
    /// Fresh files in a fresh directory.
    pub fn generate() -> Self {
        let dir = tempfile::tempdir().expect("pki dir");
        let paths = emulators::pki::ensure_pki(dir.path()).expect("generate the test PKI");
        let ca_pem = std::fs::read_to_string(&paths.ca_cert).expect("read ca.pem");
        Self {
            ca_pem,
            ca_path: paths.ca_cert,
            cert_path: paths.leaf_cert,
            key_path: paths.leaf_key,
            dir,
        }
    }

    /// The directory holding the files.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// A rustls server configuration presenting the leaf.
    pub fn server_config(&self) -> rustls::ServerConfig {
        server_config(self.dir())
    }

    /// An HTTPS client that trusts only the test CA.
    pub fn client(&self) -> reqwest::Client {
        reqwest::Client::builder()
            .tls_certs_only([reqwest::Certificate::from_pem(self.ca_pem.as_bytes()).expect("CA")])
            .timeout(std::time::Duration::from_secs(30))
            .no_proxy()
            .build()
            .expect("https client")
    }
}

/// A rustls server configuration presenting `leaf.pem` with `leaf.key` from `pki_dir`.
pub fn server_config(pki_dir: &Path) -> rustls::ServerConfig {
    let chain: Vec<CertificateDer<'static>> =
        CertificateDer::pem_file_iter(pki_dir.join("leaf.pem"))
            .expect("read leaf.pem")
            .collect::<Result<_, _>>()
            .expect("parse leaf.pem");
    let key = PrivateKeyDer::from_pem_file(pki_dir.join("leaf.key")).expect("read leaf.key");
    rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("TLS versions")
    .with_no_client_auth()
    .with_single_cert(chain, key)
    .expect("leaf certificate and key")
}

/// A client that trusts the test CA at `ca` besides the platform's roots.
pub fn https_client(ca: &Path) -> reqwest::Client {
    let pem = std::fs::read(ca).expect("read the test CA");
    let certificate = reqwest::Certificate::from_pem(&pem).expect("parse the test CA");
    reqwest::Client::builder()
        .tls_certs_merge([certificate])
        .build()
        .expect("https client")
}
