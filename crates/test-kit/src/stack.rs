//! The local stack for end-to-end tests: the test PKI, the identity emulator, the Key Vault
//! emulator and Azurite, each started on an ephemeral loopback port, and the environment that
//! points the handler (or the host emulator) at them.

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::emulator::{Running, spawn_emulator, spawn_emulator_with_env, temp_json};
use crate::handler::{JsonBody, RunningHandler, free_port, handler_binary, repo_root};
use crate::pki::{TestPki, https_client};

/// The tenant of every test identity and of the test vault.
pub const TENANT: &str = "00000000-0000-4000-8000-0000000e2e00";
/// The system-assigned identity's object id.
pub const SYSTEM_OID: &str = "00000000-0000-4000-8000-00000000a002";
/// A user-assigned identity: client id and object id.
pub const READER_CLIENT_ID: &str = "00000000-0000-4000-8000-00000000b001";
/// Its object id.
pub const READER_OID: &str = "00000000-0000-4000-8000-00000000b002";
/// The Application ID URI of the API CallApi calls (this app's own Whoami) and Whoami accepts.
pub const API_ID_URI: &str = "api://00000000-0000-4000-8000-0000000a9100";
/// The app role Whoami requires.
pub const API_ROLE: &str = "Api.Read";
/// The older version of `app-greeting`.
pub const FIRST_VERSION: &str = "0123456789abcdef0123456789abcdef";
/// What ALLOWED_SECRETS allows in these tests.
pub const ALLOWED: &str = "app-*,db-password";
/// What ALLOWED_CONTAINERS allows in these tests: the containers the end-to-end tests write.
pub const ALLOWED_CONTAINERS: &str = "demo,e2e,notes,bin,big,nothing";

/// The identity emulator's configuration: a system-assigned identity and one user-assigned.
pub fn identity_config() -> Value {
    json!({"tenant_id": TENANT, "token_lifetime_secs": 86400, "identities": [
        {"name": "system", "system_assigned": true, "client_id": "00000000-0000-4000-8000-00000000a001", "object_id": SYSTEM_OID, "roles": {API_ID_URI: [API_ROLE]}},
        {"name": "reader", "client_id": READER_CLIENT_ID, "object_id": READER_OID,
         "resource_id": "/subscriptions/0/resourceGroups/rg/providers/Microsoft.ManagedIdentity/userAssignedIdentities/reader", "roles": {}}
    ]})
}

/// The vault: `app-greeting` readable by the system identity, `db-password` only by the reader.
pub fn vault_config() -> Value {
    json!({"tenant_id": TENANT,
        "secrets": {
            "app-greeting": [{"value": "first", "version": FIRST_VERSION, "contentType": "text/plain"}, {"value": "hello from the vault", "contentType": "text/plain"}],
            "db-password": [{"value": "s3cr3t-db-password"}]
        },
        "access": {SYSTEM_OID: {"get": ["app-*"]}, READER_OID: {"get": ["*"]}}})
}

/// Sets `name` to `value` in `env`, or takes it out when `value` is `None`: one setting changed in
/// an environment such as [`Stack::handler_env`], the others kept.
pub fn set_env(env: &mut Vec<(String, String)>, name: &str, value: Option<&str>) {
    env.retain(|(k, _)| k != name);
    if let Some(value) = value {
        env.push((name.into(), value.into()));
    }
}

/// The running emulators and what the handler needs to reach them.
pub struct Stack {
    /// The test PKI (ca.pem, leaf.pem, leaf.key).
    pub pki: TestPki,
    /// The identity emulator.
    pub identity: Running,
    /// The Key Vault emulator.
    pub keyvault: Running,
    /// Azurite, when the test asked for it.
    pub azurite: Option<Azurite>,
    _configs: Vec<tempfile::NamedTempFile>,
}

impl Stack {
    /// Starts the identity and Key Vault emulators (and Azurite when `with_azurite`).
    pub fn start(with_azurite: bool) -> Self {
        let pki = TestPki::generate();
        let pki_dir = pki.dir().to_str().expect("utf-8 path");
        let identity_file = temp_json(&identity_config());
        let vault_file = temp_json(&vault_config());
        let identity =
            spawn_emulator(&["identity", "--config", path(&identity_file), "--port", "0"]);
        let jwks = format!("{}/{TENANT}/discovery/v2.0/keys", identity.base_url);
        let leaf = format!("{pki_dir}/leaf.pem");
        let key = format!("{pki_dir}/leaf.key");
        let keyvault = spawn_emulator(&[
            "keyvault",
            "--config",
            path(&vault_file),
            "--port",
            "0",
            "--cert",
            &leaf,
            "--key",
            &key,
            "--jwks-url",
            &jwks,
        ]);
        let azurite = with_azurite.then(|| Azurite::start(pki.dir()));
        Self {
            pki,
            identity,
            keyvault,
            azurite,
            _configs: vec![identity_file, vault_file],
        }
    }

    /// The environment the platform would give the handler, pointing at these emulators.
    pub fn handler_env(&self) -> Vec<(String, String)> {
        let mut env = vec![
            (
                "IDENTITY_ENDPOINT".into(),
                format!("{}/msi/token", self.identity.base_url),
            ),
            (
                "IDENTITY_HEADER".into(),
                self.identity.ready_str("header_secret"),
            ),
            (
                "KEY_VAULT_URL".into(),
                format!("{}/", self.keyvault.base_url),
            ),
            ("SSL_CERT_FILE".into(), self.ca().display().to_string()),
            ("ALLOWED_SECRETS".into(), ALLOWED.into()),
            ("ALLOWED_CONTAINERS".into(), ALLOWED_CONTAINERS.into()),
        ];
        if let Some(azurite) = &self.azurite {
            env.push((
                "STORAGE_BLOB_URL".into(),
                format!("https://127.0.0.1:{}/devstoreaccount1", azurite.port),
            ));
        }
        env
    }

    /// A stack ([`Stack::start`]) and the handler in front of it ([`Stack::start_handler`]); the
    /// handler comes second so that it is dropped first.
    pub async fn start_with_handler(
        with_azurite: bool,
        extra: &[(&str, &str)],
    ) -> (Self, RunningHandler) {
        let stack = Self::start(with_azurite);
        let handler = stack.start_handler(extra).await;
        (stack, handler)
    }

    /// The binary on the repository's function folders with [`Stack::handler_env`] plus `extra`
    /// (later entries win).
    pub async fn start_handler(&self, extra: &[(&str, &str)]) -> RunningHandler {
        let mut env = self.handler_env();
        env.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        RunningHandler::start_in_repo(&env).await
    }

    /// A stack whose identity emulator has `fault` queued, and the handler with both App Service
    /// identity protocols set (IDENTITY_* for 2019-08-01, MSI_* for 2017-09-01, both at the
    /// emulator): what the fallback between them needs.
    pub async fn start_with_both_protocols(fault: Value) -> (Self, RunningHandler) {
        let stack = Self::start(false);
        stack.fault(&stack.identity, fault).await;
        let secret = stack.identity.ready_str("header_secret");
        let endpoint = format!("{}/msi/token", stack.identity.base_url);
        let handler = stack
            .start_handler(&[("MSI_ENDPOINT", &endpoint), ("MSI_SECRET", &secret)])
            .await;
        (stack, handler)
    }

    /// With `fault` queued on a [`Stack::start_with_both_protocols`] stack: TokenInfo for the
    /// default resource, then for Storage, and the protocol of each identity request they made, in
    /// order. What shows whether a fallback happened, and whether it was remembered.
    pub async fn two_tokens_with_both_protocols(fault: Value) -> ([(u16, Value); 2], Vec<String>) {
        let (stack, handler) = Self::start_with_both_protocols(fault).await;
        let default = handler.token_info(json!({})).await;
        let storage = handler
            .token_info(json!({"resource": "https://storage.azure.com"}))
            .await;
        ([default, storage], stack.identity_protocols().await)
    }

    /// The test CA's certificate.
    pub fn ca(&self) -> PathBuf {
        self.pki.ca_path.clone()
    }

    /// The identity emulator's count of token requests.
    pub async fn token_requests(&self) -> u64 {
        admin_count(&self.identity.base_url, &self.ca(), "count").await
    }

    /// The protocol of each token request the identity emulator received, in order.
    pub async fn identity_protocols(&self) -> Vec<String> {
        let log = request_log(&self.identity.base_url, &self.ca()).await;
        log["requests"]
            .as_array()
            .unwrap_or_else(|| panic!("no `requests` in {log}"))
            .iter()
            .map(|r| r["protocol"].as_str().expect("protocol").to_owned())
            .collect()
    }

    /// The Key Vault emulator's counts: all requests, and unauthenticated (challenge) probes.
    pub async fn vault_requests(&self) -> (u64, u64) {
        let all = admin_count(&self.keyvault.base_url, &self.ca(), "count").await;
        let probes = admin_count(&self.keyvault.base_url, &self.ca(), "unauthenticated").await;
        (all, probes)
    }

    /// The `x-ms-client-request-id` of each request the Key Vault emulator recorded, oldest
    /// first (`None` where a request had none).
    pub async fn vault_client_request_ids(&self) -> Vec<Option<String>> {
        let log = request_log(&self.keyvault.base_url, &self.ca()).await;
        log["requests"]
            .as_array()
            .unwrap_or_else(|| panic!("no `requests` in {log}"))
            .iter()
            .map(|r| r["client_request_id"].as_str().map(str::to_owned))
            .collect()
    }

    /// A token signed by the identity emulator's published keys (`POST /_emulator/mint`): an
    /// app-only access token of the system identity for [`API_ID_URI`] with [`API_ROLE`], then
    /// `overrides` (a `null` removes a claim).
    pub async fn mint(&self, overrides: Value) -> String {
        let mut request = json!({"aud": API_ID_URI, "roles": [API_ROLE]});
        if let (Some(base), Some(changes)) = (request.as_object_mut(), overrides.as_object()) {
            base.extend(changes.clone());
        }
        let body = reqwest::Client::new()
            .post(format!("{}/_emulator/mint", self.identity.base_url))
            .body(request.to_string())
            .send()
            .await
            .expect("mint a token")
            .json_body()
            .await;
        body["access_token"]
            .as_str()
            .unwrap_or_else(|| panic!("mint refused: {body}"))
            .to_owned()
    }

    /// Queues a fault at an emulator (`POST /_emulator/faults`).
    pub async fn fault(&self, emulator: &Running, fault: Value) {
        let response = https_client(&self.ca())
            .post(format!("{}/_emulator/faults", emulator.base_url))
            .body(fault.to_string())
            .send()
            .await
            .expect("queue a fault");
        assert!(
            response.status().is_success(),
            "fault refused: {}",
            response.text().await.unwrap_or_default()
        );
    }

    /// The settings of the service-to-service pair: CallApi calls `api_base` (this app's own
    /// `/api`) with tokens for [`API_ID_URI`], and Whoami trusts the identity emulator as authority.
    pub fn service_to_service_env(&self, api_base: &str) -> Vec<(String, String)> {
        vec![
            ("DOWNSTREAM_API_URL".into(), api_base.into()),
            (
                "DOWNSTREAM_API_SCOPE".into(),
                format!("{API_ID_URI}/.default"),
            ),
            (
                "AUTH_AUTHORITY".into(),
                format!("{}/{TENANT}/v2.0", self.identity.base_url),
            ),
            ("AUTH_AUDIENCE".into(), API_ID_URI.into()),
            ("AUTH_REQUIRED_ROLE".into(), API_ROLE.into()),
        ]
    }

    /// Starts the host emulator on the repository's own function folders, running `handler`, on a
    /// port chosen here so that CallApi can be pointed at the app's own Whoami.
    pub fn host(&self, extra_env: &[(&str, &str)]) -> (Running, tempfile::TempDir) {
        self.host_in(repo_root(), extra_env)
    }

    /// Like [`Stack::host`], for the function folders and host.json under `app_root`.
    pub fn host_in(
        &self,
        app_root: &Path,
        extra_env: &[(&str, &str)],
    ) -> (Running, tempfile::TempDir) {
        let keys = tempfile::tempdir().expect("keys dir");
        let keys_file = keys.path().join("host-keys.json");
        let port = free_port();
        let mut env: Vec<(String, String)> = self.handler_env();
        env.extend(self.service_to_service_env(&format!("http://127.0.0.1:{port}/api")));
        env.extend(
            extra_env
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string())),
        );
        let env_refs: Vec<(&str, &str)> =
            env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let host = spawn_emulator_with_env(
            &[
                "host",
                "--app-root",
                app_root.to_str().expect("utf-8 path"),
                "--handler",
                handler_binary().to_str().expect("utf-8 path"),
                "--port",
                &port.to_string(),
                "--keys-file",
                keys_file.to_str().expect("utf-8 path"),
            ],
            &env_refs,
        );
        (host, keys)
    }
}

/// A copy of the repository's host.json and function folders with forwarding on or off, for
/// running the same functions through the host emulator in either mode.
pub fn app_root_with_forwarding(forwarding: bool) -> tempfile::TempDir {
    let repo = repo_root();
    let app_root = tempfile::tempdir().expect("app root");
    let mut host_json: Value =
        serde_json::from_slice(&std::fs::read(repo.join("host.json")).expect("host.json"))
            .expect("host.json is JSON");
    host_json["customHandler"]["enableForwardingHttpRequest"] = Value::Bool(forwarding);
    std::fs::write(app_root.path().join("host.json"), host_json.to_string()).expect("write");
    for entry in std::fs::read_dir(repo).expect("the repository root") {
        let name = entry.expect("a directory entry").file_name();
        let function_json = repo.join(&name).join("function.json");
        if function_json.is_file() {
            std::fs::create_dir_all(app_root.path().join(&name)).expect("folder");
            std::fs::copy(
                &function_json,
                app_root.path().join(&name).join("function.json"),
            )
            .expect("function.json");
        }
    }
    app_root
}

fn path(file: &tempfile::NamedTempFile) -> &str {
    file.path().to_str().expect("utf-8 temp path")
}

/// An emulator's request log (`GET /_emulator/requests`).
async fn request_log(base: &str, ca: &Path) -> Value {
    https_client(ca)
        .get(format!("{base}/_emulator/requests"))
        .send()
        .await
        .expect("read the emulator's request log")
        .json_body()
        .await
}

async fn admin_count(base: &str, ca: &Path, field: &str) -> u64 {
    let body = request_log(base, ca).await;
    body[field]
        .as_u64()
        .unwrap_or_else(|| panic!("no `{field}` in {body}"))
}

/// Azurite from the project's pinned npm install, over HTTPS with `--oauth basic`.
pub struct Azurite {
    child: Child,
    /// Its blob port on 127.0.0.1.
    pub port: u16,
}

impl Azurite {
    /// Starts Azurite with the leaf of the test PKI in `pki` and waits until it listens. The
    /// binary is `AZURITE_BLOB_BIN` when set, else the repository's `node_modules/.bin/azurite-blob`.
    pub fn start(pki: &Path) -> Self {
        let binary = std::env::var_os("AZURITE_BLOB_BIN")
            .map(PathBuf::from)
            .unwrap_or_else(|| repo_root().join("node_modules/.bin/azurite-blob"));
        assert!(
            binary.exists(),
            "{} is missing: run scripts/install-test-deps (scripts/test does)",
            binary.display()
        );
        let port = free_port();
        let child = Command::new(binary)
            .args(["--blobHost", "127.0.0.1", "--blobPort", &port.to_string()])
            .arg("--cert")
            .arg(pki.join("leaf.pem"))
            .arg("--key")
            .arg(pki.join("leaf.key"))
            .args([
                "--oauth",
                "basic",
                "--inMemoryPersistence",
                "--disableTelemetry",
                "--silent",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start Azurite");
        let deadline = Instant::now() + Duration::from_secs(60);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "Azurite did not listen on {port} within 60 s"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        Self { child, port }
    }
}

impl Drop for Azurite {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
