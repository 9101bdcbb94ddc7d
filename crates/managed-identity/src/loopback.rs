//! Whether a URL's host is this machine: the one loopback rule of the repository. The identity
//! endpoints are expected there (or on the link-local IMDS address), and the app's clients that
//! carry tokens never send loopback traffic through a proxy.

use std::net::Ipv6Addr;

use url::{Host, Url};

/// Whether `url` names this machine: `127.0.0.0/8`, `::1`, an IPv4-mapped `::ffff:127.x.y.z`, or
/// `localhost` and names under it (RFC 6761 §6.3), in any case, with or without a trailing dot.
pub fn is_loopback(url: &Url) -> bool {
    url.host().is_some_and(|host| is_loopback_host(&host))
}

/// [`is_loopback`] for a host already taken out of a URL.
pub fn is_loopback_host(host: &Host<&str>) -> bool {
    match host {
        Host::Ipv4(ip) => ip.is_loopback(),
        Host::Ipv6(ip) => {
            ip.is_loopback() || ip.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback())
        }
        Host::Domain(name) => {
            let name = name.trim_end_matches('.').to_ascii_lowercase();
            name == "localhost" || name.ends_with(".localhost")
        }
    }
}

/// Whether `host` is loopback or link-local (`169.254.0.0/16`, `fe80::/10`): where a platform's
/// identity endpoint lives.
pub(crate) fn is_local_host(host: &Host<&str>) -> bool {
    is_loopback_host(host)
        || match host {
            Host::Ipv4(ip) => ip.is_link_local(),
            Host::Ipv6(ip) => is_link_local_v6(ip),
            Host::Domain(_) => false,
        }
}

fn is_link_local_v6(ip: &Ipv6Addr) -> bool {
    (ip.segments()[0] & 0xffc0) == 0xfe80
}

#[cfg(test)]
mod tests {
    use super::*;

    fn host(url: &str) -> bool {
        is_loopback(&Url::parse(url).expect("a URL"))
    }

    #[test]
    fn loopback_names_and_addresses() {
        for url in [
            "http://127.0.0.1:8081/",
            "http://127.5.6.7/",
            "http://[::1]/",
            "http://[::ffff:127.0.0.1]/",
            "http://localhost/",
            "http://LOCALHOST./",
            "http://api.localhost/",
        ] {
            assert!(host(url), "{url} is loopback");
        }
        for url in [
            "http://169.254.169.254/",
            "http://10.0.0.1/",
            "http://[fe80::1]/",
            "http://localhost.example.com/",
            "http://notlocalhost/",
        ] {
            assert!(!host(url), "{url} is not loopback");
        }
    }

    #[test]
    fn link_local_counts_as_local_for_identity_endpoints() {
        let local = |url: &str| {
            let url = Url::parse(url).expect("a URL");
            is_local_host(&url.host().expect("a host"))
        };
        assert!(local("http://169.254.169.254/metadata"));
        assert!(local("http://[fe80::1]/"));
        assert!(local("http://localhost:8081/msi/token"));
        assert!(!local("http://10.0.0.1/"));
        assert!(!local("https://example.com/"));
    }
}
