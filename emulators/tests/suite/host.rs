//! End-to-end tests of `emulators host` driving the `fake_handler` example.

use std::io::{Read, Write};
use std::os::unix::fs::PermissionsExt;

use crate::support::host::{
    Emulator, app_root, echo_app, handler_port, host_json, http_function, timer_function,
};
use reqwest::Method;
use serde_json::{Value, json};

fn is_guid(text: &str) -> bool {
    uuid::Uuid::parse_str(text).is_ok()
}

/// An app root holding `functions` under `host`, and an emulator started on it with `args`; the
/// directory is returned so it lives as long as the emulator.
async fn start_app(
    host: &Value,
    functions: &[(&str, Value)],
    args: &[&str],
) -> (tempfile::TempDir, Emulator) {
    let app = app_root(host, functions);
    let emulator = Emulator::start(app.path(), args, &[]).await;
    (app, emulator)
}

/// Reads the fake handler's request record (one JSON object per line).
/// The TimerInfo a timer function of the fake handler logged as its second line.
fn logged_timer_info(invocation: &Value) -> Value {
    let line = invocation["logs"][1].as_str().unwrap();
    serde_json::from_str(line.trim_start_matches("timerinfo ")).unwrap()
}

fn recorded(path: &std::path::Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn json_mode_payload_has_the_hosts_shape() {
    let app = app_root(
        &host_json(false),
        &[(
            "Echo",
            http_function(
                "function",
                Some("echo/{name}/{opt?}"),
                Some(&["get", "POST"]),
            ),
        )],
    );
    let emulator = Emulator::start(app.path(), &[], &[("FAKE_INHERITED", "yes")]).await;
    let key = emulator.function_key();
    let response = emulator
        .call(Method::POST, "/api/ECHO/abc?x=1&x=2&flag=true", |r| {
            r.header("x-functions-key", &key)
                .header("content-type", "application/json")
                .header("x-multi", "a")
                .header("x-multi", "b")
                .body(r#"{"id":1005,"color":"black","nested":{"a":1},"list":[1]}"#)
        })
        .await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["x-echo"], "1");
    let echoed: Value = crate::support::host::json_body(response).await;

    // The HTTP request the handler received.
    let request = &echoed["request"];
    assert_eq!(request["method"], "POST");
    assert_eq!(request["path"], "/Echo");
    assert_eq!(request["query"], "");
    let headers = &request["headers"];
    assert!(is_guid(
        headers["x-azure-functions-invocationid"][0]
            .as_str()
            .unwrap()
    ));
    assert!(
        headers["x-azure-functions-hostversion"][0]
            .as_str()
            .unwrap()
            .starts_with("4.")
    );
    assert!(
        headers["user-agent"][0]
            .as_str()
            .unwrap()
            .starts_with("Azure-Functions-Host/")
    );
    assert_eq!(
        headers["content-type"][0],
        "application/json; charset=utf-8"
    );

    // Data.req
    let document = &echoed["document"];
    let req = &document["Data"]["req"];
    let url = req["Url"].as_str().unwrap();
    assert!(
        url.starts_with("http://127.0.0.1:") && url.ends_with("/api/ECHO/abc?x=1&x=2&flag=true"),
        "{url}"
    );
    assert_eq!(req["Method"], "POST");
    assert_eq!(req["Query"], json!({"x": "1,2", "flag": "true"}));
    assert_eq!(req["Headers"]["X-Multi"], json!(["a", "b"]));
    assert_eq!(req["Headers"]["Content-Type"], json!(["application/json"]));
    assert_eq!(req["Params"], json!({"name": "abc", "opt": null}));
    assert_eq!(
        req["Body"],
        r#"{"id":1005,"color":"black","nested":{"a":1},"list":[1]}"#
    );
    let identity = &req["Identities"][0];
    assert_eq!(identity["AuthenticationType"], "WebJobsAuthLevel");
    assert_eq!(identity["IsAuthenticated"], true);
    let claims = identity["Claims"].as_array().unwrap();
    assert!(claims.iter().any(
        |c| c["Type"].as_str().unwrap().ends_with("/claims/authlevel") && c["Value"] == "Function"
    ));
    assert!(
        claims
            .iter()
            .any(|c| c["Type"].as_str().unwrap().ends_with("/claims/keyid")
                && c["Value"] == "default")
    );
    assert!(
        document["Data"].as_object().unwrap().len() == 1,
        "only the trigger input in Data"
    );

    // Metadata: scalars JSON-encoded twice, objects kept, arrays skipped.
    let metadata = &document["Metadata"];
    assert_eq!(metadata["id"], "\"1005\"");
    assert_eq!(metadata["color"], "\"black\"");
    assert_eq!(metadata["nested"], json!({"a": 1}));
    assert!(metadata.get("list").is_none());
    assert_eq!(metadata["x"], "\"1,2\"");
    assert_eq!(metadata["flag"], "\"true\"");
    assert_eq!(metadata["name"], "\"abc\"");
    assert!(
        metadata.get("opt").is_none(),
        "null route values are skipped in Metadata"
    );
    assert_eq!(metadata["Query"], json!({"x": "1,2", "flag": "true"}));
    assert_eq!(metadata["Headers"]["X-Multi"], "a,b");
    assert_eq!(metadata["sys"]["MethodName"], "Echo");
    assert!(is_guid(metadata["sys"]["RandGuid"].as_str().unwrap()));
    assert!(metadata["sys"]["UtcNow"].as_str().unwrap().ends_with('Z'));

    // The handler's environment and working directory.
    let env = &echoed["env"];
    let port = env["FUNCTIONS_CUSTOMHANDLER_PORT"].as_str().unwrap();
    assert!(port.parse::<u16>().is_ok());
    assert_eq!(env["FUNCTIONS_HTTPWORKER_PORT"], port);
    assert!(is_guid(
        env["FUNCTIONS_CUSTOMHANDLER_WORKER_ID"].as_str().unwrap()
    ));
    assert_eq!(
        env["FUNCTIONS_HTTPWORKER_ID"],
        env["FUNCTIONS_CUSTOMHANDLER_WORKER_ID"]
    );
    let root = std::fs::canonicalize(app.path()).unwrap();
    let reported = std::fs::canonicalize(env["FUNCTIONS_APP_ROOT_PATH"].as_str().unwrap()).unwrap();
    assert_eq!(reported, root);
    assert_eq!(
        std::fs::canonicalize(echoed["cwd"].as_str().unwrap()).unwrap(),
        root
    );
    assert_eq!(env["FAKE_INHERITED"], "yes");

    // Logs are printed with function name and invocation id; handler output is relayed.
    let line = emulator.wait_for_stdout("echo done").await;
    let id = headers["x-azure-functions-invocationid"][0]
        .as_str()
        .unwrap();
    assert!(line.contains(&format!("[Echo {id}] echo done")), "{line}");
    emulator
        .assert_stdout("fake handler listening", &["INFO", "[handler]"])
        .await;
    emulator.assert_stdout("stderr warn line", &["WARN"]).await;
    emulator
        .assert_stdout("stderr plain line", &["ERROR"])
        .await;
    assert!(
        !emulator.logged_any(|l| l.contains(&key)),
        "a key was logged"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn body_is_absent_without_content_and_base64_for_binary() {
    let app = echo_app();
    let emulator = Emulator::start(app.path(), &[], &[]).await;

    let response = emulator.get("/api/echoanon").await;
    assert_eq!(response.status(), 200);
    let echoed: Value = crate::support::host::json_body(response).await;
    let req = &echoed["document"]["Data"]["req"];
    assert!(
        req.get("Body").is_none(),
        "no Body without a request body: {req}"
    );
    assert_eq!(req["Method"], "GET");
    assert_eq!(req["Params"], json!({}));
    let identity = &req["Identities"][0];
    assert_eq!(identity["IsAuthenticated"], false);
    assert_eq!(identity["AuthenticationType"], Value::Null);
    assert_eq!(identity["Claims"], json!([]));
    assert_eq!(
        identity["NameClaimType"],
        "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/name"
    );

    let response = emulator
        .call(Method::POST, "/api/EchoAnon", |r| {
            r.header("content-type", "application/octet-stream")
                .body(vec![0u8, 1, 2, 255])
        })
        .await;
    let echoed: Value = crate::support::host::json_body(response).await;
    assert_eq!(echoed["document"]["Data"]["req"]["Body"], "AAEC/w==");

    let response = emulator
        .call(Method::PUT, "/api/EchoAnon", |r| {
            r.header("content-type", "text/plain").body("plain text")
        })
        .await;
    let echoed: Value = crate::support::host::json_body(response).await;
    assert_eq!(echoed["document"]["Data"]["req"]["Body"], "plain text");
    assert_eq!(echoed["document"]["Data"]["req"]["Method"], "PUT");
}

#[tokio::test(flavor = "multi_thread")]
async fn handler_answers_are_mapped_like_the_host() {
    let functions = [
        ("Status", http_function("anonymous", None, None)),
        ("Logs", http_function("anonymous", None, None)),
        ("Fail", http_function("anonymous", None, None)),
        ("TextReply", http_function("anonymous", None, None)),
        (
            "ReturnHttp",
            json!({"bindings": [
                {"type": "httpTrigger", "direction": "in", "name": "req", "authLevel": "anonymous"},
                {"type": "http", "direction": "out", "name": "$return"}]}),
        ),
    ];
    let (_app, emulator) = start_app(&host_json(false), &functions, &[]).await;
    let get = |path: &str| emulator.client.get(emulator.url(path)).send();

    let response = get("/api/Status?status=201&as=number").await.unwrap();
    assert_eq!(response.status(), 201);
    let response = get("/api/Status?status=203").await.unwrap();
    assert_eq!(response.status(), 203);
    assert_eq!(response.headers()["x-custom"], "yes");
    assert_eq!(
        response.headers()["content-type"],
        "text/plain; charset=utf-8"
    );
    assert_eq!(response.text().await.unwrap(), "status test");

    let response = get("/api/Logs").await.unwrap();
    assert_eq!(response.text().await.unwrap(), "logged");
    let logs = emulator
        .wait_for_invocations(1, |i| i["function"] == "Logs")
        .await;
    assert_eq!(logs[0]["logs"], json!(["first line", "second line", "42"]));
    assert_eq!(logs[0]["status"], "succeeded");
    assert_eq!(logs[0]["mode"], "json");
    assert_eq!(logs[0]["trigger"], "http");

    let response = get("/api/Fail").await.unwrap();
    assert_eq!(response.status(), 500);
    assert_eq!(response.text().await.unwrap(), "");
    let failed = emulator
        .wait_for_invocations(1, |i| i["function"] == "Fail")
        .await;
    assert_eq!(failed[0]["status"], "failed");
    assert_eq!(failed[0]["logs"], json!([]));
    assert!(failed[0]["error"].as_str().unwrap().contains("500"));
    emulator
        .assert_stdout(
            "Executed 'Fail'",
            &["Response status code does not indicate success: 500 ("],
        )
        .await;
    assert!(!emulator.logged_any(|l| l.contains("must be dropped")));

    let response = get("/api/TextReply").await.unwrap();
    assert_eq!(response.status(), 500);
    assert_eq!(response.text().await.unwrap(), "");

    let response = get("/api/ReturnHttp").await.unwrap();
    assert_eq!(response.status(), 202);
    assert_eq!(response.text().await.unwrap(), "from return");

    let response = get("/api/NoSuchFunction").await.unwrap();
    assert_eq!(response.status(), 404);
}

#[tokio::test(flavor = "multi_thread")]
async fn keys_are_enforced_like_azure() {
    let record = tempfile::NamedTempFile::new().unwrap();
    let record_path = record.path().to_str().unwrap().to_string();
    let functions = [
        ("EchoFn", http_function("function", None, None)),
        ("EchoAdmin", http_function("admin", None, None)),
        ("EchoAnon", http_function("anonymous", None, Some(&["get"]))),
    ];
    let app = app_root(&host_json(false), &functions);
    let keys_file = app.path().join("keys").join("host-keys.json");
    let emulator = Emulator::start(
        app.path(),
        &["--keys-file", keys_file.to_str().unwrap()],
        &[("FAKE_HANDLER_RECORD", &record_path)],
    )
    .await;
    let (function_key, master_key) = (emulator.function_key(), emulator.master_key());
    assert_ne!(function_key, master_key);

    // The keys file holds the same keys, readable by its owner only.
    let stored: Value =
        serde_json::from_str(&std::fs::read_to_string(&keys_file).unwrap()).unwrap();
    assert_eq!(stored["functionKeys"]["default"], function_key.as_str());
    assert_eq!(stored["masterKey"], master_key.as_str());
    assert_eq!(
        std::fs::metadata(&keys_file).unwrap().permissions().mode() & 0o777,
        0o600
    );

    let calls_before = recorded(record.path())
        .iter()
        .filter(|r| r["method"] == "POST")
        .count();
    let status = |path: String, key: Option<String>| {
        let mut request = emulator.client.get(emulator.url(&path));
        if let Some(key) = key {
            request = request.header("x-functions-key", key);
        }
        async move {
            let response = request.send().await.unwrap();
            let status = response.status().as_u16();
            (status, response.text().await.unwrap())
        }
    };
    // Every refusal is an empty 401.
    let refused = [
        ("no key", "/api/EchoFn".to_string(), None),
        (
            "a wrong key in the header",
            "/api/EchoFn".to_string(),
            Some("wrong".to_string()),
        ),
        ("a wrong ?code=", "/api/EchoFn?code=wrong".to_string(), None),
        (
            "a wrong header beside a right ?code= (the header wins)",
            format!("/api/EchoFn?code={function_key}"),
            Some("wrong".to_string()),
        ),
        (
            "the function key for an admin function",
            "/api/EchoAdmin".to_string(),
            Some(function_key.clone()),
        ),
    ];
    for (case, path, key) in refused {
        assert_eq!(status(path, key).await, (401, String::new()), "{case}");
    }
    let calls_after_rejections = recorded(record.path())
        .iter()
        .filter(|r| r["method"] == "POST")
        .count();
    assert_eq!(
        calls_before, calls_after_rejections,
        "the handler was called for a rejected request"
    );

    let accepted = [
        (
            "the function key in the header",
            "/api/EchoFn".to_string(),
            Some(function_key.clone()),
        ),
        (
            "the function key as ?code=",
            format!("/api/EchoFn?code={function_key}"),
            None,
        ),
        (
            "the master key for a function-level function",
            "/api/EchoFn".to_string(),
            Some(master_key.clone()),
        ),
    ];
    for (case, path, key) in accepted {
        assert_eq!(status(path, key).await.0, 200, "{case}");
    }
    let (code, body) = status("/api/EchoAdmin".into(), Some(master_key.clone())).await;
    assert_eq!(code, 200);
    let echoed: Value = serde_json::from_str(&body).unwrap();
    let claims = &echoed["document"]["Data"]["req"]["Identities"][0]["Claims"];
    let claims = claims.as_array().unwrap();
    for value in ["Admin", "master"] {
        assert!(
            claims.iter().any(|c| c["Value"] == value),
            "{value}: {claims:?}"
        );
    }
    assert_eq!(status("/api/EchoAnon".into(), None).await.0, 200);
    // Methods are enforced (anonymous function only allows GET).
    let response = emulator.call(Method::POST, "/api/EchoAnon", |r| r).await;
    assert_eq!(response.status(), 404);

    assert!(
        !emulator.logged_any(|l| l.contains(&function_key) || l.contains(&master_key)),
        "a key was logged"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn setting_references_are_resolved_or_the_function_is_refused() {
    let functions = [
        (
            "Scheduled",
            timer_function("%EMU_TEST_SCHEDULE%", false, None),
        ),
        (
            "LocalScheduled",
            timer_function("%EMU_TEST_LOCAL_SCHEDULE%", false, None),
        ),
        (
            "Broken",
            timer_function("%EMU_TEST_UNSET_SETTING%", false, None),
        ),
        ("EchoAnon", http_function("anonymous", None, None)),
    ];
    let app = app_root(&host_json(false), &functions);
    let local_settings = app.path().join("local.settings.json");
    std::fs::write(
        &local_settings,
        json!({"IsEncrypted": false, "Values": {
            "EMU_TEST_LOCAL_SCHEDULE": "0 0 0 1 1 *",
            "FAKE_INHERITED": "from-local",
            "EMU_TEST_SCHEDULE": "not a schedule"}})
        .to_string(),
    )
    .unwrap();
    let emulator = Emulator::start(
        app.path(),
        &[
            "--no-timers",
            "--local-settings",
            local_settings.to_str().unwrap(),
        ],
        &[("EMU_TEST_SCHEDULE", "0 0 0 1 1 *")],
    )
    .await;
    // local.settings.json values reach the handler; the environment wins over them.
    let response = emulator.get("/api/EchoAnon").await;
    let echoed = crate::support::host::json_body(response).await;
    assert_eq!(echoed["env"]["FAKE_INHERITED"], "from-local");
    let names: Vec<&str> = emulator.ready["functions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["name"].as_str().unwrap())
        .collect();
    assert!(names.contains(&"Scheduled"), "{names:?}");
    assert!(names.contains(&"LocalScheduled"), "{names:?}");
    assert!(!names.contains(&"Broken"), "{names:?}");
    let refused = &emulator.ready["not_indexed"][0];
    assert_eq!(refused["name"], "Broken");
    let reason = refused["reason"].as_str().unwrap();
    assert!(reason.contains("EMU_TEST_UNSET_SETTING"), "{reason}");
    emulator
        .assert_stdout("'Broken' not indexed", &["EMU_TEST_UNSET_SETTING"])
        .await;

    let echo = emulator.ready["functions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["name"] == "EchoAnon")
        .unwrap()
        .clone();
    assert_eq!(echo["trigger"], "http");
    assert_eq!(echo["route"], "/api/EchoAnon");
    assert_eq!(echo["auth_level"], "anonymous");
    assert_eq!(echo["methods"], json!([]));
}

#[tokio::test(flavor = "multi_thread")]
async fn host_json_request_limits_queue_and_then_refuse_with_429_as_the_host_does() {
    let record = tempfile::NamedTempFile::new().unwrap();
    let record_path = record.path().to_str().unwrap().to_string();
    let mut host = host_json(true);
    host["extensions"] = json!({"http": {"maxConcurrentRequests": 1, "maxOutstandingRequests": 1}});
    let app = app_root(
        &host,
        &[("Slow", http_function("anonymous", Some("slow"), None))],
    );
    let emulator = Emulator::start(app.path(), &[], &[("FAKE_HANDLER_RECORD", &record_path)]).await;
    let held = tokio::spawn({
        let url = emulator.url("/api/slow?delay_ms=3000");
        async move { reqwest::get(url).await.map(|r| r.status().as_u16()) }
    });
    // Once the handler has the first request, it holds the one place the queue has.
    while !recorded(record.path())
        .iter()
        .any(|r| r["query"] == "delay_ms=3000")
    {
        assert!(!held.is_finished(), "the held request ended early");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let refused = emulator.get("/api/slow").await;
    assert_eq!(refused.status(), 429);
    assert_eq!(refused.headers()["x-function-scaleout"], "1");
    assert_eq!(refused.bytes().await.unwrap().len(), 0, "no body");
    assert!(
        !recorded(record.path())
            .iter()
            .any(|r| r["path"] == "/api/slow" && r["query"] == ""),
        "the refused request never reached the handler"
    );
    assert_eq!(held.await.unwrap().unwrap(), 200);
    let log: Value = crate::support::host::json_body(emulator.get("/_emulator/logs").await).await;
    let refusal = log
        .as_array()
        .unwrap()
        .iter()
        .find(|entry| entry["category"] == "HttpThrottleMiddleware")
        .expect("the host logs the refusal");
    assert_eq!(refusal["level"], "Information");
    assert_eq!(
        refusal["message"],
        "Http request queue limit of 1 has been exceeded."
    );
    assert_eq!(
        emulator.get("/api/slow").await.status(),
        200,
        "the place is free again"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn forwarding_sends_the_clients_request_and_relays_any_status() {
    let record = tempfile::NamedTempFile::new().unwrap();
    let record_path = record.path().to_str().unwrap().to_string();
    let functions = [
        ("Fwd", http_function("function", Some("fwd/{id}"), None)),
        (
            "EchoQueue",
            json!({"bindings": [
                {"type": "httpTrigger", "direction": "in", "name": "req", "authLevel": "anonymous"},
                {"type": "http", "direction": "out", "name": "res"},
                {"type": "queue", "direction": "out", "name": "msg", "queueName": "q"}]}),
        ),
    ];
    let app = app_root(&host_json(true), &functions);
    let emulator = Emulator::start(app.path(), &[], &[("FAKE_HANDLER_RECORD", &record_path)]).await;
    let key = emulator.function_key();

    let response = emulator
        .call(
            Method::POST,
            &format!("/api/FWD/7?status=418&x=1&x=2&code={key}"),
            |r| {
                r.header("content-type", "text/plain")
                    .header("x-custom", "c")
                    .header("user-agent", "test-client/1")
                    .body("hello")
            },
        )
        .await;
    assert_eq!(response.status(), 418);
    assert_eq!(response.headers()["x-fake-forwarded"], "1");
    let seen: Value = crate::support::host::json_body(response).await;
    assert_eq!(seen["method"], "POST");
    assert_eq!(seen["path"], "/api/FWD/7");
    assert_eq!(seen["query"], format!("status=418&x=1%2C2&code={key}"));
    assert_eq!(seen["body"], "hello");
    let headers = &seen["headers"];
    assert_eq!(headers["x-custom"][0], "c");
    assert_eq!(headers["content-type"][0], "text/plain");
    assert!(is_guid(
        headers["x-azure-functions-invocationid"][0]
            .as_str()
            .unwrap()
    ));
    assert!(headers["x-azure-functions-hostversion"][0].is_string());
    let ua = headers["user-agent"][0].as_str().unwrap();
    assert!(
        ua.starts_with("test-client/1") && ua.contains("Azure-Functions-Host/"),
        "{ua}"
    );
    let invocation = emulator
        .wait_for_invocations(1, |i| i["function"] == "Fwd")
        .await;
    assert_eq!(invocation[0]["mode"], "forwarding");
    assert_eq!(invocation[0]["http_status"], 418);

    // No body without Content-Length > 0.
    let response = emulator
        .call(Method::GET, "/api/fwd/8", |r| {
            r.header("x-functions-key", &key)
        })
        .await;
    let seen: Value = crate::support::host::json_body(response).await;
    assert_eq!(seen["body"], "");
    assert!(seen["headers"].get("content-length").is_none());

    // A function with an extra binding stays in JSON mode.
    let response = emulator.get("/api/EchoQueue").await;
    assert_eq!(response.status(), 200);
    let echoed: Value = crate::support::host::json_body(response).await;
    assert_eq!(echoed["request"]["path"], "/EchoQueue");
    let modes: Vec<Value> = emulator.ready["functions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| json!([f["name"], f["mode"]]))
        .collect();
    assert!(
        modes.contains(&json!(["Fwd", "forwarding"]))
            && modes.contains(&json!(["EchoQueue", "json"]))
    );

    // The forwarded-mode key check happens before the handler is called.
    let before = recorded(record.path()).len();
    let response = emulator.get("/api/fwd/9").await;
    assert_eq!(response.status(), 401);
    assert_eq!(recorded(record.path()).len(), before);
}

#[tokio::test(flavor = "multi_thread")]
async fn timers_fire_on_schedule_and_on_startup() {
    let functions = [
        ("Tick", timer_function("*/1 * * * * *", false, None)),
        ("Startup", timer_function("0 0 0 1 1 *", true, None)),
    ];
    let (_app, emulator) = start_app(&host_json(false), &functions, &[]).await;

    let ticks = emulator
        .wait_for_invocations(2, |i| i["function"] == "Tick")
        .await;
    for tick in &ticks {
        assert_eq!(tick["trigger"], "timer");
        assert_eq!(tick["status"], "succeeded");
        assert_eq!(tick["logs"][0], "timer tick fired");
        let info = logged_timer_info(tick);
        assert_eq!(
            info,
            json!({"Schedule": {"AdjustForDST": true}, "ScheduleStatus": null, "IsPastDue": false})
        );
        assert_eq!(tick["logs"][2], "metadata keys [\"sys\"]");
    }

    let startup = emulator
        .wait_for_invocations(1, |i| i["function"] == "Startup")
        .await;
    assert_eq!(startup[0]["reason"], "startup");
    let info = logged_timer_info(&startup[0]);
    assert_eq!(info["Schedule"], json!({"AdjustForDST": true}));
    assert_eq!(info["IsPastDue"], false);
    let status = &info["ScheduleStatus"];
    assert_eq!(status["Last"], "0001-01-01T00:00:00+00:00");
    let next = status["Next"].as_str().unwrap();
    assert!(next.ends_with("-01-01T00:00:00+00:00"), "{next}");
    assert_eq!(status["LastUpdated"], "0001-01-01T00:00:00+00:00");

    // After that run the monitor record moved on; an admin run sees it.
    let response = emulator
        .call(Method::POST, "/admin/functions/Startup", |r| {
            r.header("x-functions-key", emulator.master_key())
                .body(r#"{"input":""}"#)
        })
        .await;
    assert_eq!(response.status(), 202);
    let admin = emulator
        .wait_for_invocations(1, |i| i["function"] == "Startup" && i["trigger"] == "admin")
        .await;
    let info = logged_timer_info(&admin[0]);
    let status = &info["ScheduleStatus"];
    let last = status["Last"].as_str().unwrap();
    assert!(
        !last.starts_with("0001") && last.ends_with("+00:00"),
        "{last}"
    );
    assert_eq!(status["LastUpdated"], status["Last"]);
    let next = status["Next"].as_str().unwrap();
    assert!(next.ends_with("-01-01T00:00:00+00:00"), "{next}");

    emulator
        .assert_stdout("timer tick fired", &["[Tick "])
        .await;
    emulator
        .assert_stdout("Executed 'Tick'", &["timer", "succeeded"])
        .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn admin_invoke_runs_a_timer_by_hand() {
    let functions = [
        ("Manual", timer_function("0 0 0 1 1 *", false, None)),
        ("EchoAnon", http_function("anonymous", None, None)),
    ];
    let (_app, emulator) = start_app(&host_json(false), &functions, &["--no-timers"]).await;
    let post = |path: &str, key: Option<String>| {
        let mut request = emulator
            .client
            .post(emulator.url(path))
            .header("content-type", "application/json")
            .body(r#"{"input":""}"#);
        if let Some(key) = key {
            request = request.header("x-functions-key", key);
        }
        request.send()
    };
    let refusals = [
        ("/admin/functions/Manual", None, 401),
        (
            "/admin/functions/Manual",
            Some(emulator.function_key()),
            401,
        ),
        ("/admin/functions/Nope", Some(emulator.master_key()), 404),
    ];
    for (path, key, status) in refusals {
        let with_key = key.is_some();
        let answer = post(path, key).await.unwrap().status();
        assert_eq!(answer, status, "{path} (with a key: {with_key})");
    }
    assert!(
        emulator.invocations().await.is_empty(),
        "rejected admin calls invoked something"
    );

    let response = post("/admin/functions/manual", Some(emulator.master_key()))
        .await
        .unwrap();
    assert_eq!(response.status(), 202);
    let runs = emulator
        .wait_for_invocations(1, |i| i["function"] == "Manual")
        .await;
    assert_eq!(runs[0]["trigger"], "admin");
    let info = logged_timer_info(&runs[0]);
    assert_eq!(info["IsPastDue"], false);
    assert_eq!(info["Schedule"], json!({"AdjustForDST": true}));
    assert_eq!(
        info["ScheduleStatus"],
        Value::Null,
        "no monitor record before any scheduled run"
    );

    // The ring buffer can be cleared.
    let response = emulator
        .call(Method::DELETE, "/_emulator/invocations", |r| r)
        .await;
    assert_eq!(response.status(), 204);
    assert!(emulator.invocations().await.is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn readiness_waits_for_a_slow_handler() {
    let app = echo_app();
    let emulator =
        Emulator::start(app.path(), &[], &[("FAKE_HANDLER_START_DELAY_MS", "1500")]).await;
    // Right after the ready line the handler must already answer.
    let response = emulator.get("/api/EchoAnon").await;
    assert_eq!(response.status(), 200);
    assert_eq!(emulator.invocations().await[0]["status"], "succeeded");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_dying_handler_is_restarted_twice_then_the_emulator_stops() {
    let app = echo_app();
    // Every start of the fake handler exits 3 after 1.5 s (time to get ready even on a busy
    // machine): as the host does, the emulator starts it again after the first and second
    // error and stops at the third.
    let mut emulator =
        Emulator::start(app.path(), &[], &[("FAKE_HANDLER_DIE_AFTER_MS", "1500")]).await;
    let (status, stderr) = emulator.wait_exit().await;
    assert!(!status.success(), "{status}");
    let stdout = emulator.stdout.lock().unwrap().join("\n");
    assert_eq!(
        stdout.matches("restarting it on port").count(),
        2,
        "{stdout}"
    );
    assert_eq!(
        stdout.matches("handler process started: pid").count(),
        3,
        "the first start and the two restarts each log the new pid: {stdout}"
    );
    assert!(
        stderr.contains("exceeded the http worker restart retry count"),
        "{stderr}"
    );
    assert!(stderr.contains("exit status: 3"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_invocation_that_arrives_during_a_restart_waits_for_the_new_handler() {
    let app = echo_app();
    // Each start of the fake handler takes 1.5 s to listen and exits 3 after 1.5 s of serving:
    // a request sent once the restart began arrives while no handler listens.
    let emulator = Emulator::start(
        app.path(),
        &[],
        &[
            ("FAKE_HANDLER_START_DELAY_MS", "1500"),
            ("FAKE_HANDLER_DIE_AFTER_MS", "1500"),
        ],
    )
    .await;
    emulator.wait_for_stdout("restarting it on port").await;
    let response = emulator.get("/api/EchoAnon").await;
    assert_eq!(
        response.status(),
        200,
        "held until the new handler was ready, as the host holds it"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_handler_that_never_listens_fails_the_start() {
    let app = echo_app();
    Emulator::assert_refuses_to_start(
        app.path(),
        std::path::Path::new("/bin/false"),
        "exited before it was ready",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn missing_description_is_refused_like_the_host() {
    let app = app_root(
        &json!({"version": "2.0", "customHandler": {}}),
        &[("EchoAnon", http_function("anonymous", None, None))],
    );
    Emulator::assert_refuses_to_start(
        app.path(),
        &crate::support::host::fake_handler(),
        "Missing worker Description",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_stops_cleanly() {
    let app = echo_app();
    let mut emulator = Emulator::start(app.path(), &[], &[]).await;
    let response = emulator.get("/api/EchoAnon").await;
    let echoed: Value = crate::support::host::json_body(response).await;
    let handler_port = handler_port(&echoed);
    emulator.signal(libc::SIGTERM);
    let (status, stderr) = emulator.wait_exit().await;
    assert!(status.success(), "{status}: {stderr}");
    // The handler was stopped too: its port no longer accepts connections.
    assert!(std::net::TcpStream::connect(("127.0.0.1", handler_port)).is_err());
}

#[tokio::test(flavor = "multi_thread")]
async fn oversized_bodies_get_413_before_the_handler() {
    let app = echo_app();
    let emulator = Emulator::start(app.path(), &[], &[]).await;
    let address = emulator.base.trim_start_matches("http://").to_string();
    let response = tokio::task::spawn_blocking(move || {
        let mut stream = std::net::TcpStream::connect(address).unwrap();
        stream
            .write_all(
                b"POST /api/EchoAnon HTTP/1.1\r\nHost: x\r\nContent-Length: 104857601\r\n\r\nabc",
            )
            .unwrap();
        let mut buffer = [0u8; 256];
        let read = stream.read(&mut buffer).unwrap();
        String::from_utf8_lossy(&buffer[..read]).into_owned()
    })
    .await
    .unwrap();
    assert!(response.starts_with("HTTP/1.1 413"), "{response}");
    assert!(emulator.invocations().await.is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_killed_emulator_takes_its_handler_down() {
    let app = echo_app();
    let mut emulator =
        Emulator::start(app.path(), &[], &[("FAKE_HANDLER_NO_ORPHAN_CHECK", "1")]).await;
    let response = emulator.get("/api/EchoAnon").await;
    let echoed = crate::support::host::json_body(response).await;
    let handler_port = handler_port(&echoed);
    emulator.signal(libc::SIGKILL);
    let _ = emulator.wait_exit().await;
    let deadline = tokio::time::Instant::now() + crate::support::host::WAIT;
    while std::net::TcpStream::connect(("127.0.0.1", handler_port)).is_ok() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the handler outlived a killed emulator"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn host_json_description_picks_executable_arguments_and_directory() {
    let host = json!({
        "version": "2.0",
        "customHandler": {"description": {
            "defaultExecutablePath": "bin/handler",
            "workingDirectory": "work",
            "arguments": ["--port %FUNCTIONS_CUSTOMHANDLER_PORT%", "%EMU_TEST_SURELY_UNSET%", "two words"]
        }}
    });
    let app = app_root(
        &host,
        &[("EchoAnon", http_function("anonymous", None, None))],
    );
    std::fs::create_dir_all(app.path().join("bin")).unwrap();
    std::fs::create_dir_all(app.path().join("work")).unwrap();
    std::os::unix::fs::symlink(
        crate::support::host::fake_handler(),
        app.path().join("bin/handler"),
    )
    .unwrap();
    let emulator = match Emulator::try_start_with(app.path(), None, &[], &[]).await {
        Ok(emulator) => emulator,
        Err(failure) => panic!("did not start: {failure:?}"),
    };
    let response = emulator.get("/api/EchoAnon").await;
    let echoed = crate::support::host::json_body(response).await;
    let port = echoed["env"]["FUNCTIONS_CUSTOMHANDLER_PORT"]
        .as_str()
        .unwrap()
        .to_string();
    // Arguments are expanded, an unresolved %X% is deleted, and the joined line is split on spaces.
    assert_eq!(echoed["args"], json!(["--port", port, "two", "words"]));
    let cwd = std::fs::canonicalize(echoed["cwd"].as_str().unwrap()).unwrap();
    assert_eq!(cwd, std::fs::canonicalize(app.path().join("work")).unwrap());
}

#[tokio::test(flavor = "multi_thread")]
async fn routes_honour_constraints_catch_alls_and_the_prefix() {
    let mut host = host_json(false);
    host["extensions"] = json!({"http": {"routePrefix": "v1"}});
    let functions = [
        (
            "EchoItem",
            http_function("anonymous", Some("items/{id:int}"), None),
        ),
        (
            "EchoFiles",
            http_function("anonymous", Some("files/{*path}"), None),
        ),
    ];
    let (_app, emulator) = start_app(&host, &functions, &[]).await;
    let get = |path: &str| emulator.client.get(emulator.url(path)).send();

    let echoed = crate::support::host::json_body(get("/V1/Items/42").await.unwrap()).await;
    assert_eq!(
        echoed["document"]["Data"]["req"]["Params"],
        json!({"id": "42"})
    );
    assert_eq!(echoed["document"]["Metadata"]["id"], "\"42\"");
    assert_eq!(get("/v1/items/abc").await.unwrap().status(), 404);
    assert_eq!(get("/api/items/42").await.unwrap().status(), 404);

    let echoed = crate::support::host::json_body(get("/v1/files/a/b%20c.txt").await.unwrap()).await;
    assert_eq!(
        echoed["document"]["Data"]["req"]["Params"],
        json!({"path": "a/b c.txt"})
    );
    assert_eq!(echoed["request"]["path"], "/EchoFiles");
}
