//! Settings, read from the environment once at start-up into typed values and validated.
//!
//! This is the only module that reads the process environment: everything else receives what it
//! needs from here, so tests never have to mutate the process's environment.

/// One app setting the handler reads.
#[derive(Debug, Clone, Copy)]
pub struct AppSetting {
    /// The variable name, exactly as it must appear in the Function App's settings.
    pub name: &'static str,
    /// Whether a deployment to Azure must set it for every function to work.
    pub deployed: bool,
    /// What it is for, as the README's settings table says it.
    pub purpose: &'static str,
}

/// Every app setting the handler reads. The deployment template is checked against this list.
pub const APP_SETTINGS: &[AppSetting] = &[
    AppSetting { name: "KEY_VAULT_URL", deployed: true, purpose: "the vault's URL, e.g. https://<vault>.vault.azure.net/ (GetSecret)" },
    AppSetting { name: "STORAGE_BLOB_URL", deployed: true, purpose: "the account's blob endpoint, e.g. https://<account>.blob.core.windows.net (WriteBlob, ReadBlob)" },
    AppSetting { name: "AZURE_CLIENT_ID", deployed: true, purpose: "client id of the user-assigned identity to use by default; absent means system-assigned" },
    AppSetting { name: "ALLOWED_SECRETS", deployed: true, purpose: "comma-separated secret names or prefixes (app-*) that GetSecret may read; absent allows none" },
    AppSetting { name: "TOKEN_REFRESH_SCHEDULE", deployed: true, purpose: "six-field NCRONTAB schedule of RefreshTokens, e.g. 0 */5 * * * *" },
    AppSetting { name: "TOKEN_REFRESH_RESOURCES", deployed: false, purpose: "comma-separated resources RefreshTokens keeps warm; default Key Vault and Storage" },
    AppSetting { name: "DOWNSTREAM_API_URL", deployed: true, purpose: "base URL of the API that CallApi calls" },
    AppSetting { name: "DOWNSTREAM_API_SCOPE", deployed: true, purpose: "Application ID URI of that API (api://<guid>, /.default optional)" },
    AppSetting { name: "AUTH_AUTHORITY", deployed: true, purpose: "issuer authority for Whoami, e.g. https://login.microsoftonline.com/<tenant>/v2.0" },
    AppSetting { name: "AUTH_AUDIENCE", deployed: true, purpose: "audience Whoami accepts: the App ID URI or the app's client id" },
    AppSetting { name: "AUTH_REQUIRED_ROLE", deployed: false, purpose: "app role Whoami requires in the roles claim, when set" },
];
