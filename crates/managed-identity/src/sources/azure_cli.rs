//! The Azure CLI developer fallback: `az account get-access-token --output json --resource R
//! [--tenant T]`, run as a subprocess with stdin closed, no colour and a time limit. Its output is
//! only ever quoted redacted.

use std::path::Path;
use std::process::Stdio;

use serde::Deserialize;
use serde_json::Value;
use time::OffsetDateTime;

use super::ParsedToken;
use super::response::{any_text, non_empty_text};
use crate::SourceKind;
use crate::error::{CliFailure, IdentityError};
use crate::expiry::{self, Field};
use crate::secret::{AccessTokenSecret, redacted_excerpt};

/// What `az account get-access-token --output json` prints, as far as we read it.
#[derive(Debug, Deserialize)]
struct CliToken {
    #[serde(rename = "accessToken", default, deserialize_with = "non_empty_text")]
    access_token: Option<String>,
    /// Epoch seconds, printed by CLI 2.54 and later (`expiresOn` is local time: never read).
    #[serde(default, deserialize_with = "expiry::expires_on")]
    expires_on: Field<OffsetDateTime>,
    #[serde(rename = "tokenType", default, deserialize_with = "any_text")]
    token_type: Option<String>,
}

/// Runs the CLI and reads its answer.
pub(crate) async fn fetch(
    program: &str,
    resource: &str,
    tenant: Option<&str>,
    limit: std::time::Duration,
    issued: OffsetDateTime,
) -> Result<ParsedToken, IdentityError> {
    let fail = |failure: CliFailure, detail: String| IdentityError::Cli {
        source_kind: SourceKind::AzureCli,
        failure,
        detail,
    };
    // Checked again here, next to the process it protects (get_token has checked it already).
    crate::scope::normalize_scope(resource)?;
    let mut command = cli_command(program);
    command.args([
        "account",
        "get-access-token",
        "--output",
        "json",
        "--resource",
        resource,
    ]);
    if let Some(tenant) = tenant {
        command.args(["--tenant", tenant]);
    }
    command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .env("AZURE_CORE_NO_COLOR", "true")
        .kill_on_drop(true);
    if Path::new("/bin").is_dir() {
        command.current_dir("/bin");
    }
    log::debug!("Azure CLI: requesting a token for {resource}");
    let child = command.spawn().map_err(|e| {
        if e.kind() == std::io::ErrorKind::NotFound {
            fail(
                CliFailure::NotInstalled,
                "the Azure CLI (az) is not installed or not on PATH; install it, or unset AZURE_TOKEN_CREDENTIALS".into(),
            )
        } else {
            fail(CliFailure::Failed, format!("cannot start az: {e}"))
        }
    })?;
    let output = match tokio::time::timeout(limit, child.wait_with_output()).await {
        Ok(Ok(output)) => output,
        Ok(Err(e)) => return Err(fail(CliFailure::Failed, format!("az failed: {e}"))),
        Err(_) => {
            return Err(fail(
                CliFailure::TimedOut,
                format!("az did not answer within {} s", limit.as_secs()),
            ));
        }
    };
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        let code = output.status.code();
        if code == Some(127) || stderr.contains("not recognized") {
            return Err(fail(
                CliFailure::NotInstalled,
                "the Azure CLI (az) is not installed or not on PATH".into(),
            ));
        }
        if (stderr.contains("az login") || stderr.contains("az account set"))
            && !stderr.contains("AADSTS")
        {
            return Err(fail(
                CliFailure::NotLoggedIn,
                "not logged in to the Azure CLI; run `az login`".into(),
            ));
        }
        return Err(fail(
            CliFailure::Failed,
            format!(
                "az exited with {}: {}",
                code.map_or_else(|| "a signal".to_owned(), |c| c.to_string()),
                redacted_excerpt(&stderr)
            ),
        ));
    }
    parse_output(&output.stdout, issued)
}

/// The Azure CLI is started directly, never through a shell (`cmd /c`, `sh -c`), so no
/// argument is ever read as shell syntax.
fn cli_command(program: &str) -> tokio::process::Command {
    tokio::process::Command::new(cli_program(program, cfg!(windows)))
}

/// The program to start. On Windows `az` is a batch file, `az.cmd` (the installer puts its
/// folder on PATH): it is named with its extension so that the standard library finds it on
/// PATH and, being a batch file, quotes every argument for cmd.exe's rules itself — since Rust
/// 1.77 it refuses an argument it cannot quote safely instead of passing it on
/// (https://blog.rust-lang.org/2024/04/09/cve-2024-24576.html). The scope grammar keeps every
/// argument to characters cmd.exe gives no meaning to, so that is a second wall, not the only one.
pub(crate) fn cli_program(program: &str, windows: bool) -> String {
    if windows && Path::new(program).extension().is_none() {
        format!("{program}.cmd")
    } else {
        program.to_owned()
    }
}

/// Reads `az account get-access-token` JSON: `accessToken` and the epoch `expires_on` (CLI ≥ 2.54).
pub(crate) fn parse_output(
    stdout: &[u8],
    issued: OffsetDateTime,
) -> Result<ParsedToken, IdentityError> {
    let fail = |detail: String| IdentityError::Cli {
        source_kind: SourceKind::AzureCli,
        failure: CliFailure::Failed,
        detail,
    };
    // Through `Value` first: anything but a JSON object is refused with one message, and a
    // repeated member counts once (the last), as it always has.
    let value = match serde_json::from_slice::<Value>(stdout) {
        Ok(value @ Value::Object(_)) => value,
        _ => {
            return Err(fail(format!(
                "az printed something that is not a JSON object: \"{}\"",
                redacted_excerpt(&String::from_utf8_lossy(stdout))
            )));
        }
    };
    // Every field is read leniently, so this fails only if serde itself does.
    let answer = CliToken::deserialize(&value).map_err(|e| fail(e.to_string()))?;
    let Some(access_token) = answer.access_token.map(AccessTokenSecret::new) else {
        return Err(fail("az printed no accessToken".into()));
    };
    let expires_on = match answer.expires_on {
        Field::Read(expires_on) => expires_on,
        Field::Unreadable(why) => return Err(fail(why)),
        Field::Absent => {
            return Err(fail(
                "az printed no expires_on; upgrade the Azure CLI to 2.54 or later".into(),
            ));
        }
    };
    if expires_on <= issued {
        return Err(fail(
            "az returned an expired token; run `az login` again".into(),
        ));
    }
    Ok(ParsedToken {
        access_token,
        expires_on,
        refresh_in: None,
        resource: None,
        token_type: answer.token_type,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn the_cli_is_started_without_a_shell_on_every_os() {
        assert_eq!(cli_program("az", true), "az.cmd");
        assert_eq!(cli_program("az.cmd", true), "az.cmd");
        assert_eq!(cli_program(r"C:\tools\az.cmd", true), r"C:\tools\az.cmd");
        assert_eq!(cli_program("az", false), "az");
        let command = cli_command("az");
        let program = command
            .as_std()
            .get_program()
            .to_string_lossy()
            .into_owned();
        assert!(program == "az" || program == "az.cmd", "{program}");
        assert_eq!(command.as_std().get_args().count(), 0, "no shell switch");
    }

    #[test]
    fn cli_output_needs_token_and_epoch_expiry() {
        let issued = datetime!(2030-01-01 00:00 UTC);
        let parsed = parse_output(
            br#"{"accessToken":"t","expires_on":1893459600,"expiresOn":"2030-01-01 01:00:00.000000","tokenType":"Bearer","tenant":"x"}"#,
            issued,
        )
        .unwrap();
        assert_eq!(parsed.expires_on, datetime!(2030-01-01 01:00 UTC));
        assert_eq!(parsed.access_token.expose(), "t");
        assert!(parse_output(br#"{"expires_on":1893459600}"#, issued).is_err());
        assert!(parse_output(b"not json accessToken", issued).is_err());
    }
}
