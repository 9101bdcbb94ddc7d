//! `ReadBlob`: reads a block blob back, with the content type it was written with. Only containers
//! ALLOWED_CONTAINERS allows, checked before any call to Storage; a type that could run script on
//! the app's origin is served inert (see `active_content`).

use std::sync::Arc;

use crate::app::App;
use crate::error::FunctionError;
use crate::functions::{active_content, blob_scope};
use custom_handler::http::{HttpRequest, HttpResponse};

/// The content type answered when the blob has none.
const DEFAULT_CONTENT_TYPE: &str = "application/octet-stream";

/// `GET /api/blobs/{container}/{name}`.
pub async fn run(app: Arc<App>, request: HttpRequest) -> Result<HttpResponse, FunctionError> {
    let (container, name) = blob_scope::checked(&app, &request)?;
    let blob = app.blobs()?.get_blob(&container, &name).await?;
    log::info!(
        "read blob '{name}' in '{container}' ({} bytes)",
        blob.bytes.len()
    );
    let content_type = blob
        .content_type
        .unwrap_or_else(|| DEFAULT_CONTENT_TYPE.to_owned());
    let response = HttpResponse::new(200, content_type, blob.bytes);
    Ok(active_content::served_inert(response))
}
