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

/// The netmask of a prefix length (0 to 32).
fn mask_of(prefix: u8) -> u32 {
    u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0)
}

impl Subnet {
    /// Prefix length.
    pub fn prefix(&self) -> u8 {
        self.prefix
    }

    fn mask(&self) -> u32 {
        mask_of(self.prefix)
    }

    /// The bridge's address: the first host address.
    pub fn gateway(&self) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.network) + 1)
    }

    /// Whether `addr` lies in the subnet.
    pub fn contains(&self, addr: Ipv4Addr) -> bool {
        u32::from(addr) & self.mask() == u32::from(self.network)
    }

    /// Whether the two networks share an address.
    pub fn overlaps(&self, other: &Subnet) -> bool {
        let mask = mask_of(self.prefix.min(other.prefix));
        u32::from(self.network) & mask == u32::from(other.network) & mask
    }

    /// A route destination as `ip -j route` prints it (`10.0.0.0/8`, or `192.0.2.7`
    /// for a single address), host bits allowed; `None` for `default` and the like.
    pub fn from_route(dst: &str) -> Option<Subnet> {
        let (addr, prefix) = match dst.split_once('/') {
            Some((a, p)) => (a.parse::<Ipv4Addr>().ok()?, p.parse::<u8>().ok()?),
            None => (dst.parse::<Ipv4Addr>().ok()?, 32),
        };
        if prefix > 32 {
            return None;
        }
        Some(Subnet {
            network: Ipv4Addr::from(u32::from(addr) & mask_of(prefix)),
            prefix,
        })
    }

    /// The first network of the same size in 10.0.0.0/8 after this one that overlaps
    /// none of `taken`, to suggest when this one does.
    pub fn free_alternative(&self, taken: &[Subnet]) -> Option<Subnet> {
        let size = 1u64 << (32 - u32::from(self.prefix));
        let (lo, span) = (0x0a00_0000u64, 1u64 << 24);
        let n = u64::from(u32::from(self.network));
        // Offsets in 10.0.0.0/8, wrapping around, after this network's (from the start of
        // 10.0.0.0/8 when this network lies elsewhere).
        let first = if (lo..lo + span).contains(&n) {
            n - lo + size
        } else {
            0
        };
        (0..span / size)
            .map(|i| lo + (first + i * size) % span)
            .filter_map(|n| u32::try_from(n).ok())
            .map(|n| Subnet {
                network: Ipv4Addr::from(n),
                prefix: self.prefix,
            })
            .find(|c| !taken.iter().any(|t| t.overlaps(c)))
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
    fn overlaps_and_route_destinations() {
        let s: Subnet = "10.88.0.0/16".parse().unwrap();
        let r = |d: &str| Subnet::from_route(d).unwrap();
        assert!(s.overlaps(&r("10.88.7.0/24")));
        assert!(s.overlaps(&r("10.0.0.0/8")));
        assert!(s.overlaps(&r("10.88.255.255")));
        assert!(!s.overlaps(&r("10.89.0.0/24")));
        assert!(!s.overlaps(&r("192.0.2.0/24")));
        assert!(r("0.0.0.0/0").overlaps(&s));
        assert_eq!(r("10.88.7.9/24").to_string(), "10.88.7.0/24");
        assert_eq!(Subnet::from_route("default"), None);
        assert_eq!(Subnet::from_route("fe80::/64"), None);
        let taken = [r("10.88.0.0/24"), r("10.89.0.0/16")];
        assert_eq!(
            s.free_alternative(&taken).unwrap().to_string(),
            "10.90.0.0/16"
        );
        let outside: Subnet = "192.168.0.0/16".parse().unwrap();
        assert_eq!(
            outside.free_alternative(&[outside]).unwrap().to_string(),
            "10.0.0.0/16"
        );
        assert_eq!(s.free_alternative(&[r("10.0.0.0/8")]), None);
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
