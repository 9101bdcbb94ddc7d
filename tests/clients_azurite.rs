//! The blob store against a real Azurite 3.37.0 over HTTPS with `--oauth basic`.
//!
//! Ignored by default: it needs Node and `npm install azurite@3.37.0`. Run it through
//! `scripts/test`, or by hand with `AZURITE_BLOB_BIN=/path/to/node_modules/.bin/azurite-blob
//! cargo test -p handler --test clients_azurite -- --ignored`. Without AZURITE_BLOB_BIN it looks in
//! `<workspace>/node_modules/.bin/azurite-blob`. A single test, because it sets SSL_CERT_FILE.

use async_trait::async_trait;
use azure_core::{
    credentials::{AccessToken, TokenCredential, TokenRequestOptions},
    time::{Duration as SdkDuration, OffsetDateTime},
};
use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use bytes::Bytes;
use handler::clients::{
    CallError,
    blob::{BlobOperation, BlobStore, StorageError},
    http::{AzureHttp, HttpSettings},
};
use serde_json::json;
use std::{
    sync::Arc,
    time::{Duration, Instant},
};
use test_kit::pki::TestPki;
use test_kit::stack::Azurite;

const TENANT: &str = "72f988bf-86f1-41af-91ab-2d7cd011db47";

/// Mints unsigned v1 tokens the way Azurite checks them (it never verifies signatures).
#[derive(Debug)]
struct UnsignedJwtCredential {
    audience: &'static str,
}

#[async_trait]
impl TokenCredential for UnsignedJwtCredential {
    async fn get_token(
        &self,
        _scopes: &[&str],
        _options: Option<TokenRequestOptions<'_>>,
    ) -> azure_core::Result<AccessToken> {
        let now = OffsetDateTime::now_utc().unix_timestamp();
        let header = json!({"alg": "none", "typ": "JWT"});
        let claims = json!({
            "aud": self.audience,
            "iss": format!("https://sts.windows.net/{TENANT}/"),
            "iat": now - 60,
            "nbf": now - 60,
            "exp": now + 3600,
            "oid": "00000000-0000-0000-0000-000000000001",
            "tid": TENANT,
        });
        let token = format!(
            "{}.{}.",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(claims.to_string())
        );
        Ok(AccessToken::new(
            token,
            OffsetDateTime::now_utc() + SdkDuration::hours(1),
        ))
    }
}

async fn wait_until_listening(url: &str) {
    let probe = reqwest::Client::builder().build().unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while probe.get(url).send().await.is_err() {
        assert!(Instant::now() < deadline, "Azurite did not start");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[test]
#[ignore = "needs Azurite: run scripts/test"]
fn blob_round_trips_against_azurite() {
    let pki = TestPki::generate();
    // SAFETY: the only test in this binary, before any runtime or client thread exists.
    unsafe { std::env::set_var("SSL_CERT_FILE", &pki.ca_path) };
    let azurite = Azurite::start(pki.dir());
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(exercise(format!(
        "https://127.0.0.1:{}/devstoreaccount1",
        azurite.port
    )));
}

async fn exercise(account_url: String) {
    wait_until_listening(&account_url).await;
    let http = AzureHttp::new(HttpSettings::default()).unwrap();
    let storage: Arc<dyn TokenCredential> = Arc::new(UnsignedJwtCredential {
        audience: "https://storage.azure.com",
    });
    let store = BlobStore::new(&account_url, storage, &http).unwrap();

    let text = "héllo from the handler";
    store
        .put_block_blob(
            "texts",
            "dir/hello.txt",
            Bytes::from(text),
            "text/plain; charset=utf-8",
        )
        .await
        .unwrap();
    let read = store.get_blob("texts", "dir/hello.txt").await.unwrap();
    assert_eq!(read.bytes.as_ref(), text.as_bytes());
    assert_eq!(
        read.content_type.as_deref(),
        Some("text/plain; charset=utf-8")
    );

    let binary: Vec<u8> = (0..=255u8).cycle().take(5 * 1024 * 1024 + 3).collect();
    store
        .put_block_blob(
            "bins",
            "blob.bin",
            Bytes::from(binary.clone()),
            "application/octet-stream",
        )
        .await
        .unwrap();
    let read = store.get_blob("bins", "blob.bin").await.unwrap();
    assert_eq!(read.bytes.len(), binary.len());
    assert!(read.bytes.as_ref() == binary.as_slice());
    assert_eq!(
        read.content_type.as_deref(),
        Some("application/octet-stream")
    );

    store
        .put_block_blob("bins", "empty", Bytes::new(), "application/octet-stream")
        .await
        .unwrap();
    assert!(
        store
            .get_blob("bins", "empty")
            .await
            .unwrap()
            .bytes
            .is_empty()
    );

    let err = store.get_blob("texts", "missing.txt").await.unwrap_err();
    assert!(
        matches!(&err, StorageError::Call(CallError::NotFound { target, .. }) if target.blob == "missing.txt")
            && err.to_string().contains("missing.txt"),
        "{err:?}"
    );
    let err = store.get_blob("nocontainer", "x").await.unwrap_err();
    assert!(
        matches!(&err, StorageError::Call(CallError::NotFound { .. }))
            && err.to_string() == "container 'nocontainer' was not found",
        "{err:?}"
    );

    let vault_token: Arc<dyn TokenCredential> = Arc::new(UnsignedJwtCredential {
        audience: "https://vault.azure.net",
    });
    let wrong_audience = BlobStore::new(&account_url, vault_token, &http).unwrap();
    let err = wrong_audience
        .put_block_blob("texts", "x", Bytes::from_static(b"x"), "text/plain")
        .await
        .unwrap_err();
    assert!(
        matches!(&err, StorageError::Call(CallError::Forbidden { target, code }) if target.operation == BlobOperation::Write && code == "AuthenticationFailed"),
        "{err:?}"
    );
}
