//! Replays every input kept under `regressions/<target>/` (each once made a parser panic) and
//! every target's seeds, plus a short generated pass per target: none may panic.

use fuzz::{fuzz, regressions_dir, run_one, targets};

#[test]
fn every_kept_input_replays_without_a_panic() {
    let all = targets::all();
    let mut failures = Vec::new();
    let mut replayed = 0;
    let Ok(folders) = std::fs::read_dir(regressions_dir()) else {
        return;
    };
    for folder in folders.filter_map(Result::ok) {
        let name = folder.file_name().to_string_lossy().into_owned();
        if !folder.path().is_dir() {
            continue;
        }
        let target = all
            .iter()
            .find(|t| t.name == name)
            .unwrap_or_else(|| panic!("regressions/{name} names no target"));
        for file in std::fs::read_dir(folder.path())
            .unwrap()
            .filter_map(Result::ok)
        {
            let input = std::fs::read(file.path()).unwrap();
            replayed += 1;
            if let Err(message) = run_one(target, &input) {
                failures.push(format!("{}: {message}", file.path().display()));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{replayed} replayed; panics:\n{}",
        failures.join("\n")
    );
}

#[test]
fn a_short_generated_pass_of_every_target_does_not_panic() {
    for target in targets::all() {
        let outcome = fuzz(&target, 300, 42);
        assert!(
            outcome.failures.is_empty(),
            "{}: {:?}",
            target.name,
            outcome
                .failures
                .iter()
                .map(|f| &f.message)
                .collect::<Vec<_>>()
        );
    }
}
