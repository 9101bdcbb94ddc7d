//! Test support for the Key Vault emulator: a throw-away CA + leaf (rcgen), RSA signing keys
//! published by a tiny in-test JWKS server, RS256 token minting (jsonwebtoken), and the real
//! `emulators keyvault` binary started on an ephemeral port.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::signature::KeyPair as _;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use bytes::Bytes;
use http_body_util::Full;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};

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

/// A CA and a CA-signed leaf (SAN 127.0.0.1, localhost, *.vault.azure.net) in a temp dir.
pub struct TestPki {
    _dir: tempfile::TempDir,
    /// Directory holding the files.
    pub dir: PathBuf,
    /// CA certificate PEM.
    pub ca_pem: String,
    /// Path of ca.pem.
    pub ca_path: PathBuf,
    /// Path of leaf.pem.
    pub cert_path: PathBuf,
    /// Path of leaf.key (PKCS#8).
    pub key_path: PathBuf,
}

impl TestPki {
    /// Generates fresh files.
    pub fn generate() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "keyvault test CA");
        ca_params.key_usages = vec![
            rcgen::KeyUsagePurpose::KeyCertSign,
            rcgen::KeyUsagePurpose::CrlSign,
        ];
        let ca_key = rcgen::KeyPair::generate().unwrap();
        let ca_cert = ca_params.self_signed(&ca_key).unwrap();
        let issuer = rcgen::Issuer::new(ca_params, ca_key);

        let sans = ["127.0.0.1", "localhost", "*.vault.azure.net"].map(String::from);
        let mut leaf_params = rcgen::CertificateParams::new(sans.to_vec()).unwrap();
        leaf_params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "keyvault test leaf");
        let leaf_key = rcgen::KeyPair::generate().unwrap();
        let leaf_cert = leaf_params.signed_by(&leaf_key, &issuer).unwrap();

        let path = |name: &str| dir.path().join(name);
        std::fs::write(path("ca.pem"), ca_cert.pem()).unwrap();
        std::fs::write(path("leaf.pem"), leaf_cert.pem()).unwrap();
        std::fs::write(path("leaf.key"), leaf_key.serialize_pem()).unwrap();
        TestPki {
            dir: dir.path().to_path_buf(),
            ca_pem: ca_cert.pem(),
            ca_path: path("ca.pem"),
            cert_path: path("leaf.pem"),
            key_path: path("leaf.key"),
            _dir: dir,
        }
    }
}

/// An RSA-2048 token signing key with its kid.
pub struct SigningKey {
    /// Key id placed in token headers and the JWK.
    pub kid: String,
    encoding: EncodingKey,
    n: String,
    e: String,
}

impl SigningKey {
    /// Generates a key named `kid`.
    pub fn generate(kid: &str) -> Self {
        let pair = aws_lc_rs::rsa::KeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048).unwrap();
        let pkcs8 = AsDer::<aws_lc_rs::encoding::Pkcs8V1Der>::as_der(&pair).unwrap();
        let pkcs1 = pkcs1_from_pkcs8(pkcs8.as_ref());
        let public = pair.public_key();
        SigningKey {
            kid: kid.to_string(),
            encoding: EncodingKey::from_rsa_der(&pkcs1),
            n: URL_SAFE_NO_PAD.encode(public.modulus().big_endian_without_leading_zero()),
            e: URL_SAFE_NO_PAD.encode(public.exponent().big_endian_without_leading_zero()),
        }
    }

    /// The public JWK as Entra ID publishes it.
    pub fn jwk(&self) -> Value {
        json!({"kty": "RSA", "use": "sig", "alg": "RS256", "kid": self.kid, "n": self.n, "e": self.e})
    }

    /// Signs `claims` as an RS256 JWT with this key's kid.
    pub fn sign(&self, claims: &Value) -> String {
        let mut header = Header::new(Algorithm::RS256);
        header.kid = Some(self.kid.clone());
        jsonwebtoken::encode(&header, claims, &self.encoding).unwrap()
    }
}

/// The RSAPrivateKey (PKCS#1) inside a PKCS#8 PrivateKeyInfo: its third element, an OCTET STRING.
fn pkcs1_from_pkcs8(der: &[u8]) -> Vec<u8> {
    let (_, info, _) = der_element(der);
    let (_, _version, rest) = der_element(info);
    let (_, _algorithm, rest) = der_element(rest);
    let (tag, private_key, _) = der_element(rest);
    assert_eq!(tag, 0x04, "PKCS#8 private key is not an OCTET STRING");
    private_key.to_vec()
}

/// Splits one DER element off `input`: (tag, content, rest).
fn der_element(input: &[u8]) -> (u8, &[u8], &[u8]) {
    let tag = input[0];
    let (len, header) = match input[1] {
        short if short < 0x80 => (usize::from(short), 2),
        long => {
            let count = usize::from(long & 0x7f);
            let len = input[2..2 + count]
                .iter()
                .fold(0usize, |acc, b| (acc << 8) | usize::from(*b));
            (len, 2 + count)
        }
    };
    (tag, &input[header..header + len], &input[header + len..])
}

/// Seconds since the epoch.
pub fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
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

/// A claims object with some fields replaced.
pub fn with(mut claims: Value, changes: Value) -> Value {
    if let (Some(target), Some(changes)) = (claims.as_object_mut(), changes.as_object()) {
        for (key, value) in changes {
            target.insert(key.clone(), value.clone());
        }
    }
    claims
}

/// A plain-HTTP JWKS server on 127.0.0.1 whose key set tests can change; counts fetches.
pub struct JwksServer {
    /// URL to pass as `--jwks-url`.
    pub url: String,
    keys: Arc<Mutex<Vec<Value>>>,
    fetches: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl JwksServer {
    /// Starts serving `keys` (JWKs) at `/{tenant}/discovery/v2.0/keys` (any path answers).
    pub async fn start(keys: Vec<Value>) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let keys = Arc::new(Mutex::new(keys));
        let fetches = Arc::new(AtomicUsize::new(0));
        let (served_keys, counter) = (keys.clone(), fetches.clone());
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let (keys, counter) = (served_keys.clone(), counter.clone());
                let service = service_fn(move |_request| {
                    counter.fetch_add(1, Ordering::SeqCst);
                    let body = json!({"keys": *keys.lock().unwrap()}).to_string();
                    async move {
                        Ok::<_, std::convert::Infallible>(hyper::Response::new(Full::new(
                            Bytes::from(body),
                        )))
                    }
                });
                tokio::spawn(async move {
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        JwksServer {
            url: format!("http://127.0.0.1:{port}/{TENANT}/discovery/v2.0/keys"),
            keys,
            fetches,
            task,
        }
    }

    /// Adds a key to the published set.
    pub fn publish(&self, jwk: Value) {
        self.keys.lock().unwrap().push(jwk);
    }

    /// How many times the JWKS was fetched.
    pub fn fetches(&self) -> usize {
        self.fetches.load(Ordering::SeqCst)
    }
}

impl Drop for JwksServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A running `emulators keyvault` process; killed on drop.
pub struct KeyVaultProcess {
    child: Child,
    /// `https://127.0.0.1:P` from the ready line.
    pub base_url: String,
    logs: Arc<Mutex<Vec<String>>>,
}

impl KeyVaultProcess {
    /// Writes `config` next to the PKI files and starts the binary with `--port 0`.
    pub fn start(pki: &TestPki, jwks_url: &str, config: &Value) -> Self {
        let config_path = pki
            .dir
            .join(format!("kv-config-{}.json", uuid::Uuid::new_v4()));
        std::fs::write(&config_path, config.to_string()).unwrap();
        let mut child = Command::new(env!("CARGO_BIN_EXE_emulators"))
            .arg("keyvault")
            .args(["--port", "0", "--jwks-url", jwks_url])
            .arg("--cert")
            .arg(&pki.cert_path)
            .arg("--key")
            .arg(&pki.key_path)
            .arg("--config")
            .arg(&config_path)
            .env("RUST_LOG", "info")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let logs = Arc::new(Mutex::new(Vec::new()));
        let (ready_tx, ready_rx) = mpsc::channel();
        let collected = logs.clone();
        std::thread::spawn(move || {
            let mut lines = BufReader::new(stdout).lines();
            if let Some(Ok(first)) = lines.next() {
                let _ = ready_tx.send(first);
            }
            for line in lines.map_while(Result::ok) {
                collected.lock().unwrap().push(line);
            }
        });
        let ready = ready_rx
            .recv_timeout(Duration::from_secs(60))
            .expect("the emulator printed no ready line");
        let ready: Value = serde_json::from_str(&ready).expect("the first stdout line is JSON");
        let base_url = ready["ready"]
            .as_str()
            .expect("ready line has a URL")
            .to_string();
        assert!(base_url.starts_with("https://127.0.0.1:"), "{base_url}");
        KeyVaultProcess {
            child,
            base_url,
            logs,
        }
    }

    /// `base_url` + `path_and_query`.
    pub fn url(&self, path_and_query: &str) -> String {
        format!("{}{path_and_query}", self.base_url)
    }

    /// The OS process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Log lines printed after the ready line so far.
    pub fn logs(&self) -> Vec<String> {
        self.logs.lock().unwrap().clone()
    }

    /// Waits (bounded) until a log line contains `needle`; returns all lines.
    pub fn wait_for_log(&self, needle: &str) -> Vec<String> {
        for _ in 0..400 {
            let logs = self.logs();
            if logs.iter().any(|l| l.contains(needle)) {
                return logs;
            }
            std::thread::sleep(Duration::from_millis(25));
        }
        panic!("no log line contains {needle:?}: {:?}", self.logs());
    }

    /// Waits for the process to exit on its own (bounded) and returns its status.
    pub fn wait_exit(&mut self) -> std::process::ExitStatus {
        for _ in 0..400 {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            std::thread::sleep(Duration::from_millis(25));
        }
        panic!("the emulator did not exit");
    }
}

impl Drop for KeyVaultProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// An HTTPS client that trusts only the test CA.
pub fn https_client(pki: &TestPki) -> reqwest::Client {
    reqwest::Client::builder()
        .tls_certs_only([reqwest::Certificate::from_pem(pki.ca_pem.as_bytes()).unwrap()])
        .timeout(Duration::from_secs(30))
        .no_proxy()
        .build()
        .unwrap()
}

/// Everything a test needs: PKI, one published signing key, JWKS server, running emulator.
pub struct Fixture {
    /// Test CA and leaf.
    pub pki: TestPki,
    /// The published key (kid "key-1").
    pub key: SigningKey,
    /// The JWKS server.
    pub jwks: JwksServer,
    /// The emulator.
    pub vault: KeyVaultProcess,
    /// HTTPS client trusting the test CA.
    pub client: reqwest::Client,
}

impl Fixture {
    /// Starts everything with `config`.
    pub async fn start(config: &Value) -> Self {
        let pki = TestPki::generate();
        let key = SigningKey::generate("key-1");
        let jwks = JwksServer::start(vec![key.jwk()]).await;
        let vault = KeyVaultProcess::start(&pki, &jwks.url, config);
        let client = https_client(&pki);
        Fixture {
            pki,
            key,
            jwks,
            vault,
            client,
        }
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
