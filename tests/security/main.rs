//! Attack tests: each replays one way a caller with a function key (or none) could make the app
//! do more than it should, and asserts the refusal. One area per file.

#[path = "../common/mod.rs"]
mod common;

mod identity;
