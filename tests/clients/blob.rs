//! Blob client against a socket-free fake Storage account: container creation on first write,
//! content types, API version, error classification and limits.

use bytes::Bytes;
use test_kit::azure::{Action, FakeCredential, FakeService, TOKEN, assert_each_refused};
use test_kit::recorder::{Recorded, Reply};
use test_kit::server::storage_error;

use crate::fake_http;
use handler::clients::{
    CallError,
    blob::{
        BEARER_MIN_API_VERSION, BLOB_API_VERSION, BLOB_READER_ROLE, BLOB_WRITER_ROLE,
        BlobOperation, BlobStore, StorageError,
    },
    names::{InputError, MAX_BLOB_BYTES},
};
use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::Duration,
};

const ACCOUNT: &str = "https://acct.blob.core.windows.net";

#[derive(Default)]
struct Account {
    containers: HashMap<String, HashMap<String, (Vec<u8>, String)>>,
}

/// A fake account in memory: create container, Put Blob, Get Blob (with x-ms-range), and a few
/// container names that trigger the service's error answers.
fn storage_script(account: Arc<Mutex<Account>>) -> impl Fn(&Recorded) -> Action + Send + Sync {
    move |request| {
        if request.header("authorization") != Some(&format!("Bearer {TOKEN}")) {
            return Action::Reply(storage_error(403, "AuthorizationFailure"));
        }
        let segments = request.path_segments();
        let container = segments.first().cloned().unwrap_or_default();
        match container.as_str() {
            "forbidden" => {
                return Action::Reply(storage_error(403, "AuthorizationPermissionMismatch"));
            }
            "throttled" => {
                return Action::Reply(
                    storage_error(429, "TooManyRequests").header("retry-after", "5"),
                );
            }
            "busy" => {
                return Action::Reply(storage_error(503, "ServerBusy").header("retry-after", "2"));
            }
            _ => {}
        }
        let mut account = account.lock().unwrap();
        let reply = match (request.method.as_str(), segments.get(1)) {
            ("PUT", None) if request.query_param("restype").as_deref() == Some("container") => {
                create_container(&mut account, &container)
            }
            ("PUT", Some(blob)) => put_blob(&mut account, &container, blob, request),
            ("GET", Some(blob)) => get_blob(&account, &container, blob, request),
            _ => storage_error(400, "UnsupportedHttpVerb"),
        };
        Action::Reply(reply)
    }
}

fn create_container(account: &mut Account, container: &str) -> Reply {
    if account.containers.contains_key(container) {
        return storage_error(409, "ContainerAlreadyExists");
    }
    account
        .containers
        .insert(container.to_string(), HashMap::new());
    Reply::new(201)
}

fn put_blob(account: &mut Account, container: &str, blob: &str, request: &Recorded) -> Reply {
    let Some(blobs) = account.containers.get_mut(container) else {
        return storage_error(404, "ContainerNotFound");
    };
    if request.header("x-ms-blob-type") != Some("BlockBlob") {
        return storage_error(400, "MissingRequiredHeader");
    }
    let content_type = request
        .header("x-ms-blob-content-type")
        .unwrap_or("application/octet-stream")
        .to_string();
    blobs.insert(blob.to_string(), (request.body.clone(), content_type));
    Reply::new(201).header("etag", "\"0x1\"")
}

fn get_blob(account: &Account, container: &str, blob: &str, request: &Recorded) -> Reply {
    let Some(blobs) = account.containers.get(container) else {
        return storage_error(404, "ContainerNotFound");
    };
    let Some((bytes, content_type)) = blobs.get(blob) else {
        return storage_error(404, "BlobNotFound");
    };
    let ok = |status: u16, body: &[u8]| {
        Reply::new(status)
            .header("content-type", content_type)
            .header("content-length", &body.len().to_string())
            .header("etag", "\"0x1\"")
            .header("x-ms-blob-type", "BlockBlob")
            .body(body.to_vec())
    };
    let Some(range) = request.header("x-ms-range").or(request.header("range")) else {
        return ok(200, bytes);
    };
    let (start, end) = parse_range(range);
    if start >= bytes.len() {
        return storage_error(416, "InvalidRange");
    }
    let end = end.min(bytes.len() - 1);
    ok(206, &bytes[start..=end]).header(
        "content-range",
        &format!("bytes {start}-{end}/{}", bytes.len()),
    )
}

fn parse_range(range: &str) -> (usize, usize) {
    let spec = range.trim_start_matches("bytes=");
    let (start, end) = spec.split_once('-').unwrap();
    (start.parse().unwrap(), end.parse().unwrap_or(usize::MAX))
}

struct Fixture {
    fake: FakeService,
    credential: Arc<FakeCredential>,
    store: BlobStore,
}

impl Fixture {
    /// Writes a blob that must be written: the step before what the test is about.
    async fn put(&self, container: &str, name: &str, body: Bytes, content_type: &str) {
        self.store
            .put_block_blob(container, name, body, content_type)
            .await
            .unwrap_or_else(|e| panic!("writing {container}/{name}: {e}"));
    }
}

fn fixture() -> Fixture {
    let fake = FakeService::new(storage_script(Arc::default()));
    let credential = FakeCredential::new();
    let store = BlobStore::new(ACCOUNT, credential.clone(), &fake_http(&fake)).unwrap();
    Fixture {
        fake,
        credential,
        store,
    }
}

#[tokio::test]
async fn first_write_creates_the_missing_container_then_writes_in_one_request() {
    let f = fixture();
    f.put("data", "a.txt", Bytes::from_static(b"hello"), "text/plain")
        .await;
    let calls: Vec<(String, Vec<String>)> = f
        .fake
        .requests()
        .iter()
        .map(|r| (r.method.clone(), r.path_segments()))
        .collect();
    assert_eq!(
        calls,
        [
            (
                "PUT".to_string(),
                vec!["data".to_string(), "a.txt".to_string()]
            ),
            ("PUT".to_string(), vec!["data".to_string()]),
            (
                "PUT".to_string(),
                vec!["data".to_string(), "a.txt".to_string()]
            ),
        ]
    );
    f.fake.clear();
    f.put("data", "b.txt", Bytes::from_static(b"again"), "text/plain")
        .await;
    assert_eq!(
        f.fake.count(),
        1,
        "an existing container costs nothing extra"
    );
}

#[tokio::test]
async fn concurrent_first_writes_to_a_missing_container_all_succeed() {
    let f = fixture();
    let writes = (0..10).map(|i| {
        let store = f.store.clone();
        async move {
            store
                .put_block_blob(
                    "fresh",
                    &format!("blob-{i}"),
                    Bytes::from(vec![i as u8]),
                    "application/octet-stream",
                )
                .await
        }
    });
    for result in futures::future::join_all(writes).await {
        result.unwrap();
    }
    for i in 0..10u8 {
        let blob = f
            .store
            .get_blob("fresh", &format!("blob-{i}"))
            .await
            .unwrap();
        assert_eq!(blob.bytes.as_ref(), [i]);
    }
}

#[tokio::test]
async fn text_and_binary_round_trip_with_their_content_types() {
    let f = fixture();
    let binary: Vec<u8> = (0..=255u8).cycle().take(70_000).collect();
    f.put(
        "data",
        "notes/hello.txt",
        Bytes::from("héllo wörld"),
        "text/plain; charset=utf-8",
    )
    .await;
    f.put(
        "data",
        "bin/blob.bin",
        Bytes::from(binary.clone()),
        "application/octet-stream",
    )
    .await;

    let text = f.store.get_blob("data", "notes/hello.txt").await.unwrap();
    assert_eq!(text.bytes.as_ref(), "héllo wörld".as_bytes());
    assert_eq!(
        text.content_type.as_deref(),
        Some("text/plain; charset=utf-8")
    );
    let bin = f.store.get_blob("data", "bin/blob.bin").await.unwrap();
    assert_eq!(bin.bytes.as_ref(), binary.as_slice());
    assert_eq!(
        bin.content_type.as_deref(),
        Some("application/octet-stream")
    );
}

#[tokio::test]
async fn empty_blob_round_trips() {
    let f = fixture();
    f.put("data", "empty", Bytes::new(), "text/plain").await;
    let blob = f.store.get_blob("data", "empty").await.unwrap();
    assert!(blob.bytes.is_empty());
}

#[tokio::test]
async fn every_request_sends_a_bearer_token_and_a_new_enough_api_version() {
    let f = fixture();
    f.put("data", "a", Bytes::from_static(b"x"), "text/plain")
        .await;
    f.store.get_blob("data", "a").await.unwrap();
    let requests = f.fake.requests();
    assert!(requests.len() >= 4);
    for request in requests {
        let version = request.header("x-ms-version").unwrap();
        assert_eq!(version, BLOB_API_VERSION);
        assert!(version >= BEARER_MIN_API_VERSION, "{version}");
        assert_eq!(
            request.header("authorization"),
            Some(format!("Bearer {TOKEN}").as_str())
        );
        assert_eq!(request.url().scheme(), "https");
    }
    assert!(
        f.credential
            .scopes()
            .iter()
            .all(|s| s == "https://storage.azure.com/.default")
    );
    assert_eq!(f.credential.calls(), 1, "one pipeline, one token cache");
}

#[tokio::test]
async fn azurite_style_account_path_is_kept() {
    let fake = FakeService::new(storage_script(Arc::default()));
    let store = BlobStore::new(
        "https://127.0.0.1:10000/devstoreaccount1/",
        FakeCredential::new(),
        &fake_http(&fake),
    )
    .unwrap();
    // The fake treats the first segment as the container, so expect a 404 from the account path.
    let _ = store.get_blob("data", "a").await;
    let request = fake.requests().pop().unwrap();
    assert_eq!(request.path_segments(), ["devstoreaccount1", "data", "a"]);
}

#[tokio::test]
async fn missing_blob_and_container_are_not_found() {
    let f = fixture();
    let err = f.store.get_blob("nothing", "a.txt").await.unwrap_err();
    assert!(
        matches!(&err, StorageError::Call(CallError::NotFound { .. }))
            && err.to_string() == "container 'nothing' was not found",
        "{err:?}"
    );
    f.put("data", "a.txt", Bytes::from_static(b"x"), "text/plain")
        .await;
    let err = f.store.get_blob("data", "b.txt").await.unwrap_err();
    assert!(
        matches!(&err, StorageError::Call(CallError::NotFound { .. }))
            && err.to_string() == "blob 'b.txt' in container 'data' was not found",
        "{err:?}"
    );
}

#[tokio::test]
async fn forbidden_names_the_role_for_reads_and_writes() {
    let f = fixture();
    let err = f
        .store
        .put_block_blob("forbidden", "a", Bytes::from_static(b"x"), "text/plain")
        .await
        .unwrap_err();
    assert!(
        matches!(&err, StorageError::Call(CallError::Forbidden { target, code }) if target.operation == BlobOperation::Write && code == "AuthorizationPermissionMismatch")
    );
    assert!(err.to_string().contains(BLOB_WRITER_ROLE));
    let err = f.store.get_blob("forbidden", "a").await.unwrap_err();
    assert!(matches!(
        &err,
        StorageError::Call(CallError::Forbidden { target, .. }) if target.operation == BlobOperation::Read
    ));
    assert!(err.to_string().contains(BLOB_READER_ROLE));
}

#[tokio::test]
async fn throttling_carries_retry_after() {
    let f = fixture();
    let err = f.store.get_blob("throttled", "a").await.unwrap_err();
    assert!(
        matches!(err, StorageError::Call(CallError::Throttled { retry_after: Some(d) }) if d == Duration::from_secs(5))
    );
    assert_eq!(f.fake.count(), 1, "429 is not retried");
    let err = f.store.get_blob("busy", "a").await.unwrap_err();
    assert!(
        matches!(err, StorageError::Call(CallError::Throttled { retry_after: Some(d) }) if d == Duration::from_secs(2))
    );
}

#[tokio::test]
async fn invalid_input_sends_nothing() {
    let f = fixture();
    let too_big = Bytes::from(vec![0u8; MAX_BLOB_BYTES + 1]);
    let err = f
        .store
        .put_block_blob("data", "big", too_big, "application/octet-stream")
        .await
        .unwrap_err();
    assert!(matches!(
        err,
        StorageError::InvalidInput(InputError::BodyTooLarge { .. })
    ));
    for (container, blob, content_type) in [
        ("Data", "a", "text/plain"),
        ("data", "a/../b", "text/plain"),
        ("data", "a.", "text/plain"),
        ("data", "a", "text/plain\r\nx-ms-evil: 1"),
    ] {
        let err = f
            .store
            .put_block_blob(container, blob, Bytes::from_static(b"x"), content_type)
            .await
            .unwrap_err();
        assert!(
            matches!(err, StorageError::InvalidInput(_)),
            "{container} {blob:?}"
        );
    }
    assert!(f.store.get_blob("ab", "a").await.is_err());
    assert_eq!(f.fake.count(), 0);
}

#[test]
fn storage_url_is_validated_at_construction() {
    let fake = FakeService::new(|_| Action::Reply(Reply::new(500)));
    let new = |url: &str| BlobStore::new(url, FakeCredential::new(), &fake_http(&fake));
    let invalid = |err: &StorageError| matches!(err, StorageError::InvalidStorageUrl(_));
    let bad = [
        "http://acct.blob.core.windows.net",
        "https://acct.blob.core.windows.net/c/b",
        "https://acct.blob.core.windows.net/?sig=abc",
    ];
    assert_each_refused(&bad, new, invalid);
}

#[tokio::test]
async fn oversized_blob_is_refused_after_reading_at_most_the_limit() {
    let total = MAX_BLOB_BYTES + 10;
    let fake = FakeService::new(move |request| {
        let range = request.header("x-ms-range").or(request.header("range"));
        let (start, end) = parse_range(range.unwrap_or("bytes=0-"));
        let end = end.min(total - 1);
        Action::Reply(
            Reply::new(206)
                .header("content-type", "application/octet-stream")
                .header("content-range", &format!("bytes {start}-{end}/{total}"))
                .body(vec![7u8; end + 1 - start]),
        )
    });
    let store = BlobStore::new(ACCOUNT, FakeCredential::new(), &fake_http(&fake)).unwrap();
    let err = store.get_blob("data", "huge").await.unwrap_err();
    assert!(matches!(err, StorageError::BlobTooLarge { limit } if limit == MAX_BLOB_BYTES));
    let requests = fake.requests();
    assert_eq!(requests.len(), 1);
    assert_eq!(
        requests[0].header("range"),
        Some(format!("bytes=0-{MAX_BLOB_BYTES}").as_str())
    );
}
