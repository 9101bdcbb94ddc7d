//! JSON mode: building the `{Data, Metadata}` document the host POSTs to `/{FunctionName}` and
//! turning the handler's `{Outputs, Logs, ReturnValue}` answer back into an HTTP response
//! (docs/host-contract.md, 'The JSON-mode request' and 'The JSON-mode answer').

use base64::Engine;
use chrono::Utc;
use serde_json::{Map, Value, json};

use super::keys::KeyMatch;
use super::timer::dotnet_utc_now;

/// The parts of a client request that JSON mode needs, already decoded by the server.
#[derive(Debug, Clone)]
pub struct ClientRequest {
    /// Upper-case method.
    pub method: String,
    /// The raw path as the client sent it.
    pub path: String,
    /// The raw query string without `?`, if any.
    pub query: Option<String>,
    /// Headers in arrival order, names in canonical (Title-Case) spelling.
    pub headers: Vec<(String, String)>,
    /// The body, present only when the client sent `Content-Length > 0`.
    pub body: Option<Vec<u8>>,
}

impl ClientRequest {
    /// First value of a header, matched without regard to case.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Query parameters in order, decoded; repeated keys stay repeated.
    pub fn query_pairs(&self) -> Vec<(String, String)> {
        self.query
            .as_deref()
            .map(|q| {
                url::form_urlencoded::parse(q.as_bytes())
                    .map(|(k, v)| (k.into_owned(), v.into_owned()))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Query as one string per key, repeated keys joined with `,` (first-seen order).
    pub fn query_joined(&self) -> Vec<(String, String)> {
        let mut joined: Vec<(String, String)> = Vec::new();
        for (key, value) in self.query_pairs() {
            match joined
                .iter_mut()
                .find(|(k, _)| k.eq_ignore_ascii_case(&key))
            {
                Some((_, existing)) => {
                    existing.push(',');
                    existing.push_str(&value);
                }
                None => joined.push((key, value)),
            }
        }
        joined
    }

    /// Header values grouped by name, in first-seen order.
    fn headers_grouped(&self) -> Vec<(String, Vec<String>)> {
        let mut grouped: Vec<(String, Vec<String>)> = Vec::new();
        for (name, value) in &self.headers {
            match grouped
                .iter_mut()
                .find(|(n, _)| n.eq_ignore_ascii_case(name))
            {
                Some((_, values)) => values.push(value.clone()),
                None => grouped.push((name.clone(), vec![value.clone()])),
            }
        }
        grouped
    }
}

/// The JSON text of a string: how the host writes every string metadata value
/// (docs/host-contract.md, 'How values are written in Data and Metadata').
pub fn json_encoded(text: &str) -> Value {
    Value::String(Value::String(text.to_string()).to_string())
}

/// `sys` binding data: method name, current UTC time and a random GUID.
pub fn sys(function_name: &str) -> Value {
    json!({
        "MethodName": function_name,
        "UtcNow": dotnet_utc_now(Utc::now()),
        "RandGuid": uuid::Uuid::new_v4().to_string(),
    })
}

/// The whole JSON-mode document.
pub fn envelope(data: Map<String, Value>, metadata: Map<String, Value>) -> Value {
    json!({"Data": data, "Metadata": metadata})
}

/// The serialized `ClaimsIdentity` list: one WebJobsAuthLevel identity for a valid key,
/// otherwise one unauthenticated identity.
pub fn identities(key: Option<&KeyMatch>) -> Value {
    let (authentication_type, authenticated, claims) = match key {
        None => (Value::Null, false, Vec::new()),
        Some(key) => {
            let (level, key_id) = match key {
                KeyMatch::Master => ("Admin", "master".to_string()),
                KeyMatch::Function(name) => ("Function", name.clone()),
            };
            let claims = vec![
                claim(
                    "http://schemas.microsoft.com/2017/07/functions/claims/authlevel",
                    level,
                ),
                claim(
                    "http://schemas.microsoft.com/2017/07/functions/claims/keyid",
                    &key_id,
                ),
            ];
            (Value::String("WebJobsAuthLevel".into()), true, claims)
        }
    };
    json!([{
        "AuthenticationType": authentication_type,
        "IsAuthenticated": authenticated,
        "Actor": null,
        "BootstrapContext": null,
        "Claims": claims,
        "Label": null,
        "Name": null,
        "NameClaimType": "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/name",
        "RoleClaimType": "http://schemas.microsoft.com/ws/2008/06/identity/claims/role",
    }])
}

fn claim(claim_type: &str, value: &str) -> Value {
    json!({
        "Issuer": "LOCAL AUTHORITY",
        "OriginalIssuer": "LOCAL AUTHORITY",
        "Properties": {},
        "Type": claim_type,
        "Value": value,
        "ValueType": "http://www.w3.org/2001/XMLSchema#string",
    })
}

/// True for content types whose body the host sends as base64: a Content-Type that parses as a
/// media type which is exactly `application/octet-stream` or contains `multipart/` anywhere
/// (the host's `IsMediaTypeOctetOrMultipart`). Anything else, an unparsable or missing type
/// included, is read as text.
pub fn is_binary_content(content_type: Option<&str>) -> bool {
    let Some(media) = content_type.and_then(parse_media_type) else {
        return false;
    };
    media == "application/octet-stream" || media.contains("multipart/")
}

/// `type/subtype` of a Content-Type, lower case, or `None` when it is not one.
fn parse_media_type(content_type: &str) -> Option<String> {
    let media = content_type.split(';').next()?.trim();
    let (kind, subtype) = media.split_once('/')?;
    let token = |part: &str| {
        !part.is_empty()
            && part
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
    };
    (token(kind) && token(subtype)).then(|| media.to_ascii_lowercase())
}

/// A body as the host reads one that is not base64-carried: .NET's StreamReader with UTF-8 and
/// byte-order-mark detection. A UTF-8 BOM is dropped; a UTF-16 or UTF-32 BOM switches to that
/// encoding; invalid sequences become U+FFFD.
pub fn host_text(bytes: &[u8]) -> String {
    match bytes {
        [0xFE, 0xFF, rest @ ..] => utf16_text(rest, u16::from_be_bytes),
        [0xFF, 0xFE, 0, 0, rest @ ..] => utf32_text(rest, u32::from_le_bytes),
        [0xFF, 0xFE, rest @ ..] => utf16_text(rest, u16::from_le_bytes),
        [0xEF, 0xBB, 0xBF, rest @ ..] => String::from_utf8_lossy(rest).into_owned(),
        [0, 0, 0xFE, 0xFF, rest @ ..] => utf32_text(rest, u32::from_be_bytes),
        _ => String::from_utf8_lossy(bytes).into_owned(),
    }
}

fn utf16_text(bytes: &[u8], unit: fn([u8; 2]) -> u16) -> String {
    let chunks = bytes.chunks_exact(2);
    let odd = !chunks.remainder().is_empty();
    let units = chunks.map(|pair| unit([pair[0], pair[1]]));
    let mut text: String = char::decode_utf16(units)
        .map(|c| c.unwrap_or(char::REPLACEMENT_CHARACTER))
        .collect();
    if odd {
        text.push(char::REPLACEMENT_CHARACTER);
    }
    text
}

fn utf32_text(bytes: &[u8], unit: fn([u8; 4]) -> u32) -> String {
    let chunks = bytes.chunks_exact(4);
    let partial = !chunks.remainder().is_empty();
    let mut text: String = chunks
        .map(|c| {
            char::from_u32(unit([c[0], c[1], c[2], c[3]])).unwrap_or(char::REPLACEMENT_CHARACTER)
        })
        .collect();
    if partial {
        text.push(char::REPLACEMENT_CHARACTER);
    }
    text
}

/// A string response body as the host writes it: ASP.NET Core's string formatter, which knows
/// UTF-8 and UTF-16 (little-endian, no BOM) and picks by the caller's Accept-Charset (by
/// quality), then by the response's charset parameter, else UTF-8.
pub fn host_written_text(
    text: &str,
    content_type: Option<&str>,
    accept_charset: Option<&str>,
) -> Vec<u8> {
    if writes_utf16(content_type, accept_charset) {
        text.encode_utf16().flat_map(u16::to_le_bytes).collect()
    } else {
        text.as_bytes().to_vec()
    }
}

fn writes_utf16(content_type: Option<&str>, accept_charset: Option<&str>) -> bool {
    let mut offers: Vec<(String, f32)> = accept_charset
        .unwrap_or_default()
        .split(',')
        .filter_map(|item| {
            let mut parts = item.split(';');
            let name = parts.next()?.trim().to_ascii_lowercase();
            let quality = parts
                .filter_map(|p| {
                    p.trim()
                        .strip_prefix("q=")
                        .and_then(|q| q.trim().parse().ok())
                })
                .next()
                .unwrap_or(1.0_f32);
            (!name.is_empty() && quality > 0.0).then_some((name, quality))
        })
        .collect();
    offers.sort_by(|a, b| b.1.total_cmp(&a.1));
    for (name, _) in &offers {
        match name.as_str() {
            "utf-16" => return true,
            "utf-8" | "*" => return false,
            _ => {}
        }
    }
    content_type.is_some_and(|kind| {
        kind.split(';').skip(1).any(|p| {
            p.split_once('=').is_some_and(|(k, v)| {
                k.trim().eq_ignore_ascii_case("charset")
                    && v.trim().trim_matches('"').eq_ignore_ascii_case("utf-16")
            })
        })
    })
}

/// `Data.<trigger>` for an HTTP request (docs/host-contract.md, 'The HTTP trigger in Data').
pub fn http_trigger_data(
    request: &ClientRequest,
    params: &Map<String, Value>,
    key: Option<&KeyMatch>,
    fallback_host: &str,
) -> Value {
    let host = request.header("Host").unwrap_or(fallback_host);
    let query_suffix = request
        .query
        .as_deref()
        .map(|q| format!("?{q}"))
        .unwrap_or_default();
    let query: Map<String, Value> = request
        .query_joined()
        .into_iter()
        .map(|(k, v)| (k, Value::String(v)))
        .collect();
    let headers: Map<String, Value> = request
        .headers_grouped()
        .into_iter()
        .map(|(k, v)| (k, json!(v)))
        .collect();
    let mut data = json!({
        "Url": format!("http://{host}{}{query_suffix}", request.path),
        "Method": request.method,
        "Query": query,
        "Headers": headers,
        "Params": params,
        "Identities": identities(key),
    });
    if let (Some(body), Some(object)) = (&request.body, data.as_object_mut()) {
        let text = if is_binary_content(request.header("Content-Type")) {
            base64::engine::general_purpose::STANDARD.encode(body)
        } else {
            host_text(body)
        };
        object.insert("Body".into(), Value::String(text));
    }
    data
}

/// Inserts a binding-data entry, replacing an existing key that differs only in case (the
/// host's binding data is case-insensitive).
fn put(metadata: &mut Map<String, Value>, key: &str, value: Value) {
    if value.is_null() {
        return;
    }
    let existing: Vec<String> = metadata
        .keys()
        .filter(|k| k.eq_ignore_ascii_case(key))
        .cloned()
        .collect();
    for k in existing {
        metadata.remove(&k);
    }
    metadata.insert(key.to_string(), value);
}

fn contains_ci(metadata: &Map<String, Value>, key: &str) -> bool {
    metadata.keys().any(|k| k.eq_ignore_ascii_case(key))
}

/// `Metadata` for an HTTP trigger, in the host's order: body-object properties, query parameters
/// except `code`, route parameters, `Query`, `Headers`, `sys` (docs/host-contract.md, 'Metadata
/// for an HTTP trigger').
pub fn http_metadata(
    request: &ClientRequest,
    params: &Map<String, Value>,
    function_name: &str,
) -> Map<String, Value> {
    let mut metadata = Map::new();
    if let Some(Ok(Value::Object(body))) =
        request.body.as_deref().map(serde_json::from_slice::<Value>)
    {
        for (key, value) in body {
            let encoded = match value {
                Value::Array(_) | Value::Null => continue,
                Value::Object(_) => value,
                Value::String(text) => json_encoded(&text),
                scalar => json_encoded(&scalar.to_string()),
            };
            put(&mut metadata, &key, encoded);
        }
    }
    for (key, value) in request.query_joined() {
        if !key.eq_ignore_ascii_case("code") {
            put(&mut metadata, &key, json_encoded(&value));
        }
    }
    for (key, value) in params {
        if let Value::String(text) = value {
            put(&mut metadata, key, json_encoded(text));
        }
    }
    if !contains_ci(&metadata, "Query") {
        let query: Map<String, Value> = request
            .query_joined()
            .into_iter()
            .map(|(k, v)| (k, Value::String(v)))
            .collect();
        metadata.insert("Query".into(), Value::Object(query));
    }
    if !contains_ci(&metadata, "Headers") {
        let headers: Map<String, Value> = request
            .headers_grouped()
            .into_iter()
            .map(|(k, v)| (k, Value::String(v.join(","))))
            .collect();
        metadata.insert("Headers".into(), Value::Object(headers));
    }
    put(&mut metadata, "sys", sys(function_name));
    metadata
}

/// Metadata for timer and admin invocations: just `sys`.
pub fn sys_only_metadata(function_name: &str) -> Map<String, Value> {
    let mut metadata = Map::new();
    metadata.insert("sys".into(), sys(function_name));
    metadata
}

/// The handler's JSON-mode answer, accepted.
#[derive(Debug, Clone, Default)]
pub struct HandlerReply {
    /// `Outputs` (empty when absent or null).
    pub outputs: Map<String, Value>,
    /// True when `Outputs` was absent or null.
    pub outputs_missing: bool,
    /// `Logs`, numbers turned into text.
    pub logs: Vec<String>,
    /// `ReturnValue` (null when absent).
    pub return_value: Value,
}

/// Checks the handler's HTTP answer as the host does and reads it
/// (docs/host-contract.md, 'The JSON-mode answer').
///
/// Errors are the reason the invocation failed; the host then drops `Logs` and `Outputs`.
pub fn parse_reply(
    status: u16,
    reason: &str,
    content_type: Option<&str>,
    body: &[u8],
) -> Result<HandlerReply, String> {
    if !(200..300).contains(&status) {
        // EnsureSuccessStatusCode's message: what the host logs for the failed invocation. The
        // body and Logs are never read.
        return Err(if reason.trim().is_empty() {
            format!("Response status code does not indicate success: {status}.")
        } else {
            format!("Response status code does not indicate success: {status} ({reason}).")
        });
    }
    let media = content_type
        .unwrap_or_default()
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    if media != "application/json" && media != "text/json" {
        return Err(format!(
            "handler answered Content-Type '{}' (UnsupportedMediaTypeException: the host needs application/json)",
            content_type.unwrap_or("<none>")
        ));
    }
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err("handler answered 2xx with an empty body (the real host would hang until functionTimeout)".into());
    }
    let value: Value = serde_json::from_slice(body)
        .map_err(|e| format!("Invalid HttpResponseMessage: body is not JSON ({e})"))?;
    let object = match value {
        Value::Object(object) => object,
        Value::Null => {
            return Err(
                "handler answered JSON null (the real host would hang until functionTimeout)"
                    .into(),
            );
        }
        other => {
            return Err(format!(
                "Invalid HttpResponseMessage: expected a JSON object, got {}",
                kind_of(&other)
            ));
        }
    };
    reply_from_object(&object)
}

fn kind_of(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a bool",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// Reads `Outputs`/`Logs`/`ReturnValue`, top-level names matched without regard to case.
fn reply_from_object(object: &Map<String, Value>) -> Result<HandlerReply, String> {
    let member = |name: &str| {
        object
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.clone())
            .unwrap_or(Value::Null)
    };
    let outputs_value = member("Outputs");
    let (outputs, outputs_missing) = match outputs_value {
        Value::Object(map) => (map, false),
        Value::Null => (Map::new(), true),
        other => {
            return Err(format!(
                "Invalid HttpResponseMessage: Outputs is {}",
                kind_of(&other)
            ));
        }
    };
    let logs = match member("Logs") {
        Value::Null => Vec::new(),
        Value::Array(items) => items
            .iter()
            .map(|item| match item {
                Value::String(s) => Ok(s.clone()),
                Value::Number(_) | Value::Bool(_) => Ok(item.to_string()),
                Value::Null => Ok(String::new()),
                other => Err(format!(
                    "Invalid HttpResponseMessage: a Logs entry is {}",
                    kind_of(other)
                )),
            })
            .collect::<Result<_, _>>()?,
        other => {
            return Err(format!(
                "Invalid HttpResponseMessage: Logs is {}",
                kind_of(&other)
            ));
        }
    };
    Ok(HandlerReply {
        outputs,
        outputs_missing,
        logs,
        return_value: member("ReturnValue"),
    })
}

/// The HTTP response for the client, built from the handler's answer.
#[derive(Debug, Clone, PartialEq)]
pub struct HttpResult {
    /// Status code.
    pub status: u16,
    /// Headers (name, value).
    pub headers: Vec<(String, String)>,
    /// Body bytes.
    pub body: Vec<u8>,
}

impl HttpResult {
    fn plain(status: u16, body: Vec<u8>) -> Self {
        Self {
            status,
            headers: Vec::new(),
            body,
        }
    }
}

/// Maps an accepted reply to the client response
/// (docs/host-contract.md, 'The http output and ReturnValue').
///
/// `output_name` is the `http` output binding's name; `return_binding` is true when the
/// function declares a binding named `$return`.
pub fn http_result(
    reply: &HandlerReply,
    output_name: Option<&str>,
    return_binding: bool,
    accept_charset: Option<&str>,
) -> Result<HttpResult, String> {
    let mut result = http_result_utf8(reply, output_name, return_binding)?;
    if writes_utf16(result_content_type(&result), accept_charset)
        && let Ok(text) = String::from_utf8(result.body.clone())
    {
        result.body = host_written_text(&text, result_content_type(&result), accept_charset);
    }
    Ok(result)
}

fn result_content_type(result: &HttpResult) -> Option<&str> {
    result
        .headers
        .iter()
        .find(|(name, _)| name.eq_ignore_ascii_case("content-type"))
        .map(|(_, value)| value.as_str())
}

/// The response with string bodies as UTF-8; [`http_result`] re-encodes where the host would.
fn http_result_utf8(
    reply: &HandlerReply,
    output_name: Option<&str>,
    return_binding: bool,
) -> Result<HttpResult, String> {
    if output_name == Some("$return") {
        let value = if reply.return_value.is_null() {
            reply.outputs.get("$return").cloned().unwrap_or(Value::Null)
        } else {
            reply.return_value.clone()
        };
        return Ok(return_value_result(&value));
    }
    let mut outputs = reply.outputs.clone();
    if !return_binding && let Value::Object(extra) = &reply.return_value {
        for (key, value) in extra {
            outputs.insert(key.clone(), value.clone());
        }
    }
    let Some(value) = output_name.and_then(|name| outputs.get(name)) else {
        return Ok(HttpResult::plain(200, b"{}".to_vec()));
    };
    let object = match value {
        Value::Object(object) => object.clone(),
        Value::String(text) => match serde_json::from_str::<Value>(text) {
            Ok(Value::Object(object)) => object,
            _ => return Err(deserialize_error()),
        },
        _ => return Err(deserialize_error()),
    };
    response_object_result(&object)
}

fn deserialize_error() -> String {
    "Failed while trying to Deserialize to httpOutputBindingResponse".to_string()
}

/// `$return` http output: an object with a `body` key gives status/headers/body; any other
/// object is sent whole as a 200 JSON body; a string (not a JSON object) is a 200 body.
fn return_value_result(value: &Value) -> HttpResult {
    let object = match value {
        Value::Object(object) => Some(object.clone()),
        Value::String(text) => match serde_json::from_str::<Value>(text) {
            Ok(Value::Object(object)) => Some(object),
            _ => return HttpResult::plain(200, text.as_bytes().to_vec()),
        },
        Value::Null => return HttpResult::plain(200, Vec::new()),
        other => return HttpResult::plain(200, other.to_string().into_bytes()),
    };
    let object = object.unwrap_or_default();
    let has_body = object.keys().any(|k| k.eq_ignore_ascii_case("body"));
    if has_body && let Ok(result) = response_object_result(&object) {
        return result;
    }
    HttpResult {
        status: 200,
        headers: vec![("Content-Type".into(), "application/json".into())],
        body: Value::Object(object).to_string().into_bytes(),
    }
}

/// A string value of the http output as the host passes it on. The host reads the handler's
/// answer with Newtonsoft's default settings, which turn a string shaped like a date (ISO 8601,
/// 19 to 40 characters with `T` at index 10, or `/Date(ms)/`) into a DateTime; the body or header
/// is then written with `DateTime.ToString()`. The emulator writes the invariant culture's form
/// (`MM/dd/yyyy HH:mm:ss`, in UTC for a value with an offset, fractions dropped); the exact text
/// on Azure depends on the host's culture, but it is never the original.
fn newtonsoft_round_trip(text: &str) -> String {
    newtonsoft_date(text)
        .map(|date| date.format("%m/%d/%Y %H:%M:%S").to_string())
        .unwrap_or_else(|| text.to_owned())
}

fn newtonsoft_date(text: &str) -> Option<chrono::NaiveDateTime> {
    if let Some(inner) = text
        .strip_prefix("/Date(")
        .and_then(|t| t.strip_suffix(")/"))
    {
        let millis: i64 = inner.split(['+', '-']).next()?.parse().ok()?;
        return chrono::DateTime::from_timestamp_millis(millis).map(|d| d.naive_utc());
    }
    let bytes = text.as_bytes();
    if !(19..=40).contains(&bytes.len()) || !bytes[0].is_ascii_digit() || bytes[10] != b'T' {
        return None;
    }
    if let Ok(with_offset) = chrono::DateTime::parse_from_rfc3339(text) {
        return Some(with_offset.naive_utc());
    }
    chrono::NaiveDateTime::parse_from_str(text, "%Y-%m-%dT%H:%M:%S%.f").ok()
}

/// Reads `{statusCode, body, headers}` (member names matched without regard to case).
fn response_object_result(object: &Map<String, Value>) -> Result<HttpResult, String> {
    let member = |name: &str| {
        object
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v)
    };
    let status = match member("statusCode") {
        None | Some(Value::Null) => 200,
        Some(Value::Number(n)) => n.as_u64().ok_or_else(deserialize_error)?,
        Some(Value::String(s)) if s.trim().is_empty() => 200,
        Some(Value::String(s)) => s.trim().parse::<u64>().map_err(|_| deserialize_error())?,
        Some(_) => return Err(deserialize_error()),
    };
    let status = u16::try_from(status)
        .ok()
        .filter(|s| (100..=599).contains(s))
        .ok_or_else(|| format!("statusCode {status} is not a valid HTTP status"))?;
    let headers = match member("headers") {
        Some(Value::Object(map)) => map
            .iter()
            .filter_map(|(name, value)| match value {
                Value::Null => None,
                Value::String(s) => Some((name.clone(), newtonsoft_round_trip(s))),
                other => Some((name.clone(), other.to_string())),
            })
            .collect(),
        _ => Vec::new(),
    };
    let body = match member("body") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::String(text)) => newtonsoft_round_trip(text).into_bytes(),
        Some(other) => other.to_string().into_bytes(),
    };
    Ok(HttpResult {
        status,
        headers,
        body,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(body: Option<&str>, query: Option<&str>) -> ClientRequest {
        ClientRequest {
            method: "POST".into(),
            path: "/api/order".into(),
            query: query.map(str::to_string),
            headers: vec![
                ("Host".into(), "localhost:7071".into()),
                ("Content-Type".into(), "application/json".into()),
                ("X-Multi".into(), "a".into()),
                ("X-Multi".into(), "b".into()),
            ],
            body: body.map(|b| b.as_bytes().to_vec()),
        }
    }

    #[test]
    fn metadata_encodes_scalars_twice_and_keeps_objects() {
        let req = request(
            Some(r#"{"id":1005,"color":"black","nested":{"a":1},"list":[1],"none":null}"#),
            Some("source=web&code=secret&x=1&x=2"),
        );
        let mut params = Map::new();
        params.insert("name".into(), json!("db"));
        params.insert("opt".into(), Value::Null);
        let metadata = http_metadata(&req, &params, "order");
        assert_eq!(metadata["id"], "\"1005\"");
        assert_eq!(metadata["color"], "\"black\"");
        assert_eq!(metadata["nested"], json!({"a":1}));
        assert!(!metadata.contains_key("list"));
        assert!(!metadata.contains_key("none"));
        assert!(!metadata.contains_key("code"));
        assert!(!metadata.contains_key("opt"));
        assert_eq!(metadata["source"], "\"web\"");
        assert_eq!(metadata["x"], "\"1,2\"");
        assert_eq!(metadata["name"], "\"db\"");
        assert_eq!(metadata["Query"]["code"], "secret");
        assert_eq!(metadata["Headers"]["X-Multi"], "a,b");
        assert_eq!(metadata["sys"]["MethodName"], "order");
    }

    #[test]
    fn data_has_arrays_of_headers_and_no_body_when_absent() {
        let data = http_trigger_data(&request(None, Some("a=1")), &Map::new(), None, "h");
        assert_eq!(data["Url"], "http://localhost:7071/api/order?a=1");
        assert_eq!(data["Headers"]["X-Multi"], json!(["a", "b"]));
        assert!(data.get("Body").is_none());
        assert_eq!(data["Identities"][0]["IsAuthenticated"], false);
    }

    #[test]
    fn binary_bodies_are_base64() {
        let mut req = request(Some("\u{1}\u{2}"), None);
        req.headers[1].1 = "application/octet-stream".into();
        let data = http_trigger_data(&req, &Map::new(), None, "h");
        assert_eq!(data["Body"], "AQI=");
    }

    #[test]
    fn identities_for_a_function_key() {
        let ids = identities(Some(&KeyMatch::Function("default".into())));
        assert_eq!(ids[0]["AuthenticationType"], "WebJobsAuthLevel");
        assert_eq!(ids[0]["Claims"][0]["Value"], "Function");
        assert_eq!(ids[0]["Claims"][1]["Value"], "default");
    }

    #[test]
    fn reply_checks() {
        assert_eq!(
            parse_reply(
                500,
                "timer failed: no token",
                Some("application/json"),
                b"{}"
            )
            .unwrap_err(),
            "Response status code does not indicate success: 500 (timer failed: no token)."
        );
        assert!(parse_reply(200, "OK", Some("text/plain"), b"{}").is_err());
        assert!(parse_reply(200, "OK", Some("application/json"), b"").is_err());
        assert!(parse_reply(200, "OK", Some("application/json"), b"null").is_err());
        assert!(parse_reply(200, "OK", Some("application/json"), br#"{"Logs":[{}]}"#).is_err());
        let reply = parse_reply(
            200,
            "OK",
            Some("application/json; charset=utf-8"),
            br#"{"outputs":{"res":{"statusCode":"201","body":{"a":1},"headers":{"X":"y"}}},"logs":["l",3]}"#,
        )
        .unwrap();
        assert_eq!(reply.logs, vec!["l", "3"]);
        let result = http_result(&reply, Some("res"), false, None).unwrap();
        assert_eq!(result.status, 201);
        assert_eq!(result.body, br#"{"a":1}"#);
        assert_eq!(result.headers, vec![("X".to_string(), "y".to_string())]);
    }

    #[test]
    fn http_output_edge_cases() {
        // The answer for the HTTP output `binding` (`$return` declared as the return binding).
        let result = |outputs: Value, rv: Value, binding: &str| {
            let reply = HandlerReply {
                outputs: outputs.as_object().cloned().unwrap_or_default(),
                outputs_missing: false,
                logs: vec![],
                return_value: rv,
            };
            http_result(&reply, Some(binding), binding == "$return", None)
        };
        let missing = result(json!({}), Value::Null, "res").unwrap();
        assert_eq!((missing.status, missing.body), (200, b"{}".to_vec()));
        assert!(result(json!({"res":"hello"}), Value::Null, "res").is_err());
        let as_string = result(json!({"res":"{\"statusCode\":404}"}), Value::Null, "res").unwrap();
        assert_eq!(as_string.status, 404);
        let merged = result(json!({}), json!({"res":{"statusCode":202}}), "res").unwrap();
        assert_eq!(merged.status, 202);
        let ret = result(
            json!({}),
            json!({"statusCode":"418","body":"tea"}),
            "$return",
        )
        .unwrap();
        assert_eq!((ret.status, ret.body), (418, b"tea".to_vec()));
        let whole = result(json!({}), json!({"a":1}), "$return").unwrap();
        assert_eq!((whole.status, whole.body), (200, br#"{"a":1}"#.to_vec()));
        let text = result(json!({}), json!("hi"), "$return").unwrap();
        assert_eq!(text.body, b"hi");
    }

    #[test]
    fn text_bodies_are_read_like_the_hosts_stream_reader() {
        assert_eq!(host_text(b"\xEF\xBB\xBFhi"), "hi", "a UTF-8 BOM is dropped");
        assert_eq!(host_text(b"a\xFFb"), "a\u{FFFD}b");
        assert_eq!(host_text(b"\xFF\xFEh\0i\0"), "hi", "UTF-16 LE by its BOM");
        assert_eq!(host_text(b"\xFE\xFF\0h\0i"), "hi", "UTF-16 BE by its BOM");
        assert_eq!(
            host_text(b"\xFF\xFE\0\0h\0\0\0"),
            "h",
            "UTF-32 LE by its BOM"
        );
        assert_eq!(host_text(b"\xFF\xFEh"), "\u{FFFD}", "an odd UTF-16 tail");
        let png = [0x89u8, b'P', b'N', b'G', 0x0D, 0x0A, 0x1A, 0x0A];
        assert_ne!(host_text(&png).as_bytes(), png, "binary does not survive");
    }

    #[test]
    fn only_octet_stream_and_multipart_media_types_travel_base64() {
        assert!(is_binary_content(Some("application/octet-stream")));
        assert!(is_binary_content(Some("Multipart/Form-Data; boundary=x")));
        assert!(is_binary_content(Some("x-multipart/mixed")));
        assert!(
            !is_binary_content(Some("application/x-multipart/mixed")),
            "not a media type"
        );
        assert!(!is_binary_content(Some("image/png")));
        assert!(!is_binary_content(Some("application/octet-stream/x")));
        assert!(!is_binary_content(Some("not a media type")));
        assert!(!is_binary_content(None));
    }

    #[test]
    fn string_bodies_are_written_as_utf8_unless_utf16_is_asked_for() {
        assert_eq!(
            host_written_text("hé", Some("text/plain"), None),
            "hé".as_bytes()
        );
        assert_eq!(host_written_text("h", None, Some("utf-16")), [b'h', 0]);
        assert_eq!(
            host_written_text("h", None, Some("utf-16;q=0.2, utf-8")),
            b"h"
        );
        assert_eq!(
            host_written_text("h", Some("text/plain; charset=utf-16"), None),
            [b'h', 0]
        );
        assert_eq!(
            host_written_text("h", Some("text/plain; charset=utf-16"), Some("*")),
            b"h"
        );
    }

    #[test]
    fn a_body_or_header_shaped_like_a_date_comes_out_reformatted() {
        assert_eq!(
            newtonsoft_round_trip("2024-10-24T17:42:07.123Z"),
            "10/24/2024 17:42:07"
        );
        assert_eq!(
            newtonsoft_round_trip("2024-10-24T19:42:07+02:00"),
            "10/24/2024 17:42:07"
        );
        assert_eq!(
            newtonsoft_round_trip("2024-10-24T17:42:07"),
            "10/24/2024 17:42:07"
        );
        assert_eq!(newtonsoft_round_trip("/Date(0)/"), "01/01/1970 00:00:00");
        for kept in [
            "2024-10-24",
            "hello",
            "2024-10-24 17:42:07",
            "2024-13-99T99:99:99Z",
        ] {
            assert_eq!(newtonsoft_round_trip(kept), kept);
        }
    }
}
