//! DownstreamApi (the CallApi client) against servers on 127.0.0.1:
//! the bearer header, redirects handed back unfollowed, the body limit, timeouts and failures.

use custom_handler::Failure;
use std::time::Duration;

use handler::clients::downstream::{
    DownstreamApi, DownstreamError, DownstreamOptions, MAX_RESPONSE_BYTES,
};
use handler::error::FunctionError;
use test_kit::handler::closed_port_base;
use test_kit::logs as captured_logs;
use test_kit::recorder::Reply;
use test_kit::server::FakeServer;
use url::Url;

const TOKEN: &str = "eyJ0eXAiOiJKV1QifQ.eyJhdWQiOiJhcGk6Ly94In0.c2lnbmF0dXJlLXNlY3JldA";

fn api_at(server: &FakeServer, options: DownstreamOptions) -> DownstreamApi {
    let base = Url::parse(&format!("{}/api/", server.base)).unwrap();
    DownstreamApi::with_options(base, options).unwrap()
}

fn api(server: &FakeServer) -> DownstreamApi {
    api_at(server, DownstreamOptions::default())
}

/// Asserts that `error` answers `status` and shows no part of the token.
fn assert_status_without_token(error: &DownstreamError, status: u16) {
    assert_eq!(FunctionError::from(error.clone()).status(), status);
    assert_no_token(error);
}

/// GETs `path` with the token from `api`, which must fail: with an error `kind` accepts, answering
/// `status`, and showing no part of the token.
async fn assert_get_fails(
    api: &DownstreamApi,
    path: &str,
    kind: fn(&DownstreamError) -> bool,
    status: u16,
) {
    let error = api.get(path, &[], TOKEN).await.unwrap_err();
    assert!(kind(&error), "{error:?}");
    assert_status_without_token(&error, status);
}

fn assert_no_token(error: &DownstreamError) {
    for text in [error.to_string(), format!("{error:?}")] {
        assert!(!text.contains(TOKEN), "the token leaked into {text}");
        assert!(
            !text.contains("c2lnbmF0dXJl"),
            "part of the token leaked into {text}"
        );
    }
}

#[tokio::test]
async fn the_token_is_sent_as_a_bearer_header_to_the_joined_url() {
    let server =
        FakeServer::http(|_| Reply::bytes(200, "application/json", br#"{"ok":true}"#.to_vec()))
            .await;
    let query = vec![
        ("filter".to_owned(), "a b".to_owned()),
        ("code".to_owned(), "the-function-key".to_owned()),
    ];
    let response = api(&server).get("items/42", &query, TOKEN).await.unwrap();
    assert_eq!(response.status, 200);
    assert_eq!(response.content_type.as_deref(), Some("application/json"));
    assert_eq!(&response.body[..], br#"{"ok":true}"#);

    let requests = server.requests();
    assert_eq!(requests.len(), 1);
    assert_eq!(requests[0].method, "GET");
    assert_eq!(requests[0].target, "/api/items/42?filter=a+b");
    assert_eq!(
        requests[0].header("authorization"),
        Some(format!("Bearer {TOKEN}").as_str())
    );
    assert_eq!(requests[0].header("cookie"), None);
}

#[tokio::test]
async fn error_statuses_are_answers_not_errors() {
    let server = FakeServer::http(|_| {
        Reply::bytes(
            403,
            "application/json",
            br#"{"error":"forbidden"}"#.to_vec(),
        )
    })
    .await;
    let response = api(&server).get("secret", &[], TOKEN).await.unwrap();
    assert_eq!(response.status, 403);
    assert_eq!(&response.body[..], br#"{"error":"forbidden"}"#);
}

#[tokio::test]
async fn redirects_are_returned_and_never_followed() {
    let elsewhere = FakeServer::http(|_| Reply::bytes(200, "text/plain", b"stolen".to_vec())).await;
    let location = format!("{}/collect", elsewhere.base);
    let redirect_to = location.clone();
    let server = FakeServer::http(move |request| {
        if request.target == "/api/moved" {
            let mut reply = Reply::bytes(302, "text/plain", b"moved".to_vec());
            reply.headers.push(("location".into(), redirect_to.clone()));
            reply
        } else {
            Reply::bytes(200, "text/plain", b"same host".to_vec())
        }
    })
    .await;
    let response = api(&server).get("moved", &[], TOKEN).await.unwrap();
    assert_eq!(response.status, 302);
    assert_eq!(response.location.as_deref(), Some(location.as_str()));
    assert_eq!(&response.body[..], b"moved");
    assert_eq!(
        elsewhere.requests().len(),
        0,
        "the redirect target was never hit"
    );
    assert_eq!(server.requests().len(), 1);
}

#[tokio::test]
async fn a_body_over_the_default_limit_is_refused() {
    let server = FakeServer::http(|request| {
        let size = if request.target.ends_with("/big") {
            MAX_RESPONSE_BYTES + 1
        } else {
            MAX_RESPONSE_BYTES
        };
        Reply::bytes(200, "application/octet-stream", vec![b'x'; size])
    })
    .await;
    let api = api(&server);
    let exact = api.get("exact", &[], TOKEN).await.unwrap();
    assert_eq!(exact.body.len(), MAX_RESPONSE_BYTES);
    let error = api.get("big", &[], TOKEN).await.unwrap_err();
    assert_eq!(
        error,
        DownstreamError::TooLarge {
            limit: MAX_RESPONSE_BYTES
        }
    );
    assert_eq!(FunctionError::from(error.clone()).status(), 502);
}

#[tokio::test]
async fn a_chunked_body_is_cut_off_at_the_limit() {
    let server = FakeServer::http(|_| {
        let mut reply = Reply::bytes(200, "text/plain", vec![b'y'; 200 * 1024]);
        reply.chunked = true;
        reply
    })
    .await;
    let with_limit = |max_response_bytes| {
        let options = DownstreamOptions {
            max_response_bytes,
            ..DownstreamOptions::default()
        };
        api_at(&server, options)
    };
    let error = with_limit(100 * 1024)
        .get("stream", &[], TOKEN)
        .await
        .unwrap_err();
    assert_eq!(error, DownstreamError::TooLarge { limit: 100 * 1024 });
    let response = with_limit(200 * 1024)
        .get("stream", &[], TOKEN)
        .await
        .unwrap();
    assert_eq!(response.body.len(), 200 * 1024);
}

#[tokio::test]
async fn a_slow_api_times_out_with_504() {
    let server = FakeServer::http(|_| {
        let mut reply = Reply::bytes(200, "text/plain", b"late".to_vec());
        reply.delay = Duration::from_secs(10);
        reply
    })
    .await;
    let options = DownstreamOptions {
        timeout: Duration::from_millis(300),
        ..DownstreamOptions::default()
    };
    let timed_out = |e: &DownstreamError| matches!(e, DownstreamError::Timeout { .. });
    assert_get_fails(&api_at(&server, options), "slow", timed_out, 504).await;
}

#[tokio::test]
async fn an_unreachable_api_is_502_without_the_token() {
    let base = Url::parse(&format!("{}/api/", closed_port_base())).unwrap();
    let unreachable = |e: &DownstreamError| matches!(e, DownstreamError::Unreachable { .. });
    assert_get_fails(&DownstreamApi::new(base).unwrap(), "x", unreachable, 502).await;
}

#[tokio::test]
async fn a_refused_path_never_reaches_the_server() {
    let server = FakeServer::http(|_| Reply::bytes(200, "text/plain", b"hit".to_vec())).await;
    let api = api(&server);
    for path in [
        "../admin",
        "%2e%2e/admin",
        "//127.0.0.1/admin",
        "a%2f..%2fadmin",
        "http:x",
    ] {
        let error = api.get(path, &[], TOKEN).await.unwrap_err();
        assert!(matches!(error, DownstreamError::InvalidPath(_)), "{path}");
        assert_no_token(&error);
    }
    let bad_token = api.get("ok", &[], "abc\r\nX-Evil: 1").await.unwrap_err();
    assert_eq!(bad_token, DownstreamError::InvalidToken);
    assert_eq!(server.requests().len(), 0);
}

#[tokio::test]
async fn the_token_never_reaches_a_log_line() {
    captured_logs::install();
    let server = FakeServer::http(|_| Reply::bytes(200, "text/plain", b"logged".to_vec())).await;
    let response = api(&server).get("logged/call", &[], TOKEN).await.unwrap();
    assert_eq!(response.status, 200);
    let lines = captured_logs::assert_logged(
        "/api/logged/call answered 200",
        "the call is logged at debug",
    );
    for line in &lines {
        assert!(
            !line.contains("c2lnbmF0dXJl"),
            "the token leaked into the log: {line}"
        );
    }
}
