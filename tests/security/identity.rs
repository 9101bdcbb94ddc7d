//! Identity and tokens: the Azure CLI fallback, TokenInfo's audiences and identities, the token
//! cache's bounds, the protocol fallback, Whoami's token type, proxies and Debug output.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use futures::StreamExt;
use serde_json::{Value, json};

/// How many invocations the flood tests keep in flight: enough to race each other, few enough
/// to stay under any in-flight cap of the runtime.
const IN_FLIGHT: usize = 16;

use test_kit::attacks::SHELL_ATTACKS;
use test_kit::handler::{RunningHandler, get_secret, http_output, http_payload, token_info};
use test_kit::stack::{READER_CLIENT_ID, Stack, set_env};

fn whoami(authorization: Option<&str>) -> Value {
    let mut payload = http_payload("GET", "http://localhost:7071/api/whoami", json!({}), None);
    if let Some(value) = authorization {
        payload["Data"]["req"]["Headers"]["Authorization"] = json!([value]);
    }
    payload
}

#[cfg(unix)]
#[tokio::test]
async fn shell_metacharacters_in_resource_never_start_a_process_or_reach_the_identity_endpoint() {
    use std::os::unix::fs::PermissionsExt;
    // A fake `az` first on PATH that records every start.
    let bin = tempfile::tempdir().unwrap();
    let marker = bin.path().join("started");
    let az = bin.path().join("az");
    let expires = time::OffsetDateTime::now_utc().unix_timestamp() + 3600;
    std::fs::write(
        &az,
        format!(
            "#!/bin/sh\necho \"$@\" >> '{}'\necho '{{\"accessToken\":\"cli-token\",\"expires_on\":{expires},\"tokenType\":\"Bearer\"}}'\n",
            marker.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&az, std::fs::Permissions::from_mode(0o755)).unwrap();
    let path = format!(
        "{}:{}",
        bin.path().display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let handler =
        RunningHandler::start(root, &[("PATH", &path), ("AZURE_TOKEN_CREDENTIALS", "dev")]).await;
    for attack in SHELL_ATTACKS {
        let (status, body) = handler.token_info(json!({"resource": attack})).await;
        assert_eq!(status, 400, "{attack:?}: {body}");
        assert!(!marker.exists(), "{attack:?} started a process");
    }
    // The same handler does start `az` for a resource it serves, so the check above can fail.
    let (status, body) = handler
        .token_info(json!({"resource": "https://vault.azure.net"}))
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["source"], "Azure CLI (AZURE_TOKEN_CREDENTIALS)");
    let started = std::fs::read_to_string(&marker).unwrap();
    assert_eq!(
        started.trim(),
        "account get-access-token --output json --resource https://vault.azure.net"
    );
}

#[tokio::test]
async fn shell_metacharacters_reach_no_identity_endpoint_either() {
    let (stack, handler) = Stack::start_with_handler(false, &[]).await;
    for attack in SHELL_ATTACKS {
        let (status, body) = handler.token_info(json!({"resource": attack})).await;
        assert_eq!(status, 400, "{attack:?}: {body}");
        assert_eq!(body["error"]["code"], "BadRequest");
    }
    assert_eq!(stack.token_requests().await, 0);
}

#[tokio::test]
async fn unlisted_audiences_and_identities_are_refused_before_any_identity_request() {
    let (stack, handler) = Stack::start_with_handler(false, &[]).await;
    for query in [
        json!({"resource": "https://graph.microsoft.com"}),
        json!({"resource": "https://management.azure.com/.default"}),
        json!({"resource": "api://00000000-0000-4000-8000-00000000dead"}),
        json!({"client_id": READER_CLIENT_ID}),
        json!({"object_id": "00000000-0000-4000-8000-00000000b002"}),
        json!({"resource_id": "/subscriptions/00000000-0000-4000-8000-000000000000/resourceGroups/rg/providers/Microsoft.ManagedIdentity/userAssignedIdentities/reader"}),
    ] {
        let (status, body) = handler.token_info(query.clone()).await;
        assert_eq!(status, 403, "{query}: {body}");
        let message = body["error"]["message"].as_str().unwrap();
        let setting = if query.get("resource").is_some() {
            "TOKEN_INFO_RESOURCES"
        } else {
            "TOKEN_INFO_IDENTITIES"
        };
        assert!(message.contains(setting), "{query}: {message}");
    }
    assert_eq!(stack.token_requests().await, 0);
    // What the app itself uses is served.
    let (status, _) = handler
        .token_info(json!({"resource": "https://storage.azure.com"}))
        .await;
    assert_eq!(status, 200);
    assert_eq!(stack.token_requests().await, 1);
}

#[tokio::test]
async fn a_thousand_distinct_bad_resources_cost_no_identity_request() {
    let stack = Stack::start(false);
    let handler = Arc::new(stack.start_handler(&[]).await);
    let calls = (0..1000).map(|n| {
        let handler = handler.clone();
        async move {
            let resource = if n % 2 == 0 {
                format!("https://r{n}.example.com")
            } else {
                format!("https://r{n}.example.com&x")
            };
            let envelope = handler
                .invoke("TokenInfo", &token_info(json!({"resource": resource})))
                .await;
            http_output(&envelope).0
        }
    });
    let statuses: Vec<u16> = futures::stream::iter(calls)
        .buffer_unordered(IN_FLIGHT)
        .collect()
        .await;
    assert!(
        statuses.iter().all(|s| *s == 403 || *s == 400),
        "{statuses:?}"
    );
    assert_eq!(statuses.iter().filter(|s| **s == 400).count(), 500);
    assert_eq!(stack.token_requests().await, 0);
}

#[tokio::test]
async fn the_module_itself_bounds_its_cache_and_sends_one_request_per_distinct_resource() {
    use managed_identity::{IdentityConfig, ManagedIdentity, Timing};
    let stack = Stack::start(false);
    let env = stack.handler_env();
    let config = IdentityConfig::from_lookup(|name| {
        env.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone())
    })
    .unwrap();
    let bound = Timing::default().max_cache_entries;
    let identity = ManagedIdentity::new(config).unwrap();
    let calls = (0..1000).map(|n| {
        let identity = identity.clone();
        async move {
            identity
                .get_token(&format!("https://r{n}.example.com"), None)
                .await
        }
    });
    for result in futures::future::join_all(calls).await {
        result.unwrap();
    }
    assert!(
        identity.cached_entries() <= bound,
        "{}",
        identity.cached_entries()
    );
    assert_eq!(stack.token_requests().await, 1000);
    for n in 0..1000 {
        identity
            .get_token(&format!("https://r{n}.example.com&x"), None)
            .await
            .unwrap_err();
    }
    assert_eq!(
        stack.token_requests().await,
        1000,
        "bad scopes cost nothing"
    );
    assert!(identity.cached_entries() <= bound);
}

#[tokio::test]
async fn a_flood_of_one_failing_identity_costs_one_identity_request() {
    use managed_identity::Timing;
    let stack = Stack::start(false);
    let ghost = "11111111-2222-4333-8444-555555555555";
    let handler = Arc::new(
        stack
            .start_handler(&[("TOKEN_INFO_IDENTITIES", ghost)])
            .await,
    );
    let started = std::time::Instant::now();
    let calls = (0..100).map(|_| {
        let handler = handler.clone();
        async move { handler.token_info(json!({"client_id": ghost})).await.0 }
    });
    let statuses: Vec<u16> = futures::stream::iter(calls)
        .buffer_unordered(IN_FLIGHT)
        .collect()
        .await;
    assert!(statuses.iter().all(|s| *s == 503), "{statuses:?}");
    // One request per failure-memory period: exactly one unless this machine took longer than
    // a period to send the flood (the count is derived from the elapsed time, never the reverse).
    let periods = started.elapsed().as_secs() / Timing::default().failure_memory.as_secs();
    let requests = stack.token_requests().await;
    assert!(
        (1..=1 + periods).contains(&requests),
        "{requests} identity requests for 100 calls in {} period(s)",
        periods + 1
    );
}

#[tokio::test]
async fn a_400_that_merely_mentions_unsupported_api_version_keeps_the_2019_protocol() {
    let ([(status, _), (storage_status, body)], protocols) = Stack::two_tokens_with_both_protocols(json!({"protocol": "appservice2019", "status": 400,
                   "body": "{\"statusCode\":400,\"message\":\"Unable to load the proper Managed Identity. UnsupportedApiVersion\",\"correlationId\":\"c\"}"})).await;
    assert_eq!(status, 503, "an ordinary 400");
    assert_eq!(storage_status, 200);
    assert_eq!(body["source"], "App Service 2019-08-01 (IDENTITY_ENDPOINT)");
    assert_eq!(protocols, ["appservice2019", "appservice2019"]);
}

#[tokio::test]
async fn whoami_refuses_an_id_token_with_401() {
    let stack = Stack::start(false);
    let mut env = stack.handler_env();
    env.extend(stack.service_to_service_env("http://127.0.0.1:9/api"));
    // No role required, so only the token type can refuse it.
    set_env(&mut env, "AUTH_REQUIRED_ROLE", None);
    let handler = RunningHandler::start_in_repo(&env).await;
    let access = stack.mint(json!({})).await;
    let (status, body) = handler
        .invoke_http("Whoami", &whoami(Some(&format!("Bearer {access}"))))
        .await;
    assert_eq!(status, 200, "{body}");
    // What Entra issues at sign-in: aud the app, a nonce, no appid/azp, no scp; roles may be
    // there when the user holds app roles.
    let id_tokens = [
        stack
            .mint(json!({"appid": null, "appidacr": null, "idtyp": null, "nonce": "n-0S6", "ver": "2.0",
                         "preferred_username": "someone@contoso.com"}))
            .await,
        stack
            .mint(json!({"appid": null, "appidacr": null, "idtyp": null, "ver": "1.0", "unique_name": "someone"}))
            .await,
        stack.mint(json!({"at_hash": "x"})).await,
        stack.mint(json!({"roles": null})).await,
    ];
    for token in id_tokens {
        let envelope = handler
            .invoke("Whoami", &whoami(Some(&format!("Bearer {token}"))))
            .await;
        let (status, body) = http_output(&envelope);
        assert_eq!(status, 401, "{body}");
        let challenge = envelope["Outputs"]["res"]["headers"]["WWW-Authenticate"]
            .as_str()
            .unwrap_or_default();
        assert!(challenge.contains("invalid_token"), "{envelope}");
    }
}

/// A stand-in proxy that counts connections and closes them.
async fn counting_proxy() -> (String, Arc<AtomicUsize>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let count = Arc::new(AtomicUsize::new(0));
    let seen = count.clone();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            seen.fetch_add(1, Ordering::SeqCst);
            drop(stream);
        }
    });
    (url, count)
}

/// The handler on the stack with `setting` = `value` and every proxy variable set to `proxy`.
async fn start_proxied(stack: &Stack, proxy: &str, setting: &str, value: &str) -> RunningHandler {
    let mut env = stack.handler_env();
    set_env(&mut env, setting, Some(value));
    env.extend(proxy_env(proxy));
    RunningHandler::start_in_repo(&env).await
}

fn proxy_env(proxy: &str) -> Vec<(String, String)> {
    [
        "HTTPS_PROXY",
        "HTTP_PROXY",
        "ALL_PROXY",
        "https_proxy",
        "http_proxy",
        "all_proxy",
    ]
    .into_iter()
    .map(|name| (name.to_owned(), proxy.to_owned()))
    .collect()
}

#[tokio::test]
async fn a_proxy_in_the_environment_never_sees_loopback_traffic() {
    let (proxy, connections) = counting_proxy().await;
    // The stand-in proxy does receive what is sent through it.
    let _ = reqwest::Client::builder()
        .proxy(reqwest::Proxy::all(&proxy).unwrap())
        .build()
        .unwrap()
        .get("http://example.invalid/")
        .send()
        .await;
    assert_eq!(connections.swap(0, Ordering::SeqCst), 1);

    let stack = Stack::start(false);
    let mut env = stack.handler_env();
    env.extend(stack.service_to_service_env(&format!("{}/api", stack.identity.base_url)));
    env.extend(proxy_env(&proxy));
    let handler = RunningHandler::start_in_repo(&env).await;
    // Identity endpoint (http, loopback).
    let (status, body) = handler.token_info(json!({})).await;
    assert_eq!(status, 200, "{body}");
    // Key Vault (https, loopback), through the shared Azure transport.
    let secret = get_secret("app-greeting", None);
    let (status, body) = handler.invoke_http("GetSecret", &secret).await;
    assert_eq!(status, 200, "{body}");
    // The authority's discovery document and keys (loopback).
    let access = stack.mint(json!({})).await;
    let (status, body) = handler
        .invoke_http("Whoami", &whoami(Some(&format!("Bearer {access}"))))
        .await;
    assert_eq!(status, 200, "{body}");
    // The downstream API (loopback): whatever it answers, it was reached directly.
    let call = http_payload(
        "GET",
        "http://localhost:7071/api/call/x",
        json!({"path": "x"}),
        None,
    );
    let (status, body) = handler.invoke_http("CallApi", &call).await;
    assert!(status != 502 && status != 504, "{status}: {body}");
    assert_eq!(
        connections.load(Ordering::SeqCst),
        0,
        "loopback went through the proxy"
    );
}

#[tokio::test]
async fn the_identity_client_never_uses_a_proxy_and_the_others_keep_it_for_remote_hosts() {
    let (proxy, connections) = counting_proxy().await;
    let stack = Stack::start(false);
    // An identity endpoint that is not loopback by name (0.0.0.0 reaches this machine on
    // Linux, where nothing listens on port 9): with a proxy it would reach the stand-in.
    let handler = start_proxied(
        &stack,
        &proxy,
        "IDENTITY_ENDPOINT",
        "http://0.0.0.0:9/msi/token",
    )
    .await;
    let (status, _) = handler.token_info(json!({})).await;
    assert_eq!(status, 503);
    assert_eq!(
        connections.load(Ordering::SeqCst),
        0,
        "the identity client used the proxy"
    );
    drop(handler);

    // A remote vault still goes through the environment's proxy (the rules are kept, only
    // loopback is exempt): the stand-in sees the connection.
    let handler = start_proxied(
        &stack,
        &proxy,
        "KEY_VAULT_URL",
        "https://vault.example.com/",
    )
    .await;
    let secret = get_secret("app-greeting", None);
    let (status, _) = handler.invoke_http("GetSecret", &secret).await;
    assert_ne!(status, 200);
    assert!(
        connections.load(Ordering::SeqCst) >= 1,
        "the vault client ignored the proxy"
    );
}

#[test]
fn debug_output_of_the_request_types_never_shows_credentials() {
    const SECRETS: &[&str] = &[
        "Bearer eyJ0eXAiOiJKV1QiLCJhbGciOiJSUzI1NiJ9.e30.c2ln",
        "fkey-0123456789abcdef",
        "session=s3cr3t-cookie",
        "code-value-in-query",
    ];
    let request = custom_handler::http::HttpRequest {
        method: "GET".into(),
        query: [
            ("code".to_owned(), SECRETS[3].to_owned()),
            ("resource".to_owned(), "https://vault.azure.net".to_owned()),
        ]
        .into(),
        headers: vec![
            ("Authorization".into(), SECRETS[0].into()),
            ("x-functions-key".into(), SECRETS[1].into()),
            ("Cookie".into(), SECRETS[2].into()),
            ("Accept".into(), "application/json".into()),
        ]
        .into(),
        ..Default::default()
    };
    let payload = json!({"Data": {"req": {
        "Url": format!("https://app.azurewebsites.net/api/token?code={}&resource=x", SECRETS[3]),
        "Method": "GET",
        "Query": {"code": SECRETS[3]},
        "Headers": {"Authorization": [SECRETS[0]], "X-Functions-Key": [SECRETS[1]], "Cookie": [SECRETS[2]]},
        "Params": {}
    }}, "Metadata": {"sys": {"MethodName": "TokenInfo"}}});
    let payload = payload.to_string();
    let invocation =
        custom_handler::contract::InvocationRequest::from_slice(payload.as_bytes()).unwrap();
    let trigger = invocation.http_trigger("req").unwrap();
    let printed = [
        format!("{request:?}"),
        format!("{request:#?}"),
        format!("{invocation:?}"),
        format!("{trigger:?}"),
        format!("{trigger:#?}"),
    ];
    for text in &printed {
        for secret in SECRETS {
            assert!(!text.contains(secret), "{secret} in {text}");
        }
        assert!(!text.contains("eyJ0eXAi"), "{text}");
    }
    // What is not a credential stays visible, so the output is still useful.
    assert!(printed[0].contains("https://vault.azure.net") && printed[0].contains("Accept"));
    assert!(printed[3].contains("<redacted>") && printed[3].contains("resource=x"));
}
