//! `soak`: the real handler under the host emulator, with the identity and Key Vault emulators
//! and Azurite, kept under load (128 connections, every function) while faults are injected on a
//! schedule. Records every response and checks what README promises; writes a JSON report and
//! exits 1 when any check fails. Run by `scripts/soak`, which builds and finds everything.
//!
//! ```text
//! soak --root REPO --emulators BIN --handler BIN --azurite BIN --work DIR --report FILE
//!      [--duration 600] [--connections 128]
//! ```
//!
//! Only loopback traffic; every loop ends by itself at the deadline.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::process::{ExitCode, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

const API_ID_URI: &str = "api://00000000-0000-4000-8000-0000000a9100";
/// Token lifetime the identity emulator gives: the handler never hands out a token with under
/// 5 minutes left, so each token is used for 30 s and then fetched again — identity faults then
/// reach the handler every few seconds instead of once a day.
const TOKEN_LIFETIME_SECS: u64 = 330;
/// Distinct (identity, resource) keys the mix uses: Key Vault, Storage, the downstream API.
const TOKEN_KEYS: u64 = 3;
/// Retries after the first attempt the identity module makes (RetryPolicy::default).
const IDENTITY_MAX_RETRIES: u64 = 3;
/// The identity module's whole-acquisition deadline (Timing::default).
const IDENTITY_DEADLINE: Duration = Duration::from_secs(30);
/// Longest wait, once the load stops, for descriptors to return to the idle baseline.
const IDLE_WAIT: Duration = Duration::from_secs(120);
/// Descriptors above the idle baseline still counted as "back" (a connection or two in flux).
const FD_SLACK: u64 = 8;

// ---- small helpers ----------------------------------------------------------------------------

struct Args {
    root: PathBuf,
    emulators: PathBuf,
    handler: PathBuf,
    azurite: PathBuf,
    work: PathBuf,
    report: PathBuf,
    duration: Duration,
    connections: usize,
}

fn parse_args() -> Result<Args, String> {
    let mut map: HashMap<String, String> = HashMap::new();
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let value = args.next().ok_or(format!("{flag} needs a value"))?;
        map.insert(flag.trim_start_matches("--").to_owned(), value);
    }
    let path = |name: &str| {
        map.get(name)
            .map(PathBuf::from)
            .ok_or(format!("--{name} is required"))
    };
    Ok(Args {
        root: path("root")?,
        emulators: path("emulators")?,
        handler: path("handler")?,
        azurite: path("azurite")?,
        work: path("work")?,
        report: path("report")?,
        duration: Duration::from_secs(
            map.get("duration")
                .map_or(Ok(600), |v| v.parse())
                .map_err(|_| "--duration needs seconds")?,
        ),
        connections: map
            .get("connections")
            .map_or(Ok(128), |v| v.parse())
            .map_err(|_| "--connections needs a number")?,
    })
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

struct Rng(u64);
impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

/// A started process with its stdout/stderr lines scanned: the first line (ready line) is handed
/// back; every line goes to a log file; lines with "panicked" are counted.
struct Proc {
    child: Child,
    name: &'static str,
}

struct Watch {
    panics: Mutex<Vec<String>>,
    handler_pid: AtomicU32,
    handler_starts: AtomicU32,
}

async fn start(
    name: &'static str,
    mut command: Command,
    log: &Path,
    watch: Arc<Watch>,
) -> Result<(Proc, Option<String>), String> {
    let file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .map_err(|e| format!("{}: {e}", log.display()))?;
    let file = Arc::new(Mutex::new(file));
    command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let mut child = command
        .spawn()
        .map_err(|e| format!("cannot start {name}: {e}"))?;
    let (ready_tx, ready_rx) = tokio::sync::oneshot::channel::<String>();
    let mut ready_tx = Some(ready_tx);
    let out = child.stdout.take().expect("stdout");
    let err = child.stderr.take().expect("stderr");
    for (stream, is_stdout) in [
        (
            Box::new(out) as Box<dyn tokio::io::AsyncRead + Unpin + Send>,
            true,
        ),
        (Box::new(err), false),
    ] {
        let file = file.clone();
        let watch = watch.clone();
        let mut ready = if is_stdout { ready_tx.take() } else { None };
        tokio::spawn(async move {
            let mut lines = BufReader::new(stream).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                if let Some(tx) = ready.take() {
                    let _ = tx.send(line.clone());
                }
                if line.contains("panicked") {
                    watch.panics.lock().unwrap().push(format!("{name}: {line}"));
                }
                if let Some(pid) = line
                    .split("handler process started: pid ")
                    .nth(1)
                    .and_then(|rest| rest.trim().parse::<u32>().ok())
                {
                    watch.handler_pid.store(pid, Ordering::SeqCst);
                    watch.handler_starts.fetch_add(1, Ordering::SeqCst);
                }
                use std::io::Write as _;
                let _ = writeln!(file.lock().unwrap(), "{line}");
            }
        });
    }
    let ready = tokio::time::timeout(Duration::from_secs(120), ready_rx)
        .await
        .ok()
        .and_then(Result::ok);
    Ok((Proc { child, name }, ready))
}

impl Proc {
    fn pid(&self) -> Option<i32> {
        self.child.id().map(|p| p as i32)
    }

    async fn stop(mut self) {
        if let Some(pid) = self.pid() {
            // SAFETY: kill(2) on a child we started and have not reaped.
            unsafe {
                libc::kill(pid, libc::SIGTERM);
            }
        }
        if tokio::time::timeout(Duration::from_secs(10), self.child.wait())
            .await
            .is_err()
        {
            eprintln!("soak: {} ignored SIGTERM; killing it", self.name);
            let _ = self.child.kill().await;
        }
    }
}

fn ready_field(line: &Option<String>, field: &str) -> Result<String, String> {
    let line = line.as_deref().ok_or("no ready line")?;
    let value: Value = serde_json::from_str(line).map_err(|e| format!("ready line {line}: {e}"))?;
    value[field]
        .as_str()
        .map(str::to_owned)
        .ok_or(format!("ready line has no {field}: {line}"))
}

fn proc_status(pid: u32) -> Option<(u64, u64, u64)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse::<u64>().ok())
    };
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd")).ok()?.count() as u64;
    Some((field("VmRSS:")?, fds, field("Threads:")?))
}

// ---- the load ---------------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
enum Function {
    GetSecret,
    WriteBlob,
    ReadBlob,
    TokenInfo,
    CallApi,
    Whoami,
    RefreshTokens,
}

impl Function {
    fn name(self) -> &'static str {
        match self {
            Self::GetSecret => "GetSecret",
            Self::WriteBlob => "WriteBlob",
            Self::ReadBlob => "ReadBlob",
            Self::TokenInfo => "TokenInfo",
            Self::CallApi => "CallApi",
            Self::Whoami => "Whoami",
            Self::RefreshTokens => "RefreshTokens",
        }
    }

    fn success(self) -> u16 {
        match self {
            Self::WriteBlob => 201,
            Self::RefreshTokens => 202,
            _ => 200,
        }
    }

    fn needs_token(self) -> bool {
        !matches!(self, Self::Whoami | Self::RefreshTokens)
    }
}

struct Record {
    function: Function,
    started: Duration,
    finished: Duration,
    status: u16,
    empty_body: bool,
    /// A 503 from the handler's in-flight cap: documented under load, whatever fault is on.
    overloaded: bool,
}

/// The in-flight cap's refusal names its setting (README, error table); 128 connections against
/// faults that slow every answer down reach the cap by design.
const OVERLOAD_MARK: &str = "MAX_CONCURRENT_INVOCATIONS";

struct Shared {
    base: String,
    key: String,
    master: String,
    client: reqwest::Client,
    epoch: Instant,
    deadline: Instant,
    paused: AtomicBool,
    records: Mutex<Vec<Record>>,
    blobs: Mutex<BTreeMap<String, String>>,
    bad_reads: Mutex<Vec<String>>,
    whoami_token: RwLock<String>,
}

async fn worker(shared: Arc<Shared>, id: usize) {
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15 ^ (id as u64 + 1).wrapping_mul(0x1234_5678_9ABC));
    let mut written: Vec<String> = Vec::new();
    let mut n = 0u64;
    while Instant::now() < shared.deadline {
        if shared.paused.load(Ordering::SeqCst) {
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        }
        n += 1;
        let pick = rng.below(100);
        let base = &shared.base;
        let client = &shared.client;
        // A function's URL with the function key, as the host's callers send it.
        let keyed = |path: &str| format!("{base}/api/{path}?code={}", shared.key);
        let (function, request, blob) = match pick {
            0..=29 => (
                Function::GetSecret,
                client.get(keyed("secrets/demo-secret")),
                None,
            ),
            30..=44 => {
                let name = format!("soak-{id}-{n}.txt");
                let body = format!("soak {id} {n} {}", rng.below(1 << 40));
                (
                    Function::WriteBlob,
                    client
                        .put(keyed(&format!("blobs/demo/{name}")))
                        .header("Content-Type", "text/plain")
                        .body(body.clone()),
                    Some((name, body)),
                )
            }
            45..=59 if !written.is_empty() => {
                let name = written[rng.below(written.len() as u64) as usize].clone();
                (
                    Function::ReadBlob,
                    client.get(keyed(&format!("blobs/demo/{name}"))),
                    Some((name, String::new())),
                )
            }
            45..=74 => {
                let resource = if rng.below(2) == 0 {
                    ""
                } else {
                    "&resource=https://storage.azure.com"
                };
                (
                    Function::TokenInfo,
                    client.get(keyed("token") + resource),
                    None,
                )
            }
            75..=84 => (Function::CallApi, client.get(keyed("call/whoami")), None),
            85..=97 => {
                let token = shared.whoami_token.read().unwrap().clone();
                (
                    Function::Whoami,
                    client.get(format!("{base}/api/whoami")).bearer_auth(token),
                    None,
                )
            }
            _ => (
                Function::RefreshTokens,
                client
                    .post(format!("{base}/admin/functions/RefreshTokens"))
                    .header("x-functions-key", &shared.master)
                    .header("Content-Type", "application/json")
                    .body(r#"{"input":""}"#),
                None,
            ),
        };
        let started = shared.epoch.elapsed();
        let (status, retry_after, body) = match request.send().await {
            Ok(response) => {
                let status = response.status().as_u16();
                let retry_after = response
                    .headers()
                    .get("retry-after")
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.trim().parse::<u64>().ok());
                (
                    status,
                    retry_after,
                    response.text().await.unwrap_or_default(),
                )
            }
            // No answer at all (the client's own timeout): recorded as 0, never documented.
            Err(_) => (0, None, String::new()),
        };
        let finished = shared.epoch.elapsed();
        match (function, &blob) {
            (Function::WriteBlob, Some((name, content))) if status == 201 => {
                shared
                    .blobs
                    .lock()
                    .unwrap()
                    .insert(name.clone(), content.clone());
                written.push(name.clone());
            }
            (Function::ReadBlob, Some((name, _))) if status == 200 => {
                let expected = shared.blobs.lock().unwrap().get(name).cloned();
                if expected.as_deref() != Some(body.as_str()) {
                    shared.bad_reads.lock().unwrap().push(format!(
                        "{name}: read back {} bytes that differ",
                        body.len()
                    ));
                }
            }
            _ => {}
        }
        shared.records.lock().unwrap().push(Record {
            function,
            started,
            finished,
            status,
            empty_body: body.is_empty(),
            overloaded: status == 503 && body.contains(OVERLOAD_MARK),
        });
        // A well-behaved client backs off as the in-flight cap's Retry-After asks, so the load
        // stays at what the handler accepts instead of spinning on instant refusals.
        if status == 503 && body.contains(OVERLOAD_MARK) {
            let wait = Duration::from_secs(retry_after.unwrap_or(1).min(5));
            tokio::time::sleep(wait.min(shared.deadline.saturating_duration_since(Instant::now())))
                .await;
        }
    }
}

// ---- faults -------------------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fault {
    HandlerKilled,
    Identity500,
    Identity429,
    IdentityTimeout,
    IdentityReset,
    IdentityGarbage,
    KeyVault429,
    KeyVault503,
    KeyVaultSlow,
    KeyVaultReset,
    AzuriteDown,
    KeyRotation,
}

impl Fault {
    const ALL: [Fault; 12] = [
        Fault::HandlerKilled,
        Fault::Identity500,
        Fault::Identity429,
        Fault::IdentityTimeout,
        Fault::IdentityReset,
        Fault::IdentityGarbage,
        Fault::KeyVault429,
        Fault::KeyVault503,
        Fault::KeyVaultSlow,
        Fault::KeyVaultReset,
        Fault::AzuriteDown,
        Fault::KeyRotation,
    ];

    fn name(self) -> &'static str {
        match self {
            Self::HandlerKilled => "handler killed with SIGKILL",
            Self::Identity500 => "identity 500",
            Self::Identity429 => "identity 429 + Retry-After: 1",
            Self::IdentityTimeout => "identity answers after 12 s (request timeout 10 s)",
            Self::IdentityReset => "identity closes connections unanswered",
            Self::IdentityGarbage => "identity 200 with a non-JSON body",
            Self::KeyVault429 => "Key Vault 429 + Retry-After: 1",
            Self::KeyVault503 => "Key Vault 503",
            Self::KeyVaultSlow => "Key Vault answers after 3 s",
            Self::KeyVaultReset => "Key Vault closes connections unanswered",
            Self::AzuriteDown => "Azurite stopped, then restarted",
            Self::KeyRotation => "identity signing-key rotation",
        }
    }

    /// The statuses README's error table documents for this fault, per function, besides the
    /// function's success status.
    fn documented(self, function: Function) -> &'static [u16] {
        match self {
            // The host answers its bare 500 while the worker is down (README: "the handler
            // process restarting").
            Self::HandlerKilled => &[500],
            Self::Identity500
            | Self::Identity429
            | Self::IdentityTimeout
            | Self::IdentityReset
            | Self::IdentityGarbage
                if function.needs_token() =>
            {
                &[503]
            }
            Self::KeyVault429 if function == Function::GetSecret => &[503],
            Self::KeyVault503 | Self::KeyVaultReset if function == Function::GetSecret => &[502],
            Self::AzuriteDown if matches!(function, Function::WriteBlob | Function::ReadBlob) => {
                &[502, 504]
            }
            _ => &[],
        }
    }

    /// The functions this fault reaches (for recovery times).
    fn affects(self, function: Function) -> bool {
        match self {
            Self::HandlerKilled => function != Function::RefreshTokens,
            Self::Identity500
            | Self::Identity429
            | Self::IdentityTimeout
            | Self::IdentityReset
            | Self::IdentityGarbage => function.needs_token(),
            Self::KeyVault429 | Self::KeyVault503 | Self::KeyVaultSlow | Self::KeyVaultReset => {
                function == Function::GetSecret
            }
            Self::AzuriteDown => matches!(function, Function::WriteBlob | Function::ReadBlob),
            Self::KeyRotation => matches!(function, Function::Whoami | Function::CallApi),
        }
    }

    fn identity_rule(self) -> Option<Value> {
        let rule = match self {
            Self::Identity500 => json!({"status": 500}),
            Self::Identity429 => json!({"status": 429, "retry_after": "1"}),
            Self::IdentityTimeout => json!({"delay_ms": 12_000}),
            Self::IdentityReset => json!({"reset": true}),
            Self::IdentityGarbage => json!({"malformed": true}),
            _ => return None,
        };
        let mut rule = rule;
        rule["persistent"] = json!(true);
        Some(rule)
    }

    fn keyvault_fault(self) -> Option<Value> {
        Some(match self {
            Self::KeyVault429 => json!({"status": 429, "retry_after": "1", "times": 100_000}),
            Self::KeyVault503 => json!({"status": 503, "times": 100_000}),
            Self::KeyVaultSlow => json!({"delay_ms": 3000, "times": 100_000}),
            Self::KeyVaultReset => json!({"reset": true, "times": 100_000}),
            _ => return None,
        })
    }
}

struct Window {
    fault: Fault,
    start: Duration,
    end: Duration,
    identity_before: (u64, u64),
    identity_after: (u64, u64),
    keyvault_before: u64,
    keyvault_after: u64,
}

struct Stack {
    identity_url: String,
    keyvault_url: String,
    client: reqwest::Client,
}

impl Stack {
    async fn post(&self, url: String, body: Value) -> Result<Value, String> {
        let response = self
            .client
            .post(&url)
            .header("Content-Type", "application/json")
            .body(body.to_string())
            .send()
            .await
            .map_err(|e| format!("{url}: {e}"))?;
        let status = response.status();
        let text = response.text().await.unwrap_or_default();
        if !status.is_success() {
            return Err(format!("{url}: {status} {text}"));
        }
        Ok(serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    async fn delete(&self, url: String) {
        let _ = self.client.delete(url).send().await;
    }

    async fn get(&self, url: String) -> Value {
        match self.client.get(url).send().await {
            Ok(r) => {
                serde_json::from_str(&r.text().await.unwrap_or_default()).unwrap_or(Value::Null)
            }
            Err(_) => Value::Null,
        }
    }

    /// (token requests, of which injected) so far.
    async fn identity_counts(&self) -> (u64, u64) {
        let log = self
            .get(format!("{}/_emulator/requests", self.identity_url))
            .await;
        let requests = log["requests"].as_array().cloned().unwrap_or_default();
        let injected = requests
            .iter()
            .filter(|r| r["injected"].as_bool() == Some(true))
            .count() as u64;
        (log["count"].as_u64().unwrap_or(0), injected)
    }

    async fn keyvault_counts(&self) -> (u64, u64) {
        let log = self
            .get(format!("{}/_emulator/requests", self.keyvault_url))
            .await;
        (
            log["count"].as_u64().unwrap_or(0),
            log["unauthenticated"].as_u64().unwrap_or(0),
        )
    }

    async fn mint_whoami_token(&self) -> Result<String, String> {
        let minted = self
            .post(
                format!("{}/_emulator/mint", self.identity_url),
                json!({"aud": API_ID_URI, "roles": ["Api.Read"]}),
            )
            .await?;
        minted["access_token"]
            .as_str()
            .map(str::to_owned)
            .ok_or("mint answered no token".into())
    }
}

// ---- main ---------------------------------------------------------------------------------------

#[tokio::main]
async fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(args) => args,
        Err(message) => {
            eprintln!("soak: {message}");
            return ExitCode::from(2);
        }
    };
    match run(args).await {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(message) => {
            eprintln!("soak: {message}");
            ExitCode::FAILURE
        }
    }
}

#[allow(clippy::too_many_lines)]
async fn run(args: Args) -> Result<bool, String> {
    let work = &args.work;
    std::fs::create_dir_all(work.join("logs")).map_err(|e| e.to_string())?;
    let watch = Arc::new(Watch {
        panics: Mutex::new(Vec::new()),
        handler_pid: AtomicU32::new(0),
        handler_starts: AtomicU32::new(0),
    });
    let log = |name: &str| work.join("logs").join(format!("{name}.log"));

    // Test PKI.
    let pki = work.join("pki");
    let status = Command::new(&args.emulators)
        .args(["pki", "--out"])
        .arg(&pki)
        .stdout(Stdio::null())
        .status()
        .await
        .map_err(|e| format!("emulators pki: {e}"))?;
    if !status.success() {
        return Err("emulators pki failed".into());
    }

    // Azurite, on disk so that a restart keeps what was acknowledged.
    let azurite_port = free_port();
    let azurite_data = work.join("azurite");
    let _ = std::fs::remove_dir_all(&azurite_data);
    std::fs::create_dir_all(&azurite_data).map_err(|e| e.to_string())?;
    let azurite_command = || {
        let mut command = Command::new(&args.azurite);
        command
            .args(["--blobHost", "127.0.0.1", "--blobPort"])
            .arg(azurite_port.to_string())
            .arg("--cert")
            .arg(pki.join("leaf.pem"))
            .arg("--key")
            .arg(pki.join("leaf.key"))
            .args(["--oauth", "basic", "--disableTelemetry", "--location"])
            .arg(&azurite_data);
        command
    };
    let (azurite, _) = start("azurite", azurite_command(), &log("azurite"), watch.clone()).await?;
    let mut azurite = Some(azurite);

    // Identity emulator with short-lived tokens (see TOKEN_LIFETIME_SECS).
    let mut identity_config: Value = serde_json::from_str(
        &std::fs::read_to_string(args.root.join("scripts/local/identity.json"))
            .map_err(|e| e.to_string())?,
    )
    .map_err(|e| e.to_string())?;
    identity_config["token_lifetime_secs"] = json!(TOKEN_LIFETIME_SECS);
    let tenant = identity_config["tenant_id"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let identity_config_path = work.join("identity.json");
    std::fs::write(&identity_config_path, identity_config.to_string())
        .map_err(|e| e.to_string())?;
    let mut command = Command::new(&args.emulators);
    command
        .args(["identity", "--config"])
        .arg(&identity_config_path)
        .args(["--port", "0"]);
    let (identity, ready) = start("identity", command, &log("identity"), watch.clone()).await?;
    let identity_url = ready_field(&ready, "ready")?;
    let identity_secret = ready_field(&ready, "header_secret")?;

    let mut command = Command::new(&args.emulators);
    command
        .args(["keyvault", "--config"])
        .arg(args.root.join("scripts/local/keyvault.json"))
        .args(["--port", "0", "--cert"])
        .arg(pki.join("leaf.pem"))
        .arg("--key")
        .arg(pki.join("leaf.key"))
        .arg("--jwks-url")
        .arg(format!("{identity_url}/{tenant}/discovery/v2.0/keys"));
    let (keyvault, ready) = start("keyvault", command, &log("keyvault"), watch.clone()).await?;
    let keyvault_url = ready_field(&ready, "ready")?;

    let admin_client = reqwest::Client::builder()
        .no_proxy()
        .danger_accept_invalid_certs(true)
        .timeout(Duration::from_secs(30))
        .build()
        .map_err(|e| e.to_string())?;
    wait_for_azurite(&admin_client, azurite_port).await?;

    // The host emulator with the handler.
    let host_port = free_port();
    let mut command = Command::new(&args.emulators);
    command
        .args(["host", "--app-root"])
        .arg(&args.root)
        .arg("--handler")
        .arg(&args.handler)
        .args(["--port", &host_port.to_string(), "--keys-file"])
        .arg(work.join("host-keys.json"))
        .env("IDENTITY_ENDPOINT", format!("{identity_url}/msi/token"))
        .env("IDENTITY_HEADER", &identity_secret)
        .env("KEY_VAULT_URL", format!("{keyvault_url}/"))
        .env(
            "STORAGE_BLOB_URL",
            format!("https://127.0.0.1:{azurite_port}/devstoreaccount1"),
        )
        .env("SSL_CERT_FILE", pki.join("ca.pem"))
        .env("ALLOWED_SECRETS", "demo-secret")
        .env("ALLOWED_CONTAINERS", "demo")
        .env("TOKEN_REFRESH_SCHEDULE", "0 */5 * * * *")
        .env(
            "DOWNSTREAM_API_URL",
            format!("http://127.0.0.1:{host_port}/api"),
        )
        .env("DOWNSTREAM_API_SCOPE", API_ID_URI)
        .env("AUTH_AUTHORITY", format!("{identity_url}/{tenant}/v2.0"))
        .env("AUTH_AUDIENCE", API_ID_URI)
        .env("AUTH_REQUIRED_ROLE", "Api.Read")
        .env("FUNCTIONS_WORKER_RUNTIME", "custom")
        .env("AzureWebJobsStorage", "UseDevelopmentStorage=true")
        .env("RUST_LOG", "info");
    let (host, ready) = start("host", command, &log("host"), watch.clone()).await?;
    let base = ready_field(&ready, "ready")?;
    let key = ready_field(&ready, "function_key")?;
    let master = ready_field(&ready, "master_key")?;

    let stack = Stack {
        identity_url: identity_url.clone(),
        keyvault_url: keyvault_url.clone(),
        client: admin_client.clone(),
    };
    let whoami_token = stack.mint_whoami_token().await?;

    // Schedule: warm-up, the kill (so the second process lives through every other fault),
    // a second warm-up, the faults one after the other with a quiet gap each, a quiet tail.
    let total = args.duration;
    let warmup = total / 10;
    let tail = total / 10;
    let slots = Fault::ALL.len() as u32 + 1; // the second warm-up takes one slot
    let slot = (total - warmup - tail) / slots;
    let active = slot * 3 / 4;
    println!(
        "soak: {} s, {} connections, warm-up {} s, {} faults of {} s each",
        total.as_secs(),
        args.connections,
        warmup.as_secs(),
        Fault::ALL.len(),
        active.as_secs()
    );

    let client = reqwest::Client::builder()
        .no_proxy()
        .pool_max_idle_per_host(args.connections)
        .timeout(Duration::from_secs(120))
        .build()
        .map_err(|e| e.to_string())?;
    let epoch = Instant::now();
    let shared = Arc::new(Shared {
        base,
        key,
        master,
        client,
        epoch,
        deadline: epoch + total,
        paused: AtomicBool::new(false),
        records: Mutex::new(Vec::new()),
        blobs: Mutex::new(BTreeMap::new()),
        bad_reads: Mutex::new(Vec::new()),
        whoami_token: RwLock::new(whoami_token),
    });
    let workers: Vec<_> = (0..args.connections)
        .map(|id| tokio::spawn(worker(shared.clone(), id)))
        .collect();

    // Memory and descriptors of whichever handler process is current, every 5 s.
    let samples: Arc<Mutex<Vec<Value>>> = Arc::new(Mutex::new(Vec::new()));
    let sampler = {
        let samples = samples.clone();
        let watch = watch.clone();
        let deadline = shared.deadline;
        tokio::spawn(async move {
            while Instant::now() < deadline {
                let pid = watch.handler_pid.load(Ordering::SeqCst);
                if let Some((rss, fds, threads)) = proc_status(pid) {
                    samples
                        .lock()
                        .unwrap()
                        .push(json!({"t": epoch.elapsed().as_secs(),
                        "pid": pid, "rss_kib": rss, "fds": fds, "threads": threads}));
                }
                tokio::time::sleep(Duration::from_secs(5)).await;
            }
        })
    };

    let at = |offset: Duration| tokio::time::sleep_until((epoch + offset).into());
    let mut windows: Vec<Window> = Vec::new();
    let mut idle_baseline = None;
    let mut baseline_rss = None;
    let mut cursor = warmup;
    for fault in Fault::ALL {
        at(cursor).await;
        let identity_before = stack.identity_counts().await;
        let keyvault_before = stack.keyvault_counts().await.0;
        let start = epoch.elapsed();
        apply(
            fault,
            &stack,
            &watch,
            &mut azurite,
            &azurite_command,
            &log("azurite"),
        )
        .await?;
        if fault == Fault::KeyRotation {
            // Callers now present tokens signed with the new key.
            let token = stack.mint_whoami_token().await?;
            *shared.whoami_token.write().unwrap() = token;
        }
        at(cursor + active).await;
        clear(
            fault,
            &stack,
            &mut azurite,
            &azurite_command,
            &log("azurite"),
            &watch,
        )
        .await?;
        let end = epoch.elapsed();
        windows.push(Window {
            fault,
            start,
            end,
            identity_before,
            identity_after: stack.identity_counts().await,
            keyvault_before,
            keyvault_after: stack.keyvault_counts().await.0,
        });
        cursor += slot;
        if fault == Fault::HandlerKilled {
            // The restarted process warms up for one slot; then an idle moment for the baseline.
            at(cursor + slot - Duration::from_secs(4)).await;
            let pid = watch.handler_pid.load(Ordering::SeqCst);
            baseline_rss = proc_status(pid).map(|s| s.0);
            shared.paused.store(true, Ordering::SeqCst);
            tokio::time::sleep(Duration::from_secs(3)).await;
            idle_baseline = proc_status(pid);
            shared.paused.store(false, Ordering::SeqCst);
            cursor += slot;
        }
    }
    // The tail: load without faults until the deadline; the RSS at its end under the same load.
    at(total - Duration::from_secs(2)).await;
    let pid = watch.handler_pid.load(Ordering::SeqCst);
    let final_rss = proc_status(pid).map(|s| s.0);
    for worker in workers {
        let _ = worker.await;
    }
    let _ = sampler.await;
    // Idle again: connection pools (the host's to the handler, the handler's to its services)
    // close idle connections after 90 s, so wait up to 120 s for the descriptors to come back.
    let idle_started = Instant::now();
    let mut idle_end = proc_status(pid);
    while idle_started.elapsed() < IDLE_WAIT {
        tokio::time::sleep(Duration::from_secs(5)).await;
        idle_end = proc_status(pid);
        if let (Some(b), Some(e)) = (idle_baseline, idle_end)
            && e.1 <= b.1 + FD_SLACK
            && e.2 <= b.2 + 2
        {
            break;
        }
    }
    let idle_wait = idle_started.elapsed().as_secs();

    // Every acknowledged blob, read back through the handler.
    let acknowledged: Vec<(String, String)> = shared
        .blobs
        .lock()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let missing = read_back(&shared, &acknowledged).await;

    let identity_total = stack.identity_counts().await;
    let keyvault_total = stack.keyvault_counts().await;
    let handler_starts = watch.handler_starts.load(Ordering::SeqCst);

    host.stop().await;
    keyvault.stop().await;
    identity.stop().await;
    if let Some(azurite) = azurite.take() {
        azurite.stop().await;
    }

    // ---- checks --------------------------------------------------------------------------
    let records = std::mem::take(&mut *shared.records.lock().unwrap());
    let grace = IDENTITY_DEADLINE + Duration::from_secs(5);
    let mut undocumented: BTreeMap<String, u64> = BTreeMap::new();
    let mut by_cause: BTreeMap<String, u64> = BTreeMap::new();
    let mut by_function: BTreeMap<&str, BTreeMap<u16, u64>> = BTreeMap::new();
    for record in &records {
        *by_function
            .entry(record.function.name())
            .or_default()
            .entry(record.status)
            .or_default() += 1;
        if record.status == record.function.success() {
            continue;
        }
        if record.overloaded {
            *by_cause
                .entry(format!(
                    "in-flight cap (MAX_CONCURRENT_INVOCATIONS) → {} 503",
                    record.function.name()
                ))
                .or_default() += 1;
            continue;
        }
        let overlapping: Vec<Fault> = windows
            .iter()
            .filter(|w| record.finished >= w.start && record.started <= w.end + grace)
            .map(|w| w.fault)
            .collect();
        let allowed = overlapping
            .iter()
            .any(|f| f.documented(record.function).contains(&record.status))
            // The host's restart answer is a bare 500: a 500 with a body is the handler's own.
            && (record.status != 500 || record.empty_body);
        // The most recent fault that explains the status is named as its cause.
        let cause = overlapping
            .iter()
            .rev()
            .find(|f| f.documented(record.function).contains(&record.status))
            .map_or("no fault active".to_owned(), |f| f.name().to_owned());
        if allowed {
            *by_cause
                .entry(format!(
                    "{} → {} {}",
                    cause,
                    record.function.name(),
                    record.status
                ))
                .or_default() += 1;
        } else {
            *undocumented
                .entry(format!(
                    "{} {} during [{}]",
                    record.function.name(),
                    record.status,
                    overlapping
                        .iter()
                        .map(|f| f.name())
                        .collect::<Vec<_>>()
                        .join(", ")
                ))
                .or_default() += 1;
        }
    }

    let fault_matrix: Vec<Value> = windows
        .iter()
        .enumerate()
        .map(|(i, w)| {
            // A fault's after-effects are counted until the next fault starts.
            let until = windows
                .get(i + 1)
                .map_or(w.end + grace, |next| next.start.min(w.end + grace));
            fault_row(w, &records, until)
        })
        .collect();
    let latency = |from: Duration, to: Duration| {
        let mut values: Vec<u64> = records
            .iter()
            .filter(|r| r.started >= from && r.started < to)
            .map(|r| (r.finished - r.started).as_millis() as u64)
            .collect();
        values.sort_unstable();
        json!({"count": values.len(), "p50_ms": quantile(&values, 0.5), "p99_ms": quantile(&values, 0.99)})
    };
    let faults_start = windows.first().map_or(warmup, |w| w.start);
    let faults_end = windows.last().map_or(total, |w| w.end + grace);

    let bad_reads = shared.bad_reads.lock().unwrap().clone();
    let panics = watch.panics.lock().unwrap().clone();
    let rss_growth_kib = match (baseline_rss, final_rss) {
        (Some(b), Some(f)) => Some(f as i64 - b as i64),
        _ => None,
    };
    // Upper bounds from the retry and cache policy (see the report's explanation).
    let processes = u64::from(handler_starts.max(1));
    let reuse = TOKEN_LIFETIME_SECS - 300;
    let identity_bound = processes * TOKEN_KEYS * (total.as_secs() / reuse + 2)
        + windows
            .iter()
            .filter(|w| w.fault.identity_rule().is_some())
            .map(|w| {
                let seconds = (w.end - w.start + IDENTITY_DEADLINE).as_secs();
                // Single flight: one acquisition per key at a time, each at most
                // 1 + IDENTITY_MAX_RETRIES attempts, and each acquisition of a failing
                // endpoint lasts at least the first back-off (0.5 s).
                TOKEN_KEYS * (seconds * 2 + 1) * (1 + IDENTITY_MAX_RETRIES)
            })
            .sum::<u64>();
    let getsecret_calls = by_function
        .get("GetSecret")
        .map_or(0, |m| m.values().sum::<u64>());
    // The SDK's retry policy tries a secret request at most 4 times; a challenge (401 without a
    // token) is sent once per process and again only when the vault asks.
    let keyvault_bound = getsecret_calls * 4 + processes * 2;

    let mut checks: Vec<(String, bool, String)> = Vec::new();
    checks.push((
        "every status is documented for the fault active".into(),
        undocumented.is_empty(),
        format!("{} undocumented", undocumented.values().sum::<u64>()),
    ));
    checks.push((
        "no panic in any process's output".into(),
        panics.is_empty(),
        format!("{} panic lines", panics.len()),
    ));
    checks.push((
        "every blob acknowledged with 201 reads back identical".into(),
        missing.is_empty() && bad_reads.is_empty(),
        format!(
            "{} acknowledged, {} missing or different afterwards, {} differed during the run",
            acknowledged.len(),
            missing.len(),
            bad_reads.len()
        ),
    ));
    // A warm-up of a few seconds says nothing about growth: short runs report RSS only.
    let enforce_rss = total >= Duration::from_secs(300);
    checks.push((
        "RSS after warm-up grows < 5 MB".into(),
        !enforce_rss || rss_growth_kib.is_some_and(|g| g < 5 * 1024),
        format!(
            "{rss_growth_kib:?} KiB ({baseline_rss:?} → {final_rss:?} KiB){}",
            if enforce_rss {
                ""
            } else {
                "; not enforced on a run under 300 s"
            }
        ),
    ));
    let fd_ok = match (idle_baseline, idle_end) {
        (Some(b), Some(e)) => e.1 <= b.1 + FD_SLACK && e.2 <= b.2 + 2,
        _ => false,
    };
    checks.push((
        "open fds and threads return to the idle baseline".into(),
        fd_ok,
        format!(
            "fds {:?} → {:?}, threads {:?} → {:?}, {idle_wait} s after the load stopped",
            idle_baseline.map(|s| s.1),
            idle_end.map(|s| s.1),
            idle_baseline.map(|s| s.2),
            idle_end.map(|s| s.2)
        ),
    ));
    checks.push((
        "identity requests within the retry and cache policy".into(),
        identity_total.0 <= identity_bound,
        format!(
            "{} requests ({} injected), bound {identity_bound}",
            identity_total.0, identity_total.1
        ),
    ));
    checks.push((
        "Key Vault requests within the retry policy".into(),
        keyvault_total.0 <= keyvault_bound,
        format!(
            "{} requests ({} without a token) for {getsecret_calls} GetSecret calls, bound {keyvault_bound}",
            keyvault_total.0, keyvault_total.1
        ),
    ));
    checks.push((
        "the host emulator restarted the killed handler".into(),
        handler_starts == 2,
        format!("{handler_starts} handler processes"),
    ));

    let passed = checks.iter().all(|c| c.1);
    let errors_total = records
        .iter()
        .filter(|r| r.status != r.function.success())
        .count();
    let report = json!({
        "duration_s": total.as_secs(),
        "connections": args.connections,
        "fault_seconds": active.as_secs(),
        "token_lifetime_s": TOKEN_LIFETIME_SECS,
        "invocations": records.len(),
        "errors": errors_total,
        "by_function": by_function.iter().map(|(f, m)| (f.to_string(), json!(m.iter().map(|(s, n)| (s.to_string(), *n)).collect::<BTreeMap<_, _>>()))).collect::<BTreeMap<_, _>>(),
        "errors_by_cause": by_cause,
        "undocumented": undocumented,
        "latency_warmup": latency(Duration::ZERO, faults_start),
        "latency_under_faults": latency(faults_start, faults_end),
        "latency_tail": latency(faults_end, total),
        "fault_matrix": fault_matrix,
        "samples": *samples.lock().unwrap(),
        "identity_requests": identity_total.0,
        "identity_injected": identity_total.1,
        "identity_bound": identity_bound,
        "keyvault_requests": keyvault_total.0,
        "keyvault_unauthenticated": keyvault_total.1,
        "keyvault_bound": keyvault_bound,
        "blobs_acknowledged": acknowledged.len(),
        "blobs_missing": missing.iter().take(20).collect::<Vec<_>>(),
        "panics": panics.iter().take(20).collect::<Vec<_>>(),
        "handler_processes": handler_starts,
        "rss_baseline_kib": baseline_rss,
        "rss_final_kib": final_rss,
        "idle_baseline": idle_baseline.map(|s| json!({"rss_kib": s.0, "fds": s.1, "threads": s.2})),
        "idle_end": idle_end.map(|s| json!({"rss_kib": s.0, "fds": s.1, "threads": s.2})),
        "checks": checks.iter().map(|(name, ok, detail)| json!({"check": name, "passed": ok, "detail": detail})).collect::<Vec<_>>(),
        "passed": passed,
    });
    std::fs::write(&args.report, format!("{report:#}\n")).map_err(|e| e.to_string())?;
    for (name, ok, detail) in &checks {
        println!(
            "soak: {} {name}: {detail}",
            if *ok { "ok  " } else { "FAIL" }
        );
    }
    for (what, count) in undocumented.iter().take(20) {
        println!("soak:      undocumented: {what} ×{count}");
    }
    println!(
        "soak: {} invocations, {} errors; report in {}",
        records.len(),
        errors_total,
        args.report.display()
    );
    Ok(passed)
}

fn quantile(sorted: &[u64], q: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    sorted[((sorted.len() - 1) as f64 * q).round() as usize]
}

/// One fault's row: what callers saw during it (and its grace period), the requests it cost,
/// and how long after it was lifted the affected functions succeeded again.
fn fault_row(window: &Window, records: &[Record], until: Duration) -> Value {
    let mut seen: BTreeMap<String, u64> = BTreeMap::new();
    // Every response whose request was in flight at some moment of the fault.
    for record in records
        .iter()
        .filter(|r| r.finished >= window.start && r.started <= window.end)
    {
        *seen
            .entry(format!("{} {}", record.function.name(), record.status))
            .or_default() += 1;
    }
    let affected = |f: Function| window.fault.affects(f);
    let recovered = records
        .iter()
        .filter(|r| {
            r.started >= window.end && affected(r.function) && r.status == r.function.success()
        })
        .map(|r| r.finished)
        .min()
        .map(|t| (t.saturating_sub(window.end)).as_millis() as u64);
    // An answer that is one of the errors the fault documents for an affected function.
    let fault_error = |r: &Record| {
        affected(r.function)
            && !r.overloaded
            && window.fault.documented(r.function).contains(&r.status)
    };
    let failing_after = records
        .iter()
        .filter(|r| r.started >= window.end && r.started <= until && fault_error(r))
        .count();
    // How long callers kept seeing the fault's errors, from its start (for an instant fault such
    // as the SIGKILL this is the outage).
    let last_error_ms = records
        .iter()
        .filter(|r| r.finished >= window.start && r.started <= until && fault_error(r))
        .map(|r| r.finished.saturating_sub(window.start).as_millis() as u64)
        .max();
    json!({
        "fault": window.fault.name(),
        "last_error_ms": last_error_ms,
        "start_s": window.start.as_secs(),
        "seconds": (window.end - window.start).as_secs(),
        "seen": seen,
        "identity_requests": window.identity_after.0.saturating_sub(window.identity_before.0),
        "identity_injected": window.identity_after.1.saturating_sub(window.identity_before.1),
        "keyvault_requests": window.keyvault_after.saturating_sub(window.keyvault_before),
        "recovery_ms": recovered,
        "errors_after_lifted": failing_after,
    })
}

async fn apply(
    fault: Fault,
    stack: &Stack,
    watch: &Watch,
    azurite: &mut Option<Proc>,
    _azurite_command: &impl Fn() -> Command,
    _log: &Path,
) -> Result<(), String> {
    if let Some(rule) = fault.identity_rule() {
        stack
            .post(format!("{}/_emulator/faults", stack.identity_url), rule)
            .await?;
    }
    if let Some(spec) = fault.keyvault_fault() {
        stack
            .post(format!("{}/_emulator/faults", stack.keyvault_url), spec)
            .await?;
    }
    match fault {
        Fault::HandlerKilled => {
            let pid = watch.handler_pid.load(Ordering::SeqCst);
            if pid == 0 {
                return Err("the host emulator never logged the handler's pid".into());
            }
            // SAFETY: kill(2) on the handler the host emulator started for us.
            unsafe {
                libc::kill(pid as i32, libc::SIGKILL);
            }
        }
        Fault::AzuriteDown => {
            if let Some(proc) = azurite.take() {
                proc.stop().await;
            }
        }
        Fault::KeyRotation => {
            stack
                .post(
                    format!("{}/_emulator/rotate-keys", stack.identity_url),
                    json!({}),
                )
                .await?;
        }
        _ => {}
    }
    Ok(())
}

async fn clear(
    fault: Fault,
    stack: &Stack,
    azurite: &mut Option<Proc>,
    azurite_command: &impl Fn() -> Command,
    log: &Path,
    watch: &Arc<Watch>,
) -> Result<(), String> {
    if fault.identity_rule().is_some() {
        stack
            .delete(format!("{}/_emulator/faults", stack.identity_url))
            .await;
    }
    if fault.keyvault_fault().is_some() {
        stack
            .delete(format!("{}/_emulator/faults", stack.keyvault_url))
            .await;
    }
    if fault == Fault::AzuriteDown {
        let (proc, _) = start("azurite", azurite_command(), log, watch.clone()).await?;
        *azurite = Some(proc);
    }
    Ok(())
}

async fn wait_for_azurite(client: &reqwest::Client, port: u16) -> Result<(), String> {
    for _ in 0..600 {
        if client
            .get(format!("https://127.0.0.1:{port}/"))
            .send()
            .await
            .is_ok()
        {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Err("Azurite did not answer within 60 s".into())
}

/// Reads every acknowledged blob back; returns those missing or different.
async fn read_back(shared: &Arc<Shared>, blobs: &[(String, String)]) -> Vec<String> {
    let missing = Arc::new(Mutex::new(Vec::new()));
    let next = Arc::new(AtomicU64::new(0));
    let blobs = Arc::new(blobs.to_vec());
    let readers: Vec<_> = (0..32)
        .map(|_| {
            let (shared, missing, next, blobs) =
                (shared.clone(), missing.clone(), next.clone(), blobs.clone());
            tokio::spawn(async move {
                loop {
                    let i = next.fetch_add(1, Ordering::SeqCst) as usize;
                    let Some((name, content)) = blobs.get(i) else {
                        break;
                    };
                    let url = format!("{}/api/blobs/demo/{name}?code={}", shared.base, shared.key);
                    let mut outcome = String::from("no answer");
                    // A transient failure is retried; only a wrong or absent blob counts.
                    for _ in 0..3 {
                        match shared.client.get(&url).send().await {
                            Ok(r) if r.status() == 200 => {
                                let body = r.text().await.unwrap_or_default();
                                outcome = if body == *content {
                                    String::new()
                                } else {
                                    format!("{name}: content differs")
                                };
                                break;
                            }
                            Ok(r) if r.status() == 404 => {
                                outcome = format!("{name}: 404");
                                break;
                            }
                            Ok(r) => outcome = format!("{name}: {}", r.status()),
                            Err(e) => outcome = format!("{name}: {e}"),
                        }
                        tokio::time::sleep(Duration::from_millis(500)).await;
                    }
                    if !outcome.is_empty() {
                        missing.lock().unwrap().push(outcome);
                    }
                }
            })
        })
        .collect();
    for reader in readers {
        let _ = reader.await;
    }
    missing.lock().unwrap().clone()
}
