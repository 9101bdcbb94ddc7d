//! Outbound-connection rules shared by every HTTP client that carries a token or a key.
//!
//! reqwest sends requests through `ALL_PROXY` / `HTTPS_PROXY` / `HTTP_PROXY` unless `NO_PROXY`
//! says otherwise, loopback destinations included. A proxy variable left in a developer's shell
//! (or set by an attacker who can set one variable) would then receive the bearer tokens meant
//! for the local emulators, the identity endpoint or the app's own API. Clients that carry
//! tokens therefore use [`proxy_unless_loopback`]: the environment's proxy rules exactly as
//! reqwest reads them (the same matcher), except that loopback is always reached directly.
//! The identity endpoint's client uses no proxy at all (`crates/managed-identity/src/transport.rs`).
//!
//! Every body such a client reads goes through [`read_capped`], so no answer can make the
//! handler hold more than the caller's limit in memory.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hyper_util::client::proxy::matcher::{Intercept, Matcher};
use url::Url;

/// The one loopback rule (`localhost`, `*.localhost`, 127.0.0.0/8, `::1`, IPv4-mapped 127.x),
/// owned by the identity crate, whose endpoints live there too.
pub use managed_identity::is_loopback;

/// The one capped body reader, shared with the identity crate's transport.
pub use managed_identity::{CappedBodyError, read_capped};

/// The proxy rule for clients that carry tokens: the environment's proxy for other hosts, none
/// for `localhost`, `*.localhost`, 127.0.0.0/8 and `::1`. Pass it to
/// `reqwest::ClientBuilder::proxy` (which then no longer adds reqwest's own environment proxy).
pub fn proxy_unless_loopback() -> reqwest::Proxy {
    proxy_with(Matcher::from_env())
}

/// Whether a request to `url` would go through a proxy under [`proxy_unless_loopback`]'s rules:
/// never for loopback, else when `ALL_PROXY` / `HTTPS_PROXY` / `HTTP_PROXY` name one and
/// `NO_PROXY` does not exempt the host. The environment is read on each call (clients ask once,
/// when they are built).
pub fn proxy_applies(url: &Url) -> bool {
    proxy_applies_with(&Matcher::from_env(), url)
}

fn proxy_applies_with(matcher: &Matcher, url: &Url) -> bool {
    if is_loopback(url) {
        return false;
    }
    // A URL the matcher cannot read is given to the proxy-aware client, which decides as before.
    url.as_str()
        .parse::<::http::Uri>()
        .map_or(true, |uri| matcher.intercept(&uri).is_some())
}

fn proxy_with(matcher: Matcher) -> reqwest::Proxy {
    reqwest::Proxy::custom(move |url: &Url| {
        if is_loopback(url) {
            return None;
        }
        let uri: ::http::Uri = url.as_str().parse().ok()?;
        proxy_url(&matcher.intercept(&uri)?)
    })
}

/// The proxy URL of an intercept, with its credentials put back in the URL (reqwest reads them
/// from there).
fn proxy_url(intercept: &Intercept) -> Option<Url> {
    let mut url = Url::parse(&intercept.uri().to_string()).ok()?;
    let credentials = match (intercept.basic_auth(), intercept.raw_auth()) {
        (Some(header), _) => header
            .to_str()
            .ok()
            .and_then(|value| value.strip_prefix("Basic "))
            .and_then(|encoded| STANDARD.decode(encoded).ok())
            .and_then(|decoded| String::from_utf8(decoded).ok())
            .and_then(|pair| {
                pair.split_once(':')
                    .map(|(user, pass)| (user.to_owned(), pass.to_owned()))
            }),
        (None, Some((user, pass))) => Some((user.to_owned(), pass.to_owned())),
        (None, None) => None,
    };
    if let Some((user, pass)) = credentials {
        let encode = |text: &str| {
            percent_encoding::utf8_percent_encode(text, percent_encoding::NON_ALPHANUMERIC)
                .to_string()
        };
        url.set_username(&encode(&user)).ok()?;
        url.set_password(Some(&encode(&pass))).ok()?;
    }
    Some(url)
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use http_body_util::StreamBody;
    use hyper::body::Frame;

    /// Asserts `is_loopback` of each URL in `yes` and not of each in `no`.
    fn assert_loopback(yes: &[&str], no: &[&str]) {
        for url in yes {
            assert!(is_loopback(&Url::parse(url).unwrap()), "{url}");
        }
        for url in no {
            assert!(!is_loopback(&Url::parse(url).unwrap()), "{url}");
        }
    }

    #[test]
    fn loopback_names_and_addresses() {
        assert_loopback(
            &[
                "http://127.0.0.1:8080/",
                "https://127.9.9.9/",
                "http://[::1]:80/",
                "http://[::ffff:127.0.0.1]/",
                "http://localhost/",
                "http://LOCALHOST./",
                "http://api.localhost:7071/",
            ],
            &[
                "https://vault.azure.net/",
                "http://169.254.169.254/",
                "http://10.0.0.1/",
                "http://localhost.evil.com/",
                "http://[::2]/",
            ],
        );
    }

    #[test]
    fn only_loopback_hosts_count_as_loopback() {
        assert_loopback(
            &[
                "https://127.0.0.1:8443/",
                "https://127.1.2.3/",
                "https://[::1]:8443/",
                "https://localhost:8443/",
                "https://LOCALHOST/",
            ],
            &[
                "https://myvault.vault.azure.net/",
                "https://128.0.0.1/",
                "https://10.0.0.1/",
                "https://localhost.evil.example/",
                "https://[::2]/",
            ],
        );
    }

    /// Each of these names this machine too, for every caller (proxy bypass, plain http,
    /// challenge-resource check).
    #[test]
    fn trailing_dots_names_under_localhost_and_mapped_addresses_are_loopback() {
        assert_loopback(
            &[
                "http://localhost./",
                "https://Api.LocalHost./",
                "http://[::ffff:127.0.0.1]:8080/",
                "http://[::ffff:127.255.0.9]/",
            ],
            &[
                "http://[::ffff:10.0.0.1]/",
                "http://[::ffff:128.0.0.1]/",
                "http://localhost.evil.example./",
                "http://notlocalhost/",
                "file:///etc/hosts",
            ],
        );
    }

    fn response(body: impl Into<reqwest::Body>) -> reqwest::Response {
        reqwest::Response::from(::http::Response::new(body))
    }

    /// A response whose body arrives in `chunks` with no length known up front (as a chunked
    /// answer does), then fails if `fail_at_end`.
    fn chunked(chunks: &[&'static [u8]], fail_at_end: bool) -> reqwest::Response {
        let mut frames: Vec<Result<Frame<Bytes>, std::io::Error>> = chunks
            .iter()
            .map(|chunk| Ok(Frame::data(Bytes::from_static(chunk))))
            .collect();
        if fail_at_end {
            frames.push(Err(std::io::ErrorKind::ConnectionReset.into()));
        }
        response(reqwest::Body::wrap(StreamBody::new(futures::stream::iter(
            frames,
        ))))
    }

    #[tokio::test]
    async fn bodies_up_to_the_limit_are_read_whole() {
        let whole = read_capped(response("12345"), 5).await.unwrap();
        assert_eq!(whole, b"12345");
        let arrived = read_capped(chunked(&[b"12", b"", b"345"], false), 5).await;
        assert_eq!(arrived.unwrap(), b"12345");
        assert!(read_capped(response(""), 0).await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn a_body_over_the_limit_is_refused_by_its_length_or_as_it_arrives() {
        let announced = read_capped(response("123456"), 5).await;
        assert!(
            matches!(&announced, Err(CappedBodyError::TooLarge { head }) if head.is_empty()),
            "refused by its length before any byte is read: {announced:?}"
        );
        let arriving = read_capped(chunked(&[b"123", b"456"], true), 5).await;
        assert!(
            matches!(&arriving, Err(CappedBodyError::TooLarge { head }) if head == b"12345"),
            "refused before the end, so the failure after it is never reached"
        );
    }

    #[tokio::test]
    async fn a_body_cut_short_is_a_read_error() {
        let cut = read_capped(chunked(&[b"12"], true), 5).await;
        assert!(matches!(cut, Err(CappedBodyError::Read(_))), "{cut:?}");
    }

    #[test]
    fn a_proxy_applies_to_remote_hosts_it_names_never_to_loopback() {
        let matcher = Matcher::builder()
            .all("http://proxy.example.com:3128")
            .no("skip.example.com")
            .build();
        let applies = |url: &str| proxy_applies_with(&matcher, &Url::parse(url).unwrap());
        assert!(applies("https://myvault.vault.azure.net/"));
        assert!(!applies("https://skip.example.com/"));
        assert!(!applies("https://127.0.0.1:8443/"));
        assert!(!applies("https://localhost:8443/"));
        let none = Matcher::builder().build();
        assert!(!proxy_applies_with(
            &none,
            &Url::parse("https://myvault.vault.azure.net/").unwrap()
        ));
        let https_only = Matcher::builder()
            .https("http://proxy.example.com:3128")
            .build();
        assert!(proxy_applies_with(
            &https_only,
            &Url::parse("https://myvault.vault.azure.net/").unwrap()
        ));
        // HTTP_PROXY alone is for http URLs: an https vault is reached directly, as reqwest does.
        let http_only = Matcher::builder()
            .http("http://proxy.example.com:3128")
            .build();
        assert!(!proxy_applies_with(
            &http_only,
            &Url::parse("https://myvault.vault.azure.net/").unwrap()
        ));
    }

    #[test]
    fn other_hosts_keep_the_environment_proxy_with_its_credentials() {
        let matcher = Matcher::builder()
            .all("http://user:p%40ss@proxy.example.com:3128")
            .no("skip.example.com")
            .build();
        let intercepted = |dst: &str| {
            matcher
                .intercept(&dst.parse::<::http::Uri>().unwrap())
                .and_then(|i| proxy_url(&i))
        };
        let url = intercepted("https://vault.azure.net/").unwrap();
        assert_eq!(url.host_str(), Some("proxy.example.com"));
        assert_eq!(url.port(), Some(3128));
        assert_eq!(url.username(), "user");
        assert_eq!(url.password(), Some("p%40ss"));
        assert!(intercepted("https://skip.example.com/").is_none());
    }
}
