//! `WriteBlob`: writes the request body as a block blob with its content type, creating the
//! container when it is missing — the seed sample's `CloudBlockBlob`, made real with the app's
//! managed identity. Only containers ALLOWED_CONTAINERS allows, never the host's or the platform's,
//! checked with the names before any call to Storage.

use std::sync::Arc;

use serde::Serialize;

use crate::app::App;
use crate::clients::blob::StorageError;
use crate::clients::names::validate_body_size;
use crate::error::FunctionError;
use crate::functions::blob_scope;
use custom_handler::RuntimeError;
use custom_handler::http::{HttpRequest, HttpResponse};

/// What the caller is told about the blob written.
#[derive(Debug, Serialize)]
struct Written<'a> {
    container: &'a str,
    name: &'a str,
    size: usize,
    #[serde(rename = "contentType")]
    content_type: &'a str,
}

/// The content type stored when the request names none.
const DEFAULT_CONTENT_TYPE: &str = "application/octet-stream";

/// `PUT /api/blobs/{container}/{name}` with the blob as the body.
pub async fn run(app: Arc<App>, request: HttpRequest) -> Result<HttpResponse, FunctionError> {
    let (container, name) = blob_scope::checked(&app, &request)?;
    let (container, name) = (container.as_str(), name.as_str());
    let content_type = request.content_type().unwrap_or(DEFAULT_CONTENT_TYPE);
    // Before any storage call: in JSON mode the host has already decoded a body that is
    // neither text nor octet-stream/multipart as UTF-8, so its bytes may not be the client's.
    if let Some(kind) = request.body_altered_by_host() {
        return Err(RuntimeError::UnsupportedMediaType(kind).into());
    }
    validate_body_size(request.body.len()).map_err(StorageError::from)?;
    let blobs = app.blobs()?;
    blobs
        .put_block_blob(container, name, request.body.clone(), content_type)
        .await?;
    log::info!(
        "wrote blob '{name}' in '{container}' ({} bytes, {content_type})",
        request.body.len()
    );
    let written = Written {
        container,
        name,
        size: request.body.len(),
        content_type,
    };
    Ok(HttpResponse::json(201, &written))
}
