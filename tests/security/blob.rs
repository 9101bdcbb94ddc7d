//! Blob scope, as an attacker holding one function key would try it: the host's keys and state
//! (`azure-webjobs-*`), deployment containers (`scm-*`, `app-package-*`), containers
//! ALLOWED_CONTAINERS does not name, and names that would move the request elsewhere (`..`, `.`,
//! empty segments, backslashes, control characters, `%2F`). Every refusal is asserted to cost
//! zero requests to Storage (a recording fake account) and zero token requests.

use std::path::Path;

use serde_json::{Value, json};

use test_kit::handler::{AppRoot, RunningHandler, http_output, http_payload, repo_root};
use test_kit::server::{FakeServer, storage_account};
use test_kit::stack::Stack;

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
        let mut env: Vec<(String, String)> = stack
            .handler_env()
            .into_iter()
            .filter(|(name, _)| name != "ALLOWED_CONTAINERS")
            .collect();
        env.push((
            "STORAGE_BLOB_URL".into(),
            format!("{}/{ACCOUNT}", storage.base),
        ));
        if let Some(allowed) = allowed {
            env.push(("ALLOWED_CONTAINERS".into(), allowed.into()));
        }
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
        let method = if function == "WriteBlob" {
            "PUT"
        } else {
            "GET"
        };
        let url = format!("http://localhost:7071/api/blobs/{container}/{name}");
        let params = json!({"container": container, "name": name});
        let mut payload = http_payload(method, &url, params, body.map(|(_, text)| text));
        if let Some((content_type, _)) = body {
            payload["Data"]["req"]["Headers"]["Content-Type"] = json!([content_type]);
        }
        self.handler.invoke(function, &payload).await
    }

    /// Storage requests and token requests so far.
    pub async fn upstream_requests(&self) -> (usize, u64) {
        (self.storage.count(), self.stack.token_requests().await)
    }
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
    for container in [
        "azure-webjobs-secrets",
        "azure-webjobs-hosts",
        "scm-releases",
        "app-package-x",
    ] {
        for function in ["WriteBlob", "ReadBlob"] {
            let body = (function == "WriteBlob").then_some(("application/json", "{\"keys\":[]}"));
            let (status, answer) =
                http_output(&app.invoke(function, container, "host.json", body).await);
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
    let paths: Vec<String> = app
        .storage
        .requests()
        .iter()
        .map(|r| r.path().to_owned())
        .collect();
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
        for function in ["WriteBlob", "ReadBlob"] {
            let body = (function == "WriteBlob").then_some(("text/plain", "x"));
            let (status, answer) =
                http_output(&app.invoke(function, container, "a.txt", body).await);
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
        for function in ["WriteBlob", "ReadBlob"] {
            let body = (function == "WriteBlob").then_some(("text/plain", "x"));
            let (status, answer) = http_output(&app.invoke(function, "demo", name, body).await);
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
    for path in [
        "demo/a%2Fb",
        "demo/a%2fb",
        "demo/..%2F..%2Fazure-webjobs-secrets%2Fhost.json",
        "demo/x%2F..%2F..%2Fscm-releases%2Fy",
        "demo/a%5Cb",
        "demo/a%00b",
    ] {
        let write = client
            .put(url(path))
            .header("content-type", "text/plain")
            .body("x");
        let status = write.send().await.expect("PUT").status().as_u16();
        assert_eq!(status, 400, "PUT {path}");
        let status = client
            .get(url(path))
            .send()
            .await
            .expect("GET")
            .status()
            .as_u16();
        assert_eq!(status, 400, "GET {path}");
    }
    for path in [
        "azure-webjobs-secrets/host.json",
        "app-package-x/app.zip",
        "other/a.txt",
    ] {
        let status = client
            .get(url(path))
            .send()
            .await
            .expect("GET")
            .status()
            .as_u16();
        assert_eq!(status, 403, "GET {path}");
    }
    assert_eq!(app.upstream_requests().await, (0, 0));
    let write = client
        .put(url("demo/ok.txt"))
        .header("content-type", "text/plain")
        .body("ok");
    assert_eq!(write.send().await.expect("PUT").status(), 201);
    let paths: Vec<String> = app
        .storage
        .requests()
        .iter()
        .map(|r| r.path().to_owned())
        .collect();
    assert_eq!(
        paths.last().map(String::as_str),
        Some("/devstoreaccount1/demo/ok.txt"),
        "{paths:?}"
    );
}
