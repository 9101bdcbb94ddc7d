//! The invocation request the host POSTs in JSON mode (docs/host-contract.md).
//!
//! Decoded without building a `serde_json::Value` tree: the envelope's members are kept as raw
//! JSON text borrowed from the body (see `raw`), and only what the function reads is decoded.

use std::collections::BTreeMap;

use serde_json::value::RawValue;
use serde_json::{Map, Value};

use super::raw::{self, Members, ObjectText, as_text};
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

/// A JSON-mode invocation, borrowing from the request body: `Data` (input binding name → value)
/// and `Metadata` (trigger metadata, `sys`, and for HTTP the query, route and body properties),
/// each still raw JSON until read. Unknown keys are kept, never rejected.
pub struct InvocationRequest<'a> {
    data: ObjectText<'a>,
    metadata: ObjectText<'a>,
}

impl std::fmt::Debug for InvocationRequest<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the contents: they may hold a function key or a secret in a body.
        f.debug_struct("InvocationRequest")
            .field("data_members", &self.data.members().len())
            .field("metadata_members", &self.metadata.members().len())
            .finish()
    }
}

impl<'a> InvocationRequest<'a> {
    /// Reads the host's request body. `Data` and `Metadata` are matched without regard to case,
    /// as the host's own deserializer does, and may be missing or null.
    pub fn from_slice(body: &'a [u8]) -> Result<Self, PayloadError> {
        let text = std::str::from_utf8(body).map_err(|e| PayloadError::NotJson(e.to_string()))?;
        let mut deserializer = serde_json::Deserializer::from_str(text);
        let top = serde::Deserialize::deserialize(&mut deserializer)
            .and_then(|top: Members<'a>| deserializer.end().map(|()| top));
        let top = match top {
            Ok(top) => top,
            // JSON, but not an object (an array, a string, ...), or not JSON at all.
            Err(error) => {
                return Err(match raw::is_json(text) {
                    Ok(()) => PayloadError::NotAnObject,
                    Err(_) => PayloadError::NotJson(error.to_string()),
                });
            }
        };
        Ok(Self {
            data: ObjectText::of(top.get("Data")),
            metadata: ObjectText::of(top.get("Metadata")),
        })
    }

    /// The raw value of one input binding, by its function.json name (exact case first, then
    /// any case).
    pub fn input(&self, binding: &str) -> Option<&RawValue> {
        self.data.members().get(binding)
    }

    /// Reads the HTTP trigger input of `binding`.
    pub fn http_trigger(&self, binding: &str) -> Result<HttpTriggerData, PayloadError> {
        let object = self.object_input(binding)?;
        Ok(HttpTriggerData::from_members(&object.members()))
    }

    /// Reads the timer trigger input of `binding`. Timers fire every few minutes, so this one
    /// goes through a `Value` map.
    pub fn timer(&self, binding: &str) -> Result<TimerInfo, PayloadError> {
        let object = self.object_input(binding)?;
        let map: Map<String, Value> = object
            .members()
            .distinct()
            .filter_map(|(name, value)| {
                serde_json::from_str::<Value>(value.get())
                    .ok()
                    .map(|value| (name.to_owned(), value))
            })
            .collect();
        Ok(TimerInfo::from_object(&map))
    }

    /// The invocation's `sys.MethodName`, when the host sent one.
    pub fn method_name(&self) -> Option<String> {
        let metadata = self.metadata.members();
        let sys = ObjectText::of(metadata.get("sys"));
        sys.members().get("MethodName").map(as_text)
    }

    /// One `Metadata` member as text (strings decoded as the host encodes them), when present.
    pub fn metadata(&self, key: &str) -> Option<String> {
        self.metadata.members().get(key).map(as_text)
    }

    /// The trigger input as an object: an object, or a string holding one (`"{}"` included).
    fn object_input(&self, binding: &str) -> Result<ObjectText<'_>, PayloadError> {
        let value = self
            .input(binding)
            .ok_or_else(|| PayloadError::MissingInput {
                binding: binding.to_owned(),
            })?;
        let not_an_object = || PayloadError::InputNotAnObject {
            binding: binding.to_owned(),
        };
        match ObjectText::of(Some(value)) {
            ObjectText::Raw(text) => Ok(ObjectText::Raw(text)),
            ObjectText::Decoded(text) => {
                let an_object =
                    Members::parse(&text).is_some_and(|members| members.len() > 0) || text == "{}";
                if an_object {
                    Ok(ObjectText::Decoded(text))
                } else {
                    Err(not_an_object())
                }
            }
            ObjectText::Absent => Err(not_an_object()),
        }
    }
}

/// The HTTP request as the host serializes it into `Data.<trigger>` (docs/host-contract.md).
/// `Debug` hides credentials (`crate::redact`) in the URL, query and headers, and the body and
/// identities.
#[derive(Clone, Default, PartialEq)]
pub struct HttpTriggerData {
    /// The public URL, query string included (it may hold `code`: never log it).
    pub url: String,
    /// The method, upper case.
    pub method: String,
    /// Query parameters, one string each (repeated keys arrive joined with `,`).
    pub query: BTreeMap<String, String>,
    /// Headers in byte order of their names (the host sends each name once), each with all of
    /// its values.
    pub headers: Vec<(String, Vec<String>)>,
    /// Route parameters; an optional one that did not match is `None`.
    pub params: BTreeMap<String, Option<String>>,
    /// The serialized claims identities, kept opaque: each one's JSON text.
    pub identities: Vec<String>,
    /// The body text, present only when the client sent `Content-Length > 0`. For
    /// `application/octet-stream` and `multipart/*` the host sends it base64-encoded.
    pub body: Option<String>,
}

impl std::fmt::Debug for HttpTriggerData {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        use crate::redact::{REDACTED, is_sensitive_header, shown};
        let query = crate::redact::query(&self.query);
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
    fn from_members(object: &Members<'_>) -> Self {
        let text_of = |key: &str| object.get(key).map(as_text).unwrap_or_default();
        let map_of = |key: &str| ObjectText::of(object.get(key));
        Self {
            url: text_of("Url"),
            method: text_of("Method").to_ascii_uppercase(),
            query: map_of("Query")
                .members()
                .distinct()
                .map(|(name, value)| (name.to_owned(), as_text(value)))
                .collect(),
            headers: map_of("Headers")
                .members()
                .distinct()
                .map(|(name, value)| (name.to_owned(), header_values(value)))
                .collect(),
            params: map_of("Params")
                .members()
                .distinct()
                .map(|(name, value)| (name.to_owned(), optional_text(value)))
                .collect(),
            identities: raw::array_items(object.get("Identities")),
            body: object.get("Body").and_then(body_text),
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

fn header_values(value: &RawValue) -> Vec<String> {
    if raw::is_null(value) {
        return Vec::new();
    }
    match raw::array_of(value) {
        Some(items) => items.into_iter().map(as_text).collect(),
        None => vec![as_text(value)],
    }
}

fn optional_text(value: &RawValue) -> Option<String> {
    (!raw::is_null(value)).then(|| as_text(value))
}

/// The body is normally a string; an object or array (some test tools send those) is kept as its
/// JSON text so that nothing the client sent is lost.
fn body_text(value: &RawValue) -> Option<String> {
    if raw::is_null(value) {
        return None;
    }
    if let Some(text) = raw::string_of(value) {
        return Some(text.into_owned());
    }
    serde_json::from_str::<Value>(value.get())
        .ok()
        .map(|value| value.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// The contract's full example: function `order`, POST with a JSON body under Core Tools.
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
        assert_eq!(request.metadata("id").as_deref(), Some("1005"));
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
        let text = body.to_string();
        let request = InvocationRequest::from_slice(text.as_bytes()).unwrap();
        assert_eq!(request.http_trigger("req").unwrap().method, "GET");
    }

    #[test]
    fn malformed_payloads_are_errors_not_panics() {
        assert!(matches!(
            InvocationRequest::from_slice(b"{not json"),
            Err(PayloadError::NotJson(_))
        ));
        assert_eq!(
            InvocationRequest::from_slice(b"[1,2]").err(),
            Some(PayloadError::NotAnObject)
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

    /// The `Value`-tree reader this module replaced, kept as the oracle: every shape must decode
    /// to the same `HttpTriggerData` both ways.
    fn value_oracle(body: &str, binding: &str) -> Option<HttpTriggerData> {
        use crate::contract::decode::{array_or_encoded, as_text, object_owned, object_ref};
        fn member<'a>(object: &'a Map<String, Value>, key: &str) -> Option<&'a Value> {
            object.get(key).or_else(|| {
                object
                    .iter()
                    .find(|(candidate, _)| candidate.eq_ignore_ascii_case(key))
                    .map(|(_, value)| value)
            })
        }
        let Value::Object(top) = serde_json::from_str::<Value>(body).ok()? else {
            return None;
        };
        let data = object_owned(member(&top, "Data").cloned());
        let input = member(&data, binding)?;
        let object = match input {
            Value::Object(map) => map.clone(),
            Value::String(text) => {
                let map = object_ref(Some(input)).into_owned();
                if map.is_empty() && text != "{}" {
                    return None;
                }
                map
            }
            _ => return None,
        };
        Some(HttpTriggerData {
            url: member(&object, "Url").map(as_text).unwrap_or_default(),
            method: member(&object, "Method")
                .map(as_text)
                .unwrap_or_default()
                .to_ascii_uppercase(),
            query: object_ref(member(&object, "Query"))
                .iter()
                .map(|(k, v)| (k.clone(), as_text(v)))
                .collect(),
            headers: object_ref(member(&object, "Headers"))
                .iter()
                .map(|(k, v)| {
                    let values = match v {
                        Value::Array(items) => items.iter().map(as_text).collect(),
                        Value::Null => Vec::new(),
                        other => vec![as_text(other)],
                    };
                    (k.clone(), values)
                })
                .collect(),
            params: object_ref(member(&object, "Params"))
                .iter()
                .map(|(k, v)| (k.clone(), (!v.is_null()).then(|| as_text(v))))
                .collect(),
            identities: array_or_encoded(member(&object, "Identities"))
                .iter()
                .map(Value::to_string)
                .collect(),
            body: member(&object, "Body").and_then(|v| match v {
                Value::Null => None,
                Value::String(text) => Some(text.clone()),
                other => Some(other.to_string()),
            }),
        })
    }

    #[test]
    fn every_shape_decodes_as_the_value_reader_decoded_it() {
        let shapes = [
            ORDER_EXAMPLE.to_owned(),
            json!({"Data": {"req": {"Url": "http://x/api/a", "Method": "get",
                "Query": "{\"name\":\"Atlas\"}", "Headers": {}, "Identities": "[{\"a\":1}]"}}})
            .to_string(),
            json!({"data": {"REQ": {"url": "u", "METHOD": "post", "query": {"a": "\"quoted\""},
                "headers": {"X-One": "single", "X-Many": ["a", 2, null, {"k": true}],
                            "x-one": ["lower"], "Empty": []},
                "params": {"n": 5, "o": null, "p": "\"7\""}, "body": [1, {"b": 2}]}}})
            .to_string(),
            // Duplicate keys (the last wins), escapes, non-ASCII, numbers in odd forms.
            r#"{"Data": {"req": {"Url": "first", "Url": "second", "Method": "G\u0045T",
                "Query": {"q": "a\"b", "q": "é", "n": 1e2, "m": -0.5},
                "Headers": {"Accept": ["*/*"], "Accept": ["text/plain"]},
                "Body": "line\nbreak \"quoted\""}}, "Data": {"req": {"Url": "shadowed"}}}"#
                .to_owned(),
            r#"{"Data": "{\"req\": {\"Url\": \"from a string\", \"Method\": \"GET\"}}"}"#
                .to_owned(),
            r#"{"Data": {"req": "{\"Url\":\"inner\",\"Body\":null}"}}"#.to_owned(),
            r#"{"Data": {"req": "{}"}}"#.to_owned(),
            r#"{"Data": {"req": {"Headers": null, "Query": null, "Params": "nope",
                "Identities": null, "Body": true, "Url": null, "Method": false}}}"#
                .to_owned(),
            r#"{"Data": {"Req": {"Url": "case"}, "REQ": {"Url": "CASE"}}}"#.to_owned(),
            r#"{"DATA": {"req": {"Url": "upper"}}, "data": {"req": {"Url": "lower"}}}"#.to_owned(),
            r#"{"Data": {"req": {"url": "lower", "URL": "upper", "Url": "exact", "Url": "exact 2",
                "QUERY": "{\"a\": \"1\"}", "query": {"b": 2}, "body": null, "BODY": "x",
                "params": {"p": [1]}, "identities": "[1, \"two\"]", "Identities ": []}},
                "Metadata": {"deep": [[[[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]]]}}"#
                .to_owned(),
            r#"{"Data": {"req": {"Headers": "{\"A\": [\"1\", 2], \"B\": \"x\"}",
                "Query": " {\"q\": 1} ", "Params": "{\"x\": null} extra"}}}"#
                .to_owned(),
        ];
        for shape in &shapes {
            let mut new = InvocationRequest::from_slice(shape.as_bytes())
                .ok()
                .and_then(|request| request.http_trigger("req").ok());
            let mut typed = crate::contract::http_trigger(shape.as_bytes(), "req").ok();
            // Identities stay opaque JSON: equal as JSON, not as text.
            for identity in new
                .iter_mut()
                .chain(typed.iter_mut())
                .flat_map(|http| http.identities.iter_mut())
            {
                *identity = serde_json::from_str::<Value>(identity).unwrap().to_string();
            }
            assert_eq!(new, value_oracle(shape, "req"), "{shape}");
            assert_eq!(typed, new, "one-pass reader: {shape}");
            assert!(new.is_some(), "{shape}");
        }
        for refused in [
            r#"{"Data": {"req": "{ }"}}"#,
            r#"{"Data": {"req": "[1]"}}"#,
            r#"{"Data": {"req": null}}"#,
            r#"{"Data": {"other": {}}}"#,
            r#"{"Data": 5}"#,
        ] {
            assert_eq!(value_oracle(refused, "req"), None, "{refused}");
            let request = InvocationRequest::from_slice(refused.as_bytes()).unwrap();
            let error = request.http_trigger("req").unwrap_err();
            assert_eq!(
                crate::contract::http_trigger(refused.as_bytes(), "req").unwrap_err(),
                error,
                "{refused}"
            );
        }
    }

    #[test]
    fn the_one_pass_reader_fails_as_the_two_step_one_does() {
        let deep = "[".repeat(100_000);
        let cases: [&[u8]; 9] = [
            b"{not json",
            b"[1,2]",
            b"[1,2",
            b"\"text\"",
            b"{} trailing",
            deep.as_bytes(),
            &[b'{', 0xff, b'}'],
            br#"{"Data":{"req":5}}"#,
            br#"{"data":"{\"req\":{\"Method\":\"get\"}} x","Data":{}}"#,
        ];
        for body in cases {
            let two_step =
                InvocationRequest::from_slice(body).and_then(|request| request.http_trigger("req"));
            let one_pass = crate::contract::http_trigger(body, "req");
            match (&two_step, &one_pass) {
                (Err(PayloadError::NotJson(_)), Err(PayloadError::NotJson(_))) => {}
                _ => assert_eq!(one_pass, two_step, "{}", String::from_utf8_lossy(body)),
            }
        }
        let http = crate::contract::http_trigger(ORDER_EXAMPLE.as_bytes(), "req").unwrap();
        assert_eq!(http.method, "POST");
        assert_eq!(http.query["source"], "web");
        assert_eq!(http.header("content-type").unwrap(), ["application/json"]);
    }

    #[test]
    fn metadata_and_method_name_read_through_strings_and_case() {
        let body = r#"{"metadata": {"sys": "{\"MethodName\":\"\\\"Get\\\"\"}", "Id": 7}}"#;
        let request = InvocationRequest::from_slice(body.as_bytes()).unwrap();
        assert_eq!(request.method_name().as_deref(), Some("Get"));
        assert_eq!(request.metadata("id").as_deref(), Some("7"));
        assert_eq!(request.metadata("missing"), None);
    }

    #[test]
    fn bodies_that_are_not_utf8_or_not_json_are_errors() {
        assert!(matches!(
            InvocationRequest::from_slice(&[b'{', 0xff, b'}']),
            Err(PayloadError::NotJson(_))
        ));
        assert!(matches!(
            InvocationRequest::from_slice(b"{} trailing"),
            Err(PayloadError::NotJson(_))
        ));
        assert!(matches!(
            InvocationRequest::from_slice(b"[1,2"),
            Err(PayloadError::NotJson(_))
        ));
        assert_eq!(
            InvocationRequest::from_slice(b"\"text\"").err(),
            Some(PayloadError::NotAnObject)
        );
    }
}
