//! What WriteBlob and ReadBlob check before any call to Storage: the container and blob names,
//! that `{name}` is the one route segment it is declared as, and that the container is one
//! ALLOWED_CONTAINERS allows and not one of the host's or the platform's.

use crate::app::App;
use crate::clients::blob::StorageError;
use crate::clients::names::{InputError, validate_blob_name, validate_container_name};
use crate::error::FunctionError;
use custom_handler::http::HttpRequest;

/// The container and blob name of a `blobs/{container}/{name}` request, once every check passed:
/// a bad name is 400, a container the caller may not use 403, a bad ALLOWED_CONTAINERS 500.
pub fn checked(app: &App, request: &HttpRequest) -> Result<(String, String), FunctionError> {
    let container = request.param("container").unwrap_or_default();
    let name = request.param("name").unwrap_or_default();
    validate_container_name(container).map_err(StorageError::from)?;
    check_one_segment(name).map_err(StorageError::from)?;
    validate_blob_name(name).map_err(StorageError::from)?;
    app.allowed_containers()?
        .check(container)
        .map_err(|refusal| FunctionError::Forbidden(refusal.to_string()))?;
    Ok((container.to_owned(), name.to_owned()))
}

/// `{name}` is one route segment. The real host passes an encoded slash through undecoded (`%2F`
/// stays in the route value, as ASP.NET Core routing keeps it), while forwarding mode decodes it
/// here into `/`; refusing both keeps the two modes answering the same URL the same way, and keeps
/// a caller from reaching nested paths the route does not declare.
fn check_one_segment(name: &str) -> Result<(), InputError> {
    let encoded_slash = name.to_ascii_lowercase().contains("%2f");
    if name.contains('/') || encoded_slash {
        return Err(InputError::BlobName(
            "it is one route segment: an encoded '/' (%2F) is not allowed",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_encoded_slash_is_refused_decoded_or_not() {
        for name in ["a/b", "a%2Fb", "a%2fb", "..%2F..%2Fx", "%2F"] {
            assert!(check_one_segment(name).is_err(), "{name}");
        }
        for name in ["a.txt", "a%20b", "a%2b", "report 2024.csv"] {
            assert!(check_one_segment(name).is_ok(), "{name}");
        }
    }
}
