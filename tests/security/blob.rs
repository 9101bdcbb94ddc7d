//! Blob scope, as an attacker holding one function key would try it: the host's keys and state
//! (`azure-webjobs-*`), deployment containers (`scm-*`, `app-package-*`), containers
//! ALLOWED_CONTAINERS does not name, and names that would move the request elsewhere (`..`, `.`,
//! empty segments, backslashes, control characters, `%2F`). Every refusal is asserted to cost
//! zero requests to Storage (a recording fake account) and zero token requests.

use std::path::Path;

use serde_json::{Value, json};

use test_kit::handler::{AppRoot, RunningHandler, blob_request, get, http_output, repo_root, send};
use test_kit::server::{FakeServer, storage_account};
use test_kit::stack::{Stack, set_env};

/// Containers of the Functions host (keys, state) and of deployments, never served whatever
/// ALLOWED_CONTAINERS says.
const PLATFORM_CONTAINERS: [&str; 4] = [
    "azure-webjobs-secrets",
    "azure-webjobs-hosts",
    "scm-releases",
    "app-package-x",
];

/// The account path the handler is pointed at (Azurite-style, path-style account).
const ACCOUNT: &str = "devstoreaccount1";

/// The real binary in front of the identity emulator and a recording fake Storage account.
pub struct BlobApp {
    pub stack: Stack,
    pub storage: FakeServer,
    pub handler: RunningHandler,
    _root: Option<AppRoot>,
}

impl BlobApp {
    /// JSON mode, the repository's own function folders, ALLOWED_CONTAINERS = `allowed`
    /// (absent when `None`), plus `extra` settings.
    pub async fn start(allowed: Option<&str>, extra: &[(&str, &str)]) -> Self {
        Self::start_in(None, allowed, extra).await
    }

    /// Forwarding mode (`enableForwardingHttpRequest: true`), the same functions.
    pub async fn forwarding(allowed: Option<&str>) -> Self {
        let mut host: Value = read_json(&repo_root().join("host.json"));
        host["customHandler"]["enableForwardingHttpRequest"] = json!(true);
        let functions: Vec<(&str, Value)> = ["WriteBlob", "ReadBlob", "CallApi"]
            .into_iter()
            .map(|name| {
                (
                    name,
                    read_json(&repo_root().join(name).join("function.json")),
                )
            })
            .collect();
        Self::start_in(Some(AppRoot::new(host, &functions)), allowed, &[]).await
    }

    async fn start_in(
        root: Option<AppRoot>,
        allowed: Option<&str>,
        extra: &[(&str, &str)],
    ) -> Self {
        let stack = Stack::start(false);
        let storage = FakeServer::https(stack.pki.dir(), storage_account()).await;
        let mut env = stack.handler_env();
        let storage_url = format!("{}/{ACCOUNT}", storage.base);
        set_env(&mut env, "STORAGE_BLOB_URL", Some(&storage_url));
        set_env(&mut env, "ALLOWED_CONTAINERS", allowed);
        env.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        let pairs: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let handler =
            RunningHandler::start(root.as_ref().map_or(repo_root(), AppRoot::path), &pairs).await;
        Self {
            stack,
            storage,
            handler,
            _root: root,
        }
    }

    /// A JSON-mode WriteBlob or ReadBlob, with the route values the host would send.
    pub async fn invoke(
        &self,
        function: &str,
        container: &str,
        name: &str,
        body: Option<(&str, &str)>,
    ) -> Value {
        let payload = blob_payload(function, container, name, body);
        self.handler.invoke(function, &payload).await
    }

    /// WriteBlob (with `body`) then ReadBlob of `container`/`name`: each function's status and
    /// answer, for refusals that must hold for both.
    pub async fn write_and_read(
        &self,
        container: &str,
        name: &str,
        body: (&str, &str),
    ) -> Vec<(&'static str, u16, Value)> {
        let mut answers = Vec::new();
        for (function, body) in [("WriteBlob", Some(body)), ("ReadBlob", None)] {
            let (status, answer) = http_output(&self.invoke(function, container, name, body).await);
            answers.push((function, status, answer));
        }
        answers
    }

    /// The path of every request the fake Storage account received.
    pub fn storage_paths(&self) -> Vec<String> {
        self.storage
            .requests()
            .iter()
            .map(|r| r.path().to_owned())
            .collect()
    }

    /// Storage requests and token requests so far.
    pub async fn upstream_requests(&self) -> (usize, u64) {
        (self.storage.count(), self.stack.token_requests().await)
    }
}

/// The payload the host sends for a WriteBlob or ReadBlob of `container`/`name`.
fn blob_payload(function: &str, container: &str, name: &str, body: Option<(&str, &str)>) -> Value {
    let method = if function == "WriteBlob" {
        "PUT"
    } else {
        "GET"
    };
    blob_request(method, container, name, body)
}

fn read_json(path: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(path).expect("read JSON")).expect("parse JSON")
}

fn message(body: &Value) -> String {
    body["error"]["message"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

#[tokio::test]
async fn the_hosts_and_the_platforms_containers_are_refused_even_when_allowed_by_a_wildcard() {
    let app = BlobApp::start(Some("*"), &[]).await;
    for container in PLATFORM_CONTAINERS {
        let body = ("application/json", "{\"keys\":[]}");
        for (function, status, answer) in app.write_and_read(container, "host.json", body).await {
            assert_eq!(status, 403, "{function} {container}: {answer}");
            assert!(message(&answer).contains("never served"), "{answer}");
        }
    }
    assert_eq!(
        app.upstream_requests().await,
        (0, 0),
        "refused before any request"
    );
    // The same app does reach Storage for a container of its own: the counters can count.
    let (status, answer) = http_output(
        &app.invoke("WriteBlob", "demo", "ok.txt", Some(("text/plain", "ok")))
            .await,
    );
    assert_eq!(status, 201, "{answer}");
    let (storage, tokens) = app.upstream_requests().await;
    assert!(
        storage >= 1 && tokens >= 1,
        "{storage} storage, {tokens} token requests"
    );
    let paths = app.storage_paths();
    assert!(
        paths
            .iter()
            .all(|p| p.starts_with(&format!("/{ACCOUNT}/demo"))),
        "{paths:?}"
    );
}

#[tokio::test]
async fn a_container_not_in_allowed_containers_is_403_naming_the_setting() {
    let app = BlobApp::start(Some("demo,logs-*"), &[]).await;
    for container in ["other", "logs", "demo2", "dem"] {
        let body = ("text/plain", "x");
        for (function, status, answer) in app.write_and_read(container, "a.txt", body).await {
            assert_eq!(status, 403, "{function} {container}: {answer}");
            assert!(message(&answer).contains("ALLOWED_CONTAINERS"), "{answer}");
        }
    }
    assert_eq!(app.upstream_requests().await, (0, 0));
    let (status, answer) = http_output(
        &app.invoke("WriteBlob", "logs-2026", "a.txt", Some(("text/plain", "x")))
            .await,
    );
    assert_eq!(
        status, 201,
        "a prefix entry allows its containers: {answer}"
    );
}

#[tokio::test]
async fn without_allowed_containers_no_container_is_usable() {
    let app = BlobApp::start(None, &[]).await;
    let (status, answer) = http_output(&app.invoke("ReadBlob", "demo", "a.txt", None).await);
    assert_eq!(status, 403, "{answer}");
    assert!(
        message(&answer).contains("ALLOWED_CONTAINERS is not set"),
        "{answer}"
    );
    assert_eq!(app.upstream_requests().await, (0, 0));
}

#[tokio::test]
async fn names_that_would_leave_the_container_are_400_before_any_request() {
    let app = BlobApp::start(Some("demo"), &[]).await;
    for name in [
        "..",
        ".",
        "",
        "a\\b",
        "..\\azure-webjobs-secrets",
        "a\u{1}b",
        "a\nb",
        "a\u{7f}",
        // what the real host passes on, undecoded, for a %2F in the URL
        "a%2Fb",
        "..%2F..%2Fazure-webjobs-secrets%2Fhost.json",
        "x%2f..%2f..%2fscm-releases",
        // what a host that decodes %2F would pass on
        "../azure-webjobs-secrets/host.json",
        "a/../../scm-releases/x",
        "a//b",
        "/a",
    ] {
        let body = ("text/plain", "x");
        for (function, status, answer) in app.write_and_read("demo", name, body).await {
            assert_eq!(status, 400, "{function} {name:?}: {answer}");
        }
    }
    assert_eq!(app.upstream_requests().await, (0, 0));
}

#[tokio::test]
async fn in_forwarding_mode_an_encoded_slash_never_reaches_storage() {
    let app = BlobApp::forwarding(Some("demo")).await;
    let client = reqwest::Client::new();
    let url = |path: &str| format!("{}/api/blobs/{path}", app.handler.base);
    let write = |path: &str, body: &'static str| {
        let request = client.put(url(path)).header("content-type", "text/plain");
        send(request.body(body))
    };
    let read_status = |path: &str| {
        let response = get(&client, url(path));
        async { response.await.status().as_u16() }
    };
    for path in [
        "demo/a%2Fb",
        "demo/a%2fb",
        "demo/..%2F..%2Fazure-webjobs-secrets%2Fhost.json",
        "demo/x%2F..%2F..%2Fscm-releases%2Fy",
        "demo/a%5Cb",
        "demo/a%00b",
    ] {
        assert_eq!(write(path, "x").await.status(), 400, "PUT {path}");
        assert_eq!(read_status(path).await, 400, "GET {path}");
    }
    for path in [
        "azure-webjobs-secrets/host.json",
        "app-package-x/app.zip",
        "other/a.txt",
    ] {
        assert_eq!(read_status(path).await, 403, "GET {path}");
    }
    assert_eq!(app.upstream_requests().await, (0, 0));
    assert_eq!(write("demo/ok.txt", "ok").await.status(), 201);
    let paths = app.storage_paths();
    assert_eq!(
        paths.last().map(String::as_str),
        Some("/devstoreaccount1/demo/ok.txt"),
        "{paths:?}"
    );
}
