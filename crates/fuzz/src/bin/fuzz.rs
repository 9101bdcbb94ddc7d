//! `fuzz`: runs every target (or `--only NAME`) for `--iterations N` generated inputs each and
//! prints one JSON line per target; failing inputs go to `regressions/<target>/`. Exits 1 when
//! any input panicked.
//!
//! ```text
//! fuzz [--iterations 1000000] [--seed 1] [--only NAME]... [--report FILE]
//! ```

use std::process::ExitCode;

use fuzz::{fuzz, keep_regression, targets};
use serde_json::json;

fn main() -> ExitCode {
    let mut iterations: u64 = 1_000_000;
    let mut seed: u64 = 1;
    let mut only: Vec<String> = Vec::new();
    let mut report: Option<String> = None;
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let mut value = || args.next().unwrap_or_default();
        match flag.as_str() {
            "--iterations" => iterations = value().parse().unwrap_or(iterations),
            "--seed" => seed = value().parse().unwrap_or(seed),
            "--only" => only.push(value()),
            "--report" => report = Some(value()),
            other => {
                eprintln!("fuzz: unknown argument {other}");
                return ExitCode::from(2);
            }
        }
    }
    let all = targets::all();
    if let Some(unknown) = only
        .iter()
        .find(|name| !all.iter().any(|t| t.name == *name))
    {
        eprintln!("fuzz: no target {unknown}");
        return ExitCode::from(2);
    }
    let mut rows = Vec::new();
    let mut failed = false;
    for target in all
        .iter()
        .filter(|t| only.is_empty() || only.iter().any(|n| n == t.name))
    {
        let outcome = fuzz(target, iterations, seed);
        let mut kept = Vec::new();
        for failure in &outcome.failures {
            failed = true;
            match keep_regression(target.name, &failure.input) {
                Ok(path) => kept.push(path.display().to_string()),
                Err(e) => eprintln!("fuzz: cannot keep a failing input: {e}"),
            }
            eprintln!("fuzz: {} panicked: {}", target.name, failure.message);
        }
        let row = json!({
            "target": target.name,
            "covers": target.covers,
            "inputs": outcome.inputs,
            "panics": outcome.failures.len(),
            "messages": outcome.failures.iter().map(|f| f.message.clone()).collect::<Vec<_>>(),
            "kept": kept,
            "seconds": (outcome.elapsed.as_secs_f64() * 100.0).round() / 100.0,
        });
        println!("{row}");
        rows.push(row);
    }
    if let Some(path) = report {
        let body = json!({"iterations": iterations, "seed": seed, "targets": rows});
        if let Err(e) = std::fs::write(&path, format!("{body:#}\n")) {
            eprintln!("fuzz: cannot write {path}: {e}");
            return ExitCode::FAILURE;
        }
    }
    if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}
