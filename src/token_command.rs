//! `handler token`: what a user runs in the Kudu/SSH console when a function cannot get a token.
//! It acquires a token through the same identity module the functions use and prints one JSON
//! object: source, identity, resource, expiry and the decoded claims — the raw token only when
//! asked for with `--show-token`.

use serde::Serialize;

use crate::config::AppSettings;
use crate::functions::token_info::TokenReport;
use managed_identity::{ManagedIdentity, UserAssignedId};

/// The command's usage line.
pub const USAGE: &str = "handler token <resource-or-scope> [--client-id ID | --object-id ID | --resource-id ID] [--show-token]";

/// What the command was asked to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenCommand {
    /// The resource or scope, e.g. https://vault.azure.net or https://storage.azure.com/.default.
    pub resource: String,
    /// A user-assigned identity other than the default.
    pub identity: Option<UserAssignedId>,
    /// Print the raw token too.
    pub show_token: bool,
}

impl TokenCommand {
    /// Parses the arguments after `token`.
    pub fn parse<S: AsRef<str>>(args: &[S]) -> Result<Self, String> {
        let mut resource = None;
        let mut identity = None;
        let mut show_token = false;
        let mut args = args.iter().map(AsRef::as_ref);
        while let Some(arg) = args.next() {
            let mut id = |make: fn(String) -> UserAssignedId| -> Result<(), String> {
                let value = args.next().ok_or(format!("{arg} needs a value"))?;
                match identity.replace(make(value.to_owned())) {
                    None => Ok(()),
                    Some(_) => Err(
                        "name at most one of --client-id, --object-id and --resource-id".to_owned(),
                    ),
                }
            };
            match arg {
                "--client-id" => id(UserAssignedId::ClientId)?,
                "--object-id" => id(UserAssignedId::ObjectId)?,
                "--resource-id" => id(UserAssignedId::ResourceId)?,
                "--show-token" => show_token = true,
                flag if flag.starts_with('-') => return Err(format!("unknown option {flag}")),
                value if resource.is_none() => resource = Some(value.to_owned()),
                value => return Err(format!("unexpected argument {value}")),
            }
        }
        let resource =
            resource.ok_or("name the resource or scope, e.g. https://vault.azure.net")?;
        Ok(Self {
            resource,
            identity,
            show_token,
        })
    }
}

/// The printed object: the report, plus the token itself only on request.
#[derive(Serialize)]
struct Printed<'a> {
    #[serde(flatten)]
    report: TokenReport<'a>,
    #[serde(skip_serializing_if = "Option::is_none")]
    access_token: Option<&'a str>,
}

/// Runs the command; the JSON on success, the typed error's message on failure.
pub async fn run(command: &TokenCommand, settings: AppSettings) -> Result<String, String> {
    let config = settings.identity.map_err(|e| e.to_string())?;
    let identity = ManagedIdentity::with_tls_config(config, crate::clients::tls::client_config())
        .map_err(|e| e.to_string())?;
    let token = identity
        .get_token(&command.resource, command.identity.as_ref())
        .await
        .map_err(|e| e.to_string())?;
    let printed = Printed {
        report: TokenReport::of(&token),
        access_token: command.show_token.then(|| token.access_token.expose()),
    };
    serde_json::to_string_pretty(&printed).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arguments_name_the_resource_the_identity_and_whether_to_show_the_token() {
        let command = TokenCommand::parse(&[
            "https://vault.azure.net",
            "--client-id",
            "abc",
            "--show-token",
        ])
        .unwrap();
        assert_eq!(command.resource, "https://vault.azure.net");
        assert_eq!(
            command.identity,
            Some(UserAssignedId::ClientId("abc".into()))
        );
        assert!(command.show_token);
        assert!(!TokenCommand::parse(&["r"]).unwrap().show_token);
    }

    #[test]
    fn bad_arguments_say_what_is_wrong() {
        let error = |args: &[&str]| TokenCommand::parse(args).unwrap_err();
        assert!(error(&[]).contains("name the resource"));
        assert!(error(&["r", "--client-id"]).contains("needs a value"));
        assert!(error(&["r", "--client-id", "a", "--object-id", "b"]).contains("at most one"));
        assert!(error(&["r", "--bogus"]).contains("unknown option"));
        assert!(error(&["r", "s"]).contains("unexpected"));
    }
}
