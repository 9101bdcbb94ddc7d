//! Hostile inputs more than one test sends.

/// Shell metacharacters in every form a caller can send them (the host decodes `%26` to `&`;
/// a double-encoded one arrives as `%26`).
pub const SHELL_ATTACKS: &[&str] = &[
    "https://vault.azure.net&calc",
    "https://vault.azure.net%26calc",
    "https://vault.azure.net|calc",
    "https://vault.azure.net\"&calc&\"",
    "https://vault.azure.net^&calc",
    "https://vault.azure.net%COMSPEC%",
    "https://vault.azure.net!PATH!",
    "https://vault.azure.net>C:\\x",
    "https://vault.azure.net<x",
    "https://vault.azure.net;touch /tmp/x",
    "https://vault.azure.net$(touch /tmp/x)",
    "https://vault.azure.net`id`",
    "https://vault.azure.net\ncalc",
    "https://vault.azure.net!x!",
    "https://vault.azure.net>out",
    "https://vault.azure.net --tenant evil",
    "--help",
];
