//! Fixtures for the identity emulator tests: a fixed configuration and a small client.

use serde_json::{Value, json};

use test_kit::emulator::{Running, spawn_emulator, temp_json};
pub use test_kit::jwt::{decode_claims, decode_header};

pub const TENANT: &str = "72f988bf-86f1-41af-91ab-2d7cd011db47";
pub const SYSTEM_CLIENT: &str = "11111111-1111-4111-8111-111111111111";
pub const SYSTEM_OBJECT: &str = "22222222-2222-4222-8222-222222222222";
pub const USER_CLIENT: &str = "33333333-3333-4333-8333-333333333333";
pub const USER_OBJECT: &str = "44444444-4444-4444-8444-444444444444";
pub const USER_RESOURCE_ID: &str = "/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/rg/providers/Microsoft.ManagedIdentity/userAssignedIdentities/app-ua";
pub const VAULT: &str = "https://vault.azure.net";
pub const API: &str = "api://55555555-5555-4555-8555-555555555555";
pub const LIFETIME: i64 = 7200;
pub const APP_SERVICE: &str = "/msi/token";
pub const IMDS: &str = "/metadata/identity/oauth2/token";

/// Two identities: a system-assigned one and a user-assigned one with roles on [`API`].
pub fn base_config() -> Value {
    json!({
        "tenant_id": TENANT,
        "token_lifetime_secs": LIFETIME,
        "identities": [
            {"name": "system", "system_assigned": true, "client_id": SYSTEM_CLIENT, "object_id": SYSTEM_OBJECT},
            {"name": "app-ua", "client_id": USER_CLIENT, "object_id": USER_OBJECT,
             "resource_id": USER_RESOURCE_ID, "roles": {API: ["Api.Read", "Api.Write"]}}
        ]
    })
}

/// [`base_config`] without the system-assigned identity.
pub fn config_without_system() -> Value {
    let mut config = base_config();
    config["identities"].as_array_mut().unwrap().remove(0);
    config
}

/// One HTTP answer.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub body: String,
    /// The body as JSON, or `null` when it is not JSON.
    pub json: Value,
}

impl Answer {
    /// Checks the answer is a 200 (showing the body when not) and hands it back.
    #[track_caller]
    pub fn ok(self) -> Self {
        assert_eq!(self.status, 200, "{}", self.body);
        self
    }

    /// Whether `expires_on` is a string holding whole epoch seconds (the default format).
    pub fn expires_on_is_epoch_string(&self) -> bool {
        self.json["expires_on"]
            .as_str()
            .is_some_and(|text| text.parse::<i64>().is_ok())
    }

    /// The claims of the `access_token` in the body (decoded, not verified).
    pub fn claims(&self) -> Value {
        decode_claims(self.json["access_token"].as_str().expect("access_token"))
    }
}

/// A running identity emulator plus a client.
pub struct Emu {
    pub process: Running,
    pub secret: String,
    pub client: reqwest::Client,
    _config: tempfile::NamedTempFile,
}

impl Emu {
    /// Starts the emulator with [`base_config`] and extra flags.
    pub fn start(extra: &[&str]) -> Self {
        Self::start_with(base_config(), extra)
    }

    /// Starts the emulator with `config` and extra flags.
    pub fn start_with(config: Value, extra: &[&str]) -> Self {
        let file = temp_json(&config);
        let path = file.path().to_str().unwrap().to_string();
        let mut args = vec!["identity", "--config", path.as_str(), "--port", "0"];
        args.extend_from_slice(extra);
        let process = spawn_emulator(&args);
        let secret = process.ready_str("header_secret");
        let client = reqwest::Client::builder()
            .no_proxy()
            .timeout(std::time::Duration::from_secs(30))
            .build()
            .unwrap();
        Self {
            process,
            secret,
            client,
            _config: file,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.process.base_url)
    }

    /// GET `path?query` with `headers`.
    pub async fn send(
        &self,
        path: &str,
        query: &[(&str, &str)],
        headers: &[(&str, &str)],
    ) -> Answer {
        let mut url = url::Url::parse(&self.url(path)).unwrap();
        url.query_pairs_mut().extend_pairs(query);
        let mut request = self.client.get(url);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        into_answer(request.send().await.unwrap()).await
    }

    /// An App Service 2019 token request with the right secret.
    pub async fn app_service(&self, selectors: &[(&str, &str)], resource: &str) -> Answer {
        let mut query = vec![("api-version", "2019-08-01"), ("resource", resource)];
        query.extend_from_slice(selectors);
        self.send(APP_SERVICE, &query, &[("X-IDENTITY-HEADER", &self.secret)])
            .await
    }

    /// A legacy 2017 token request with the right secret.
    pub async fn legacy(&self, selectors: &[(&str, &str)], resource: &str) -> Answer {
        let mut query = vec![("api-version", "2017-09-01"), ("resource", resource)];
        query.extend_from_slice(selectors);
        self.send(APP_SERVICE, &query, &[("secret", &self.secret)])
            .await
    }

    /// An IMDS token request with `Metadata: true`.
    pub async fn imds(&self, selectors: &[(&str, &str)], resource: &str) -> Answer {
        let mut query = vec![("api-version", "2018-02-01"), ("resource", resource)];
        query.extend_from_slice(selectors);
        self.send(IMDS, &query, &[("Metadata", "true")]).await
    }

    /// Calls an admin or authority endpoint with an optional JSON body.
    pub async fn admin(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Answer {
        let mut request = self.client.request(method, self.url(path));
        if let Some(body) = body {
            request = request
                .header("content-type", "application/json")
                .body(body.to_string());
        }
        into_answer(request.send().await.unwrap()).await
    }

    /// Queues fault rules; asserts they were accepted.
    pub async fn fault(&self, rule: Value) {
        let answer = self
            .admin(reqwest::Method::POST, "/_emulator/faults", Some(rule))
            .await;
        assert_eq!(answer.status, 200, "{}", answer.body);
    }

    /// `GET /_emulator/requests`.
    pub async fn requests(&self) -> Value {
        self.admin(reqwest::Method::GET, "/_emulator/requests", None)
            .await
            .json
    }

    /// Fetches `GET /{tenant}/v2.0/.well-known/openid-configuration`, then its `jwks_uri`.
    pub async fn jwks_via_discovery(&self) -> Value {
        let discovery = self
            .admin(
                reqwest::Method::GET,
                &format!("/{TENANT}/v2.0/.well-known/openid-configuration"),
                None,
            )
            .await;
        assert_eq!(discovery.status, 200, "{}", discovery.body);
        let jwks_uri = discovery.json["jwks_uri"].as_str().unwrap();
        let answer = self.client.get(jwks_uri).send().await.unwrap();
        into_answer(answer).await.json
    }
}

async fn into_answer(response: reqwest::Response) -> Answer {
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let body = response.text().await.unwrap();
    let json = serde_json::from_str(&body).unwrap_or(Value::Null);
    Answer {
        status,
        headers,
        body,
        json,
    }
}

/// Verifies `token` (RS256) against `jwks` for `audience` and the v1 issuer; returns the claims.
pub fn verify(token: &str, jwks: &Value, audience: &str) -> Result<Value, String> {
    let kid = decode_header(token)["kid"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let key = jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["kid"] == kid.as_str())
        .ok_or_else(|| format!("kid {kid} not in the JWKS"))?;
    let decoding_key = jsonwebtoken::DecodingKey::from_rsa_components(
        key["n"].as_str().unwrap(),
        key["e"].as_str().unwrap(),
    )
    .map_err(|e| e.to_string())?;
    let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::RS256);
    validation.set_audience(&[audience]);
    validation.set_issuer(&[format!("https://sts.windows.net/{TENANT}/")]);
    validation.leeway = 0;
    validation.validate_nbf = true;
    jsonwebtoken::decode::<Value>(token, &decoding_key, &validation)
        .map(|data| data.claims)
        .map_err(|e| e.to_string())
}
