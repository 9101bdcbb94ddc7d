//! TokenValidator against an authority served from 127.0.0.1: discovery, JWKS, key rotation and
//! every way a token can be refused.

use custom_handler::Failure;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use handler::auth::{
    AuthConfig, AuthError, Caller, TokenValidator, ValidatorOptions, default_http_client,
};
use handler::error::FunctionError;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};
use test_kit::handler::closed_port_base;
use test_kit::jwt::{TestKey, b64, jwks, now, with};
use test_kit::logs as captured_logs;
use test_kit::recorder::Reply;
use test_kit::server::FakeServer;
use url::Url;

const TENANT: &str = "11111111-2222-3333-4444-555555555555";
const OTHER_TENANT: &str = "99999999-8888-7777-6666-555555555555";
const APP_ID_URI: &str = "api://whoami-api";
const CLIENT_ID: &str = "0e3c2b6a-1111-2222-3333-444455556666";
const CALLER_APP: &str = "a4e07406-b556-4c4d-9525-5f410fd21fe7";
const CALLER_OID: &str = "bf00c7e8-b14b-4fe5-b768-da255026ff17";

fn v1_issuer(tenant: &str) -> String {
    format!("https://sts.windows.net/{tenant}/")
}

fn v2_issuer(tenant: &str) -> String {
    format!("https://login.microsoftonline.com/{tenant}/v2.0")
}

fn jwks_path() -> String {
    format!("/{TENANT}/discovery/v2.0/keys")
}

/// An authority for TENANT whose JWKS the test can change and slow down.
struct Authority {
    server: FakeServer,
    keys: Arc<Mutex<Value>>,
    delay: Arc<Mutex<Duration>>,
}

impl Authority {
    async fn start(published: &[&TestKey]) -> Self {
        let keys = Arc::new(Mutex::new(jwks(published)));
        let delay = Arc::new(Mutex::new(Duration::ZERO));
        let (served_keys, served_delay) = (keys.clone(), delay.clone());
        let server = FakeServer::http(move |request| {
            let path = request.target.as_str();
            let host = request.header("host").unwrap_or_default();
            if path == format!("/{TENANT}/v2.0/.well-known/openid-configuration") {
                Reply::json(
                    200,
                    &json!({
                        "issuer": v2_issuer(TENANT),
                        "jwks_uri": format!("http://{host}{}", jwks_path()),
                        "id_token_signing_alg_values_supported": ["RS256"],
                    }),
                )
            } else if path == jwks_path() {
                let mut reply = Reply::json(200, &served_keys.lock().unwrap());
                reply.delay = *served_delay.lock().unwrap();
                reply
            } else {
                Reply::json(404, &json!({"error": "not found"}))
            }
        })
        .await;
        Self {
            server,
            keys,
            delay,
        }
    }

    fn publish(&self, published: &[&TestKey]) {
        *self.keys.lock().unwrap() = jwks(published);
    }

    fn slow_down(&self, delay: Duration) {
        *self.delay.lock().unwrap() = delay;
    }

    fn url(&self) -> String {
        format!("{}/{TENANT}/v2.0", self.server.base)
    }

    fn validator(&self, role: Option<&str>) -> TokenValidator {
        self.validator_with(role, ValidatorOptions::default())
    }

    fn validator_with(&self, role: Option<&str>, options: ValidatorOptions) -> TokenValidator {
        validator_for(&self.url(), role, options)
    }

    fn jwks_hits(&self) -> usize {
        self.server.hits(&jwks_path())
    }
}

fn validator_for(authority: &str, role: Option<&str>, options: ValidatorOptions) -> TokenValidator {
    let config = AuthConfig {
        authority: Url::parse(authority).unwrap(),
        audiences: vec![APP_ID_URI.to_owned(), CLIENT_ID.to_owned()],
        required_role: role.map(str::to_owned),
    };
    TokenValidator::with_options(config, default_http_client().unwrap(), options)
}

/// An authority publishing one key, "key-a", and that key.
async fn one_key() -> (TestKey, Authority) {
    let key = TestKey::generate("key-a");
    let authority = Authority::start(&[&key]).await;
    (key, authority)
}

/// Keys "key-old" (published) and "key-new" (not yet), and a validator (no role required) that has
/// accepted a token signed with the old one, so the published keys are cached.
async fn rotating() -> (TestKey, TestKey, Authority, TokenValidator) {
    let old = TestKey::generate("key-old");
    let new = TestKey::generate("key-new");
    let authority = Authority::start(&[&old]).await;
    let validator = authority.validator(None);
    accept(&validator, &old.sign(&claims())).await;
    (old, new, authority, validator)
}

/// Asserts that `token` is refused as invalid for `reason`.
async fn assert_refused(validator: &TokenValidator, token: &str, reason: &str) {
    assert_eq!(refuse(validator, token).await, invalid(reason), "{reason}");
}

/// Refuses a token signed by `key` whose claims are [`claims`] with `changes`.
async fn refuse_changed(validator: &TokenValidator, key: &TestKey, changes: Value) -> AuthError {
    refuse(validator, &key.sign(&with(claims(), changes))).await
}

/// Claims of a valid v1 app token for APP_ID_URI.
fn claims() -> Value {
    let now = now();
    json!({
        "aud": APP_ID_URI,
        "iss": v1_issuer(TENANT),
        "iat": now - 60,
        "nbf": now - 60,
        "exp": now + 3600,
        "appid": CALLER_APP,
        "appidacr": "2",
        "oid": CALLER_OID,
        "sub": CALLER_OID,
        "tid": TENANT,
        "roles": ["Api.Read"],
        "ver": "1.0",
    })
}

async fn accept(validator: &TokenValidator, token: &str) -> Caller {
    validator
        .validate(Some(&format!("Bearer {token}")))
        .await
        .unwrap()
}

/// Validates a token that must be refused and checks nothing of it leaks into the error.
async fn refuse(validator: &TokenValidator, token: &str) -> AuthError {
    let error = validator
        .validate(Some(&format!("Bearer {token}")))
        .await
        .unwrap_err();
    let signature = token.rsplit('.').next().unwrap();
    for text in [
        error.to_string(),
        format!("{error:?}"),
        error.www_authenticate().unwrap_or_default(),
    ] {
        assert!(!text.contains(token), "the token leaked into {text}");
        if signature.len() > 8 {
            assert!(
                !text.contains(signature),
                "the signature leaked into {text}"
            );
        }
    }
    error
}

/// Validates `token` from `n` tasks at once; every one must pass.
async fn accept_concurrently(validator: &TokenValidator, token: &str, n: usize) {
    let tasks: Vec<_> = (0..n)
        .map(|_| {
            let (validator, token) = (validator.clone(), token.to_owned());
            tokio::spawn(async move { validator.validate(Some(&format!("Bearer {token}"))).await })
        })
        .collect();
    for task in tasks {
        task.await.unwrap().unwrap();
    }
}

/// A token of `key` is refused as unavailable because a key source is neither https nor
/// loopback, and no key was fetched.
async fn refused_as_not_loopback_without_a_fetch(validator: &TokenValidator, key: &TestKey) {
    let error = refuse(validator, &key.sign(&claims())).await;
    assert!(
        matches!(&error, AuthError::Unavailable(reason) if reason.contains("loopback")),
        "{error:?}"
    );
    assert_eq!(validator.jwks_fetches(), 0);
}

fn invalid(description: &str) -> AuthError {
    AuthError::Invalid(description.to_owned())
}

#[tokio::test]
async fn v1_and_v2_issuers_of_the_tenant_are_accepted() {
    let (key, authority) = one_key().await;
    let validator = authority.validator(None);

    let v1 = accept(&validator, &key.sign(&claims())).await;
    assert_eq!(
        v1,
        Caller {
            oid: Some(CALLER_OID.into()),
            appid: Some(CALLER_APP.into()),
            tid: Some(TENANT.into()),
            roles: vec!["Api.Read".into()],
            sub: Some(CALLER_OID.into()),
            issuer: v1_issuer(TENANT),
            audience: APP_ID_URI.into(),
        }
    );

    let v2_claims = with(
        claims(),
        json!({"iss": v2_issuer(TENANT), "aud": CLIENT_ID, "appid": null, "azp": "v2-app", "roles": null, "scp": "access_as_user"}),
    );
    let v2 = accept(&validator, &key.sign(&v2_claims)).await;
    assert_eq!(v2.issuer, v2_issuer(TENANT));
    assert_eq!(v2.audience, CLIENT_ID);
    assert_eq!(v2.appid.as_deref(), Some("v2-app"));
    assert!(v2.roles.is_empty());

    assert_eq!(validator.jwks_fetches(), 1, "keys are cached");
    assert_eq!(authority.jwks_hits(), 1);
}

#[tokio::test]
async fn the_caller_serializes_to_its_claims() {
    let (key, authority) = one_key().await;
    let caller = accept(&authority.validator(None), &key.sign(&claims())).await;
    let value = serde_json::to_value(&caller).unwrap();
    assert_eq!(value["oid"], CALLER_OID);
    assert_eq!(value["appid"], CALLER_APP);
    assert_eq!(value["issuer"], v1_issuer(TENANT));
    assert_eq!(value["roles"], json!(["Api.Read"]));
}

#[tokio::test]
async fn other_issuers_are_refused() {
    let (key, authority) = one_key().await;
    let validator = authority.validator(None);
    for issuer in [
        json!(v1_issuer(OTHER_TENANT)),
        json!(v2_issuer(OTHER_TENANT)),
        json!(authority.url()),
        json!(format!("https://sts.windows.net/{TENANT}")),
        json!(format!("https://login.microsoftonline.com/{TENANT}/v2.0/")),
        json!(format!("https://login.microsoftonline.com/{TENANT}/")),
        Value::Null,
    ] {
        let error = refuse_changed(&validator, &key, json!({ "iss": issuer })).await;
        assert_eq!(
            error,
            invalid("the token's issuer is not accepted"),
            "{issuer}"
        );
        assert_eq!(FunctionError::from(error.clone()).status(), 401);
    }
}

#[tokio::test]
async fn only_configured_audiences_are_accepted() {
    let (key, authority) = one_key().await;
    let validator = authority.validator(None);
    let trailing = accept(
        &validator,
        &key.sign(&with(claims(), json!({"aud": "api://whoami-api/"}))),
    )
    .await;
    assert_eq!(trailing.audience, "api://whoami-api/");
    for audience in [
        json!("https://vault.azure.net"),
        json!("api://whoami"),
        json!("API://whoami-api"),
        json!(["other"]),
        Value::Null,
    ] {
        let error = refuse_changed(&validator, &key, json!({ "aud": audience })).await;
        assert_eq!(
            error,
            invalid("the token's audience is not accepted"),
            "{audience}"
        );
    }
}

#[tokio::test]
async fn lifetimes_are_checked_with_five_minutes_of_skew() {
    let (key, authority) = one_key().await;
    let validator = authority.validator(None);
    let now = now();

    accept(
        &validator,
        &key.sign(&with(claims(), json!({"exp": now - 60}))),
    )
    .await;
    accept(
        &validator,
        &key.sign(&with(claims(), json!({"nbf": now + 60}))),
    )
    .await;

    let expired = key.sign(&with(claims(), json!({"exp": now - 600})));
    assert_refused(&validator, &expired, "the token has expired").await;
    let early = key.sign(&with(claims(), json!({"nbf": now + 600})));
    assert_refused(&validator, &early, "the token is not yet valid").await;
    let endless = key.sign(&with(claims(), json!({"exp": null})));
    assert_refused(&validator, &endless, "the token has no expiry").await;
}

#[tokio::test]
async fn tampered_or_foreign_signatures_are_refused() {
    let (key, authority) = one_key().await;
    let impostor = TestKey::generate("key-a");
    let validator = authority.validator(None);

    let genuine = key.sign(&claims());
    let parts: Vec<&str> = genuine.split('.').collect();
    let elevated = with(claims(), json!({"roles": ["Api.Admin"]}));
    let tampered = format!(
        "{}.{}.{}",
        parts[0],
        b64(elevated.to_string().as_bytes()),
        parts[2]
    );
    assert_refused(&validator, &tampered, "the signature is invalid").await;

    let forged = impostor.sign(&claims());
    assert_refused(&validator, &forged, "the signature is invalid").await;

    let unsigned = format!("{}.{}.", parts[0], parts[1]);
    assert_refused(&validator, &unsigned, "the signature is invalid").await;
}

#[tokio::test]
async fn alg_none_and_hs256_are_refused_before_any_key_is_fetched() {
    let (key, authority) = one_key().await;
    let validator = authority.validator(None);
    let payload = b64(claims().to_string().as_bytes());

    for header in [
        json!({"alg": "none", "kid": "key-a"}),
        json!({"alg": "none", "typ": "JWT"}),
    ] {
        let header = b64(header.to_string().as_bytes());
        for token in [
            format!("{header}.{payload}."),
            format!("{header}.{payload}.c2lnbmF0dXJl"),
        ] {
            let error = refuse(&validator, &token).await;
            assert_eq!(error, invalid("the token's algorithm is not allowed"));
        }
    }

    let mut hs_header = Header::new(Algorithm::HS256);
    hs_header.kid = Some("key-a".into());
    let hs_secret = EncodingKey::from_secret(&key.public_der);
    let hs256 = jsonwebtoken::encode(&hs_header, &claims(), &hs_secret).unwrap();
    let error = refuse(&validator, &hs256).await;
    assert_eq!(error, invalid("the token's algorithm is not allowed"));
    assert_eq!(FunctionError::from(error.clone()).status(), 401);

    assert_eq!(
        validator.jwks_fetches(),
        0,
        "no key was fetched for a refused algorithm"
    );
    assert_eq!(authority.server.requests().len(), 0);
}

#[tokio::test]
async fn pss_tokens_pass_unless_the_key_is_restricted_to_another_algorithm() {
    let (key, authority) = one_key().await;
    let validator = authority.validator(None);
    accept(&validator, &key.sign_as(Algorithm::PS256, &claims())).await;
    accept(&validator, &key.sign_as(Algorithm::RS512, &claims())).await;

    let restricted = TestKey::generate("key-r");
    let mut jwk = restricted.jwk();
    jwk["alg"] = json!("RS256");
    *authority.keys.lock().unwrap() = json!({"keys": [key.jwk(), jwk]});
    let validator = authority.validator(None);
    accept(&validator, &restricted.sign(&claims())).await;
    let error = refuse(&validator, &restricted.sign_as(Algorithm::PS256, &claims())).await;
    assert_eq!(error, invalid("the token's algorithm is not allowed"));
}

#[tokio::test]
async fn a_required_role_must_be_held() {
    let (key, authority) = one_key().await;
    let validator = authority.validator(Some("Api.Read"));
    accept(&validator, &key.sign(&claims())).await;

    for roles in [
        json!(["Api.Write"]),
        json!([]),
        json!(["api.read"]),
        Value::Null,
    ] {
        let error = refuse_changed(&validator, &key, json!({ "roles": roles })).await;
        assert_eq!(
            error,
            AuthError::MissingRole {
                role: "Api.Read".into()
            }
        );
        assert_eq!(FunctionError::from(error.clone()).status(), 403);
    }
}

#[tokio::test]
async fn a_missing_header_or_another_scheme_is_401_with_a_challenge() {
    let (key, authority) = one_key().await;
    let validator = authority.validator(None);
    let token = key.sign(&claims());
    for header in [
        None,
        Some(String::new()),
        Some(format!("Basic {token}")),
        Some(token.clone()),
        Some("Bearer ".into()),
    ] {
        let error = validator.validate(header.as_deref()).await.unwrap_err();
        assert_eq!(error, AuthError::MissingToken, "{header:?}");
        assert_eq!(FunctionError::from(error.clone()).status(), 401);
        assert_eq!(
            error.www_authenticate().as_deref(),
            Some("Bearer error=\"invalid_token\", error_description=\"no bearer token\"")
        );
    }
    assert_eq!(validator.jwks_fetches(), 0);
}

#[tokio::test]
async fn an_unknown_kid_is_refused_after_one_refetch() {
    let (key, authority) = one_key().await;
    let unpublished = TestKey::generate("key-x");
    let validator = authority.validator(None);
    accept(&validator, &key.sign(&claims())).await;
    assert_eq!(validator.jwks_fetches(), 1);

    let error = refuse(&validator, &unpublished.sign(&claims())).await;
    assert_eq!(error, invalid("the token's signing key is unknown"));
    assert_eq!(
        validator.jwks_fetches(),
        2,
        "one refetch for the unknown kid"
    );
    assert_eq!(authority.jwks_hits(), 2);
}

#[tokio::test]
async fn a_second_unknown_kid_within_the_interval_causes_no_fetch() {
    let (key, authority) = one_key().await;
    let validator = authority.validator(None);
    accept(&validator, &key.sign(&claims())).await;
    refuse(&validator, &TestKey::generate("key-x").sign(&claims())).await;
    assert_eq!(validator.jwks_fetches(), 2);

    // Even a key published meanwhile waits for the interval to pass.
    let late = TestKey::generate("key-y");
    authority.publish(&[&key, &late]);
    let error = refuse(&validator, &late.sign(&claims())).await;
    assert_eq!(error, invalid("the token's signing key is unknown"));
    assert_eq!(validator.jwks_fetches(), 2, "rate-limited: no fetch");
    accept(&validator, &key.sign(&claims())).await;
    assert_eq!(authority.jwks_hits(), 2);
}

#[tokio::test]
async fn with_no_refetch_interval_each_unknown_kid_refetches() {
    let (key, authority) = one_key().await;
    let options = ValidatorOptions {
        refetch_interval: Duration::ZERO,
        ..ValidatorOptions::default()
    };
    let validator = authority.validator_with(None, options);
    accept(&validator, &key.sign(&claims())).await;
    refuse(&validator, &TestKey::generate("key-x").sign(&claims())).await;
    refuse(&validator, &TestKey::generate("key-y").sign(&claims())).await;
    assert_eq!(validator.jwks_fetches(), 3);
}

#[tokio::test]
async fn a_rotated_key_is_fetched_once_and_accepted() {
    let (old, new, authority, validator) = rotating().await;

    authority.publish(&[&old, &new]);
    accept(&validator, &new.sign(&claims())).await;
    assert_eq!(validator.jwks_fetches(), 2);
    accept(&validator, &new.sign(&claims())).await;
    accept(&validator, &old.sign(&claims())).await;
    assert_eq!(validator.jwks_fetches(), 2, "both keys now cached");
    assert_eq!(authority.jwks_hits(), 2);
}

#[tokio::test]
async fn concurrent_requests_with_a_new_kid_share_one_fetch() {
    let (old, new, authority, validator) = rotating().await;

    authority.publish(&[&old, &new]);
    authority.slow_down(Duration::from_millis(200));
    let token = new.sign(&claims());
    accept_concurrently(&validator, &token, 32).await;
    assert_eq!(validator.jwks_fetches(), 2);
    assert_eq!(authority.jwks_hits(), 2);
}

#[tokio::test]
async fn concurrent_first_requests_share_one_discovery_and_one_jwks_fetch() {
    let (key, authority) = one_key().await;
    authority.slow_down(Duration::from_millis(200));
    let validator = authority.validator(None);
    let token = key.sign(&claims());
    accept_concurrently(&validator, &token, 16).await;
    assert_eq!(validator.jwks_fetches(), 1);
    assert_eq!(
        authority.server.requests().len(),
        2,
        "one discovery, one JWKS"
    );
}

#[tokio::test]
async fn a_withdrawn_key_stops_working_once_the_keys_are_refreshed() {
    let old = TestKey::generate("key-old");
    let new = TestKey::generate("key-new");
    let authority = Authority::start(&[&old]).await;
    let options = ValidatorOptions {
        refresh_after: Duration::ZERO,
        ..ValidatorOptions::default()
    };
    let validator = authority.validator_with(None, options);
    accept(&validator, &old.sign(&claims())).await;
    authority.publish(&[&new]);
    let error = refuse(&validator, &old.sign(&claims())).await;
    assert_eq!(error, invalid("the token's signing key is unknown"));
    accept(&validator, &new.sign(&claims())).await;
}

#[tokio::test]
async fn an_unreachable_authority_is_503_without_a_challenge() {
    let key = TestKey::generate("key-a");
    let validator = validator_for(
        &format!("{}/{TENANT}/v2.0", closed_port_base()),
        None,
        ValidatorOptions::default(),
    );
    let error = refuse(&validator, &key.sign(&claims())).await;
    assert!(matches!(error, AuthError::Unavailable(_)), "{error:?}");
    assert_eq!(FunctionError::from(error.clone()).status(), 503);
    assert_eq!(error.www_authenticate(), None);
}

#[tokio::test]
async fn a_failing_jwks_endpoint_is_503_and_retried_only_after_a_cool_down() {
    let (key, authority) = one_key().await;
    *authority.keys.lock().unwrap() = json!("not a JWKS");
    let validator = authority.validator(None);
    let first = refuse(&validator, &key.sign(&claims())).await;
    assert!(matches!(first, AuthError::Unavailable(_)), "{first:?}");
    let second = refuse(&validator, &key.sign(&claims())).await;
    assert!(matches!(second, AuthError::Unavailable(_)), "{second:?}");
    assert_eq!(
        validator.jwks_fetches(),
        1,
        "the failure is remembered for a while"
    );
}

#[tokio::test]
async fn a_plain_http_jwks_uri_elsewhere_than_loopback_is_not_fetched() {
    let key = TestKey::generate("key-a");
    let server = FakeServer::http(|_| {
        Reply::json(
            200,
            &json!({"issuer": v2_issuer(TENANT), "jwks_uri": "http://keys.example.com/keys"}),
        )
    })
    .await;
    let validator = validator_for(
        &format!("{}/{TENANT}/v2.0", server.base),
        None,
        ValidatorOptions::default(),
    );
    refused_as_not_loopback_without_a_fetch(&validator, &key).await;
}

#[tokio::test]
async fn an_authority_that_is_not_https_or_loopback_is_never_fetched() {
    let key = TestKey::generate("key-a");
    let validator = validator_for(
        &format!("http://10.0.0.1/{TENANT}/v2.0"),
        None,
        ValidatorOptions::default(),
    );
    refused_as_not_loopback_without_a_fetch(&validator, &key).await;
}

#[tokio::test]
async fn reasons_are_logged_but_tokens_never_are() {
    captured_logs::install();
    let key = TestKey::generate("key-log");
    let authority = Authority::start(&[&key]).await;
    let validator = authority.validator(Some("Api.Read"));
    let accepted = key.sign(&claims());
    let expired = key.sign(&with(claims(), json!({"exp": now() - 3600})));
    let roleless = key.sign(&with(claims(), json!({"roles": null})));
    let unknown = TestKey::generate("key-unknown").sign(&claims());
    accept(&validator, &accepted).await;
    refuse(&validator, &expired).await;
    refuse(&validator, &roleless).await;
    refuse(&validator, &unknown).await;

    let lines = captured_logs::assert_logged(
        "bearer token refused: the token has expired",
        "the reason is logged at debug",
    );
    for token in [&accepted, &expired, &roleless, &unknown] {
        let signature = token.rsplit('.').next().unwrap();
        for line in &lines {
            assert!(
                !line.contains(signature),
                "a token leaked into the log: {line}"
            );
        }
    }
}

#[tokio::test]
async fn only_access_tokens_are_accepted_never_id_tokens() {
    let (key, authority) = one_key().await;
    let validator = authority.validator(None);
    // A v2.0 ID token as Entra issues it to a sign-in: aud is the app's client id, no appid or
    // azp, no scp, a nonce; even with app roles assigned to the user it is not an access token.
    let id_token = json!({
        "aud": CLIENT_ID, "iss": v2_issuer(TENANT), "iat": now() - 60, "nbf": now() - 60,
        "exp": now() + 3600, "oid": CALLER_OID, "sub": "pairwise-sub", "tid": TENANT,
        "nonce": "n-0S6_WzA2Mj", "preferred_username": "someone@contoso.com",
        "roles": ["Api.Read"], "ver": "2.0",
    });
    let access =
        json!({"aud": CLIENT_ID, "iss": v2_issuer(TENANT), "appid": null, "azp": "v2-app"});
    let cases = [
        ("v2 ID token", id_token.clone()),
        (
            "ID token without nonce",
            with(id_token.clone(), json!({"nonce": null})),
        ),
        (
            "at_hash",
            with(with(claims(), access.clone()), json!({"at_hash": "x"})),
        ),
        ("c_hash", with(claims(), json!({"c_hash": "x"}))),
        (
            "nonce in an access-shaped token",
            with(claims(), json!({"nonce": "n"})),
        ),
        ("idtyp device", with(claims(), json!({"idtyp": "device"}))),
        ("no client", with(claims(), json!({"appid": null}))),
        ("no scp, no roles", with(claims(), json!({"roles": null}))),
        ("empty roles", with(claims(), json!({"roles": []}))),
        (
            "blank scp",
            with(claims(), json!({"roles": null, "scp": " "})),
        ),
    ];
    for (case, claims) in cases {
        let error = refuse(&validator, &key.sign(&claims)).await;
        assert!(matches!(error, AuthError::Invalid(_)), "{case}: {error:?}");
        assert_eq!(FunctionError::from(error.clone()).status(), 401, "{case}");
    }
    // The same shapes with what an access token carries are accepted.
    for (case, claims) in [
        ("v1 app token", claims()),
        (
            "v1 app token idtyp app",
            with(claims(), json!({"idtyp": "app"})),
        ),
        (
            "v2 delegated token",
            with(
                with(claims(), access.clone()),
                json!({"roles": null, "scp": "access_as_user", "idtyp": "user"}),
            ),
        ),
        ("v2 app token", with(claims(), access)),
    ] {
        let caller = validator
            .validate(Some(&format!("Bearer {}", key.sign(&claims))))
            .await;
        assert!(caller.is_ok(), "{case}: {caller:?}");
    }
}
