//! The clients and the token checks, against recording fakes: Key Vault and Blob through
//! azure_core's transport, the downstream API and the token validator over loopback HTTP, and
//! the managed identity's secrecy. One module per area.

mod auth_downstream;
mod auth_validator;
mod blob;
mod identity_secrecy;
mod keyvault;

use std::sync::Arc;

use handler::clients::http::{AzureHttp, HttpSettings};
use test_kit::azure::FakeService;

/// The clients' plumbing with `fake` as transport: production timeouts, two retries with a 1 ms
/// pause so retry tests stay quick.
fn fake_http(fake: &FakeService) -> AzureHttp {
    let settings = HttpSettings {
        retry_delay: std::time::Duration::from_millis(1),
        ..HttpSettings::default()
    };
    AzureHttp::with_client(Arc::new(fake.clone()), settings)
}
