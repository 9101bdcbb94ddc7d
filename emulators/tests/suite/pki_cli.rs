//! `emulators pki --out DIR` as a process: writes the files once, then keeps them.

use std::process::Command;

fn run_pki(dir: &std::path::Path) -> serde_json::Value {
    let output = Command::new(env!("CARGO_BIN_EXE_emulators"))
        .args(["pki", "--out", dir.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).unwrap()
}

#[test]
fn writes_ca_leaf_and_key_then_keeps_them() {
    let dir = tempfile::tempdir().unwrap();
    let first = run_pki(dir.path());
    assert_eq!(first["generated"], true);
    let leaf = std::fs::read_to_string(dir.path().join("leaf.pem")).unwrap();
    let key = std::fs::read_to_string(dir.path().join("leaf.key")).unwrap();
    let ca = std::fs::read_to_string(dir.path().join("ca.pem")).unwrap();
    assert!(leaf.starts_with("-----BEGIN CERTIFICATE-----"));
    assert!(ca.starts_with("-----BEGIN CERTIFICATE-----"));
    assert!(key.starts_with("-----BEGIN PRIVATE KEY-----"), "PKCS#8 PEM");
    assert_ne!(leaf, ca, "the leaf is not the CA");
    use std::os::unix::fs::PermissionsExt as _;
    let mode = std::fs::metadata(dir.path().join("leaf.key"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o077, 0, "key readable by owner only");

    let second = run_pki(dir.path());
    assert_eq!(second["generated"], false);
    assert_eq!(
        leaf,
        std::fs::read_to_string(dir.path().join("leaf.pem")).unwrap()
    );
}

#[test]
fn missing_out_flag_is_a_usage_error() {
    let output = Command::new(env!("CARGO_BIN_EXE_emulators"))
        .args(["pki"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
}
