//! `GetSecret`: reads one Key Vault secret with the app's managed identity — the documentation's
//! "get a token, call Key Vault" sample, made deployable. Only secrets the ALLOWED_SECRETS setting
//! names can be read, and the check happens before any call to Key Vault.

use std::sync::Arc;

use serde::Serialize;

use crate::app::App;
use crate::clients::keyvault::KeyVaultError;
use crate::clients::names::validate_secret_name;
use crate::error::FunctionError;
use custom_handler::http::{HttpRequest, HttpResponse};

/// The answer: the secret and what identifies it.
#[derive(Debug, Serialize)]
struct SecretAnswer<'a> {
    name: &'a str,
    value: &'a str,
    version: Option<&'a str>,
    #[serde(rename = "contentType")]
    content_type: Option<&'a str>,
}

/// `GET /api/secrets/{name}[?version=V]`.
pub async fn run(app: Arc<App>, request: HttpRequest) -> Result<HttpResponse, FunctionError> {
    let name = request.param("name").unwrap_or_default();
    validate_secret_name(name).map_err(KeyVaultError::from)?;
    allow(&app, name)?;
    let cached = app
        .secret_cache()?
        .get(app.keyvault()?, name, request.query("version"))
        .await?;
    let secret = &cached.secret;
    log::info!(
        "{} secret '{}' version {}",
        if cached.age.is_some() {
            "cached"
        } else {
            "read"
        },
        secret.name,
        secret.version.as_deref().unwrap_or("(latest)")
    );
    let answer = SecretAnswer {
        name: &secret.name,
        value: secret.value.expose(),
        version: secret.version.as_deref(),
        content_type: secret.content_type.as_deref(),
    };
    let response = HttpResponse::json(200, &answer).with_header("Cache-Control", "no-store");
    // Age (RFC 9111 §5.1) says how old a value served from memory is, in whole seconds.
    Ok(match cached.age {
        Some(age) => response.with_header("Age", age.as_secs().to_string()),
        None => response,
    })
}

/// Refuses, before any call to Key Vault, a secret that ALLOWED_SECRETS does not name.
fn allow(app: &App, name: &str) -> Result<(), FunctionError> {
    let allowlist = app.allowed_secrets()?;
    if allowlist.allows(name) {
        return Ok(());
    }
    let how = "add its name, or a prefix such as app-*, to the comma-separated ALLOWED_SECRETS app setting";
    Err(FunctionError::Forbidden(if allowlist.is_empty() {
        format!("ALLOWED_SECRETS is not set, so no secret may be read; to read '{name}', {how}")
    } else {
        format!("secret '{name}' is not in ALLOWED_SECRETS; to allow it, {how}")
    }))
}
