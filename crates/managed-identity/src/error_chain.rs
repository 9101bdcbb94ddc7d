//! Walking an error's chain of causes, for errors (TLS, DNS, I/O) whose useful part sits several
//! causes down. The one walker of the repository: the identity transport and the application's
//! service clients both use it.

use std::error::Error;

/// The error itself, then its source, its source's source, and so on.
pub fn chain<'a>(
    error: &'a (dyn Error + 'static),
) -> impl Iterator<Item = &'a (dyn Error + 'static)> {
    std::iter::successors(Some(error), |&current| current.source())
}

/// `error: cause: cause's cause: ...`.
pub fn error_chain(error: &(dyn Error + 'static)) -> String {
    let mut text = String::new();
    for (index, cause) in chain(error).enumerate() {
        if index > 0 {
            text.push_str(": ");
        }
        text.push_str(&cause.to_string());
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("outer")]
    struct Outer(#[source] std::io::Error);

    #[test]
    fn every_cause_is_named_in_order() {
        let error = Outer(std::io::Error::other("inner"));
        assert_eq!(error_chain(&error), "outer: inner");
    }

    #[test]
    fn the_chain_starts_with_the_error_itself() {
        let error = Outer(std::io::Error::other("inner"));
        let texts: Vec<String> = chain(&error).map(ToString::to_string).collect();
        assert_eq!(texts, ["outer", "inner"]);
        let alone = std::io::Error::other("alone");
        assert_eq!(chain(&alone).count(), 1);
    }
}
