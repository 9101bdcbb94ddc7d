//! Every parser of outside input, each with its valid seeds and the call that drives it.
//!
//! A target's `run` only has to not panic: results are thrown away (errors are the expected
//! answer to most generated inputs). Where a parser sits behind the runtime (the host's envelope,
//! a forwarded request) the target goes through the runtime itself, with stand-in functions that
//! read the request the way the real ones do, so the decoding, routing and validation run as in
//! production without any network.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use custom_handler::contract::{InvocationRequest, Timestamp};
use custom_handler::dispatch::{ForwardedRequest, Route, Runtime};
use custom_handler::http::{HttpRequest, HttpResponse};
use custom_handler::registry::{
    Implemented, Registry, RouteTemplate, RuntimeOptions, load_declared, parse_function_json,
    parse_host_options,
};
use futures::future::BoxFuture;
use handler::auth::{check_unsigned, usable_kids};
use handler::clients::downstream::DownstreamApi;
use handler::clients::names::{
    MAX_BLOB_BYTES, SecretAllowlist, validate_blob_name, validate_body_size,
    validate_container_name, validate_content_type, validate_secret_name, validate_secret_version,
};
use handler::error::FunctionError;
use managed_identity::{
    SourceKind, check_token_body, normalize_scope, parse_expires_on, parse_retry_after,
    parse_seconds, service_detail,
};
use serde_json::{Value, json};

use crate::mutate::Shape;

/// One parser under test.
pub struct Target {
    /// Short name: the regression folder's name and the report's row.
    pub name: &'static str,
    /// What it covers, for the report.
    pub covers: &'static str,
    /// How its input is shaped.
    pub shape: Shape,
    /// Valid inputs the generator starts from.
    pub seeds: fn() -> Vec<Vec<u8>>,
    /// Tokens worth inserting for this parser.
    pub dictionary: &'static [&'static str],
    /// Drives the parser with one input.
    pub run: fn(&[u8]),
}

/// Every target, in report order.
pub fn all() -> Vec<Target> {
    vec![
        Target {
            name: "envelope_json",
            covers: "JSON-mode invocation request (InvocationRequest, http trigger data, the runtime's invoke_json)",
            shape: Shape::Json,
            seeds: envelope_seeds,
            dictionary: &[
                "Data",
                "Metadata",
                "req",
                "Query",
                "Headers",
                "Params",
                "Body",
                "sys",
                "MethodName",
                "Identities",
                "$return",
                "Content-Transfer-Encoding",
            ],
            run: run_envelope,
        },
        Target {
            name: "envelope_forwarded",
            covers: "forwarded HTTP request (route prefix, route match, percent-decoding, query, headers; the runtime's forward)",
            shape: Shape::Text,
            seeds: forwarded_seeds,
            dictionary: &[
                "/api/",
                "/api/blobs/",
                "/api/secrets/",
                "/api/call/",
                "/api/token",
                "/api/whoami",
                "GET ",
                "PUT ",
                "POST ",
                "Content-Type: ",
                "Authorization: Bearer ",
                "X-Azure-Functions-InvocationId: ",
                "?code=",
                "&resource=",
                "&version=",
            ],
            run: run_forwarded,
        },
        Target {
            name: "timer_info",
            covers: "timer trigger payload (TimerInfo, ScheduleStatus, lenient timestamps)",
            shape: Shape::Json,
            seeds: timer_seeds,
            dictionary: &[
                "myTimer",
                "ScheduleStatus",
                "Last",
                "Next",
                "LastUpdated",
                "IsPastDue",
                "Schedule",
                "AdjustForDST",
            ],
            run: run_timer,
        },
        Target {
            name: "expires_on",
            covers: "identity expires_on in every form (epoch number/string, US dates with AM/PM and offsets, RFC 3339) and expires_in/refresh_in",
            shape: Shape::Json,
            seeds: expires_on_seeds,
            dictionary: &[
                "/", " ", ":", "AM", "PM", "+00:00", "-08:00", "T", "Z", "12", "13", "00",
            ],
            run: run_expires_on,
        },
        Target {
            name: "identity_token_body",
            covers: "identity endpoint success bodies (App Service 2019, 2017, IMDS, Azure CLI)",
            shape: Shape::Json,
            seeds: token_body_seeds,
            dictionary: &[
                "access_token",
                "expires_on",
                "expires_in",
                "refresh_in",
                "resource",
                "token_type",
                "accessToken",
                "expiresOn",
                "expires_on",
            ],
            run: run_token_body,
        },
        Target {
            name: "identity_error_body",
            covers: "identity endpoint error bodies (message, error_description, nested error, non-JSON excerpts)",
            shape: Shape::Json,
            seeds: error_body_seeds,
            dictionary: &[
                "error",
                "error_description",
                "message",
                "Message",
                "code",
                "correlationId",
                "Bearer eyJ",
                "access_token",
            ],
            run: run_error_body,
        },
        Target {
            name: "retry_after",
            covers: "Retry-After from the identity endpoint (seconds) and from Key Vault/Storage (seconds or HTTP date)",
            shape: Shape::Text,
            seeds: retry_after_seeds,
            dictionary: &[
                "Wed, ",
                " GMT",
                "Oct",
                "2015",
                " 07:28:00",
                "-1",
                "99999999999999999999",
            ],
            run: run_retry_after,
        },
        Target {
            name: "jwt",
            covers: "Whoami's Authorization header, JWT header (alg, kid, crit) and claims (iss, aud string/list, roles); TokenInfo's unverified claims",
            shape: Shape::Json,
            seeds: jwt_seeds,
            dictionary: &[
                "alg", "kid", "typ", "crit", "none", "HS256", "RS256", "PS512", "iss", "aud",
                "roles", "exp", "nbf", "oid", "tid", "appid",
            ],
            run: run_jwt,
        },
        Target {
            name: "jwks",
            covers: "JWKS documents (kty, kid, use, alg, n, e; key size floor)",
            shape: Shape::Json,
            seeds: jwks_seeds,
            dictionary: &[
                "keys", "kty", "RSA", "EC", "use", "sig", "enc", "kid", "n", "e", "AQAB", "alg",
                "x5c",
            ],
            run: run_jwks,
        },
        Target {
            name: "route",
            covers: "function.json route templates and request paths (the handler's registry)",
            shape: Shape::Text,
            seeds: route_seeds,
            dictionary: ROUTE_TOKENS,
            run: run_route,
        },
        Target {
            name: "host_route",
            covers: "route templates, constraints and paths in the host emulator",
            shape: Shape::Text,
            seeds: route_seeds,
            dictionary: ROUTE_TOKENS,
            run: run_host_route,
        },
        Target {
            name: "secret_name",
            covers: "secret names, ?version=, ALLOWED_SECRETS entries and matching",
            shape: Shape::Text,
            seeds: secret_name_seeds,
            dictionary: &["-", "*", ",", "app-", "demo-secret"],
            run: run_secret_name,
        },
        Target {
            name: "container_name",
            covers: "blob container names",
            shape: Shape::Text,
            seeds: container_seeds,
            dictionary: &["-", "--", "$root", "$logs", "azure-webjobs-", "scm-"],
            run: run_container_name,
        },
        Target {
            name: "blob_name",
            covers: "blob names (length, segments, dots, control characters)",
            shape: Shape::Text,
            seeds: blob_seeds,
            dictionary: &["/", "..", ".", "%2F", "\\", "a.txt"],
            run: run_blob_name,
        },
        Target {
            name: "callapi_path",
            covers: "CallApi's {*path}: segments, percent-decoding, dot segments, schemes, the query passed on",
            shape: Shape::Text,
            seeds: callapi_seeds,
            dictionary: &[
                "http://", "//", "..", "%2e%2e", "%2F", "%5C", "@", ":", "#", "?", "%252e",
                "%u002e",
            ],
            run: run_callapi,
        },
        Target {
            name: "content_type",
            covers: "WriteBlob's Content-Type header",
            shape: Shape::Text,
            seeds: content_type_seeds,
            dictionary: &[";", "=", "\"", "charset", "boundary", "/", "+", "*"],
            run: run_content_type,
        },
        Target {
            name: "host_json",
            covers: "host.json (route prefix, functionTimeout TimeSpans)",
            shape: Shape::Json,
            seeds: host_json_seeds,
            dictionary: &[
                "functionTimeout",
                "extensions",
                "http",
                "routePrefix",
                "00:00:00",
                "-1",
                "1.",
                "99999999:00:00",
                "10675199.02:48:05.4775807",
            ],
            run: run_host_json,
        },
        Target {
            name: "function_json",
            covers: "function.json (bindings, trigger, methods, route, auth level)",
            shape: Shape::Json,
            seeds: function_json_seeds,
            dictionary: &[
                "bindings",
                "type",
                "httpTrigger",
                "timerTrigger",
                "direction",
                "name",
                "methods",
                "route",
                "authLevel",
                "schedule",
                "$return",
            ],
            run: run_function_json,
        },
        Target {
            name: "ncrontab",
            covers: "the host emulator's NCRONTAB schedules (5/6 fields, names, ranges, steps)",
            shape: Shape::Text,
            seeds: ncrontab_seeds,
            dictionary: &[
                "*", "/", "-", ",", "?", "L", "W", "#", "MON", "SUN", "JAN", "DEC", "0", "59",
                "60", "7", "00:05:00",
            ],
            run: run_ncrontab,
        },
    ]
}

const ROUTE_TOKENS: &[&str] = &[
    "{",
    "}",
    "{*",
    "?}",
    ":int",
    ":alpha",
    ":length(3)",
    ":min(1)",
    ":regex(^a$)",
    ":guid",
    "{name}",
    "{*path}",
    "{id:int?}",
    "/",
    "//",
    "%2F",
    "%",
    "\n",
    "..",
];

fn texts(items: &[&str]) -> Vec<Vec<u8>> {
    items.iter().map(|s| s.as_bytes().to_vec()).collect()
}

fn jsons(items: Vec<Value>) -> Vec<Vec<u8>> {
    items
        .iter()
        .map(|v| serde_json::to_vec(v).expect("a seed serializes"))
        .collect()
}

fn lossy(input: &[u8]) -> String {
    String::from_utf8_lossy(input).into_owned()
}

// ---- the runtime with stand-in functions ---------------------------------------------------

/// What the stand-in functions share: the parsers' configuration, as the app's would be.
struct Standin {
    allowlist: SecretAllowlist,
    downstream: DownstreamApi,
    issuers: [String; 2],
    audiences: Vec<String>,
}

/// The repository root: the function folders and host.json the targets read.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn bad(error: impl std::fmt::Display) -> FunctionError {
    FunctionError::BadRequest(error.to_string())
}

fn echo(request: &HttpRequest) -> HttpResponse {
    HttpResponse::json(
        200,
        &json!({"params": request.params, "query": request.query, "size": request.body.len()}),
    )
}

fn standin_secret(
    state: Arc<Standin>,
    request: HttpRequest,
) -> BoxFuture<'static, Result<HttpResponse, FunctionError>> {
    Box::pin(async move {
        let name = request.param("name").unwrap_or_default();
        validate_secret_name(name).map_err(bad)?;
        if let Some(version) = request.query("version") {
            validate_secret_version(version).map_err(bad)?;
        }
        if !state.allowlist.allows(name) {
            return Err(FunctionError::Forbidden("not allowed".into()));
        }
        Ok(echo(&request))
    })
}

fn standin_blob(
    _state: Arc<Standin>,
    request: HttpRequest,
) -> BoxFuture<'static, Result<HttpResponse, FunctionError>> {
    Box::pin(async move {
        validate_container_name(request.param("container").unwrap_or_default()).map_err(bad)?;
        validate_blob_name(request.param("name").unwrap_or_default()).map_err(bad)?;
        if request.method == "PUT" {
            validate_content_type(request.content_type().unwrap_or("application/octet-stream"))
                .map_err(bad)?;
            validate_body_size(request.body.len()).map_err(bad)?;
        }
        Ok(echo(&request))
    })
}

fn standin_call(
    state: Arc<Standin>,
    request: HttpRequest,
) -> BoxFuture<'static, Result<HttpResponse, FunctionError>> {
    Box::pin(async move {
        let query: Vec<(String, String)> = request
            .query
            .iter()
            .filter(|(k, _)| k.as_str() != "code")
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        let url = state
            .downstream
            .target(request.param("path").unwrap_or_default(), &query)
            .map_err(bad)?;
        Ok(HttpResponse::json(200, &json!({"url": url.as_str()})))
    })
}

fn standin_token(
    _state: Arc<Standin>,
    request: HttpRequest,
) -> BoxFuture<'static, Result<HttpResponse, FunctionError>> {
    Box::pin(async move {
        let resource = normalize_scope(
            request
                .query("resource")
                .unwrap_or("https://vault.azure.net"),
        )
        .map_err(bad)?;
        Ok(HttpResponse::json(200, &json!({"resource": resource})))
    })
}

fn standin_whoami(
    state: Arc<Standin>,
    request: HttpRequest,
) -> BoxFuture<'static, Result<HttpResponse, FunctionError>> {
    Box::pin(async move {
        let (alg, kid) = check_unsigned(
            request.header("authorization"),
            &state.issuers,
            &state.audiences,
        )
        .map_err(bad)?;
        Ok(HttpResponse::json(200, &json!({"alg": alg, "kid": kid})))
    })
}

fn standin_timer(
    _state: Arc<Standin>,
    timer: custom_handler::contract::TimerInfo,
) -> BoxFuture<'static, Result<(), FunctionError>> {
    Box::pin(async move {
        let _ = format!("{timer:?}");
        Ok(())
    })
}

fn standin_functions() -> Vec<Implemented<Standin>> {
    vec![
        Implemented::http("CallApi", "call/{*path}", &["GET"], standin_call),
        Implemented::http("GetSecret", "secrets/{name}", &["GET"], standin_secret),
        Implemented::http(
            "ReadBlob",
            "blobs/{container}/{name}",
            &["GET"],
            standin_blob,
        ),
        Implemented::timer("RefreshTokens", standin_timer),
        Implemented::http("TokenInfo", "token", &["GET"], standin_token),
        Implemented::http("Whoami", "whoami", &["GET"], standin_whoami),
        Implemented::http(
            "WriteBlob",
            "blobs/{container}/{name}",
            &["PUT"],
            standin_blob,
        ),
    ]
    .into_iter()
    .map(|function| function.with_body_limit(MAX_BLOB_BYTES))
    .collect()
}

struct Harness {
    tokio: tokio::runtime::Runtime,
    runtime: Runtime<Standin>,
}

fn build_harness() -> Harness {
    let root = repo_root();
    let (declared, broken) = load_declared(&root).expect("the repository's function folders");
    assert!(broken.is_empty(), "broken function.json: {broken:?}");
    let host = std::fs::read_to_string(root.join("host.json")).expect("host.json");
    let options: RuntimeOptions = parse_host_options(&host).expect("host.json parses");
    let registry = Registry::new(declared, standin_functions());
    assert!(
        registry.mismatches().is_empty(),
        "stand-ins differ from the folders: {:?}",
        registry.mismatches()
    );
    let tenant = "72f988bf-86f1-41af-91ab-2d7cd011db47";
    let state = Standin {
        allowlist: SecretAllowlist::parse(Some("demo-secret,app-*")).expect("allowlist"),
        downstream: DownstreamApi::new(
            url::Url::parse("https://api.example.com/api").expect("base URL"),
        )
        .expect("downstream"),
        issuers: [
            format!("https://sts.windows.net/{tenant}/"),
            format!("https://login.microsoftonline.com/{tenant}/v2.0"),
        ],
        audiences: vec!["api://handler".into()],
    };
    Harness {
        tokio: tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("tokio runtime"),
        runtime: Runtime::new(Arc::new(state), registry, options),
    }
}

thread_local! {
    static HARNESS: Harness = build_harness();
}

// ---- envelope, forwarded, timer --------------------------------------------------------------

fn http_data(url: &str, method: &str, params: Value, headers: Value, body: Value) -> Value {
    json!({
        "Url": url,
        "Method": method,
        "Query": {"code": "k", "version": "0123456789abcdef0123456789abcdef"},
        "Headers": headers,
        "Params": params,
        "Identities": [{"AuthenticationType": null, "IsAuthenticated": false, "Actor": null,
            "BootstrapContext": null, "Claims": [], "Label": null, "Name": null,
            "NameClaimType": "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/name",
            "RoleClaimType": "http://schemas.microsoft.com/ws/2008/06/identity/claims/role"}],
        "Body": body
    })
}

fn envelope(method_name: &str, data: Value, params: Value) -> Value {
    json!({
        "Data": {"req": data},
        "Metadata": {
            "Query": "{\"code\":\"k\"}",
            "Headers": {"Host": "localhost:7071", "User-Agent": "curl/8.0"},
            "name": "\"demo-secret\"",
            "params": params,
            "sys": {"MethodName": method_name, "UtcNow": "2026-11-30T07:00:00.1234567Z",
                "RandGuid": "9d9e47c3-4f2c-4a9f-8c2e-1f0e5c3b7a11"}
        }
    })
}

fn envelope_seeds() -> Vec<Vec<u8>> {
    let plain = json!({"Content-Type": ["text/plain"], "Host": ["localhost"]});
    let auth = json!({"Authorization": ["Bearer eyJhbGciOiJSUzI1NiIsImtpZCI6ImsxIn0.eyJpc3MiOiJ4In0.c2ln"]});
    jsons(vec![
        envelope(
            "GetSecret",
            http_data(
                "http://localhost:7071/api/secrets/demo-secret?code=k",
                "GET",
                json!({"name": "demo-secret"}),
                plain.clone(),
                Value::Null,
            ),
            json!({"name": "demo-secret"}),
        ),
        envelope(
            "WriteBlob",
            http_data(
                "http://localhost:7071/api/blobs/demo/a.txt",
                "PUT",
                json!({"container": "demo", "name": "a.txt"}),
                plain.clone(),
                json!("hello"),
            ),
            json!({"container": "demo", "name": "a.txt"}),
        ),
        envelope(
            "WriteBlob",
            http_data(
                "http://localhost:7071/api/blobs/demo/b.bin",
                "PUT",
                json!({"container": "demo", "name": "dir/b.bin"}),
                json!({"Content-Type": ["application/octet-stream"]}),
                json!("AAECAwQ="),
            ),
            json!({"container": "demo", "name": "dir/b.bin"}),
        ),
        envelope(
            "ReadBlob",
            http_data(
                "http://localhost:7071/api/blobs/demo/a.txt",
                "GET",
                json!({"container": "demo", "name": "a.txt"}),
                plain.clone(),
                Value::Null,
            ),
            json!({"container": "demo", "name": "a.txt"}),
        ),
        envelope(
            "CallApi",
            http_data(
                "http://localhost:7071/api/call/v1/items/42?x=1",
                "GET",
                json!({"path": "v1/items/42"}),
                plain,
                Value::Null,
            ),
            json!({"path": "v1/items/42"}),
        ),
        envelope(
            "TokenInfo",
            http_data(
                "http://localhost:7071/api/token?resource=https://storage.azure.com",
                "GET",
                json!({}),
                json!({}),
                Value::Null,
            ),
            json!({}),
        ),
        envelope(
            "Whoami",
            http_data(
                "http://localhost:7071/api/whoami",
                "GET",
                json!({}),
                auth,
                Value::Null,
            ),
            json!({}),
        ),
        // The form where every scalar and object arrives JSON-encoded again.
        json!({"Data": {"req": serde_json::to_string(&http_data(
            "http://localhost/api/secrets/app-x", "GET", json!({"name": "app-x"}),
            json!({"Content-Type": "text/plain"}), json!({"a": 1}))).unwrap()},
            "Metadata": {"sys": "{\"MethodName\":\"GetSecret\"}"}}),
    ])
}

fn run_envelope(input: &[u8]) {
    let names = [
        "GetSecret",
        "WriteBlob",
        "ReadBlob",
        "CallApi",
        "TokenInfo",
        "Whoami",
        "RefreshTokens",
    ];
    let parsed = InvocationRequest::from_slice(input);
    let name = match &parsed {
        Ok(request) => {
            let _ = request.http_trigger("req");
            let _ = request.timer("myTimer");
            request.method_name()
        }
        Err(_) => None,
    };
    let name = name.unwrap_or_else(|| {
        let sum: usize = input.iter().map(|b| *b as usize).sum();
        names[sum % names.len()].to_owned()
    });
    let body = Bytes::copy_from_slice(input);
    HARNESS.with(|h| invoke_json(h, &name, Some("fuzz"), body));
}

/// A JSON-mode invocation of `name` as the server runs one: routed by `Runtime::route`, then
/// invoked (an unknown name is the route's own answer).
fn invoke_json(h: &Harness, name: &str, id: Option<&str>, body: Bytes) {
    let path = format!("/{name}");
    if let Route::Json(entry) = h.runtime.route("POST", &path) {
        let _ = h.tokio.block_on(h.runtime.invoke_json(entry, id, Ok(body)));
    }
}

fn forwarded_seeds() -> Vec<Vec<u8>> {
    texts(&[
        "GET /api/secrets/demo-secret?code=k&version=0123456789abcdef0123456789abcdef\nX-Azure-Functions-InvocationId: 1\n\n",
        "PUT /api/blobs/demo/a.txt?code=k\nContent-Type: text/plain\n\nhello",
        "PUT /api/blobs/demo/dir%2Fsub/b.bin\nContent-Type: application/octet-stream\n\n\u{0}\u{1}\u{2}",
        "GET /api/blobs/demo/a%20b.txt\n\n",
        "GET /api/call/v1/items/42?x=1&x=2&code=k\n\n",
        "GET /api/call/a%2Fb/%2e%2e?y=%ZZ\n\n",
        "GET /api/token?resource=https%3A%2F%2Fstorage.azure.com%2F.default\n\n",
        "GET /api/whoami\nAuthorization: Bearer eyJhbGciOiJSUzI1NiIsImtpZCI6ImsxIn0.eyJpc3MiOiJ4In0.c2ln\n\n",
        "POST /GetSecret\nContent-Type: application/json\n\n{}",
        "DELETE /api/secrets/x\n\n",
    ])
}

/// The forwarded target's input: a request line `METHOD /path?query`, header lines `Name: value`,
/// an empty line, then the body (a framing of our own: the wire's is hyper's, not ours).
fn run_forwarded(input: &[u8]) {
    let (head, body) = match input.windows(2).position(|w| w == b"\n\n") {
        Some(i) => (&input[..i], &input[i + 2..]),
        None => (input, &[][..]),
    };
    let head = lossy(head);
    let mut lines = head.split('\n');
    let request_line = lines.next().unwrap_or_default();
    let (method, target) = request_line
        .split_once(' ')
        .unwrap_or(("GET", request_line));
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let mut query_map: BTreeMap<String, String> = BTreeMap::new();
    for (key, value) in url::form_urlencoded::parse(query.as_bytes()) {
        query_map
            .entry(key.into_owned())
            .and_modify(|v| {
                v.push(',');
                v.push_str(&value);
            })
            .or_insert_with(|| value.into_owned());
    }
    let headers: Vec<(String, String)> = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
        .collect();
    let method = method.to_ascii_uppercase();
    let request = ForwardedRequest {
        method: method.clone(),
        path: path.to_owned(),
        query: query_map,
        headers: headers.into(),
        body: Ok(Bytes::copy_from_slice(body)),
    };
    HARNESS.with(|h| {
        if let Route::Forwarded { entry, params } = h.runtime.route(&method, path) {
            let _ = h.tokio.block_on(h.runtime.forward(entry, params, request));
        }
    });
}

fn timer_payload(status: Value, past_due: Value) -> Value {
    json!({
        "Data": {"myTimer": {"Schedule": {"AdjustForDST": true}, "ScheduleStatus": status,
            "IsPastDue": past_due}},
        "Metadata": {"sys": {"MethodName": "RefreshTokens", "UtcNow": "2026-11-30T07:05:00.0012345Z"}}
    })
}

fn timer_seeds() -> Vec<Vec<u8>> {
    jsons(vec![
        timer_payload(
            json!({"Last": "2026-11-30T07:00:00.0067893+00:00", "Next": "2026-11-30T07:05:00+00:00",
                "LastUpdated": "2026-11-30T07:00:00.0067893+00:00"}),
            json!(false),
        ),
        timer_payload(
            json!({"Last": "0001-01-01T00:00:00", "Next": "11/30/2026 07:05:00", "LastUpdated": "0001-01-01T00:00:00"}),
            json!("True"),
        ),
        timer_payload(Value::Null, json!(true)),
        json!({"Data": {"myTimer": "{\"ScheduleStatus\":{\"Last\":\"2026-11-30T07:00:00Z\"},\"IsPastDue\":false}"}}),
    ])
}

fn run_timer(input: &[u8]) {
    if let Ok(request) = InvocationRequest::from_slice(input)
        && let Ok(timer) = request.timer("myTimer")
    {
        let _ = format!("{timer:?}");
    }
    if let Ok(text) = std::str::from_utf8(input) {
        let _ = Timestamp::new(text.to_owned());
    }
    let body = Bytes::copy_from_slice(input);
    HARNESS.with(|h| invoke_json(h, "RefreshTokens", None, body));
}

// ---- identity ------------------------------------------------------------------------------

fn expires_on_seeds() -> Vec<Vec<u8>> {
    jsons(vec![
        json!(1_586_984_735),
        json!("1586984735"),
        json!(1_586_984_735.5),
        json!("3/21/2019 11:39:40 AM +00:00"),
        json!("06/20/2019 02:57:58 +00:00"),
        json!("09/14/2017 00:00:00 PM +00:00"),
        json!("12/31/9999 11:59:59 PM -08:00"),
        json!("2038-01-18T00:00:00Z"),
        json!("2026-11-30 07:00:00.123456+00:00"),
        json!("3599"),
        json!(86399),
    ])
}

fn run_expires_on(input: &[u8]) {
    let value =
        serde_json::from_slice::<Value>(input).unwrap_or_else(|_| Value::String(lossy(input)));
    let _ = parse_expires_on(&value);
    let _ = parse_seconds(&value);
}

fn token_body_seeds() -> Vec<Vec<u8>> {
    let token =
        "eyJ0eXAiOiJKV1QiLCJhbGciOiJSUzI1NiJ9.eyJhdWQiOiJodHRwczovL3ZhdWx0LmF6dXJlLm5ldCJ9.c2ln";
    jsons(vec![
        json!({"access_token": token, "expires_on": "1764490000", "resource": "https://vault.azure.net",
            "token_type": "Bearer", "client_id": "00000000-0000-0000-0000-000000000001"}),
        json!({"access_token": token, "expires_on": "11/30/2026 8:00:00 AM +00:00",
            "resource": "https://vault.azure.net", "token_type": "Bearer"}),
        json!({"access_token": token, "expires_in": "86399", "expires_on": "1764490000",
            "ext_expires_in": "86399", "not_before": "1764400000", "refresh_in": 43199,
            "resource": "https://storage.azure.com", "token_type": "Bearer"}),
        json!({"accessToken": token, "expiresOn": "2026-11-30 08:00:00.000000",
            "expires_on": 1_764_490_000, "subscription": "x", "tenant": "t", "tokenType": "Bearer"}),
    ])
}

fn run_token_body(input: &[u8]) {
    let issued = time::OffsetDateTime::from_unix_timestamp(1_764_400_000).expect("a valid instant");
    for kind in [
        SourceKind::AppService2019,
        SourceKind::AppService2017,
        SourceKind::Imds,
        SourceKind::AzureCli,
    ] {
        let _ = check_token_body(kind, input, issued);
    }
}

fn error_body_seeds() -> Vec<Vec<u8>> {
    let mut seeds = jsons(vec![
        json!({"statusCode": 400, "message": "Unable to load the proper Managed Identity.",
            "correlationId": "7f1d3a7e-0000-4000-8000-000000000000"}),
        json!({"error": "invalid_request", "error_description": "Identity not found"}),
        json!({"error": {"code": "TooManyRequests", "message": "Retry later"}}),
        json!({"Message": "An error has occurred.", "ExceptionMessage": "x"}),
        json!({"error": "unauthorized_client", "error_description":
            "AADSTS700016: Application with identifier 'x' was not found. Trace ID: 1 Correlation ID: 2 Timestamp: 2026-11-30 07:00:00Z"}),
    ]);
    seeds.extend(texts(&[
        "<html><body>502 Bad Gateway</body></html>",
        "upstream connect error or disconnect/reset before headers. Bearer eyJhbGciOi.eyJ.sig",
        "",
    ]));
    seeds
}

fn run_error_body(input: &[u8]) {
    let detail = service_detail(input);
    let _ = format!("{detail:?}");
}

fn retry_after_seeds() -> Vec<Vec<u8>> {
    texts(&[
        "0",
        "2",
        "120",
        " 5 ",
        "Wed, 21 Oct 2015 07:28:00 GMT",
        "Mon, 30 Nov 2026 07:30:00 GMT",
        "Fri, 31 Dec 9999 23:59:59 GMT",
        "-1",
        "1.5",
        "18446744073709551615",
    ])
}

fn run_retry_after(input: &[u8]) {
    let text = lossy(input);
    // Both ways the repository reads the value: seconds only (identity), or a date from now
    // (the service clients).
    if let Some(asked) = parse_retry_after(&text) {
        let _ = asked.delay();
        let _ = asked.wait_from(time::OffsetDateTime::now_utc());
    }
}

// ---- JWT and JWKS ----------------------------------------------------------------------------

fn jwt_seeds() -> Vec<Vec<u8>> {
    let iss = "https://sts.windows.net/72f988bf-86f1-41af-91ab-2d7cd011db47/";
    jsons(vec![
        json!({"scheme": "Bearer", "header": {"typ": "JWT", "alg": "RS256", "kid": "k1"},
            "claims": {"iss": iss, "aud": "api://handler", "exp": 1_764_490_000, "nbf": 1_764_400_000,
                "oid": "o", "tid": "t", "appid": "a", "roles": ["Api.Read"]},
            "signature": "c2lnbmF0dXJl"}),
        json!({"scheme": "bearer", "header": {"alg": "PS256", "kid": "k2", "x5t": "abc"},
            "claims": {"iss": "https://login.microsoftonline.com/72f988bf-86f1-41af-91ab-2d7cd011db47/v2.0",
                "aud": ["api://other", "api://handler/"], "exp": "1764490000", "azp": "a"},
            "signature": "c2ln"}),
        json!({"scheme": "Bearer", "header": {"alg": "none"}, "claims": {"sub": "x"}, "signature": ""}),
        json!({"scheme": "Bearer", "header": "{\"alg\":\"RS256\",\"kid\":\"k1\",\"crit\":[\"b64\"]}",
            "claims": "{\"aud\":", "signature": "AA"}),
    ])
}

/// Builds the Authorization header from the structured input: `header` and `claims` are
/// serialized (or used as they are when strings, so broken JSON reaches the parsers).
fn authorization_from(input: &[u8]) -> String {
    let Ok(Value::Object(parts)) = serde_json::from_slice::<Value>(input) else {
        return lossy(input);
    };
    let part = |key: &str| match parts.get(key) {
        Some(Value::String(text)) => base64url(text.as_bytes()),
        Some(other) => base64url(other.to_string().as_bytes()),
        None => String::new(),
    };
    let scheme = parts
        .get("scheme")
        .and_then(Value::as_str)
        .unwrap_or("Bearer");
    let signature = parts
        .get("signature")
        .and_then(Value::as_str)
        .unwrap_or_default();
    format!("{scheme} {}.{}.{signature}", part("header"), part("claims"))
}

fn run_jwt(input: &[u8]) {
    let header = authorization_from(input);
    let tenant = "72f988bf-86f1-41af-91ab-2d7cd011db47";
    let issuers = [
        format!("https://sts.windows.net/{tenant}/"),
        format!("https://login.microsoftonline.com/{tenant}/v2.0"),
    ];
    let _ = check_unsigned(Some(&header), &issuers, &["api://handler".to_owned()]);
    let token = header.split_once(' ').map_or(header.as_str(), |(_, t)| t);
    if let Ok(claims) = managed_identity::claims::decode_unverified(token) {
        let _ = claims.expires_at();
    }
}

fn base64url(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::with_capacity(bytes.len() * 4 / 3 + 3);
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |acc, (i, b)| acc | (u32::from(*b) << (16 - 8 * i)));
        for i in 0..=chunk.len() {
            out.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
        }
    }
    out
}

fn jwks_seeds() -> Vec<Vec<u8>> {
    let modulus: Vec<u8> = (0..256u32).map(|i| (i * 7 + 0xC1) as u8).collect();
    let n = base64url(&modulus);
    let short = base64url(&modulus[..128]);
    jsons(vec![
        json!({"keys": [{"kty": "RSA", "use": "sig", "kid": "k1", "x5t": "k1", "n": n, "e": "AQAB",
            "x5c": ["MIIC"], "issuer": "https://login.microsoftonline.com/t/v2.0"}]}),
        json!({"keys": [{"kty": "RSA", "kid": "k2", "alg": "RS256", "n": format!("{n}=="), "e": "AQAB"},
            {"kty": "EC", "kid": "k3", "crv": "P-256", "x": "AA", "y": "AA"},
            {"kty": "RSA", "use": "enc", "kid": "k4", "n": n, "e": "AQAB"},
            {"kty": "RSA", "kid": "small", "n": short, "e": "AQAB"}]}),
        json!({"keys": []}),
    ])
}

fn run_jwks(input: &[u8]) {
    let _ = usable_kids(input);
}

// ---- routes, names, paths, content types --------------------------------------------------

fn route_seeds() -> Vec<Vec<u8>> {
    texts(&[
        "secrets/{name}\nsecrets/demo-secret",
        "blobs/{container}/{name}\nblobs/demo/a%2Fb.txt",
        "call/{*path}\ncall/v1/items/42",
        "call/{*path}\ncall/",
        "token\ntoken",
        "whoami\nWHOAMI/",
        "items/{id:int}/{slug:alpha?}\nitems/42/abc",
        "a/{b:length(2,4)}/{c:regex(^x+$)}\na/xyz/xxx",
        "files/{*rest}\nfiles/%E2%82%AC/%ZZ/..",
        "{x}-{y}\n1-2",
    ])
}

fn split_route(input: &[u8]) -> (String, String) {
    let text = lossy(input);
    match text.split_once('\n') {
        Some((template, path)) => (template.to_owned(), path.to_owned()),
        None => (text.clone(), text),
    }
}

fn run_route(input: &[u8]) {
    let (template, path) = split_route(input);
    if let Ok(route) = RouteTemplate::parse(&template) {
        let _ = route.matches(&path);
        let _ = route.as_str();
    }
}

fn run_host_route(input: &[u8]) {
    use emulators::host::route;
    let (template, path) = split_route(input);
    if let Ok(parsed) = route::RouteTemplate::parse(&template) {
        let _ = parsed.param_names();
        let _ = parsed.specificity();
        let _ = parsed.match_path(&path);
    }
    let _ = route::percent_decode(&path);
}

fn secret_name_seeds() -> Vec<Vec<u8>> {
    texts(&[
        "demo-secret",
        "app-greeting",
        "a",
        "DB-Password-2",
        "0123456789abcdef0123456789abcdef",
        "app-*,demo-secret",
        "*",
    ])
}

fn run_secret_name(input: &[u8]) {
    let text = lossy(input);
    let _ = validate_secret_name(&text);
    let _ = validate_secret_version(&text);
    if let Ok(list) = SecretAllowlist::parse(Some(&text)) {
        let _ = list.allows("demo-secret");
        let _ = list.allows(&text);
    }
    HARNESS.with(|h| {
        let _ = h.runtime.serves(&text);
    });
}

fn container_seeds() -> Vec<Vec<u8>> {
    texts(&[
        "demo",
        "logs-2026",
        "a1b",
        "abc-def-ghi",
        "$root",
        "azure-webjobs-hosts",
    ])
}

fn run_container_name(input: &[u8]) {
    let _ = validate_container_name(&lossy(input));
}

fn blob_seeds() -> Vec<Vec<u8>> {
    texts(&[
        "a.txt",
        "dir/sub/file.bin",
        "hello world.txt",
        "日本/データ.json",
        ".hidden",
        "a/./b",
    ])
}

fn run_blob_name(input: &[u8]) {
    let _ = validate_blob_name(&lossy(input));
}

fn callapi_seeds() -> Vec<Vec<u8>> {
    texts(&[
        "whoami",
        "v1/items/42",
        "a%2Fb",
        "..",
        "%2e%2e/x",
        "http://evil.example.com/",
        "//evil.example.com/x",
        "a/b%20c/d%C3%A9",
        "",
        "a//b",
        "x?y=1#z",
    ])
}

fn run_callapi(input: &[u8]) {
    let text = lossy(input);
    let (path, query) = text.split_once('?').unwrap_or((text.as_str(), ""));
    let query: Vec<(String, String)> = url::form_urlencoded::parse(query.as_bytes())
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    HARNESS.with(|h| {
        let _ = h.runtime.route_prefix();
    });
    thread_local! {
        static API: DownstreamApi = DownstreamApi::new(
            url::Url::parse("https://api.example.com/base/").expect("base URL"),
        )
        .expect("downstream");
    }
    API.with(|api| {
        let _ = api.target(path, &query);
    });
}

fn content_type_seeds() -> Vec<Vec<u8>> {
    texts(&[
        "text/plain",
        "text/plain; charset=utf-8",
        "application/json",
        "application/octet-stream",
        "multipart/form-data; boundary=\"----x\"",
        "image/svg+xml",
        "text/html",
        "application/vnd.api+json; q=0.5",
    ])
}

fn run_content_type(input: &[u8]) {
    let text = lossy(input);
    let _ = validate_content_type(&text);
    // What JSON mode decides from a content type: carried as base64, or text it keeps intact.
    let _ = custom_handler::http::media_type(&text);
    let _ = custom_handler::http::host_sends_base64(Some(&text));
    let _ = custom_handler::http::is_utf8_text(&text);
    let request = HttpRequest {
        method: "PUT".into(),
        params: BTreeMap::new(),
        query: BTreeMap::new(),
        headers: vec![("Content-Type".into(), text)].into(),
        body: Bytes::new(),
        transport: Default::default(),
    };
    if let Some(content_type) = request.content_type() {
        let _ = validate_content_type(content_type);
    }
}

// ---- host.json, function.json, NCRONTAB ----------------------------------------------------

fn host_json_seeds() -> Vec<Vec<u8>> {
    let mut seeds =
        vec![std::fs::read(repo_root().join("host.json")).expect("the repository's host.json")];
    seeds.extend(jsons(vec![
        json!({"version": "2.0", "functionTimeout": "00:05:00", "extensions": {"http": {"routePrefix": "/v1/"}}}),
        json!({"version": "2.0", "functionTimeout": "-1", "extensions": {"http": {"routePrefix": ""}}}),
        json!({"version": "2.0", "functionTimeout": "1.02:03:04.5"}),
        json!({"version": "2.0", "functionTimeout": "10675199.02:48:05.4775807"}),
    ]));
    seeds
}

fn run_host_json(input: &[u8]) {
    let _ = parse_host_options(&lossy(input));
}

fn function_json_seeds() -> Vec<Vec<u8>> {
    let root = repo_root();
    let mut seeds: Vec<Vec<u8>> = std::fs::read_dir(&root)
        .expect("the repository root")
        .filter_map(Result::ok)
        .map(|entry| entry.path().join("function.json"))
        .filter(|path| path.is_file())
        .map(|path| std::fs::read(path).expect("a function.json"))
        .collect();
    seeds.sort();
    seeds.extend(jsons(vec![
        json!({"bindings": [{"type": "httpTrigger", "direction": "in", "name": "req",
            "methods": ["GET", "post"], "route": "items/{id:int?}", "authLevel": "admin"},
            {"type": "http", "direction": "out", "name": "$return"}]}),
        json!({"bindings": [{"type": "queueTrigger", "name": "msg", "queueName": "q"}]}),
    ]));
    seeds
}

fn run_function_json(input: &[u8]) {
    let text = lossy(input);
    for name in ["GetSecret", "RefreshTokens"] {
        if let Ok(declared) = parse_function_json(name, &text) {
            let _ = format!("{declared:?}");
        }
    }
}

fn ncrontab_seeds() -> Vec<Vec<u8>> {
    texts(&[
        "0 */5 * * * *",
        "*/10 * * * * *",
        "0 0 9-17 * * MON-FRI",
        "0 30 9 * Jan Mon",
        "0 0 0 29 2 *",
        "5 4 * * *",
        "0 0 12 1,15 * ?",
        "0 0 */2 * * 0-6",
        "00:05:00",
    ])
}

fn run_ncrontab(input: &[u8]) {
    use emulators::host::timer::TimerSchedule;
    if let Ok(schedule) = TimerSchedule::parse(&lossy(input)) {
        let _ = schedule.next_after(chrono::Utc::now());
    }
}
