//! The runtime as the host sees it: readiness, JSON mode, forwarding, logs, limits and shutdown,
//! exercised with functions of the test's own (the shipped binary does not contain them).

use std::sync::Arc;
use std::time::Duration;

use custom_handler::contract::TimerInfo;
use custom_handler::http::{HttpRequest, HttpResponse};
use custom_handler::registry::{Implemented, Mismatch, compare, load_declared};
use futures::future::{BoxFuture, FutureExt};
use handler::clients::names::MAX_BLOB_BYTES;
use handler::error::FunctionError;
use serde_json::{Value, json};
use test_kit::handler::{
    AppRoot, JsonBody, get, http_function, http_payload, post_invocation, send, timer_function,
    timer_payload, wait_ready,
};
use tokio::sync::oneshot;

fn echo(
    _: Arc<()>,
    request: HttpRequest,
) -> BoxFuture<'static, Result<HttpResponse, FunctionError>> {
    async move {
        let name = request.param("name").unwrap_or("").to_owned();
        log::info!("echo called for {name}");
        tokio::task::yield_now().await;
        log::info!("echo finished for {name}");
        Ok(HttpResponse::json(
            200,
            &json!({"method": request.method, "name": name, "query": request.query,
                    "body": String::from_utf8_lossy(&request.body), "body_len": request.body.len(),
                    "content_type": request.content_type(),
                    "invocation_id": custom_handler::invocation::with_current(|inv| inv.id().to_owned())}),
        ))
    }
    .boxed()
}

fn fail(_: Arc<()>, _: HttpRequest) -> BoxFuture<'static, Result<HttpResponse, FunctionError>> {
    async {
        Err(FunctionError::Forbidden(
            "the caller may not read this".into(),
        ))
    }
    .boxed()
}

fn slow(_: Arc<()>, _: HttpRequest) -> BoxFuture<'static, Result<HttpResponse, FunctionError>> {
    async {
        tokio::time::sleep(Duration::from_millis(400)).await;
        Ok(HttpResponse::new(200, "text/plain", "finished"))
    }
    .boxed()
}

fn binary(_: Arc<()>, _: HttpRequest) -> BoxFuture<'static, Result<HttpResponse, FunctionError>> {
    async {
        Ok(HttpResponse::new(
            200,
            "application/octet-stream",
            vec![0u8, 159, 146, 150],
        ))
    }
    .boxed()
}

fn panics(_: Arc<()>, _: HttpRequest) -> BoxFuture<'static, Result<HttpResponse, FunctionError>> {
    async {
        log::info!("about to fail");
        let empty: Vec<u8> = Vec::new();
        Ok(HttpResponse::new(
            200,
            "text/plain",
            vec![empty[empty.len()]],
        ))
    }
    .boxed()
}

fn broken_tick(_: Arc<()>, _: TimerInfo) -> BoxFuture<'static, Result<(), FunctionError>> {
    async {
        log::info!("refreshing");
        Err(FunctionError::Upstream(
            "no token could be refreshed".into(),
        ))
    }
    .boxed()
}

fn tick(_: Arc<()>, timer: TimerInfo) -> BoxFuture<'static, Result<(), FunctionError>> {
    async move {
        let last = timer
            .schedule_status
            .as_ref()
            .and_then(|s| s.last.as_ref())
            .map(|t| t.text.clone());
        log::info!("tick: past due {}, last {:?}", timer.is_past_due, last);
        Ok(())
    }
    .boxed()
}

fn implemented() -> Vec<Implemented<()>> {
    vec![
        Implemented::http("Echo", "echo/{name}", &["GET", "POST"], echo)
            .with_body_limit(MAX_BLOB_BYTES),
        Implemented::http("Fail", "fail", &["GET"], fail),
        Implemented::http("Slow", "slow", &["GET"], slow),
        Implemented::http("Binary", "binary", &["GET"], binary),
        Implemented::http("Panics", "panics", &["GET"], panics),
        Implemented::timer("Tick", tick),
        Implemented::timer("BrokenTick", broken_tick),
    ]
}

fn app_root() -> AppRoot {
    AppRoot::new(
        json!({"version": "2.0", "customHandler": {"description": {"defaultExecutablePath": "handler"}}}),
        &[
            ("Echo", http_function("echo/{name}", &["get", "post"])),
            ("Fail", http_function("fail", &["get"])),
            ("Slow", http_function("slow", &["get"])),
            ("Binary", http_function("binary", &["get"])),
            ("Panics", http_function("panics", &["get"])),
            ("Panics", http_function("panics", &["get"])),
            ("Tick", timer_function("0 */5 * * * *")),
            ("BrokenTick", timer_function("0 */5 * * * *")),
        ],
    )
}

async fn spawn() -> TestApp {
    TestApp::spawn(app_root(), (), implemented()).await
}

/// After a failure, the app still runs Echo: the failure stayed inside its own invocation.
async fn echo_still_answers(app: &TestApp, name: &str) {
    let payload = http_payload("GET", "u", json!({ "name": name }), None);
    let (status, envelope) = app.invoke("Echo", &payload).await;
    assert_eq!(status, 200, "Echo {name} after a failure: {envelope}");
}

/// A JSON-mode GET with nothing in it, for tests about what happens around the function.
fn empty_get() -> String {
    http_payload("GET", "u", json!({}), None).to_string()
}

fn output(envelope: &Value) -> &Value {
    &envelope["Outputs"]["res"]
}

fn output_body(envelope: &Value) -> Value {
    serde_json::from_str(output(envelope)["body"].as_str().unwrap()).unwrap()
}

#[tokio::test]
async fn get_root_answers_at_once() {
    let app = spawn().await;
    let response = app.get("/").await;
    assert_eq!(response.status(), 200);
}

#[tokio::test]
async fn json_mode_runs_the_function_and_returns_its_output_and_logs() {
    let app = spawn().await;
    let payload = http_payload(
        "POST",
        "http://localhost:7071/api/echo/alice",
        json!({"name": "alice"}),
        Some("hello"),
    );
    let (status, envelope) = app.invoke("Echo", &payload).await;
    assert_eq!(status, 200);
    assert_eq!(output(&envelope)["statusCode"], 200);
    assert_eq!(
        output(&envelope)["headers"]["Content-Type"],
        "application/json; charset=utf-8"
    );
    let body = output_body(&envelope);
    assert_eq!(body["name"], "alice");
    assert_eq!(body["body"], "hello");
    assert_eq!(body["method"], "POST");
    let logs: Vec<&str> = envelope["Logs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l.as_str().unwrap())
        .collect();
    assert_eq!(
        logs,
        [
            "INFO: echo called for alice",
            "INFO: echo finished for alice"
        ]
    );
    assert_eq!(envelope["ReturnValue"], Value::Null);
}

#[tokio::test]
async fn the_function_name_is_matched_without_regard_to_case() {
    let app = spawn().await;
    let payload = http_payload("GET", "http://x/api/echo/bob", json!({"name": "bob"}), None);
    let (status, envelope) = app.invoke("eCHO", &payload).await;
    assert_eq!(status, 200);
    assert_eq!(output_body(&envelope)["name"], "bob");
    assert_eq!(output_body(&envelope)["body_len"], 0);
}

#[tokio::test]
async fn every_http_payload_shape_of_the_spec_is_accepted() {
    let app = spawn().await;
    let shapes = [
        // pre-2020 hosts: Query and Identities as JSON strings
        json!({"Data": {"req": {"Url": "u", "Method": "GET", "Query": "{\"q\":\"1\"}", "Headers": {},
               "Params": {"name": "a"}, "Identities": "[]"}}, "Metadata": {"sys": {}}}),
        // twice-encoded metadata scalars, unknown keys, no Body
        json!({"Data": {"req": {"Url": "u", "Method": "GET", "Query": {"q": "1"}, "Headers": {"H": ["1", "2"]},
               "Params": {"name": "a", "opt": null}, "Identities": [], "Extra": {"x": 1}}},
               "Metadata": {"name": "\"a\"", "q": "\"1\"", "Query": {"q": "1"}, "Headers": {"H": "1,2"},
                            "sys": {"MethodName": "Echo", "UtcNow": "2024-10-24T17:42:07.5123456Z", "RandGuid": "g"},
                            "RetryContext": {"RetryCount": 0, "MaxRetryCount": 3, "Exception": null}}}),
    ];
    for payload in shapes {
        let (status, envelope) = app.invoke("Echo", &payload).await;
        assert_eq!(status, 200, "{payload}");
        assert_eq!(output(&envelope)["statusCode"], 200, "{payload}");
        assert_eq!(output_body(&envelope)["query"]["q"], "1");
    }
}

#[tokio::test]
async fn octet_stream_bodies_arrive_as_bytes_and_binary_answers_are_refused_in_json_mode() {
    let app = spawn().await;
    let mut payload = http_payload("POST", "u", json!({"name": "b"}), Some("AAEC/w=="));
    payload["Data"]["req"]["Headers"]["Content-Type"] = json!(["application/octet-stream"]);
    let (_, envelope) = app.invoke("Echo", &payload).await;
    assert_eq!(output_body(&envelope)["body_len"], 4);

    // The host would write a base64 string as it is (it ignores Content-Transfer-Encoding), so
    // the caller would get other bytes: the answer says so instead.
    let (_, envelope) = app
        .invoke("Binary", &http_payload("GET", "u", json!({}), None))
        .await;
    assert_eq!(output(&envelope)["statusCode"], 406);
    assert!(output(&envelope)["headers"]["Content-Transfer-Encoding"].is_null());
    let message = output_body(&envelope)["error"]["message"].to_string();
    assert!(message.contains("enableForwardingHttpRequest"), "{message}");
}

#[tokio::test]
async fn an_http_function_error_is_an_error_status_in_the_output_never_a_non_2xx() {
    let app = spawn().await;
    let (status, envelope) = app
        .invoke("Fail", &http_payload("GET", "u", json!({}), None))
        .await;
    assert_eq!(status, 200);
    assert_eq!(output(&envelope)["statusCode"], 403);
    assert_eq!(
        output_body(&envelope)["error"]["message"],
        "the caller may not read this"
    );
    // The warning goes to stderr (a Warning in the host's log), not also into Logs.
    assert_eq!(envelope["Logs"], json!([]));
}

#[tokio::test]
async fn a_panicking_function_fails_only_its_own_invocation_and_the_host_records_a_failure() {
    let app = spawn().await;
    let response = app.post("/Panics", empty_get()).await;
    assert_eq!(response.status(), 500);
    assert!(reason_phrase(&response).starts_with("Panics failed: "));
    let body: Value = response.json_body().await;
    assert_eq!(body["error"]["code"], "InternalError");

    // Forwarded, the head goes out and the connection is cut: the host's client fails reading
    // the answer, which is how a forwarded invocation counts as failed.
    let forwarded = app
        .client
        .get(format!("{}/api/panics", app.base))
        .send()
        .await;
    match forwarded {
        Ok(response) => assert!(
            response.bytes().await.is_err(),
            "the body must not complete"
        ),
        Err(error) => assert!(!error.is_timeout(), "{error}"),
    }
    echo_still_answers(&app, "after").await;
}

#[tokio::test]
async fn malformed_payloads_answer_400_in_the_output_and_never_crash() {
    let app = spawn().await;
    let deep = format!("{}1{}", "[".repeat(50_000), "]".repeat(50_000));
    let bodies = vec![
        "{not json".to_owned(),
        "[]".to_owned(),
        r#"{"Data": {"req": 12}}"#.to_owned(),
        r#"{"Data": {}}"#.to_owned(),
        deep,
        String::new(),
    ];
    for body in bodies {
        let response = app.post("/Echo", body.clone()).await;
        assert_eq!(response.status(), 200);
        let envelope: Value = response.json_body().await;
        assert_eq!(
            output(&envelope)["statusCode"],
            400,
            "{}",
            &body[..body.len().min(40)]
        );
        assert!(
            output_body(&envelope)["error"]["message"]
                .as_str()
                .unwrap()
                .contains("invocation payload")
        );
    }
    echo_still_answers(&app, "still-up").await;
}

#[tokio::test]
async fn a_body_over_the_limit_is_refused_with_413_in_the_output() {
    let app = spawn().await;
    let envelope_limit = custom_handler::dispatch::ENVELOPE_OVERHEAD_BYTES + 2 * MAX_BLOB_BYTES;
    let huge = vec![b'a'; envelope_limit + 1];
    let response = app.post("/Echo", huge).await;
    assert_eq!(response.status(), 200);
    let envelope: Value = response.json_body().await;
    assert_eq!(output(&envelope)["statusCode"], 413);
}

#[tokio::test]
async fn an_unknown_function_is_a_failed_invocation_with_the_reason_in_the_status_line() {
    let app = spawn().await;
    let response = app.post("/Nope", empty_get()).await;
    assert_eq!(response.status(), 404);
    let reason = reason_phrase(&response);
    assert!(reason.contains("no function named 'Nope'"), "{reason}");
}

#[tokio::test]
async fn a_failed_timer_run_answers_the_host_non_2xx_with_its_reason() {
    let app = spawn().await;
    let response = app
        .post("/BrokenTick", timer_payload(json!(null)).to_string())
        .await;
    assert_eq!(response.status(), 502);
    let reason = reason_phrase(&response);
    assert!(
        reason.starts_with("BrokenTick failed: no token could be refreshed"),
        "{reason}"
    );
}

/// The status line's reason phrase, which reqwest does not expose: read from the raw answer.
fn reason_phrase(response: &reqwest::Response) -> String {
    response
        .extensions()
        .get::<hyper::ext::ReasonPhrase>()
        .map(|phrase| String::from_utf8_lossy(phrase.as_bytes()).into_owned())
        .unwrap_or_default()
}

#[tokio::test]
async fn timer_payloads_of_every_shape_run_the_timer_function() {
    let app = spawn().await;
    let statuses = [
        json!(null),
        json!({"Last": "0001-01-01T00:00:00+00:00", "Next": "2024-10-24T17:45:00+00:00", "LastUpdated": "2024-10-24T17:40:00.0049136+00:00"}),
        json!({"Last": "10/24/2024 5:40:00 PM", "Next": "not a date", "LastUpdated": null}),
    ];
    for status in statuses {
        let (code, envelope) = app.invoke("Tick", &timer_payload(status.clone())).await;
        assert_eq!(code, 200);
        assert_eq!(envelope["Outputs"], json!({}));
        let logs = envelope["Logs"].to_string();
        assert!(logs.contains("tick: past due false"), "{status}: {logs}");
    }
}

#[tokio::test]
async fn forwarded_requests_reach_the_function_by_route_and_return_its_response_as_is() {
    let app = spawn().await;
    let response = send(
        app.client
            .post(format!("{}/API/Echo/carol?x=1&x=2", app.base))
            .header("Content-Type", "text/plain")
            .header(
                "X-Azure-Functions-InvocationId",
                "forged-by-client, host-id",
            )
            .body("payload"),
    )
    .await;
    assert_eq!(response.status(), 200);
    let body: Value = response.json_body().await;
    assert_eq!(body["name"], "carol");
    assert_eq!(body["query"]["x"], "1,2");
    assert_eq!(body["body"], "payload");
    assert_eq!(
        body["invocation_id"], "host-id",
        "the host's id is the last one"
    );

    let failed = app.get("/api/fail").await;
    assert_eq!(failed.status(), 403);
    let raw = app.get("/api/binary").await;
    assert_eq!(raw.bytes().await.unwrap().as_ref(), [0u8, 159, 146, 150]);
}

#[tokio::test]
async fn pipelined_requests_each_reach_the_function_with_their_own_headers() {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let app = spawn().await;
    let address = app.base.trim_start_matches("http://");
    let mut stream = tokio::net::TcpStream::connect(address).await.unwrap();
    // Three requests in one write: the server reads the next head while the first is answered.
    let mut requests = String::new();
    for n in 1..=3 {
        let close = if n == 3 { "Connection: close\r\n" } else { "" };
        requests.push_str(&format!(
            "POST /api/echo/n{n} HTTP/1.1\r\nHost: localhost\r\nContent-Type: text/type-{n}\r\n\
             X-Azure-Functions-InvocationId: id-{n}\r\n{close}Content-Length: 1\r\n\r\n{n}"
        ));
    }
    stream.write_all(requests.as_bytes()).await.unwrap();
    let mut answers = String::new();
    stream.read_to_string(&mut answers).await.unwrap();
    let bodies: Vec<Value> = answers
        .split("HTTP/1.1 ")
        .skip(1)
        .map(|answer| {
            assert!(answer.starts_with("200"), "{answer}");
            let (_, body) = answer.split_once("\r\n\r\n").unwrap();
            serde_json::from_str(body).unwrap()
        })
        .collect();
    assert_eq!(bodies.len(), 3, "{answers}");
    for (n, body) in (1..=3).zip(&bodies) {
        assert_eq!(body["name"], format!("n{n}"), "{body}");
        assert_eq!(body["invocation_id"], format!("id-{n}"), "{body}");
        assert_eq!(body["content_type"], format!("text/type-{n}"), "{body}");
        assert_eq!(body["body"], n.to_string(), "{body}");
    }
}

#[tokio::test]
async fn forwarding_answers_404_for_unknown_routes_and_405_for_wrong_methods() {
    let app = spawn().await;
    let missing = app.get("/api/nothing/here").await;
    assert_eq!(missing.status(), 404);
    let wrong = send(app.client.delete(format!("{}/api/echo/x", app.base))).await;
    assert_eq!(wrong.status(), 405);
}

#[tokio::test]
async fn concurrent_invocations_never_mix_their_logs() {
    let app = Arc::new(spawn().await);
    let calls = (0..64).map(|n| {
        let app = app.clone();
        async move {
            let name = format!("caller-{n}");
            let payload = http_payload("GET", "u", json!({"name": name}), None);
            let (_, envelope) = app.invoke("Echo", &payload).await;
            (name, envelope)
        }
    });
    for (name, envelope) in futures::future::join_all(calls).await {
        let logs: Vec<String> = serde_json::from_value(envelope["Logs"].clone()).unwrap();
        assert_eq!(
            logs,
            [
                format!("INFO: echo called for {name}"),
                format!("INFO: echo finished for {name}")
            ]
        );
    }
}

#[tokio::test]
async fn shutdown_lets_in_flight_invocations_finish() {
    let mut app = spawn().await;
    let in_flight = {
        let client = app.client.clone();
        let url = format!("{}/api/slow", app.base);
        tokio::spawn(async move { client.get(url).send().await.unwrap().text().await.unwrap() })
    };
    tokio::time::sleep(Duration::from_millis(100)).await;
    let server = app.stop();
    assert_eq!(in_flight.await.unwrap(), "finished");
    tokio::time::timeout(Duration::from_secs(10), server)
        .await
        .expect("server stopped")
        .unwrap();
}

#[test]
fn the_registry_check_names_every_difference_between_folders_and_code() {
    let root = AppRoot::new(
        json!({"version": "2.0"}),
        &[
            ("Echo", http_function("echo/{name}", &["get"])),
            ("Fail", http_function("failure", &["get"])),
            ("Slow", timer_function("0 * * * * *")),
            ("Orphan", http_function("orphan", &["get"])),
        ],
    );
    let (declared, broken) = load_declared(root.path()).unwrap();
    assert!(broken.is_empty());
    let mut found = compare(&declared, &implemented());
    found.sort_by_key(|m| format!("{m:?}"));
    let mut expected = vec![
        Mismatch::Methods {
            function: "Echo".into(),
            declared: "GET".into(),
            implemented: "GET,POST".into(),
        },
        Mismatch::Route {
            function: "Fail".into(),
            declared: "failure".into(),
            implemented: "fail".into(),
        },
        Mismatch::Trigger {
            function: "Slow".into(),
            declared: "timerTrigger".into(),
            implemented: "httpTrigger".into(),
        },
        Mismatch::DeclaredNotImplemented("Orphan".into()),
        Mismatch::ImplementedNotDeclared("Binary".into()),
        Mismatch::ImplementedNotDeclared("BrokenTick".into()),
        Mismatch::ImplementedNotDeclared("Panics".into()),
        Mismatch::ImplementedNotDeclared("Tick".into()),
    ];
    expected.sort_by_key(|m| format!("{m:?}"));
    assert_eq!(found, expected);
    assert!(compare(&load_declared(app_root().path()).unwrap().0, &implemented()).is_empty());
}

#[test]
fn a_broken_function_json_is_reported_and_the_others_still_load() {
    let root = AppRoot::new(
        json!({}),
        &[
            ("Echo", http_function("echo/{name}", &["get", "post"])),
            ("Bad", json!({"bindings": 3})),
        ],
    );
    let (declared, broken) = load_declared(root.path()).unwrap();
    assert_eq!(declared.len(), 1);
    assert_eq!(broken.len(), 1);
    assert!(broken[0].to_string().contains("Bad"));
}

/// An in-process runtime on an ephemeral port, with functions of the test's own: what only
/// these tests need, since it links the library (the test kit never does).
pub struct TestApp {
    /// `http://127.0.0.1:<port>`.
    pub base: String,
    /// A client for it.
    pub client: reqwest::Client,
    shutdown: Option<oneshot::Sender<()>>,
    server: Option<tokio::task::JoinHandle<()>>,
    _root: AppRoot,
}

impl TestApp {
    /// Starts serving `functions` declared by `root`.
    pub async fn spawn<S: Send + Sync + 'static>(
        root: AppRoot,
        state: S,
        functions: Vec<Implemented<S>>,
    ) -> Self {
        custom_handler::logging::init();
        let listener = tokio::net::TcpListener::bind((std::net::Ipv4Addr::LOCALHOST, 0))
            .await
            .expect("bind");
        let addr: std::net::SocketAddr = listener.local_addr().expect("addr");
        let runtime = handler::app::runtime(root.path(), Arc::new(state), functions);
        let (tx, rx) = oneshot::channel::<()>();
        let server = tokio::spawn(custom_handler::server::run(
            listener,
            Arc::new(runtime),
            async {
                let _ = rx.await;
            },
        ));
        let base = format!("http://{addr}");
        wait_ready(&base).await;
        Self {
            base,
            client: reqwest::Client::new(),
            shutdown: Some(tx),
            server: Some(server),
            _root: root,
        }
    }

    /// `GET path` on the app.
    pub async fn get(&self, path: &str) -> reqwest::Response {
        get(&self.client, format!("{}{path}", self.base)).await
    }

    /// `POST path` on the app with `body`.
    pub async fn post(&self, path: &str, body: impl Into<reqwest::Body>) -> reqwest::Response {
        send(self.client.post(format!("{}{path}", self.base)).body(body)).await
    }

    /// POSTs a JSON-mode invocation of `function` and returns the host envelope.
    pub async fn invoke(&self, function: &str, payload: &Value) -> (u16, Value) {
        let response = post_invocation(&self.client, &self.base, function, payload).await;
        let status = response.status().as_u16();
        let body = response.bytes().await.expect("body");
        (status, serde_json::from_slice(&body).unwrap_or(Value::Null))
    }

    /// Asks the server to stop, and returns the task that completes when it has.
    pub fn stop(&mut self) -> tokio::task::JoinHandle<()> {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        self.server.take().expect("server already stopped")
    }
}
