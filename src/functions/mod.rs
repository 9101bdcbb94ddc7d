//! The functions, one module each. Each reads like the documentation's sample: get a token,
//! call the service, shape the answer. This table and the registry are the only code that knows
//! all of them.

use crate::app::App;
use crate::registry::Implemented;

/// Every function this handler implements, checked against the function folders at start-up.
pub fn all() -> Vec<Implemented<App>> {
    Vec::new()
}
