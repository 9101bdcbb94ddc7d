//! The shipped binary, started as the Functions host starts it.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use test_kit::handler::{AppRoot, JsonBody, RunningHandler, handler_binary, http_payload};

fn run_without_serving(env: &[(&str, &str)]) -> (Option<i32>, String) {
    let mut command = Command::new(handler_binary());
    command
        .env_clear()
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    for (name, value) in env {
        command.env(name, value);
    }
    let output = command.output().expect("run handler");
    (
        output.status.code(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[test]
fn a_missing_port_is_a_clear_message_and_a_non_zero_exit() {
    let (code, stderr) = run_without_serving(&[]);
    assert_ne!(code, Some(0));
    assert!(
        stderr.contains("FUNCTIONS_CUSTOMHANDLER_PORT is not set"),
        "{stderr}"
    );
}

#[test]
fn an_invalid_port_is_a_clear_message_and_a_non_zero_exit() {
    let (code, stderr) = run_without_serving(&[("FUNCTIONS_CUSTOMHANDLER_PORT", "http")]);
    assert_ne!(code, Some(0));
    assert!(
        stderr.contains("FUNCTIONS_CUSTOMHANDLER_PORT='http' is not valid"),
        "{stderr}"
    );
}

#[tokio::test]
async fn the_binary_serves_the_host_and_stops_cleanly_on_sigterm() {
    let root = AppRoot::new(json!({"version": "2.0"}), &[]);
    let mut handler = RunningHandler::start(root.path(), &[]).await;
    let client = reqwest::Client::new();
    assert_eq!(
        client
            .get(format!("{}/", handler.base))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );

    let missing = client
        .post(format!("{}/Missing", handler.base))
        .body(http_payload("GET", "u", json!({}), None).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), 404, "a failed invocation for the host");
    let body: Value = missing.json_body().await;
    assert!(
        body["error"]["message"]
            .to_string()
            .contains("no function named 'Missing'")
    );

    handler.terminate();
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(status) = handler.child.try_wait().unwrap() {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "handler did not stop within 10 s of SIGTERM"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert!(status.success(), "{status}");
    std::thread::sleep(Duration::from_millis(100));
    let stdout = handler.stdout();
    assert!(stdout.contains("listening on 127.0.0.1:"), "{stdout}");
    assert!(stdout.contains("shutting down"), "{stdout}");
    assert!(
        stdout.contains("handler: stopped"),
        "the last line is written out before the process exits: {stdout}"
    );
    let stderr = handler.stderr();
    assert!(
        !stderr.contains("INFO"),
        "info lines must not go to stderr: {stderr}"
    );
    assert!(
        stderr.contains("ERROR") && stderr.contains("no function named 'Missing'"),
        "the failure's reason is an error on stderr: {stderr}"
    );
    assert!(
        !stdout.contains("no function named"),
        "and only there: {stdout}"
    );
}

#[tokio::test]
async fn the_binary_listens_on_loopback_only() {
    let root = AppRoot::new(json!({"version": "2.0"}), &[]);
    let handler = RunningHandler::start(root.path(), &[]).await;
    let port = handler.base.rsplit(':').next().unwrap();
    let listening = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "cat /proc/net/tcp | awk '{{print $2, $4}}' | grep ':{:04X} 0A'",
            port.parse::<u16>().unwrap()
        ))
        .output()
        .unwrap();
    let lines = String::from_utf8_lossy(&listening.stdout).into_owned();
    assert!(!lines.is_empty(), "no listener found for port {port}");
    assert!(
        lines.lines().all(|line| line.starts_with("0100007F:")),
        "must bind 127.0.0.1 only: {lines}"
    );
}

#[test]
fn the_repositorys_function_folders_match_the_functions_the_binary_implements() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let (declared, broken) = custom_handler::registry::load_declared(root).unwrap();
    assert!(broken.is_empty(), "{broken:?}");
    assert_eq!(
        custom_handler::registry::compare(&declared, &handler::functions::all()),
        []
    );
    let output = Command::new(handler_binary())
        .arg("check")
        .arg(root)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stdout)
    );
    assert!(
        String::from_utf8_lossy(&output.stdout)
            .contains(&format!("ok: {} function folder(s)", declared.len()))
    );
}

#[test]
fn handler_check_names_a_drifted_folder_and_fails() {
    let root = AppRoot::new(
        json!({}),
        &[(
            "TokenInfo",
            test_kit::handler::http_function("tokens", &["get"]),
        )],
    );
    let output = Command::new(handler_binary())
        .arg("check")
        .arg(root.path())
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        stdout.contains(
            "TokenInfo: function.json declares route 'tokens', the code implements 'token'"
        ),
        "{stdout}"
    );
    assert!(
        stdout.contains("the handler implements GetSecret but there is no GetSecret/function.json"),
        "{stdout}"
    );
}
