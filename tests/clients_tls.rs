//! The production transport trusts an extra CA only through SSL_CERT_FILE.
//!
//! reqwest 0.13 (rustls) verifies with rustls-platform-verifier, which on Linux loads roots with
//! rustls-native-certs, which reads SSL_CERT_FILE instead of the system store when it is set. This
//! file holds a single test because it changes the process environment.

mod clients_support;

use clients_support::tls::{TestPki, serve_ok};
use handler::clients::http::{HttpSettings, build_reqwest_client};

#[test]
fn ssl_cert_file_is_the_way_to_trust_the_emulator_ca() {
    // SAFETY: the only test in this binary, run before any runtime or client thread exists.
    unsafe {
        std::env::remove_var("SSL_CERT_FILE");
        std::env::remove_var("SSL_CERT_DIR");
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let _context = runtime.enter();
    let pki = TestPki::new();
    let dir = tempfile::tempdir().unwrap();
    pki.write_to(dir.path());
    let addr = runtime.block_on(serve_ok(&pki));
    let url = format!("https://{addr}/");

    let untrusting = build_reqwest_client(&HttpSettings::default()).unwrap();
    let refused = runtime.block_on(untrusting.get(&url).send());
    let error = refused.expect_err("the test CA is not a platform root");
    let chain = error_chain(&error);
    assert!(chain.to_lowercase().contains("certificate"), "{chain}");

    // SAFETY: as above; the runtime is single-threaded and idle between block_on calls.
    unsafe { std::env::set_var("SSL_CERT_FILE", dir.path().join("ca.pem")) };
    let trusting = build_reqwest_client(&HttpSettings::default()).unwrap();
    let response = runtime.block_on(trusting.get(&url).send()).unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(runtime.block_on(response.text()).unwrap(), "ok");

    // The roots are read when the client is built: the first client still refuses.
    assert!(runtime.block_on(untrusting.get(&url).send()).is_err());
}

fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(inner) = source {
        text.push_str(": ");
        text.push_str(&inner.to_string());
        source = inner.source();
    }
    text
}
