//! The invocation response the host expects in JSON mode (spec §3).

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::{Map, Value};

/// `{Outputs, Logs, ReturnValue}`, written in PascalCase as the samples do. The host must always
/// get this with status 200: on any other status it drops `Logs` and `Outputs` (cli#3313).
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct InvocationResponse {
    /// Output binding name (exact case) → value.
    #[serde(rename = "Outputs")]
    pub outputs: Map<String, Value>,
    /// Lines the host logs against this invocation, so they reach Application Insights.
    #[serde(rename = "Logs")]
    pub logs: Vec<String>,
    /// Kept null: this app declares no `$return` binding.
    #[serde(rename = "ReturnValue")]
    pub return_value: Value,
}

/// An http output binding's value: the host turns it into the HTTP response (spec §3.3).
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct HttpOutput {
    /// The status code.
    #[serde(rename = "statusCode")]
    pub status_code: u16,
    /// The body, written as is.
    pub body: String,
    /// Header name → one string value; always carries `Content-Type`.
    pub headers: BTreeMap<String, String>,
}

impl InvocationResponse {
    /// A response carrying one http output under `binding` and the invocation's log lines.
    pub fn http(binding: &str, output: HttpOutput, logs: Vec<String>) -> Self {
        let mut outputs = Map::new();
        outputs.insert(
            binding.to_owned(),
            serde_json::to_value(output).unwrap_or(Value::Null),
        );
        Self {
            outputs,
            logs,
            return_value: Value::Null,
        }
    }

    /// A response with no outputs, for timer functions and failures with no http output.
    pub fn logs_only(logs: Vec<String>) -> Self {
        Self {
            outputs: Map::new(),
            logs,
            return_value: Value::Null,
        }
    }

    /// The JSON body. Serializing maps of strings cannot fail; the fallback keeps the host
    /// from ever getting an empty 2xx body, which would hang the invocation (spec §3.1).
    pub fn to_json(&self) -> Vec<u8> {
        serde_json::to_vec(self)
            .unwrap_or_else(|_| br#"{"Outputs":{},"Logs":[],"ReturnValue":null}"#.to_vec())
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
            headers: BTreeMap::from([("Content-Type".into(), "text/plain; charset=utf-8".into())]),
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
}
