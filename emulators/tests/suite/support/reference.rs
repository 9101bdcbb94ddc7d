//! Where the official Python clients the reference tests drive live: the workspace's `.venv`
//! and the check scripts in `emulators/tests/reference/`.

use std::path::PathBuf;

/// `<workspace root>/.venv/bin/python`; panics with how to create it when it is missing.
pub fn reference_python() -> PathBuf {
    let workspace_root = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the emulators crate lives in the workspace")
        .to_path_buf();
    let python = workspace_root.join(".venv/bin/python");
    assert!(
        python.exists(),
        "reference clients missing: {} does not exist. Run scripts/test, or create it with \
         `python3 -m venv .venv && .venv/bin/pip install -r scripts/reference-clients/requirements.txt` \
         in the workspace root",
        python.display()
    );
    python
}

/// A check script of `emulators/tests/reference/`.
pub fn reference_script(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/reference")
        .join(name)
}
