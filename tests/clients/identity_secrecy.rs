//! Runs the identity module's success and failure paths with a trace-level capturing logger and
//! checks that neither the access token nor the endpoint's header secret appears in any log line,
//! error message (Display or Debug) or `Debug` output, with the test kit's capturing logger (this
//! binary's only logger).

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use managed_identity::{
    IDENTITY_ENDPOINT, IDENTITY_HEADER, IdentityConfig, ManagedIdentity, RetryPolicy, Timing,
    UserAssignedId,
};
use test_kit::logs as captured_logs;
use test_kit::recorder::Reply;
use test_kit::server::FakeServer;
use tokio::net::TcpListener;

const TOKEN: &str = "eyJ0eXAiOiJKV1QiLCJhbGciOiJSUzI1NiJ9.eyJhdWQiOiJodHRwczovL3ZhdWx0LmF6dXJlLm5ldCJ9.c2lnbmF0dXJlLXNlY3JldA";
const HEADER_SECRET: &str = "hdr-SECRET-7f3a9c";

/// One scripted answer: status, extra header lines, body.
type Scripted = (u16, &'static str, String);

/// A one-answer-per-request HTTP endpoint on 127.0.0.1: the n-th request gets the n-th answer,
/// the last one repeating.
async fn endpoint(scripted: Vec<Scripted>) -> FakeServer {
    let replies: Vec<Reply> = scripted
        .into_iter()
        .map(|(status, extra, body)| {
            extra
                .split("\r\n")
                .filter_map(|line| line.split_once(": "))
                .fold(Reply::new(status), |reply, (name, value)| {
                    reply.header(name, value)
                })
                .body(body)
        })
        .collect();
    let next = AtomicUsize::new(0);
    FakeServer::http(move |_| {
        let index = next.fetch_add(1, Ordering::SeqCst);
        replies[index.min(replies.len() - 1)].clone()
    })
    .await
}

fn identity(base: &str, client_id: Option<&str>) -> ManagedIdentity {
    let mut vars: HashMap<&str, String> = HashMap::new();
    vars.insert(IDENTITY_ENDPOINT, format!("{base}/msi/token"));
    vars.insert(IDENTITY_HEADER, HEADER_SECRET.to_owned());
    if let Some(id) = client_id {
        vars.insert("AZURE_CLIENT_ID", id.to_owned());
    }
    let timing = Timing {
        retry: RetryPolicy {
            base_delay: Duration::from_millis(1),
            max_delay: Duration::from_millis(2),
            jitter: false,
            ..RetryPolicy::default()
        },
        ..Timing::default()
    };
    let config = IdentityConfig::from_lookup(|name| vars.get(name).cloned())
        .unwrap()
        .with_timing(timing);
    ManagedIdentity::new(config).unwrap()
}

fn expires_later() -> i64 {
    test_kit::jwt::now() + 86400
}

fn assert_clean(what: &str, text: &str) {
    assert!(!text.contains(TOKEN), "{what} leaks the token: {text}");
    assert!(
        !text.contains("c2lnbmF0dXJlLXNlY3JldA"),
        "{what} leaks the token signature: {text}"
    );
    assert!(
        !text.contains(HEADER_SECRET),
        "{what} leaks the header secret: {text}"
    );
}

#[tokio::test]
async fn no_token_or_header_secret_in_logs_or_errors() {
    captured_logs::install();
    let ok_body = format!(
        r#"{{"access_token":"{TOKEN}","expires_on":"{}","resource":"https://vault.azure.net","token_type":"Bearer"}}"#,
        expires_later()
    );

    // Success: the token is delivered, but nothing prints it.
    let server = endpoint(vec![(200, "", ok_body.clone())]).await;
    let mi = identity(&server.base, None);
    let token = mi
        .get_token("https://vault.azure.net/.default", None)
        .await
        .unwrap();
    assert_eq!(token.access_token.expose(), TOKEN);
    assert_clean("Token Debug", &format!("{token:?}"));
    assert_clean("ManagedIdentity Debug", &format!("{mi:?}"));
    let cached = mi.get_token("https://vault.azure.net", None).await.unwrap();
    assert_eq!(cached.access_token.expose(), TOKEN);
    assert_eq!(server.count(), 1);

    // Failures, each quoting a body that carries the token or echoes the header secret.
    let failures: Vec<(&str, Vec<Scripted>)> = vec![
        (
            "400 echoing the secret",
            vec![(
                400,
                "",
                format!(
                    r#"{{"statusCode":400,"message":"Unable to load the proper Managed Identity. header={HEADER_SECRET}","correlationId":"c-1"}}"#
                ),
            )],
        ),
        (
            "500 with a token in the body",
            vec![(
                500,
                "",
                format!(r#"{{"message":"boom","access_token":"{TOKEN}"}}"#),
            )],
        ),
        (
            "500 text with a token",
            vec![(500, "", format!("upstream said {TOKEN}"))],
        ),
        (
            "403",
            vec![(403, "", format!(r#"{{"error":"forbidden {TOKEN}"}}"#))],
        ),
        (
            "429",
            vec![(
                429,
                "Retry-After: 3600\r\n",
                format!(r#"{{"access_token":"{TOKEN}"}}"#),
            )],
        ),
        (
            "malformed expiry",
            vec![(
                200,
                "",
                format!(r#"{{"access_token":"{TOKEN}","expires_on":"someday"}}"#),
            )],
        ),
        (
            "not JSON",
            vec![(
                200,
                "",
                format!("<html>{{\"access_token\": \"{TOKEN}\"}} {TOKEN}</html>"),
            )],
        ),
        (
            "no expiry",
            vec![(200, "", format!(r#"{{"access_token":"{TOKEN}"}}"#))],
        ),
        (
            "redirect",
            vec![(307, "Location: http://127.0.0.1:9/steal\r\n", String::new())],
        ),
    ];
    for (name, replies) in failures {
        let server = endpoint(replies).await;
        let mi = identity(&server.base, Some("cid-1"));
        let err = mi
            .get_token("https://vault.azure.net", None)
            .await
            .expect_err(name);
        assert_clean(name, &err.to_string());
        assert_clean(name, &format!("{err:?}"));
        let other = mi
            .get_token("api://x", Some(&UserAssignedId::ObjectId("o".into())))
            .await
            .expect_err(name);
        assert_clean(name, &other.to_string());
        let core_err = azure_core::credentials::TokenCredential::get_token(&mi, &["api://y"], None)
            .await
            .expect_err(name);
        assert_clean(name, &core_err.to_string());
        assert_clean(name, &format!("{core_err:?}"));
    }

    // Nothing unavailable either: a closed port.
    let closed = {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        drop(listener);
        format!("http://{addr}")
    };
    let err = identity(&closed, None)
        .get_token("https://vault.azure.net", None)
        .await
        .unwrap_err();
    assert_clean("connection refused", &err.to_string());

    let lines = captured_logs::assert_logged(
        "managed_identity",
        "the capture saw no identity log lines, so it proves nothing",
    );
    for line in &lines {
        assert_clean("log line", line);
    }
}
