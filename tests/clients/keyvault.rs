//! Key Vault client against a socket-free fake vault: challenge economy, error classification,
//! redaction, challenge-resource verification, validation and deadlines.

use azure_security_keyvault_secrets::{SecretClient, SecretClientOptions};
use test_kit::azure::{Action, FakeCredential, FakeService, TOKEN, assert_each_refused};
use test_kit::recorder::{Recorded, Reply};

use crate::fake_http;
use handler::clients::{
    CallError,
    http::HttpSettings,
    keyvault::{KeyVault, KeyVaultError, SECRETS_READER_ROLE},
};
use serde_json::json;
use std::{sync::Arc, time::Duration};

const VAULT: &str = "https://myvault.vault.azure.net/";
const VERSION: &str = "0123456789abcdef0123456789abcdef";
const SECRET_VALUE: &str = "hunter2-do-not-print";

fn challenge(resource: &str) -> Action {
    Action::Reply(
        Reply::new(401)
            .header(
                "www-authenticate",
                &format!(
                    r#"Bearer authorization="https://login.microsoftonline.com/tenant", resource="{resource}""#
                ),
            )
            .with_json(&json!({"error":{"code":"Unauthorized","message":"AKV10000: Request is missing a Bearer or PoP token."}})),
    )
}

fn error(status: u16, code: &str) -> Reply {
    Reply::new(status)
        .with_json(&json!({"error":{"code": code, "message": "fake service message"}}))
}

/// A fake vault: 401 challenge without a token, otherwise secrets by name, with a few names that
/// trigger the service's error answers.
fn vault_script(request: &Recorded) -> Action {
    if !request.is_authorized() {
        return challenge("https://vault.azure.net");
    }
    if request.header("authorization") != Some(&format!("Bearer {TOKEN}")) {
        return Action::Reply(error(401, "Unauthorized"));
    }
    let segments = request.path_segments();
    let name = segments.get(1).cloned().unwrap_or_default();
    let version = segments
        .get(2)
        .cloned()
        .unwrap_or_else(|| VERSION.to_string());
    let host = request.url().host_str().unwrap_or_default().to_string();
    Action::Reply(match name.as_str() {
        "forbidden" => Reply::new(403).with_json(&json!({"error":{"code":"Forbidden","message":"Caller is not authorized","innererror":{"code":"ForbiddenByRbac"}}})),
        "missing" => error(404, "SecretNotFound"),
        "throttled" => error(429, "Throttled").header("retry-after", "7"),
        "broken" => Reply::new(500).body(format!("<html>oops {SECRET_VALUE}</html>")),
        "hang" => return Action::Hang,
        _ => Reply::new(200).with_json(&json!({
            "value": SECRET_VALUE,
            "id": format!("https://{host}/secrets/{name}/{version}"),
            "contentType": "text/plain",
            "attributes": {"enabled": true}
        })),
    })
}

fn vault(fake: &FakeService, credential: &Arc<FakeCredential>) -> KeyVault {
    KeyVault::new(VAULT, credential.clone(), &fake_http(fake)).unwrap()
}

/// The scripted vault and a client of it with a fresh credential.
fn scripted() -> (FakeService, KeyVault) {
    let fake = FakeService::new(vault_script);
    let kv = vault(&fake, &FakeCredential::new());
    (fake, kv)
}

/// [`scripted`] after one read, with the recording cleared: the challenge is learned, so what is
/// recorded next is the calls under test alone.
async fn warmed_up() -> (FakeService, KeyVault) {
    let (fake, kv) = scripted();
    kv.get_secret("warm-up", None).await.unwrap();
    fake.clear();
    (fake, kv)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hundred_concurrent_cold_reads_pay_one_challenge() {
    let fake = FakeService::new(vault_script);
    let credential = FakeCredential::new();
    let kv = vault(&fake, &credential);

    let reads = (0..100).map(|i| {
        let kv = kv.clone();
        tokio::spawn(async move { kv.get_secret(&format!("app-{i}"), None).await })
    });
    let results = futures::future::join_all(reads).await;

    for result in results {
        let secret = result.unwrap().unwrap();
        assert_eq!(secret.value.expose(), SECRET_VALUE);
    }
    assert_eq!(
        fake.unauthenticated_count(),
        1,
        "exactly one challenge probe"
    );
    assert_eq!(fake.count(), 101, "one probe, then one request per read");
    assert_eq!(credential.calls(), 1);
    assert_eq!(
        credential.scopes(),
        vec!["https://vault.azure.net/.default"]
    );
}

/// Why the gate exists: the SDK client on its own sends a probe per concurrent cold call.
#[tokio::test]
async fn bare_sdk_client_probes_once_per_concurrent_cold_call() {
    let fake = FakeService::new(vault_script);
    let options = SecretClientOptions {
        client_options: fake_http(&fake).client_options(Vec::new()),
        ..Default::default()
    };
    let client = SecretClient::new(VAULT, FakeCredential::new(), Some(options)).unwrap();
    let reads = (0..10).map(|i| {
        let name = format!("app-{i}");
        let client = &client;
        async move { client.get_secret(&name, None).await }
    });
    for result in futures::future::join_all(reads).await {
        assert!(result.is_ok());
    }
    assert_eq!(fake.unauthenticated_count(), 10);
}

#[tokio::test]
async fn warm_client_sends_one_request_per_read() {
    let (fake, kv) = warmed_up().await;
    for name in ["a", "b", "c"] {
        kv.get_secret(name, None).await.unwrap();
    }
    assert_eq!(fake.count(), 3);
    assert_eq!(fake.unauthenticated_count(), 0);
}

#[tokio::test]
async fn clones_share_the_learned_challenge() {
    let (fake, kv) = scripted();
    kv.get_secret("first", None).await.unwrap();
    kv.clone().get_secret("second", None).await.unwrap();
    assert_eq!(fake.unauthenticated_count(), 1);
    assert_eq!(fake.count(), 3);
}

#[tokio::test]
async fn secret_carries_name_version_and_content_type() {
    let (fake, kv) = scripted();
    let secret = kv.get_secret("db-password", Some(VERSION)).await.unwrap();
    assert_eq!(secret.name, "db-password");
    assert_eq!(secret.version.as_deref(), Some(VERSION));
    assert_eq!(secret.content_type.as_deref(), Some("text/plain"));
    let last = fake.requests().pop().unwrap();
    assert_eq!(last.path_segments(), ["secrets", "db-password", VERSION]);
    assert!(last.query_param("api-version").is_some());
}

#[tokio::test]
async fn credential_failure_is_reported_and_the_next_call_needs_no_new_probe() {
    let fake = FakeService::new(vault_script);
    let credential = FakeCredential::failing(1);
    let kv = vault(&fake, &credential);

    let err = kv.get_secret("db", None).await.unwrap_err();
    let KeyVaultError::Call(CallError::Credential { message }) = &err else {
        panic!("expected a credential error, got {err:?}");
    };
    assert!(message.contains("managed identity endpoint unavailable"));
    assert_eq!(
        fake.count(),
        1,
        "the probe only; nothing sent without a token"
    );

    kv.get_secret("db", None).await.unwrap();
    assert_eq!(
        fake.unauthenticated_count(),
        1,
        "the challenge was learned by the first call"
    );
    assert_eq!(fake.count(), 2);
}

#[tokio::test]
async fn forbidden_names_the_role() {
    let (_, kv) = scripted();
    let err = kv.get_secret("forbidden", None).await.unwrap_err();
    assert!(
        matches!(&err, KeyVaultError::Call(CallError::Forbidden { target, code }) if target.name == "forbidden" && code == "Forbidden")
    );
    assert!(err.to_string().contains(SECRETS_READER_ROLE));
}

#[tokio::test]
async fn missing_secret_is_not_found() {
    let (_, kv) = scripted();
    let err = kv.get_secret("missing", None).await.unwrap_err();
    assert!(matches!(
        &err,
        KeyVaultError::Call(CallError::NotFound { target, .. })
            if target.name == "missing" && target.version.is_none()
    ));
}

#[tokio::test]
async fn throttling_returns_retry_after_without_retrying() {
    let (fake, kv) = warmed_up().await;
    let err = kv.get_secret("throttled", None).await.unwrap_err();
    assert!(matches!(
        err,
        KeyVaultError::Call(CallError::Throttled { retry_after: Some(d) }) if d == Duration::from_secs(7)
    ));
    assert_eq!(fake.count(), 1);
}

#[tokio::test]
async fn server_errors_are_retried_then_reported_without_the_body() {
    let (fake, kv) = warmed_up().await;
    let err = kv.get_secret("broken", None).await.unwrap_err();
    let KeyVaultError::Call(CallError::Upstream(detail)) = &err else {
        panic!("expected an upstream error, got {err:?}");
    };
    assert_eq!(detail.status, Some(500));
    assert_eq!(
        fake.count(),
        1 + HttpSettings::default().max_retries as usize
    );
    assert!(!err.to_string().contains(SECRET_VALUE));
    assert!(!format!("{err:?}").contains(SECRET_VALUE));
}

#[tokio::test]
async fn no_secret_value_or_token_in_debug_display_or_errors() {
    let (_, kv) = scripted();
    let secret = kv.get_secret("db", None).await.unwrap();
    for text in [
        format!("{secret:?}"),
        format!("{}", secret.value),
        format!("{:?}", secret.value),
        format!("{kv:?}"),
    ] {
        assert!(!text.contains(SECRET_VALUE), "{text}");
        assert!(!text.contains(TOKEN), "{text}");
    }
    for name in ["forbidden", "missing", "throttled", "broken"] {
        let err = kv.get_secret(name, None).await.unwrap_err();
        for text in [err.to_string(), format!("{err:?}")] {
            assert!(!text.contains(SECRET_VALUE), "{text}");
            assert!(!text.contains(TOKEN), "{text}");
        }
    }
}

#[tokio::test]
async fn challenge_for_another_domain_is_refused_before_any_token_is_fetched() {
    let fake = FakeService::new(vault_script);
    let credential = FakeCredential::new();
    let kv = KeyVault::new(
        "https://vault.evil.example/",
        credential.clone(),
        &fake_http(&fake),
    )
    .unwrap();
    assert!(kv.verifies_challenge_resource());
    let err = kv.get_secret("db", None).await.unwrap_err();
    assert!(
        matches!(&err, KeyVaultError::Call(CallError::Upstream(d)) if d.status.is_none()),
        "{err:?}"
    );
    assert!(
        err.to_string()
            .contains("doesn't match the requested domain"),
        "{err}"
    );
    assert_eq!(
        credential.calls(),
        0,
        "no token may be fetched for a foreign challenge"
    );
    assert!(fake.requests().iter().all(|r| !r.is_authorized()));
}

#[tokio::test]
async fn loopback_vault_skips_challenge_verification() {
    for url in [
        "https://127.0.0.1:8443/",
        "https://localhost:8443/",
        "https://[::1]:8443/",
    ] {
        let fake = FakeService::new(vault_script);
        let kv = KeyVault::new(url, FakeCredential::new(), &fake_http(&fake)).unwrap();
        assert!(!kv.verifies_challenge_resource());
        let secret = kv.get_secret("db", None).await.unwrap();
        assert_eq!(secret.value.expose(), SECRET_VALUE, "{url}");
    }
}

#[tokio::test]
async fn invalid_names_send_nothing() {
    let (fake, kv) = scripted();
    for name in ["", "../keys/x", "a/b", "db?x=1", "has space"] {
        let err = kv.get_secret(name, None).await.unwrap_err();
        assert!(matches!(err, KeyVaultError::InvalidName(_)), "{name}");
    }
    let err = kv.get_secret("db", Some("../../x")).await.unwrap_err();
    assert!(matches!(err, KeyVaultError::InvalidName(_)));
    assert_eq!(fake.count(), 0);
}

#[test]
fn vault_url_is_validated_at_construction() {
    let fake = FakeService::new(vault_script);
    let new = |url: &str| KeyVault::new(url, FakeCredential::new(), &fake_http(&fake));
    let bad = [
        "http://myvault.vault.azure.net/",
        "not a url",
        "https://v.vault.azure.net/secrets/x",
    ];
    assert_each_refused(&bad, new, |err| {
        matches!(err, KeyVaultError::InvalidVaultUrl(_))
    });
}

#[tokio::test(start_paused = true)]
async fn a_call_that_never_answers_times_out() {
    let (_, kv) = scripted();
    let err = kv.get_secret("hang", None).await.unwrap_err();
    assert!(
        matches!(err, KeyVaultError::Call(CallError::Timeout)),
        "{err:?}"
    );
}
