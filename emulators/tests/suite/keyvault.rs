//! End-to-end tests of `emulators keyvault`: the real binary over HTTPS with real RS256 tokens.

use crate::support::keyvault::*;
use reqwest::Method;
use reqwest::header::HeaderMap;
use serde_json::{Value, json};
use test_kit::jwt::{TestKey, now, with};
use test_kit::pki::TestPki;

const API: &str = "api-version=7.4";

async fn get(f: &Fixture, path: &str, token: Option<&str>) -> (u16, HeaderMap, Value) {
    let mut request = f.client.get(f.vault.url(path));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    parts(request.send().await.unwrap()).await
}

/// `GET /secrets/{rest}` at the current API version, as the holder of `token`.
async fn get_secret(f: &Fixture, token: &str, rest: &str) -> (u16, HeaderMap, Value) {
    get(f, &format!("/secrets/{rest}?{API}"), Some(token)).await
}

/// `PUT /secrets/{rest}` of `body` at the current API version, as the holder of `token`.
async fn put_secret(f: &Fixture, token: &str, rest: &str, body: &Value) -> (u16, HeaderMap, Value) {
    put(f, &format!("/secrets/{rest}?{API}"), Some(token), body).await
}

/// `method` on `path` with headers and body set by `build`, split into status, headers and JSON body.
async fn call(
    f: &Fixture,
    method: Method,
    path: &str,
    build: impl FnOnce(reqwest::RequestBuilder) -> reqwest::RequestBuilder,
) -> (u16, HeaderMap, Value) {
    parts(
        build(f.client.request(method, f.vault.url(path)))
            .send()
            .await
            .unwrap(),
    )
    .await
}

async fn put(
    f: &Fixture,
    path: &str,
    token: Option<&str>,
    body: &Value,
) -> (u16, HeaderMap, Value) {
    let mut request = f
        .client
        .put(f.vault.url(path))
        .header("content-type", "application/json")
        .body(body.to_string());
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    parts(request.send().await.unwrap()).await
}

async fn admin(
    f: &Fixture,
    method: reqwest::Method,
    path: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let mut request = f.client.request(method, f.vault.url(path));
    if let Some(body) = body {
        request = request.body(body.to_string());
    }
    let (status, _, body) = parts(request.send().await.unwrap()).await;
    (status, body)
}

/// `POST /_emulator/faults`: queues one fault rule.
async fn queue_fault(f: &Fixture, fault: Value) -> (u16, Value) {
    admin(f, reqwest::Method::POST, "/_emulator/faults", Some(fault)).await
}

/// Key Vault answers every request, errors included, with a JSON body.
fn assert_json(headers: &HeaderMap) {
    let content_type = headers["content-type"].to_str().unwrap();
    assert!(
        content_type.starts_with("application/json"),
        "{content_type}"
    );
}

fn expected_challenge() -> String {
    format!(
        "Bearer authorization=\"https://login.microsoftonline.com/{TENANT}\", resource=\"https://vault.azure.net\""
    )
}

fn assert_challenge(status: u16, headers: &HeaderMap, body: &Value) {
    assert_eq!(status, 401, "{body}");
    assert_eq!(headers["www-authenticate"], expected_challenge().as_str());
    assert_json(headers);
    assert_eq!(body["error"]["code"], "Unauthorized");
}

fn version_of(id: &Value) -> String {
    id.as_str().unwrap().rsplit('/').next().unwrap().to_string()
}

fn is_32_hex(s: &str) -> bool {
    s.len() == 32 && s.chars().all(|c| c.is_ascii_hexdigit())
}

#[tokio::test]
async fn requests_without_a_token_get_the_key_vault_challenge() {
    let f = Fixture::start(&standard_config()).await;
    let (status, headers, body) = get(&f, &format!("/secrets/demo-secret/?{API}"), None).await;
    assert_challenge(status, &headers, &body);
    assert_eq!(
        body["error"]["message"],
        "AKV10000: Request is missing a Bearer or PoP token."
    );

    // Python's probe: a PUT with Content-Length 0 but a JSON content type.
    let probe = call(&f, Method::PUT, &format!("/secrets/app-x?{API}"), |r| {
        r.header("content-type", "application/json")
            .header("content-length", "0")
    })
    .await;
    let (status, headers, body) = probe;
    assert_challenge(status, &headers, &body);

    let basic = call(
        &f,
        Method::GET,
        &format!("/secrets/demo-secret?{API}"),
        |r| r.header("authorization", "Basic dXNlcjpwdw=="),
    )
    .await;
    let (status, headers, body) = basic;
    assert_challenge(status, &headers, &body);
}

#[tokio::test]
async fn latest_version_with_and_without_trailing_slash() {
    let (f, token) = Fixture::standard_with_token(READER_OID).await;
    let (status, headers, with_slash) =
        get(&f, &format!("/secrets/demo-secret/?{API}"), Some(&token)).await;
    assert_eq!(status, 200, "{with_slash}");
    assert_json(&headers);
    let (status, _, without_slash) =
        get(&f, &format!("/secrets/demo-secret?{API}"), Some(&token)).await;
    assert_eq!(status, 200);
    assert_eq!(with_slash, without_slash);

    let port = f.vault.base_url.rsplit(':').next().unwrap();
    let id = with_slash["id"].as_str().unwrap();
    let prefix = format!("https://127.0.0.1:{port}/secrets/demo-secret/");
    assert!(id.starts_with(&prefix), "{id}");
    let version = version_of(&with_slash["id"]);
    assert!(is_32_hex(&version) && version != DEMO_V1, "{version}");
    assert_eq!(with_slash["value"], "current-value");
    assert_eq!(with_slash["contentType"], "text/plain");
    assert_eq!(with_slash["tags"], json!({"env": "test"}));
    let attributes = &with_slash["attributes"];
    assert_eq!(attributes["enabled"], true);
    assert!(attributes["created"].as_i64().unwrap() > 1_600_000_000);
    assert_eq!(attributes["updated"], attributes["created"]);
    assert_eq!(attributes["recoveryLevel"], "Recoverable+Purgeable");
    assert_eq!(attributes["recoverableDays"], 90);
}

#[tokio::test]
async fn names_are_case_insensitive_and_host_header_shapes_the_id() {
    let (f, token) = Fixture::standard_with_token(READER_OID).await;
    let response = call(
        &f,
        Method::GET,
        &format!("/secrets/DEMO-Secret/?{API}"),
        |r| {
            r.header("host", "myvault.vault.azure.net:8443")
                .bearer_auth(&token)
        },
    )
    .await;
    let (status, _, body) = response;
    assert_eq!(status, 200, "{body}");
    let id = body["id"].as_str().unwrap();
    assert!(
        id.starts_with("https://myvault.vault.azure.net:8443/secrets/demo-secret/"),
        "{id}"
    );
}

#[tokio::test]
async fn get_by_version_and_list_versions() {
    let (f, token) = Fixture::standard_with_token(READER_OID).await;
    let (status, _, first) = get_secret(&f, &token, &format!("demo-secret/{DEMO_V1}")).await;
    assert_eq!(status, 200, "{first}");
    assert_eq!(first["value"], "first-value");
    assert_eq!(version_of(&first["id"]), DEMO_V1);
    assert!(first.get("contentType").is_none());

    let upper = DEMO_V1.to_ascii_uppercase();
    let (status, _, same) = get_secret(&f, &token, &format!("demo-secret/{upper}")).await;
    assert_eq!((status, &same["value"]), (200, &json!("first-value")));

    let (status, _, listing) = get_secret(&f, &token, "demo-secret/versions").await;
    assert_eq!(status, 200, "{listing}");
    let items = listing["value"].as_array().unwrap();
    assert_eq!(items.len(), 2);
    assert!(
        items.iter().all(|item| item.get("value").is_none()),
        "a listing never carries values"
    );
    assert!(items.iter().any(|item| version_of(&item["id"]) == DEMO_V1));
    assert!(listing["nextLink"].is_null());
}

#[tokio::test]
async fn set_creates_versions_that_can_be_read_back() {
    let (f, token) = Fixture::standard_with_token(WRITER_OID).await;
    let body = json!({"value": "s3cr3t", "contentType": "text/plain", "tags": {"a": "b"}});
    let (status, _, created) = put_secret(&f, &token, "app-config", &body).await;
    assert_eq!(status, 200, "{created}");
    assert_eq!(created["value"], "s3cr3t");
    assert_eq!(created["contentType"], "text/plain");
    assert_eq!(created["tags"], json!({"a": "b"}));
    let first_version = version_of(&created["id"]);
    assert!(is_32_hex(&first_version));

    let (status, _, second) =
        put_secret(&f, &token, "app-config", &json!({"value": "rotated"})).await;
    assert_eq!(status, 200);
    let second_version = version_of(&second["id"]);
    assert_ne!(first_version, second_version);
    assert!(second.get("contentType").is_none());

    let (_, _, latest) = get(&f, &format!("/secrets/app-config/?{API}"), Some(&token)).await;
    assert_eq!(
        (&latest["value"], version_of(&latest["id"])),
        (&json!("rotated"), second_version)
    );
    let (_, _, old) = get_secret(&f, &token, &format!("app-config/{first_version}")).await;
    assert_eq!(old["value"], "s3cr3t");

    let (status, _, error) =
        put_secret(&f, &token, "app-config", &json!({"contentType": "x"})).await;
    assert_eq!(
        (status, &error["error"]["code"]),
        (400, &json!("BadParameter"))
    );
}

#[tokio::test]
async fn missing_secrets_and_versions_are_secret_not_found() {
    let (f, token) = Fixture::standard_with_token(WRITER_OID).await;
    let (status, headers, body) = get(&f, &format!("/secrets/nope/?{API}"), Some(&token)).await;
    assert_eq!(status, 404);
    assert_json(&headers);
    assert_eq!(body["error"]["code"], "SecretNotFound");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(
        message.starts_with("A secret with (name/id) nope was not found in this key vault."),
        "{message}"
    );

    let missing_version = "ffffffffffffffffffffffffffffffff";
    let (status, _, body) = get_secret(&f, &token, &format!("demo-secret/{missing_version}")).await;
    assert_eq!(
        (status, &body["error"]["code"]),
        (404, &json!("SecretNotFound"))
    );
    let message = body["error"]["message"].as_str().unwrap();
    assert!(
        message.contains(&format!("demo-secret/{missing_version}")),
        "{message}"
    );
}

#[tokio::test]
async fn access_is_enforced_per_object_id_and_secret() {
    let f = Fixture::start(&standard_config()).await;
    let reader = f.token(READER_OID);
    let forbidden_cases = [
        ("GET", "/secrets/locked-secret/", READER_OID),
        ("GET", "/secrets/never-created/", READER_OID),
        ("GET", "/secrets/demo-secret/", STRANGER_OID),
        ("PUT", "/secrets/demo-secret", READER_OID),
        ("PUT", "/secrets/demo-secret", WRITER_OID),
    ];
    for (method, path, oid) in forbidden_cases {
        let token = f.token(oid);
        let url = format!("{path}?{API}");
        let (status, headers, body) = if method == "GET" {
            get(&f, &url, Some(&token)).await
        } else {
            put(&f, &url, Some(&token), &json!({"value": "x"})).await
        };
        assert_eq!(status, 403, "{method} {path} as {oid}: {body}");
        assert_json(&headers);
        assert_eq!(body["error"]["code"], "Forbidden");
        assert_eq!(body["error"]["innererror"]["code"], "ForbiddenByRbac");
        let message = body["error"]["message"].as_str().unwrap();
        assert!(
            message.starts_with("Caller is not authorized to perform action on resource."),
            "{message}"
        );
        assert!(!message.contains("value"), "no value in a 403: {message}");
    }
    let (status, _, _) = get(&f, &format!("/secrets/app-anything/?{API}"), Some(&reader)).await;
    assert_eq!(status, 404, "app-* is readable, so a missing one is a 404");
}

#[tokio::test]
async fn bad_tokens_get_401_with_a_fresh_challenge() {
    let f = Fixture::start(&standard_config()).await;
    let good = vault_claims(READER_OID);
    let impostor = TestKey::generate("key-1");
    let now = now();
    let hs256 = {
        let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256);
        header.kid = Some("key-1".into());
        jsonwebtoken::encode(
            &header,
            &good,
            &jsonwebtoken::EncodingKey::from_secret(b"secret"),
        )
        .unwrap()
    };
    let alg_none = {
        use base64::Engine;
        let b64 =
            |v: &Value| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string());
        format!(
            "{}.{}.",
            b64(&json!({"alg": "none", "kid": "key-1"})),
            b64(&good)
        )
    };
    // The good claims with some changed, signed by the published key.
    let patched = |patch: Value| f.key.sign(&with(good.clone(), patch));
    let cases = [
        (
            "signature from another key",
            "Signature validation failed",
            impostor.sign(&good),
        ),
        (
            "audience",
            "AKV10022",
            patched(json!({"aud": "https://storage.azure.com"})),
        ),
        (
            "expired",
            "[TokenExpired]",
            patched(json!({"exp": now - 600, "nbf": now - 4000})),
        ),
        (
            "not yet valid",
            "Token not yet valid",
            patched(json!({"nbf": now + 600})),
        ),
        (
            "issuer of another tenant",
            "AKV10032",
            patched(json!({"iss": "https://sts.windows.net/other/"})),
        ),
        (
            "no exp",
            "AKV10000: The bearer token is malformed",
            f.key.sign(&{
                let mut claims = good.clone();
                claims.as_object_mut().unwrap().remove("exp");
                claims
            }),
        ),
        (
            "HS256",
            "The token signing algorithm is not supported",
            hs256,
        ),
        (
            "alg none",
            "AKV10000: The bearer token is malformed",
            alg_none,
        ),
        (
            "not a JWT",
            "AKV10000: The bearer token is malformed",
            "abc.def".to_string(),
        ),
    ];
    for (case, reason, token) in cases {
        let (status, headers, body) =
            get(&f, &format!("/secrets/demo-secret/?{API}"), Some(&token)).await;
        assert_eq!(status, 401, "{case}: {body}");
        assert_challenge(status, &headers, &body);
        let message = body["error"]["message"].as_str().unwrap();
        assert!(message.starts_with(reason), "{case}: {message}");
        assert!(!body.to_string().contains(&token), "{case}: token echoed");
    }

    let slash = patched(json!({"aud": "https://vault.azure.net/"}));
    let (status, _, _) = get(&f, &format!("/secrets/demo-secret/?{API}"), Some(&slash)).await;
    assert_eq!(status, 200, "audience with a trailing slash is accepted");
    let v2 = patched(json!({"iss": format!("https://login.microsoftonline.com/{TENANT}/v2.0")}));
    let (status, _, _) = get(&f, &format!("/secrets/demo-secret/?{API}"), Some(&v2)).await;
    assert_eq!(status, 200, "the v2 issuer of the tenant is accepted");
}

#[tokio::test]
async fn unknown_kid_triggers_one_refetch() {
    let f = Fixture::start(&standard_config()).await;
    let path = format!("/secrets/demo-secret/?{API}");
    let (status, _, _) = get(&f, &path, Some(&f.token(READER_OID))).await;
    assert_eq!(status, 200);
    assert_eq!(f.jwks.fetches(), 1);
    let (status, _, _) = get(&f, &path, Some(&f.token(READER_OID))).await;
    assert_eq!((status, f.jwks.fetches()), (200, 1), "keys are cached");

    let rotated = TestKey::generate("key-2");
    f.jwks.publish(rotated.jwk());
    let (status, _, body) = get(&f, &path, Some(&rotated.sign(&vault_claims(READER_OID)))).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(f.jwks.fetches(), 2, "an unknown kid refetches the JWKS");

    let unpublished = TestKey::generate("key-3").sign(&vault_claims(READER_OID));
    let (status, _, body) = get(&f, &path, Some(&unpublished)).await;
    assert_eq!(status, 401);
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with("AKV10046")
    );
    assert_eq!(f.jwks.fetches(), 3);
    let (status, _, _) = get(&f, &path, Some(&unpublished)).await;
    assert_eq!(status, 401);
    assert_eq!(
        f.jwks.fetches(),
        3,
        "a kid that just missed does not refetch again"
    );
}

#[tokio::test]
async fn bad_names_and_missing_api_version_are_400() {
    let (f, token) = Fixture::standard_with_token(WRITER_OID).await;
    let too_long = "a".repeat(128);
    for name in ["bad_name", "bad.name", too_long.as_str(), "%41bc"] {
        let (status, headers, body) =
            get(&f, &format!("/secrets/{name}?{API}"), Some(&token)).await;
        assert_eq!(status, 400, "{name}: {body}");
        assert_json(&headers);
        assert_eq!(body["error"]["code"], "BadParameter");
    }
    let longest = "a".repeat(127);
    let (status, _, _) = get(&f, &format!("/secrets/{longest}?{API}"), Some(&token)).await;
    assert_eq!(status, 404, "127 characters is a valid name");

    let (status, _, body) = get(&f, "/secrets/demo-secret/", Some(&token)).await;
    assert_eq!(
        (status, &body["error"]["code"]),
        (400, &json!("BadParameter"))
    );
    let (status, _, _) = get(&f, "/secrets/demo-secret/?api-version=", Some(&token)).await;
    assert_eq!(status, 400);
    for version in [
        "7.4",
        "7.6",
        "2025-07-01",
        "2026-04-01",
        "9999-01-01-preview",
    ] {
        let (status, _, _) = get(
            &f,
            &format!("/secrets/demo-secret/?api-version={version}"),
            Some(&token),
        )
        .await;
        assert_eq!(status, 200, "api-version {version}");
    }
}

#[tokio::test]
async fn faults_apply_fifo_to_authenticated_requests() {
    let (f, token) = Fixture::standard_with_token(READER_OID).await;
    let path = format!("/secrets/demo-secret/?{API}");
    let (status, queued) =
        queue_fault(&f, json!({"status": 429, "retry_after": "1", "times": 2})).await;
    assert_eq!((status, &queued["pending"]), (200, &json!(2)));
    let custom = json!({"error": {"code": "Custom", "message": "boom"}});
    let (status, queued) = queue_fault(&f, json!({"status": 503, "body": custom})).await;
    assert_eq!((status, &queued["pending"]), (200, &json!(3)));

    let (status, _, _) = get(&f, &path, None).await;
    assert_eq!(
        status, 401,
        "the unauthenticated probe does not consume a fault"
    );
    for _ in 0..2 {
        let (status, headers, body) = get(&f, &path, Some(&token)).await;
        assert_eq!(status, 429);
        assert_eq!(headers["retry-after"], "1");
        assert_eq!(body["error"]["code"], "Throttled");
    }
    let (status, _, body) = get(&f, &path, Some(&token)).await;
    assert_eq!((status, &body), (503, &custom));
    let (status, _, _) = get(&f, &path, Some(&token)).await;
    assert_eq!(status, 200, "faults are used up");

    queue_fault(&f, json!({"status": 500})).await;
    let (status, _) = admin(&f, reqwest::Method::DELETE, "/_emulator/faults", None).await;
    assert_eq!(status, 204);
    let (status, _, _) = get(&f, &path, Some(&token)).await;
    assert_eq!(status, 200, "cleared faults do not fire");

    for bad in [
        json!({"status": 200}),
        json!({"status": 500, "times": 0}),
        json!({"nope": 1}),
    ] {
        let (status, _) = queue_fault(&f, bad.clone()).await;
        assert_eq!(status, 400, "{bad}");
    }
}

#[tokio::test]
async fn requests_are_counted_without_values_or_tokens() {
    let (f, token) = Fixture::standard_with_token(READER_OID).await;
    get(&f, "/secrets/demo-secret/?api-version=7.6", None).await;
    get(&f, "/secrets/demo-secret/?api-version=7.6", Some(&token)).await;
    get(&f, "/secrets/locked-secret?api-version=7.6", Some(&token)).await;

    let (status, log) = admin(&f, reqwest::Method::GET, "/_emulator/requests", None).await;
    assert_eq!(status, 200);
    assert_eq!(
        (&log["count"], &log["unauthenticated"]),
        (&json!(3), &json!(1))
    );
    let requests = log["requests"].as_array().unwrap();
    let summary: Vec<(String, String, bool, u64)> = requests
        .iter()
        .map(|r| {
            (
                r["method"].as_str().unwrap().to_string(),
                r["path"].as_str().unwrap().to_string(),
                r["authenticated"].as_bool().unwrap(),
                r["status"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        vec![
            ("GET".into(), "/secrets/demo-secret/".into(), false, 401),
            ("GET".into(), "/secrets/demo-secret/".into(), true, 200),
            ("GET".into(), "/secrets/locked-secret".into(), true, 403),
        ]
    );
    assert!(requests.iter().all(|r| r["api_version"] == "7.6"));
    let text = log.to_string();
    assert!(!text.contains("current-value") && !text.contains(&token));

    let (status, _) = admin(&f, reqwest::Method::DELETE, "/_emulator/requests", None).await;
    assert_eq!(status, 204);
    let (_, log) = admin(&f, reqwest::Method::GET, "/_emulator/requests", None).await;
    assert_eq!(
        (&log["count"], log["requests"].as_array().unwrap().len()),
        (&json!(0), 0)
    );
}

#[tokio::test]
async fn logs_name_the_caller_but_never_values_or_tokens() {
    let (f, token) = Fixture::standard_with_token(WRITER_OID).await;
    put_secret(
        &f,
        &token,
        "app-logged",
        &json!({"value": "written-value-123"}),
    )
    .await;
    get(&f, &format!("/secrets/demo-secret/?{API}"), Some(&token)).await;
    get(
        &f,
        &format!("/secrets/locked-secret/?{API}"),
        Some(&f.token(READER_OID)),
    )
    .await;
    let logs = f.vault.wait_for_log(READER_OID);
    assert!(
        logs.iter()
            .any(|l| l.contains("/secrets/app-logged") && l.contains(WRITER_OID)),
        "{logs:?}"
    );
    for line in &logs {
        for forbidden in [
            "written-value-123",
            "current-value",
            "locked-value",
            token.as_str(),
        ] {
            assert!(
                !line.contains(forbidden),
                "log line leaks {forbidden:?}: {line}"
            );
        }
    }
}

#[tokio::test]
async fn exits_cleanly_on_sigterm() {
    let mut f = Fixture::start(&standard_config()).await;
    let status = std::process::Command::new("kill")
        .args(["-TERM", &f.vault.child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    assert!(f.vault.wait_exit().success());
}

#[test]
fn invalid_config_fails_fast_with_a_message() {
    let pki = TestPki::generate();
    let config = pki.dir().join("bad.json");
    std::fs::write(
        &config,
        r#"{"tenant_id": "t", "secrets": {"bad_name": []}}"#,
    )
    .unwrap();
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_emulators"))
        .arg("keyvault")
        .args(["--port", "0", "--jwks-url", "http://127.0.0.1:9/keys"])
        .arg("--cert")
        .arg(&pki.cert_path)
        .arg("--key")
        .arg(&pki.key_path)
        .arg("--config")
        .arg(&config)
        .output()
        .unwrap();
    assert!(!output.status.success());
    assert!(output.stdout.is_empty(), "no ready line for a bad config");
    assert!(String::from_utf8_lossy(&output.stderr).contains("bad_name"));
}

#[tokio::test]
async fn unsupported_operations_and_oversized_bodies_are_refused() {
    let (f, token) = Fixture::standard_with_token(WRITER_OID).await;
    let delete = call(&f, Method::DELETE, &format!("/secrets/app-x?{API}"), |r| {
        r.bearer_auth(&token)
    })
    .await;
    assert_eq!(delete.0, 405);
    let (status, _, body) = get(&f, &format!("/keys/some-key?{API}"), Some(&token)).await;
    assert_eq!(status, 404, "{body}");
    assert_eq!(body["error"]["code"], "NotFound");

    let huge = json!({"value": "x".repeat(300 * 1024)});
    let (status, headers, _) =
        put(&f, &format!("/secrets/app-big?{API}"), Some(&token), &huge).await;
    assert_eq!(status, 413);
    assert_eq!(
        headers["connection"], "close",
        "the unread rest of the body makes the connection unusable, and the answer says so"
    );
    let (status, _, _) = get(&f, &format!("/secrets/app-big?{API}"), Some(&token)).await;
    assert_eq!(status, 404, "nothing was stored");

    let (status, _) = admin(&f, reqwest::Method::GET, "/_emulator/nothing", None).await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn slow_and_reset_faults() {
    let (f, token) = Fixture::standard_with_token(READER_OID).await;
    let path = format!("/secrets/demo-secret/?{API}");
    let (status, _) = queue_fault(&f, json!({"delay_ms": 300})).await;
    assert_eq!(status, 200);
    let started = std::time::Instant::now();
    let (status, _, body) = get(&f, &path, Some(&token)).await;
    // A lower bound only: a sleep can run long, never short.
    assert!(started.elapsed() >= std::time::Duration::from_millis(300));
    assert_eq!(status, 200, "a delay alone answers normally, late: {body}");
    assert_eq!(body["value"], "current-value");

    queue_fault(&f, json!({"reset": true})).await;
    let error = f
        .client
        .get(f.vault.url(&path))
        .bearer_auth(&token)
        .send()
        .await
        .expect_err("no answer may arrive");
    assert!(!error.is_status(), "{error}");
    let (status, _, _) = get(&f, &path, Some(&token)).await;
    assert_eq!(status, 200, "used up");
}
