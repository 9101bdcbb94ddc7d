//! What ships and how it is deployed: the package Core Tools would publish, the ARM template's
//! shapes and settings, and `handler doctor` against the emulators. One module per area.

mod doctor;
mod infra_template;
mod package;
