//! What gets deployed: the files `func azure functionapp publish` would ship from this folder
//! (Core Tools' own selection rules, reproduced below, applied to `.funcignore`), and the deploy
//! package (`scripts/package` → dist/app.zip and `handler` at the root), unpacked and run under
//! the host emulator.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use regex::Regex;

use test_kit::emulator::spawn_emulator_with_env;
use test_kit::handler::repo_root;
use test_kit::stack::Stack;

fn package() -> PathBuf {
    let zip = repo_root().join("dist/app.zip");
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
    let expected = what_the_host_needs();
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

    // The binary links against glibc 2.28's symbol versions at most, and it is the one
    // scripts/package left at the root for `func start` and `func azure functionapp publish`.
    let unpacked = dir.path().join("handler");
    let floor = glibc_floor(&unpacked, "2.28");
    assert!(
        floor.status.success(),
        "{}",
        String::from_utf8_lossy(&floor.stderr)
    );
    assert_eq!(
        std::fs::read(&unpacked).unwrap(),
        std::fs::read(repo_root().join("handler")).expect("scripts/package leaves ./handler"),
        "./handler is not the packaged binary"
    );

    // Both publishing paths ship the same files: the zip, and what Core Tools would select here.
    let published: BTreeSet<String> = core_tools_selection(repo_root())
        .into_iter()
        .map(|(f, _)| f)
        .collect();
    assert_eq!(
        published,
        names.iter().map(|n| n.to_string()).collect::<BTreeSet<_>>()
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

// ---------------------------------------------------------------------------------------------
// Core Tools' file selection, reproduced from its source (Azure/azure-functions-core-tools:
// src/Cli/func/Common/FileSystemHelpers.cs `GetLocalFiles`, src/Cli/func/Common/GitIgnoreParser.cs,
// src/Cli/func/Helpers/ZipHelper.cs `GetAppZipFile` / `CreateZip`):
//  - the zip root is the folder holding host.json; every file under it is a candidate, except
//    directories named `.git` or `.vscode` (at any depth) and files named `.funcignore`,
//    `.gitignore`, `local.settings.json` or `project.lock.json` (at any depth), names compared
//    without case;
//  - `.funcignore` (when present) filters the rest by the file's path relative to the root, with
//    `/` separators. Lines are trimmed; empty lines and lines starting with `#` are skipped; a
//    leading `!` makes a line a negation, then a leading `/` is dropped. Each line becomes a regular
//    expression: the characters `-[]/{}()+?.\^$|` are escaped, `**` becomes `(.+)`, then `*`
//    becomes `([^/]+)`. All lines of a kind are joined into `^((a)|(b)|…)\b` (ECMAScript, so `\b`
//    is an ASCII word boundary). A file is shipped when a negation matches it or no other line
//    does: a prefix match ending at a word boundary, with negations winning whatever the order;
//  - the entry named exactly host.json's `customHandler.description.defaultExecutablePath` is
//    stored with mode 0777, every other one with 0666.
// ---------------------------------------------------------------------------------------------

/// Core Tools' `.funcignore` matcher.
struct FuncIgnore {
    deny: Option<Regex>,
    allow: Option<Regex>,
}

impl FuncIgnore {
    fn parse(text: &str) -> Self {
        let (mut deny, mut allow) = (Vec::new(), Vec::new());
        for line in text.split('\n').map(str::trim) {
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let (negated, line) = match line.strip_prefix('!') {
                Some(rest) => (true, rest),
                None => (false, line),
            };
            let line = line.strip_prefix('/').unwrap_or(line);
            let pattern = Self::pattern(line);
            if negated {
                allow.push(pattern)
            } else {
                deny.push(pattern)
            }
        }
        // Core Tools sorts each list first; the order of alternatives cannot change whether
        // an alternation matches, so it is not reproduced.
        let join = |patterns: Vec<String>| {
            (!patterns.is_empty()).then(|| {
                Regex::new(&format!("^(({}))(?-u:\\b)", patterns.join(")|(")))
                    .expect("a .funcignore line Core Tools would accept")
            })
        };
        Self {
            deny: join(deny),
            allow: join(allow),
        }
    }

    fn pattern(line: &str) -> String {
        let mut escaped = String::new();
        for c in line.chars() {
            if "-[]/{}()+?.\\^$|".contains(c) {
                escaped.push('\\');
            }
            escaped.push(c);
        }
        escaped.replace("**", "(.+)").replace('*', "([^/]+)")
    }

    fn accepts(&self, path: &str) -> bool {
        self.allow.as_ref().is_some_and(|r| r.is_match(path))
            || !self.deny.as_ref().is_some_and(|r| r.is_match(path))
    }
}

/// The files `func azure functionapp publish` zips from `root`, by relative path, with the
/// executable bit Core Tools gives each entry.
fn core_tools_selection(root: &Path) -> Vec<(String, bool)> {
    const SKIPPED_DIRS: &[&str] = &[".git", ".vscode"];
    const SKIPPED_FILES: &[&str] = &[
        ".funcignore",
        ".gitignore",
        "local.settings.json",
        "project.lock.json",
    ];
    fn walk(dir: &Path, root: &Path, out: &mut Vec<String>) {
        let mut entries: Vec<_> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        entries.sort();
        for path in entries {
            let name = path.file_name().unwrap().to_string_lossy().to_string();
            let skipped = |list: &[&str]| list.iter().any(|s| s.eq_ignore_ascii_case(&name));
            // .NET's Directory.GetFiles / GetDirectories follow symbolic links, as metadata() does.
            let Ok(meta) = std::fs::metadata(&path) else {
                continue;
            };
            if meta.is_dir() {
                if !skipped(SKIPPED_DIRS) {
                    walk(&path, root, out);
                }
            } else if !skipped(SKIPPED_FILES) {
                let rel = path.strip_prefix(root).unwrap().to_string_lossy();
                out.push(rel.replace('\\', "/"));
            }
        }
    }
    let ignore = std::fs::read_to_string(root.join(".funcignore"))
        .ok()
        .map(|text| FuncIgnore::parse(&text));
    let host: serde_json::Value =
        serde_json::from_slice(&std::fs::read(root.join("host.json")).unwrap()).unwrap();
    let executable = host["customHandler"]["description"]["defaultExecutablePath"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let mut files = Vec::new();
    walk(root, root, &mut files);
    files
        .into_iter()
        .filter(|f| ignore.as_ref().is_none_or(|i| i.accepts(f)))
        .map(|f| {
            let exe = f == executable;
            (f, exe)
        })
        .collect()
}

/// host.json, each declared function's function.json and `handler`: what the host needs.
fn what_the_host_needs() -> BTreeSet<String> {
    let (declared, broken) = custom_handler::registry::load_declared(repo_root()).unwrap();
    assert!(broken.is_empty(), "{broken:?}");
    let mut expected: BTreeSet<String> = declared
        .iter()
        .map(|f| format!("{}/function.json", f.name))
        .collect();
    expected.insert("host.json".into());
    expected.insert("handler".into());
    expected
}

fn write(root: &Path, rel: &str, contents: &[u8]) {
    let path = root.join(rel);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, contents).unwrap();
}

#[test]
fn funcignore_matcher_follows_core_tools_rules() {
    let rules = FuncIgnore::parse(
        "# comment\n  node_modules  \n*.log\n/build\nout/**/tmp\n!/out/**/tmp/keep\nlib/*.o\n!build/keep\r\n",
    );
    // A line is a prefix ending at a word boundary, anchored at the root.
    assert!(!rules.accepts("node_modules"));
    assert!(!rules.accepts("node_modules/a/b.js"));
    assert!(
        !rules.accepts("node_modules.txt"),
        "a `.` is a word boundary"
    );
    assert!(
        rules.accepts("node_modulesX/a.js"),
        "no boundary inside a name"
    );
    assert!(
        rules.accepts("src/node_modules/a.js"),
        "lines match from the root only"
    );
    assert!(!rules.accepts("build/x"), "a leading / is dropped");
    // `*` stays within one name; `**` spans names.
    assert!(!rules.accepts("app.log"));
    assert!(rules.accepts("logs/app.log"));
    assert!(!rules.accepts("lib/a.o"));
    assert!(rules.accepts("lib/sub/a.o"));
    assert!(!rules.accepts("out/a/b/tmp/x"));
    // Negations win, at any depth, whatever their order.
    assert!(rules.accepts("build/keep"));
    assert!(
        rules.accepts("build/keep.me"),
        "the negation is a prefix too"
    );
    assert!(rules.accepts("out/a/b/tmp/keep"));
    // Comments are only whole lines.
    assert!(rules.accepts("comment"));
    // No line at all: everything passes.
    assert!(FuncIgnore::parse("# nothing\n").accepts("anything"));
}

#[test]
fn the_repository_funcignore_passes_only_what_the_host_needs() {
    let rules =
        FuncIgnore::parse(&std::fs::read_to_string(repo_root().join(".funcignore")).unwrap());
    for needed in what_the_host_needs() {
        assert!(rules.accepts(&needed), "{needed} must be shipped");
    }
    for denied in [
        ".local/pki/ca-key.pem",
        "target/release/handler",
        "node_modules/azurite/package.json",
        ".venv/bin/python",
        "dist/app.zip",
        "GetSecret/notes.md",
        "handlers/x",
        "handler_old",
        "host.jsonc5",
        "-/x",
        ".git",
    ] {
        assert!(!rules.accepts(denied), "{denied} must not be shipped");
    }
    // The parser's limits, documented in docs/deploy.md: a negation is a prefix, and a path with
    // no ASCII letter, digit or `_` has no word boundary, so no line can deny it.
    assert!(rules.accepts("handler.bak"));
    assert!(rules.accepts("host.json.orig"));
    assert!(rules.accepts("é/…"));
}

#[test]
fn publish_ships_exactly_the_app_from_a_full_working_tree() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    for rel in what_the_host_needs() {
        if rel == "handler" {
            write(root, &rel, b"\x7fELF");
        } else {
            write(root, &rel, &std::fs::read(repo_root().join(&rel)).unwrap());
        }
    }
    write(
        root,
        ".funcignore",
        &std::fs::read(repo_root().join(".funcignore")).unwrap(),
    );
    // Everything else a developer's or CI's working tree holds.
    for rel in [
        ".git",
        ".gitignore",
        ".ci/run",
        ".vscode/settings.json",
        ".local/pki/ca-key.pem",
        ".local/pki/server-key.pem",
        ".local/host-keys.json",
        ".local/logs/host.log",
        ".local/tools/venv/bin/cargo-zigbuild",
        ".venv/lib/python3.11/site-packages/azure/identity/__init__.py",
        "node_modules/azurite/package.json",
        "node_modules/.bin/azurite",
        "target/release/handler",
        "target/x86_64-unknown-linux-gnu/release/handler",
        "target/debug/deps/handler-0123.d",
        "dist/app.zip",
        "benches/Cargo.toml",
        "benches/peers/node/node_modules/@azure/identity/package.json",
        "emulators/src/lib.rs",
        "src/main.rs",
        "tests/package.rs",
        "scripts/package",
        "infra/azuredeploy.json",
        "docs/deploy.md",
        "README.md",
        "BENCHMARKS.md",
        "Cargo.toml",
        "Cargo.lock",
        "package.json",
        "package-lock.json",
        "local.settings.json",
        "GetSecret/README.md",
        "WriteBlob/.env",
        "handlers/notes.txt",
        "handler_old",
        "__pycache__/x.pyc",
    ] {
        write(root, rel, b"x");
    }
    let shipped = core_tools_selection(root);
    let names: BTreeSet<String> = shipped.iter().map(|(f, _)| f.clone()).collect();
    assert_eq!(names, what_the_host_needs());
    for forbidden in [".local/", "target/", "node_modules/", ".venv/", "dist/"] {
        assert!(!names.iter().any(|n| n.starts_with(forbidden)));
    }
    let executables: Vec<&str> = shipped
        .iter()
        .filter(|(_, exe)| *exe)
        .map(|(f, _)| f.as_str())
        .collect();
    assert_eq!(
        executables,
        ["handler"],
        "Core Tools marks host.json's defaultExecutablePath"
    );

    // Without the .funcignore, Core Tools would ship the keys, the builds and the installs.
    std::fs::remove_file(root.join(".funcignore")).unwrap();
    let unfiltered: BTreeSet<String> = core_tools_selection(root)
        .into_iter()
        .map(|(f, _)| f)
        .collect();
    assert!(unfiltered.contains(".local/pki/ca-key.pem"));
    assert!(unfiltered.contains("target/release/handler"));
    assert!(!unfiltered.contains("local.settings.json"));
    assert!(!unfiltered.contains(".vscode/settings.json"));
}

#[test]
fn publish_from_this_working_tree_ships_only_the_app() {
    // The real folder, with whatever target/, .local/, node_modules/ or .venv/ it holds now.
    let shipped: BTreeSet<String> = core_tools_selection(repo_root())
        .into_iter()
        .map(|(f, _)| f)
        .collect();
    let mut expected = what_the_host_needs();
    if !repo_root().join("handler").exists() {
        expected.remove("handler"); // not packaged yet: scripts/package puts it there
    }
    assert_eq!(
        shipped, expected,
        "run `func azure functionapp publish --list-included-files` to compare"
    );
}

/// Runs scripts/glibc-floor on `binary` with `floor`.
fn glibc_floor(binary: &Path, floor: &str) -> std::process::Output {
    Command::new(repo_root().join("scripts/glibc-floor"))
        .arg(binary)
        .arg(floor)
        .output()
        .expect("run scripts/glibc-floor")
}

#[test]
fn the_glibc_floor_check_reads_the_binarys_needs_and_fails_above_the_floor() {
    // The test build of handler links against this machine's glibc, so it needs some GLIBC_2.x.
    let binary = test_kit::handler::handler_binary();
    let above = glibc_floor(&binary, "2.0");
    assert_eq!(
        above.status.code(),
        Some(1),
        "a floor below every glibc must fail"
    );
    let message = String::from_utf8_lossy(&above.stderr);
    assert!(message.contains("needs GLIBC_2."), "{message}");
    let below = glibc_floor(&binary, "99.0");
    assert!(below.status.success());
    let report = String::from_utf8_lossy(&below.stdout);
    let highest = report
        .split_whitespace()
        .find(|w| w.starts_with("GLIBC_"))
        .expect("the highest version is named");
    // It agrees with the version the failing run named.
    assert!(
        message.contains(&format!("needs {highest},")),
        "{message} vs {report}"
    );
    let not_elf = glibc_floor(&repo_root().join("host.json"), "2.28");
    assert_eq!(not_elf.status.code(), Some(2));
}
