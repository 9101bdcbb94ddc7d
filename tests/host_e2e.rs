//! The path a user takes: HTTP requests to the Functions host emulator, which starts the real
//! `handler` from the repository's own function folders and speaks JSON mode to it, with the
//! identity and Key Vault emulators and Azurite behind.

mod common;

use std::time::{Duration, Instant};

use common::JsonBody;
use common::emulator::Running;
use common::stack::Stack;
use serde_json::Value;

struct Host {
    running: Running,
    key: String,
    client: reqwest::Client,
}

impl Host {
    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.running.base_url)
    }

    async fn get(&self, path: &str) -> reqwest::Response {
        self.client
            .get(self.url(path))
            .header("x-functions-key", &self.key)
            .send()
            .await
            .expect("GET")
    }

    async fn invocations(&self) -> Vec<Value> {
        let body = self
            .client
            .get(self.url("/_emulator/invocations"))
            .send()
            .await
            .expect("invocations");
        let json: Value = serde_json::from_slice(&body.bytes().await.expect("body")).expect("JSON");
        json.as_array().cloned().unwrap_or_default()
    }
}

fn start_host(stack: &Stack, env: &[(&str, &str)]) -> (Host, tempfile::TempDir) {
    let (running, keys) = stack.host(env);
    let key = running.ready_str("function_key");
    (
        Host {
            running,
            key,
            client: reqwest::Client::new(),
        },
        keys,
    )
}

#[tokio::test]
#[ignore = "needs Azurite from npm: run scripts/test"]
async fn every_function_works_through_the_host_and_the_timer_fires_on_its_schedule() {
    let stack = Stack::start(true);
    let (host, _keys) = start_host(&stack, &[("TOKEN_REFRESH_SCHEDULE", "*/2 * * * * *")]);

    let token = host
        .get("/api/token?resource=https://storage.azure.com/.default")
        .await;
    assert_eq!(token.status(), 200);
    let token = token.json_body().await;
    assert_eq!(token["claims"]["aud"], "https://storage.azure.com");

    let secret = host.get("/api/secrets/app-greeting").await;
    assert_eq!(secret.status(), 200);
    assert_eq!(secret.headers()["cache-control"], "no-store");
    assert_eq!(secret.json_body().await["value"], "hello from the vault");

    let written = host
        .client
        .put(host.url(&format!("/api/blobs/e2e/note.txt?code={}", host.key)))
        .header("Content-Type", "text/plain")
        .body("written through the host")
        .send()
        .await
        .unwrap();
    assert_eq!(written.status(), 201);
    let read = host.get("/api/blobs/e2e/note.txt").await;
    assert_eq!(read.headers()["content-type"], "text/plain");
    assert_eq!(read.text().await.unwrap(), "written through the host");

    let binary: Vec<u8> = vec![0, 1, 2, 254, 255];
    let written = host
        .client
        .put(host.url("/api/blobs/e2e/raw.bin"))
        .header("x-functions-key", &host.key)
        .header("Content-Type", "application/octet-stream")
        .body(binary.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(written.json_body().await["size"], binary.len());
    let read = host.get("/api/blobs/e2e/raw.bin").await;
    assert_eq!(
        read.headers()["content-transfer-encoding"],
        "base64",
        "JSON mode carries bodies as text"
    );
    assert_eq!(read.text().await.unwrap(), "AAEC/v8=");

    let deadline = Instant::now() + Duration::from_secs(20);
    let fired = loop {
        let timer_runs: Vec<Value> = host
            .invocations()
            .await
            .into_iter()
            .filter(|i| i["function"] == "RefreshTokens" && i["trigger"] == "timer")
            .collect();
        if let Some(run) = timer_runs.first() {
            break run.clone();
        }
        assert!(
            Instant::now() < deadline,
            "RefreshTokens did not fire on its */2 s schedule within 20 s"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(fired["status"], "succeeded", "{fired}");
    assert!(
        fired["logs"]
            .to_string()
            .contains("token for https://vault.azure.net: valid for"),
        "{fired}"
    );
}

#[tokio::test]
async fn keys_are_enforced_as_in_azure_and_the_admin_api_runs_the_timer() {
    let stack = Stack::start(false);
    let (host, _keys) = start_host(&stack, &[("TOKEN_REFRESH_SCHEDULE", "0 0 0 1 1 *")]);
    let anonymous = host
        .client
        .get(host.url("/api/token"))
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), 401);
    assert!(anonymous.bytes().await.unwrap().is_empty());
    let wrong = host
        .client
        .get(host.url("/api/token?code=wrong"))
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), 401);
    let by_query = host
        .client
        .get(host.url(&format!("/api/token?code={}", host.key)))
        .send()
        .await
        .unwrap();
    assert_eq!(by_query.status(), 200);

    let master = host.running.ready_str("master_key");
    let started = host
        .client
        .post(host.url("/admin/functions/RefreshTokens"))
        .header("x-functions-key", master)
        .header("Content-Type", "application/json")
        .body(r#"{"input":""}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(started.status(), 202);
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let runs = host.invocations().await;
        if let Some(run) = runs.iter().find(|i| i["function"] == "RefreshTokens") {
            assert_eq!(run["status"], "succeeded", "{run}");
            assert!(run["logs"].to_string().contains("valid for"), "{run}");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the admin invocation did not run"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn a_failing_function_answers_its_error_status_and_its_logs_reach_the_host() {
    let stack = Stack::start(false);
    let (host, _keys) = start_host(&stack, &[("TOKEN_REFRESH_SCHEDULE", "0 0 0 1 1 *")]);
    let refused = host.get("/api/secrets/not-allowed").await;
    assert_eq!(refused.status(), 403);
    assert!(
        refused.json_body().await["error"]["message"]
            .as_str()
            .unwrap()
            .contains("ALLOWED_SECRETS")
    );
    let runs = host.invocations().await;
    let run = runs
        .iter()
        .find(|i| i["function"] == "GetSecret")
        .expect("the invocation was recorded");
    assert_eq!(run["http_status"], 403);
    assert!(run["logs"].to_string().contains("answered 403"), "{run}");
}

#[tokio::test]
async fn with_forwarding_on_the_same_functions_serve_forwarded_requests() {
    let stack = Stack::start(false);
    let repo = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let app_root = tempfile::tempdir().unwrap();
    let mut host_json: Value =
        serde_json::from_slice(&std::fs::read(repo.join("host.json")).unwrap()).unwrap();
    host_json["customHandler"]["enableForwardingHttpRequest"] = Value::Bool(true);
    std::fs::write(app_root.path().join("host.json"), host_json.to_string()).unwrap();
    let (declared, _) = handler::registry::load_declared(repo).unwrap();
    for function in &declared {
        std::fs::create_dir_all(app_root.path().join(&function.name)).unwrap();
        std::fs::copy(
            repo.join(&function.name).join("function.json"),
            app_root.path().join(&function.name).join("function.json"),
        )
        .unwrap();
    }
    let (running, _keys) = stack.host_in(
        app_root.path(),
        &[("TOKEN_REFRESH_SCHEDULE", "0 0 0 1 1 *")],
    );
    let key = running.ready_str("function_key");
    let host = Host {
        running,
        key,
        client: reqwest::Client::new(),
    };
    let token = host.get("/api/token").await;
    assert_eq!(token.status(), 200);
    assert_eq!(
        token.json_body().await["claims"]["aud"],
        "https://vault.azure.net"
    );
    let secret = host.get("/api/secrets/app-greeting").await;
    assert_eq!(secret.json_body().await["value"], "hello from the vault");
    let modes: Vec<Value> = host
        .invocations()
        .await
        .iter()
        .map(|i| i["mode"].clone())
        .collect();
    assert!(
        !modes.is_empty() && modes.iter().all(|m| m == "forwarding"),
        "{modes:?}"
    );
}
