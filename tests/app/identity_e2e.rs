//! The identity module end to end: the real `handler` binary, spoken to as the host speaks,
//! getting its tokens from the identity emulator over the App Service protocol.

use std::process::Command;
use std::sync::Arc;

use serde_json::{Value, json};
use test_kit::handler::{handler_binary, http_output, timer_payload, token_info};
use test_kit::stack::{READER_CLIENT_ID, READER_OID, SYSTEM_OID, Stack};

#[tokio::test]
async fn two_hundred_concurrent_cold_invocations_make_one_endpoint_request() {
    let stack = Stack::start(false);
    // Above the default in-flight cap (64), which would answer some of them 503.
    let handler = Arc::new(
        stack
            .start_handler(&[("MAX_CONCURRENT_INVOCATIONS", "200")])
            .await,
    );
    let calls = (0..200).map(|_| {
        let handler = handler.clone();
        async move { handler.invoke("TokenInfo", &token_info(json!({}))).await }
    });
    for envelope in futures::future::join_all(calls).await {
        let (status, body) = http_output(&envelope);
        assert_eq!(status, 200, "{envelope}");
        assert_eq!(body["claims"]["aud"], "https://vault.azure.net");
        assert_eq!(body["claims"]["oid"], SYSTEM_OID);
        assert!(
            body.get("access_token").is_none(),
            "TokenInfo must never answer the token"
        );
    }
    assert_eq!(stack.token_requests().await, 1);
}

#[tokio::test]
async fn a_scope_and_its_resource_share_one_cached_token_and_other_resources_get_their_own() {
    let (stack, handler) = Stack::start_with_handler(false, &[]).await;
    for resource in [
        "https://storage.azure.com",
        "https://storage.azure.com/.default",
        "https://vault.azure.net",
    ] {
        let (status, body) = handler.token_info(json!({"resource": resource})).await;
        assert_eq!(status, 200);
        assert_eq!(body["resource"], resource.trim_end_matches("/.default"));
    }
    assert_eq!(stack.token_requests().await, 2);
}

#[tokio::test]
async fn a_user_assigned_identity_can_be_the_default_or_named_per_call() {
    let (_stack, handler) =
        Stack::start_with_handler(false, &[("AZURE_CLIENT_ID", READER_CLIENT_ID)]).await;
    let (_, body) = handler.token_info(json!({})).await;
    assert_eq!(body["claims"]["oid"], READER_OID);
    assert_eq!(
        body["identity"],
        format!("user-assigned client_id={READER_CLIENT_ID}")
    );
    let system = Stack::start(false);
    let named = token_info(json!({"client_id": READER_CLIENT_ID}));
    // A call may name only the identities TOKEN_INFO_IDENTITIES lists.
    let plain = system.start_handler(&[]).await;
    let (status, _) = plain.invoke_http("TokenInfo", &named).await;
    assert_eq!(status, 403);
    assert_eq!(system.token_requests().await, 0);
    let listed = system
        .start_handler(&[("TOKEN_INFO_IDENTITIES", READER_CLIENT_ID)])
        .await;
    let (_, body) = listed.invoke_http("TokenInfo", &named).await;
    assert_eq!(body["claims"]["oid"], READER_OID);
}

#[tokio::test]
async fn transient_failures_are_retried_and_the_token_still_arrives() {
    let stack = Stack::start(false);
    stack
        .fault(&stack.identity, json!([{"status": 500, "times": 2}]))
        .await;
    let handler = stack.start_handler(&[]).await;
    let (status, _) = handler.token_info(json!({})).await;
    assert_eq!(status, 200);
    assert_eq!(stack.token_requests().await, 3, "500, 500, then 200");

    stack
        .fault(&stack.identity, json!({"status": 429, "retry_after": "1"}))
        .await;
    let (status, _) = handler
        .token_info(json!({"resource": "https://storage.azure.com"}))
        .await;
    assert_eq!(status, 200);
    assert_eq!(stack.token_requests().await, 5, "429 honoured, then 200");
}

#[tokio::test]
async fn refusals_are_not_retried_and_answer_503_with_a_message_that_says_what_to_check() {
    let (stack, handler) = Stack::start_with_handler(
        false,
        &[(
            "TOKEN_INFO_IDENTITIES",
            "11111111-2222-4333-8444-555555555555",
        )],
    )
    .await;
    stack
        .fault(
            &stack.identity,
            json!({"status": 403, "body": "{\"message\":\"no\"}"}),
        )
        .await;
    let (status, body) = handler.token_info(json!({})).await;
    assert_eq!(status, 503);
    let message = body["error"]["message"].as_str().unwrap();
    assert!(message.contains("forbidden"), "{message}");
    assert_eq!(stack.token_requests().await, 1);

    let (status, body) = handler
        .token_info(json!({"client_id": "11111111-2222-4333-8444-555555555555"}))
        .await;
    assert_eq!(status, 503);
    let message = body["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("identity not found") && message.contains("hint"),
        "{message}"
    );
    assert_eq!(stack.token_requests().await, 2, "a 400 is never retried");
}

#[tokio::test]
async fn a_malformed_answer_is_a_clear_error() {
    let stack = Stack::start(false);
    stack
        .fault(&stack.identity, json!({"malformed": true}))
        .await;
    let handler = stack.start_handler(&[]).await;
    let (status, body) = handler.token_info(json!({})).await;
    assert_eq!(status, 503);
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("malformed"),
        "{body}"
    );
}

#[tokio::test]
async fn every_expires_on_form_the_platform_sends_is_read() {
    for format in ["epoch-string", "epoch-number", "date-windows", "date-linux"] {
        let stack = Stack::start(false);
        stack
            .fault(
                &stack.identity,
                json!({"expires_on_format": format, "lifetime_secs": 7200}),
            )
            .await;
        let handler = stack.start_handler(&[]).await;
        let (status, body) = handler.token_info(json!({})).await;
        assert_eq!(status, 200, "{format}: {body}");
        let left = body["expires_in"].as_i64().unwrap();
        assert!((7000..=7200).contains(&left), "{format}: {left} s left");
    }
}

#[tokio::test]
async fn the_2019_endpoint_answering_unsupported_api_version_falls_back_to_2017_once() {
    let ([(status, body), (storage_status, _)], protocols) = Stack::two_tokens_with_both_protocols(
        json!({"protocol": "appservice2019", "unsupported_api_version": true}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(storage_status, 200);
    assert_eq!(
        protocols,
        ["appservice2019", "legacy2017", "legacy2017"],
        "fallback once, then remembered"
    );
}

#[tokio::test]
async fn refresh_tokens_answers_a_host_shaped_timer_payload_with_each_tokens_life_in_logs() {
    let (stack, handler) = Stack::start_with_handler(false, &[]).await;
    let status = json!({"Last": "0001-01-01T00:00:00+00:00", "Next": "2024-10-24T17:45:00+00:00", "LastUpdated": "0001-01-01T00:00:00+00:00"});
    let envelope = handler
        .invoke("RefreshTokens", &timer_payload(status))
        .await;
    assert_eq!(envelope["Outputs"], json!({}));
    let logs = envelope["Logs"].to_string();
    for resource in ["https://vault.azure.net", "https://storage.azure.com"] {
        assert!(
            logs.contains(&format!("token for {resource}: valid for")),
            "{logs}"
        );
    }
    assert_eq!(stack.token_requests().await, 2);
    let again = handler
        .invoke("RefreshTokens", &timer_payload(Value::Null))
        .await;
    assert!(again["Logs"].to_string().contains("valid for"));
    assert_eq!(
        stack.token_requests().await,
        2,
        "fresh tokens are served from the cache"
    );
}

#[tokio::test]
async fn no_token_or_identity_header_reaches_any_log_line_even_at_trace_level() {
    let stack = Stack::start(false);
    let secret = stack.identity.ready_str("header_secret");
    let mut handler = stack.start_handler(&[("RUST_LOG", "trace")]).await;
    handler.invoke("TokenInfo", &token_info(json!({}))).await;
    stack
        .fault(
            &stack.identity,
            json!({"status": 400, "body": format!("{{\"message\":\"echo {secret}\"}}")}),
        )
        .await;
    let failed = handler
        .invoke(
            "TokenInfo",
            &token_info(json!({"resource": "https://storage.azure.com"})),
        )
        .await;
    let envelope = failed.to_string();
    assert!(handler.stop().await.success());
    let output = format!("{}{}{}", handler.stdout(), handler.stderr(), envelope);
    assert!(
        output.contains("TokenInfo"),
        "the logs were captured: {output}"
    );
    assert!(!output.contains(&secret), "the identity header leaked");
    assert!(
        !output.contains("eyJ"),
        "a JWT leaked into the logs or the answer"
    );
}

fn token_command(stack: &Stack, args: &[&str]) -> (bool, Value, String) {
    let output = Command::new(handler_binary())
        .arg("token")
        .args(args)
        .env_clear()
        .envs(stack.handler_env())
        .output()
        .expect("run handler token");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let json = serde_json::from_str(&stdout).unwrap_or(Value::Null);
    (
        output.status.success(),
        json,
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[tokio::test]
async fn handler_token_prints_source_identity_claims_and_expiry_and_the_token_only_on_request() {
    let stack = Stack::start(false);
    let (ok, report, _) = token_command(&stack, &["https://vault.azure.net/.default"]);
    assert!(ok);
    assert_eq!(
        report["source"],
        "App Service 2019-08-01 (IDENTITY_ENDPOINT)"
    );
    assert_eq!(report["identity"], "system-assigned");
    assert_eq!(report["resource"], "https://vault.azure.net");
    assert_eq!(report["claims"]["oid"], SYSTEM_OID);
    for field in ["expires_on", "refresh_on", "token_type"] {
        assert!(report.get(field).is_some(), "{field} missing: {report}");
    }
    assert!(report.get("access_token").is_none());

    let (ok, shown, _) = token_command(
        &stack,
        &[
            "https://vault.azure.net",
            "--client-id",
            READER_CLIENT_ID,
            "--show-token",
        ],
    );
    assert!(ok);
    assert_eq!(shown["claims"]["oid"], READER_OID);
    assert!(shown["access_token"].as_str().unwrap().starts_with("eyJ"));

    let (ok, _, stderr) = token_command(
        &stack,
        &[
            "https://vault.azure.net",
            "--client-id",
            "11111111-2222-4333-8444-555555555555",
        ],
    );
    assert!(!ok);
    assert!(stderr.contains("identity not found"), "{stderr}");
}
