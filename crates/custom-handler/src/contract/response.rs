//! The invocation response the host expects in JSON mode (docs/host-contract.md), serialized
//! straight from these types (no intermediate `Value`).

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::Value;

/// `{Outputs, Logs, ReturnValue}`, written in PascalCase as the samples do. The host must always
/// get this with status 200: on any other status it drops `Logs` and `Outputs` (cli#3313).
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

    /// The JSON body. Serializing maps of strings cannot fail; the fallback keeps the host
    /// from ever getting an empty 2xx body, which would hang the invocation.
    pub fn to_json(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.size_hint());
        serde_json::to_writer(&mut out, self)
            .map(|()| out)
            .unwrap_or_else(|_| br#"{"Outputs":{},"Logs":[],"ReturnValue":null}"#.to_vec())
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
