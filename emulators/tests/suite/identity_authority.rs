//! The OpenID authority of the identity emulator: discovery, JWKS, key rotation and minting.

use crate::support::identity::*;
use reqwest::Method;
use serde_json::json;

#[tokio::test]
async fn discovery_documents_point_at_the_served_jwks() {
    let emu = Emu::start(&[]);
    let documents = [
        (
            format!("/{TENANT}/v2.0/.well-known/openid-configuration"),
            format!("https://login.microsoftonline.com/{TENANT}/v2.0"),
            format!("/{TENANT}/discovery/v2.0/keys"),
        ),
        (
            format!("/{TENANT}/.well-known/openid-configuration"),
            format!("https://sts.windows.net/{TENANT}/"),
            format!("/{TENANT}/discovery/keys"),
        ),
    ];
    for (path, issuer, jwks_path) in documents {
        let document = emu.admin(Method::GET, &path, None).await;
        assert_eq!(document.json["issuer"], issuer, "{path}");
        assert_eq!(document.json["jwks_uri"], emu.url(&jwks_path), "{path}");
        assert_eq!(
            document.json["id_token_signing_alg_values_supported"],
            json!(["RS256"]),
            "{path}"
        );
        assert!(document.json["token_endpoint"].is_string(), "{path}");
    }
    let common_v2 = emu
        .admin(
            Method::GET,
            "/common/v2.0/.well-known/openid-configuration",
            None,
        )
        .await;
    assert_eq!(
        common_v2.json["issuer"],
        "https://login.microsoftonline.com/{tenantid}/v2.0"
    );

    let paths = [
        format!("/{TENANT}/discovery/v2.0/keys"),
        format!("/{TENANT}/discovery/keys"),
        "/common/discovery/v2.0/keys".to_string(),
    ];
    let mut documents = Vec::new();
    for path in paths {
        let answer = emu.admin(Method::GET, &path, None).await;
        assert_eq!(answer.status, 200, "{path}");
        documents.push(answer.json);
    }
    assert!(documents.windows(2).all(|pair| pair[0] == pair[1]));
    let key = &documents[0]["keys"][0];
    assert_eq!(
        (
            key["kty"].as_str(),
            key["use"].as_str(),
            key["alg"].as_str()
        ),
        (Some("RSA"), Some("sig"), Some("RS256"))
    );
    assert_eq!(key["e"], "AQAB");

    let unknown = emu
        .admin(Method::GET, "/someone-else/discovery/v2.0/keys", None)
        .await;
    assert_eq!(unknown.status, 400);
    assert!(
        unknown.json["error_description"]
            .as_str()
            .unwrap()
            .contains("AADSTS90002")
    );
}

#[tokio::test]
async fn tokens_of_every_protocol_verify_against_the_jwks() {
    let emu = Emu::start(&[]);
    let jwks = emu.jwks_via_discovery().await;
    let answers = [
        emu.app_service(&[("client_id", USER_CLIENT)], API).await,
        emu.legacy(&[], VAULT).await,
        emu.imds(&[("msi_res_id", USER_RESOURCE_ID)], VAULT).await,
    ];
    for answer in &answers {
        let token = answer.json["access_token"].as_str().unwrap();
        let resource = answer.json["resource"].as_str().unwrap();
        let claims = verify(token, &jwks, resource).unwrap();
        assert_eq!(claims["aud"], resource);
        assert_eq!(decode_header(token)["typ"], "JWT");
        assert_eq!(decode_header(token)["alg"], "RS256");
    }
    let wrong_audience = answers[1].json["access_token"].as_str().unwrap();
    assert!(
        verify(wrong_audience, &jwks, API).is_err(),
        "audience must be checked"
    );
}

#[tokio::test]
async fn rotation_publishes_the_new_key_and_keeps_or_drops_the_old() {
    let emu = Emu::start(&[]);
    let before = emu.app_service(&[], VAULT).await.json["access_token"]
        .as_str()
        .unwrap()
        .to_string();
    let old_kid = decode_header(&before)["kid"].as_str().unwrap().to_string();

    let rotated = emu
        .admin(Method::POST, "/_emulator/rotate-keys", None)
        .await;
    let new_kid = rotated.json["kid"].as_str().unwrap().to_string();
    assert_ne!(new_kid, old_kid);
    let after = emu.app_service(&[], VAULT).await.json["access_token"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(decode_header(&after)["kid"], new_kid.as_str());
    let jwks = emu.jwks_via_discovery().await;
    assert_eq!(jwks["keys"].as_array().unwrap().len(), 2);
    assert!(
        verify(&before, &jwks, VAULT).is_ok(),
        "old key stays published"
    );
    assert!(verify(&after, &jwks, VAULT).is_ok());

    let dropped = emu
        .admin(
            Method::POST,
            "/_emulator/rotate-keys",
            Some(json!({"drop_old": true})),
        )
        .await;
    let jwks = emu.jwks_via_discovery().await;
    assert_eq!(jwks["keys"].as_array().unwrap().len(), 1);
    assert_eq!(jwks["keys"][0]["kid"], dropped.json["kid"]);
    assert!(
        verify(&after, &jwks, VAULT).is_err(),
        "dropped key no longer verifies"
    );
}

async fn mint(emu: &Emu, body: serde_json::Value) -> (String, serde_json::Value) {
    let answer = emu.admin(Method::POST, "/_emulator/mint", Some(body)).await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    (
        answer.json["access_token"].as_str().unwrap().to_string(),
        answer.json["claims"].clone(),
    )
}

#[tokio::test]
async fn mint_overrides_claims_for_negative_tests() {
    let emu = Emu::start(&[]);
    let jwks = emu.jwks_via_discovery().await;

    let (default_token, _) = mint(&emu, json!({})).await;
    let claims = verify(&default_token, &jwks, VAULT).unwrap();
    assert_eq!(claims["oid"], SYSTEM_OBJECT);

    let (custom, claims) = mint(
        &emu,
        json!({"identity": "app-ua", "aud": API, "roles": ["X.Y"], "lifetime_secs": 60}),
    )
    .await;
    let verified = verify(&custom, &jwks, API).unwrap();
    assert_eq!(
        verified, claims,
        "the answer's claims are the token's claims"
    );
    assert_eq!(verified["roles"], json!(["X.Y"]));
    assert_eq!(verified["oid"], USER_OBJECT);
    assert_eq!(
        verified["exp"].as_i64().unwrap() - verified["iat"].as_i64().unwrap(),
        60
    );

    let (expired, _) = mint(&emu, json!({"lifetime_secs": -120})).await;
    assert!(
        verify(&expired, &jwks, VAULT)
            .unwrap_err()
            .contains("Expired")
    );
    let (bad_issuer, _) = mint(&emu, json!({"claims": {"iss": "https://evil.example/"}})).await;
    assert!(
        verify(&bad_issuer, &jwks, VAULT)
            .unwrap_err()
            .contains("Issuer")
    );
    let future_nbf = time::OffsetDateTime::now_utc().unix_timestamp() + 3600;
    let (not_yet, _) = mint(&emu, json!({"nbf": future_nbf})).await;
    assert!(
        verify(&not_yet, &jwks, VAULT)
            .unwrap_err()
            .contains("Immature")
    );
    let (no_exp, claims) = mint(&emu, json!({"exp": null})).await;
    assert!(claims.get("exp").is_none());
    assert!(verify(&no_exp, &jwks, VAULT).is_err());

    let (unknown_kid, _) = mint(&emu, json!({"kid": "not-a-published-kid"})).await;
    assert_eq!(decode_header(&unknown_kid)["kid"], "not-a-published-kid");
    assert!(
        verify(&unknown_kid, &jwks, VAULT)
            .unwrap_err()
            .contains("not in the JWKS")
    );
    let current_kid = jwks["keys"][0]["kid"].as_str().unwrap();
    let (forged, _) = mint(&emu, json!({"unpublished_key": true, "kid": current_kid})).await;
    assert!(
        verify(&forged, &jwks, VAULT)
            .unwrap_err()
            .contains("InvalidSignature")
    );

    let bad = emu
        .admin(
            Method::POST,
            "/_emulator/mint",
            Some(json!({"identity": "ghost"})),
        )
        .await;
    assert_eq!(bad.status, 400);
    let not_json = emu
        .client
        .post(emu.url("/_emulator/mint"))
        .body("{")
        .send()
        .await
        .unwrap();
    assert_eq!(not_json.status().as_u16(), 400);
}
