//! Dispatch: from a host request (JSON mode or forwarded) to one function's entry point and back.
//!
//! This is the only code, with the registry, that knows every function. It decides from a
//! request's head alone which function it is for and how large its body may be, decodes the
//! host's envelope through `contract`, runs the function inside its invocation scope (so its log
//! lines are kept or marked) with the host's time limit, and shapes the answer the way the host
//! records it (docs/host-contract.md):
//!
//! - JSON mode: an HTTP function's error is an error status in its own output, inside a `200`
//!   envelope, so the caller gets that status and the host keeps `Logs`. A failure of the
//!   invocation itself (a timer run that failed, an unknown function, a panic) answers the host
//!   a non-2xx whose reason phrase says why: the host fails the invocation and logs
//!   "Response status code does not indicate success: <status> (<reason>)".
//! - Forwarding: the function's response goes back as it is; a panic cuts the connection after
//!   the head, the one answer the host records as a failed invocation.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use futures::FutureExt as _;
use hyper::header::HeaderName;

use crate::contract::{HttpOutput, HttpTriggerData, InvocationRequest, InvocationResponse};
use crate::failure::{BoxFailure, Failure, RuntimeError};
use crate::http::{Headers, HttpRequest, HttpResponse, ResponseHeaders, Transport};
use crate::invocation::Invocation;
use crate::registry::{
    DeclaredTrigger, Entry, HttpFn, ImplementedTrigger, Registry, RouteMatch, RuntimeOptions,
    TimerFn,
};

/// Room a JSON-mode envelope needs beside the body it carries: headers, query, identities,
/// metadata. The host's own header limit (Kestrel, 32 KiB) keeps these far smaller.
pub const ENVELOPE_OVERHEAD_BYTES: usize = 1024 * 1024;

/// A request body, or why it was not read.
pub type Body = Result<Bytes, RuntimeError>;

/// The header carrying the host's invocation id.
pub const INVOCATION_ID_HEADER: &str = "x-azure-functions-invocationid";
/// [`INVOCATION_ID_HEADER`] parsed once.
pub(crate) static INVOCATION_ID: HeaderName = HeaderName::from_static(INVOCATION_ID_HEADER);

/// Why a function gave no value: the runtime's own failure around it, or the function's own.
enum Failed {
    /// The runtime refused or stopped the invocation (payload, limits, panic, timeout).
    Runtime(RuntimeError),
    /// The function returned an error.
    Function(BoxFailure),
}

impl Failed {
    fn failure(&self) -> &dyn Failure {
        match self {
            Self::Runtime(error) => error,
            Self::Function(error) => error,
        }
    }
}

impl From<RuntimeError> for Failed {
    fn from(error: RuntimeError) -> Self {
        Self::Runtime(error)
    }
}

/// What the server sends back, in either mode.
#[derive(Debug, Clone, PartialEq)]
pub struct Answer {
    /// The status code.
    pub status: u16,
    /// A reason phrase for the status line, for failures the host logs by it.
    pub reason: Option<String>,
    /// The headers.
    pub headers: ResponseHeaders,
    /// The body.
    pub body: Bytes,
    /// Send the head, then cut the connection: a forwarded invocation that must count as failed.
    pub abort: bool,
}

impl Answer {
    fn from_response(response: HttpResponse) -> Self {
        Self {
            status: response.status,
            reason: None,
            headers: response.headers,
            body: response.body,
            abort: false,
        }
    }

    /// The JSON-mode envelope: always 200, or the host would drop its Logs.
    fn envelope(envelope: &InvocationResponse) -> Self {
        Self::from_response(HttpResponse::new(
            200,
            "application/json; charset=utf-8",
            envelope.to_json(),
        ))
    }

    /// A JSON-mode failure: the error's status with its message as the reason phrase.
    fn failure(error: &dyn Failure, what: &str) -> Self {
        let mut answer = Self::from_response(error.to_response());
        answer.reason = Some(reason_phrase(&format!("{what}: {error}")));
        answer
    }
}

/// Which function a request is for, decided from its method and path alone.
pub enum Route<'a, S> {
    /// `POST /{FunctionName}`: a JSON-mode invocation.
    Json(&'a Entry<S>),
    /// A forwarded request whose route matched.
    Forwarded {
        /// The function.
        entry: &'a Entry<S>,
        /// Its route parameters, still percent-encoded.
        params: BTreeMap<String, String>,
    },
    /// Nothing to run: the answer (404, 405, unknown function).
    Answer(Answer),
}

/// The functions, the state they share, and the options: everything a request needs.
pub struct Runtime<S> {
    state: Arc<S>,
    registry: Registry<S>,
    options: RuntimeOptions,
}

impl<S: Send + Sync + 'static> Runtime<S> {
    /// Builds the runtime; logs every mismatch between the function folders and the code.
    pub fn new(state: Arc<S>, registry: Registry<S>, options: RuntimeOptions) -> Self {
        for mismatch in registry.mismatches() {
            log::error!("function registry: {mismatch}");
        }
        Self {
            state,
            registry,
            options,
        }
    }

    /// The route prefix forwarded requests carry.
    pub fn route_prefix(&self) -> &str {
        &self.options.route_prefix
    }

    /// Whether `name` is a function this runtime serves, without regard to case.
    pub fn serves(&self, name: &str) -> bool {
        self.registry.by_name(name).is_some()
    }

    /// Which function `method path` is for. `POST /{name}` of a served function is JSON mode;
    /// anything else is forwarded by route.
    pub fn route(&self, method: &str, path: &str) -> Route<'_, S> {
        let json_name = json_mode_name(method, path);
        if let Some(entry) = json_name.and_then(|name| self.registry.by_name(name)) {
            return Route::Json(entry);
        }
        let routed = strip_prefix(path, &self.options.route_prefix)
            .map(|below_prefix| self.registry.by_route(method, below_prefix));
        match routed {
            Some(RouteMatch::Found { entry, params }) => Route::Forwarded { entry, params },
            Some(RouteMatch::MethodNotAllowed) => Route::Answer(Answer::from_response(
                RuntimeError::MethodNotAllowed(format!(
                    "{method} is not allowed on {path}; see the function's methods in its function.json"
                ))
                .to_response(),
            )),
            _ => Route::Answer(match json_name {
                Some(name) => unknown_function(name),
                None => Answer::from_response(no_route(method, path)),
            }),
        }
    }

    /// The most body bytes a request on `route` may send: the function's own limit when
    /// forwarded; in JSON mode, the envelope that carries it (base64 or escaped text).
    pub fn body_limit(&self, route: &Route<'_, S>) -> usize {
        match route {
            Route::Json(entry) => ENVELOPE_OVERHEAD_BYTES + 2 * function_body_limit(entry),
            Route::Forwarded { entry, .. } => function_body_limit(entry),
            Route::Answer(_) => 0,
        }
    }

    /// JSON mode: runs `entry` on the host's payload and answers the host.
    pub async fn invoke_json(
        &self,
        entry: &Entry<S>,
        invocation_id: Option<&str>,
        body: Body,
    ) -> Answer {
        let id = invocation_id
            .and_then(last_list_item)
            .map_or_else(local_id, str::to_owned);
        let invocation = Invocation::json(&entry.declared.name, id);
        match (&entry.declared.trigger, &entry.trigger) {
            (DeclaredTrigger::Http(http), ImplementedTrigger::Http { run, .. }) => {
                let limit = function_body_limit(entry);
                let work = self.json_http(run, &http.binding, limit, body);
                match invocation.scope(work).await {
                    Ok(output) => Answer::envelope(&InvocationResponse::http(
                        &http.output,
                        output,
                        invocation.take_logs(),
                    )),
                    Err(error) => fail_invocation(&invocation, &error),
                }
            }
            (DeclaredTrigger::Timer { binding, .. }, ImplementedTrigger::Timer { run }) => {
                let work = self.json_timer(run, binding, body);
                match invocation.scope(work).await {
                    Ok(()) => {
                        Answer::envelope(&InvocationResponse::logs_only(invocation.take_logs()))
                    }
                    Err(error) => fail_invocation(&invocation, error.failure()),
                }
            }
            _ => unknown_function(&entry.declared.name),
        }
    }

    /// An HTTP function in JSON mode. Its errors become its own output; only a panic fails the
    /// invocation itself.
    async fn json_http(
        &self,
        run: &HttpFn<S>,
        binding: &str,
        limit: usize,
        body: Body,
    ) -> Result<HttpOutput, RuntimeError> {
        let request = body.and_then(|bytes| {
            let request = request_from_trigger(crate::contract::http_trigger(&bytes, binding)?);
            if request.body.len() > limit {
                return Err(RuntimeError::PayloadTooLarge { limit });
            }
            Ok(request)
        });
        let (outcome, accept_charset) = match request {
            Ok(request) => {
                let accept_charset = request.header("accept-charset").map(str::to_owned);
                (
                    self.limited(run(self.state.clone(), request)).await,
                    accept_charset,
                )
            }
            Err(error) => (Err(Failed::Runtime(error)), None),
        };
        if let Err(Failed::Runtime(RuntimeError::Panicked)) = outcome {
            return Err(RuntimeError::Panicked);
        }
        let response = into_response(outcome);
        Ok(to_http_output(response, accept_charset.as_deref()))
    }

    async fn json_timer(&self, run: &TimerFn<S>, binding: &str, body: Body) -> Result<(), Failed> {
        let timer =
            body.and_then(|bytes| Ok(InvocationRequest::from_slice(&bytes)?.timer(binding)?))?;
        self.limited(run(self.state.clone(), timer)).await
    }

    /// Forwarding mode: runs `entry` on the request and answers its response as it is.
    pub async fn forward(
        &self,
        entry: &Entry<S>,
        params: BTreeMap<String, String>,
        request: ForwardedRequest,
    ) -> Answer {
        let ImplementedTrigger::Http { run, .. } = &entry.trigger else {
            return Answer::from_response(no_route(&request.method, &request.path));
        };
        let id = request
            .headers
            .all_of(&INVOCATION_ID)
            .filter_map(last_list_item)
            .last()
            .map_or_else(local_id, str::to_owned);
        let invocation = Invocation::forwarded(&entry.declared.name, id);
        let work = async {
            let body = request.body?;
            if body.len() > function_body_limit(entry) {
                return Err(Failed::Runtime(RuntimeError::PayloadTooLarge {
                    limit: function_body_limit(entry),
                }));
            }
            let params = params
                .into_iter()
                .map(|(name, raw)| (name, percent_decode(&raw)))
                .collect();
            let http = HttpRequest {
                method: request.method,
                params,
                query: request.query,
                headers: request.headers,
                body,
                transport: Transport::Forwarded,
            };
            self.limited(run(self.state.clone(), http)).await
        };
        match invocation.scope(work).await {
            Err(Failed::Runtime(RuntimeError::Panicked)) => {
                invocation.sync_scope(|| {
                    log::error!(
                        "the invocation failed: {}; the connection is cut so that the host records a failure",
                        RuntimeError::Panicked
                    )
                });
                let mut answer = Answer::from_response(RuntimeError::Panicked.to_response());
                answer.abort = true;
                answer
            }
            outcome => Answer::from_response(invocation.sync_scope(|| into_response(outcome))),
        }
    }

    /// Runs a function under host.json's functionTimeout. A panic (a bug: no input should cause
    /// one) fails only this invocation.
    async fn limited<T>(
        &self,
        work: impl Future<Output = Result<T, BoxFailure>>,
    ) -> Result<T, Failed> {
        let work = std::panic::AssertUnwindSafe(work)
            .catch_unwind()
            .map(|outcome| match outcome {
                Ok(result) => result.map_err(Failed::Function),
                Err(_) => Err(Failed::Runtime(RuntimeError::Panicked)),
            });
        match self.options.function_timeout {
            Some(limit) => tokio::time::timeout(limit, work)
                .await
                .unwrap_or(Err(Failed::Runtime(RuntimeError::Timeout(limit)))),
            None => work.await,
        }
    }
}

/// A function's body limit, as registered: none for one whose methods never carry a body.
fn function_body_limit<S>(entry: &Entry<S>) -> usize {
    const BODILESS: [&str; 4] = ["GET", "HEAD", "DELETE", "OPTIONS"];
    match (&entry.declared.trigger, &entry.trigger) {
        (DeclaredTrigger::Http(http), ImplementedTrigger::Http { body_limit, .. }) => {
            match &http.methods {
                Some(methods) if methods.iter().all(|m| BODILESS.contains(&m.as_str())) => 0,
                _ => *body_limit,
            }
        }
        _ => 0,
    }
}

/// A forwarded request, as the server read it off the wire.
#[derive(Debug)]
pub struct ForwardedRequest {
    /// The method, upper case.
    pub method: String,
    /// The raw path, prefix included, still percent-encoded.
    pub path: String,
    /// The decoded query.
    pub query: BTreeMap<String, String>,
    /// The headers.
    pub headers: Headers,
    /// The body, or why it was not read.
    pub body: Body,
}

/// A JSON-mode invocation that failed: the host reads no `Logs` from a non-2xx answer, so the
/// lines kept for them go to stdout, and the reason to stderr (an Error in the host's log) and
/// into the status line's reason phrase (the host's exception message).
fn fail_invocation(invocation: &Invocation, error: &dyn Failure) -> Answer {
    crate::logging::write_lines(false, &invocation.take_console_lines());
    invocation.sync_scope(|| log::error!("the invocation failed: {error}"));
    Answer::failure(error, &format!("{} failed", invocation.function()))
}

/// Text fit for a status line's reason phrase: visible ASCII and spaces, at most 300 bytes.
fn reason_phrase(text: &str) -> String {
    let mut phrase: String = text
        .chars()
        .map(|c| {
            if c == ' ' || c.is_ascii_graphic() {
                c
            } else {
                '?'
            }
        })
        .collect();
    if phrase.len() > 300 {
        phrase.truncate(297);
        phrase.push_str("...");
    }
    phrase
}

/// A failure becomes its error response, and a line in the invocation's log.
fn into_response(outcome: Result<HttpResponse, Failed>) -> HttpResponse {
    outcome.unwrap_or_else(|failed| {
        let error = failed.failure();
        log::warn!("answered {}: {error}", error.status());
        error.to_response()
    })
}

/// The host's http trigger data as the function sees it. Bodies the host base64-encoded
/// (octet-stream, multipart) are decoded back to their bytes.
fn request_from_trigger(trigger: HttpTriggerData) -> HttpRequest {
    let content_type = trigger
        .header("content-type")
        .and_then(|v| v.first())
        .cloned();
    let body = trigger
        .body
        .map(|text| body_bytes(content_type.as_deref(), text))
        .unwrap_or_default();
    // One entry per value, the name and values moved rather than copied (a name is copied only
    // for its second and later values).
    let count = trigger.headers.iter().map(|(_, values)| values.len()).sum();
    let mut headers = Vec::with_capacity(count);
    for (name, values) in trigger.headers {
        let mut values = values.into_iter();
        if let Some(last) = values.next_back() {
            headers.extend(values.map(|value| (name.clone(), value)));
            headers.push((name, last));
        }
    }
    let headers = Headers::from(headers);
    HttpRequest {
        method: trigger.method,
        params: trigger
            .params
            .into_iter()
            .filter_map(|(k, v)| v.map(|v| (k, v)))
            .collect(),
        query: trigger.query,
        headers,
        body,
        transport: Transport::Json,
    }
}

fn body_bytes(content_type: Option<&str>, text: String) -> Bytes {
    use base64::Engine as _;
    if crate::http::host_sends_base64(content_type)
        && let Ok(bytes) = base64::engine::general_purpose::STANDARD.decode(text.trim())
    {
        return Bytes::from(bytes);
    }
    Bytes::from(text)
}

/// The http output binding's value. JSON mode carries the body as a string that the host writes
/// as it is — as UTF-8, or UTF-16 when the caller's Accept-Charset or the response's charset
/// asks for it — and ignores Content-Transfer-Encoding. A body that would not reach the caller
/// byte for byte is replaced by a 406 saying so.
fn to_http_output(response: HttpResponse, accept_charset: Option<&str>) -> HttpOutput {
    let utf16 = host_writes_utf16(response.header("content-type"), accept_charset);
    let (status, headers, body, escaped) = response.into_parts();
    // The body's own buffer when it is the only reference to it (as HttpResponse::json leaves
    // it), validated as UTF-8 once; copied only otherwise.
    let text = String::from_utf8(Vec::from(body));
    let problem = match &text {
        Err(_) => Some("the response body is binary (not UTF-8 text)"),
        Ok(_) if utf16 => Some("the host would re-encode this text response as UTF-16"),
        // An escaped JSON body never starts the way a date does (`\"` or a JSON value's first
        // character), so the check reads the same on either form.
        Ok(text) if newtonsoft_reads_as_date(text) => {
            Some("the host would read this body as a date and write it back in another format")
        }
        Ok(_) => None,
    };
    let empty = text.as_ref().is_ok_and(String::is_empty);
    match problem {
        Some(problem) if !empty => {
            let error = RuntimeError::NotAcceptable(problem.to_owned());
            log::warn!("answered {}: {error}", error.status());
            let (status, headers, body, escaped) = error.to_response().into_parts();
            http_output(status, headers, String::from_utf8(Vec::from(body)), escaped)
        }
        _ => http_output(status, headers, text, escaped),
    }
}

/// An http output from a response's parts. Its body is UTF-8 by now (a body that is not was
/// replaced by the 406); the lossy reading only keeps that from being a panic.
fn http_output(
    status: u16,
    headers: ResponseHeaders,
    text: Result<String, std::string::FromUtf8Error>,
    escaped: bool,
) -> HttpOutput {
    HttpOutput {
        status_code: status,
        body: text.unwrap_or_else(|error| String::from_utf8_lossy(error.as_bytes()).into_owned()),
        body_escaped: escaped,
        headers,
    }
}

/// Whether the host's JSON reader (Newtonsoft, default settings) turns this whole string into a
/// DateTime: an ISO-8601 shape (19 to 40 characters, a digit first, `T` at index 10) or
/// `/Date(…)/`. Written back, it would be another text.
fn newtonsoft_reads_as_date(text: &str) -> bool {
    let bytes = text.as_bytes();
    let iso = (19..=40).contains(&bytes.len())
        && bytes[0].is_ascii_digit()
        && bytes[4] == b'-'
        && bytes[7] == b'-'
        && bytes[10] == b'T'
        && bytes[13] == b':'
        && bytes[16] == b':';
    iso || (text.starts_with("/Date(") && text.ends_with(")/"))
}

/// Whether the host's string writer (ASP.NET Core's StringOutputFormatter, which knows UTF-8 and
/// UTF-16) picks UTF-16: the caller's Accept-Charset first, by quality, then the response's own
/// charset parameter.
fn host_writes_utf16(content_type: Option<&str>, accept_charset: Option<&str>) -> bool {
    if let Some(accept) = accept_charset {
        let mut offers: Vec<(String, f32)> = accept
            .split(',')
            .filter_map(|item| {
                let mut parts = item.split(';');
                let name = parts.next()?.trim().to_ascii_lowercase();
                let quality = parts
                    .find_map(|p| p.trim().strip_prefix("q=").map(str::to_owned))
                    .and_then(|q| q.trim().parse::<f32>().ok())
                    .unwrap_or(1.0);
                (!name.is_empty() && quality > 0.0).then_some((name, quality))
            })
            .collect();
        offers.sort_by(|a, b| b.1.total_cmp(&a.1));
        for (name, _) in offers {
            match name.as_str() {
                "utf-8" | "*" => return false,
                "utf-16" => return true,
                _ => {}
            }
        }
    }
    // Only a value holding "16" can name utf-16: most answers are decided without splitting.
    content_type.is_some_and(|kind| {
        kind.as_bytes().windows(2).any(|pair| pair == b"16")
            && kind.split(';').skip(1).any(|parameter| {
                parameter.split_once('=').is_some_and(|(name, value)| {
                    name.trim().eq_ignore_ascii_case("charset")
                        && value
                            .trim()
                            .trim_matches('"')
                            .eq_ignore_ascii_case("utf-16")
                })
            })
    })
}

/// A JSON-mode call of a function this handler does not serve: a failed invocation (404), whose
/// reason the host logs, never a 200 that it would count as a success.
fn unknown_function(name: &str) -> Answer {
    let error = RuntimeError::NotFound(format!(
        "no function named '{name}' is served by this handler: check that {name}/function.json exists beside host.json and that the handler implements it (`handler check`)"
    ));
    log::error!("{error}");
    Answer::failure(&error, "unknown function")
}

/// `POST /{name}`: the shape of a JSON-mode invocation.
fn json_mode_name<'a>(method: &str, path: &'a str) -> Option<&'a str> {
    let name = path.strip_prefix('/')?;
    (method == "POST" && !name.is_empty() && !name.contains('/')).then_some(name)
}

fn no_route(method: &str, path: &str) -> HttpResponse {
    RuntimeError::NotFound(format!("no function's route matches {method} {path}")).to_response()
}

fn strip_prefix<'a>(path: &'a str, prefix: &str) -> Option<&'a str> {
    let path = path.trim_start_matches('/');
    let prefix = prefix.trim_matches('/');
    if prefix.is_empty() {
        return Some(path);
    }
    let head = path.get(..prefix.len())?;
    let rest = &path[prefix.len()..];
    (head.eq_ignore_ascii_case(prefix) && (rest.is_empty() || rest.starts_with('/')))
        .then_some(rest)
}

/// Route parameters are matched on the raw path, segment by segment, and decoded afterwards, so
/// an encoded `/` stays inside its parameter instead of creating a new segment.
fn percent_decode(raw: &str) -> String {
    percent_encoding::percent_decode_str(raw)
        .decode_utf8_lossy()
        .into_owned()
}

/// The last item of a comma-separated header value. The host appends its invocation id to any
/// value the client sent (one header, values joined by ", "), so the last item is the host's.
fn last_list_item(value: &str) -> Option<&str> {
    // Nearly always a single item, the host's own id: found without splitting.
    if !value.contains(',') {
        let item = value.trim();
        return (!item.is_empty()).then_some(item);
    }
    value
        .rsplit(',')
        .map(str::trim)
        .find(|item| !item.is_empty())
}

/// An id for invocations that arrived without the host's header (tests, curl).
fn local_id() -> String {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    format!("local-{}", NEXT.fetch_add(1, Ordering::Relaxed))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_route_prefix_is_stripped_without_regard_to_case() {
        assert_eq!(strip_prefix("/api/secrets/x", "api"), Some("/secrets/x"));
        assert_eq!(strip_prefix("/API/secrets/x", "api"), Some("/secrets/x"));
        assert_eq!(strip_prefix("/apis/x", "api"), None);
        assert_eq!(strip_prefix("/x", ""), Some("x"));
        assert_eq!(strip_prefix("/", "api"), None);
    }

    #[test]
    fn octet_stream_and_multipart_bodies_are_decoded_from_base64_and_text_is_kept() {
        assert_eq!(
            body_bytes(Some("application/octet-stream"), "AAEC/w==".into()),
            Bytes::from_static(&[0, 1, 2, 255])
        );
        assert_eq!(
            body_bytes(Some("multipart/form-data; boundary=x"), "AAEC/w==".into()),
            Bytes::from_static(&[0, 1, 2, 255])
        );
        assert_eq!(
            body_bytes(Some("text/plain"), "AAEC/w==".into()),
            Bytes::from_static(b"AAEC/w==")
        );
        assert_eq!(body_bytes(None, "AAEC".into()), Bytes::from_static(b"AAEC"));
    }

    #[test]
    fn binary_response_bodies_are_refused_in_json_mode_never_sent_as_base64() {
        let output = to_http_output(
            HttpResponse::new(200, "application/octet-stream", vec![0u8, 159, 146, 150]),
            None,
        );
        assert_eq!(output.status_code, 406);
        assert!(
            output.body.contains("enableForwardingHttpRequest"),
            "{}",
            output.body
        );
        assert!(!output.headers.contains("Content-Transfer-Encoding"));
        let text = to_http_output(HttpResponse::new(200, "text/plain", "héllo"), None);
        assert_eq!((text.status_code, text.body.as_str()), (200, "héllo"));
    }

    #[test]
    fn text_the_host_would_write_as_utf16_is_refused_too() {
        let text = || HttpResponse::new(200, "text/plain", "hello");
        assert_eq!(to_http_output(text(), Some("utf-16")).status_code, 406);
        assert_eq!(
            to_http_output(text(), Some("utf-8, utf-16;q=0.5")).status_code,
            200
        );
        assert_eq!(
            to_http_output(text(), Some("utf-16;q=0.1, utf-8")).status_code,
            200
        );
        assert_eq!(
            to_http_output(text(), Some("iso-8859-1, utf-16")).status_code,
            406
        );
        assert_eq!(to_http_output(text(), Some("*")).status_code, 200);
        let utf16 = HttpResponse::new(200, "text/plain; charset=utf-16", "hello");
        assert_eq!(to_http_output(utf16, None).status_code, 406);
    }

    #[test]
    fn a_body_the_host_would_read_as_a_date_is_refused() {
        let text = |body: &str| HttpResponse::new(200, "text/plain", body.to_owned());
        assert_eq!(
            to_http_output(text("2024-10-24T17:42:07Z"), None).status_code,
            406
        );
        assert_eq!(
            to_http_output(text("/Date(1729791727000)/"), None).status_code,
            406
        );
        assert_eq!(to_http_output(text("2024-10-24"), None).status_code, 200);
        assert_eq!(
            to_http_output(text("{\"at\":\"2024-10-24T17:42:07Z\"}"), None).status_code,
            200
        );
    }

    #[test]
    fn the_invocation_id_is_the_last_item_the_host_appended() {
        assert_eq!(
            last_list_item("client-forged, 1234-host"),
            Some("1234-host")
        );
        assert_eq!(last_list_item("only"), Some("only"));
        assert_eq!(last_list_item("a,b, "), Some("b"));
        assert_eq!(last_list_item(" , "), None);
    }

    #[test]
    fn reason_phrases_are_visible_ascii_and_bounded() {
        assert_eq!(reason_phrase("bad\r\nX: y é"), "bad??X: y ?");
        assert_eq!(reason_phrase(&"x".repeat(400)).len(), 300);
    }

    #[test]
    fn parameters_are_decoded_after_matching() {
        assert_eq!(percent_decode("a%20b"), "a b");
        assert_eq!(percent_decode("c%2Fd"), "c/d");
    }
}
