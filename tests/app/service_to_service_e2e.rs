//! Service to service through the host emulator: CallApi calls this app's own Whoami with a
//! managed-identity token for the API's Application ID URI, and Whoami validates incoming tokens
//! itself against the identity emulator acting as the Entra ID authority.

use aws_lc_rs::hmac;
use serde_json::{Value, json};
use test_kit::emulator::Running;
use test_kit::jwt::{b64, decode_claims, decode_header};
use test_kit::stack::{API_ROLE, SYSTEM_OID, Stack, TENANT};

struct App {
    host: Running,
    key: String,
    client: reqwest::Client,
    _keys: tempfile::TempDir,
}

impl App {
    fn start(stack: &Stack) -> Self {
        let (host, keys) = stack.host(&[("TOKEN_REFRESH_SCHEDULE", "0 0 0 1 1 *")]);
        let key = host.ready_str("function_key");
        Self {
            host,
            key,
            client: reqwest::Client::new(),
            _keys: keys,
        }
    }

    async fn whoami(&self, token: Option<&str>) -> (u16, Option<String>, Value) {
        let mut request = self
            .client
            .get(format!("{}/api/whoami", self.host.base_url));
        if let Some(token) = token {
            request = request.header("Authorization", format!("Bearer {token}"));
        }
        let response = request.send().await.expect("whoami");
        let status = response.status().as_u16();
        let challenge = response
            .headers()
            .get("www-authenticate")
            .map(|v| v.to_str().unwrap().to_owned());
        let body = serde_json::from_slice(&response.bytes().await.unwrap()).unwrap_or(Value::Null);
        (status, challenge, body)
    }

    async fn call(&self, path: &str) -> (u16, Value) {
        let url = format!("{}/api/call/{path}", self.host.base_url);
        let response = self
            .client
            .get(url)
            .header("x-functions-key", &self.key)
            .send()
            .await
            .expect("call");
        let status = response.status().as_u16();
        (
            status,
            serde_json::from_slice(&response.bytes().await.unwrap()).unwrap_or(Value::Null),
        )
    }
}

fn parts(token: &str) -> (Value, Value) {
    (decode_header(token), decode_claims(token))
}

fn encode(header: &Value, claims: &Value) -> String {
    format!(
        "{}.{}",
        b64(header.to_string().as_bytes()),
        b64(claims.to_string().as_bytes())
    )
}

/// A GET with the path exactly as given; the status and the whole response.
async fn raw_get(base: &str, path: &str, key: &str) -> (u16, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let address = base.trim_start_matches("http://");
    let mut stream = tokio::net::TcpStream::connect(address)
        .await
        .expect("connect");
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: {address}\r\nx-functions-key: {key}\r\nConnection: close\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).await.expect("send");
    let mut response = String::new();
    stream.read_to_string(&mut response).await.expect("read");
    let status = response
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    (status, response)
}

fn jwks_fetches(stack: &Stack) -> usize {
    stack
        .identity
        .logs()
        .iter()
        .filter(|line| line.contains("authority") && line.contains("/keys"))
        .count()
}

#[tokio::test]
async fn call_api_calls_this_apps_own_whoami_with_a_managed_identity_token() {
    let stack = Stack::start(false);
    let app = App::start(&stack);
    let (status, body) = app.call("whoami").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["oid"], SYSTEM_OID);
    assert_eq!(body["tid"], TENANT);
    assert_eq!(body["roles"], json!([API_ROLE]));
    assert!(
        !body.to_string().contains("eyJ"),
        "the token must never be in the answer"
    );
}

#[tokio::test]
async fn whoami_refuses_every_kind_of_bad_token_with_the_right_status() {
    let stack = Stack::start(false);
    let app = App::start(&stack);
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let good = stack.mint(json!({})).await;
    let (status, _, body) = app.whoami(Some(&good)).await;
    assert_eq!(status, 200, "{body}");

    let (header, claims) = parts(&good);
    let signature = good.rsplit('.').next().unwrap();
    let mut tampered_claims = claims.clone();
    tampered_claims["roles"] = json!([API_ROLE, "Admin"]);
    let tampered = format!("{}.{signature}", encode(&header, &tampered_claims));
    let none = format!(
        "{}.",
        encode(&json!({"alg": "none", "typ": "JWT"}), &claims)
    );
    let jwks = reqwest::get(format!(
        "{}/{TENANT}/discovery/v2.0/keys",
        stack.identity.base_url
    ))
    .await
    .unwrap()
    .text()
    .await
    .unwrap();
    let hs_header = json!({"alg": "HS256", "typ": "JWT", "kid": header["kid"]});
    let hs_input = encode(&hs_header, &claims);
    let hs_key = hmac::Key::new(hmac::HMAC_SHA256, jwks.as_bytes());
    let hs256 = format!(
        "{hs_input}.{}",
        b64(hmac::sign(&hs_key, hs_input.as_bytes()).as_ref())
    );

    let cases: Vec<(&str, String, u16)> =
        vec![
        (
            "wrong audience",
            stack.mint(json!({"aud": "api://someone-else"})).await,
            401,
        ),
        (
            "wrong issuer",
            stack.mint(
                json!({"iss": "https://sts.windows.net/11111111-1111-4111-8111-111111111111/"}),
            )
            .await,
            401,
        ),
        (
            "expired",
            stack.mint(json!({"lifetime_secs": -3600})).await,
            401,
        ),
        (
            "not yet valid",
            stack.mint(json!({"nbf": now + 3600, "iat": now + 3600})).await,
            401,
        ),
        ("bad signature", tampered, 401),
        (
            "unknown kid",
            stack.mint(json!({"kid": "not-a-published-kid"})).await,
            401,
        ),
        ("alg none", none, 401),
        ("HS256 with the public key", hs256, 401),
        (
            "missing role",
            stack.mint(json!({"roles": null})).await,
            403,
        ),
    ];
    for (case, token, expected) in cases {
        let (status, challenge, body) = app.whoami(Some(&token)).await;
        assert_eq!(status, expected, "{case}: {body}");
        let challenge = challenge.unwrap_or_else(|| panic!("{case}: no WWW-Authenticate"));
        let error = if expected == 401 {
            "invalid_token"
        } else {
            "insufficient_scope"
        };
        assert!(
            challenge.starts_with(&format!("Bearer error=\"{error}\", error_description=\"")),
            "{case}: {challenge}"
        );
        assert!(
            !body.to_string().contains(&token),
            "{case}: the token was echoed"
        );
    }
    let (status, challenge, _) = app.whoami(None).await;
    assert_eq!(status, 401);
    assert!(challenge.unwrap().contains("invalid_token"));
}

#[tokio::test]
async fn after_a_key_rotation_the_new_key_is_fetched_once_and_accepted() {
    let stack = Stack::start(false);
    let app = App::start(&stack);
    let (status, _, _) = app.whoami(Some(&stack.mint(json!({})).await)).await;
    assert_eq!(status, 200);
    let before = jwks_fetches(&stack);
    let rotated = reqwest::Client::new()
        .post(format!("{}/_emulator/rotate-keys", stack.identity.base_url))
        .send()
        .await
        .unwrap();
    assert!(rotated.status().is_success());
    for _ in 0..5 {
        let (status, _, body) = app.whoami(Some(&stack.mint(json!({})).await)).await;
        assert_eq!(status, 200, "{body}");
    }
    assert_eq!(
        jwks_fetches(&stack),
        before + 1,
        "one refetch for the new kid, then the cache"
    );
}

#[tokio::test]
async fn call_api_refuses_paths_that_would_leave_the_configured_api() {
    let stack = Stack::start(false);
    let app = App::start(&stack);
    // Sent byte for byte: an HTTP client library would resolve the dot segments itself.
    for path in [
        "..%2F..%2Fadmin%2Ffunctions",
        "%2e%2e/token",
        "%2e%2e%2ftoken",
        "%2F%2Fevil.example/x",
        "http:%2F%2Fevil.example",
        "whoami%2F..%2F..%2Fx",
        "%252e%252e/x",
        "..\\token",
    ] {
        let (status, response) =
            raw_get(&app.host.base_url, &format!("/api/call/{path}"), &app.key).await;
        assert!(status == 400 || status == 404, "{path}: {response}");
    }
    assert_eq!(
        stack.token_requests().await,
        0,
        "no token is fetched for a refused path"
    );
}
