//! Request limits, attacked as a caller with a function key (or none) would: bodies larger than a
//! function takes, declared or streamed; more invocations than the cap; heads and bodies sent a
//! byte at a time; idle connections hoarded; and a SIGTERM while they are held.

use std::time::Duration;

use custom_handler::dispatch::ENVELOPE_OVERHEAD_BYTES;
use handler::clients::names::MAX_BLOB_BYTES as MAX_FUNCTION_BODY_BYTES;

use test_kit::handler::{
    JsonBody, RawConnection, RunningHandler, head_header, head_status, http_payload,
};

/// The real binary on the repository's functions, with `limits` settings.
async fn handler_with(limits: &[(&str, &str)]) -> RunningHandler {
    let env: Vec<(String, String)> = limits
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    RunningHandler::start_in_repo(&env).await
}

/// Sends a request head and answers the response head, without sending any body.
/// The answer to `start` (request line and headers) with a `Content-Length: length` whose body
/// is never sent: only a check of the declared length can answer.
async fn head_declaring(handler: &RunningHandler, start: &str, length: usize) -> String {
    head_only(
        handler,
        &format!("{start}\r\nContent-Length: {length}\r\n\r\n"),
    )
    .await
}

async fn head_only(handler: &RunningHandler, head: &str) -> String {
    let mut connection = RawConnection::open(&handler.base).await;
    connection.send(head.as_bytes()).await.expect("send head");
    connection.read_head().await.expect("an answer")
}

#[tokio::test]
async fn a_get_function_refuses_any_body_declared_by_content_length_before_reading_it() {
    let handler = handler_with(&[]).await;
    // Whoami is anonymous: the easiest target. The body is declared but never sent, so only a
    // check of Content-Length can answer.
    let head = head_only(
        &handler,
        "GET /api/whoami HTTP/1.1\r\nHost: x\r\nContent-Length: 1048576\r\n\r\n",
    )
    .await;
    assert_eq!(head_status(&head), 413, "{head}");
}

#[tokio::test]
async fn a_get_function_refuses_a_chunked_body_while_reading_it() {
    let handler = handler_with(&[]).await;
    let mut connection = RawConnection::sending(
        &handler.base,
        b"GET /api/token HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n",
    )
    .await;
    // The stream never ends: only a limit checked while reading can answer.
    let head = connection.read_head().await.expect("an answer");
    assert_eq!(head_status(&head), 413, "{head}");
}

#[tokio::test]
async fn write_blob_refuses_a_body_over_the_blob_limit_declared_or_streamed() {
    let handler = handler_with(&[]).await;
    let put = "PUT /api/blobs/demo/big.bin HTTP/1.1\r\nHost: x";
    let declared = head_declaring(&handler, put, MAX_FUNCTION_BODY_BYTES + 1).await;
    assert_eq!(head_status(&declared), 413, "{declared}");

    // Streamed in chunks with no length: refused once the bytes pass the limit, long before the
    // stream (which never ends) could be buffered whole.
    let mut connection = RawConnection::sending(
        &handler.base,
        b"PUT /api/blobs/demo/big.bin HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n",
    )
    .await;
    let chunk = {
        let data = vec![b'x'; 1024 * 1024];
        let mut framed = format!("{:x}\r\n", data.len()).into_bytes();
        framed.extend_from_slice(&data);
        framed.extend_from_slice(b"\r\n");
        framed
    };
    let mut sent = 0usize;
    while sent <= MAX_FUNCTION_BODY_BYTES + chunk.len() {
        if connection.send(&chunk).await.is_err() {
            break;
        }
        sent += chunk.len();
    }
    let head = connection.read_head().await.expect("an answer");
    assert_eq!(head_status(&head), 413, "{head}");
    assert!(
        sent <= MAX_FUNCTION_BODY_BYTES + 2 * chunk.len(),
        "the server stopped reading at the limit"
    );
}

#[tokio::test]
async fn a_json_mode_envelope_over_its_limit_is_refused_from_content_length() {
    let handler = handler_with(&[]).await;
    // Any function's envelope: a GET function's carries no body, WriteBlob's its body in base64.
    let post = "POST /WriteBlob HTTP/1.1\r\nHost: x\r\nContent-Type: application/json";
    let limit = ENVELOPE_OVERHEAD_BYTES + 2 * MAX_FUNCTION_BODY_BYTES;
    let head = head_declaring(&handler, post, limit + 1).await;
    // JSON mode: the host gets 200 with the 413 in the function's own output.
    assert_eq!(head_status(&head), 200, "{head}");
    // Inside the envelope, a GET function takes no body either.
    let payload = http_payload(
        "GET",
        "http://x/api/whoami",
        serde_json::json!({}),
        Some("x"),
    );
    let envelope: serde_json::Value = reqwest::Client::new()
        .post(format!("{}/Whoami", handler.base))
        .body(payload.to_string())
        .send()
        .await
        .unwrap()
        .json_body()
        .await;
    assert_eq!(envelope["Outputs"]["res"]["statusCode"], 413, "{envelope}");
}

#[tokio::test]
async fn a_flood_beyond_the_in_flight_cap_gets_503_with_retry_after() {
    let handler = handler_with(&[
        ("MAX_CONCURRENT_INVOCATIONS", "2"),
        ("REQUEST_BODY_TIMEOUT_SECONDS", "60"),
    ])
    .await;
    // Invocations held open one after another (each announces a body and never sends it), so
    // that nothing but held invocations ever takes a slot: the first two are admitted and stay
    // silent, the next is turned away at once. A probe that ran a function would hold a slot for
    // a moment and could make a held one the refused one instead.
    let mut held = Vec::new();
    let refused = loop {
        assert!(
            held.len() < 10,
            "never refused after {} held invocations",
            held.len()
        );
        let mut connection = RawConnection::open(&handler.base).await;
        let n = held.len();
        connection
            .send(
                format!("PUT /api/blobs/demo/held-{n}.txt HTTP/1.1\r\nHost: x\r\nContent-Type: text/plain\r\nContent-Length: 10\r\n\r\n")
                    .as_bytes(),
            )
            .await
            .unwrap();
        // An admitted invocation answers nothing until its body comes; a refused one at once.
        match tokio::time::timeout(Duration::from_millis(500), connection.read_head()).await {
            Ok(Some(head)) => break head,
            Ok(None) => panic!("held-{n}: the connection closed without an answer"),
            Err(_) => held.push(connection),
        }
    };
    assert_eq!(head_status(&refused), 503, "{refused}");
    assert!(
        held.len() >= 2,
        "refused with only {} held: {refused}",
        held.len()
    );
    let wait: u64 = head_header(&refused, "retry-after")
        .expect("Retry-After")
        .parse()
        .expect("seconds");
    assert!(wait >= 1, "{refused}");
    drop(held);
}

#[tokio::test]
async fn a_head_sent_a_byte_at_a_time_is_cut_off() {
    let handler = handler_with(&[("REQUEST_HEADER_TIMEOUT_SECONDS", "1")]).await;
    let mut connection = RawConnection::sending(
        &handler.base,
        b"GET /api/whoami HTTP/1.1\r\nHost: x\r\nX-Slow: a",
    )
    .await;
    assert!(connection.closed().await, "the half-sent head is dropped");
    // A kept-alive connection that goes idle is closed by the same limit.
    let mut idle =
        RawConnection::sending(&handler.base, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").await;
    let head = idle.read_head().await.expect("readiness answered");
    assert_eq!(head_status(&head), 200);
    assert!(idle.closed().await, "the idle connection is closed");
}

#[tokio::test]
async fn a_body_sent_a_byte_at_a_time_is_answered_408() {
    let handler = handler_with(&[("REQUEST_BODY_TIMEOUT_SECONDS", "1")]).await;
    let mut connection = RawConnection::sending(&handler.base, b"PUT /api/blobs/demo/slow.txt HTTP/1.1\r\nHost: x\r\nContent-Type: text/plain\r\nContent-Length: 100\r\n\r\na").await;
    let head = connection.read_head().await.expect("an answer");
    assert_eq!(head_status(&head), 408, "{head}");
}

#[tokio::test]
async fn connections_beyond_the_cap_wait_until_a_slot_frees() {
    let handler = handler_with(&[("MAX_CONNECTIONS", "2")]).await;
    let first = RawConnection::open(&handler.base).await;
    let second = RawConnection::open(&handler.base).await;
    let mut third = RawConnection::sending(
        &handler.base,
        b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
    .await;
    let waited = tokio::time::timeout(Duration::from_millis(500), third.read_head()).await;
    assert!(waited.is_err(), "served while both slots were held");
    drop(first);
    let head = third.read_head().await.expect("served once a slot freed");
    assert_eq!(head_status(&head), 200);
    drop(second);
}

#[tokio::test]
async fn a_burst_of_connections_far_beyond_the_cap_waits_in_the_backlog_and_is_served() {
    // Hosts without a request cap open a connection per concurrent request: a burst must queue
    // in the listen backlog, not be dropped there.
    const BURST: usize = 600;
    let handler = handler_with(&[("MAX_CONNECTIONS", "2")]).await;
    let overflows_before = listen_overflows();
    let holders = [
        RawConnection::open(&handler.base).await,
        RawConnection::open(&handler.base).await,
    ];
    let burst = futures::future::join_all((0..BURST).map(|_| {
        RawConnection::sending(
            &handler.base,
            b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        )
    }))
    .await;
    drop(holders);
    let heads = futures::future::join_all(burst.into_iter().map(|mut connection| async move {
        connection.read_head().await.map(|head| head_status(&head))
    }))
    .await;
    let served = heads.iter().filter(|status| **status == Some(200)).count();
    assert_eq!(served, BURST, "{heads:?}");
    // A connection the full backlog dropped is still served, seconds later, when the client
    // retransmits: only the kernel's count tells that it was dropped.
    assert_eq!(
        listen_overflows() - overflows_before,
        0,
        "connections were dropped from a full listen backlog"
    );
}

/// The kernel's count of connections dropped because a listen backlog was full
/// (`TcpExt: ListenOverflows` in /proc/net/netstat).
fn listen_overflows() -> u64 {
    let netstat = std::fs::read_to_string("/proc/net/netstat").expect("/proc/net/netstat");
    let mut lines = netstat.lines().filter(|line| line.starts_with("TcpExt:"));
    let (names, values) = (lines.next().unwrap(), lines.next().unwrap());
    let at = names
        .split_whitespace()
        .position(|name| name == "ListenOverflows")
        .expect("a ListenOverflows column");
    values.split_whitespace().nth(at).unwrap().parse().unwrap()
}

#[tokio::test]
async fn sigterm_exits_promptly_while_idle_and_half_open_connections_are_held() {
    // A header timeout far longer than the test allows for the exit: only closing them on
    // shutdown can let the process stop in time.
    let mut handler = handler_with(&[("REQUEST_HEADER_TIMEOUT_SECONDS", "600")]).await;
    let mut held = Vec::new();
    for _ in 0..5 {
        held.push(RawConnection::open(&handler.base).await);
    }
    let half_open =
        RawConnection::sending(&handler.base, b"GET /api/whoami HTTP/1.1\r\nHost: x\r\n").await;
    let mut kept_alive =
        RawConnection::sending(&handler.base, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").await;
    assert_eq!(head_status(&kept_alive.read_head().await.unwrap()), 200);
    held.push(half_open);
    held.push(kept_alive);
    let status = handler.stop().await;
    assert!(status.success(), "{status}");
    for mut connection in held {
        assert!(connection.closed().await);
    }
}
