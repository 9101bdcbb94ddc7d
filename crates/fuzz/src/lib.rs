//! `fuzz`: generated-input testing of every parser that reads something from outside the
//! process (see [`targets`]), run by `scripts/fuzz`; and the soak driver (`src/bin/soak.rs`), run
//! by `scripts/soak`. Never linked into `handler`.
//!
//! Each input runs under `catch_unwind`; a panic is a defect. The input that caused it is written
//! to `regressions/<target>/`, and `cargo test -p fuzz` replays every file there, so a fixed
//! defect stays fixed.

#![deny(missing_docs)]

pub mod mutate;
pub mod targets;

use std::cell::RefCell;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use std::sync::Once;
use std::time::{Duration, Instant};

use mutate::{Rng, generate};
use targets::Target;

/// One input that panicked.
#[derive(Debug, Clone)]
pub struct Failure {
    /// The input.
    pub input: Vec<u8>,
    /// The panic's message and location.
    pub message: String,
}

/// The result of fuzzing one target.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// Inputs run (seeds included).
    pub inputs: u64,
    /// Distinct panics (by message), first input of each.
    pub failures: Vec<Failure>,
    /// Wall time.
    pub elapsed: Duration,
}

thread_local! {
    static LAST_PANIC: RefCell<Option<String>> = const { RefCell::new(None) };
    static CAPTURING: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Wraps the panic hook so that, inside [`run_one`] only, a panic's message (with its location)
/// is recorded instead of printed: a million inputs must not print a million traces. Panics
/// elsewhere (a failing test's assert) still go to the previous hook.
pub fn quiet_panics() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if !CAPTURING.with(std::cell::Cell::get) {
                previous(info);
                return;
            }
            let payload = info
                .payload()
                .downcast_ref::<&str>()
                .map(|s| (*s).to_owned())
                .or_else(|| info.payload().downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "non-text panic".to_owned());
            let location = info
                .location()
                .map(|l| format!(" at {}:{}", l.file(), l.line()))
                .unwrap_or_default();
            LAST_PANIC.with(|last| *last.borrow_mut() = Some(format!("{payload}{location}")));
        }));
    });
}

/// Runs one input; `Err` carries the panic's message.
pub fn run_one(target: &Target, input: &[u8]) -> Result<(), String> {
    quiet_panics();
    CAPTURING.with(|c| c.set(true));
    let outcome = catch_unwind(AssertUnwindSafe(|| (target.run)(input)));
    CAPTURING.with(|c| c.set(false));
    outcome.map_err(|_| {
        LAST_PANIC
            .with(|last| last.borrow_mut().take())
            .unwrap_or_else(|| "panic".to_owned())
    })
}

/// Runs every seed, then `iterations` generated inputs, from PRNG seed `seed`.
pub fn fuzz(target: &Target, iterations: u64, seed: u64) -> Outcome {
    let started = Instant::now();
    let seeds = (target.seeds)();
    let mut rng = Rng::new(seed ^ fnv1a(target.name.as_bytes()));
    let mut failures: Vec<Failure> = Vec::new();
    let mut record = |input: &[u8], message: String| {
        // One input per distinct panic site; a defect that fires a million times is one defect.
        if failures.len() < 50 && !failures.iter().any(|f| f.message == message) {
            failures.push(Failure {
                input: input.to_vec(),
                message,
            });
        }
    };
    for input in &seeds {
        if let Err(message) = run_one(target, input) {
            record(input, message);
        }
    }
    for _ in 0..iterations {
        let input = generate(&mut rng, target.shape, &seeds, target.dictionary);
        if let Err(message) = run_one(target, &input) {
            record(&input, message);
        }
    }
    Outcome {
        inputs: iterations + seeds.len() as u64,
        failures,
        elapsed: started.elapsed(),
    }
}

/// The folder regression inputs live in.
pub fn regressions_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("regressions")
}

/// Writes a failing input to `regressions/<target>/<hash>.bin`; returns its path.
pub fn keep_regression(target: &str, input: &[u8]) -> std::io::Result<PathBuf> {
    let dir = regressions_dir().join(target);
    std::fs::create_dir_all(&dir)?;
    let path = dir.join(format!("{:016x}.bin", fnv1a(input)));
    std::fs::write(&path, input)?;
    Ok(path)
}

/// 64-bit FNV-1a: stable file names for regression inputs, and per-target PRNG streams.
pub fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, b| {
        (hash ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    })
}
