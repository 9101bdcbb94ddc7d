//! Runs the identity module's success and failure paths with a trace-level capturing logger and
//! checks that neither the access token nor the endpoint's header secret appears in any log line,
//! error message (Display or Debug) or `Debug` output. Own test binary: it installs a global logger.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use managed_identity::{
    IDENTITY_ENDPOINT, IDENTITY_HEADER, IdentityConfig, ManagedIdentity, RetryPolicy, Timing,
    UserAssignedId,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

const TOKEN: &str = "eyJ0eXAiOiJKV1QiLCJhbGciOiJSUzI1NiJ9.eyJhdWQiOiJodHRwczovL3ZhdWx0LmF6dXJlLm5ldCJ9.c2lnbmF0dXJlLXNlY3JldA";
const HEADER_SECRET: &str = "hdr-SECRET-7f3a9c";

/// One scripted answer: status, extra header lines, body.
type Reply = (u16, &'static str, String);

static LINES: Mutex<Vec<String>> = Mutex::new(Vec::new());

struct Capture;

impl log::Log for Capture {
    fn enabled(&self, _: &log::Metadata) -> bool {
        true
    }
    fn log(&self, record: &log::Record) {
        let line = format!("{} {} {}", record.level(), record.target(), record.args());
        LINES.lock().unwrap().push(line);
    }
    fn flush(&self) {}
}

/// A one-answer-per-request HTTP endpoint on 127.0.0.1.
async fn endpoint(replies: Vec<Reply>) -> (String, Arc<Mutex<usize>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let count = Arc::new(Mutex::new(0usize));
    let seen = count.clone();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let mut buffer = Vec::new();
            let mut chunk = [0u8; 4096];
            while !buffer.windows(4).any(|w| w == b"\r\n\r\n") {
                match stream.read(&mut chunk).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => buffer.extend_from_slice(&chunk[..n]),
                }
            }
            let index = {
                let mut n = seen.lock().unwrap();
                *n += 1;
                *n - 1
            };
            let (status, extra, body) = &replies[index.min(replies.len() - 1)];
            let head = format!(
                "HTTP/1.1 {status} X\r\nContent-Length: {}\r\nConnection: close\r\n{extra}\r\n",
                body.len()
            );
            let _ = stream.write_all(head.as_bytes()).await;
            let _ = stream.write_all(body.as_bytes()).await;
            let _ = stream.shutdown().await;
        }
    });
    (base, count)
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
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
        + 86400
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
    log::set_logger(&Capture).unwrap();
    log::set_max_level(log::LevelFilter::Trace);
    let ok_body = format!(
        r#"{{"access_token":"{TOKEN}","expires_on":"{}","resource":"https://vault.azure.net","token_type":"Bearer"}}"#,
        expires_later()
    );

    // Success: the token is delivered, but nothing prints it.
    let (base, count) = endpoint(vec![(200, "", ok_body.clone())]).await;
    let mi = identity(&base, None);
    let token = mi
        .get_token("https://vault.azure.net/.default", None)
        .await
        .unwrap();
    assert_eq!(token.access_token.expose(), TOKEN);
    assert_clean("Token Debug", &format!("{token:?}"));
    assert_clean("ManagedIdentity Debug", &format!("{mi:?}"));
    let cached = mi.get_token("https://vault.azure.net", None).await.unwrap();
    assert_eq!(cached.access_token.expose(), TOKEN);
    assert_eq!(*count.lock().unwrap(), 1);

    // Failures, each quoting a body that carries the token or echoes the header secret.
    let failures: Vec<(&str, Vec<Reply>)> = vec![
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
        let (base, _) = endpoint(replies).await;
        let mi = identity(&base, Some("cid-1"));
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

    let lines = LINES.lock().unwrap().clone();
    assert!(
        lines.iter().any(|l| l.contains("managed_identity")),
        "the capture saw no identity log lines, so it proves nothing: {lines:?}"
    );
    for line in &lines {
        assert_clean("log line", line);
    }
}
