//! Faithfulness check: the official Python `azure-identity` (pinned in
//! scripts/reference-clients/requirements.txt) gets tokens from the identity emulator over every
//! protocol, system- and user-assigned, and the emulator saw the requests each protocol defines
//! (docs/emulators.md, 'The identity emulator').
//!
//! Needs `<workspace root>/.venv` with those packages: `scripts/test` creates it, or
//! `python3 -m venv .venv && .venv/bin/pip install -r scripts/reference-clients/requirements.txt`.

use std::process::Command;

use crate::support::identity::*;
use crate::support::reference::{reference_python, reference_script};
use serde_json::Value;

/// Runs the Python driver against `emu` (all cases, or only `PROTOCOL:IDENTITY` ones).
fn run_driver(emu: &Emu, only: &[&str]) -> Vec<Value> {
    let script = reference_script("azure_identity_check.py");
    let mut command = Command::new(reference_python());
    command.arg(script).args([
        emu.process.base_url.as_str(),
        emu.secret.as_str(),
        USER_CLIENT,
    ]);
    for case in only {
        command.args(["--only", case]);
    }
    let output = command.output().expect("run the Python driver");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "driver failed: {}\n{stdout}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        !stdout.contains(&emu.secret),
        "the driver must not print the secret"
    );
    let document: Value =
        serde_json::from_str(stdout.trim()).expect("driver prints one JSON document");
    document["results"]
        .as_array()
        .expect("results array")
        .clone()
}

#[tokio::test]
#[ignore = "needs the reference clients: run scripts/test"]
async fn azure_identity_gets_tokens_over_every_protocol() {
    let emu = Emu::start(&[]);
    let results = run_driver(&emu, &[]);
    assert_eq!(results.len(), 6, "{results:?}");
    for result in &results {
        let case = format!("{} / {}", result["protocol"], result["identity"]);
        assert_eq!(result["ok"], true, "{case}: {}", result["error"]);
        let claims = &result["claims"];
        assert_eq!(
            claims["aud"], VAULT,
            "{case}: scope /.default stripped, resource as requested"
        );
        let (oid, appid) = match result["identity"].as_str() {
            Some("system") => (SYSTEM_OBJECT, SYSTEM_CLIENT),
            _ => (USER_OBJECT, USER_CLIENT),
        };
        assert_eq!(claims["oid"], oid, "{case}");
        assert_eq!(claims["appid"], appid, "{case}");
        assert_eq!(claims["tid"], TENANT, "{case}");
    }
    check_wire(&emu.requests().await);
}

/// Each protocol's requests used its api-version, selector spelling and guard header.
fn check_wire(log: &Value) {
    let requests = log["requests"].as_array().expect("request log");
    let expectations = [
        (
            "appservice2019",
            "2019-08-01",
            "client_id",
            "x-identity-header",
        ),
        ("legacy2017", "2017-09-01", "clientid", "secret"),
        ("imds", "2018-02-01", "client_id", "metadata"),
    ];
    for (protocol, version, selector, header) in expectations {
        let seen: Vec<&Value> = requests
            .iter()
            .filter(|r| r["protocol"] == protocol)
            .collect();
        assert_eq!(
            seen.len(),
            2,
            "{protocol}: one system and one user request, no retries: {seen:?}"
        );
        for request in &seen {
            assert_eq!(request["status"], 200, "{protocol}");
            assert_eq!(request["query"]["api-version"], version, "{protocol}");
            assert_eq!(request["query"]["resource"], VAULT, "{protocol}");
            let names = request["header_names"].as_array().expect("header names");
            assert!(
                names.iter().any(|n| n == header),
                "{protocol} sent {names:?}"
            );
        }
        assert!(
            seen.iter().any(|r| r["query"][selector] == USER_CLIENT),
            "{protocol}: {selector}"
        );
    }
}

/// The emulator's fault rules drive the real client's retry policy: 500, 500 then a token
/// (three requests, the token returned on the third), and a 400 is not retried
/// (docs/emulators.md, 'Fault rules').
#[tokio::test]
#[ignore = "needs the reference clients: run scripts/test"]
async fn azure_identity_retries_injected_500s_and_not_400s() {
    let emu = Emu::start(&[]);
    emu.fault(serde_json::json!({"protocol": "appservice2019", "status": 500, "times": 2}))
        .await;
    let results = run_driver(&emu, &["appservice2019:system"]);
    assert_eq!(results.len(), 1);
    assert_eq!(results[0]["ok"], true, "{}", results[0]["error"]);
    assert_eq!(results[0]["claims"]["oid"], SYSTEM_OBJECT);
    assert_eq!(statuses(&emu.requests().await), [500, 500, 200]);

    emu.admin(reqwest::Method::DELETE, "/_emulator/requests", None)
        .await;
    emu.fault(serde_json::json!({"protocol": "legacy2017", "status": 400}))
        .await;
    let results = run_driver(&emu, &["legacy2017:user"]);
    assert_eq!(results[0]["ok"], false, "a 400 must surface as an error");
    assert_eq!(statuses(&emu.requests().await), [400], "no retry on 400");
}

fn statuses(log: &Value) -> Vec<u64> {
    log["requests"]
        .as_array()
        .expect("request log")
        .iter()
        .map(|r| r["status"].as_u64().expect("status"))
        .collect()
}
