//! `/etc/resolv.conf` for `nat` sandboxes: the host's, without the
//! nameservers a sandbox cannot reach (loopback ones such as systemd-resolved's
//! 127.0.0.53, which would be the sandbox's own loopback).

use std::net::IpAddr;

/// The resolver configuration a `nat` sandbox gets from the host's `host_text`,
/// or `None` when the host has no nameserver a sandbox can reach (the image's
/// own file is then left alone).
pub fn sandbox_resolv_conf(host_text: &str) -> Option<String> {
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
                    .is_some_and(|ip| !ip.is_loopback() && !ip.is_unspecified());
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
    fn loopback_nameservers_are_dropped() {
        let host = "# generated\nnameserver 127.0.0.53\nnameserver 10.255.255.53\nnameserver ::1\nsearch example.org\noptions edns0\n";
        let got = sandbox_resolv_conf(host).unwrap();
        assert!(got.contains("nameserver 10.255.255.53\n"), "{got}");
        assert!(!got.contains("127.0.0.53") && !got.contains("::1"), "{got}");
        assert!(got.contains("search example.org\n") && got.contains("options edns0\n"));
        assert_eq!(sandbox_resolv_conf("nameserver 127.0.0.53\n"), None);
        assert_eq!(sandbox_resolv_conf(""), None);
    }
}
