//! TLS trust for every outbound HTTPS client, loaded off the start-up path.
//!
//! reqwest's own rustls set-up builds `rustls-platform-verifier` when a client is built, and on
//! Linux that reads every file of the system store (about 290 under /etc/ssl/certs) — or
//! `SSL_CERT_FILE` instead, when set. With four clients built at start-up that was most of a cold
//! start, and the host's readiness poll waited for it although no invocation had asked for TLS.
//!
//! Here the clients get a rustls configuration whose verifier loads the roots the first time a
//! certificate is checked (or when [`warm_up`] runs, in the background after the listener is
//! bound), once per process, and shares them. Trust is exactly the platform verifier's: the same
//! roots, the same `SSL_CERT_FILE` rule, certificate and host-name checks always on.

use std::fmt;
use std::sync::{Arc, OnceLock};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};

/// Roots loaded on first use. Clones share one load.
#[derive(Clone, Default)]
pub struct TrustRoots {
    loaded: Arc<OnceLock<Result<Arc<rustls_platform_verifier::Verifier>, String>>>,
}

impl fmt::Debug for TrustRoots {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TrustRoots")
            .field("loaded", &self.is_loaded())
            .finish()
    }
}

impl TrustRoots {
    /// Roots of their own, loaded when first needed (tests that change `SSL_CERT_FILE`).
    pub fn new() -> Self {
        Self::default()
    }

    /// The process's roots, shared by every client the handler builds.
    pub fn platform() -> &'static Self {
        static PLATFORM: OnceLock<TrustRoots> = OnceLock::new();
        PLATFORM.get_or_init(Self::new)
    }

    /// Whether the roots have been read (successfully or not).
    pub fn is_loaded(&self) -> bool {
        self.loaded.get().is_some()
    }

    /// Reads the roots now if nobody has yet; a caller racing a load waits for it.
    fn verifier(&self) -> Result<&Arc<rustls_platform_verifier::Verifier>, rustls::Error> {
        self.loaded
            .get_or_init(|| {
                rustls_platform_verifier::Verifier::new(provider())
                    .map(Arc::new)
                    .map_err(|e| e.to_string())
            })
            .as_ref()
            .map_err(|problem| {
                rustls::Error::General(format!(
                    "no trusted root certificates could be loaded (SSL_CERT_FILE, or the system store): {problem}"
                ))
            })
    }

    /// A rustls client configuration (TLS 1.2 and 1.3, HTTP/1.1 by ALPN) verifying with these
    /// roots. Cheap: nothing is read until a server's certificate is checked.
    pub fn client_config(&self) -> rustls::ClientConfig {
        let verifier = Arc::new(LazyVerifier {
            roots: self.clone(),
            provider: provider(),
        });
        // The process's provider: aws-lc-rs, the only one compiled in (reqwest picks it the same
        // way), with TLS 1.2 and 1.3.
        let mut config = rustls::ClientConfig::builder()
            .dangerous()
            .with_custom_certificate_verifier(verifier)
            .with_no_client_auth();
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        config
    }
}

/// The rustls configuration every production client uses (see the module docs).
pub fn client_config() -> rustls::ClientConfig {
    TrustRoots::platform().client_config()
}

/// How long after start-up the roots are loaded in the background: long enough that reading
/// ~290 files does not compete with the first readiness answers on a small machine, short next to
/// the host's own start-up before it sends the first invocation. An HTTPS call before then loads
/// them itself.
pub const WARM_UP_DELAY: std::time::Duration = std::time::Duration::from_millis(50);

/// Loads the process's roots on a blocking thread [`WARM_UP_DELAY`] from now. Call it on the
/// runtime, once the listener is bound.
pub fn warm_up_in_background() {
    tokio::spawn(async {
        tokio::time::sleep(WARM_UP_DELAY).await;
        let _ = tokio::task::spawn_blocking(warm_up).await;
    });
}

/// Loads the process's roots now, if nobody has yet.
pub fn warm_up() {
    if let Err(error) = TrustRoots::platform().verifier() {
        log::warn!("{error}; HTTPS calls will fail until this is fixed");
    }
}

fn provider() -> Arc<CryptoProvider> {
    CryptoProvider::get_default()
        .cloned()
        .unwrap_or_else(|| Arc::new(rustls::crypto::aws_lc_rs::default_provider()))
}

/// Delegates to the platform verifier, loading it on the first certificate to check.
#[derive(Debug)]
struct LazyVerifier {
    roots: TrustRoots,
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for LazyVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        self.roots.verifier()?.verify_server_cert(
            end_entity,
            intermediates,
            server_name,
            ocsp_response,
            now,
        )
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.roots
            .verifier()?
            .verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.roots
            .verifier()?
            .verify_tls13_signature(message, cert, dss)
    }

    /// Asked before any certificate arrives (for the ClientHello): the provider's schemes, which
    /// is what the platform verifier answers too, without loading anything.
    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn building_a_configuration_reads_no_roots() {
        let roots = TrustRoots::new();
        let config = roots.client_config();
        assert!(!roots.is_loaded());
        assert_eq!(config.alpn_protocols, [b"http/1.1".to_vec()]);
        let client = reqwest::Client::builder()
            .tls_backend_preconfigured(config)
            .build();
        assert!(client.is_ok());
        assert!(!roots.is_loaded());
    }

    #[test]
    fn roots_are_read_once_and_shared_by_clones() {
        let roots = TrustRoots::new();
        let clone = roots.clone();
        let _ = roots.verifier();
        assert!(roots.is_loaded() && clone.is_loaded());
        assert!(!TrustRoots::new().is_loaded());
    }
}
