//! The emulators' own boundaries, replayed as attacks: admin and mint endpoints refuse a Host that
//! is not loopback (DNS rebinding), and the host emulator keeps `%2F` encoded in route values, as
//! the real host does.

use crate::support::host::{Emulator, app_root, host_json, http_function, timer_function};
use serde_json::{Value, json};

const REBOUND_HOSTS: &[&str] = &[
    "evil.example",
    "evil.example:7071",
    "127.0.0.1.evil.example",
];

#[tokio::test(flavor = "multi_thread")]
async fn the_host_emulator_keeps_an_encoded_slash_in_route_values() {
    let app = app_root(
        &host_json(false),
        &[
            (
                "EchoBlob",
                http_function(
                    "anonymous",
                    Some("blobs/{container}/{name}"),
                    Some(&["get"]),
                ),
            ),
            (
                "EchoFiles",
                http_function("anonymous", Some("files/{*path}"), Some(&["get"])),
            ),
        ],
    );
    let emulator = Emulator::start(app.path(), &[], &[]).await;
    let params = |path: &'static str| {
        let emulator = &emulator;
        async move {
            let response = emulator
                .client
                .get(emulator.url(path))
                .send()
                .await
                .unwrap();
            assert_eq!(response.status(), 200, "{path}");
            let echoed = crate::support::host::json_body(response).await;
            echoed["document"]["Data"]["req"]["Params"].clone()
        }
    };
    assert_eq!(
        params("/api/blobs/demo/a%2Fb").await,
        json!({"container": "demo", "name": "a%2Fb"})
    );
    assert_eq!(
        params("/api/blobs/demo/..%2f..%2fazure-webjobs-secrets").await,
        json!({"container": "demo", "name": "..%2f..%2fazure-webjobs-secrets"})
    );
    assert_eq!(
        params("/api/blobs/demo/a%20b").await,
        json!({"container": "demo", "name": "a b"}),
        "other escapes are still decoded"
    );
    assert_eq!(
        params("/api/files/a/b%2Fc").await,
        json!({"path": "a/b%2Fc"}),
        "a catch-all keeps it encoded too"
    );
}

async fn status_with_host(
    client: &reqwest::Client,
    method: reqwest::Method,
    url: &str,
    host: Option<&str>,
    body: Option<Value>,
) -> u16 {
    let mut request = client.request(method, url);
    if let Some(host) = host {
        request = request.header(reqwest::header::HOST, host);
    }
    if let Some(body) = body {
        request = request
            .header("content-type", "application/json")
            .body(body.to_string());
    }
    request.send().await.unwrap().status().as_u16()
}

#[tokio::test(flavor = "multi_thread")]
async fn the_host_emulators_admin_endpoints_answer_only_a_loopback_host() {
    let app = app_root(
        &host_json(false),
        &[("Manual", timer_function("0 0 0 1 1 *", false, None))],
    );
    let emulator = Emulator::start(app.path(), &[], &[]).await;
    let master = emulator.master_key();
    let invoke = |host: Option<&'static str>| {
        let emulator = &emulator;
        let master = master.clone();
        async move {
            let mut request = emulator
                .client
                .post(emulator.url("/admin/functions/Manual"))
                .header("x-functions-key", master)
                .header("content-type", "application/json")
                .body(r#"{"input":""}"#);
            if let Some(host) = host {
                request = request.header(reqwest::header::HOST, host);
            }
            request.send().await.unwrap().status().as_u16()
        }
    };
    for host in REBOUND_HOSTS {
        assert_eq!(invoke(Some(host)).await, 403, "{host}");
        let listing = status_with_host(
            &emulator.client,
            reqwest::Method::GET,
            &emulator.url("/_emulator/invocations"),
            Some(host),
            None,
        )
        .await;
        assert_eq!(listing, 403, "{host}");
    }
    assert_eq!(
        invoke(None).await,
        202,
        "127.0.0.1:<port>, as the client sends it"
    );
    assert_eq!(invoke(Some("localhost")).await, 202);
    let listing = status_with_host(
        &emulator.client,
        reqwest::Method::GET,
        &emulator.url("/_emulator/invocations"),
        Some("[::1]:7071"),
        None,
    )
    .await;
    assert_eq!(listing, 200);
}

#[tokio::test]
async fn the_identity_emulators_admin_and_mint_answer_only_a_loopback_host() {
    let emu = crate::support::identity::Emu::start(&[]);
    let mint = || Some(json!({"identity": "system"}));
    for host in REBOUND_HOSTS {
        for (method, path, body) in [
            (reqwest::Method::POST, "/_emulator/mint", mint()),
            (reqwest::Method::GET, "/_emulator/requests", None),
            (
                reqwest::Method::POST,
                "/_emulator/faults",
                Some(json!({"status": 500})),
            ),
        ] {
            let status =
                status_with_host(&emu.client, method, &emu.url(path), Some(host), body).await;
            assert_eq!(status, 403, "{path} with Host {host}");
        }
    }
    let minted = status_with_host(
        &emu.client,
        reqwest::Method::POST,
        &emu.url("/_emulator/mint"),
        Some("localhost:1"),
        mint(),
    )
    .await;
    assert_eq!(minted, 200);
    let faults = emu
        .admin(reqwest::Method::GET, "/_emulator/faults", None)
        .await;
    assert_eq!(faults.status, 200);
    assert_eq!(
        faults.json["queued"], 0,
        "the refused attempts queued no fault"
    );
}

#[tokio::test]
async fn the_key_vault_emulators_admin_answers_only_a_loopback_host() {
    let fixture =
        crate::support::keyvault::Fixture::start(&crate::support::keyvault::standard_config())
            .await;
    let url = fixture.vault.url("/_emulator/requests");
    for host in REBOUND_HOSTS {
        let status = status_with_host(
            &fixture.client,
            reqwest::Method::GET,
            &url,
            Some(host),
            None,
        )
        .await;
        assert_eq!(status, 403, "{host}");
        let fault = status_with_host(
            &fixture.client,
            reqwest::Method::POST,
            &fixture.vault.url("/_emulator/faults"),
            Some(host),
            Some(json!({"status": 500})),
        )
        .await;
        assert_eq!(fault, 403, "{host}");
    }
    let status = status_with_host(&fixture.client, reqwest::Method::GET, &url, None, None).await;
    assert_eq!(status, 200);
}
