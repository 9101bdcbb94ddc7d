//! The App Service api-version fallback: when both the 2019-08-01 pair (`IDENTITY_ENDPOINT`,
//! `IDENTITY_HEADER`) and the legacy pair (`MSI_ENDPOINT`, `MSI_SECRET`) are set and the 2019
//! endpoint answers 400 `UnsupportedApiVersion`, the credential switches to 2017-09-01 once and
//! stays there.

use std::sync::atomic::Ordering;

use serde_json::{Map, Value};
use time::OffsetDateTime;
use tokio::time::Instant;
use url::Url;

use super::{Fetcher, ParsedToken, TokenRequest, app_service, legacy, status};
use crate::SourceKind;
use crate::config::LegacyEndpoint;
use crate::error::IdentityError;
use crate::retry::send_with_retries;
use crate::secret::HeaderSecret;
use crate::transport::HttpResponse;

impl Fetcher {
    /// A token from App Service: 2019-08-01, or 2017-09-01 once the fallback has happened.
    pub(super) async fn fetch_app_service(
        &self,
        endpoint: &Url,
        header: &HeaderSecret,
        legacy: Option<&LegacyEndpoint>,
        request: TokenRequest<'_>,
        started: Instant,
        issued: OffsetDateTime,
    ) -> Result<(ParsedToken, SourceKind), IdentityError> {
        if let Some(legacy) = legacy.filter(|_| self.use_legacy.load(Ordering::Acquire)) {
            return self.fetch_legacy(legacy, request, started, issued).await;
        }
        let kind = SourceKind::AppService2019;
        let http = app_service::request(endpoint, header, request);
        super::log_request(kind, &http, request);
        let outcome = send_with_retries(
            self.transport.as_ref(),
            &http,
            kind,
            &self.timing.retry,
            self.budget(started),
        )
        .await;
        if let (Some(legacy), Ok(response)) = (legacy, &outcome.last)
            && is_unsupported_api_version(response)
        {
            log::warn!(
                "{kind} answered UnsupportedApiVersion; using the legacy 2017-09-01 protocol (MSI_ENDPOINT) from now on"
            );
            self.use_legacy.store(true, Ordering::Release);
            self.check_supported(request.identity)?;
            return self.fetch_legacy(legacy, request, started, issued).await;
        }
        let parsed = status::interpret(
            kind,
            &http,
            outcome.last,
            outcome.attempts,
            outcome.stop,
            request,
            issued,
        )?;
        Ok((parsed, kind))
    }

    /// A token from the legacy 2017-09-01 endpoint.
    async fn fetch_legacy(
        &self,
        legacy: &LegacyEndpoint,
        request: TokenRequest<'_>,
        started: Instant,
        issued: OffsetDateTime,
    ) -> Result<(ParsedToken, SourceKind), IdentityError> {
        let http = legacy::request(&legacy.endpoint, &legacy.secret, request)?;
        let kind = SourceKind::AppService2017;
        let parsed = self
            .fetch_http(kind, &http, request, started, issued)
            .await?;
        Ok((parsed, kind))
    }
}

/// Whether a 2019-08-01 answer says that api-version is not supported. Only the error body's
/// code counts, never a word anywhere in it (an endpoint may echo a caller's value in its
/// message): ASP.NET API versioning's `{"error": {"code": "UnsupportedApiVersion", …}}` (any
/// case of the member names), a string `error` or `code` member, or App Service's
/// `{"statusCode": 400, "message": "UnsupportedApiVersion: …"}` whose message starts with it.
/// Read as a `serde_json` map rather than a typed struct because member names match in any case.
pub(crate) fn is_unsupported_api_version(response: &HttpResponse) -> bool {
    const CODE: &str = "UnsupportedApiVersion";
    if response.status != 400 {
        return false;
    }
    let Ok(Value::Object(body)) = serde_json::from_slice::<Value>(&response.body) else {
        return false;
    };
    let member = |map: &Map<String, Value>, name: &str| -> Option<Value> {
        map.iter()
            .find(|(key, _)| key.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.clone())
    };
    let is_code = |value: Option<Value>| {
        value
            .as_ref()
            .and_then(Value::as_str)
            .is_some_and(|code| code.eq_ignore_ascii_case(CODE))
    };
    let nested_code = match member(&body, "error") {
        Some(Value::Object(error)) => is_code(member(&error, "code")),
        other => is_code(other),
    };
    let message_code = member(&body, "message")
        .as_ref()
        .and_then(Value::as_str)
        .and_then(|message| message.split_once(':'))
        .is_some_and(|(code, _)| code.trim() == CODE);
    nested_code || is_code(member(&body, "code")) || message_code
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_error_code_means_unsupported_api_version() {
        let answer = |status: u16, body: &str| HttpResponse {
            status,
            retry_after: None,
            body: body.as_bytes().to_vec(),
        };
        for yes in [
            r#"{"statusCode":400,"message":"UnsupportedApiVersion: The HTTP resource does not support the api-version '2019-08-01'.","correlationId":"c"}"#,
            r#"{"Error":{"Code":"UnsupportedApiVersion","Message":"The HTTP resource that matches the request URI does not support the API version '2019-08-01'.","InnerError":null}}"#,
            r#"{"error":{"code":"UnsupportedApiVersion","message":"x"}}"#,
            r#"{"error":"UnsupportedApiVersion","error_description":"x"}"#,
            r#"{"code":"UnsupportedApiVersion"}"#,
        ] {
            assert!(is_unsupported_api_version(&answer(400, yes)), "{yes}");
        }
        for no in [
            // a caller's value echoed back in an ordinary 400
            r#"{"statusCode":400,"message":"Unable to load the proper Managed Identity for client_id UnsupportedApiVersion.","correlationId":"c"}"#,
            r#"{"error":"invalid_request","error_description":"UnsupportedApiVersion"}"#,
            r#"{"error":{"code":"BadRequest","message":"UnsupportedApiVersion: no"}}"#,
            r#"{"statusCode":400,"message":"resource UnsupportedApiVersion: x"}"#,
            "UnsupportedApiVersion",
            "<html>UnsupportedApiVersion</html>",
            r#"["UnsupportedApiVersion"]"#,
        ] {
            assert!(!is_unsupported_api_version(&answer(400, no)), "{no}");
        }
        assert!(!is_unsupported_api_version(&answer(
            500,
            r#"{"error":{"code":"UnsupportedApiVersion"}}"#
        )));
    }
}
