//! `handler doctor`: run in the app's SSH console (or locally), it checks what goes wrong in real
//! deployments and prints one line per check, each failing one with what to do. It never prints a
//! token or a secret value: tokens are only described (source, identity, `oid`, expiry) and a
//! secret read only proves access.
//!
//! Checks, in order: the glibc it runs on; host.json and the function folders against the code;
//! the settings each declared function needs; the identity source and a token per configured
//! resource; Key Vault reachable and an allowed secret readable; Storage reachable and a data
//! container writable (a small probe blob is written, then deleted).

use std::fmt;
use std::path::PathBuf;

use bytes::Bytes;

use crate::app::App;
use crate::clients::CallError;
use crate::clients::blob::StorageError;
use crate::clients::keyvault::KeyVaultError;
use crate::config::{AppSettings, ServerConfig};
use crate::error::FunctionError;
use crate::functions::token_info::TokenReport;
use custom_handler::registry;

/// The command's usage line.
pub const USAGE: &str = "handler doctor [--app-root DIR] [--secret NAME] [--container NAME]";

/// The oldest glibc the packaged binary is built for (scripts/package checks the binary against it).
pub const GLIBC_FLOOR: (u32, u32) = (2, 28);

/// How long a new role assignment can take to apply, for 403 hints (Microsoft's RBAC
/// troubleshooting page: https://learn.microsoft.com/azure/role-based-access-control/troubleshooting).
const PROPAGATION: &str = "new role assignments take up to 10 minutes to apply (a role given to a group the identity is in can take hours, until the platform's cached token expires)";

/// What `handler doctor` was asked to do.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DoctorCommand {
    /// The folder with host.json; default: the app root the host would give the handler.
    pub app_root: Option<PathBuf>,
    /// The secret to read; default: the first exact name in ALLOWED_SECRETS.
    pub secret: Option<String>,
    /// The container to write the probe blob to; default: the first exact name in ALLOWED_CONTAINERS.
    pub container: Option<String>,
}

impl DoctorCommand {
    /// Parses the arguments after `doctor`.
    pub fn parse<S: AsRef<str>>(args: &[S]) -> Result<Self, String> {
        let mut command = Self::default();
        let mut args = args.iter().map(AsRef::as_ref);
        while let Some(arg) = args.next() {
            let mut value = || {
                args.next()
                    .map(str::to_owned)
                    .ok_or_else(|| format!("{arg} needs a value"))
            };
            match arg {
                "--app-root" => command.app_root = Some(value()?.into()),
                "--secret" => command.secret = Some(value()?),
                "--container" => command.container = Some(value()?),
                other => return Err(format!("unexpected argument {other}")),
            }
        }
        Ok(command)
    }
}

/// How a check came out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// Works.
    Ok,
    /// Works, or could not be checked, but deserves a look.
    Warn,
    /// Broken: the command exits non-zero.
    Fail,
}

/// One printed line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    /// How it came out.
    pub status: Status,
    /// What was checked, e.g. `keyvault` or `settings GetSecret`.
    pub check: String,
    /// What was found.
    pub detail: String,
    /// What to do, for warnings and failures.
    pub fix: Option<String>,
}

impl Finding {
    fn ok(check: impl Into<String>, detail: impl Into<String>) -> Self {
        Self {
            status: Status::Ok,
            check: check.into(),
            detail: detail.into(),
            fix: None,
        }
    }

    fn problem(
        status: Status,
        check: impl Into<String>,
        detail: impl Into<String>,
        fix: impl Into<String>,
    ) -> Self {
        Self {
            status,
            check: check.into(),
            detail: detail.into(),
            fix: Some(fix.into()),
        }
    }
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let status = match self.status {
            Status::Ok => "ok  ",
            Status::Warn => "warn",
            Status::Fail => "FAIL",
        };
        write!(f, "{status} {}: {}", self.check, one_line(&self.detail))?;
        if let Some(fix) = &self.fix {
            write!(f, " -> {}", one_line(fix))?;
        }
        Ok(())
    }
}

/// Keeps a finding on one line whatever a service put in its message.
fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Runs every check. `lookup` reads a setting (the process environment in production).
pub async fn run(command: &DoctorCommand, lookup: impl Fn(&str) -> Option<String>) -> Vec<Finding> {
    let get = |name: &str| {
        lookup(name)
            .map(|v| v.trim().to_owned())
            .filter(|v| !v.is_empty())
    };
    let mut findings = vec![glibc()];
    let app_root = command.app_root.clone().unwrap_or_else(|| {
        ServerConfig::from_lookup(|name| {
            get(name).or_else(|| (name == "FUNCTIONS_CUSTOMHANDLER_PORT").then(|| "1".into()))
        })
        .map(|config| config.app_root)
        .unwrap_or_else(|_| PathBuf::from("."))
    });
    let declared = functions_check(&app_root, &mut findings);
    let settings = AppSettings::from_lookup(&lookup);
    let app = App::new(settings);
    let refresh_resources = app.refresh_resources().to_vec();
    settings_checks(&app, &declared, &get, &mut findings);
    identity_checks(&app, &get, &refresh_resources, &mut findings).await;
    if declared.iter().any(|d| d == "GetSecret") {
        findings.push(keyvault_check(&app, command.secret.as_deref(), &get).await);
    }
    if declared.iter().any(|d| d == "WriteBlob" || d == "ReadBlob") {
        findings.push(storage_check(&app, command.container.as_deref(), &get).await);
    }
    findings
}

/// The glibc this process runs on, against the floor the package is built for.
fn glibc() -> Finding {
    match running_glibc() {
        Some(version) => {
            let parsed = parse_version(&version);
            if parsed.is_some_and(|v| v < GLIBC_FLOOR) {
                Finding::problem(
                    Status::Warn,
                    "glibc",
                    format!(
                        "{version}, older than the {}.{} the package is built for",
                        GLIBC_FLOOR.0, GLIBC_FLOOR.1
                    ),
                    "run the app on a Functions image with a newer glibc",
                )
            } else {
                Finding::ok(
                    "glibc",
                    format!(
                        "{version} (the package needs {}.{} or newer)",
                        GLIBC_FLOOR.0, GLIBC_FLOOR.1
                    ),
                )
            }
        }
        None => Finding::problem(
            Status::Warn,
            "glibc",
            "not a glibc system (or its version is unknown)",
            "the packaged binary needs glibc; run it on a Linux Functions image",
        ),
    }
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn running_glibc() -> Option<String> {
    // SAFETY: gnu_get_libc_version takes no argument and returns a pointer to a static,
    // NUL-terminated string owned by glibc, valid for the life of the process.
    let version = unsafe { std::ffi::CStr::from_ptr(libc::gnu_get_libc_version()) };
    version.to_str().ok().map(str::to_owned)
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn running_glibc() -> Option<String> {
    None
}

/// `2.36` (or `2.36.1`) as (2, 36).
fn parse_version(version: &str) -> Option<(u32, u32)> {
    let mut parts = version.split('.');
    let major = parts.next()?.parse().ok()?;
    let minor = parts.next()?.parse().ok()?;
    Some((major, minor))
}

/// host.json and the function folders against the functions the binary implements; returns the
/// names of the declared functions.
fn functions_check(app_root: &std::path::Path, findings: &mut Vec<Finding>) -> Vec<String> {
    let check = "functions";
    let (declared, broken) = match registry::load_declared(app_root) {
        Ok(loaded) => loaded,
        Err(error) => {
            findings.push(Finding::problem(
                Status::Fail,
                check,
                error.to_string(),
                format!(
                    "run doctor where host.json is (the app root, /home/site/wwwroot in Azure) or pass --app-root; found none under {}",
                    app_root.display()
                ),
            ));
            return Vec::new();
        }
    };
    let host = registry::load_host_options(app_root).err();
    let mismatches = registry::compare(&declared, &crate::functions::all());
    let problems: Vec<String> = host
        .iter()
        .map(ToString::to_string)
        .chain(broken.iter().map(ToString::to_string))
        .chain(mismatches.iter().map(ToString::to_string))
        .collect();
    if problems.is_empty() {
        let names: Vec<&str> = declared.iter().map(|d| d.name.as_str()).collect();
        findings.push(Finding::ok(
            check,
            format!(
                "host.json and {} function folder(s) in {} match the code ({})",
                declared.len(),
                app_root.display(),
                names.join(", ")
            ),
        ));
    } else {
        findings.push(Finding::problem(
            Status::Fail,
            check,
            problems.join("; "),
            "deploy host.json and the function folders built with this binary (scripts/package, then publish)",
        ));
    }
    declared.into_iter().map(|d| d.name).collect()
}

/// One line per declared function: the settings it needs are there and usable.
fn settings_checks(
    app: &App,
    declared: &[String],
    get: &impl Fn(&str) -> Option<String>,
    findings: &mut Vec<Finding>,
) {
    // Whether each allowlist function would refuse every call (or what kept it from being built).
    let no_secrets = app
        .keyvault()
        .and(app.allowed_secrets())
        .map(|allow| allow.is_empty());
    let no_containers = app
        .blobs()
        .and(app.allowed_containers())
        .map(|allow| allow.is_empty());
    for function in declared {
        let check = format!("settings {function}");
        let problem: Result<String, (String, String)> = match function.as_str() {
            "GetSecret" => allowlist_settings(
                &no_secrets,
                "KEY_VAULT_URL, ALLOWED_SECRETS",
                "ALLOWED_SECRETS is not set, so GetSecret allows no secret",
                "set ALLOWED_SECRETS to the secret names or prefixes (app-*) it may read",
            ),
            "WriteBlob" | "ReadBlob" => allowlist_settings(
                &no_containers,
                "STORAGE_BLOB_URL, ALLOWED_CONTAINERS",
                "ALLOWED_CONTAINERS is not set, so the blob functions allow no container",
                "set ALLOWED_CONTAINERS to the container names or prefixes (logs-*) they may use",
            ),
            "CallApi" => app
                .downstream()
                .map(|_| "DOWNSTREAM_API_URL, DOWNSTREAM_API_SCOPE".to_owned())
                .map_err(|e| name_the_setting(&e)),
            "Whoami" => app
                .validator()
                .map(|_| "AUTH_AUTHORITY, AUTH_AUDIENCE".to_owned())
                .map_err(|e| name_the_setting(&e)),
            "RefreshTokens" => match get("TOKEN_REFRESH_SCHEDULE") {
                Some(s) if s.split_whitespace().count() == 6 => {
                    Ok(format!("TOKEN_REFRESH_SCHEDULE '{s}'"))
                }
                Some(s) => Err((
                    format!("TOKEN_REFRESH_SCHEDULE '{s}' is not a six-field NCRONTAB expression"),
                    "use six fields, seconds first, e.g. 0 */5 * * * *".to_owned(),
                )),
                None => Err((
                    "TOKEN_REFRESH_SCHEDULE is not set: the host does not index RefreshTokens"
                        .to_owned(),
                    "set TOKEN_REFRESH_SCHEDULE, e.g. 0 */5 * * * *".to_owned(),
                )),
            },
            "TokenInfo" => app
                .identity()
                .map(|_| "the managed-identity settings".to_owned())
                .map_err(|e| (e.to_string(), "see the identity line".to_owned())),
            _ => Ok("no setting of its own".to_owned()),
        };
        findings.push(match problem {
            Ok(what) => Finding::ok(check, format!("{what} set")),
            Err((detail, fix)) => Finding::problem(Status::Fail, check, detail, fix),
        });
    }
}

/// A setting the app could not use: its message (which names it) and the fix.
fn name_the_setting(error: &FunctionError) -> (String, String) {
    (
        error.to_string(),
        "set the setting the message names".to_owned(),
    )
}

/// The settings of a function that reads an allowlist: `allows_none` (or the error that kept a
/// client or the list from being built) decides; an empty list fails with `empty` and `fix`,
/// since the function would refuse every call.
fn allowlist_settings(
    allows_none: &Result<bool, FunctionError>,
    settings: &str,
    empty: &str,
    fix: &str,
) -> Result<String, (String, String)> {
    if *allows_none.as_ref().map_err(name_the_setting)? {
        Err((empty.to_owned(), fix.to_owned()))
    } else {
        Ok(settings.to_owned())
    }
}

/// Which identity source was detected, and a token (described, never shown) per resource the app
/// uses.
async fn identity_checks(
    app: &App,
    get: &impl Fn(&str) -> Option<String>,
    refresh_resources: &[String],
    findings: &mut Vec<Finding>,
) {
    let identity = match app.identity() {
        Ok(identity) => identity,
        Err(error) => {
            findings.push(Finding::problem(
                Status::Fail,
                "identity",
                error.to_string(),
                "run doctor in the app's SSH console, whose environment has the platform's IDENTITY_ENDPOINT and IDENTITY_HEADER",
            ));
            return;
        }
    };
    findings.push(Finding::ok(
        "identity",
        format!(
            "tokens from {}, default identity {}",
            identity.source(),
            identity.default_identity()
        ),
    ));
    for resource in token_resources(get, refresh_resources) {
        let check = format!("token {resource}");
        findings.push(match identity.get_token(&resource, None).await {
            Ok(token) => {
                let report = TokenReport::of(&token);
                let oid = report
                    .claims
                    .as_ref()
                    .and_then(|c| c.oid.clone())
                    .unwrap_or_else(|| "unknown".into());
                Finding::ok(
                    check,
                    format!(
                        "got one for oid {oid}, {} min left (not shown; `handler token {resource}` decodes it)",
                        report.expires_in / 60
                    ),
                )
            }
            Err(error) => Finding::problem(
                Status::Fail,
                check,
                error.to_string(),
                "check that AZURE_CLIENT_ID names an identity attached to the app, then `handler token` for details",
            ),
        });
    }
}

/// The resources the app asks tokens for: Key Vault and Storage when configured, the downstream
/// API's scope, and what RefreshTokens keeps warm; each once.
fn token_resources(get: &impl Fn(&str) -> Option<String>, refresh: &[String]) -> Vec<String> {
    let mut resources = Vec::new();
    if get("KEY_VAULT_URL").is_some() {
        resources.push("https://vault.azure.net".to_owned());
    }
    if get("STORAGE_BLOB_URL").is_some() {
        resources.push("https://storage.azure.com".to_owned());
    }
    resources.extend(get("DOWNSTREAM_API_SCOPE"));
    resources.extend(refresh.iter().cloned());
    let mut seen = std::collections::BTreeSet::new();
    resources.retain(|r| {
        seen.insert(
            r.trim_end_matches("/.default")
                .trim_end_matches('/')
                .to_owned(),
        )
    });
    resources
}

/// The first entry of a comma-separated allowlist that is an exact name, not a `prefix*`.
fn first_exact(list: Option<String>) -> Option<String> {
    list?
        .split(',')
        .map(str::trim)
        .find(|e| !e.is_empty() && !e.ends_with('*'))
        .map(str::to_owned)
}

/// The secret to read: the one asked for, else the first exact name in ALLOWED_SECRETS, else a
/// name under the first prefix (a 404 for it still proves the vault answers and lets us in).
fn secret_to_read(asked: Option<&str>, allowed: Option<String>) -> Option<String> {
    if let Some(asked) = asked {
        return Some(asked.to_owned());
    }
    first_exact(allowed.clone()).or_else(|| {
        let prefix = allowed?
            .split(',')
            .map(str::trim)
            .find_map(|e| e.strip_suffix('*').map(str::to_owned))?;
        Some(format!("{prefix}doctor-probe"))
    })
}

async fn keyvault_check(
    app: &App,
    asked: Option<&str>,
    get: &impl Fn(&str) -> Option<String>,
) -> Finding {
    let check = "keyvault";
    let (vault, allowed) = match (app.keyvault(), app.allowed_secrets()) {
        (Ok(vault), Ok(allowed)) => (vault, allowed),
        _ => {
            return Finding::problem(
                Status::Fail,
                check,
                "not checked: its settings are missing or invalid",
                "fix the GetSecret settings line first",
            );
        }
    };
    let Some(name) = secret_to_read(asked, get("ALLOWED_SECRETS")) else {
        return Finding::problem(
            Status::Fail,
            check,
            "not checked: ALLOWED_SECRETS names no secret",
            "set ALLOWED_SECRETS, or pass --secret NAME",
        );
    };
    if !allowed.allows(&name) {
        return Finding::problem(
            Status::Fail,
            check,
            format!("secret '{name}' is not allowed by ALLOWED_SECRETS"),
            "name a secret ALLOWED_SECRETS allows",
        );
    }
    let url = vault.vault_url().as_str().to_owned();
    match vault.get_secret(&name, None).await {
        Ok(secret) => Finding::ok(
            check,
            format!(
                "{url} read secret '{}'{} (value not shown)",
                secret.name,
                secret
                    .version
                    .map(|v| format!(" version {v}"))
                    .unwrap_or_default()
            ),
        ),
        Err(KeyVaultError::Call(CallError::NotFound { .. })) => Finding::problem(
            Status::Warn,
            check,
            format!("{url} answered and let the identity in, but has no secret '{name}'"),
            "create it, or pass --secret with a secret that exists",
        ),
        Err(error @ KeyVaultError::Call(CallError::Forbidden { .. })) => Finding::problem(
            Status::Fail,
            check,
            format!("{url}: {error}"),
            format!(
                "grant the identity on the identity line \"Key Vault Secrets User\" on the vault (az role assignment create --role \"Key Vault Secrets User\" --assignee <its principal id> --scope <vault id>); {PROPAGATION}"
            ),
        ),
        Err(error) => Finding::problem(
            Status::Fail,
            check,
            format!("{url}: {error}"),
            "check KEY_VAULT_URL, the vault's network rules (public access or a private endpoint the app can reach) and the token line above",
        ),
    }
}

/// A blob name no real data uses, different per run.
fn probe_blob_name() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    format!("handler-doctor/probe-{}-{nanos}.txt", std::process::id())
}

async fn storage_check(
    app: &App,
    asked: Option<&str>,
    get: &impl Fn(&str) -> Option<String>,
) -> Finding {
    let check = "storage";
    let Ok(blobs) = app.blobs() else {
        return Finding::problem(
            Status::Fail,
            check,
            "not checked: its settings are missing or invalid",
            "fix the WriteBlob/ReadBlob settings line first",
        );
    };
    let Some(container) = asked
        .map(str::to_owned)
        .or_else(|| first_exact(get("ALLOWED_CONTAINERS")))
    else {
        return Finding::problem(
            Status::Fail,
            check,
            "not checked: ALLOWED_CONTAINERS names no container (only prefixes, or nothing)",
            "pass --container NAME with a container the app may use",
        );
    };
    let account = blobs.account_url().as_str().to_owned();
    let name = probe_blob_name();
    let probe = Bytes::from_static(b"handler doctor probe: safe to delete\n");
    if let Err(error) = blobs
        .put_block_blob(&container, &name, probe, "text/plain")
        .await
    {
        let fix = match error {
            StorageError::Call(CallError::Forbidden { .. }) => format!(
                "grant the identity on the identity line \"Storage Blob Data Contributor\" on the data storage account (the one STORAGE_BLOB_URL names); {PROPAGATION}"
            ),
            StorageError::InvalidInput(_) => "use a valid container name".to_owned(),
            _ => "check STORAGE_BLOB_URL, the account's network rules and the token line above"
                .to_owned(),
        };
        return Finding::problem(
            Status::Fail,
            check,
            format!("{account} container '{container}': {error}"),
            fix,
        );
    }
    match blobs.delete_blob(&container, &name).await {
        Ok(()) => Finding::ok(
            check,
            format!(
                "{account} container '{container}' is writable (probe blob written and deleted)"
            ),
        ),
        Err(error) => Finding::problem(
            Status::Warn,
            check,
            format!(
                "{account} container '{container}' is writable, but the probe blob '{name}' could not be deleted: {error}"
            ),
            "delete it by hand",
        ),
    }
}

/// Non-zero when any check failed.
pub fn failed(findings: &[Finding]) -> bool {
    findings.iter().any(|f| f.status == Status::Fail)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arguments_name_the_app_root_the_secret_and_the_container() {
        let command =
            DoctorCommand::parse(&["--app-root", "/x", "--secret", "s", "--container", "c"])
                .unwrap();
        assert_eq!(command.app_root, Some(PathBuf::from("/x")));
        assert_eq!(command.secret.as_deref(), Some("s"));
        assert_eq!(command.container.as_deref(), Some("c"));
        assert_eq!(
            DoctorCommand::parse::<&str>(&[]).unwrap(),
            DoctorCommand::default()
        );
        let error = |args: &[&str]| DoctorCommand::parse(args).unwrap_err();
        assert!(error(&["--secret"]).contains("needs a value"));
        assert!(error(&["extra"]).contains("unexpected"));
    }

    #[test]
    fn the_secret_read_is_asked_for_or_allowed() {
        assert_eq!(secret_to_read(Some("x"), None).as_deref(), Some("x"));
        assert_eq!(
            secret_to_read(None, Some("app-*, db-password".into())).as_deref(),
            Some("db-password")
        );
        assert_eq!(
            secret_to_read(None, Some("app-*".into())).as_deref(),
            Some("app-doctor-probe")
        );
        assert_eq!(
            secret_to_read(None, Some("*".into())).as_deref(),
            Some("doctor-probe")
        );
        assert_eq!(secret_to_read(None, None), None);
        assert_eq!(
            first_exact(Some("logs-*,data".into())).as_deref(),
            Some("data")
        );
        assert_eq!(first_exact(Some("logs-*".into())), None);
    }

    #[test]
    fn token_resources_are_each_configured_one_once() {
        let get = |name: &str| match name {
            "KEY_VAULT_URL" => Some("https://v.vault.azure.net/".to_owned()),
            "DOWNSTREAM_API_SCOPE" => Some("api://x/.default".to_owned()),
            _ => None,
        };
        let refresh = ["https://vault.azure.net/".to_owned(), "api://x".to_owned()];
        assert_eq!(
            token_resources(&get, &refresh),
            ["https://vault.azure.net", "api://x/.default"]
        );
    }

    #[test]
    fn a_finding_is_one_line_with_what_to_do() {
        let line = Finding::problem(Status::Fail, "keyvault", "denied\n(403)", "grant  the role")
            .to_string();
        assert_eq!(line, "FAIL keyvault: denied (403) -> grant the role");
        assert_eq!(Finding::ok("glibc", "2.36").to_string(), "ok   glibc: 2.36");
        assert_eq!(parse_version("2.28"), Some((2, 28)));
        assert_eq!(parse_version("2.36.1"), Some((2, 36)));
        assert_eq!(parse_version("x"), None);
    }

    #[test]
    fn the_running_glibc_is_read() {
        // The test binary is a glibc build on Linux; elsewhere the check only warns.
        if cfg!(all(target_os = "linux", target_env = "gnu")) {
            let finding = glibc();
            assert!(parse_version(finding.detail.split_whitespace().next().unwrap()).is_some());
        }
    }
}
