//! emulators
