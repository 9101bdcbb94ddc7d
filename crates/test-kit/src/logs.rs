//! Every log line of the test process, for checking that no token or secret is ever logged.
//! One logger per process: [`install`] refuses to run where another logger was installed first,
//! so a capture that sees nothing can never pass for a clean one.

use std::sync::Mutex;

static LINES: Mutex<Vec<String>> = Mutex::new(Vec::new());
static LOGGER: Capture = Capture;

struct Capture;

impl log::Log for Capture {
    fn enabled(&self, _: &log::Metadata) -> bool {
        true
    }

    fn log(&self, record: &log::Record) {
        let line = format!("{} {}: {}", record.level(), record.target(), record.args());
        LINES.lock().expect("captured lines").push(line);
    }

    fn flush(&self) {}
}

/// Captures every level from now on (the first call in a process installs the logger; later
/// calls find it in place).
pub fn install() {
    let _ = log::set_logger(&LOGGER);
    let installed: *const dyn log::Log = log::logger();
    assert!(
        std::ptr::addr_eq(installed, &LOGGER as *const Capture),
        "another logger was installed first: this test binary must leave logging to the capture"
    );
    log::set_max_level(log::LevelFilter::Trace);
}

/// The lines so far.
pub fn lines() -> Vec<String> {
    LINES.lock().expect("captured lines").clone()
}

/// Asserts that some line so far contains `needle` (`why` says what that proves), and returns the
/// lines for the checks that follow.
pub fn assert_logged(needle: &str, why: &str) -> Vec<String> {
    let lines = lines();
    assert!(
        lines.iter().any(|line| line.contains(needle)),
        "{why}: no line contains {needle:?} in {lines:?}"
    );
    lines
}
