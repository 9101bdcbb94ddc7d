//! The `x-ms-client-request-id` of each Key Vault and Blob Storage call: the id of the function
//! invocation that makes it, when the host gave one.
//!
//! It is the id Azure services log a request under (Storage's diagnostic logs keep it as
//! `client-request-id`; Key Vault's audit log keeps the GUID a client passes as `correlationId`),
//! and the one Azure support asks for, so a vault or storage log entry can be found from the
//! invocation's own log lines (which carry the invocation id) and back. Without an id of its own,
//! the SDK makes a random UUID per call, which ties the call to nothing (and costs a `getrandom`
//! system call per call).
//!
//! The host's invocation ids are GUIDs; anything else (an id made up locally when the header was
//! missing, or a header value no GUID) is left to the SDK's default, so every id the services
//! see stays unique and a valid header value.

use azure_core::http::{ClientMethodOptions, request::options::ClientRequestId};
use custom_handler::invocation;

/// Method options whose context carries the current invocation's id as the client request id,
/// or the SDK's defaults outside an invocation or when the id is not a GUID.
pub fn method_options() -> ClientMethodOptions<'static> {
    let mut options = ClientMethodOptions::default();
    let host_id = |current: &invocation::Invocation| {
        managed_identity::is_guid(current.id()).then(|| current.id().to_owned())
    };
    if let Some(id) = invocation::with_current(host_id).flatten() {
        options.context.insert(ClientRequestId::new(id));
    }
    options
}

#[cfg(test)]
mod tests {
    use super::*;
    use azure_core::http::headers::Header as _;
    use custom_handler::invocation::Invocation;

    const GUID: &str = "8d0a7a55-6e61-4a4e-9b55-2bd7d0bd6a86";

    fn request_id(options: &ClientMethodOptions<'_>) -> Option<String> {
        options
            .context
            .value::<ClientRequestId>()
            .map(|id| id.value().as_str().to_owned())
    }

    #[test]
    fn an_invocation_with_a_host_id_lends_it_to_the_call() {
        let options = Invocation::json("GetSecret", GUID).sync_scope(method_options);
        assert_eq!(request_id(&options).as_deref(), Some(GUID));
    }

    #[test]
    fn a_local_id_or_no_invocation_leaves_the_sdk_its_own() {
        let local = Invocation::json("GetSecret", "local-7").sync_scope(method_options);
        assert_eq!(request_id(&local), None);
        let not_quite = &GUID[..35];
        let short = Invocation::json("GetSecret", not_quite).sync_scope(method_options);
        assert_eq!(request_id(&short), None);
        assert_eq!(request_id(&method_options()), None);
    }
}
