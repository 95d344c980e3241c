//! Who a `nat` sandbox may talk to, and the host rules that enforce it.
//!
//! A nat sandbox reaches the outside world (masqueraded) and answers connections the host
//! opens to it (published ports, the host itself). It cannot open connections to the host
//! (the gateway address, any of the host's other addresses, their broadcast and multicast
//! addresses, services the host forwards from its own addresses with DNAT), nor to other
//! sandboxes, except those of its own account when that account allows it
//! ([`PortPolicy::Group`]). Other accounts' sandboxes are never reachable.
//!
//! How, for bridge `B` and subnet `S` with gateway `G`:
//! - **Between sandboxes** (layer 2, so the IPv4 `forward` hook does not see it unless
//!   `br_netfilter` is loaded): every sandbox's bridge port is *isolated* (the kernel
//!   forwards no frame, of any protocol, between two isolated ports). The ports of an
//!   account that allows sandbox-to-sandbox traffic are not isolated but carry the
//!   account's interface group ([`PeerGroup`]), and the `bridge B` table forwards a frame
//!   from or to a grouped port only between ports of the same group.
//! - **Routed back into the bridge** (a packet sent to the gateway's MAC for another
//!   sandbox's address): the `bridge B` table's `output` chain drops frames the host sends
//!   onto the bridge with a source address in `S` other than `G`; only forwarded sandbox
//!   traffic has one.
//! - **To the host** (IPv4): the `ip B` table's `prerouting` chain refuses new connections
//!   from the bridge to any local address before DNAT can rewrite them (ICMP
//!   admin-prohibited, so a client fails at once instead of waiting), and its `input`
//!   chain drops whatever else new arrives from the bridge (broadcast, multicast), except
//!   what the operator's own DNAT/REDIRECT sent to the host on purpose.
//! - **IPv6** (link-local addresses exist without any configuration): the bridge has IPv6
//!   disabled, so the host takes no IPv6 packet from sandboxes; isolation covers IPv6
//!   between sandboxes like every other protocol.
//! - **ARP**: a sandbox resolves the gateway only (isolated ports see no other sandbox's
//!   ARP); it cannot forge ARP or IP packets (no `CAP_NET_RAW`, no `CAP_NET_ADMIN`).
//!
//! Nothing here is keyed by address: a new sandbox that gets a destroyed one's address
//! gets a new port, isolated until its own account's policy is applied.

use std::collections::BTreeSet;
use std::fmt;

use crate::Subnet;

/// Where interface group numbers of peer groups start: far from the small numbers other
/// tools give interfaces (`0` is every interface's default group).
const GROUP_BASE: u32 = 0x4341_0000;

/// The interface group the bridge ports of one account's sandboxes carry while that
/// account allows its sandboxes to reach each other. Made from a database id that is
/// never reused, so a number never passes from one account to another.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PeerGroup(u32);

impl PeerGroup {
    /// The group of database id `id` (1, 2, …); `None` when it is out of range.
    pub fn from_id(id: i64) -> Option<PeerGroup> {
        let id = u32::try_from(id).ok().filter(|&i| i >= 1)?;
        GROUP_BASE.checked_add(id).map(PeerGroup)
    }

    /// The interface group number.
    pub fn number(self) -> u32 {
        self.0
    }
}

impl fmt::Display for PeerGroup {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// What a sandbox's bridge port may exchange frames with besides the host.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PortPolicy {
    /// No other sandbox (the default; also every new port until its policy is applied).
    Isolated,
    /// The sandboxes whose ports carry the same group (one account's).
    Group(PeerGroup),
}

/// The `ip -batch` lines that give port `veth` `policy`. The order keeps every step safe:
/// a port is grouped before it stops being isolated, and isolated before it loses its group.
pub(crate) fn port_policy_batch(veth: &str, policy: PortPolicy) -> String {
    match policy {
        PortPolicy::Isolated => format!(
            "link set dev {veth} type bridge_slave isolated on\nlink set dev {veth} group 0\n"
        ),
        PortPolicy::Group(g) => format!(
            "link set dev {veth} group {g}\nlink set dev {veth} type bridge_slave isolated off\n"
        ),
    }
}

/// The nftables file that (re)writes both tables of bridge `bridge` at once: `ip <bridge>`
/// (masquerade, forward, and no new connections to the host) and `bridge <bridge>`
/// (peer groups, nothing routed back into the bridge).
pub(crate) fn host_rules(bridge: &str, subnet: Subnet, groups: &BTreeSet<PeerGroup>) -> String {
    let b = bridge;
    let gw = subnet.gateway();
    let (group_elements, peer_elements) = if groups.is_empty() {
        (String::new(), String::new())
    } else {
        let list =
            |f: &dyn Fn(&PeerGroup) -> String| groups.iter().map(f).collect::<Vec<_>>().join(", ");
        (
            format!(" elements = {{ {} }};", list(&|g| g.to_string())),
            format!(" elements = {{ {} }};", list(&|g| format!("{g} . {g}"))),
        )
    };
    // Declaring each table first makes the delete succeed when it does not exist yet; the
    // whole file is one transaction.
    format!(
        "table ip {b} {{}}
delete table ip {b}
table bridge {b} {{}}
delete table bridge {b}
table ip {b} {{
    chain prerouting {{
        type filter hook prerouting priority dstnat - 10; policy accept;
        iifname \"{b}\" ct state established,related accept
        iifname \"{b}\" fib daddr type local reject with icmp type admin-prohibited
    }}
    chain input {{
        type filter hook input priority filter; policy accept;
        iifname \"{b}\" ct state established,related accept
        iifname \"{b}\" ct status dnat accept
        iifname \"{b}\" drop
    }}
    chain forward {{
        type filter hook forward priority filter; policy accept;
        iifname \"{b}\" accept
        oifname \"{b}\" ct state established,related accept
        oifname \"{b}\" drop
    }}
    chain postrouting {{
        type nat hook postrouting priority srcnat; policy accept;
        ip saddr {subnet} oifname != \"{b}\" masquerade
    }}
}}
table bridge {b} {{
    set groups {{ typeof meta iifgroup;{group_elements} }}
    set peers {{ typeof meta iifgroup . meta oifgroup;{peer_elements} }}
    chain forward {{
        type filter hook forward priority filter; policy accept;
        meta iifgroup . meta oifgroup @peers accept
        meta iifgroup @groups drop
        meta oifgroup @groups drop
    }}
    chain output {{
        type filter hook output priority filter; policy accept;
        ether type ip ip saddr {subnet} ip saddr != {gw} drop
    }}
}}
"
    )
}

/// The nftables commands that add (`add`) or delete (`delete`) group `g` in bridge
/// `bridge`'s sets.
pub(crate) fn group_elements(verb: &str, bridge: &str, g: PeerGroup) -> String {
    format!(
        "{verb} element bridge {bridge} groups {{ {g} }}\n{verb} element bridge {bridge} peers {{ {g} . {g} }}\n"
    )
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn groups_come_from_ids_and_stay_in_range() {
        assert_eq!(PeerGroup::from_id(1).unwrap().number(), 0x4341_0001);
        assert_eq!(PeerGroup::from_id(0), None);
        assert_eq!(PeerGroup::from_id(-3), None);
        assert_eq!(PeerGroup::from_id(i64::from(u32::MAX)), None);
        assert_ne!(PeerGroup::from_id(1), PeerGroup::from_id(2));
    }

    #[test]
    fn ports_are_grouped_before_they_leave_isolation_and_isolated_before_they_lose_it() {
        let g = PeerGroup::from_id(7).unwrap();
        let on = port_policy_batch("cv1", PortPolicy::Group(g));
        assert!(on.find("group 1128333319").unwrap() < on.find("isolated off").unwrap());
        let off = port_policy_batch("cv1", PortPolicy::Isolated);
        assert!(off.find("isolated on").unwrap() < off.find("group 0").unwrap());
    }

    #[test]
    fn rules_block_the_host_and_routed_sandbox_traffic_and_list_the_groups() {
        let subnet: Subnet = "10.88.0.0/16".parse().unwrap();
        let none = host_rules("cairn0", subnet, &BTreeSet::new());
        assert!(!none.contains("elements"), "{none}");
        assert!(none.contains(
            "iifname \"cairn0\" fib daddr type local reject with icmp type admin-prohibited"
        ));
        assert!(none.contains("ip saddr 10.88.0.0/16 ip saddr != 10.88.0.1 drop"));
        assert!(none.contains("delete table bridge cairn0"));
        let groups: BTreeSet<_> = [1, 2].map(|i| PeerGroup::from_id(i).unwrap()).into();
        let two = host_rules("cairn0", subnet, &groups);
        assert!(
            two.contains("elements = { 1128333313, 1128333314 };"),
            "{two}"
        );
        assert!(
            two.contains("elements = { 1128333313 . 1128333313, 1128333314 . 1128333314 };"),
            "{two}"
        );
    }
}
