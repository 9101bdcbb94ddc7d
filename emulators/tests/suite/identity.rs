//! The identity emulator as a process: the three token protocols, their selectors and refusals.

use crate::support::identity::*;
use serde_json::json;

#[tokio::test]
async fn app_service_2019_serves_system_and_every_selector() {
    let emu = Emu::start(&[]);
    let system = emu.app_service(&[], VAULT).await.ok();
    assert_eq!(system.json["token_type"], "Bearer");
    assert_eq!(system.json["resource"], VAULT);
    assert_eq!(system.json["client_id"], SYSTEM_CLIENT);
    assert!(system.expires_on_is_epoch_string());
    assert!(system.json.get("expires_in").is_none());
    let claims = system.claims();
    assert_eq!(claims["oid"], SYSTEM_OBJECT);
    assert_eq!(claims["sub"], SYSTEM_OBJECT);
    assert_eq!(claims["appid"], SYSTEM_CLIENT);
    assert_eq!(claims["aud"], VAULT);
    assert_eq!(claims["iss"], format!("https://sts.windows.net/{TENANT}/"));
    assert_eq!(claims["tid"], TENANT);
    assert_eq!(
        (claims["idtyp"].as_str(), claims["ver"].as_str()),
        (Some("app"), Some("1.0"))
    );
    assert_eq!(
        claims["exp"].as_i64().unwrap().to_string(),
        system.json["expires_on"].as_str().unwrap()
    );
    assert!(
        claims.get("roles").is_none(),
        "no roles configured for the vault audience"
    );

    for (name, value) in [
        ("client_id", USER_CLIENT),
        ("principal_id", USER_OBJECT),
        ("object_id", USER_OBJECT),
        ("mi_res_id", USER_RESOURCE_ID),
    ] {
        let user = emu.app_service(&[(name, value)], API).await;
        assert_eq!(user.status, 200, "{name}: {}", user.body);
        assert_eq!(user.json["client_id"], USER_CLIENT, "{name}");
        let claims = user.claims();
        assert_eq!(claims["oid"], USER_OBJECT, "{name}");
        assert_eq!(claims["aud"], API, "{name}: audience exactly as requested");
        assert_eq!(claims["roles"], json!(["Api.Read", "Api.Write"]), "{name}");
        assert_eq!(claims["xms_mirid"], USER_RESOURCE_ID);
    }
}

#[tokio::test]
async fn legacy_2017_uses_the_secret_header_and_clientid() {
    let emu = Emu::start(&[]);
    let system = emu.legacy(&[], VAULT).await.ok();
    assert_eq!(system.claims()["oid"], SYSTEM_OBJECT);
    assert!(system.expires_on_is_epoch_string(), "default epoch string");
    let user = emu.legacy(&[("clientid", USER_CLIENT)], VAULT).await;
    assert_eq!(user.status, 200, "{}", user.body);
    assert_eq!(user.claims()["oid"], USER_OBJECT);
    let upper_case_header = emu
        .send(
            "/msi/token",
            &[("api-version", "2017-09-01"), ("resource", VAULT)],
            &[("SECRET", &emu.secret)],
        )
        .await;
    assert_eq!(
        upper_case_header.status, 200,
        "header names are case-insensitive"
    );
}

#[tokio::test]
async fn imds_serves_system_and_its_selectors_with_the_extra_fields() {
    let emu = Emu::start(&[]);
    let system = emu.imds(&[], VAULT).await.ok();
    assert_eq!(system.json["refresh_token"], "");
    let expires_in: i64 = system.json["expires_in"].as_str().unwrap().parse().unwrap();
    let not_before: i64 = system.json["not_before"].as_str().unwrap().parse().unwrap();
    let expires_on: i64 = system.json["expires_on"].as_str().unwrap().parse().unwrap();
    assert_eq!(expires_on - not_before, expires_in);
    assert_eq!(expires_in, LIFETIME);
    assert_eq!(system.json["ext_expires_in"], system.json["expires_in"]);
    for (name, value) in [
        ("client_id", USER_CLIENT),
        ("object_id", USER_OBJECT),
        ("msi_res_id", USER_RESOURCE_ID),
    ] {
        let user = emu.imds(&[(name, value)], VAULT).await;
        assert_eq!(user.status, 200, "{name}: {}", user.body);
        assert_eq!(user.claims()["oid"], USER_OBJECT, "{name}");
    }
}

#[tokio::test]
async fn imds_without_metadata_header_gets_the_platform_400() {
    let emu = Emu::start(&[]);
    for headers in [
        vec![],
        vec![("Metadata", "false")],
        vec![("X-IDENTITY-HEADER", emu.secret.as_str())],
    ] {
        let answer = emu
            .send(
                IMDS,
                &[("api-version", "2018-02-01"), ("resource", VAULT)],
                &headers,
            )
            .await;
        assert_eq!(answer.status, 400);
        assert_eq!(
            answer.json,
            json!({"error": "invalid_request", "error_description": "Required metadata header not specified"})
        );
    }
}

#[tokio::test]
async fn unknown_ids_foreign_and_repeated_selectors_get_the_platform_400() {
    let emu = Emu::start(&[]);
    let app_service_refusals = [
        emu.app_service(
            &[("client_id", "00000000-0000-0000-0000-000000000000")],
            VAULT,
        )
        .await,
        emu.app_service(&[("clientid", USER_CLIENT)], VAULT).await,
        emu.app_service(&[("msi_res_id", USER_RESOURCE_ID)], VAULT)
            .await,
        emu.app_service(&[("resource_id", USER_RESOURCE_ID)], VAULT)
            .await,
        emu.app_service(
            &[("client_id", USER_CLIENT), ("object_id", USER_OBJECT)],
            VAULT,
        )
        .await,
        emu.legacy(&[("client_id", USER_CLIENT)], VAULT).await,
        emu.legacy(&[("clientid", "nope")], VAULT).await,
    ];
    for answer in app_service_refusals {
        assert_eq!(answer.status, 400, "{}", answer.body);
        assert_eq!(answer.json["statusCode"], 400);
        assert!(
            answer.json["correlationId"].as_str().unwrap().len() == 36,
            "{}",
            answer.body
        );
        assert!(answer.json["message"].is_string());
    }
    let unknown = emu.app_service(&[("principal_id", "nope")], VAULT).await;
    assert_eq!(
        unknown.json["message"],
        "Unable to load the proper Managed Identity."
    );
    let imds_refusals = [
        emu.imds(&[("client_id", "nope")], VAULT).await,
        emu.imds(&[("mi_res_id", USER_RESOURCE_ID)], VAULT).await,
        emu.imds(&[("principal_id", USER_OBJECT)], VAULT).await,
        emu.imds(
            &[("client_id", USER_CLIENT), ("msi_res_id", USER_RESOURCE_ID)],
            VAULT,
        )
        .await,
    ];
    for answer in imds_refusals {
        assert_eq!(answer.status, 400, "{}", answer.body);
        assert_eq!(answer.json["error"], "invalid_request");
    }
    let not_found = emu.imds(&[("object_id", "nope")], VAULT).await;
    assert_eq!(
        not_found.json,
        json!({"error": "invalid_request", "error_description": "Identity not found"})
    );
}

#[tokio::test]
async fn system_identity_absent_means_400_without_selector() {
    let emu = Emu::start_with(config_without_system(), &[]);
    assert_eq!(emu.app_service(&[], VAULT).await.status, 400);
    assert_eq!(
        emu.imds(&[], VAULT).await.json["error_description"],
        "Identity not found"
    );
    emu.app_service(&[("client_id", USER_CLIENT)], VAULT)
        .await
        .ok();
}

#[tokio::test]
async fn secret_header_is_enforced() {
    let emu = Emu::start(&[]);
    let query = [("api-version", "2019-08-01"), ("resource", VAULT)];
    let missing = emu.send(APP_SERVICE, &query, &[]).await;
    assert_eq!(missing.status, 400);
    let wrong = emu
        .send(APP_SERVICE, &query, &[("X-IDENTITY-HEADER", "wrong")])
        .await;
    assert_eq!(wrong.status, 401);
    let other_protocols_header = emu
        .send(APP_SERVICE, &query, &[("secret", &emu.secret)])
        .await;
    assert_eq!(other_protocols_header.status, 400);
    let legacy_query = [("api-version", "2017-09-01"), ("resource", VAULT)];
    let legacy_with_2019_header = emu
        .send(
            APP_SERVICE,
            &legacy_query,
            &[("X-IDENTITY-HEADER", &emu.secret)],
        )
        .await;
    assert_eq!(legacy_with_2019_header.status, 400);
    let legacy_wrong = emu
        .send(APP_SERVICE, &legacy_query, &[("secret", "nope")])
        .await;
    assert_eq!(legacy_wrong.status, 401);
    for answer in [&missing, &wrong, &legacy_wrong] {
        assert!(
            !answer.body.contains(&emu.secret),
            "the secret must not be echoed"
        );
        assert!(answer.json.get("access_token").is_none());
    }
}

#[tokio::test]
async fn unsupported_api_versions_and_missing_resource_are_400() {
    let emu = Emu::start(&[]);
    let headers = [
        ("X-IDENTITY-HEADER", emu.secret.as_str()),
        ("Metadata", "true"),
    ];
    for (path, version) in [
        (APP_SERVICE, "2020-01-01"),
        (APP_SERVICE, ""),
        (IMDS, "2017-09-01"),
    ] {
        let answer = emu
            .send(
                path,
                &[("api-version", version), ("resource", VAULT)],
                &headers,
            )
            .await;
        assert_eq!(answer.status, 400, "{path} {version}");
        assert!(
            answer.body.contains("UnsupportedApiVersion"),
            "{}",
            answer.body
        );
    }
    let no_version = emu
        .send(APP_SERVICE, &[("resource", VAULT)], &headers)
        .await;
    assert!(no_version.body.contains("UnsupportedApiVersion"));
    let no_resource = emu
        .send(APP_SERVICE, &[("api-version", "2019-08-01")], &headers)
        .await;
    assert_eq!(no_resource.status, 400);
    let imds_no_resource = emu
        .send(IMDS, &[("api-version", "2018-02-01")], &headers)
        .await;
    assert_eq!(imds_no_resource.json["error"], "invalid_request");
}

#[tokio::test]
async fn header_secret_comes_from_flag_then_config_then_random() {
    let flagged = Emu::start(&["--header-secret", "from-flag"]);
    assert_eq!(flagged.secret, "from-flag");
    assert_eq!(flagged.app_service(&[], VAULT).await.status, 200);
    let mut config = base_config();
    config["header_secret"] = json!("from-config");
    assert_eq!(Emu::start_with(config.clone(), &[]).secret, "from-config");
    assert_eq!(
        Emu::start_with(config, &["--header-secret", "flag-wins"]).secret,
        "flag-wins"
    );
    let first = Emu::start(&[]);
    let second = Emu::start(&[]);
    let line = &first.process.ready_line;
    assert!(line.starts_with("{\"ready\":\"http://127.0.0.1:"), "{line}");
    assert_eq!(first.process.ready_json["tenant_id"], TENANT);
    assert!(first.secret.len() >= 32);
    assert_ne!(first.secret, second.secret, "random per process");
}

#[tokio::test]
async fn request_log_records_protocol_query_status_but_no_secrets() {
    let emu = Emu::start(&[]);
    let token = emu.app_service(&[("client_id", USER_CLIENT)], VAULT).await;
    emu.legacy(&[], VAULT).await;
    emu.imds(&[("client_id", "nope")], VAULT).await;
    let log = emu.requests().await;
    assert_eq!(log["count"], 3);
    let entries = log["requests"].as_array().unwrap();
    let summary: Vec<(String, u64)> = entries
        .iter()
        .map(|e| {
            (
                e["protocol"].as_str().unwrap().to_string(),
                e["status"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            ("appservice2019".to_string(), 200),
            ("legacy2017".to_string(), 200),
            ("imds".to_string(), 400)
        ]
    );
    assert_eq!(entries[0]["query"]["client_id"], USER_CLIENT);
    assert_eq!(entries[0]["query"]["resource"], VAULT);
    // Each protocol's secret header is recorded by name only.
    for (entry, header) in [(0, "x-identity-header"), (1, "secret")] {
        let names = entries[entry]["header_names"].as_array().unwrap();
        assert!(
            names.iter().any(|n| n == header),
            "entry {entry}: {names:?}"
        );
    }
    let text = log.to_string();
    assert!(!text.contains(&emu.secret));
    assert!(!text.contains(token.json["access_token"].as_str().unwrap()));
    emu.admin(reqwest::Method::DELETE, "/_emulator/requests", None)
        .await;
    assert_eq!(emu.requests().await["count"], 0);
}

#[tokio::test]
async fn logs_name_protocol_resource_selector_status_and_never_secrets() {
    let emu = Emu::start(&[]);
    let token = emu.app_service(&[("client_id", USER_CLIENT)], VAULT).await;
    let logs = emu.process.wait_for_log("appservice2019");
    let line = logs.iter().find(|l| l.contains("appservice2019")).unwrap();
    assert!(
        line.contains(VAULT) && line.contains(USER_CLIENT) && line.contains("200"),
        "{line}"
    );
    let all = logs.join("\n");
    assert!(!all.contains(&emu.secret));
    assert!(!all.contains(token.json["access_token"].as_str().unwrap()));
}

#[tokio::test]
async fn exits_cleanly_on_sigterm() {
    let mut emu = Emu::start(&[]);
    assert_eq!(emu.app_service(&[], VAULT).await.status, 200);
    let status = emu.process.terminate();
    assert!(status.success(), "exit status {status:?}");
}

#[tokio::test]
async fn bad_command_lines_are_usage_errors() {
    let binary = env!("CARGO_BIN_EXE_emulators");
    for args in [
        vec![],
        vec!["identity"],
        vec!["identity", "--config"],
        vec!["nope"],
        vec!["identity", "--config", "x", "--bogus"],
    ] {
        let output = std::process::Command::new(binary)
            .args(&args)
            .output()
            .unwrap();
        assert_eq!(output.status.code(), Some(2), "{args:?}");
        assert!(
            String::from_utf8_lossy(&output.stderr).contains("usage:"),
            "{args:?}"
        );
    }
    let missing_file = std::process::Command::new(binary)
        .args([
            "identity",
            "--config",
            "/nonexistent/config.json",
            "--port",
            "0",
        ])
        .output()
        .unwrap();
    assert_eq!(missing_file.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&missing_file.stderr).contains("/nonexistent/config.json"));
}

#[tokio::test]
async fn odd_input_never_takes_the_emulator_down() {
    let emu = Emu::start(&[]);
    let base = emu.process.base_url.clone();
    let raw_queries = [
        "/msi/token?api-version=2019-08-01&resource=%ZZ%",
        "/msi/token?api-version=2019-08-01&resource=%FF%FE",
        "/msi/token?&&&=&api-version&resource",
        "/metadata/identity/oauth2/token?api-version=2018-02-01&resource=x&client_id=%00",
        "/%2e%2e/%2e%2e/etc/passwd",
        "/_emulator/",
        "//v2.0/.well-known/openid-configuration",
    ];
    for path in raw_queries {
        let answer = emu
            .client
            .get(format!("{base}{path}"))
            .header("X-IDENTITY-HEADER", &emu.secret)
            .header(
                "Metadata",
                reqwest::header::HeaderValue::from_bytes(b"tr\xffue").unwrap(),
            )
            .send()
            .await
            .unwrap();
        assert!(
            !answer.status().is_server_error(),
            "{path}: {}",
            answer.status()
        );
    }
    let long_resource = "r".repeat(8 * 1024);
    assert_eq!(emu.app_service(&[], &long_resource).await.status, 200);
    let post = emu
        .client
        .post(emu.url(APP_SERVICE))
        .body("x")
        .send()
        .await
        .unwrap();
    assert_eq!(post.status().as_u16(), 405);
    let huge = vec![b'x'; 2 * 1024 * 1024];
    // A separate, unpooled client: the server closes a connection whose body it refused.
    let one_shot = reqwest::Client::builder()
        .no_proxy()
        .pool_max_idle_per_host(0)
        .build()
        .unwrap();
    let too_big = one_shot
        .post(emu.url("/_emulator/faults"))
        .body(huge)
        .send()
        .await;
    if let Ok(answer) = too_big {
        assert_eq!(answer.status().as_u16(), 413);
        assert_eq!(answer.headers()["connection"], "close");
    }
    assert_eq!(
        emu.app_service(&[], VAULT).await.status,
        200,
        "still serving"
    );
}
