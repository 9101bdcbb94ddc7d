//! The production transport trusts an extra CA only through SSL_CERT_FILE.
//!
//! reqwest 0.13 (rustls) verifies with rustls-platform-verifier, which on Linux loads roots with
//! rustls-native-certs, which reads SSL_CERT_FILE instead of the system store when it is set. The
//! roots are read on the first certificate check, once per set of roots (once per process in
//! production), never when a client is built. With that trust in place the test then drives
//! [`KeyVault`] over real TLS to a loopback vault double.
//! This file holds a single test because it changes the process environment.

mod clients_support;

use clients_support::{
    FakeCredential,
    tls::{TestPki, serve, serve_ok},
};
use handler::clients::{
    http::{AzureHttp, HttpSettings, build_reqwest_client_trusting},
    keyvault::KeyVault,
    tls::TrustRoots,
};
use managed_identity::error_chain::error_chain;
use std::sync::{
    Arc,
    atomic::{AtomicUsize, Ordering},
};

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

    let untrusting_roots = TrustRoots::new();
    let untrusting =
        build_reqwest_client_trusting(&HttpSettings::default(), &untrusting_roots).unwrap();
    assert!(
        !untrusting_roots.is_loaded(),
        "building a client reads no roots"
    );
    let refused = runtime.block_on(untrusting.get(&url).send());
    let error = refused.expect_err("the test CA is not a platform root");
    let chain = error_chain(&error);
    assert!(chain.to_lowercase().contains("certificate"), "{chain}");

    // SAFETY: as above; the runtime is single-threaded and idle between block_on calls.
    unsafe { std::env::set_var("SSL_CERT_FILE", dir.path().join("ca.pem")) };
    let trusting =
        build_reqwest_client_trusting(&HttpSettings::default(), &TrustRoots::new()).unwrap();
    let response = runtime.block_on(trusting.get(&url).send()).unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(runtime.block_on(response.text()).unwrap(), "ok");

    // The roots were read at the first client's first check: it still refuses.
    assert!(runtime.block_on(untrusting.get(&url).send()).is_err());

    runtime.block_on(redirects_and_encodings_are_left_alone(&pki, &trusting));
    runtime.block_on(key_vault_over_real_tls(&pki));
}

/// Redirects are not followed (a token must never follow one) and bodies are not decompressed
/// (the Blob SDK needs the bytes as stored).
async fn redirects_and_encodings_are_left_alone(pki: &TestPki, client: &reqwest::Client) {
    let responder = Arc::new(|head: &str| {
        if head.starts_with("GET /redirect ") {
            "HTTP/1.1 302 Found\r\nlocation: https://127.0.0.1:1/elsewhere\r\ncontent-length: 0\r\nconnection: close\r\n\r\n".to_string()
        } else {
            "HTTP/1.1 200 OK\r\ncontent-encoding: gzip\r\ncontent-length: 4\r\nconnection: close\r\n\r\nraw!".to_string()
        }
    });
    let addr = serve(pki, responder).await;
    let redirected = client
        .get(format!("https://{addr}/redirect"))
        .send()
        .await
        .unwrap();
    assert_eq!(redirected.status(), 302);
    let encoded = client
        .get(format!("https://{addr}/gz"))
        .send()
        .await
        .unwrap();
    assert_eq!(encoded.bytes().await.unwrap().as_ref(), b"raw!");
}

/// The whole production path (reqwest transport, rustls, SDK challenge handling, our single-flight
/// gate) against a loopback HTTPS vault double: 20 cold concurrent reads, one unauthenticated probe.
async fn key_vault_over_real_tls(pki: &TestPki) {
    let probes = Arc::new(AtomicUsize::new(0));
    let reads = Arc::new(AtomicUsize::new(0));
    let responder = {
        let (probes, reads) = (probes.clone(), reads.clone());
        Arc::new(move |head: &str| {
            if !head
                .to_ascii_lowercase()
                .contains("\r\nauthorization: bearer ")
            {
                probes.fetch_add(1, Ordering::SeqCst);
                let body = r#"{"error":{"code":"Unauthorized","message":"AKV10000: Request is missing a Bearer or PoP token."}}"#;
                return format!(
                    "HTTP/1.1 401 Unauthorized\r\nwww-authenticate: Bearer authorization=\"https://login.microsoftonline.com/t\", resource=\"https://vault.azure.net\"\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
            }
            reads.fetch_add(1, Ordering::SeqCst);
            let body = r#"{"value":"tls-secret","id":"https://127.0.0.1/secrets/db/0123456789abcdef0123456789abcdef"}"#;
            format!(
                "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            )
        })
    };
    let addr = serve(pki, responder).await;
    let http = AzureHttp::new(HttpSettings::default()).unwrap();
    let kv = KeyVault::new(&format!("https://{addr}/"), FakeCredential::new(), &http).unwrap();
    let calls = (0..20).map(|_| kv.get_secret("db", None));
    for result in futures::future::join_all(calls).await {
        assert_eq!(result.unwrap().value.expose(), "tls-secret");
    }
    assert_eq!(probes.load(Ordering::SeqCst), 1);
    assert_eq!(reads.load(Ordering::SeqCst), 20);
}
