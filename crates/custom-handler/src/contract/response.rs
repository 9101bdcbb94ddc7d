//! The invocation response the host expects in JSON mode (docs/host-contract.md), serialized
//! straight from these types (no intermediate `Value`).

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::Value;

use crate::http::ResponseHeaders;

/// `{Outputs, Logs, ReturnValue}`, written in PascalCase as the samples do. The host must always
/// get this with status 200: on any other status it drops `Logs` and `Outputs`
/// (docs/host-contract.md, 'What counts as a failure, and where the reason goes').
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct InvocationResponse {
    /// Output binding name (exact case) → value.
    #[serde(rename = "Outputs")]
    pub outputs: BTreeMap<String, HttpOutput>,
    /// Lines the host logs against this invocation, so they reach Application Insights.
    #[serde(rename = "Logs")]
    pub logs: Vec<String>,
    /// Kept null: this app declares no `$return` binding.
    #[serde(rename = "ReturnValue")]
    pub return_value: Value,
}

/// An http output binding's value: the host turns it into the HTTP response.
#[derive(Debug, Clone, PartialEq)]
pub struct HttpOutput {
    /// The status code (`statusCode`).
    pub status_code: u16,
    /// The body, written as is.
    pub body: String,
    /// Whether `body` is already escaped as a JSON string's content (a JSON body written by
    /// `HttpResponse::json` in JSON mode, see `crate::escaped`): it then goes into the envelope
    /// as it is instead of being escaped again.
    pub body_escaped: bool,
    /// Header name → one string value; always carries `Content-Type`.
    pub headers: ResponseHeaders,
}

impl Serialize for HttpOutput {
    /// `{statusCode, body, headers}`; an escaped body is read back to its text first (the
    /// runtime's own path, [`InvocationResponse::to_json`], writes it as it is).
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::{Error as _, SerializeStruct as _};
        let mut output = serializer.serialize_struct("HttpOutput", 3)?;
        output.serialize_field("statusCode", &self.status_code)?;
        if self.body_escaped {
            let body: String = serde_json::from_str(&format!("\"{}\"", self.body))
                .map_err(|error| S::Error::custom(format!("escaped body: {error}")))?;
            output.serialize_field("body", &body)?;
        } else {
            output.serialize_field("body", &self.body)?;
        }
        output.serialize_field("headers", &self.headers)?;
        output.end()
    }
}

impl InvocationResponse {
    /// A response carrying one http output under `binding` and the invocation's log lines.
    pub fn http(binding: &str, output: HttpOutput, logs: Vec<String>) -> Self {
        let outputs = BTreeMap::from([(binding.to_owned(), output)]);
        Self {
            outputs,
            logs,
            return_value: Value::Null,
        }
    }

    /// A response with no outputs, for timer functions and failures with no http output.
    pub fn logs_only(logs: Vec<String>) -> Self {
        Self {
            outputs: BTreeMap::new(),
            logs,
            return_value: Value::Null,
        }
    }

    /// The JSON body: what serde_json writes for this value, but with an escaped http body
    /// copied as it is. Serializing maps of strings cannot fail; the fallback keeps the host
    /// from ever getting an empty 2xx body, which would hang the invocation.
    pub fn to_json(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.size_hint());
        self.write_json(&mut out)
            .map(|()| out)
            .unwrap_or_else(|_| br#"{"Outputs":{},"Logs":[],"ReturnValue":null}"#.to_vec())
    }

    /// The compact serialization of the derived shape, member by member.
    fn write_json(&self, out: &mut Vec<u8>) -> serde_json::Result<()> {
        out.extend_from_slice(b"{\"Outputs\":{");
        for (index, (name, output)) in self.outputs.iter().enumerate() {
            if index > 0 {
                out.push(b',');
            }
            serde_json::to_writer(&mut *out, name)?;
            out.extend_from_slice(b":{\"statusCode\":");
            serde_json::to_writer(&mut *out, &output.status_code)?;
            out.extend_from_slice(b",\"body\":");
            if output.body_escaped {
                out.push(b'"');
                out.extend_from_slice(output.body.as_bytes());
                out.push(b'"');
            } else {
                serde_json::to_writer(&mut *out, &output.body)?;
            }
            out.extend_from_slice(b",\"headers\":");
            serde_json::to_writer(&mut *out, &output.headers)?;
            out.push(b'}');
        }
        out.extend_from_slice(b"},\"Logs\":");
        serde_json::to_writer(&mut *out, &self.logs)?;
        out.extend_from_slice(b",\"ReturnValue\":");
        serde_json::to_writer(&mut *out, &self.return_value)?;
        out.push(b'}');
        Ok(())
    }

    /// Room for the usual answer in one allocation: the texts plus the JSON around them
    /// (escaping can make it larger; the buffer then grows once).
    fn size_hint(&self) -> usize {
        let outputs: usize = self
            .outputs
            .iter()
            .map(|(name, output)| {
                name.len()
                    + output.body.len()
                    + output
                        .headers
                        .iter()
                        .map(|(k, v)| k.len() + v.len() + 6)
                        .sum::<usize>()
                    + 64
            })
            .sum();
        let logs: usize = self.logs.iter().map(|line| line.len() + 3).sum();
        outputs + logs + 64
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn an_http_answer_has_the_shape_the_host_reads() {
        let output = HttpOutput {
            status_code: 201,
            body: "Order enqueued".into(),
            body_escaped: false,
            headers: ResponseHeaders::from([("Content-Type", "text/plain; charset=utf-8")]),
        };
        let response = InvocationResponse::http("res", output, vec!["order 1005 accepted".into()]);
        let json: Value = serde_json::from_slice(&response.to_json()).unwrap();
        assert_eq!(
            json,
            json!({"Outputs": {"res": {"statusCode": 201, "body": "Order enqueued",
                     "headers": {"Content-Type": "text/plain; charset=utf-8"}}},
                   "Logs": ["order 1005 accepted"], "ReturnValue": null})
        );
    }

    #[test]
    fn a_timer_answer_has_empty_outputs_and_its_logs() {
        let json: Value =
            serde_json::from_slice(&InvocationResponse::logs_only(vec!["done".into()]).to_json())
                .unwrap();
        assert_eq!(
            json,
            json!({"Outputs": {}, "Logs": ["done"], "ReturnValue": null})
        );
    }

    #[test]
    fn the_written_envelope_is_what_serde_json_writes_for_it() {
        let body = json!({"a": "quote \" and \\ and \n", "b": [1, 2.5, null], "é": "日本"});
        let plain = HttpOutput {
            status_code: 406,
            body: body.to_string(),
            body_escaped: false,
            headers: ResponseHeaders::from([
                ("Content-Type", "application/json"),
                ("X-\"odd\"", "tab\there"),
            ]),
        };
        let mut escaped_body = Vec::new();
        crate::escaped::to_writer(&mut escaped_body, &body).unwrap();
        let escaped = HttpOutput {
            body: String::from_utf8(escaped_body).unwrap(),
            body_escaped: true,
            ..plain.clone()
        };
        let logs = vec!["INFO: line \"one\"".to_owned(), "two\u{1}".to_owned()];
        let mut two = InvocationResponse::http("res", plain.clone(), logs.clone());
        two.outputs.insert("$other".into(), escaped.clone());
        for response in [
            InvocationResponse::http("res", plain.clone(), logs.clone()),
            InvocationResponse::http("res", escaped.clone(), logs.clone()),
            two,
            InvocationResponse::logs_only(logs),
            InvocationResponse::logs_only(Vec::new()),
        ] {
            assert_eq!(
                String::from_utf8(response.to_json()).unwrap(),
                serde_json::to_string(&response).unwrap()
            );
        }
        // Both forms of one body carry the same text to the host.
        let read = |output: &HttpOutput| {
            let json: Value = serde_json::from_slice(
                &InvocationResponse::http("r", output.clone(), vec![]).to_json(),
            )
            .unwrap();
            json["Outputs"]["r"]["body"].as_str().unwrap().to_owned()
        };
        assert_eq!(read(&plain), read(&escaped));
        assert_eq!(read(&plain), body.to_string());
    }
}
