//! The security suite: each attack replayed against the real binary, asserting the refusal. One
//! module per area.

#[path = "../common/mod.rs"]
mod common;

mod limits;
