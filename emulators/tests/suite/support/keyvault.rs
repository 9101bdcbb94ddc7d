//! Test support for the Key Vault emulator: the kit's PKI and signing keys, a JWKS the test can
//! change served by the kit's recording server, and the real `emulators keyvault` binary started
//! on an ephemeral port.

use std::sync::{Arc, Mutex};

use serde_json::{Value, json};
use test_kit::emulator::{Running, spawn_emulator};
use test_kit::jwt::{TestKey, now};
use test_kit::pki::TestPki;
use test_kit::recorder::Reply;
use test_kit::server::FakeServer;

/// Tenant used by the standard config.
pub const TENANT: &str = "11111111-2222-3333-4444-555555555555";
/// Caller that may read `demo-secret` and `app-*`, and list `demo-secret`.
pub const READER_OID: &str = "aaaaaaaa-0000-0000-0000-000000000001";
/// Caller that may read everything and write `app-*`.
pub const WRITER_OID: &str = "aaaaaaaa-0000-0000-0000-000000000002";
/// Caller without any grant.
pub const STRANGER_OID: &str = "aaaaaaaa-0000-0000-0000-000000000003";
/// The fixed first version of `demo-secret`.
pub const DEMO_V1: &str = "0123456789abcdef0123456789abcdef";

/// The standard config: two versions of `demo-secret`, a `locked-secret`, two callers.
pub fn standard_config() -> Value {
    json!({
        "tenant_id": TENANT,
        "secrets": {
            "demo-secret": [
                {"value": "first-value", "version": DEMO_V1},
                {"value": "current-value", "contentType": "text/plain", "tags": {"env": "test"}}
            ],
            "locked-secret": [{"value": "locked-value"}]
        },
        "access": {
            READER_OID: {"get": ["demo-secret", "app-*"], "list": ["demo-secret"]},
            WRITER_OID: {"get": ["*"], "set": ["app-*"], "list": ["*"]}
        }
    })
}

/// Claims of a valid AAD v1 managed-identity token for Key Vault.
pub fn vault_claims(oid: &str) -> Value {
    let now = now();
    json!({
        "aud": "https://vault.azure.net",
        "iss": format!("https://sts.windows.net/{TENANT}/"),
        "iat": now,
        "nbf": now,
        "exp": now + 3600,
        "oid": oid,
        "sub": oid,
        "tid": TENANT,
        "appid": "bbbbbbbb-0000-0000-0000-000000000001",
        "idtyp": "app",
        "ver": "1.0"
    })
}

/// A plain-HTTP JWKS server on 127.0.0.1 whose key set tests can change; counts fetches.
pub struct JwksServer {
    /// URL to pass as `--jwks-url`.
    pub url: String,
    keys: Arc<Mutex<Vec<Value>>>,
    server: FakeServer,
}

impl JwksServer {
    /// Starts serving `keys` (JWKs) at `/{tenant}/discovery/v2.0/keys` (any path answers).
    pub async fn start(keys: Vec<Value>) -> Self {
        let keys = Arc::new(Mutex::new(keys));
        let served = keys.clone();
        let server = FakeServer::http(move |_| {
            Reply::new(200).body(json!({"keys": *served.lock().unwrap()}).to_string())
        })
        .await;
        JwksServer {
            url: format!("{}/{TENANT}/discovery/v2.0/keys", server.base),
            keys,
            server,
        }
    }

    /// Adds a key to the published set.
    pub fn publish(&self, jwk: Value) {
        self.keys.lock().unwrap().push(jwk);
    }

    /// How many times the JWKS was fetched.
    pub fn fetches(&self) -> usize {
        self.server.count()
    }
}

/// Writes `config` next to the PKI files and starts `emulators keyvault` with `--port 0`.
pub fn start_vault(pki: &TestPki, jwks_url: &str, config: &Value) -> Running {
    let config_path = pki
        .dir()
        .join(format!("kv-config-{}.json", uuid::Uuid::new_v4()));
    std::fs::write(&config_path, config.to_string()).unwrap();
    let path = |p: &std::path::Path| p.to_str().expect("utf-8 path").to_owned();
    let vault = spawn_emulator(&[
        "keyvault",
        "--port",
        "0",
        "--jwks-url",
        jwks_url,
        "--cert",
        &path(&pki.cert_path),
        "--key",
        &path(&pki.key_path),
        "--config",
        &path(&config_path),
    ]);
    assert!(
        vault.base_url.starts_with("https://127.0.0.1:"),
        "{}",
        vault.base_url
    );
    vault
}

/// Everything a test needs: PKI, one published signing key, JWKS server, running emulator.
pub struct Fixture {
    /// Test CA and leaf.
    pub pki: TestPki,
    /// The published key (kid "key-1").
    pub key: TestKey,
    /// The JWKS server.
    pub jwks: JwksServer,
    /// The emulator.
    pub vault: Running,
    /// HTTPS client trusting the test CA.
    pub client: reqwest::Client,
}

impl Fixture {
    /// Starts everything with `config`.
    pub async fn start(config: &Value) -> Self {
        let pki = TestPki::generate();
        let key = TestKey::generate("key-1");
        let jwks = JwksServer::start(vec![key.jwk()]).await;
        let vault = start_vault(&pki, &jwks.url, config);
        let client = pki.client();
        Fixture {
            pki,
            key,
            jwks,
            vault,
            client,
        }
    }

    /// The standard vault and a valid token for `oid`: how most tests begin.
    pub async fn standard_with_token(oid: &str) -> (Self, String) {
        let f = Self::start(&standard_config()).await;
        let token = f.token(oid);
        (f, token)
    }

    /// A valid token for `oid`.
    pub fn token(&self, oid: &str) -> String {
        self.key.sign(&vault_claims(oid))
    }
}

/// Status, headers and JSON body (Null when empty or not JSON) of a response.
pub async fn parts(response: reqwest::Response) -> (u16, reqwest::header::HeaderMap, Value) {
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let bytes = response.bytes().await.unwrap();
    let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    (status, headers, body)
}
