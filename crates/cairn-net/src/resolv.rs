//! `/etc/resolv.conf` for `nat` sandboxes: the host's, without the
//! nameservers a sandbox cannot reach: loopback ones (such as systemd-resolved's
//! 127.0.0.53, which would be the sandbox's own loopback), the host's own
//! addresses (sandboxes may not open connections to the host, DNS included),
//! and IPv6 ones (the bridge carries IPv4 only).

use std::net::IpAddr;

/// The resolver configuration a `nat` sandbox gets from the host's `host_text`,
/// or `None` when the host has no nameserver a sandbox can reach (the image's
/// own file is then left alone). `host_addresses` are the host's own addresses.
pub fn sandbox_resolv_conf(host_text: &str, host_addresses: &[IpAddr]) -> Option<String> {
    let mut out = String::from("# written by cairnd from the host's /etc/resolv.conf\n");
    let mut servers = 0;
    for line in host_text.lines() {
        let mut words = line.split_whitespace();
        match words.next() {
            Some("nameserver") => {
                let reachable = words
                    .next()
                    .and_then(|a| a.split('%').next())
                    .and_then(|a| a.parse::<IpAddr>().ok())
                    .is_some_and(|ip| {
                        ip.is_ipv4()
                            && !ip.is_loopback()
                            && !ip.is_unspecified()
                            && !host_addresses.contains(&ip)
                    });
                if reachable {
                    servers += 1;
                    out.push_str(line.trim());
                    out.push('\n');
                }
            }
            Some("search") | Some("domain") | Some("options") => {
                out.push_str(line.trim());
                out.push('\n');
            }
            _ => {}
        }
    }
    (servers > 0).then_some(out)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn unreachable_nameservers_are_dropped() {
        let host = "# generated\nnameserver 127.0.0.53\nnameserver 10.255.255.53\nnameserver ::1\nnameserver 2001:db8::53\nnameserver 192.0.2.2\nsearch example.org\noptions edns0\n";
        let own: Vec<IpAddr> = vec!["192.0.2.2".parse().unwrap(), "10.88.0.1".parse().unwrap()];
        let got = sandbox_resolv_conf(host, &own).unwrap();
        assert!(got.contains("nameserver 10.255.255.53\n"), "{got}");
        for gone in ["127.0.0.53", "::1", "2001:db8::53", "192.0.2.2"] {
            assert!(!got.contains(gone), "{gone} in {got}");
        }
        assert!(got.contains("search example.org\n") && got.contains("options edns0\n"));
        assert_eq!(sandbox_resolv_conf("nameserver 127.0.0.53\n", &[]), None);
        assert_eq!(sandbox_resolv_conf("nameserver 10.88.0.1\n", &own), None);
        assert_eq!(sandbox_resolv_conf("", &[]), None);
    }
}
