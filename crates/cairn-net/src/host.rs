//! The host side of `nat` networking: the bridge, its two nftables tables and
//! each sandbox's namespace and veth pair, all through `ip`, `nft` and
//! `unshare` (via `cairn-cmd`); state is read from `/sys` and `/proc`.
//!
//! Layout for a sandbox `sbx-7f3a9c2e` on bridge `cairn0`:
//! - namespace: `<netns_dir>/sbx-7f3a9c2e`, an nsfs bind mount made by
//!   `unshare --net=FILE` (kept per data directory, not in `/run/netns`,
//!   so that start-up recovery only ever touches its own);
//! - veth pair: `cv7f3a9c2e` on the host, an isolated port of `cairn0` (grouped
//!   instead when its account lets its sandboxes reach each other); `eth0` in
//!   the namespace with the sandbox's address, default route via the
//!   bridge's address, `lo` up;
//! - nftables: tables `ip cairn0` (masquerade what leaves the subnet through
//!   another interface; forward only what sandboxes start; no new connections
//!   from sandboxes to the host) and `bridge cairn0` (peer groups; nothing routed
//!   back into the bridge), written from [`crate::isolation`]. The bridge has IPv6
//!   disabled.
//!
//! Nothing in nftables is per sandbox (only per account that allows
//! sandbox-to-sandbox traffic), so destroying a sandbox only removes its veth
//! and namespace; the bridge and tables go with the last `nat` sandbox
//! ([`Network::remove_host_if`]).

use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use cairn_cmd::Cmd;

use crate::isolation::{self, PeerGroup, PortPolicy};
use crate::{NetError, Subnet};

/// nsfs's magic number (`statfs.f_type` of a namespace file).
const NSFS_MAGIC: u64 = 0x6e73_6673;

/// How `nat` networking is set up on this host.
#[derive(Clone, Debug)]
pub struct NetConfig {
    /// Bridge name (also the nftables table's name), at most 15 characters.
    pub bridge: String,
    /// Where sandbox addresses come from; the bridge takes the first address.
    pub subnet: Subnet,
    /// Directory holding the namespace files.
    pub netns_dir: PathBuf,
}

impl NetConfig {
    /// Checks the bridge name: it must be a valid interface and nftables name.
    pub fn validate(&self) -> Result<(), NetError> {
        let b = &self.bridge;
        let ok = !b.is_empty()
            && b.len() <= 15
            && b.as_bytes()[0].is_ascii_lowercase()
            && b.bytes()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'_');
        if !ok {
            return Err(NetError::Invalid(format!(
                "invalid bridge name '{b}': use up to 15 lowercase letters, digits or '_', starting with a letter (e.g. cairn0)"
            )));
        }
        Ok(())
    }
}

/// Sets up and tears down `nat` networking on this host.
#[derive(Debug)]
pub struct Network {
    cfg: NetConfig,
    /// Serializes bridge/table creation and removal, and changes to the peer groups.
    host: tokio::sync::Mutex<HostState>,
}

#[derive(Debug, Default)]
struct HostState {
    /// The bridge and tables are set up.
    ready: bool,
    /// The peer groups the `bridge` table lists (kept while the bridge is gone, for the
    /// next time it is set up).
    groups: BTreeSet<PeerGroup>,
}

fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> NetError {
    let what = what.into();
    move |source| NetError::Io { what, source }
}

fn link_exists(name: &str) -> bool {
    Path::new("/sys/class/net").join(name).exists()
}

fn ip() -> Cmd {
    Cmd::new("ip")
        .install_hint("install iproute2: apt-get install iproute2")
        .timeout(Duration::from_secs(20))
}

impl Network {
    /// A manager for `cfg` (checked); nothing is touched until a sandbox needs it.
    pub fn new(cfg: NetConfig) -> Result<Network, NetError> {
        cfg.validate()?;
        Ok(Network {
            cfg,
            host: tokio::sync::Mutex::new(HostState::default()),
        })
    }

    /// The configuration.
    pub fn config(&self) -> &NetConfig {
        &self.cfg
    }

    /// The namespace file of sandbox `id`.
    pub fn netns_path(&self, id: &str) -> PathBuf {
        self.cfg.netns_dir.join(id)
    }

    /// The host end of sandbox `id`'s veth pair (`cv` + the id's hex digits).
    pub fn veth_name(id: &str) -> String {
        let hex = id.strip_prefix("sbx-").unwrap_or(id);
        format!("cv{}", &hex[..hex.len().min(13)])
    }

    /// Creates the bridge (with the gateway address and IPv6 disabled), enables IPv4
    /// forwarding and (re)writes the nftables tables, with the peer groups known now.
    /// Idempotent; writes the tables again when something removed them (a firewall
    /// reload's `flush ruleset`).
    pub async fn ensure_host(&self) -> Result<(), NetError> {
        let mut host = self.host.lock().await;
        let b = &self.cfg.bridge;
        if host.ready && link_exists(b) && self.tables_exist().await? {
            return Ok(());
        }
        let subnet = self.cfg.subnet;
        self.check_subnet_is_free().await?;
        if !link_exists(b) {
            ip().args(["link", "add", b, "type", "bridge"])
                .run()
                .await?;
        }
        // Before the bridge is up, so that it never has a link-local address sandboxes
        // could reach the host on; IPv6 packets arriving on it are dropped.
        write_sysctl_if_present(&format!("/proc/sys/net/ipv6/conf/{b}/disable_ipv6"), "1")?;
        let batch = format!(
            "addr replace {}/{} dev {b}\nlink set {b} up\n",
            subnet.gateway(),
            subnet.prefix()
        );
        ip().args(["-batch", "-"])
            .stdin(batch.into_bytes())
            .run()
            .await?;
        std::fs::write("/proc/sys/net/ipv4/ip_forward", "1").map_err(io(
            "cannot enable IPv4 forwarding (/proc/sys/net/ipv4/ip_forward)",
        ))?;
        nft(isolation::host_rules(b, subnet, &host.groups)).await?;
        tracing::info!(bridge = %b, subnet = %subnet, peer_groups = host.groups.len(), "nat networking set up on the host");
        host.ready = true;
        Ok(())
    }

    /// Whether both nftables tables of the bridge exist.
    async fn tables_exist(&self) -> Result<bool, NetError> {
        let out = nft_cmd().args(["list", "tables"]).run().await?;
        let text = out.stdout_str();
        let b = &self.cfg.bridge;
        let has = |family: &str| {
            text.lines()
                .any(|l| l.trim() == format!("table {family} {b}"))
        };
        Ok(has("ip") && has("bridge"))
    }

    /// Refuses a subnet that overlaps a network the host already routes elsewhere (a LAN,
    /// a VPN, another bridge): sandboxes there could not reach it, or it could not
    /// reach them. Routes through our own bridge are ours.
    async fn check_subnet_is_free(&self) -> Result<(), NetError> {
        let out = ip()
            .args(["-j", "-4", "route", "show", "table", "all"])
            .run()
            .await?;
        let routes: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
        let routes: Vec<(Subnet, String, String)> = routes
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|r| {
                let dst = r["dst"].as_str()?;
                let dev = r["dev"].as_str().unwrap_or("?");
                // Broadcast and multicast entries repeat an interface's own network.
                let kind = r["type"].as_str().unwrap_or("unicast");
                if dev == self.cfg.bridge || !matches!(kind, "unicast" | "local") {
                    return None;
                }
                let net = Subnet::from_route(dst).filter(|n| n.prefix() > 0)?;
                Some((net, dst.to_string(), dev.to_string()))
            })
            .collect();
        let subnet = self.cfg.subnet;
        let Some((_, dst, dev)) = routes.iter().find(|(net, ..)| net.overlaps(&subnet)) else {
            return Ok(());
        };
        let taken: Vec<Subnet> = routes.iter().map(|(net, ..)| *net).collect();
        let instead = subnet
            .free_alternative(&taken)
            .map(|s| format!(" (for example --subnet {s}, which is free)"))
            .unwrap_or_default();
        Err(NetError::SubnetInUse(format!(
            "the sandbox subnet {subnet} overlaps {dst}, which this host already reaches through {dev}: sandboxes would cut the host off from it; restart cairnd with --subnet set to a free range{instead}"
        )))
    }

    /// Removes the bridge and the nftables tables when `unused` says so (awaited while no
    /// sandbox can be setting up, so a concurrent create either is seen by it or
    /// sets the bridge up again afterwards). IPv4 forwarding is left as it is:
    /// something else may rely on it. The peer groups are kept for the next set-up.
    /// Returns whether they were removed.
    pub async fn remove_host_if(
        &self,
        unused: impl std::future::Future<Output = bool>,
    ) -> Result<bool, NetError> {
        let mut host = self.host.lock().await;
        if !unused.await {
            return Ok(false);
        }
        let b = &self.cfg.bridge;
        if link_exists(b) {
            ip().args(["link", "del", b]).run().await?;
        }
        let mut removed = false;
        for family in ["ip", "bridge"] {
            if nft_cmd()
                .args(["list", "table", family, b])
                .run()
                .await
                .is_ok()
            {
                nft_cmd().args(["delete", "table", family, b]).run().await?;
                removed = true;
            }
        }
        if host.ready || removed {
            tracing::info!(bridge = %b, "nat networking removed from the host");
        }
        host.ready = false;
        Ok(true)
    }

    /// Sets the peer groups the `bridge` table lists from the next [`Network::ensure_host`]
    /// on (start-up, before the tables are written).
    pub async fn set_peer_groups(&self, groups: impl IntoIterator<Item = PeerGroup>) {
        let mut host = self.host.lock().await;
        host.groups = groups.into_iter().collect();
        // Written again, with these, at the next ensure_host.
        host.ready = false;
    }

    /// Lets ports of group `g` exchange frames with each other: adds it to the `bridge`
    /// table's sets (now, when the table exists; at its next set-up otherwise). Call it
    /// before giving any port the group.
    pub async fn allow_group(&self, g: PeerGroup) -> Result<(), NetError> {
        let mut host = self.host.lock().await;
        if host.groups.contains(&g) {
            return Ok(());
        }
        if host.ready {
            nft(isolation::group_elements("add", &self.cfg.bridge, g)).await?;
        }
        host.groups.insert(g);
        Ok(())
    }

    /// Removes group `g` from the `bridge` table's sets. Call it once no port has it.
    pub async fn forget_group(&self, g: PeerGroup) -> Result<(), NetError> {
        let mut host = self.host.lock().await;
        if !host.groups.remove(&g) {
            return Ok(());
        }
        if host.ready && self.tables_exist().await? {
            nft(isolation::group_elements("delete", &self.cfg.bridge, g)).await?;
        }
        Ok(())
    }

    /// Gives sandbox `id`'s bridge port `policy` (nothing to do when it has no veth). A
    /// group the `bridge` table does not list is refused in favour of isolation: a grouped
    /// port the table does not know would reach isolated ports. When the port cannot be
    /// set, its veth is deleted (the sandbox is cut off until it starts again) and the
    /// error returned: failing closed.
    pub async fn set_port_policy(&self, id: &str, policy: PortPolicy) -> Result<(), NetError> {
        let veth = Self::veth_name(id);
        let host = self.host.lock().await;
        if !link_exists(&veth) {
            return Ok(());
        }
        let policy = match policy {
            PortPolicy::Group(g) if !host.groups.contains(&g) => {
                tracing::warn!(sandbox = id, group = %g, "peer group not set up; isolating the port");
                PortPolicy::Isolated
            }
            p => p,
        };
        let batch = isolation::port_policy_batch(&veth, policy);
        let applied = ip()
            .args(["-batch", "-"])
            .stdin(batch.into_bytes())
            .run()
            .await;
        drop(host);
        if let Err(e) = applied {
            tracing::error!(sandbox = id, error = %e, "cannot set the bridge port's policy; deleting the port");
            self.delete_link(&veth).await?;
            return Err(e.into());
        }
        Ok(())
    }

    /// The host's own IPv4 and IPv6 addresses, on every interface (sandboxes cannot reach
    /// any of them).
    pub async fn host_addresses(&self) -> Result<Vec<IpAddr>, NetError> {
        let out = ip().args(["-j", "addr", "show"]).run().await?;
        Ok(parse_addresses(&out.stdout))
    }

    /// Makes sure sandbox `id` has its namespace, veth pair, address `addr`,
    /// default route and `lo` up, creating what is missing; returns the
    /// namespace file for the runtime. Run before every start and restore:
    /// gVisor moves the address into its own network stack, taking it off
    /// the namespace's `eth0`.
    pub async fn prepare(&self, id: &str, addr: Ipv4Addr) -> Result<PathBuf, NetError> {
        if !self.cfg.subnet.contains(addr) {
            return Err(NetError::Invalid(format!(
                "address {addr} of sandbox {id} is outside the subnet {}: cairnd was restarted with another --subnet; destroy the sandbox or restart cairnd with the old subnet",
                self.cfg.subnet
            )));
        }
        self.ensure_host().await?;
        let ns = self.netns_path(id);
        let veth = Self::veth_name(id);
        if !is_netns(&ns) {
            std::fs::create_dir_all(&self.cfg.netns_dir).map_err(io(format!(
                "cannot create {}",
                self.cfg.netns_dir.display()
            )))?;
            std::fs::write(&ns, b"").map_err(io(format!("cannot create {}", ns.display())))?;
            Cmd::new("unshare")
                .install_hint("install util-linux")
                .arg(format!("--net={}", ns.display()))
                .arg("true")
                .run()
                .await?;
            // A veth left from an earlier namespace would point into nothing.
            if link_exists(&veth) {
                ip().args(["link", "del", &veth]).run().await?;
            }
        }
        if !link_exists(&veth) {
            // Isolated before it is up: a new port reaches no other sandbox until its
            // account's policy is applied (`set_port_policy`).
            let batch = format!(
                "link add {veth} type veth peer name eth0 netns {}\nlink set {veth} master {}\n{}link set {veth} up\n",
                ns.display(),
                self.cfg.bridge,
                isolation::port_policy_batch(&veth, PortPolicy::Isolated)
            );
            ip().args(["-batch", "-"])
                .stdin(batch.into_bytes())
                .run()
                .await?;
        }
        let inside = format!(
            "link set lo up\naddr flush dev eth0\naddr add {addr}/{} dev eth0\nlink set eth0 up\nroute replace default via {} dev eth0\n",
            self.cfg.subnet.prefix(),
            self.cfg.subnet.gateway()
        );
        Cmd::new("nsenter")
            .install_hint("install util-linux")
            .arg(format!("--net={}", ns.display()))
            .args(["ip", "-batch", "-"])
            .stdin(inside.into_bytes())
            .timeout(Duration::from_secs(20))
            .run()
            .await?;
        Ok(ns)
    }

    /// Removes sandbox `id`'s veth pair and namespace; succeeds when they are gone already.
    pub async fn teardown(&self, id: &str) -> Result<(), NetError> {
        let veth = Self::veth_name(id);
        if link_exists(&veth) {
            // Deleting one end deletes both, at once (a namespace's own cleanup is deferred).
            ip().args(["link", "del", &veth]).run().await?;
        }
        let ns = self.netns_path(id);
        if is_netns(&ns) {
            rustix::mount::unmount(&ns, rustix::mount::UnmountFlags::DETACH).map_err(|e| {
                NetError::Io {
                    what: format!("cannot unmount {}", ns.display()),
                    source: e.into(),
                }
            })?;
        }
        match std::fs::remove_file(&ns) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(io(format!("cannot remove {}", ns.display()))(e)),
        }
    }

    /// Sandbox ids that have a namespace file here (for recovery).
    pub fn namespaces(&self) -> Vec<String> {
        std::fs::read_dir(&self.cfg.netns_dir)
            .map(|rd| {
                rd.flatten()
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Names of the interfaces enslaved to the bridge (for recovery).
    pub fn bridge_ports(&self) -> Vec<String> {
        std::fs::read_dir(
            Path::new("/sys/class/net")
                .join(&self.cfg.bridge)
                .join("brif"),
        )
        .map(|rd| {
            rd.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default()
    }

    /// Deletes a host interface (a leftover veth), if it exists.
    pub async fn delete_link(&self, name: &str) -> Result<(), NetError> {
        if link_exists(name) {
            ip().args(["link", "del", name]).run().await?;
        }
        Ok(())
    }
}

fn nft_cmd() -> Cmd {
    Cmd::new("nft")
        .install_hint("install nftables: apt-get install nftables (or run scripts/setup.sh)")
        .timeout(Duration::from_secs(20))
}

/// Runs an nftables file (one transaction).
async fn nft(rules: String) -> Result<(), NetError> {
    nft_cmd()
        .args(["-f", "-"])
        .stdin(rules.into_bytes())
        .run()
        .await?;
    Ok(())
}

/// Writes `value` to a sysctl file; nothing when the file does not exist (a kernel
/// without IPv6 has no IPv6 to disable).
fn write_sysctl_if_present(path: &str, value: &str) -> Result<(), NetError> {
    match std::fs::write(path, value) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(io(format!("cannot write {path}"))(e)),
    }
}

/// The addresses in `ip -j addr show` output.
fn parse_addresses(json: &[u8]) -> Vec<IpAddr> {
    let links: serde_json::Value = serde_json::from_slice(json).unwrap_or_default();
    links
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|l| l["addr_info"].as_array().cloned().unwrap_or_default())
        .filter_map(|a| a["local"].as_str()?.parse().ok())
        .collect()
}

/// Whether `path` is a mounted namespace file.
fn is_netns(path: &Path) -> bool {
    std::fs::File::open(path)
        .ok()
        .and_then(|f| rustix::fs::fstatfs(&f).ok())
        .is_some_and(|s| s.f_type.cast_unsigned() == NSFS_MAGIC)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn veth_names_fit_the_kernel_limit() {
        assert_eq!(Network::veth_name("sbx-7f3a9c2e"), "cv7f3a9c2e");
        assert!(Network::veth_name("sbx-0123456789abcdef0123").len() <= 15);
    }

    #[test]
    fn host_addresses_are_read_from_ip_json() {
        let json = br#"[{"ifname":"lo","addr_info":[{"family":"inet","local":"127.0.0.1"}]},
            {"ifname":"eth0","addr_info":[{"family":"inet","local":"192.0.2.2"},{"family":"inet6","local":"fe80::1"}]},
            {"ifname":"ifb0","addr_info":[]}]"#;
        let got: Vec<String> = parse_addresses(json)
            .iter()
            .map(|a| a.to_string())
            .collect();
        assert_eq!(got, ["127.0.0.1", "192.0.2.2", "fe80::1"]);
        assert!(parse_addresses(b"not json").is_empty());
    }

    #[test]
    fn bridge_names_are_checked() {
        let cfg = |b: &str| NetConfig {
            bridge: b.into(),
            subnet: "10.88.0.0/16".parse().unwrap(),
            netns_dir: "/tmp".into(),
        };
        assert!(cfg("cairn0").validate().is_ok());
        assert!(cfg("Cairn0").validate().is_err());
        assert!(cfg("a-much-too-long-name").validate().is_err());
        assert!(cfg("br;rm").validate().is_err());
    }
}
