//! The deploy package (`scripts/package` → dist/app.zip), unpacked into a temporary directory and
//! run under the host emulator, as `func azure functionapp publish` would deploy it.

mod common;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::emulator::spawn_emulator_with_env;
use common::stack::Stack;

fn package() -> PathBuf {
    let zip = Path::new(env!("CARGO_MANIFEST_DIR")).join("dist/app.zip");
    assert!(
        zip.exists(),
        "{} is missing: run scripts/package (scripts/test does)",
        zip.display()
    );
    zip
}

/// Unpacks with Unix modes kept, as the platform does for the handler (Python's zipfile, which
/// every build machine has, does not restore modes by itself).
fn unpack(zip: &Path, into: &Path) -> Vec<(String, u32)> {
    let script = r#"
import os, sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as z:
    for info in z.infolist():
        z.extract(info, sys.argv[2])
        mode = (info.external_attr >> 16) & 0o7777
        os.chmod(os.path.join(sys.argv[2], info.filename), mode)
        print(f"{info.filename} {mode:o}")
"#;
    let output = Command::new("python3")
        .args(["-c", script])
        .arg(zip)
        .arg(into)
        .output()
        .expect("python3");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(|line| {
            let (name, mode) = line.rsplit_once(' ').expect("name mode");
            (
                name.to_owned(),
                u32::from_str_radix(mode, 8).expect("octal mode"),
            )
        })
        .collect()
}

#[tokio::test]
#[ignore = "needs dist/app.zip: run scripts/test (it runs scripts/package)"]
async fn the_package_holds_exactly_what_the_host_needs_and_runs_under_the_host() {
    let dir = tempfile::tempdir().unwrap();
    let entries = unpack(&package(), dir.path());
    let names: BTreeSet<&str> = entries.iter().map(|(name, _)| name.as_str()).collect();
    let (declared, _) =
        handler::registry::load_declared(Path::new(env!("CARGO_MANIFEST_DIR"))).unwrap();
    let mut expected: BTreeSet<String> = declared
        .iter()
        .map(|f| format!("{}/function.json", f.name))
        .collect();
    expected.insert("host.json".into());
    expected.insert("handler".into());
    assert_eq!(
        names,
        expected.iter().map(String::as_str).collect::<BTreeSet<_>>()
    );
    let handler_mode = entries
        .iter()
        .find(|(name, _)| name == "handler")
        .unwrap()
        .1;
    assert_eq!(
        handler_mode & 0o111,
        0o111,
        "the handler must be executable: {handler_mode:o}"
    );

    let stack = Stack::start(false);
    let keys = tempfile::tempdir().unwrap();
    let keys_file = keys.path().join("keys.json");
    let mut env = stack.handler_env();
    env.push(("TOKEN_REFRESH_SCHEDULE".into(), "0 */5 * * * *".into()));
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let app_root = dir.path().to_str().unwrap();
    let host = spawn_emulator_with_env(
        &[
            "host",
            "--app-root",
            app_root,
            "--port",
            "0",
            "--keys-file",
            keys_file.to_str().unwrap(),
        ],
        &env,
    );
    let key = host.ready_str("function_key");
    let response = reqwest::Client::new()
        .get(format!("{}/api/token", host.base_url))
        .header("x-functions-key", key)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let body: serde_json::Value = serde_json::from_slice(&response.bytes().await.unwrap()).unwrap();
    assert_eq!(body["claims"]["aud"], "https://vault.azure.net");
}
