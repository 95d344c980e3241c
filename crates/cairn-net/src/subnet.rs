//! The IPv4 subnet sandboxes get their addresses from.

use std::fmt;
use std::net::Ipv4Addr;
use std::str::FromStr;

use crate::NetError;

/// An IPv4 subnet such as `10.88.0.0/16`: the bridge takes the first
/// address (the gateway), sandboxes the following ones up to the last
/// before broadcast.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Subnet {
    network: Ipv4Addr,
    prefix: u8,
}

impl Default for Subnet {
    /// `10.88.0.0/16`.
    fn default() -> Self {
        Subnet {
            network: Ipv4Addr::new(10, 88, 0, 0),
            prefix: 16,
        }
    }
}

impl Subnet {
    /// Prefix length.
    pub fn prefix(&self) -> u8 {
        self.prefix
    }

    fn mask(&self) -> u32 {
        u32::MAX << (32 - u32::from(self.prefix))
    }

    /// The bridge's address: the first host address.
    pub fn gateway(&self) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.network) + 1)
    }

    /// Whether `addr` lies in the subnet.
    pub fn contains(&self, addr: Ipv4Addr) -> bool {
        u32::from(addr) & self.mask() == u32::from(self.network)
    }

    /// Addresses sandboxes may get, lowest first (gateway, network and broadcast excluded).
    pub fn sandbox_addresses(&self) -> impl Iterator<Item = Ipv4Addr> {
        let first = u32::from(self.network) + 2;
        let broadcast = u32::from(self.network) | !self.mask();
        (first..broadcast).map(Ipv4Addr::from)
    }
}

impl FromStr for Subnet {
    type Err = NetError;
    fn from_str(s: &str) -> Result<Self, NetError> {
        let bad = |why: &str| {
            NetError::Invalid(format!(
                "invalid subnet '{s}': {why}; give an IPv4 network in CIDR form such as 10.88.0.0/16"
            ))
        };
        let (addr, prefix) = s.split_once('/').ok_or_else(|| bad("no /PREFIX"))?;
        let addr: Ipv4Addr = addr.parse().map_err(|_| bad("not an IPv4 address"))?;
        let prefix: u8 = prefix.parse().map_err(|_| bad("bad prefix length"))?;
        if !(8..=30).contains(&prefix) {
            return Err(bad("the prefix length must be between 8 and 30"));
        }
        let subnet = Subnet {
            network: addr,
            prefix,
        };
        let network = Ipv4Addr::from(u32::from(addr) & subnet.mask());
        if network != addr {
            return Err(bad(&format!(
                "host bits are set (the network is {network}/{prefix})"
            )));
        }
        if addr.is_loopback() || addr.is_multicast() || addr.is_unspecified() {
            return Err(bad("not a unicast network"));
        }
        Ok(subnet)
    }
}

impl fmt::Display for Subnet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.network, self.prefix)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn gateway_is_first_and_sandboxes_follow() {
        let s: Subnet = "10.88.0.0/16".parse().unwrap();
        assert_eq!(s.gateway(), Ipv4Addr::new(10, 88, 0, 1));
        assert_eq!(
            s.sandbox_addresses().next(),
            Some(Ipv4Addr::new(10, 88, 0, 2))
        );
        let small: Subnet = "192.168.7.0/30".parse().unwrap();
        assert_eq!(
            small.sandbox_addresses().collect::<Vec<_>>(),
            vec![Ipv4Addr::new(192, 168, 7, 2)]
        );
        assert!(s.contains(Ipv4Addr::new(10, 88, 255, 254)));
        assert!(!s.contains(Ipv4Addr::new(10, 89, 0, 1)));
        assert_eq!(s.to_string(), "10.88.0.0/16");
    }

    #[test]
    fn bad_subnets_are_refused_with_the_reason() {
        for (s, why) in [
            ("10.88.0.0", "no /PREFIX"),
            ("10.88.0.1/16", "host bits"),
            ("10.88.0.0/33", "between 8 and 30"),
            ("10.88.0.0/31", "between 8 and 30"),
            ("banana/16", "not an IPv4"),
            ("127.0.0.0/8", "unicast"),
        ] {
            let e = s.parse::<Subnet>().unwrap_err().to_string();
            assert!(e.contains(why), "{s}: {e}");
        }
    }
}
