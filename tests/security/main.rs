//! The security suite: each area replays attacks on one boundary and asserts the refusal (and,
//! where it matters, that the refusal cost no request to Azure). One module per area.

mod active_content;
mod blob;
mod identity;
mod limits;
