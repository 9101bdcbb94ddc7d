//! `handler doctor` against the emulators: the real binary, run as a user runs it in the app's
//! SSH console, with the platform's environment pointing at the local stack. Each broken
//! deployment gets its FAIL line with what to do and a non-zero exit; no run prints a token or a
//! secret value.

use std::path::Path;
use std::process::Command;

use test_kit::stack::{API_ID_URI, READER_CLIENT_ID, Stack, set_env};

/// What a run printed, and whether it passed.
struct Run {
    ok: bool,
    stdout: String,
    stderr: String,
}

impl Run {
    fn line(&self, start: &str) -> &str {
        self.stdout
            .lines()
            .find(|l| l.starts_with(start))
            .unwrap_or_else(|| panic!("no line starting {start:?} in:\n{}", self.stdout))
    }

    /// Asserts that the line starting `start` contains `needle`.
    fn line_has(&self, start: &str, needle: &str) {
        let line = self.line(start);
        assert!(line.contains(needle), "{needle:?} not in {line:?}");
    }
}

/// The settings a healthy deployment has, pointing at the stack (storage only with Azurite).
fn healthy_env(stack: &Stack) -> Vec<(String, String)> {
    let mut env = stack.handler_env();
    // CallApi's base URL is only parsed here, never called.
    env.extend(stack.service_to_service_env("http://127.0.0.1:9/api"));
    env.push(("TOKEN_REFRESH_SCHEDULE".into(), "0 */5 * * * *".into()));
    env.push(("ALLOWED_CONTAINERS".into(), "demo".into()));
    // The secret the system identity may read comes first, so doctor reads it.
    set_env(&mut env, "ALLOWED_SECRETS", Some("app-greeting,app-*"));
    env
}

/// Runs `handler doctor` on the repository's own folders with exactly `env` (nothing inherited, so
/// no developer setting and no real identity endpoint is ever reached).
fn doctor(env: &[(String, String)]) -> Run {
    let output = Command::new(test_kit::handler::handler_binary())
        .arg("doctor")
        .arg("--app-root")
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")))
        .env_clear()
        .envs(env.iter().map(|(k, v)| (k, v)))
        .output()
        .expect("run handler doctor");
    let run = Run {
        ok: output.status.success(),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    };
    for text in [&run.stdout, &run.stderr] {
        // Every token the emulator mints is a JWT, whose header starts with `eyJ`.
        assert!(!text.contains("eyJ"), "a token was printed:\n{text}");
        for value in ["hello from the vault", "s3cr3t-db-password"] {
            assert!(!text.contains(value), "a secret value was printed:\n{text}");
        }
        assert!(
            !text.contains(&stack_header_secret(env)),
            "the identity header was printed:\n{text}"
        );
    }
    run
}

fn stack_header_secret(env: &[(String, String)]) -> String {
    env.iter()
        .find(|(k, _)| k == "IDENTITY_HEADER")
        .map(|(_, v)| v.clone())
        .unwrap_or_else(|| "\u{0}never".into())
}

fn closed_port_url(path: &str) -> String {
    format!("https://127.0.0.1:{}{path}", test_kit::handler::free_port())
}

#[test]
fn a_healthy_deployment_without_storage_passes_every_other_check() {
    let stack = Stack::start(false);
    let mut env = healthy_env(&stack);
    // Storage checked elsewhere (needs Azurite): here, an unreachable account fails only its lines.
    set_env(
        &mut env,
        "STORAGE_BLOB_URL",
        Some(&closed_port_url("/devstoreaccount1")),
    );
    let run = doctor(&env);
    assert!(!run.ok, "storage is unreachable, so the run must fail");
    run.line_has("ok   glibc: 2.", "2.28 or newer");
    run.line_has("ok   functions: ", "match the code");
    for function in [
        "GetSecret",
        "CallApi",
        "Whoami",
        "RefreshTokens",
        "TokenInfo",
    ] {
        run.line(&format!("ok   settings {function}: "));
    }
    run.line_has("ok   identity: ", "App Service 2019-08-01");
    run.line_has("ok   token https://vault.azure.net: ", "oid ");
    run.line("ok   token https://storage.azure.com: ");
    run.line(&format!("ok   token {API_ID_URI}"));
    run.line_has("ok   keyvault: ", "read secret 'app-greeting'");
    let storage = run.line("FAIL storage: ");
    assert!(storage.contains("container 'demo'"), "{storage}");
    assert!(storage.contains("-> check STORAGE_BLOB_URL"), "{storage}");
    assert_eq!(
        run.stdout.lines().filter(|l| l.starts_with("FAIL")).count(),
        1,
        "{}",
        run.stdout
    );
}

#[test]
fn a_missing_setting_fails_the_functions_that_need_it() {
    let stack = Stack::start(false);
    let mut env = healthy_env(&stack);
    set_env(&mut env, "KEY_VAULT_URL", None);
    set_env(&mut env, "TOKEN_REFRESH_SCHEDULE", None);
    set_env(&mut env, "ALLOWED_CONTAINERS", None);
    set_env(
        &mut env,
        "STORAGE_BLOB_URL",
        Some(&closed_port_url("/devstoreaccount1")),
    );
    let run = doctor(&env);
    assert!(!run.ok);
    let line = run.line("FAIL settings GetSecret: ");
    assert!(
        line.contains("KEY_VAULT_URL") && line.contains("-> "),
        "{line}"
    );
    run.line_has(
        "FAIL settings RefreshTokens: ",
        "set TOKEN_REFRESH_SCHEDULE",
    );
    run.line_has("FAIL settings WriteBlob: ", "ALLOWED_CONTAINERS");
    run.line("FAIL keyvault: not checked");
    run.line("ok   settings CallApi: ");
}

#[test]
fn a_403_from_key_vault_names_the_role_and_the_wait() {
    let stack = Stack::start(false);
    let mut env = healthy_env(&stack);
    // The vault lets the system identity read app-* only.
    set_env(&mut env, "ALLOWED_SECRETS", Some("db-password"));
    let run = doctor(&env);
    assert!(!run.ok);
    let line = run.line("FAIL keyvault: ");
    assert!(line.contains("403") || line.contains("denied"), "{line}");
    assert!(line.contains("Key Vault Secrets User"), "{line}");
    assert!(line.contains("10 minutes"), "{line}");

    // The identity that holds the role reads it.
    set_env(&mut env, "AZURE_CLIENT_ID", Some(READER_CLIENT_ID));
    let run = doctor(&env);
    run.line_has("ok   keyvault: ", "read secret 'db-password'");
    run.line_has("ok   identity: ", READER_CLIENT_ID);
}

#[test]
fn an_unreachable_vault_or_identity_endpoint_fails_with_what_to_check() {
    let stack = Stack::start(false);
    let mut env = healthy_env(&stack);
    set_env(&mut env, "KEY_VAULT_URL", Some(&closed_port_url("/")));
    let run = doctor(&env);
    assert!(!run.ok);
    run.line_has("FAIL keyvault: ", "-> check KEY_VAULT_URL");

    let mut env = healthy_env(&stack);
    set_env(
        &mut env,
        "IDENTITY_ENDPOINT",
        Some(&format!(
            "http://127.0.0.1:{}/msi/token",
            test_kit::handler::free_port()
        )),
    );
    let run = doctor(&env);
    assert!(!run.ok);
    run.line_has("FAIL token https://vault.azure.net: ", "AZURE_CLIENT_ID");
    run.line("FAIL keyvault: ");
}

#[test]
fn folders_that_do_not_match_the_code_fail() {
    let stack = Stack::start(false);
    let env = healthy_env(&stack);
    let root = tempfile::tempdir().unwrap();
    std::fs::write(
        root.path().join("host.json"),
        std::fs::read(Path::new(env!("CARGO_MANIFEST_DIR")).join("host.json")).unwrap(),
    )
    .unwrap();
    std::fs::create_dir(root.path().join("Extra")).unwrap();
    std::fs::write(
        root.path().join("Extra/function.json"),
        r#"{"bindings":[{"type":"httpTrigger","direction":"in","name":"req","methods":["get"]},{"type":"http","direction":"out","name":"res"}]}"#,
    )
    .unwrap();
    let output = Command::new(test_kit::handler::handler_binary())
        .args(["doctor", "--app-root"])
        .arg(root.path())
        .env_clear()
        .envs(env.iter().map(|(k, v)| (k, v)))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(!output.status.success());
    let line = stdout
        .lines()
        .find(|l| l.starts_with("FAIL functions: "))
        .unwrap_or_else(|| panic!("{stdout}"));
    assert!(line.contains("Extra"), "{line}");
}

#[test]
#[ignore = "needs Azurite: run scripts/test (it runs scripts/install-test-deps)"]
fn a_healthy_deployment_passes_every_check() {
    let stack = Stack::start(true);
    let run = doctor(&healthy_env(&stack));
    assert!(run.ok, "{}\n{}", run.stdout, run.stderr);
    run.line_has(
        "ok   storage: ",
        "container 'demo' is writable (probe blob written and deleted)",
    );
    assert!(
        run.stdout.lines().all(|l| l.starts_with("ok   ")),
        "{}",
        run.stdout
    );
}
