//! Behaviour tests of the whole module: the wire format per source (against a fake endpoint on
//! 127.0.0.1), and cache, single-flight and retry decisions (scripted transport, paused clock).

use std::sync::Arc;
use std::time::Duration as StdDuration;

use time::macros::datetime;
use time::{Duration, OffsetDateTime};

use super::clock::Clock;
use super::testing::*;
use super::transport::{HttpResponse, TransportError};
use super::*;

const T0: OffsetDateTime = datetime!(2030-01-01 00:00 UTC);
const VAULT: &str = "https://vault.azure.net";
const VAULT_SCOPE: &str = "https://vault.azure.net/.default";
const APP: &[(&str, &str)] = &[
    (IDENTITY_ENDPOINT, "http://127.0.0.1:9/msi/token"),
    (IDENTITY_HEADER, "hdr-secret"),
];
const IMDS: &[(&str, &str)] = &[(AZURE_POD_IDENTITY_AUTHORITY_HOST, "http://127.0.0.1:9")];

fn later(seconds: i64) -> i64 {
    (OffsetDateTime::now_utc() + Duration::seconds(seconds)).unix_timestamp()
}

fn body_at(token: &str, expires_on: OffsetDateTime) -> String {
    token_body(token, expires_on.unix_timestamp())
}

/// A credential on the scripted transport and a clock anchored at T0 (call inside a paused test).
fn scripted(vars: &[(&str, &str)], transport: Arc<ScriptedTransport>) -> ManagedIdentity {
    ManagedIdentity::with_parts(config_from(vars), transport, Clock::anchored(T0))
}

fn ok_day(token: &str) -> Result<HttpResponse, TransportError> {
    response(200, &body_at(token, T0 + Duration::hours(24)))
}

/// The Key Vault token `mi` hands out now (cached or fetched).
async fn vault_token(mi: &ManagedIdentity) -> String {
    let token = mi.get_token(VAULT, None).await.unwrap();
    token.access_token.expose().to_owned()
}

fn client(id: &str) -> UserAssignedId {
    UserAssignedId::ClientId(id.into())
}

// ---------------------------------------------------------------- wire format per source

#[tokio::test]
async fn app_service_2019_requests_match_the_sdks() {
    let fake = scripted_endpoint(vec![json_reply(200, token_body("tok", later(86400)))]).await;
    let endpoint = format!("{}/msi/token", fake.base);
    let mi = ManagedIdentity::new(config_from(&[
        (IDENTITY_ENDPOINT, &endpoint),
        (IDENTITY_HEADER, "hdr-secret"),
    ]))
    .unwrap();
    assert_eq!(mi.source(), SourceKind::AppService2019);
    let resource_id = "/subscriptions/s/resourceGroups/g/providers/Microsoft.ManagedIdentity/userAssignedIdentities/u";
    mi.get_token(VAULT_SCOPE, None).await.unwrap();
    mi.get_token(VAULT, Some(&client("c-1"))).await.unwrap();
    mi.get_token(VAULT, Some(&UserAssignedId::ObjectId("o-1".into())))
        .await
        .unwrap();
    mi.get_token(VAULT, Some(&UserAssignedId::ResourceId(resource_id.into())))
        .await
        .unwrap();
    let requests = fake.requests();
    let queries: Vec<&str> = requests.iter().map(|r| r.query().unwrap_or("")).collect();
    let base = "api-version=2019-08-01&resource=https%3A%2F%2Fvault.azure.net";
    assert_eq!(
        queries,
        vec![
            base.to_owned(),
            format!("{base}&client_id=c-1"),
            format!("{base}&principal_id=o-1"),
            format!(
                "{base}&mi_res_id=%2Fsubscriptions%2Fs%2FresourceGroups%2Fg%2Fproviders%2FMicrosoft.ManagedIdentity%2FuserAssignedIdentities%2Fu"
            ),
        ]
    );
    for request in &requests {
        assert_eq!(request.method, "GET");
        assert_eq!(request.path(), "/msi/token");
        assert_eq!(request.header("x-identity-header"), Some("hdr-secret"));
        assert_eq!(request.header("metadata"), Some("true"));
        assert_eq!(request.header("secret"), None);
    }
}

#[tokio::test]
async fn legacy_2017_uses_clientid_and_secret_header() {
    let fake = scripted_endpoint(vec![json_reply(200, token_body("tok", later(86400)))]).await;
    let endpoint = format!("{}/MSI/token/", fake.base);
    let mi = ManagedIdentity::new(config_from(&[
        (MSI_ENDPOINT, &endpoint),
        (MSI_SECRET, "msi-secret"),
        (AZURE_CLIENT_ID, "c-2"),
    ]))
    .unwrap();
    assert_eq!(mi.source(), SourceKind::AppService2017);
    let token = mi.get_token(VAULT_SCOPE, None).await.unwrap();
    assert_eq!(token.source, SourceKind::AppService2017);
    let err = mi
        .get_token(VAULT, Some(&UserAssignedId::ObjectId("o".into())))
        .await
        .unwrap_err();
    assert!(
        matches!(err, IdentityError::UnsupportedIdentity { .. }),
        "{err}"
    );
    let requests = fake.requests();
    assert_eq!(requests.len(), 1);
    assert_eq!(requests[0].path(), "/MSI/token/");
    assert_eq!(
        requests[0].query(),
        Some("api-version=2017-09-01&resource=https%3A%2F%2Fvault.azure.net&clientid=c-2")
    );
    assert_eq!(requests[0].header("secret"), Some("msi-secret"));
    assert_eq!(requests[0].header("x-identity-header"), None);
}

#[tokio::test]
async fn imds_uses_pod_identity_host_and_its_parameter_names() {
    let fake = scripted_endpoint(vec![json_reply(200, token_body("tok", later(86400)))]).await;
    let mi = ManagedIdentity::new(config_from(&[(
        AZURE_POD_IDENTITY_AUTHORITY_HOST,
        &fake.base,
    )]))
    .unwrap();
    assert_eq!(mi.source(), SourceKind::Imds);
    mi.get_token("api://app-1/.default", None).await.unwrap();
    mi.get_token("api://app-1", Some(&client("c")))
        .await
        .unwrap();
    mi.get_token("api://app-1", Some(&UserAssignedId::ObjectId("o".into())))
        .await
        .unwrap();
    mi.get_token(
        "api://app-1",
        Some(&UserAssignedId::ResourceId("/r".into())),
    )
    .await
    .unwrap();
    let requests = fake.requests();
    let base = "api-version=2018-02-01&resource=api%3A%2F%2Fapp-1";
    let queries: Vec<String> = requests
        .iter()
        .map(|r| r.query().unwrap_or("").to_owned())
        .collect();
    assert_eq!(
        queries,
        vec![
            base.to_owned(),
            format!("{base}&client_id=c"),
            format!("{base}&object_id=o"),
            format!("{base}&msi_res_id=%2Fr"),
        ]
    );
    for request in &requests {
        assert_eq!(request.path(), "/metadata/identity/oauth2/token");
        assert_eq!(request.header("metadata"), Some("true"));
        assert_eq!(request.header("x-identity-header"), None);
        assert_eq!(request.header("secret"), None);
    }
}

#[tokio::test]
async fn redirects_are_not_followed_and_the_secret_stays_home() {
    let target = scripted_endpoint(vec![json_reply(200, token_body("stolen", later(86400)))]).await;
    let location = format!("{}/steal", target.base);
    let origin = scripted_endpoint(vec![json_reply(307, "").header("Location", &location)]).await;
    let endpoint = format!("{}/msi/token", origin.base);
    let mi = ManagedIdentity::new(config_from(&[
        (IDENTITY_ENDPOINT, &endpoint),
        (IDENTITY_HEADER, "hdr-secret"),
    ]))
    .unwrap();
    let err = mi.get_token(VAULT, None).await.unwrap_err();
    assert!(
        matches!(err, IdentityError::Rejected { status: 307, .. }),
        "{err}"
    );
    assert!(
        err.to_string().contains("redirects are never followed"),
        "{err}"
    );
    assert_eq!(origin.requests().len(), 1);
    assert!(target.requests().is_empty());
}

#[tokio::test]
async fn unsupported_api_version_falls_back_to_2017_once_and_remembers() {
    let modern = scripted_endpoint(vec![json_reply(400,
        r#"{"statusCode":400,"message":"UnsupportedApiVersion: The HTTP resource does not support the API version '2019-08-01'."}"#,
    )])
    .await;
    let legacy = scripted_endpoint(vec![json_reply(200, token_body("tok", later(86400)))]).await;
    let (modern_url, legacy_url) = (
        format!("{}/msi/token", modern.base),
        format!("{}/MSI/token/", legacy.base),
    );
    let mi = ManagedIdentity::new(config_from(&[
        (IDENTITY_ENDPOINT, &modern_url),
        (IDENTITY_HEADER, "hdr-secret"),
        (MSI_ENDPOINT, &legacy_url),
        (MSI_SECRET, "msi-secret"),
    ]))
    .unwrap();
    let token = mi.get_token(VAULT, None).await.unwrap();
    assert_eq!(token.source, SourceKind::AppService2017);
    mi.get_token("https://storage.azure.com", None)
        .await
        .unwrap();
    assert_eq!(modern.requests().len(), 1);
    assert_eq!(legacy.requests().len(), 2);
    assert_eq!(legacy.requests()[1].header("secret"), Some("msi-secret"));
    assert_eq!(mi.source(), SourceKind::AppService2017);
}

#[tokio::test]
async fn app_service_400_names_source_identity_and_setting() {
    let fake = scripted_endpoint(vec![json_reply(400,
        r#"{"statusCode":400,"message":"Unable to load the proper Managed Identity.","correlationId":"corr-1"}"#,
    )])
    .await;
    let endpoint = format!("{}/msi/token", fake.base);
    let mi = ManagedIdentity::new(config_from(&[
        (IDENTITY_ENDPOINT, &endpoint),
        (IDENTITY_HEADER, "hdr-secret"),
        (AZURE_CLIENT_ID, "cid-9"),
    ]))
    .unwrap();
    let err = mi.get_token(VAULT, None).await.unwrap_err();
    assert!(matches!(err, IdentityError::IdentityNotFound { .. }));
    let text = err.to_string();
    for expected in [
        "App Service 2019-08-01 (IDENTITY_ENDPOINT)",
        "Unable to load the proper Managed Identity.",
        "correlationId corr-1",
        "client id cid-9",
        "check AZURE_CLIENT_ID",
    ] {
        assert!(text.contains(expected), "{expected} missing from {text}");
    }
    assert!(!text.contains("hdr-secret"));
    assert_eq!(fake.requests().len(), 1);
}

// ---------------------------------------------------------------- scopes and parsing

#[test]
fn scope_normalisation() {
    assert_eq!(normalize_scope(VAULT_SCOPE).unwrap(), VAULT);
    assert_eq!(normalize_scope(VAULT).unwrap(), VAULT);
    assert_eq!(
        normalize_scope("api://app-1/.default").unwrap(),
        "api://app-1"
    );
    assert_eq!(
        normalize_scope("https://management.azure.com//.default").unwrap(),
        "https://management.azure.com/"
    );
    for bad in [
        "",
        "a b",
        "/.default",
        "--resource",
        "x\ny",
        "https://x&calc",
    ] {
        assert!(normalize_scope(bad).is_err(), "{bad:?}");
    }
}

#[tokio::test(start_paused = true)]
async fn default_scope_and_bare_resource_share_an_entry() {
    let transport = ScriptedTransport::sequence(vec![ok_day("tok")]);
    let mi = scripted(APP, transport.clone());
    mi.get_token(VAULT_SCOPE, None).await.unwrap();
    mi.get_token(VAULT, None).await.unwrap();
    assert_eq!(transport.count(), 1);
    mi.get_token(VAULT, Some(&client("other"))).await.unwrap();
    assert_eq!(transport.count(), 2);
}

#[tokio::test(start_paused = true)]
async fn expires_in_counts_from_the_request_and_the_earlier_expiry_wins() {
    let body = format!(
        r#"{{"access_token":"tok","expires_on":"{}","expires_in":"3600","token_type":"Bearer"}}"#,
        (T0 + Duration::hours(24)).unix_timestamp()
    );
    let transport = ScriptedTransport::sequence(vec![response(200, &body)]);
    let token = scripted(IMDS, transport)
        .get_token(VAULT, None)
        .await
        .unwrap();
    assert_eq!(token.expires_on, T0 + Duration::hours(1));
    assert_eq!(token.refresh_on, T0 + Duration::minutes(55));
    assert_eq!(&*token.resource, VAULT);
    assert_eq!(&*token.token_type, "Bearer");
}

#[tokio::test(start_paused = true)]
async fn legacy_date_forms_and_numbers_parse_end_to_end() {
    for expires_on in [
        r#""1/1/2030 1:00:00 PM +00:00""#.to_owned(),
        r#""01/01/2030 13:00:00 +00:00""#.to_owned(),
        (T0 + Duration::hours(13)).unix_timestamp().to_string(),
    ] {
        let body = format!(r#"{{"access_token":"tok","expires_on":{expires_on}}}"#);
        let transport = ScriptedTransport::sequence(vec![response(200, &body)]);
        let vars = [(MSI_ENDPOINT, "http://127.0.0.1:9/"), (MSI_SECRET, "s")];
        let token = scripted(&vars, transport)
            .get_token(VAULT, None)
            .await
            .unwrap();
        assert_eq!(token.expires_on, T0 + Duration::hours(13), "{expires_on}");
        assert_eq!(
            token.refresh_on,
            T0 + Duration::minutes(390),
            "{expires_on}"
        );
    }
}

#[tokio::test(start_paused = true)]
async fn refresh_in_is_honoured() {
    let body = format!(
        r#"{{"access_token":"tok","expires_on":{},"refresh_in":600}}"#,
        (T0 + Duration::hours(24)).unix_timestamp()
    );
    let transport = ScriptedTransport::sequence(vec![response(200, &body)]);
    let token = scripted(APP, transport)
        .get_token(VAULT, None)
        .await
        .unwrap();
    assert_eq!(token.refresh_on, T0 + Duration::minutes(10));
}

#[tokio::test(start_paused = true)]
async fn bad_bodies_are_malformed_and_never_quote_the_token() {
    for body in [
        r#"{"access_token":"SECRET-TOKEN","token_type":"Bearer"}"#.to_owned(),
        r#"<html>access_token=eyJSECRET.TOKEN</html>"#.to_owned(),
        r#"{"access_token":"SECRET-TOKEN","expires_on":"tomorrow"}"#.to_owned(),
        r#"{"expires_on":"1"}"#.to_owned(),
        r#"{"access_token":"SECRET-TOKEN","expires_on":"1000"}"#.to_owned(),
    ] {
        let transport = ScriptedTransport::sequence(vec![response(200, &body)]);
        let err = scripted(APP, transport)
            .get_token(VAULT, None)
            .await
            .unwrap_err();
        assert!(
            matches!(err, IdentityError::Malformed { .. }),
            "{body}: {err}"
        );
        assert!(!err.to_string().contains("SECRET"), "{err}");
    }
}

// ---------------------------------------------------------------- cache decisions

#[tokio::test(start_paused = true)]
async fn fresh_tokens_come_from_the_cache_and_long_lived_refresh_at_half_life() {
    let transport = ScriptedTransport::new(|_, n| ok_day(&format!("tok{n}")));
    let mi = scripted(APP, transport.clone());
    let first = mi.get_token(VAULT, None).await.unwrap();
    assert_eq!(first.refresh_on, T0 + Duration::hours(12));
    tokio::time::advance(StdDuration::from_secs(12 * 3600 - 1)).await;
    let again = mi.get_token(VAULT, None).await.unwrap();
    assert_eq!(again.access_token.expose(), "tok0");
    settle().await;
    assert_eq!(transport.count(), 1);
    tokio::time::advance(StdDuration::from_secs(2)).await;
    // Past refresh_on: the cached token is served at once and refreshed in the background.
    let during = mi.get_token(VAULT, None).await.unwrap();
    assert_eq!(during.access_token.expose(), "tok0");
    settle().await;
    assert_eq!(transport.count(), 2);
    let refreshed = mi.get_token(VAULT, None).await.unwrap();
    assert_eq!(refreshed.access_token.expose(), "tok1");
    // Issued at 12 h + 1 s, expiring at 24 h: half-life from the refresh.
    assert_eq!(
        refreshed.refresh_on,
        T0 + Duration::hours(18) + Duration::milliseconds(500)
    );
    assert_eq!(transport.count(), 2);
}

#[tokio::test(start_paused = true)]
async fn short_tokens_are_refetched_inside_the_five_minute_margin() {
    let transport = ScriptedTransport::new(|_, n| {
        response(
            200,
            &body_at(&format!("tok{n}"), T0 + Duration::hours(1) * (n as i32 + 1)),
        )
    });
    let mi = scripted(APP, transport.clone());
    mi.get_token(VAULT, None).await.unwrap();
    tokio::time::advance(StdDuration::from_secs(54 * 60)).await;
    assert_eq!(vault_token(&mi).await, "tok0");
    tokio::time::advance(StdDuration::from_secs(60)).await;
    assert_eq!(vault_token(&mi).await, "tok1");
    assert_eq!(transport.count(), 2);
}

#[tokio::test(start_paused = true)]
async fn refresh_ahead_never_blocks_readers_and_runs_once() {
    let (transport, gate) = ScriptedTransport::gated(|_, n| ok_day(&format!("tok{n}")));
    let mi = scripted(APP, transport.clone());
    gate.add_permits(1);
    mi.get_token(VAULT, None).await.unwrap();
    tokio::time::advance(StdDuration::from_secs(12 * 3600 + 1)).await;
    // The refresh is held at the gate; callers keep getting the cached token without waiting.
    for _ in 0..5 {
        let reader = mi.get_token(VAULT, None).await.unwrap();
        assert_eq!(reader.access_token.expose(), "tok0");
        settle().await;
    }
    assert_eq!(transport.count(), 2, "exactly one refresh in flight");
    gate.add_permits(1);
    settle().await;
    assert_eq!(vault_token(&mi).await, "tok1");
    assert_eq!(transport.count(), 2);
}

#[tokio::test(start_paused = true)]
async fn failed_refresh_serves_the_cached_token_and_backs_off() {
    let transport = ScriptedTransport::new(|_, n| {
        if n == 0 {
            ok_day("tok0")
        } else {
            response(400, r#"{"message":"nope"}"#)
        }
    });
    let mi = scripted(APP, transport.clone());
    mi.get_token(VAULT, None).await.unwrap();
    tokio::time::advance(StdDuration::from_secs(12 * 3600 + 1)).await;
    assert_eq!(vault_token(&mi).await, "tok0");
    settle().await;
    assert_eq!(transport.count(), 2);
    tokio::time::advance(StdDuration::from_secs(29)).await;
    assert_eq!(vault_token(&mi).await, "tok0");
    settle().await;
    assert_eq!(transport.count(), 2, "retried inside the back-off");
    tokio::time::advance(StdDuration::from_secs(2)).await;
    assert_eq!(vault_token(&mi).await, "tok0");
    settle().await;
    assert_eq!(transport.count(), 3);
    // Inside the 5-minute margin the old token is never handed out.
    tokio::time::advance(StdDuration::from_secs(12 * 3600 - 200)).await;
    assert!(mi.get_token(VAULT, None).await.is_err());
}

// ---------------------------------------------------------------- single-flight

async fn settle() {
    for _ in 0..50 {
        tokio::task::yield_now().await;
    }
}

#[tokio::test(start_paused = true)]
async fn concurrent_misses_on_one_key_make_one_request() {
    let (transport, gate) = ScriptedTransport::gated(|_, _| ok_day("tok"));
    let mi = scripted(APP, transport.clone());
    let callers: Vec<_> = (0..10)
        .map(|_| {
            let mi = mi.clone();
            tokio::spawn(async move { mi.get_token(VAULT, None).await })
        })
        .collect();
    settle().await;
    assert_eq!(transport.count(), 1);
    gate.add_permits(100);
    for caller in callers {
        assert_eq!(caller.await.unwrap().unwrap().access_token.expose(), "tok");
    }
    assert_eq!(transport.count(), 1);
}

#[tokio::test(start_paused = true)]
async fn a_failed_fetch_is_shared_with_the_callers_that_waited() {
    let (transport, gate) = ScriptedTransport::gated(|_, _| response(403, "{}"));
    let mi = scripted(APP, transport.clone());
    let callers: Vec<_> = (0..5)
        .map(|_| {
            let mi = mi.clone();
            tokio::spawn(async move { mi.get_token(VAULT, None).await })
        })
        .collect();
    settle().await;
    gate.add_permits(100);
    for caller in callers {
        assert!(matches!(
            caller.await.unwrap(),
            Err(IdentityError::Forbidden { .. })
        ));
    }
    assert_eq!(transport.count(), 1);
}

#[tokio::test(start_paused = true)]
async fn different_keys_fetch_in_parallel() {
    let (transport, gate) = ScriptedTransport::gated(|_, _| ok_day("tok"));
    let mi = scripted(APP, transport.clone());
    let a = tokio::spawn({
        let mi = mi.clone();
        async move { mi.get_token(VAULT, None).await }
    });
    let b = tokio::spawn({
        let mi = mi.clone();
        async move { mi.get_token("https://storage.azure.com", None).await }
    });
    settle().await;
    assert_eq!(transport.count(), 2);
    assert_eq!(
        transport
            .max_in_flight
            .load(std::sync::atomic::Ordering::SeqCst),
        2
    );
    gate.add_permits(2);
    a.await.unwrap().unwrap();
    b.await.unwrap().unwrap();
}

// ---------------------------------------------------------------- retries

#[tokio::test(start_paused = true)]
async fn server_errors_are_retried_until_success() {
    let transport =
        ScriptedTransport::sequence(vec![response(500, ""), response(500, ""), ok_day("tok")]);
    let token = scripted(APP, transport.clone())
        .get_token(VAULT, None)
        .await
        .unwrap();
    assert_eq!(token.access_token.expose(), "tok");
    assert_eq!(transport.count(), 3);
}

#[tokio::test(start_paused = true)]
async fn persistent_server_errors_end_unavailable_after_the_retry_budget() {
    let transport = ScriptedTransport::sequence(vec![response(503, r#"{"message":"busy"}"#)]);
    let err = scripted(APP, transport.clone())
        .get_token(VAULT, None)
        .await
        .unwrap_err();
    assert!(
        matches!(err, IdentityError::Unavailable { attempts: 4, .. }),
        "{err}"
    );
    assert!(err.to_string().contains("busy"), "{err}");
    assert!(err.to_string().contains("IDENTITY_ENDPOINT"), "{err}");
    assert_eq!(transport.count(), 4);
}

#[tokio::test(start_paused = true)]
async fn retry_after_is_honoured() {
    let throttled = Ok(HttpResponse {
        status: 429,
        retry_after: Some("2".into()),
        body: Vec::new(),
    });
    let transport = ScriptedTransport::sequence(vec![throttled, ok_day("tok")]);
    scripted(APP, transport.clone())
        .get_token(VAULT, None)
        .await
        .unwrap();
    let times = transport.times();
    assert_eq!(times.len(), 2);
    assert!(times[1] - times[0] >= StdDuration::from_secs(2));
}

#[tokio::test(start_paused = true)]
async fn retry_after_beyond_the_cap_ends_throttled() {
    let throttled = Ok(HttpResponse {
        status: 429,
        retry_after: Some("3600".into()),
        body: Vec::new(),
    });
    let transport = ScriptedTransport::sequence(vec![throttled]);
    let err = scripted(APP, transport.clone())
        .get_token(VAULT, None)
        .await
        .unwrap_err();
    match err {
        IdentityError::Throttled { retry_after, .. } => {
            assert_eq!(retry_after, Some(StdDuration::from_secs(3600)))
        }
        other => panic!("{other}"),
    }
    assert_eq!(transport.count(), 1);
}

#[tokio::test(start_paused = true)]
async fn client_errors_are_not_retried() {
    for (status, vars) in [
        (400, APP),
        (401, APP),
        (403, APP),
        (404, APP),
        (400, IMDS),
        (403, IMDS),
    ] {
        let transport = ScriptedTransport::sequence(vec![response(status, "{}"), ok_day("tok")]);
        assert!(
            scripted(vars, transport.clone())
                .get_token(VAULT, None)
                .await
                .is_err()
        );
        assert_eq!(transport.count(), 1, "{status}");
    }
}

#[tokio::test(start_paused = true)]
async fn imds_retries_404_and_410() {
    let transport = ScriptedTransport::sequence(vec![response(404, ""), ok_day("tok")]);
    scripted(IMDS, transport.clone())
        .get_token(VAULT, None)
        .await
        .unwrap();
    assert_eq!(transport.count(), 2);
    let transport = ScriptedTransport::sequence(vec![
        response(410, ""),
        response(410, ""),
        response(410, ""),
        ok_day("tok"),
    ]);
    scripted(IMDS, transport.clone())
        .get_token(VAULT, None)
        .await
        .unwrap();
    assert_eq!(transport.count(), 4);
}

#[tokio::test(start_paused = true)]
async fn connect_errors_are_retried_and_reported_as_unavailable() {
    let refused = Err(TransportError::Connect("connection refused".into()));
    let transport = ScriptedTransport::sequence(vec![refused.clone(), ok_day("tok")]);
    scripted(APP, transport.clone())
        .get_token(VAULT, None)
        .await
        .unwrap();
    assert_eq!(transport.count(), 2);
    let transport = ScriptedTransport::sequence(vec![refused]);
    let err = scripted(APP, transport.clone())
        .get_token(VAULT, None)
        .await
        .unwrap_err();
    assert!(matches!(err, IdentityError::Unavailable { .. }), "{err}");
    assert!(err.to_string().contains("connection refused"), "{err}");
}

#[tokio::test(start_paused = true)]
async fn a_hanging_endpoint_ends_at_the_deadline() {
    let (transport, _gate) = ScriptedTransport::gated(|_, _| ok_day("never"));
    let err = scripted(APP, transport.clone())
        .get_token(VAULT, None)
        .await
        .unwrap_err();
    assert!(matches!(err, IdentityError::Unavailable { .. }), "{err}");
    assert!(err.to_string().contains("timed out"), "{err}");
    // 10 s deadline, 5 s per request.
    assert_eq!(transport.count(), 2);
}

// ---------------------------------------------------------------- azure_core credential

#[tokio::test(start_paused = true)]
async fn token_credential_uses_the_default_identity_and_one_scope() {
    use azure_core::credentials::TokenCredential;
    let transport = ScriptedTransport::sequence(vec![ok_day("tok")]);
    let mi = scripted(
        &[APP, &[(AZURE_CLIENT_ID, "cid")]].concat(),
        transport.clone(),
    );
    let credential: &dyn TokenCredential = &mi;
    let token = credential.get_token(&[VAULT_SCOPE], None).await.unwrap();
    assert_eq!(token.token.secret(), "tok");
    assert_eq!(token.expires_on, T0 + Duration::hours(24));
    assert!(
        transport.requests.lock().unwrap()[0]
            .0
            .url
            .as_str()
            .contains("client_id=cid")
    );
    let err = credential
        .get_token(&[VAULT_SCOPE, "b"], None)
        .await
        .unwrap_err();
    assert_eq!(err.kind(), &azure_core::error::ErrorKind::Credential);
    let failing = scripted(APP, ScriptedTransport::sequence(vec![response(403, "{}")]));
    let err = TokenCredential::get_token(&failing, &["https://x.example.com/.default"], None)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("forbidden (HTTP 403)"), "{err}");
}

#[tokio::test]
async fn debug_output_has_no_secrets() {
    let mi = ManagedIdentity::new(config_from(APP)).unwrap();
    let text = format!("{mi:?}");
    assert!(text.contains("App Service 2019-08-01"), "{text}");
    assert!(!text.contains("hdr-secret"), "{text}");
    let config = format!("{:?}", config_from(APP));
    assert!(!config.contains("hdr-secret"), "{config}");
}

// ---------------------------------------------------------------- Azure CLI

#[cfg(unix)]
mod cli {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn fake_az(dir: &std::path::Path, script: &str) -> String {
        let path = dir.join("az");
        std::fs::write(&path, format!("#!/bin/sh\n{script}\n")).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        path.to_string_lossy().into_owned()
    }

    fn cli_identity(program: &str) -> ManagedIdentity {
        let config = config_from(&[(AZURE_TOKEN_CREDENTIALS, "dev"), (AZURE_TENANT_ID, "t1")])
            .with_cli_program(program);
        ManagedIdentity::new(config).unwrap()
    }

    #[tokio::test]
    async fn cli_is_called_with_the_sdk_arguments_and_cached() {
        let dir = tempfile::tempdir().unwrap();
        let args = dir.path().join("args");
        let program = fake_az(
            dir.path(),
            &format!(
                "printf '%s\\n' \"$@\" >> '{}'\ncat\necho '{{\"accessToken\":\"cli-tok\",\"expires_on\":{},\"tokenType\":\"Bearer\"}}'",
                args.display(),
                later(3600)
            ),
        );
        let mi = cli_identity(&program);
        assert_eq!(mi.source(), SourceKind::AzureCli);
        let token = mi.get_token(VAULT_SCOPE, None).await.unwrap();
        assert_eq!(token.access_token.expose(), "cli-tok");
        assert_eq!(token.source, SourceKind::AzureCli);
        mi.get_token(VAULT, None).await.unwrap();
        let recorded = std::fs::read_to_string(&args).unwrap();
        assert_eq!(
            recorded,
            "account\nget-access-token\n--output\njson\n--resource\nhttps://vault.azure.net\n--tenant\nt1\n"
        );
        let err = mi.get_token(VAULT, Some(&client("c"))).await.unwrap_err();
        assert!(
            matches!(err, IdentityError::UnsupportedIdentity { .. }),
            "{err}"
        );
    }

    #[tokio::test]
    async fn shell_metacharacters_never_reach_the_cli() {
        let dir = tempfile::tempdir().unwrap();
        let marker = dir.path().join("started");
        let program = fake_az(
            dir.path(),
            &format!(
                "touch '{}'\necho '{{\"accessToken\":\"t\",\"expires_on\":{}}}'",
                marker.display(),
                later(3600)
            ),
        );
        let mi = cli_identity(&program);
        for &bad in test_kit::attacks::SHELL_ATTACKS {
            let error = mi.get_token(bad, None).await.unwrap_err();
            assert!(
                matches!(error, IdentityError::InvalidScope { .. }),
                "{bad}: {error}"
            );
            assert!(!marker.exists(), "{bad} started the CLI");
        }
        // The same program does start for a good scope, so the check above can fail.
        mi.get_token(VAULT, None).await.unwrap();
        assert!(marker.exists());
    }

    /// The error the CLI credential gives with `program` in the place of `az`.
    async fn cli_error(program: &str) -> IdentityError {
        cli_identity(program)
            .get_token(VAULT, None)
            .await
            .unwrap_err()
    }

    fn cli_failure(err: &IdentityError) -> Option<CliFailure> {
        match err {
            IdentityError::Cli { failure, .. } => Some(*failure),
            _ => None,
        }
    }

    #[tokio::test]
    async fn cli_failures_are_classified_and_redacted() {
        let dir = tempfile::tempdir().unwrap();
        let not_logged_in = fake_az(
            dir.path(),
            "echo \"ERROR: Please run 'az login' to setup account.\" >&2\nexit 1",
        );
        let err = cli_error(&not_logged_in).await;
        assert_eq!(cli_failure(&err), Some(CliFailure::NotLoggedIn), "{err}");

        let leaky = fake_az(
            dir.path(),
            "echo '{\"accessToken\": \"LEAKED\"}' >&2\nexit 2",
        );
        let err = cli_error(&leaky).await;
        assert_eq!(cli_failure(&err), Some(CliFailure::Failed), "{err}");
        assert!(!err.to_string().contains("LEAKED"), "{err}");

        let old = fake_az(
            dir.path(),
            "echo '{\"accessToken\":\"x\",\"expiresOn\":\"2030-01-01 00:00:00.000000\"}'",
        );
        let err = cli_error(&old).await;
        assert!(err.to_string().contains("2.54"), "{err}");

        let missing = dir.path().join("no-such-az").to_string_lossy().into_owned();
        let err = cli_error(&missing).await;
        assert_eq!(cli_failure(&err), Some(CliFailure::NotInstalled), "{err}");
    }
}

// ---------------------------------------------------------------- more failure shapes

#[tokio::test(start_paused = true)]
async fn imds_403_from_an_unreachable_network_is_unavailable() {
    let transport = ScriptedTransport::sequence(vec![response(
        403,
        "connecting to 169.254.169.254:80: connect: host is unreachable",
    )]);
    let err = scripted(IMDS, transport.clone())
        .get_token(VAULT, None)
        .await
        .unwrap_err();
    assert!(matches!(err, IdentityError::Unavailable { .. }), "{err}");
    assert!(err.is_transient());
    assert_eq!(err.source_kind(), Some(SourceKind::Imds));
    assert_eq!(transport.count(), 1);
}

#[tokio::test(start_paused = true)]
async fn throttling_without_retry_after_ends_throttled_after_the_retries() {
    let transport = ScriptedTransport::sequence(vec![response(429, r#"{"message":"slow down"}"#)]);
    let err = scripted(APP, transport.clone())
        .get_token(VAULT, None)
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            IdentityError::Throttled {
                attempts: 4,
                retry_after: None,
                ..
            }
        ),
        "{err}"
    );
    assert!(err.to_string().contains("slow down"), "{err}");
    assert_eq!(transport.count(), 4);
}

#[tokio::test(start_paused = true)]
async fn hints_name_where_the_identity_came_from() {
    let not_found = || ScriptedTransport::sequence(vec![response(400, "{}")]);
    let vars = [APP, &[(MANAGED_IDENTITY_CLIENT_ID, "mi-cid")]].concat();
    let err = scripted(&vars, not_found())
        .get_token(VAULT, None)
        .await
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("client id mi-cid attached to the app? check MANAGED_IDENTITY_CLIENT_ID"),
        "{err}"
    );
    let err = scripted(APP, not_found())
        .get_token(VAULT, Some(&UserAssignedId::ObjectId("oid-3".into())))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("object id oid-3"), "{err}");
    assert!(
        err.to_string().contains("the identity the caller passed"),
        "{err}"
    );
    let err = scripted(APP, not_found())
        .get_token(VAULT, None)
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("system-assigned identity enabled"),
        "{err}"
    );
    let err = scripted(
        IMDS,
        ScriptedTransport::sequence(vec![response(
            400,
            r#"{"error":"invalid_request","error_description":"Identity not found"}"#,
        )]),
    )
    .get_token(VAULT, None)
    .await
    .unwrap_err();
    assert!(
        err.to_string()
            .contains("service said \"Identity not found\"; error invalid_request"),
        "{err}"
    );
}

#[tokio::test(start_paused = true)]
async fn absurd_lifetimes_are_malformed_or_clamped_never_a_panic() {
    let huge = format!(
        r#"{{"access_token":"tok","expires_on":"{}","expires_in":"9223372036854775807"}}"#,
        (T0 + Duration::hours(24)).unix_timestamp()
    );
    let transport = ScriptedTransport::sequence(vec![response(200, &huge)]);
    let err = scripted(IMDS, transport)
        .get_token(VAULT, None)
        .await
        .unwrap_err();
    assert!(matches!(err, IdentityError::Malformed { .. }), "{err}");
    let far_refresh = format!(
        r#"{{"access_token":"tok","expires_on":"{}","refresh_in":9223372036854775807}}"#,
        (T0 + Duration::hours(24)).unix_timestamp()
    );
    let transport = ScriptedTransport::sequence(vec![response(200, &far_refresh)]);
    let token = scripted(APP, transport)
        .get_token(VAULT, None)
        .await
        .unwrap();
    assert_eq!(
        token.refresh_on,
        T0 + Duration::hours(24) - Duration::minutes(5)
    );
}

#[test]
fn public_types_can_be_shared_across_tasks() {
    fn shareable<T: Send + Sync + Clone + std::fmt::Debug + 'static>() {}
    shareable::<ManagedIdentity>();
    shareable::<Token>();
    shareable::<IdentityError>();
    shareable::<IdentityConfig>();
}

#[test]
fn settings_list_names_every_variable_the_config_reads() {
    use std::cell::RefCell;
    let asked = RefCell::new(Vec::new());
    IdentityConfig::from_lookup(|name| {
        asked.borrow_mut().push(name.to_owned());
        None
    })
    .unwrap();
    IdentityConfig::from_lookup(|name| {
        asked.borrow_mut().push(name.to_owned());
        (name == AZURE_TOKEN_CREDENTIALS).then(|| "dev".to_owned())
    })
    .unwrap();
    let listed: Vec<&str> = SETTINGS.iter().map(|(name, _)| *name).collect();
    for name in asked.into_inner() {
        assert!(
            listed.contains(&name.as_str()),
            "{name} is read but not listed"
        );
    }
}

#[tokio::test(start_paused = true)]
async fn imds_410_gets_a_budget_beyond_the_normal_deadline() {
    // Production timing: 30 s deadline, 10 s between 410 retries, 80 s budget.
    let transport = ScriptedTransport::new(|_, n| {
        if n < 6 {
            response(410, "")
        } else {
            ok_day("tok")
        }
    });
    let config = config_from(IMDS).with_timing(Timing::default());
    let mi = ManagedIdentity::with_parts(config, transport.clone(), Clock::anchored(T0));
    mi.get_token(VAULT, None).await.unwrap();
    let times = transport.times();
    assert_eq!(times.len(), 7);
    assert!(
        times[6] - times[0] > StdDuration::from_secs(30),
        "the 410 budget was not extended"
    );
}

#[tokio::test(start_paused = true)]
async fn unsupported_api_version_without_a_legacy_pair_is_an_error() {
    let transport = ScriptedTransport::sequence(vec![response(
        400,
        r#"{"message":"UnsupportedApiVersion"}"#,
    )]);
    let mi = scripted(APP, transport.clone());
    let err = mi.get_token(VAULT, None).await.unwrap_err();
    assert!(
        matches!(err, IdentityError::IdentityNotFound { .. }),
        "{err}"
    );
    assert_eq!(mi.source(), SourceKind::AppService2019);
    assert_eq!(transport.count(), 1);
}

// ---------------------------------------------------------------- bounds

fn scripted_with(
    transport: Arc<ScriptedTransport>,
    tweak: impl FnOnce(&mut Timing),
) -> ManagedIdentity {
    let mut timing = fast_timing();
    tweak(&mut timing);
    ManagedIdentity::with_parts(
        config_from(APP).with_timing(timing),
        transport,
        Clock::anchored(T0),
    )
}

#[tokio::test(start_paused = true)]
async fn a_flood_of_one_failing_key_costs_one_request_per_failure_memory() {
    let transport = ScriptedTransport::sequence(vec![response(400, "{}")]);
    let mi = scripted(APP, transport.clone());
    for _ in 0..100 {
        let error = mi
            .get_token(VAULT, Some(&client("ghost")))
            .await
            .unwrap_err();
        assert!(
            matches!(error, IdentityError::IdentityNotFound { .. }),
            "{error}"
        );
    }
    assert_eq!(transport.count(), 1);
    // Another key is not affected by the remembered failure.
    mi.get_token(VAULT, None).await.unwrap_err();
    assert_eq!(transport.count(), 2);
    tokio::time::advance(Timing::default().failure_memory + StdDuration::from_secs(1)).await;
    mi.get_token(VAULT, Some(&client("ghost")))
        .await
        .unwrap_err();
    assert_eq!(transport.count(), 3);
}

#[tokio::test(start_paused = true)]
async fn the_cache_never_holds_more_than_its_bound() {
    let transport = ScriptedTransport::new(|_, _| ok_day("tok"));
    let mi = scripted_with(transport.clone(), |t| t.max_cache_entries = 16);
    for n in 0..1000 {
        mi.get_token(&format!("https://r{n}.example.com"), None)
            .await
            .unwrap();
        assert!(mi.cached_entries() <= 16);
    }
    assert_eq!(mi.cached_entries(), 16);
    assert_eq!(transport.count(), 1000);
    // The most recently used keys are the ones kept.
    mi.get_token("https://r999.example.com", None)
        .await
        .unwrap();
    assert_eq!(transport.count(), 1000);
    mi.get_token("https://r0.example.com", None).await.unwrap();
    assert_eq!(transport.count(), 1001);
}

#[tokio::test(start_paused = true)]
async fn failed_entries_are_evicted_before_good_tokens() {
    let transport = ScriptedTransport::new(|request, _| {
        if request.url.as_str().contains("bad") {
            response(400, "{}")
        } else {
            ok_day("tok")
        }
    });
    let mi = scripted_with(transport.clone(), |t| t.max_cache_entries = 4);
    mi.get_token(VAULT, None).await.unwrap();
    for n in 0..50 {
        mi.get_token(&format!("https://bad{n}.example.com"), None)
            .await
            .unwrap_err();
    }
    assert!(mi.cached_entries() <= 4);
    let before = transport.count();
    mi.get_token(VAULT, None).await.unwrap();
    assert_eq!(
        transport.count(),
        before,
        "the good token survived the flood"
    );
}

#[tokio::test(start_paused = true)]
async fn an_entry_in_use_is_never_evicted() {
    let (transport, gate) = ScriptedTransport::gated(|_, _| ok_day("tok"));
    let mi = scripted_with(transport.clone(), |t| {
        t.max_cache_entries = 2;
        t.max_concurrent_requests = 64;
    });
    // Two fetches in flight hold both entries.
    let waiting: Vec<_> = (0..2)
        .map(|n| {
            let mi = mi.clone();
            tokio::spawn(async move {
                mi.get_token(&format!("https://w{n}.example.com"), None)
                    .await
            })
        })
        .collect();
    settle().await;
    assert_eq!(mi.cached_entries(), 2);
    // A third key finds the cache full of entries in use: served without an entry.
    let third = tokio::spawn({
        let mi = mi.clone();
        async move { mi.get_token("https://third.example.com", None).await }
    });
    settle().await;
    assert_eq!(mi.cached_entries(), 2);
    // A fourth caller for w0 joins the fetch in flight instead of starting another.
    let joined = tokio::spawn({
        let mi = mi.clone();
        async move { mi.get_token("https://w0.example.com", None).await }
    });
    settle().await;
    assert_eq!(transport.count(), 3);
    gate.add_permits(10);
    for task in waiting {
        task.await.unwrap().unwrap();
    }
    third.await.unwrap().unwrap();
    joined.await.unwrap().unwrap();
    assert_eq!(transport.count(), 3);
    assert_eq!(mi.cached_entries(), 2);
}

#[tokio::test(start_paused = true)]
async fn concurrent_acquisitions_are_capped() {
    let (transport, gate) = ScriptedTransport::gated(|_, _| ok_day("tok"));
    let mi = scripted_with(transport.clone(), |t| t.max_concurrent_requests = 3);
    let callers: Vec<_> = (0..20)
        .map(|n| {
            let mi = mi.clone();
            tokio::spawn(async move {
                mi.get_token(&format!("https://c{n}.example.com"), None)
                    .await
            })
        })
        .collect();
    settle().await;
    assert_eq!(transport.count(), 3, "only three requests may be in flight");
    gate.add_permits(100);
    for caller in callers {
        caller.await.unwrap().unwrap();
    }
    assert_eq!(transport.count(), 20);
    assert_eq!(
        transport
            .max_in_flight
            .load(std::sync::atomic::Ordering::SeqCst),
        3
    );
}

#[tokio::test(start_paused = true)]
async fn a_caller_waiting_for_a_turn_gives_up_at_the_deadline() {
    let (transport, _gate) = ScriptedTransport::gated(|_, _| ok_day("tok"));
    let mi = scripted_with(transport.clone(), |t| {
        t.max_concurrent_requests = 1;
        t.request_timeout = StdDuration::from_secs(3600);
        t.deadline = StdDuration::from_secs(5);
    });
    let _stuck = tokio::spawn({
        let mi = mi.clone();
        async move { mi.get_token(VAULT, None).await }
    });
    settle().await;
    let error = mi
        .get_token("https://storage.azure.com", None)
        .await
        .unwrap_err();
    assert!(
        matches!(error, IdentityError::Unavailable { attempts: 0, .. }),
        "{error}"
    );
    assert!(error.to_string().contains("already in flight"), "{error}");
    assert_eq!(transport.count(), 1);
}

#[tokio::test(start_paused = true)]
async fn a_400_that_merely_mentions_unsupported_api_version_does_not_switch_protocols() {
    let transport = ScriptedTransport::sequence(vec![response(
        400,
        r#"{"statusCode":400,"message":"Unable to load the proper Managed Identity for UnsupportedApiVersion","correlationId":"c"}"#,
    )]);
    let mi = ManagedIdentity::with_parts(
        config_from(&[
            (IDENTITY_ENDPOINT, "http://127.0.0.1:9/msi/token"),
            (IDENTITY_HEADER, "hdr-secret"),
            (MSI_ENDPOINT, "http://127.0.0.1:9/legacy"),
            (MSI_SECRET, "msi-secret"),
        ]),
        transport.clone(),
        Clock::anchored(T0),
    );
    let error = mi.get_token(VAULT, None).await.unwrap_err();
    assert!(
        matches!(error, IdentityError::IdentityNotFound { .. }),
        "{error}"
    );
    assert_eq!(mi.source(), SourceKind::AppService2019);
    assert_eq!(transport.count(), 1);
    assert!(
        transport.requests.lock().unwrap()[0]
            .0
            .url
            .as_str()
            .contains("2019-08-01")
    );
}

#[tokio::test]
async fn an_oversized_answer_keeps_its_status_and_is_read_no_further_than_the_cap() {
    // A proxy's 100 KB error page: the status still decides (400 is never retried), and the
    // body is cut at the transport's cap instead of being read whole.
    let page = "x".repeat(100 * 1024);
    let fake = scripted_endpoint(vec![json_reply(400, page)]).await;
    let endpoint = format!("{}/msi/token", fake.base);
    let mi = ManagedIdentity::new(config_from(&[
        (IDENTITY_ENDPOINT, &endpoint),
        (IDENTITY_HEADER, "hdr-secret"),
    ]))
    .unwrap();
    let error = mi.get_token(VAULT, None).await.unwrap_err();
    assert!(error.to_string().contains("400"), "{error}");
    assert_eq!(fake.requests().len(), 1, "a 400 is not retried: {error}");
}
