//! Active content: a caller stores a page (html, svg) and sends a victim its ReadBlob URL, or a
//! downstream API answers a page or a redirect that CallApi relays on the app's origin. Every
//! answer must carry `nosniff`, anything that could run script must be inert (CSP `sandbox` and
//! `Content-Disposition: attachment`), and no downstream `Location` may come back as a redirect.
//! CallApi's path check must also hold against Unicode look-alikes of `.` and `/`.

use serde_json::{Value, json};

use super::blob::BlobApp;
use test_kit::handler::http_payload;
use test_kit::recorder::Reply;
use test_kit::server::FakeServer;
use test_kit::stack::API_ID_URI;

const PAGE: &str = "<html><body><script>fetch('/api/secrets/app-greeting')</script></body></html>";
const SVG: &str =
    "<svg xmlns=\"http://www.w3.org/2000/svg\"><script>alert(document.domain)</script></svg>";

fn headers(envelope: &Value) -> &Value {
    &envelope["Outputs"]["res"]["headers"]
}

fn assert_inert(headers: &Value, what: &str) {
    assert_eq!(
        headers["X-Content-Type-Options"], "nosniff",
        "{what}: {headers}"
    );
    assert_eq!(
        headers["Content-Security-Policy"], "sandbox",
        "{what}: {headers}"
    );
    assert_eq!(
        headers["Content-Disposition"], "attachment",
        "{what}: {headers}"
    );
}

#[tokio::test]
async fn stored_html_and_svg_come_back_inert_with_nosniff() {
    let app = BlobApp::start(Some("demo"), &[]).await;
    for (name, content_type, body) in [
        ("page.html", "text/html; charset=utf-8", PAGE),
        ("image.svg", "image/svg+xml", SVG),
        ("feed.xml", "application/xml", SVG),
        ("app.js", "text/javascript", "alert(1)"),
        // JSON mode refuses a non-text body (415, the host has already altered it), so the
        // unknown type here is a textual one; it is still served inert.
        ("odd.txt", "text/x-unknown", PAGE),
    ] {
        let write = app
            .invoke("WriteBlob", "demo", name, Some((content_type, body)))
            .await;
        assert_eq!(write["Outputs"]["res"]["statusCode"], 201, "{write}");
        let read = app.invoke("ReadBlob", "demo", name, None).await;
        assert_eq!(read["Outputs"]["res"]["statusCode"], 200, "{read}");
        assert_eq!(
            headers(&read)["Content-Type"],
            content_type,
            "the type is kept"
        );
        assert_inert(headers(&read), name);
    }
    let write = app
        .invoke(
            "WriteBlob",
            "demo",
            "note.txt",
            Some(("text/plain", "hello")),
        )
        .await;
    assert_eq!(write["Outputs"]["res"]["statusCode"], 201, "{write}");
    let read = app.invoke("ReadBlob", "demo", "note.txt", None).await;
    let plain = headers(&read);
    assert_eq!(plain["X-Content-Type-Options"], "nosniff", "{plain}");
    assert!(
        plain.get("Content-Disposition").is_none(),
        "plain data is shown as it is: {plain}"
    );
    let missing = app.invoke("ReadBlob", "demo", "missing.html", None).await;
    assert_eq!(missing["Outputs"]["res"]["statusCode"], 404);
    assert_eq!(
        headers(&missing)["X-Content-Type-Options"],
        "nosniff",
        "errors too"
    );
}

#[tokio::test]
async fn in_forwarding_mode_stored_html_is_inert_too() {
    let app = BlobApp::forwarding(Some("demo")).await;
    let client = reqwest::Client::new();
    let url = format!("{}/api/blobs/demo/page.html", app.handler.base);
    let write = client
        .put(&url)
        .header("content-type", "text/html")
        .body(PAGE)
        .send()
        .await
        .expect("PUT");
    assert_eq!(write.status(), 201);
    let read = client.get(&url).send().await.expect("GET");
    assert_eq!(read.status(), 200);
    let header = |name: &str| {
        read.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    assert_eq!(header("content-type").as_deref(), Some("text/html"));
    assert_eq!(header("x-content-type-options").as_deref(), Some("nosniff"));
    assert_eq!(
        header("content-security-policy").as_deref(),
        Some("sandbox")
    );
    assert_eq!(header("content-disposition").as_deref(), Some("attachment"));
}

/// A downstream API that answers a page, an svg, a redirect to another site, and plain JSON.
async fn downstream() -> FakeServer {
    FakeServer::http(|request| match request.path() {
        "/api/page" => Reply::new(200)
            .header("content-type", "text/html")
            .body(PAGE),
        "/api/image" => Reply::new(200)
            .header("content-type", "image/svg+xml")
            .body(SVG),
        "/api/moved" => Reply::new(302)
            .header("location", "https://evil.example/login")
            .header("content-type", "text/html")
            .body(PAGE),
        _ => Reply::new(200)
            .header("content-type", "application/json")
            .body("{\"ok\":true}"),
    })
    .await
}

async fn app_calling(api: &FakeServer) -> BlobApp {
    let base = format!("{}/api", api.base);
    let scope = format!("{API_ID_URI}/.default");
    BlobApp::start(
        Some("demo"),
        &[
            ("DOWNSTREAM_API_URL", &base),
            ("DOWNSTREAM_API_SCOPE", &scope),
        ],
    )
    .await
}

async fn call(app: &BlobApp, path: &str) -> Value {
    let url = format!("http://localhost:7071/api/call/{path}");
    let payload = http_payload("GET", &url, json!({"path": path}), None);
    app.handler.invoke("CallApi", &payload).await
}

#[tokio::test]
async fn call_api_relays_pages_inert_and_never_a_location() {
    let api = downstream().await;
    let app = app_calling(&api).await;
    for path in ["page", "image"] {
        let answer = call(&app, path).await;
        assert_eq!(answer["Outputs"]["res"]["statusCode"], 200, "{answer}");
        assert_inert(headers(&answer), path);
    }
    let moved = call(&app, "moved").await;
    assert_eq!(moved["Outputs"]["res"]["statusCode"], 302, "{moved}");
    let moved_headers = headers(&moved).as_object().cloned().unwrap_or_default();
    assert!(
        !moved_headers
            .keys()
            .any(|name| name.eq_ignore_ascii_case("location")),
        "the downstream's Location must not come back: {moved_headers:?}"
    );
    assert_inert(headers(&moved), "moved");
    let data = call(&app, "data").await;
    assert_eq!(headers(&data)["X-Content-Type-Options"], "nosniff");
    assert!(
        headers(&data).get("Content-Disposition").is_none(),
        "{data}"
    );
    assert_eq!(api.count(), 4, "each call reached the downstream once");
}

#[tokio::test]
async fn call_api_refuses_unicode_look_alikes_before_any_token_or_call() {
    let api = downstream().await;
    let app = app_calling(&api).await;
    for path in [
        "\u{2025}/secrets",
        "a/\u{2025}/\u{2025}/x",
        "\u{2026}",
        "a/\u{2024}\u{2024}/x",
        "\u{FF0E}\u{FF0E}/x",
        "\u{FE30}/x",
        "\u{FE19}",
        "a\u{FF0F}..\u{FF0F}x",
        "a\u{2100}b",
        "a\u{FE68}b",
        "a\u{FF3C}..",
        "%E2%80%A5/x",
        "%E2%80%A6",
    ] {
        let answer = call(&app, path).await;
        assert_eq!(
            answer["Outputs"]["res"]["statusCode"], 400,
            "{path:?}: {answer}"
        );
    }
    assert_eq!(api.count(), 0, "no look-alike reached the downstream");
    assert_eq!(
        app.stack.token_requests().await,
        0,
        "refused before any token"
    );
}
