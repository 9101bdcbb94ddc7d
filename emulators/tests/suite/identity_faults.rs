//! Fault rules and response-shape knobs of the identity emulator (`/_emulator/faults`).

use crate::support::identity::*;
use reqwest::Method;
use serde_json::json;
use time::OffsetDateTime;

#[tokio::test]
async fn statuses_are_served_in_order_then_tokens_again() {
    let emu = Emu::start(&[]);
    emu.fault(json!({"status": 500, "times": 2, "retry_after": "2"}))
        .await;
    emu.fault(json!({"status": 429, "retry_after": 7, "body": "{\"error\":\"slow down\"}"}))
        .await;
    let mut statuses = Vec::new();
    for _ in 0..4 {
        statuses.push(emu.app_service(&[], VAULT).await);
    }
    let codes: Vec<u16> = statuses.iter().map(|a| a.status).collect();
    assert_eq!(codes, [500, 500, 429, 200]);
    assert_eq!(statuses[0].headers["retry-after"], "2");
    assert_eq!(
        statuses[0].json["statusCode"], 500,
        "default body in the App Service shape"
    );
    assert_eq!(statuses[2].headers["retry-after"], "7");
    assert_eq!(statuses[2].json, json!({"error": "slow down"}));
    assert!(statuses[3].headers.get("retry-after").is_none());
    let log = emu.requests().await;
    let injected: Vec<bool> = log["requests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["injected"].as_bool().unwrap())
        .collect();
    assert_eq!(injected, [true, true, true, false]);
}

#[tokio::test]
async fn rules_only_hit_their_protocol_and_can_be_cleared() {
    let emu = Emu::start(&[]);
    emu.fault(json!({"protocol": "imds", "status": 503, "body": "down for updates"}))
        .await;
    assert_eq!(emu.app_service(&[], VAULT).await.status, 200);
    assert_eq!(emu.legacy(&[], VAULT).await.status, 200);
    let imds = emu.imds(&[], VAULT).await;
    assert_eq!((imds.status, imds.body.as_str()), (503, "down for updates"));
    assert_eq!(emu.imds(&[], VAULT).await.status, 200);

    emu.fault(json!([{"protocol": "legacy2017", "status": 500, "persistent": true}]))
        .await;
    assert_eq!(emu.legacy(&[], VAULT).await.status, 500);
    assert_eq!(emu.legacy(&[], VAULT).await.status, 500);
    let queued = emu.admin(Method::GET, "/_emulator/faults", None).await;
    assert_eq!(queued.json["queued"], 1);
    emu.admin(Method::DELETE, "/_emulator/faults", None).await;
    assert_eq!(emu.legacy(&[], VAULT).await.status, 200);
}

#[tokio::test]
async fn wrong_secret_does_not_consume_a_rule() {
    let emu = Emu::start(&[]);
    emu.fault(json!({"status": 500})).await;
    let query = [("api-version", "2019-08-01"), ("resource", VAULT)];
    assert_eq!(
        emu.send(APP_SERVICE, &query, &[("X-IDENTITY-HEADER", "no")])
            .await
            .status,
        401
    );
    assert_eq!(emu.app_service(&[], VAULT).await.status, 500);
}

#[tokio::test]
async fn delay_still_answers_and_takes_at_least_that_long() {
    let emu = Emu::start(&[]);
    emu.fault(json!({"delay_ms": 300})).await;
    let started = std::time::Instant::now();
    let answer = emu.app_service(&[], VAULT).await;
    // A lower bound only: a sleep can run long, never short.
    assert!(started.elapsed() >= std::time::Duration::from_millis(300));
    assert_eq!(answer.status, 200);
    assert_eq!(emu.requests().await["requests"][0]["injected"], true);
}

#[tokio::test]
async fn malformed_and_unsupported_api_version_knobs() {
    let emu = Emu::start(&[]);
    emu.fault(json!({"malformed": true})).await;
    let malformed = emu.app_service(&[], VAULT).await;
    assert_eq!(malformed.status, 200);
    assert!(
        malformed.json.is_null(),
        "body must not be JSON: {}",
        malformed.body
    );
    emu.fault(json!({"unsupported_api_version": true, "protocol": "imds"}))
        .await;
    let refused = emu.imds(&[], VAULT).await;
    assert_eq!(refused.status, 400);
    assert!(refused.body.contains("UnsupportedApiVersion"));
}

#[tokio::test]
async fn lifetime_knob_sets_exp_and_expires_on() {
    let emu = Emu::start(&[]);
    emu.fault(json!({"lifetime_secs": 600, "protocol": "imds"}))
        .await;
    let answer = emu.imds(&[], VAULT).await;
    let claims = answer.claims();
    assert_eq!(
        claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap(),
        600
    );
    assert_eq!(answer.json["expires_in"], "600");
    let normal = emu.imds(&[], VAULT).await;
    assert_eq!(normal.json["expires_in"], LIFETIME.to_string());
}

/// The expected rendering of `exp` in each format, computed independently with `time`.
fn expected(format: &str, exp: i64) -> serde_json::Value {
    let at = OffsetDateTime::from_unix_timestamp(exp).unwrap();
    let hour12 = at.hour() % 12;
    let meridiem = if at.hour() < 12 { "AM" } else { "PM" };
    let (month, day, year) = (u8::from(at.month()), at.day(), at.year());
    let (minute, second) = (at.minute(), at.second());
    match format {
        "epoch-string" => json!(exp.to_string()),
        "epoch-number" => json!(exp),
        "date-linux" => json!(format!(
            "{month:02}/{day:02}/{year} {:02}:{minute:02}:{second:02} +00:00",
            at.hour()
        )),
        "date-windows" => {
            let hour = if hour12 == 0 { 12 } else { hour12 };
            json!(format!(
                "{month}/{day}/{year} {hour}:{minute:02}:{second:02} {meridiem} +00:00"
            ))
        }
        "date-pm" => json!(format!(
            "{month:02}/{day:02}/{year} {hour12:02}:{minute:02}:{second:02} {meridiem} +00:00"
        )),
        other => panic!("unknown format {other}"),
    }
}

#[tokio::test]
async fn expires_on_formats() {
    let emu = Emu::start(&[]);
    for format in [
        "epoch-string",
        "epoch-number",
        "date-windows",
        "date-linux",
        "date-pm",
    ] {
        emu.fault(json!({"expires_on_format": format, "protocol": "legacy2017"}))
            .await;
        let answer = emu.legacy(&[], VAULT).await;
        assert_eq!(answer.status, 200);
        let exp = answer.claims()["exp"].as_i64().unwrap();
        assert_eq!(answer.json["expires_on"], expected(format, exp), "{format}");
    }
}

#[tokio::test]
async fn legacy_default_format_comes_from_the_config() {
    let mut config = base_config();
    config["legacy_expires_on_format"] = json!("date-linux");
    let emu = Emu::start_with(config, &[]);
    let legacy = emu.legacy(&[], VAULT).await;
    let exp = legacy.claims()["exp"].as_i64().unwrap();
    assert_eq!(legacy.json["expires_on"], expected("date-linux", exp));
    let app_service = emu.app_service(&[], VAULT).await;
    assert!(app_service.json["expires_on"].is_string());
    assert!(app_service.expires_on_is_epoch_string());
}

#[tokio::test]
async fn invalid_rules_are_refused_with_400() {
    let emu = Emu::start(&[]);
    for rule in [
        json!({"status": 1000}),
        json!({"protocol": "cloudshell"}),
        json!({"expires_on_format": "iso"}),
        json!({"times": 0}),
        json!({"unknown": true}),
        json!("just a string"),
    ] {
        let answer = emu
            .admin(Method::POST, "/_emulator/faults", Some(rule.clone()))
            .await;
        assert_eq!(answer.status, 400, "{rule}");
    }
    assert_eq!(
        emu.admin(Method::GET, "/_emulator/faults", None).await.json["queued"],
        0
    );
    for (method, path, expected) in [
        (Method::PUT, "/_emulator/faults", 405),
        (Method::GET, "/_emulator/nothing", 404),
    ] {
        let answer = emu.admin(method.clone(), path, None).await;
        assert_eq!(answer.status, expected, "{method} {path}");
    }
}

#[tokio::test]
async fn reset_closes_the_connection_without_an_answer() {
    let emu = Emu::start(&[]);
    emu.fault(json!({"reset": true})).await;
    let mut url = url::Url::parse(&emu.url(APP_SERVICE)).unwrap();
    url.query_pairs_mut()
        .extend_pairs([("api-version", "2019-08-01"), ("resource", VAULT)]);
    let error = emu
        .client
        .get(url)
        .header("X-IDENTITY-HEADER", &emu.secret)
        .send()
        .await
        .expect_err("no answer may arrive");
    assert!(!error.is_status() && !error.is_timeout(), "{error}");
    assert_eq!(emu.requests().await["requests"][0]["injected"], true);
    assert_eq!(emu.app_service(&[], VAULT).await.status, 200, "used up");
}
