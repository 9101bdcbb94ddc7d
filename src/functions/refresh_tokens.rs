//! `RefreshTokens`: a timer that keeps the app's tokens warm, so no invocation waits for the
//! identity endpoint. It asks the shared identity module for each resource's token — the same
//! path every function takes — which refreshes a token from its half-life on, and reports each
//! one's remaining life in the invocation's Logs.

use std::sync::Arc;

use futures::future::join_all;

use crate::app::App;
use crate::error::FunctionError;
use custom_handler::contract::TimerInfo;

/// Refreshes every resource in TOKEN_REFRESH_RESOURCES; fails when any could not be refreshed.
pub async fn run(app: Arc<App>, timer: TimerInfo) -> Result<(), FunctionError> {
    if timer.is_past_due {
        log::info!("this run makes up for an occurrence missed while the app was down");
    }
    let identity = app.identity()?;
    let resources = app.refresh_resources();
    let outcomes = join_all(
        resources
            .iter()
            .map(|resource| identity.get_token(resource, None)),
    )
    .await;
    let now = time::OffsetDateTime::now_utc();
    let mut failed = Vec::new();
    for (resource, outcome) in resources.iter().zip(outcomes) {
        match outcome {
            Ok(token) => log::info!(
                "token for {resource}: valid for {} s more, refreshed ahead from {}",
                (token.expires_on - now).whole_seconds(),
                token.refresh_on
            ),
            Err(error) => {
                log::error!("token for {resource} could not be refreshed: {error}");
                failed.push(resource.as_str());
            }
        }
    }
    match failed.as_slice() {
        [] => Ok(()),
        _ => Err(FunctionError::Upstream(format!(
            "could not refresh the token for {}",
            failed.join(", ")
        ))),
    }
}
