//! The Functions host's wire format for custom handlers, and nothing else.
//!
//! Written from the host's own source and tests (summarized in the repository's
//! docs/host-contract.md), which differ from the public docs where it matters: scalars in `Data`
//! and `Metadata` arrive JSON-encoded twice, `Query` and `Identities` were strings before 2020,
//! and timer timestamps vary in format. Decoding here is lenient so that no shape the host has
//! ever sent fails an invocation. This module imports nothing else of ours.

mod decode;
mod raw;
mod request;
mod response;
mod timer;
mod typed;

pub use decode::{decode_scalar, object_or_encoded};
pub use request::{HttpTriggerData, InvocationRequest, PayloadError};
pub use response::{HttpOutput, InvocationResponse};
pub use timer::{ScheduleStatus, TimerInfo, Timestamp};
pub use typed::http_trigger;
