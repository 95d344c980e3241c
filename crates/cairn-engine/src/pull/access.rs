//! Where a tenant's pull may make cairnd connect: HTTPS by default, plain HTTP only to the
//! registries the operator lists (`cairnd --insecure-registry HOST[:PORT]`), and public
//! addresses only, unless the host is one the operator listed or the operator allows
//! private ones (`cairnd --registry-allow-private`).
//!
//! Every connection of a pull goes through [`Access`]: the registry, its token realm and
//! every redirect (a blob is often served by a CDN). Host names are checked where they are
//! resolved (the client's resolver), so a name that resolves to a private address is
//! refused as well as a literal one. Not for: the registry protocol (`client`).

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use reqwest::Url;

/// What the operator allows pulls to reach.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RegistryAccess {
    /// Registries (`host[:port]`) reached over plain HTTP; they may be on private addresses.
    pub insecure: Vec<String>,
    /// Whether pulls may reach loopback, private and link-local addresses over HTTPS.
    pub allow_private: bool,
}

impl RegistryAccess {
    /// Whether `host_port` (`host[:port]` as a reference writes it) is reached over HTTP.
    pub(crate) fn is_insecure(&self, host_port: &str) -> bool {
        self.insecure.iter().any(|h| h == host_port)
    }

    /// Whether connections to `host` (a name or address, without port) skip the address
    /// check: the operator listed it, or allows private addresses.
    fn trusted_host(&self, host: &str) -> bool {
        self.allow_private
            || self
                .insecure
                .iter()
                .any(|h| h.split(':').next() == Some(host))
    }

    /// Checks a URL a pull is about to fetch (the registry's, a token realm, a redirect's
    /// target): its scheme and, for a literal address, the address.
    pub(crate) fn check_url(&self, url: &Url) -> Result<(), String> {
        let host = url.host_str().unwrap_or_default().to_string();
        let host_port = match url.port() {
            Some(p) => format!("{host}:{p}"),
            None => host.clone(),
        };
        match url.scheme() {
            "https" => {}
            "http" if self.is_insecure(&host_port) => {}
            "http" => {
                return Err(format!(
                    "{host_port} is served over plain HTTP, which cairnd refuses unless the operator lists it (cairnd --insecure-registry {host_port})"
                ))
            }
            other => return Err(format!("'{other}' URLs are not fetched")),
        }
        let literal = host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<IpAddr>();
        if let Ok(ip) = literal {
            if !self.trusted_host(&host) && !is_public(ip) {
                return Err(private_refusal(&host_port));
            }
        }
        Ok(())
    }

    /// A resolver that drops private addresses of hosts that are not trusted.
    pub(crate) fn resolver(&self) -> Arc<dyn Resolve> {
        Arc::new(Filtering(self.clone()))
    }
}

/// The message for a host on a private address.
pub(crate) fn private_refusal(host: &str) -> String {
    format!(
        "{host} is on a loopback, private or link-local address, which tenants' pulls may not reach: the operator allows it with cairnd --insecure-registry {host} (HTTP) or --registry-allow-private (HTTPS)"
    )
}

/// Whether `ip` is an address on the public internet (not loopback, private, link-local,
/// shared, documentation, multicast or unspecified).
pub(crate) fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, ..] = v4.octets();
            !(v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_broadcast()
                || v4.is_multicast()
                || v4.is_documentation()
                || a == 0
                || (a == 100 && (64..128).contains(&b))
                || (a == 198 && (b == 18 || b == 19))
                || a >= 240)
        }
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_public(IpAddr::V4(v4));
            }
            let first = v6.segments()[0];
            !(v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (first & 0xfe00) == 0xfc00
                || (first & 0xffc0) == 0xfe80)
        }
    }
}

struct Filtering(RegistryAccess);

impl Resolve for Filtering {
    fn resolve(&self, name: Name) -> Resolving {
        let host = name.as_str().to_string();
        let trusted = self.0.trusted_host(&host);
        Box::pin(async move {
            let found: Vec<SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let allowed: Vec<SocketAddr> = found
                .iter()
                .copied()
                .filter(|a| trusted || is_public(a.ip()))
                .collect();
            if allowed.is_empty() && !found.is_empty() {
                return Err(private_refusal(&host).into());
            }
            Ok(Box::new(allowed.into_iter()) as Addrs)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn private_addresses_are_not_public() {
        for ip in [
            "127.0.0.1",
            "10.1.2.3",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "::1",
            "fd00::1",
            "fe80::1",
            "::ffff:127.0.0.1",
            "0.0.0.0",
        ] {
            assert!(!is_public(ip.parse().unwrap()), "{ip}");
        }
        for ip in ["1.1.1.1", "2606:4700::1111"] {
            assert!(is_public(ip.parse().unwrap()), "{ip}");
        }
    }

    #[test]
    fn http_and_private_hosts_need_the_operator() {
        let none = RegistryAccess::default();
        let url = |s: &str| Url::parse(s).unwrap();
        assert!(none.check_url(&url("http://reg.example.com/v2/")).is_err());
        assert!(none.check_url(&url("https://127.0.0.1:5000/v2/")).is_err());
        assert!(none.check_url(&url("https://reg.example.com/v2/")).is_ok());
        let listed = RegistryAccess {
            insecure: vec!["127.0.0.1:5000".into()],
            allow_private: false,
        };
        assert!(listed.check_url(&url("http://127.0.0.1:5000/v2/")).is_ok());
        assert!(listed.check_url(&url("http://127.0.0.1:5001/v2/")).is_err());
        assert!(listed.check_url(&url("https://10.0.0.1/v2/")).is_err());
    }
}
