//! Faithfulness check: the official Python client (`azure-keyvault-secrets`) against the
//! emulator, through `tests/reference/keyvault_check.py`. Needs `<workspace>/.venv` with the
//! pinned reference clients (`scripts/test` creates it).

use std::time::Duration;

use crate::support::keyvault::*;
use crate::support::reference::{reference_python, reference_script};
use serde_json::{Value, json};

const REFERENCE_OID: &str = "cccccccc-0000-0000-0000-000000000001";

fn reference_config() -> Value {
    let mut config = standard_config();
    config["access"][REFERENCE_OID] = json!({"get": ["app-*"], "set": ["app-*"]});
    config
}

#[tokio::test]
#[ignore = "needs the reference clients: run scripts/test"]
async fn official_python_client_sets_gets_and_sees_404_and_403() {
    let python = reference_python();
    let f = Fixture::start(&reference_config()).await;
    let token = f.token(REFERENCE_OID);
    let script = reference_script("keyvault_check.py");
    let run = tokio::process::Command::new(python)
        .arg(script)
        .args(["--vault-url", &f.vault.base_url, "--token", &token])
        .arg("--ca")
        .arg(&f.pki.ca_path)
        .args(["--secret-name", "app-reference-check"])
        .args(["--forbidden-secret", "locked-secret"])
        .args(["--missing-secret", "app-never-created"])
        .env_remove("REQUESTS_CA_BUNDLE")
        .kill_on_drop(true)
        .output();
    let output = tokio::time::timeout(Duration::from_secs(180), run)
        .await
        .expect("the reference client finished")
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "keyvault_check.py failed: {stderr}"
    );
    let results: Value = serde_json::from_slice(&output.stdout)
        .unwrap_or_else(|e| panic!("no JSON from keyvault_check.py ({e}): {stderr}"));

    eprintln!("reference results: {results}");
    for case in ["set", "get", "get_version", "not_found", "forbidden"] {
        assert_eq!(results[case]["ok"], true, "{case}: {}", results[case]);
    }
    assert_eq!(results["set"]["version_len"], 32);
    assert_eq!(results["set"]["content_type"], "text/plain");
    assert_eq!(results["set"]["enabled"], true);
    assert_eq!(results["set"]["vault_url"], f.vault.base_url.as_str());
    assert_eq!(results["get"]["new_version"], true);
    assert_eq!(results["not_found"]["exception"], "ResourceNotFoundError");
    assert_eq!(results["not_found"]["status"], 404);
    assert_eq!(results["not_found"]["code"], "SecretNotFound");
    assert_eq!(results["forbidden"]["exception"], "HttpResponseError");
    assert_eq!(results["forbidden"]["status"], 403);
    assert_eq!(results["forbidden"]["code"], "Forbidden");
    assert_eq!(
        results["credential"]["scopes"],
        json!(["https://vault.azure.net/.default"])
    );
    assert_eq!(results["credential"]["tenant_ids"], json!([TENANT]));

    let log = f
        .client
        .get(f.vault.url("/_emulator/requests"))
        .send()
        .await
        .unwrap();
    let (_, _, log) = parts(log).await;
    assert!(
        log["unauthenticated"].as_u64().unwrap() >= 1,
        "the client probes without a token first: {log}"
    );
    let requests = log["requests"].as_array().unwrap();
    assert!(
        requests.iter().all(|r| r["api_version"].is_string()),
        "{log}"
    );
    assert!(
        requests
            .iter()
            .any(|r| r["method"] == "PUT" && r["status"] == 200),
        "{log}"
    );
}
