//! Blob Storage through the official `azure_storage_blob` client.
//!
//! [`BlobStore`] is built once from `STORAGE_BLOB_URL` (the account's blob endpoint) and shares one
//! SDK pipeline, so one token cache, for every container and blob. Writes are one Put Blob request
//! (bodies up to [`MAX_BLOB_BYTES`] are never split into blocks); when the container is missing the
//! write creates it and retries once, so the common case costs nothing extra.

use crate::clients::{
    failure::{CallError, CallTarget, Failure},
    http::AzureHttp,
    names::{
        InputError, MAX_BLOB_BYTES, check_service_url, validate_blob_name, validate_body_size,
        validate_container_name, validate_content_type,
    },
    request_id,
};
use azure_core::{
    Bytes,
    credentials::TokenCredential,
    http::{NoFormat, RequestContent, Url},
};
use azure_storage_blob::{
    BlobClient, BlobServiceClient, BlobServiceClientOptions,
    models::{
        BlobClientDownloadOptions, BlobClientUploadOptions, BlobContainerClientCreateOptions,
    },
};
use std::{fmt, num::NonZero, sync::Arc, time::Duration};
use thiserror::Error;

/// The Storage REST API version sent as `x-ms-version`: the SDK's default, pinned here so a test
/// can assert it and an SDK upgrade cannot change it silently. Azurite 3.37.0 accepts it.
pub const BLOB_API_VERSION: &str = "2026-04-06";

/// The oldest `x-ms-version` Azure Storage accepts with a bearer token (Blob). Azurite does not
/// enforce it, so tests check [`BLOB_API_VERSION`] against it.
pub const BEARER_MIN_API_VERSION: &str = "2017-11-09";

/// The RBAC role an identity needs to write blobs.
pub const BLOB_WRITER_ROLE: &str = "Storage Blob Data Contributor";

/// The RBAC role an identity needs to read blobs.
pub const BLOB_READER_ROLE: &str = "Storage Blob Data Reader";

/// What a Storage call was doing, which decides the role named in a 403.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BlobOperation {
    /// Reading a blob.
    Read,
    /// Writing a blob or creating its container.
    Write,
}

impl BlobOperation {
    /// The role that allows this operation.
    pub fn required_role(self) -> &'static str {
        match self {
            Self::Read => BLOB_READER_ROLE,
            Self::Write => BLOB_WRITER_ROLE,
        }
    }
}

impl fmt::Display for BlobOperation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Read => "read",
            Self::Write => "write",
        })
    }
}

/// A blob read back from Storage.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Blob {
    /// The blob's content.
    pub bytes: Bytes,
    /// The content type stored with it, if any.
    pub content_type: Option<String>,
}

/// Why a Storage call failed. No message carries a token or blob content.
#[derive(Debug, Error)]
pub enum StorageError {
    /// `STORAGE_BLOB_URL` is unusable; detected at start-up.
    #[error("invalid STORAGE_BLOB_URL: {0}")]
    InvalidStorageUrl(&'static str),
    /// A container or blob name, content type or body size is unacceptable; nothing was sent.
    #[error(transparent)]
    InvalidInput(#[from] InputError),
    /// The blob is larger than the handler returns.
    #[error("the blob is larger than the {limit}-byte limit")]
    BlobTooLarge {
        /// [`MAX_BLOB_BYTES`].
        limit: usize,
    },
    /// The call was made and failed: refused, not found, throttled (429, or 503 `ServerBusy`),
    /// no token, no usable answer or out of time.
    #[error(transparent)]
    Call(#[from] CallError<BlobRef>),
}

/// The container and blob a Storage call was about, and what it was doing: its 403 message
/// names the role that operation needs, its 404 message the container or the blob.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlobRef {
    /// What was attempted.
    pub operation: BlobOperation,
    /// The container.
    pub container: String,
    /// The blob's name.
    pub blob: String,
}

impl BlobRef {
    /// `blob` in `container`, for `operation`.
    pub fn new(operation: BlobOperation, container: &str, blob: &str) -> Self {
        Self {
            operation,
            container: container.to_string(),
            blob: blob.to_string(),
        }
    }
}

impl CallTarget for BlobRef {
    const SERVICE: &'static str = "Storage";
    const DENIED_CODE: &'static str = "AuthorizationFailure";

    fn fmt_denied(&self, code: &str, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} access was denied ({code}): the managed identity needs the \"{}\" role on the storage account",
            self.operation,
            self.operation.required_role()
        )
    }

    fn fmt_missing(&self, code: Option<&str>, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match code {
            Some("ContainerNotFound") => write!(f, "container '{}'", self.container)?,
            _ => write!(f, "blob '{}' in container '{}'", self.blob, self.container)?,
        }
        f.write_str(" was not found")
    }

    /// Storage also throttles with 503 `ServerBusy`.
    fn is_throttling(status: u16, code: Option<&str>) -> bool {
        status == 429 || (status == 503 && code == Some("ServerBusy"))
    }
}

impl StorageError {
    fn from_sdk(error: &azure_core::Error, target: BlobRef) -> Self {
        Self::Call(CallError::from_sdk(error, target))
    }

    fn is_container_not_found(error: &azure_core::Error) -> bool {
        matches!(
            Failure::from_sdk(error),
            Failure::Status { status: 404, code: Some(code), .. } if code == "ContainerNotFound"
        )
    }

    fn is_container_already_there(error: &azure_core::Error) -> bool {
        matches!(
            Failure::from_sdk(error),
            Failure::Status { status: 409, code: Some(code), .. } if code == "ContainerAlreadyExists"
        )
    }
}

/// The shared Blob Storage client. Clone it freely: clones share one SDK pipeline and token cache.
#[derive(Clone)]
pub struct BlobStore {
    inner: Arc<Inner>,
}

struct Inner {
    service: BlobServiceClient,
    account_url: Url,
    operation_timeout: Duration,
}

/// Refuses a container or blob name Storage would not accept, before any request.
fn validate_blob_ref(container: &str, name: &str) -> Result<(), StorageError> {
    validate_container_name(container)?;
    validate_blob_name(name)?;
    Ok(())
}

impl fmt::Debug for BlobStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BlobStore")
            .field("account_url", &self.inner.account_url.as_str())
            .finish_non_exhaustive()
    }
}

impl BlobStore {
    /// Builds the client once from `STORAGE_BLOB_URL` (e.g. `https://<account>.blob.core.windows.net`
    /// or Azurite's `https://127.0.0.1:10000/devstoreaccount1`), the identity's credential and the
    /// shared HTTP plumbing. Requests ask for the `https://storage.azure.com/.default` scope.
    pub fn new(
        storage_blob_url: &str,
        credential: Arc<dyn TokenCredential>,
        http: &AzureHttp,
    ) -> Result<Self, StorageError> {
        let account_url = validate_storage_url(storage_blob_url)?;
        let options = BlobServiceClientOptions {
            client_options: http.client_options(Vec::new()),
            version: BLOB_API_VERSION.to_string(),
        };
        let service = BlobServiceClient::new(account_url.clone(), Some(credential), Some(options))
            .map_err(|_| StorageError::InvalidStorageUrl("the SDK rejected it"))?;
        Ok(Self {
            inner: Arc::new(Inner {
                service,
                account_url,
                operation_timeout: http.settings().operation_timeout,
            }),
        })
    }

    /// The validated account URL.
    pub fn account_url(&self) -> &Url {
        &self.inner.account_url
    }

    /// Writes a block blob in one request, overwriting any existing blob, with the given content
    /// type. Creates the container when Storage says it is missing, then retries the write once.
    pub async fn put_block_blob(
        &self,
        container: &str,
        name: &str,
        bytes: Bytes,
        content_type: &str,
    ) -> Result<(), StorageError> {
        validate_blob_ref(container, name)?;
        validate_content_type(content_type)?;
        validate_body_size(bytes.len())?;
        let call = self.put_creating_container(container, name, bytes, content_type);
        self.with_deadline(call).await
    }

    /// Reads a blob and its content type. Blobs over [`MAX_BLOB_BYTES`] are refused without
    /// downloading more than the limit.
    pub async fn get_blob(&self, container: &str, name: &str) -> Result<Blob, StorageError> {
        validate_blob_ref(container, name)?;
        self.with_deadline(self.download(container, name)).await
    }

    /// Deletes a blob (`handler doctor` removes its probe blob with it).
    pub async fn delete_blob(&self, container: &str, name: &str) -> Result<(), StorageError> {
        validate_blob_ref(container, name)?;
        let call = async {
            self.blob_client(container, name)
                .delete(None)
                .await
                .map(|_| ())
                .map_err(|e| {
                    StorageError::from_sdk(&e, BlobRef::new(BlobOperation::Write, container, name))
                })
        };
        self.with_deadline(call).await
    }

    async fn with_deadline<T>(
        &self,
        call: impl Future<Output = Result<T, StorageError>>,
    ) -> Result<T, StorageError> {
        tokio::time::timeout(self.inner.operation_timeout, call)
            .await
            .unwrap_or(Err(StorageError::Call(CallError::Timeout)))
    }

    fn blob_client(&self, container: &str, name: &str) -> BlobClient {
        self.inner.service.blob_client(container, name)
    }

    async fn put_creating_container(
        &self,
        container: &str,
        name: &str,
        bytes: Bytes,
        content_type: &str,
    ) -> Result<(), StorageError> {
        let write_error = |e: &azure_core::Error| {
            StorageError::from_sdk(e, BlobRef::new(BlobOperation::Write, container, name))
        };
        match self
            .upload(container, name, bytes.clone(), content_type)
            .await
        {
            Err(e) if StorageError::is_container_not_found(&e) => {
                self.create_container(container)
                    .await
                    .map_err(|e| write_error(&e))?;
                self.upload(container, name, bytes, content_type)
                    .await
                    .map_err(|e| write_error(&e))
            }
            other => other.map_err(|e| write_error(&e)),
        }
    }

    async fn upload(
        &self,
        container: &str,
        name: &str,
        bytes: Bytes,
        content_type: &str,
    ) -> azure_core::Result<()> {
        let options = BlobClientUploadOptions {
            blob_content_type: Some(content_type.to_string()),
            partition_size: NonZero::new(MAX_BLOB_BYTES as u64),
            parallel: NonZero::new(1),
            method_options: request_id::method_options(),
            ..Default::default()
        };
        self.blob_client(container, name)
            .upload(
                <RequestContent<Bytes, NoFormat> as From<Bytes>>::from(bytes),
                Some(options),
            )
            .await
            .map(|_| ())
    }

    async fn create_container(&self, container: &str) -> azure_core::Result<()> {
        let client = self.inner.service.blob_container_client(container);
        let options = BlobContainerClientCreateOptions {
            method_options: request_id::method_options(),
            ..Default::default()
        };
        match client.create(Some(options)).await {
            Ok(_) => Ok(()),
            Err(e) if StorageError::is_container_already_there(&e) => Ok(()),
            Err(e) => Err(e),
        }
    }

    async fn download(&self, container: &str, name: &str) -> Result<Blob, StorageError> {
        let read_error = |e: &azure_core::Error| {
            StorageError::from_sdk(e, BlobRef::new(BlobOperation::Read, container, name))
        };
        let one_past_limit = MAX_BLOB_BYTES + 1;
        let options = BlobClientDownloadOptions {
            range: Some((0..one_past_limit).into()),
            partition_size: NonZero::new(one_past_limit),
            parallel: NonZero::new(1),
            method_options: request_id::method_options(),
            ..Default::default()
        };
        let result = self
            .blob_client(container, name)
            .download(Some(options))
            .await
            .map_err(|e| read_error(&e))?;
        let content_type = result.properties.content_type.clone();
        let bytes = result.body.collect().await.map_err(|e| read_error(&e))?;
        if bytes.len() > MAX_BLOB_BYTES {
            return Err(StorageError::BlobTooLarge {
                limit: MAX_BLOB_BYTES,
            });
        }
        Ok(Blob {
            bytes,
            content_type,
        })
    }
}

/// Checks `STORAGE_BLOB_URL`: https, a host, no user info, query or fragment, and a path that is
/// either empty (`https://<account>.blob.core.windows.net`) or one account segment (Azurite's
/// path-style `/devstoreaccount1`). A trailing slash is dropped.
pub fn validate_storage_url(raw: &str) -> Result<Url, StorageError> {
    let mut url = check_service_url(
        raw,
        "it must not have a query or fragment (no SAS: the managed identity authorizes)",
    )
    .map_err(StorageError::InvalidStorageUrl)?;
    let path = url.path().trim_matches('/').to_string();
    if path.contains('/') {
        return Err(StorageError::InvalidStorageUrl(
            "it must be the account's blob endpoint, not a container or blob URL",
        ));
    }
    url.set_path(&path);
    Ok(url)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clients::names::assert_rejected;

    #[test]
    fn api_version_is_new_enough_for_bearer_tokens() {
        // ISO dates compare correctly as strings.
        assert!(BLOB_API_VERSION >= BEARER_MIN_API_VERSION);
        assert_eq!(
            azure_storage_blob::BlobContainerClientOptions::default().version,
            BLOB_API_VERSION,
            "the SDK default moved: check Azurite accepts the new version before following it"
        );
    }

    #[test]
    fn storage_urls_are_account_endpoints() {
        assert_eq!(
            validate_storage_url("https://acct.blob.core.windows.net/")
                .unwrap()
                .as_str(),
            "https://acct.blob.core.windows.net/"
        );
        assert_eq!(
            validate_storage_url("https://127.0.0.1:10000/devstoreaccount1/")
                .unwrap()
                .as_str(),
            "https://127.0.0.1:10000/devstoreaccount1"
        );
        assert_rejected(
            validate_storage_url,
            &[
                "",
                "acct.blob.core.windows.net",
                "http://acct.blob.core.windows.net",
                "https://u:p@acct.blob.core.windows.net",
                "https://acct.blob.core.windows.net/?sv=2020&sig=x",
                "https://acct.blob.core.windows.net/container/blob",
            ],
        );
    }

    #[test]
    fn forbidden_names_the_role_for_the_operation() {
        let forbidden = |operation| {
            StorageError::Call(CallError::Forbidden {
                target: BlobRef::new(operation, "data", "a.txt"),
                code: "AuthorizationPermissionMismatch".into(),
            })
        };
        let write = forbidden(BlobOperation::Write);
        assert!(write.to_string().contains(BLOB_WRITER_ROLE));
        let read = forbidden(BlobOperation::Read);
        assert!(read.to_string().contains(BLOB_READER_ROLE));
    }
}
