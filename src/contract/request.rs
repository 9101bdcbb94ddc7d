//! The invocation request the host POSTs in JSON mode (spec §2).

use std::borrow::Cow;
use std::collections::BTreeMap;

use serde_json::{Map, Value};

use super::decode::{array_or_encoded, as_text, object_owned, object_ref};
use super::timer::TimerInfo;

/// Why an invocation payload could not be read.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PayloadError {
    /// The body is not JSON at all (or nests deeper than the parser allows).
    #[error("the invocation payload is not valid JSON: {0}")]
    NotJson(String),
    /// The body is JSON but not the `{Data, Metadata}` object.
    #[error("the invocation payload is not a JSON object with Data and Metadata")]
    NotAnObject,
    /// `Data` has no entry for the trigger binding named in function.json.
    #[error(
        "the invocation payload has no input named '{binding}' in Data; check the binding name in function.json"
    )]
    MissingInput {
        /// The binding name looked for.
        binding: String,
    },
    /// The trigger input is there but is not an object.
    #[error("the input '{binding}' in Data is not an object")]
    InputNotAnObject {
        /// The binding name.
        binding: String,
    },
}

/// A JSON-mode invocation: one entry per input binding in `data`, the trigger's binding data in
/// `metadata`. Unknown keys are kept, never rejected. `Debug` names the members only: their
/// values hold the request's headers and query, credentials included.
#[derive(Clone, Default, PartialEq)]
pub struct InvocationRequest {
    /// `Data`: input binding name → value.
    pub data: Map<String, Value>,
    /// `Metadata`: trigger metadata, `sys`, and (for HTTP) query, route and body properties.
    pub metadata: Map<String, Value>,
}

impl std::fmt::Debug for InvocationRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InvocationRequest")
            .field("data", &self.data.keys().collect::<Vec<_>>())
            .field("metadata", &self.metadata.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

impl InvocationRequest {
    /// Parses the host's request body. `Data` and `Metadata` are matched without regard to case,
    /// as the host's own deserializer does, and may be missing or null.
    pub fn from_slice(body: &[u8]) -> Result<Self, PayloadError> {
        let value: Value =
            serde_json::from_slice(body).map_err(|e| PayloadError::NotJson(e.to_string()))?;
        let Value::Object(mut top) = value else {
            return Err(PayloadError::NotAnObject);
        };
        // Moved out, not copied: the payload is parsed once and each part kept where it lands.
        Ok(Self {
            data: object_owned(take_member(&mut top, "Data")),
            metadata: object_owned(take_member(&mut top, "Metadata")),
        })
    }

    /// The value of one input binding, by its function.json name (exact case first, then any case).
    pub fn input(&self, binding: &str) -> Option<&Value> {
        member(&self.data, binding)
    }

    /// Reads the HTTP trigger input of `binding`.
    pub fn http_trigger(&self, binding: &str) -> Result<HttpTriggerData, PayloadError> {
        let object = self.object_input(binding)?;
        Ok(HttpTriggerData::from_object(&object))
    }

    /// Reads the timer trigger input of `binding`.
    pub fn timer(&self, binding: &str) -> Result<TimerInfo, PayloadError> {
        let object = self.object_input(binding)?;
        Ok(TimerInfo::from_object(&object))
    }

    /// The invocation's `sys.MethodName`, when the host sent one.
    pub fn method_name(&self) -> Option<String> {
        let sys = object_ref(member(&self.metadata, "sys"));
        member(&sys, "MethodName").map(as_text)
    }

    fn object_input(&self, binding: &str) -> Result<Cow<'_, Map<String, Value>>, PayloadError> {
        let value = self
            .input(binding)
            .ok_or_else(|| PayloadError::MissingInput {
                binding: binding.to_owned(),
            })?;
        match value {
            Value::Object(map) => Ok(Cow::Borrowed(map)),
            Value::String(_) => {
                let map = object_ref(Some(value));
                if map.is_empty() && value.as_str() != Some("{}") {
                    Err(PayloadError::InputNotAnObject {
                        binding: binding.to_owned(),
                    })
                } else {
                    Ok(map)
                }
            }
            _ => Err(PayloadError::InputNotAnObject {
                binding: binding.to_owned(),
            }),
        }
    }
}

/// The HTTP request as the host serializes it into `Data.<trigger>` (spec §2.4). `Debug` hides
/// credentials (`crate::redact`) in the URL, query and headers, and the body and identities.
#[derive(Clone, Default, PartialEq)]
pub struct HttpTriggerData {
    /// The public URL, query string included (it may hold `code`: never log it).
    pub url: String,
    /// The method, upper case.
    pub method: String,
    /// Query parameters, one string each (repeated keys arrive joined with `,`).
    pub query: BTreeMap<String, String>,
    /// Headers in the client's order and spelling, each with all of its values.
    pub headers: Vec<(String, Vec<String>)>,
    /// Route parameters; an optional one that did not match is `None`.
    pub params: BTreeMap<String, Option<String>>,
    /// The serialized claims identities, kept opaque.
    pub identities: Vec<Value>,
    /// The body text, present only when the client sent `Content-Length > 0`. For
    /// `application/octet-stream` and `multipart/*` the host sends it base64-encoded.
    pub body: Option<String>,
}

impl std::fmt::Debug for HttpTriggerData {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        use crate::redact::{REDACTED, is_sensitive_header, is_sensitive_query, shown};
        let query: BTreeMap<&str, &str> = self
            .query
            .iter()
            .map(|(k, v)| (k.as_str(), shown(v, is_sensitive_query(k))))
            .collect();
        let headers: Vec<(&str, Vec<&str>)> = self
            .headers
            .iter()
            .map(|(k, values)| {
                let sensitive = is_sensitive_header(k);
                (
                    k.as_str(),
                    values.iter().map(|v| shown(v, sensitive)).collect(),
                )
            })
            .collect();
        f.debug_struct("HttpTriggerData")
            .field("url", &crate::redact::url(&self.url))
            .field("method", &self.method)
            .field("query", &query)
            .field("headers", &headers)
            .field("params", &self.params)
            .field(
                "identities",
                &format_args!("{} ({REDACTED})", self.identities.len()),
            )
            .field(
                "body",
                &format_args!("{} chars", self.body.as_ref().map_or(0, String::len)),
            )
            .finish()
    }
}

impl HttpTriggerData {
    fn from_object(object: &Map<String, Value>) -> Self {
        Self {
            url: member(object, "Url").map(as_text).unwrap_or_default(),
            method: member(object, "Method")
                .map(as_text)
                .unwrap_or_default()
                .to_ascii_uppercase(),
            query: object_ref(member(object, "Query"))
                .iter()
                .map(|(name, value)| (name.clone(), as_text(value)))
                .collect(),
            headers: object_ref(member(object, "Headers"))
                .iter()
                .map(|(name, value)| (name.clone(), header_values(value)))
                .collect(),
            params: object_ref(member(object, "Params"))
                .iter()
                .map(|(name, value)| (name.clone(), optional_text(value)))
                .collect(),
            identities: array_or_encoded(member(object, "Identities")),
            body: member(object, "Body").and_then(body_text),
        }
    }

    /// All values of one header, by name without regard to case.
    pub fn header(&self, name: &str) -> Option<&[String]> {
        self.headers
            .iter()
            .find(|(candidate, _)| candidate.eq_ignore_ascii_case(name))
            .map(|(_, values)| values.as_slice())
    }
}

/// Removes and returns a member, found as [`member`] finds it.
fn take_member(object: &mut Map<String, Value>, key: &str) -> Option<Value> {
    if let Some(value) = object.remove(key) {
        return Some(value);
    }
    let found = object
        .keys()
        .find(|candidate| candidate.eq_ignore_ascii_case(key))?
        .clone();
    object.remove(&found)
}

/// Looks a key up exactly, then without regard to case, as Newtonsoft does.
fn member<'a>(object: &'a Map<String, Value>, key: &str) -> Option<&'a Value> {
    object.get(key).or_else(|| {
        object
            .iter()
            .find(|(candidate, _)| candidate.eq_ignore_ascii_case(key))
            .map(|(_, value)| value)
    })
}

fn header_values(value: &Value) -> Vec<String> {
    match value {
        Value::Array(items) => items.iter().map(as_text).collect(),
        Value::Null => Vec::new(),
        other => vec![as_text(other)],
    }
}

fn optional_text(value: &Value) -> Option<String> {
    match value {
        Value::Null => None,
        other => Some(as_text(other)),
    }
}

/// The body is normally a string; an object or array (some test tools send those) is kept as its
/// JSON text so that nothing the client sent is lost.
fn body_text(value: &Value) -> Option<String> {
    match value {
        Value::Null => None,
        Value::String(text) => Some(text.clone()),
        other => Some(other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// The spec's full example (§2.4): function `order`, POST with a JSON body under Core Tools.
    const ORDER_EXAMPLE: &str = r#"{
      "Data": { "req": {
          "Url": "http://localhost:7071/api/order?source=web", "Method": "POST",
          "Query": { "source": "web" },
          "Headers": { "Accept": ["*/*"], "Host": ["localhost:7071"], "User-Agent": ["curl/8.5.0"],
                       "Content-Type": ["application/json"], "Content-Length": ["40"] },
          "Params": {},
          "Identities": [ { "AuthenticationType": null, "IsAuthenticated": false, "Actor": null,
            "BootstrapContext": null, "Claims": [], "Label": null, "Name": null,
            "NameClaimType": "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/name",
            "RoleClaimType": "http://schemas.microsoft.com/ws/2008/06/identity/claims/role" } ],
          "Body": "{\"id\":1005,\"quantity\":2,\"color\":\"black\"}" } },
      "Metadata": { "id": "\"1005\"", "quantity": "\"2\"", "color": "\"black\"", "source": "\"web\"",
        "Query": { "source": "web" },
        "Headers": { "Accept": "*/*", "Host": "localhost:7071", "User-Agent": "curl/8.5.0",
                     "Content-Type": "application/json", "Content-Length": "40" },
        "sys": { "MethodName": "order", "UtcNow": "2024-10-24T17:42:07.5123456Z",
                 "RandGuid": "6f1c2b7e-3d4a-4f0e-9b8c-2a5d7e9f0c13" } } }"#;

    #[test]
    fn the_specs_http_example_parses_whole() {
        let request = InvocationRequest::from_slice(ORDER_EXAMPLE.as_bytes()).unwrap();
        let http = request.http_trigger("req").unwrap();
        assert_eq!(http.method, "POST");
        assert_eq!(http.url, "http://localhost:7071/api/order?source=web");
        assert_eq!(http.query["source"], "web");
        assert_eq!(http.header("content-type").unwrap(), ["application/json"]);
        assert!(http.params.is_empty());
        assert_eq!(http.identities.len(), 1);
        assert_eq!(
            http.body.as_deref(),
            Some(r#"{"id":1005,"quantity":2,"color":"black"}"#)
        );
        assert_eq!(request.method_name().as_deref(), Some("order"));
        assert_eq!(as_text(&request.metadata["id"]), "1005");
    }

    #[test]
    fn query_and_identities_as_strings_from_pre_2020_hosts_are_accepted() {
        let body = json!({"Data": {"req": {"Url": "http://x/api/a", "Method": "get",
            "Query": "{\"name\":\"Atlas\"}", "Headers": {}, "Identities": "[]"}}, "Metadata": {}});
        let http = InvocationRequest::from_slice(body.to_string().as_bytes())
            .unwrap()
            .http_trigger("req")
            .unwrap();
        assert_eq!(http.query["name"], "Atlas");
        assert_eq!(http.method, "GET");
        assert!(http.identities.is_empty());
    }

    #[test]
    fn a_missing_body_is_none_and_null_params_are_unmatched_optionals() {
        let body = json!({"Data": {"req": {"Url": "u", "Method": "GET", "Query": {}, "Headers": {},
            "Params": {"name": "x", "version": null}, "Identities": []}}, "Metadata": {"sys": {}}});
        let http = InvocationRequest::from_slice(body.to_string().as_bytes())
            .unwrap()
            .http_trigger("req")
            .unwrap();
        assert_eq!(http.body, None);
        assert_eq!(http.params["name"].as_deref(), Some("x"));
        assert_eq!(http.params["version"], None);
    }

    #[test]
    fn unknown_keys_and_lower_case_top_level_names_are_accepted() {
        let body = json!({"data": {"req": {"Method": "GET", "Extra": 1}}, "metadata": {"Odd": [1]}, "More": true});
        let request = InvocationRequest::from_slice(body.to_string().as_bytes()).unwrap();
        assert_eq!(request.http_trigger("req").unwrap().method, "GET");
    }

    #[test]
    fn malformed_payloads_are_errors_not_panics() {
        assert!(matches!(
            InvocationRequest::from_slice(b"{not json"),
            Err(PayloadError::NotJson(_))
        ));
        assert_eq!(
            InvocationRequest::from_slice(b"[1,2]"),
            Err(PayloadError::NotAnObject)
        );
        let deep = "[".repeat(100_000);
        assert!(matches!(
            InvocationRequest::from_slice(deep.as_bytes()),
            Err(PayloadError::NotJson(_))
        ));
        let request = InvocationRequest::from_slice(br#"{"Data":{"req":5}}"#).unwrap();
        assert_eq!(
            request.http_trigger("req"),
            Err(PayloadError::InputNotAnObject {
                binding: "req".into()
            })
        );
        assert_eq!(
            request.http_trigger("other"),
            Err(PayloadError::MissingInput {
                binding: "other".into()
            })
        );
    }

    #[test]
    fn wrong_types_inside_the_trigger_degrade_to_empty_values() {
        let body = json!({"Data": {"req": {"Url": 5, "Method": null, "Query": 3, "Headers": {"A": 1, "B": null},
            "Params": [], "Identities": {}, "Body": {"a": 1}}}, "Metadata": null});
        let http = InvocationRequest::from_slice(body.to_string().as_bytes())
            .unwrap()
            .http_trigger("req")
            .unwrap();
        assert_eq!(http.url, "5");
        assert_eq!(http.method, "");
        assert!(http.query.is_empty());
        assert_eq!(http.header("a").unwrap(), ["1"]);
        assert!(http.header("b").unwrap().is_empty());
        assert_eq!(http.body.as_deref(), Some(r#"{"a":1}"#));
    }
}
