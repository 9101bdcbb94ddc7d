//! Calling the handler: JSON-mode POSTs and forwarded HTTP requests, and the bookkeeping around
//! each invocation (id, timing, journal entry). What the host sends and expects:
//! docs/host-contract.md, 'The JSON-mode request', 'The JSON-mode answer' and 'Forwarding'.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::Utc;
use serde_json::{Map, Value};

use super::app::{App, FunctionDef, HttpTrigger, Trigger};
use super::journal::{HostLog, InvocationRecord, Journal};
use super::json_mode::{self, ClientRequest, HandlerReply, HttpResult};
use super::keys::{HostKeys, KeyMatch};
use super::timer::ScheduleStatus;

/// The host version the emulator reports (`X-Azure-Functions-HostVersion`, `User-Agent`).
pub const HOST_VERSION: &str = "4.1037.0.0";
/// The host's HTTP client waits functionTimeout plus one minute for the handler
/// (docs/host-contract.md, 'What counts as a failure, and where the reason goes').
const TIMEOUT_MARGIN: Duration = Duration::from_secs(60);

/// Everything request handling and timers share.
pub struct HostState {
    /// The indexed app.
    pub app: App,
    /// Accepted keys.
    pub keys: HostKeys,
    /// The handler's port.
    pub handler_port: u16,
    /// `host:port` of the emulator's listener (for `Url` when a request has no Host header).
    pub listen_authority: String,
    /// Recent invocations.
    pub journal: Journal,
    /// The host's log as the real host would record it.
    pub host_log: Arc<HostLog>,
    /// host.json's request queue, if it sets one.
    pub queue: Option<super::throttle::RequestQueue>,
    /// Whether the handler is ready: false from a crash until its replacement answers `GET /`.
    pub worker_ready: tokio::sync::watch::Sender<bool>,
    /// Stored schedule-monitor records by function name (written after each timer run).
    timer_status: Mutex<HashMap<String, ScheduleStatus>>,
    client: reqwest::Client,
}

/// The outcome of calling the handler once.
pub struct CallOutcome {
    /// The invocation id used.
    pub invocation_id: String,
    /// When the call started.
    pub started: Instant,
    /// Start time for the journal.
    pub started_at: String,
}

impl CallOutcome {
    fn begin() -> Self {
        Self {
            invocation_id: uuid::Uuid::new_v4().to_string(),
            started: Instant::now(),
            started_at: Utc::now().to_rfc3339(),
        }
    }

    fn elapsed_ms(&self) -> u64 {
        u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// The journal entry for this call, ended now: failed exactly when there is an error; no
    /// HTTP status, logs or start reason (the caller adds those its trigger has).
    fn finish(
        &self,
        function: &FunctionDef,
        trigger: &'static str,
        mode: &'static str,
        error: Option<String>,
    ) -> InvocationRecord {
        InvocationRecord {
            function: function.name.clone(),
            invocation_id: self.invocation_id.clone(),
            trigger,
            mode,
            status: if error.is_none() {
                "succeeded"
            } else {
                "failed"
            },
            http_status: None,
            error,
            logs: Vec::new(),
            reason: None,
            started_at: self.started_at.clone(),
            duration_ms: self.elapsed_ms(),
        }
    }
}

/// A raw HTTP response relayed from the handler in forwarding mode.
pub type ForwardedResponse = HttpResult;

impl HostState {
    /// Builds the shared state with an HTTP client that never uses a proxy nor follows redirects.
    pub fn new(
        app: App,
        keys: HostKeys,
        handler_port: u16,
        listen_authority: String,
        host_log: Arc<HostLog>,
    ) -> Result<Self, String> {
        let client = reqwest::Client::builder()
            .no_proxy()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(app.host.function_timeout_secs) + TIMEOUT_MARGIN)
            .connect_timeout(Duration::from_secs(10))
            .build()
            .map_err(|e| format!("cannot build HTTP client: {e}"))?;
        Ok(Self {
            queue: super::throttle::RequestQueue::new(app.host.http_limits),
            worker_ready: tokio::sync::watch::Sender::new(true),
            app,
            keys,
            handler_port,
            listen_authority,
            journal: Journal::default(),
            host_log,
            timer_status: Mutex::new(HashMap::new()),
            client,
        })
    }

    /// Runs a call to the handler once it is ready, and fails the invocation once host.json's
    /// functionTimeout has passed, as the host does.
    async fn within_timeout<T>(
        &self,
        function_name: &str,
        call: impl std::future::Future<Output = Result<T, String>>,
    ) -> Result<T, String> {
        self.until_worker_ready().await?;
        let limit = Duration::from_secs(self.app.host.function_timeout_secs);
        tokio::time::timeout(limit, call).await.unwrap_or_else(|_| {
            let secs = limit.as_secs();
            Err(format!(
                "Timeout value of {:02}:{:02}:{:02} was exceeded by function: Functions.{function_name}",
                secs / 3600,
                secs / 60 % 60,
                secs % 60
            ))
        })
    }

    /// Holds an invocation while a crashed handler is being replaced, as the host's invoker
    /// does, for up to (3 + 1) × initializationTimeout (docs/host-contract.md, 'Readiness' and
    /// 'Restarts'). The host then shuts down; the emulator fails the invocation with the same
    /// line (its restart loop has stopped it by then in every case but a stuck start).
    async fn until_worker_ready(&self) -> Result<(), String> {
        let mut ready = self.worker_ready.subscribe();
        if *ready.borrow_and_update() {
            return Ok(());
        }
        let limit =
            Duration::from_secs(4 * self.app.host.handler.initialization_timeout_secs.max(1));
        match tokio::time::timeout(limit, ready.wait_for(|ready| *ready)).await {
            Ok(Ok(_)) => Ok(()),
            _ => {
                let message = "Final functionDispatcher state: WorkerProcessRestarting. Initialization timed out and host is shutting down";
                self.host_log.push(super::journal::LogEntry {
                    level: "Error",
                    category: "Microsoft.Azure.WebJobs.Script.Description.WorkerFunctionInvoker"
                        .into(),
                    invocation_id: None,
                    message: message.into(),
                });
                Err(message.into())
            }
        }
    }

    /// Records a finished invocation in the journal and the host log.
    fn record(&self, record: InvocationRecord) {
        self.host_log.invocation(&record);
        self.journal.record(record);
    }

    /// Stores a timer's monitor record after a run.
    pub fn store_timer_status(&self, function_name: &str, status: ScheduleStatus) {
        if let Ok(mut records) = self.timer_status.lock() {
            records.insert(function_name.to_string(), status);
        }
    }

    /// The stored monitor record of a timer (`None` before its first run, like a missing
    /// monitor blob).
    pub fn timer_status(&self, function_name: &str) -> Option<ScheduleStatus> {
        self.timer_status
            .lock()
            .ok()
            .and_then(|records| records.get(function_name).copied())
    }

    /// Finds a function by name, without regard to case.
    pub fn function(&self, name: &str) -> Option<&FunctionDef> {
        self.app
            .functions
            .iter()
            .find(|f| f.name.eq_ignore_ascii_case(name))
    }

    /// POSTs a JSON-mode document to `/{FunctionName}` and checks the answer
    /// (docs/host-contract.md, 'The JSON-mode answer').
    async fn post_json(
        &self,
        function_name: &str,
        invocation_id: &str,
        document: &Value,
    ) -> Result<HandlerReply, String> {
        let url = format!("http://127.0.0.1:{}/{}", self.handler_port, function_name);
        let body = serde_json::to_vec(document).map_err(|e| format!("cannot serialize: {e}"))?;
        let response = self
            .client
            .post(url)
            .header("X-Azure-Functions-InvocationId", invocation_id)
            .header("X-Azure-Functions-HostVersion", HOST_VERSION)
            .header("User-Agent", format!("Azure-Functions-Host/{HOST_VERSION}"))
            .header("Content-Type", "application/json; charset=utf-8")
            .body(reqwest::Body::wrap(ChunkedBody::new(body)))
            .send()
            .await
            .map_err(|e| describe_send_error(&e))?;
        let status = response.status().as_u16();
        let reason = response
            .extensions()
            .get::<hyper::ext::ReasonPhrase>()
            .map(|phrase| String::from_utf8_lossy(phrase.as_bytes()).into_owned())
            .or_else(|| response.status().canonical_reason().map(str::to_owned))
            .unwrap_or_default();
        let content_type = response
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let bytes = response.bytes().await.map_err(|e| {
            format!(
                "reading the handler's answer failed: {}",
                describe_send_error(&e)
            )
        })?;
        json_mode::parse_reply(status, &reason, content_type.as_deref(), &bytes)
    }

    /// Runs an HTTP-triggered function in JSON mode and returns the client's response.
    pub async fn invoke_http_json(
        &self,
        function: &FunctionDef,
        http: &HttpTrigger,
        request: &ClientRequest,
        params: &Map<String, Value>,
        key: Option<&KeyMatch>,
    ) -> HttpResult {
        let call = CallOutcome::begin();
        let mut data = Map::new();
        data.insert(
            http.binding_name.clone(),
            json_mode::http_trigger_data(request, params, key, &self.listen_authority),
        );
        let metadata = json_mode::http_metadata(request, params, &function.name);
        let document = json_mode::envelope(data, metadata);
        let outcome = self
            .within_timeout(
                &function.name,
                self.post_json(&function.name, &call.invocation_id, &document),
            )
            .await
            .and_then(|reply| {
                let result = json_mode::http_result(
                    &reply,
                    http.output_name.as_deref(),
                    function.return_binding_type.is_some(),
                    request.header("Accept-Charset"),
                )?;
                Ok((reply.logs, result))
            });
        let (logs, error, result) = match outcome {
            Ok((logs, result)) => (logs, None, result),
            Err(error) => (Vec::new(), Some(error), bare_500()),
        };
        self.record(InvocationRecord {
            http_status: Some(result.status),
            logs,
            ..call.finish(function, "http", "json", error)
        });
        result
    }

    /// Runs a non-HTTP function in JSON mode with the given trigger value (timer or admin).
    pub async fn invoke_trigger(
        &self,
        function: &FunctionDef,
        trigger_value: Value,
        trigger: &'static str,
        reason: &'static str,
    ) -> bool {
        let call = CallOutcome::begin();
        let binding_name = match &function.trigger {
            Trigger::Timer(timer) => timer.binding_name.clone(),
            Trigger::Other { binding_name, .. } => binding_name.clone(),
            Trigger::Http(http) => http.binding_name.clone(),
        };
        let mut data = Map::new();
        data.insert(binding_name, trigger_value);
        let document = json_mode::envelope(data, json_mode::sys_only_metadata(&function.name));
        let outcome = self
            .within_timeout(
                &function.name,
                self.post_json(&function.name, &call.invocation_id, &document),
            )
            .await;
        let (logs, error) = match outcome {
            Ok(reply) => (reply.logs, None),
            Err(error) => (Vec::new(), Some(error)),
        };
        let succeeded = error.is_none();
        self.record(InvocationRecord {
            logs,
            reason: Some(reason),
            ..call.finish(function, trigger, "json", error)
        });
        succeeded
    }

    /// Forwards the client's request to the handler at the same path and relays the raw answer
    /// (docs/host-contract.md, 'Forwarding').
    pub async fn invoke_http_forwarding(
        &self,
        function: &FunctionDef,
        request: &ClientRequest,
    ) -> ForwardedResponse {
        let call = CallOutcome::begin();
        let outcome = self
            .within_timeout(&function.name, self.forward(request, &call.invocation_id))
            .await;
        let (error, result) = match outcome {
            Ok(result) => (None, result),
            Err(error) => (Some(error), bare_500()),
        };
        self.record(InvocationRecord {
            http_status: Some(result.status),
            ..call.finish(function, "http", "forwarding", error)
        });
        result
    }

    async fn forward(
        &self,
        request: &ClientRequest,
        invocation_id: &str,
    ) -> Result<HttpResult, String> {
        // The path goes out exactly as it was routed: a URL library would resolve `%2e%2e`
        // segments and reach another function than the one whose key was checked.
        let target = format!("{}{}", request.path, rebuild_query(&request.query_joined()));
        let mut builder = hyper::Request::builder()
            .method(request.method.as_str())
            .uri(target.as_str());
        let mut user_agent = None;
        let mut host = None;
        let mut invocation_ids = Vec::new();
        let mut host_versions = Vec::new();
        for (name, value) in &request.headers {
            let lower = name.to_ascii_lowercase();
            match lower.as_str() {
                "content-length" | "transfer-encoding" | "connection" | "keep-alive" | "te"
                | "upgrade" => {}
                "host" => host = Some(value.clone()),
                // The host appends its own values to any the client sent (one header line,
                // values joined by ", "), so a handler must take the last one.
                "x-azure-functions-invocationid" => invocation_ids.push(value.clone()),
                "x-azure-functions-hostversion" => host_versions.push(value.clone()),
                "user-agent" => user_agent = Some(value.clone()),
                // A content header travels only with a body (the host copies Content-Type onto
                // the body it forwards, and forwards a body only when Content-Length > 0).
                "content-type" if request.body.is_none() => {}
                _ => builder = builder.header(name.as_str(), value.as_str()),
            }
        }
        invocation_ids.push(invocation_id.to_owned());
        host_versions.push(HOST_VERSION.to_owned());
        let user_agent = match user_agent {
            Some(ua) => format!("{ua} Azure-Functions-Host/{HOST_VERSION}"),
            None => format!("Azure-Functions-Host/{HOST_VERSION}"),
        };
        if let Some(body) = &request.body {
            builder = builder.header("Content-Length", body.len().to_string());
        }
        let body = request.body.clone().unwrap_or_default();
        let outgoing = builder
            .header(
                "Host",
                host.unwrap_or_else(|| format!("127.0.0.1:{}", self.handler_port)),
            )
            .header("User-Agent", user_agent)
            .header("X-Azure-Functions-HostVersion", host_versions.join(", "))
            .header("X-Azure-Functions-InvocationId", invocation_ids.join(", "))
            .body(http_body_util::Full::new(bytes::Bytes::from(body)))
            .map_err(|e| format!("the request could not be forwarded: {e}"))?;
        let stream = tokio::net::TcpStream::connect(("127.0.0.1", self.handler_port))
            .await
            .map_err(|e| format!("connection to the handler failed: {e}"))?;
        let (mut sender, connection) =
            hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
                .await
                .map_err(|e| format!("connection to the handler failed: {e}"))?;
        let driver = tokio::spawn(connection);
        let response = sender
            .send_request(outgoing)
            .await
            .map_err(|e| format!("request to the handler failed: {e}"))?;
        let status = response.status().as_u16();
        let headers = response
            .headers()
            .iter()
            .filter(|(name, _)| !is_hop_by_hop(name.as_str()))
            .map(|(name, value)| {
                (
                    name.as_str().to_string(),
                    String::from_utf8_lossy(value.as_bytes()).into_owned(),
                )
            })
            .collect();
        let body = http_body_util::BodyExt::collect(response.into_body())
            .await
            .map_err(|e| format!("reading the handler's answer failed: {e}"))?
            .to_bytes()
            .to_vec();
        driver.abort();
        Ok(HttpResult {
            status,
            headers,
            body,
        })
    }
}

/// A request body with no announced length, so it goes out with `Transfer-Encoding: chunked`
/// like the host's JSON-mode POST, whose formatter never computes a length (docs/host-contract.md,
/// 'The JSON-mode request'). A handler that insists on `Content-Length` fails here as it would
/// under the real host.
struct ChunkedBody {
    data: Option<bytes::Bytes>,
}

impl ChunkedBody {
    fn new(data: Vec<u8>) -> Self {
        Self {
            data: Some(bytes::Bytes::from(data)),
        }
    }
}

impl hyper::body::Body for ChunkedBody {
    type Data = bytes::Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<hyper::body::Frame<Self::Data>, Self::Error>>> {
        std::task::Poll::Ready(
            self.data
                .take()
                .map(|data| Ok(hyper::body::Frame::data(data))),
        )
    }

    fn is_end_stream(&self) -> bool {
        self.data.is_none()
    }
}

/// Headers that describe one connection or framing and are not relayed.
fn is_hop_by_hop(name: &str) -> bool {
    matches!(
        name,
        "content-length" | "transfer-encoding" | "connection" | "keep-alive" | "te" | "upgrade"
    )
}

/// The host's failure answer: 500 with no body.
fn bare_500() -> HttpResult {
    HttpResult {
        status: 500,
        headers: Vec::new(),
        body: Vec::new(),
    }
}

/// A send error without the URL's query (which may hold a `code` key).
fn describe_send_error(error: &reqwest::Error) -> String {
    let kind = if error.is_connect() {
        "connection to the handler failed"
    } else if error.is_timeout() {
        "the handler did not answer in time"
    } else if error.is_body() || error.is_decode() {
        "reading the handler's answer failed"
    } else {
        "request to the handler failed"
    };
    let mut text = error.to_string();
    if let Some(url) = error.url() {
        text = text.replace(url.as_str(), "<handler url>");
    }
    format!("{kind}: {text}")
}

/// Rebuilds a query string from joined pairs, percent-encoding keys and values (`x=1%2C2`).
pub fn rebuild_query(pairs: &[(String, String)]) -> String {
    if pairs.is_empty() {
        return String::new();
    }
    let encoded: Vec<String> = pairs
        .iter()
        .map(|(k, v)| format!("{}={}", percent_encode(k), percent_encode(v)))
        .collect();
    format!("?{}", encoded.join("&"))
}

/// Percent-encodes everything but RFC 3986 unreserved characters.
fn percent_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'_' | b'.' | b'~') {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_is_rebuilt_with_joined_values() {
        let pairs = vec![
            ("x".to_string(), "1,2".to_string()),
            ("n".to_string(), "a b".to_string()),
        ];
        assert_eq!(rebuild_query(&pairs), "?x=1%2C2&n=a%20b");
        assert_eq!(rebuild_query(&[]), "");
    }
}
