//! The production transport trusts an extra CA only through SSL_CERT_FILE.
//!
//! reqwest 0.13 (rustls) verifies with rustls-platform-verifier, which on Linux loads roots with
//! rustls-native-certs, which reads SSL_CERT_FILE instead of the system store when it is set. The
//! roots are read on the first certificate check, once per set of roots (once per process in
//! production), never when a client is built. With that trust in place the test then drives
//! [`KeyVault`] over real TLS to a loopback vault double.
//! This file holds a single test because it changes the process environment.

use azure_core::http::{HttpClient as _, Method, Request, Url};
use handler::clients::{
    direct::DirectTransport,
    http::{AzureHttp, HttpSettings, build_reqwest_client_trusting},
    keyvault::KeyVault,
    tls::TrustRoots,
};
use managed_identity::error_chain::error_chain;
use test_kit::azure::FakeCredential;
use test_kit::handler::get;
use test_kit::pki::TestPki;
use test_kit::recorder::Reply;
use test_kit::server::FakeServer;

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
    let pki = TestPki::generate();
    let server = runtime.block_on(FakeServer::https(pki.dir(), |_| Reply::new(200).body("ok")));
    let url = format!("{}/", server.base);

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
    // The direct Key Vault transport verifies with the same roots, the same way.
    let direct = DirectTransport::new(&HttpSettings::default(), untrusting_roots.client_config());
    let request = Request::new(Url::parse(&url).unwrap(), Method::Get);
    let refused = runtime.block_on(direct.execute_request(&request));
    let chain = error_chain(&refused.expect_err("the test CA is not a platform root"));
    assert!(chain.to_lowercase().contains("certificate"), "{chain}");

    // SAFETY: as above; the runtime is single-threaded and idle between block_on calls.
    unsafe { std::env::set_var("SSL_CERT_FILE", &pki.ca_path) };
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
    let server = FakeServer::https(pki.dir(), |request| {
        if request.method == "GET" && request.path() == "/redirect" {
            Reply::new(302).header("location", "https://127.0.0.1:1/elsewhere")
        } else {
            Reply::new(200)
                .header("content-encoding", "gzip")
                .body("raw!")
        }
    })
    .await;
    let redirected = get(client, format!("{}/redirect", server.base)).await;
    assert_eq!(redirected.status(), 302);
    let encoded = get(client, format!("{}/gz", server.base)).await;
    assert_eq!(encoded.bytes().await.unwrap().as_ref(), b"raw!");
}

/// The whole production path (the direct transport a loopback vault gets, rustls, SDK challenge
/// handling, our single-flight gate) against a loopback HTTPS vault double: 20 cold concurrent reads, one unauthenticated probe.
async fn key_vault_over_real_tls(pki: &TestPki) {
    let server = FakeServer::https(pki.dir(), |request| {
        let bearer = request
            .header("authorization")
            .is_some_and(|value| value.to_ascii_lowercase().starts_with("bearer "));
        if !bearer {
            return Reply::json(
                401,
                &serde_json::json!({"error":{"code":"Unauthorized","message":"AKV10000: Request is missing a Bearer or PoP token."}}),
            )
            .header(
                "www-authenticate",
                "Bearer authorization=\"https://login.microsoftonline.com/t\", resource=\"https://vault.azure.net\"",
            );
        }
        Reply::json(
            200,
            &serde_json::json!({"value":"tls-secret","id":"https://127.0.0.1/secrets/db/0123456789abcdef0123456789abcdef"}),
        )
    })
    .await;
    let http = AzureHttp::new(HttpSettings::default()).unwrap();
    let kv = KeyVault::new(&format!("{}/", server.base), FakeCredential::new(), &http).unwrap();
    let calls = (0..20).map(|_| kv.get_secret("db", None));
    for result in futures::future::join_all(calls).await {
        assert_eq!(result.unwrap().value.expose(), "tls-secret");
    }
    let probes = server.recorder.unauthenticated_count();
    assert_eq!(probes, 1);
    assert_eq!(server.count() - probes, 20);
}
