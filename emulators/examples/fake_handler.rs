//! A tiny custom handler used to drive `emulators host` in tests. It is written from the same
//! contract (docs/host-contract.md), independently of the real handler, and behaves per function
//! name:
//!
//! - `POST /Echo*`: answers `Outputs.res` with the whole received document (and the request's
//!   headers, the five host variables and the working directory) as a JSON-object body.
//! - `POST /Status`: status from `Data.req.Query.status`, as a number when `as=number`.
//! - `POST /Logs`: a few `Logs` entries. `POST /Fail`: HTTP 500 (with Logs that must be dropped).
//! - `POST /TextReply`: 200 with `text/plain` (the host refuses it).
//! - `POST /ReturnHttp`: an http `$return` through `ReturnValue`.
//! - any other `POST /{Name}` whose trigger value looks like a TimerInfo: Logs describing it.
//! - `/api/...` (forwarding mode): a JSON echo of method, path, query, headers and body, with
//!   the status taken from `?status=`, answered after `?delay_ms=` if given.
//! - `GET /`: 200 (readiness).
//!
//! Environment knobs: `FAKE_HANDLER_START_DELAY_MS` (sleep before listening),
//! `FAKE_HANDLER_DIE_AFTER_MS` (exit 3 after serving that long), `FAKE_HANDLER_RECORD` (append
//! one JSON line per request to that file), `FAKE_HANDLER_NO_ORPHAN_CHECK` (do not exit on its
//! own when the emulator disappears).

use std::convert::Infallible;
use std::io::Write;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use serde_json::{Map, Value, json};

type Reply = Response<Full<Bytes>>;

/// A received request, as recorded and echoed.
struct Received {
    method: String,
    path: String,
    query: String,
    headers: Map<String, Value>,
    body: Vec<u8>,
}

impl Received {
    fn to_json(&self) -> Value {
        json!({
            "method": self.method,
            "path": self.path,
            "query": self.query,
            "headers": self.headers,
            "body": String::from_utf8_lossy(&self.body),
        })
    }
}

fn env_ms(name: &str) -> Option<u64> {
    std::env::var(name).ok().and_then(|v| v.parse().ok())
}

#[tokio::main]
async fn main() {
    let Some(port) = std::env::var("FUNCTIONS_CUSTOMHANDLER_PORT")
        .ok()
        .and_then(|p| p.parse::<u16>().ok())
    else {
        eprintln!("FUNCTIONS_CUSTOMHANDLER_PORT is missing or not a port");
        std::process::exit(2);
    };
    if let Some(delay) = env_ms("FAKE_HANDLER_START_DELAY_MS") {
        tokio::time::sleep(Duration::from_millis(delay)).await;
    }
    let listener = match tokio::net::TcpListener::bind(("127.0.0.1", port)).await {
        Ok(listener) => listener,
        Err(e) => {
            eprintln!("cannot bind 127.0.0.1:{port}: {e}");
            std::process::exit(2);
        }
    };
    println!("fake handler listening on port {port}");
    eprintln!("warning: fake handler stderr warn line");
    eprintln!("fake handler stderr plain line");
    if let Some(after) = env_ms("FAKE_HANDLER_DIE_AFTER_MS") {
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(after)).await;
            println!("fake handler exiting on purpose");
            std::process::exit(3);
        });
    }
    if std::env::var_os("FAKE_HANDLER_NO_ORPHAN_CHECK").is_none() {
        tokio::spawn(exit_when_orphaned());
    }
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        tokio::spawn(async move {
            let service =
                service_fn(|request| async { Ok::<_, Infallible>(handle(request).await) });
            let _ = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

/// Exits when the parent (the emulator) is gone, so a killed test leaves nothing behind.
async fn exit_when_orphaned() {
    // SAFETY: getppid has no preconditions.
    let parent = unsafe { libc::getppid() };
    loop {
        tokio::time::sleep(Duration::from_millis(300)).await;
        // SAFETY: as above.
        if unsafe { libc::getppid() } != parent {
            std::process::exit(4);
        }
    }
}

async fn handle(request: Request<Incoming>) -> Reply {
    let method = request.method().as_str().to_string();
    let path = request.uri().path().to_string();
    let query = request.uri().query().unwrap_or_default().to_string();
    let mut headers = Map::new();
    for (name, value) in request.headers() {
        let entry = headers
            .entry(name.as_str().to_string())
            .or_insert_with(|| Value::Array(vec![]));
        if let Value::Array(values) = entry {
            values.push(Value::String(
                String::from_utf8_lossy(value.as_bytes()).into_owned(),
            ));
        }
    }
    let body = request
        .into_body()
        .collect()
        .await
        .map(|c| c.to_bytes().to_vec())
        .unwrap_or_default();
    let received = Received {
        method,
        path,
        query,
        headers,
        body,
    };
    record(&received);
    if received.method == "GET" && received.path == "/" {
        return text(200, "text/plain", "ok");
    }
    if received.path.to_ascii_lowercase().starts_with("/api/") {
        if let Some(delay) = query_number(&received.query, "delay_ms") {
            tokio::time::sleep(Duration::from_millis(delay)).await;
        }
        return forwarded(&received);
    }
    let name = received.path.trim_start_matches('/').to_ascii_lowercase();
    if received.method != "POST" || name.contains('/') {
        return text(404, "text/plain", "not found");
    }
    let document: Value = serde_json::from_slice(&received.body).unwrap_or(Value::Null);
    json_mode(&name, &document, &received)
}

/// Appends the request to `FAKE_HANDLER_RECORD`, if set.
fn record(received: &Received) {
    let Ok(path) = std::env::var("FAKE_HANDLER_RECORD") else {
        return;
    };
    if let Ok(mut file) = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
    {
        let _ = writeln!(file, "{}", received.to_json());
    }
}

fn text(status: u16, content_type: &str, body: &str) -> Reply {
    let mut response = Response::new(Full::new(Bytes::from(body.to_string())));
    *response.status_mut() = hyper::StatusCode::from_u16(status).unwrap_or_default();
    if let Ok(value) = content_type.parse() {
        response.headers_mut().insert("content-type", value);
    }
    response
}

fn json_reply(status: u16, value: &Value) -> Reply {
    text(status, "application/json", &value.to_string())
}

/// Forwarding mode: echo the raw request; `?status=` picks the status.
fn forwarded(received: &Received) -> Reply {
    let status = query_number(&received.query, "status")
        .and_then(|status| u16::try_from(status).ok())
        .unwrap_or(200);
    let mut reply = json_reply(status, &received.to_json());
    reply.headers_mut().insert(
        "x-fake-forwarded",
        hyper::header::HeaderValue::from_static("1"),
    );
    reply
}

/// A number in the query under `name`.
fn query_number(query: &str, name: &str) -> Option<u64> {
    url::form_urlencoded::parse(query.as_bytes())
        .find(|(k, _)| k == name)
        .and_then(|(_, v)| v.parse().ok())
}

/// The first `Data` entry (the trigger value).
fn trigger_value(document: &Value) -> Value {
    document["Data"]
        .as_object()
        .and_then(|data| data.values().next().cloned())
        .unwrap_or(Value::Null)
}

fn json_mode(name: &str, document: &Value, received: &Received) -> Reply {
    let trigger = trigger_value(document);
    match name {
        n if n.starts_with("echo") => echo(document, received),
        "status" => {
            let status = trigger["Query"]["status"]
                .as_str()
                .unwrap_or("200")
                .to_string();
            let as_number = trigger["Query"]["as"].as_str() == Some("number");
            let status_value = if as_number {
                json!(status.parse::<u16>().unwrap_or(200))
            } else {
                json!(status)
            };
            json_reply(
                200,
                &json!({
                    "Outputs": {"res": {"statusCode": status_value, "body": "status test",
                        "headers": {"Content-Type": "text/plain; charset=utf-8", "X-Custom": "yes"}}},
                    "Logs": [format!("status chosen {status}")],
                    "ReturnValue": null
                }),
            )
        }
        "logs" => json_reply(
            200,
            &json!({
                "Outputs": {"res": {"statusCode": 200, "body": "logged"}},
                "Logs": ["first line", "second line", 42],
                "ReturnValue": null
            }),
        ),
        "fail" => json_reply(
            500,
            &json!({
                "Outputs": {"res": {"statusCode": 200, "body": "must not be seen"}},
                "Logs": ["must be dropped"]
            }),
        ),
        "textreply" => text(200, "text/plain", "{\"Outputs\":{}}"),
        "returnhttp" => json_reply(
            200,
            &json!({
                "Outputs": {},
                "Logs": [],
                "ReturnValue": {"statusCode": "202", "body": "from return",
                    "headers": {"Content-Type": "text/plain"}}
            }),
        ),
        _ if trigger.get("Schedule").is_some() => {
            let metadata_keys: Vec<&String> = document["Metadata"]
                .as_object()
                .map(|m| m.keys().collect())
                .unwrap_or_default();
            json_reply(
                200,
                &json!({
                    "Outputs": {},
                    "Logs": [
                        format!("timer {name} fired"),
                        format!("timerinfo {trigger}"),
                        format!("metadata keys {}", serde_json::to_string(&metadata_keys).unwrap_or_default()),
                    ],
                    "ReturnValue": null
                }),
            )
        }
        _ => text(404, "text/plain", "unknown function"),
    }
}

/// Echo: the document, the request line/headers and the process environment.
fn echo(document: &Value, received: &Received) -> Reply {
    let env: Map<String, Value> = [
        "FUNCTIONS_CUSTOMHANDLER_PORT",
        "FUNCTIONS_HTTPWORKER_PORT",
        "FUNCTIONS_CUSTOMHANDLER_WORKER_ID",
        "FUNCTIONS_HTTPWORKER_ID",
        "FUNCTIONS_APP_ROOT_PATH",
        "FAKE_INHERITED",
    ]
    .iter()
    .filter_map(|k| {
        std::env::var(k)
            .ok()
            .map(|v| (k.to_string(), Value::String(v)))
    })
    .collect();
    let cwd = std::env::current_dir()
        .map(|d| d.display().to_string())
        .unwrap_or_default();
    json_reply(
        200,
        &json!({
            "Outputs": {"res": {
                "statusCode": 200,
                "headers": {"Content-Type": "application/json", "X-Echo": "1"},
                "body": {"document": document, "request": received.to_json(), "env": env, "cwd": cwd,
                "args": std::env::args().skip(1).collect::<Vec<_>>()}
            }},
            "Logs": ["echo done"],
            "ReturnValue": null
        }),
    )
}
