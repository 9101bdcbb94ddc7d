//! GetSecret end to end: the real binary, the identity emulator and the Key Vault emulator
//! (which validates every token's signature, audience and expiry, and enforces access per identity).

use std::sync::Arc;

use serde_json::{Value, json};
use test_kit::handler::{RunningHandler, get_secret, http_output, http_payload};
use test_kit::stack::{FIRST_VERSION, Stack, set_env};

/// A stack, and the handler with every stack setting but `setting`.
async fn start_without(setting: &str) -> (Stack, RunningHandler) {
    let stack = Stack::start(false);
    let mut env = stack.handler_env();
    set_env(&mut env, setting, None);
    let handler = RunningHandler::start_in_repo(&env).await;
    (stack, handler)
}

/// The cache off: every read goes to the vault.
const NO_CACHE: &[(&str, &str)] = &[("SECRET_CACHE_SECONDS", "0")];

/// `n` concurrent reads of `name`; their envelopes.
async fn concurrent_reads(handler: &Arc<RunningHandler>, name: &str, n: usize) -> Vec<Value> {
    let reads = (0..n).map(|_| {
        let handler = handler.clone();
        let payload = get_secret(name, None);
        async move { handler.invoke("GetSecret", &payload).await }
    });
    futures::future::join_all(reads).await
}

fn age(envelope: &Value) -> Option<&str> {
    envelope["Outputs"]["res"]["headers"]["Age"].as_str()
}

async fn read_greeting(handler: &RunningHandler) -> (u16, Value) {
    read_secret(handler, "app-greeting", None).await
}

/// GetSecret of `name` (at `version` when given), read as its HTTP status and JSON body.
async fn read_secret(handler: &RunningHandler, name: &str, version: Option<&str>) -> (u16, Value) {
    handler
        .invoke_http("GetSecret", &get_secret(name, version))
        .await
}

fn message(body: &Value) -> &str {
    body["error"]["message"].as_str().unwrap_or_default()
}

/// Asserts that `answer` is a refusal with `status` whose message contains `needle`, and returns
/// its body for further checks.
fn refused((status, body): (u16, Value), expected: u16, needle: &str) -> Value {
    assert_eq!(status, expected, "{body}");
    assert!(message(&body).contains(needle), "{needle:?} not in {body}");
    body
}

/// [`refused`] applied to GetSecret of the latest version of `name`.
async fn refused_secret(
    handler: &RunningHandler,
    name: &str,
    expected: u16,
    needle: &str,
) -> Value {
    refused(read_secret(handler, name, None).await, expected, needle)
}

#[tokio::test]
async fn every_vault_request_is_named_by_the_invocation_that_made_it() {
    let (stack, handler) = Stack::start_with_handler(false, NO_CACHE).await;
    let ids = [
        "5b2f0c1e-8d3a-4c6f-9e41-0a7b3c9d2e15",
        "0f9e8d7c-6b5a-4948-8372-615049382716",
    ];
    for id in ids {
        let envelope = handler
            .invoke_as("GetSecret", &get_secret("app-greeting", None), id)
            .await;
        assert_eq!(http_output(&envelope).0, 200, "{envelope}");
    }
    let seen = stack.vault_client_request_ids().await;
    // The first read also carries the unauthenticated probe that learns the vault's challenge:
    // the same call, so the same id.
    let expected: Vec<Option<String>> = [ids[0], ids[0], ids[1]]
        .map(|id| Some(id.to_owned()))
        .to_vec();
    assert_eq!(seen, expected);
}

#[tokio::test]
async fn an_allowed_secret_is_read_with_its_version_and_never_cached_by_the_client() {
    let (_stack, handler) = Stack::start_with_handler(false, &[]).await;
    let envelope = handler
        .invoke("GetSecret", &get_secret("app-greeting", None))
        .await;
    let (status, body) = http_output(&envelope);
    assert_eq!(status, 200, "{envelope}");
    assert_eq!(body["name"], "app-greeting");
    assert_eq!(body["value"], "hello from the vault");
    assert_eq!(body["contentType"], "text/plain");
    assert_eq!(body["version"].as_str().unwrap().len(), 32);
    assert_eq!(
        envelope["Outputs"]["res"]["headers"]["Cache-Control"],
        "no-store"
    );
    assert!(
        !envelope["Logs"]
            .to_string()
            .contains("hello from the vault"),
        "the value must not be logged"
    );

    let (status, older) = handler
        .invoke_http(
            "GetSecret",
            &get_secret("app-greeting", Some(FIRST_VERSION)),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(older["value"], "first");
    assert_eq!(older["version"], FIRST_VERSION);
}

#[tokio::test]
async fn a_secret_outside_allowed_secrets_is_refused_before_any_call_to_key_vault() {
    let (stack, handler) = Stack::start_with_handler(false, &[]).await;
    refused_secret(&handler, "other-secret", 403, "ALLOWED_SECRETS").await;
    assert_eq!(stack.vault_requests().await, (0, 0));
}

#[tokio::test]
async fn with_allowed_secrets_unset_nothing_is_allowed_and_the_message_says_how_to_allow() {
    let (_stack, handler) = start_without("ALLOWED_SECRETS").await;
    refused(
        read_greeting(&handler).await,
        403,
        "ALLOWED_SECRETS is not set",
    );
}

#[tokio::test]
async fn a_secret_the_identity_has_no_role_for_is_403_naming_the_role() {
    let (_stack, handler) = Stack::start_with_handler(false, &[]).await;
    let body = refused_secret(&handler, "db-password", 403, "Key Vault Secrets User").await;
    assert!(!body.to_string().contains("s3cr3t"), "{body}");
}

#[tokio::test]
async fn a_missing_secret_is_404() {
    let (_stack, handler) = Stack::start_with_handler(false, &[]).await;
    refused_secret(&handler, "app-missing", 404, "app-missing").await;
}

#[tokio::test]
async fn bad_names_and_versions_are_400_before_any_call() {
    let (stack, handler) = Stack::start_with_handler(false, &[]).await;
    let too_long = "a".repeat(128);
    for (name, version) in [
        ("bad_name", None),
        ("app-é", None),
        (too_long.as_str(), None),
        ("app-greeting", Some("not-hex")),
    ] {
        let (status, body) = read_secret(&handler, name, version).await;
        assert_eq!(status, 400, "{name} {version:?}: {body}");
    }
    assert_eq!(stack.vault_requests().await, (0, 0));
}

#[tokio::test]
async fn throttling_answers_503_with_retry_after() {
    let (stack, handler) = Stack::start_with_handler(false, &[]).await;
    stack
        .fault(&stack.keyvault, json!({"status": 429, "retry_after": "2"}))
        .await;
    let envelope = handler
        .invoke("GetSecret", &get_secret("app-greeting", None))
        .await;
    let (status, _) = http_output(&envelope);
    assert_eq!(status, 503, "{envelope}");
    assert_eq!(envelope["Outputs"]["res"]["headers"]["Retry-After"], "2");
}

#[tokio::test]
async fn concurrent_cold_reads_pay_the_challenge_once_then_one_request_per_read() {
    let stack = Stack::start(false);
    let handler = Arc::new(stack.start_handler(NO_CACHE).await);
    let reads = (0..50).map(|_| {
        let handler = handler.clone();
        async move { read_greeting(&handler).await.0 }
    });
    let statuses = futures::future::join_all(reads).await;
    assert!(statuses.iter().all(|s| *s == 200), "{statuses:?}");
    assert_eq!(
        stack.vault_requests().await,
        (51, 1),
        "one challenge probe, then one request per read"
    );
    assert_eq!(stack.token_requests().await, 1);
}

#[tokio::test]
async fn a_token_that_runs_short_during_the_run_is_refreshed_and_the_call_succeeds() {
    let stack = Stack::start(false);
    // 302 s: usable for 2 s under the rule that no token is handed out with under 5 minutes left.
    stack
        .fault(&stack.identity, json!({"lifetime_secs": 302}))
        .await;
    let handler = stack.start_handler(NO_CACHE).await;
    let (status, _) = read_greeting(&handler).await;
    assert_eq!(status, 200);
    tokio::time::sleep(std::time::Duration::from_secs(3)).await;
    let (status, _) = read_greeting(&handler).await;
    assert_eq!(status, 200);
    assert_eq!(
        stack.token_requests().await,
        2,
        "the short-lived token was replaced"
    );
}

#[tokio::test]
async fn a_missing_setting_fails_only_the_functions_that_need_it() {
    let (_stack, handler) = start_without("KEY_VAULT_URL").await;
    refused(read_greeting(&handler).await, 500, "KEY_VAULT_URL");
    let token = http_payload("GET", "http://localhost:7071/api/token", json!({}), None);
    let (status, _) = handler.invoke_http("TokenInfo", &token).await;
    assert_eq!(status, 200, "the other functions keep serving");
}

#[tokio::test]
async fn concurrent_cold_misses_of_one_secret_make_one_vault_read() {
    let stack = Stack::start(false);
    let handler = Arc::new(stack.start_handler(&[]).await);
    let envelopes = concurrent_reads(&handler, "app-greeting", 50).await;
    for envelope in &envelopes {
        let (status, body) = http_output(envelope);
        assert_eq!(status, 200, "{envelope}");
        assert_eq!(body["value"], "hello from the vault");
    }
    assert_eq!(
        stack.vault_requests().await,
        (2, 1),
        "one challenge probe, then one read shared by all 50"
    );
}

#[tokio::test]
async fn warm_reads_within_the_ttl_are_served_from_memory_with_an_age() {
    let stack = Stack::start(false);
    let handler = Arc::new(stack.start_handler(&[]).await);
    let first = handler
        .invoke("GetSecret", &get_secret("app-greeting", None))
        .await;
    assert_eq!(http_output(&first).0, 200, "{first}");
    assert_eq!(age(&first), None, "a fresh read carries no Age");
    let after_first = stack.vault_requests().await;
    for envelope in concurrent_reads(&handler, "app-greeting", 100).await {
        let (status, body) = http_output(&envelope);
        assert_eq!(status, 200, "{envelope}");
        assert_eq!(body["value"], "hello from the vault");
        let seconds: u64 = age(&envelope)
            .expect("Age on a cached answer")
            .parse()
            .unwrap();
        assert!(seconds <= 60, "{envelope}");
        assert_eq!(
            envelope["Outputs"]["res"]["headers"]["Cache-Control"],
            "no-store"
        );
    }
    assert_eq!(
        stack.vault_requests().await,
        after_first,
        "no vault request"
    );
}

#[tokio::test]
async fn after_the_ttl_the_latest_version_is_read_again() {
    let (stack, handler) = Stack::start_with_handler(false, &[("SECRET_CACHE_SECONDS", "1")]).await;
    assert_eq!(read_greeting(&handler).await.0, 200);
    let (all, _) = stack.vault_requests().await;
    tokio::time::sleep(std::time::Duration::from_millis(1200)).await;
    let envelope = handler
        .invoke("GetSecret", &get_secret("app-greeting", None))
        .await;
    assert_eq!(http_output(&envelope).0, 200);
    assert_eq!(age(&envelope), None, "read from the vault again");
    assert_eq!(stack.vault_requests().await.0, all + 1);
}

#[tokio::test]
async fn a_version_pinned_read_is_cached_apart_from_the_latest() {
    let (stack, handler) = Stack::start_with_handler(false, &[]).await;
    let pinned = get_secret("app-greeting", Some(FIRST_VERSION));
    let (_, first) = handler.invoke_http("GetSecret", &pinned).await;
    assert_eq!(first["value"], "first");
    let (_, latest) = read_greeting(&handler).await;
    assert_eq!(latest["value"], "hello from the vault");
    let (all, _) = stack.vault_requests().await;
    let again = handler.invoke("GetSecret", &pinned).await;
    assert_eq!(http_output(&again).1["value"], "first");
    assert!(age(&again).is_some(), "{again}");
    assert_eq!(stack.vault_requests().await.0, all);
}

#[tokio::test]
async fn refusals_and_misses_are_never_cached() {
    let (stack, handler) = Stack::start_with_handler(false, &[]).await;
    for (name, status) in [("app-missing", 404), ("db-password", 403)] {
        let (before, _) = stack.vault_requests().await;
        for _ in 0..2 {
            let (got, _) = read_secret(&handler, name, None).await;
            assert_eq!(got, status, "{name}");
        }
        let (after, _) = stack.vault_requests().await;
        assert!(after >= before + 2, "{name}: both calls asked the vault");
    }
    stack
        .fault(&stack.keyvault, json!({"status": 429, "retry_after": "1"}))
        .await;
    assert_eq!(read_greeting(&handler).await.0, 503);
    let envelope = handler
        .invoke("GetSecret", &get_secret("app-greeting", None))
        .await;
    assert_eq!(
        http_output(&envelope).0,
        200,
        "the throttled answer was not kept"
    );
    assert_eq!(age(&envelope), None);
}

#[tokio::test]
async fn zero_turns_the_cache_off() {
    let (stack, handler) = Stack::start_with_handler(false, NO_CACHE).await;
    for _ in 0..3 {
        let envelope = handler
            .invoke("GetSecret", &get_secret("app-greeting", None))
            .await;
        assert_eq!(http_output(&envelope).0, 200);
        assert_eq!(age(&envelope), None);
    }
    assert_eq!(
        stack.vault_requests().await,
        (4, 1),
        "a probe, then 3 reads"
    );
}

#[tokio::test]
async fn a_bad_cache_setting_fails_get_secret_naming_it() {
    let (stack, handler) =
        Stack::start_with_handler(false, &[("SECRET_CACHE_SECONDS", "ten")]).await;
    refused(read_greeting(&handler).await, 500, "SECRET_CACHE_SECONDS");
    assert_eq!(stack.vault_requests().await, (0, 0));
}
