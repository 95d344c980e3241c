//! The host side of `nat` networking: the bridge, the nftables table and
//! each sandbox's namespace and veth pair, all through `ip`, `nft` and
//! `unshare` (via `cairn-cmd`); state is read from `/sys` and `/proc`.
//!
//! Layout for a sandbox `sbx-7f3a9c2e` on bridge `cairn0`:
//! - namespace: `<netns_dir>/sbx-7f3a9c2e`, an nsfs bind mount made by
//!   `unshare --net=FILE` (kept per data directory, not in `/run/netns`,
//!   so that start-up recovery only ever touches its own);
//! - veth pair: `cv7f3a9c2e` on the host, enslaved to `cairn0`; `eth0` in
//!   the namespace with the sandbox's address, default route via the
//!   bridge's address, `lo` up;
//! - nftables: one table `ip cairn0` for all sandboxes (masquerade what
//!   leaves the subnet through another interface; forward only what
//!   sandboxes start, so nothing outside can open connections to them).
//!
//! Nothing here is per sandbox in nftables, so destroying a sandbox only
//! removes its veth and namespace; the bridge and table go with the last
//! `nat` sandbox ([`Network::remove_host_if`]).

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use cairn_cmd::Cmd;

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
    /// Serializes bridge/table creation and removal; true once they are set up.
    host_ready: tokio::sync::Mutex<bool>,
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
            host_ready: tokio::sync::Mutex::new(false),
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

    /// Creates the bridge (with the gateway address), enables IPv4
    /// forwarding and (re)writes the nftables table. Idempotent.
    pub async fn ensure_host(&self) -> Result<(), NetError> {
        let mut ready = self.host_ready.lock().await;
        if *ready && link_exists(&self.cfg.bridge) {
            return Ok(());
        }
        let b = &self.cfg.bridge;
        let subnet = self.cfg.subnet;
        self.check_subnet_is_free().await?;
        let mut batch = String::new();
        if !link_exists(b) {
            batch.push_str(&format!("link add {b} type bridge\n"));
        }
        batch.push_str(&format!(
            "addr replace {}/{} dev {b}\nlink set {b} up\n",
            subnet.gateway(),
            subnet.prefix()
        ));
        ip().args(["-batch", "-"])
            .stdin(batch.into_bytes())
            .run()
            .await?;
        std::fs::write("/proc/sys/net/ipv4/ip_forward", "1").map_err(io(
            "cannot enable IPv4 forwarding (/proc/sys/net/ipv4/ip_forward)",
        ))?;
        // Declaring the table first makes the delete succeed when it does not exist yet;
        // the whole file is one transaction.
        let rules = format!(
            "table ip {b} {{}}
delete table ip {b}
table ip {b} {{
    chain postrouting {{
        type nat hook postrouting priority srcnat; policy accept;
        ip saddr {subnet} oifname != \"{b}\" masquerade
    }}
    chain forward {{
        type filter hook forward priority filter; policy accept;
        iifname \"{b}\" accept
        oifname \"{b}\" ct state established,related accept
        oifname \"{b}\" drop
    }}
}}
"
        );
        Cmd::new("nft")
            .install_hint("install nftables: apt-get install nftables (or run scripts/setup.sh)")
            .args(["-f", "-"])
            .stdin(rules.into_bytes())
            .run()
            .await?;
        tracing::info!(bridge = %b, subnet = %subnet, "nat networking set up on the host");
        *ready = true;
        Ok(())
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

    /// Removes the bridge and the nftables table when `unused()` (asked while no
    /// sandbox can be setting up, so a concurrent create either is seen by it or
    /// sets the bridge up again afterwards). IPv4 forwarding is left as it is:
    /// something else may rely on it. Returns whether they were removed.
    pub async fn remove_host_if(&self, unused: impl FnOnce() -> bool) -> Result<bool, NetError> {
        let mut ready = self.host_ready.lock().await;
        if !unused() {
            return Ok(false);
        }
        let b = &self.cfg.bridge;
        if link_exists(b) {
            ip().args(["link", "del", b]).run().await?;
        }
        let listed = Cmd::new("nft").args(["list", "table", "ip", b]).run().await;
        if listed.is_ok() {
            Cmd::new("nft")
                .args(["delete", "table", "ip", b])
                .run()
                .await?;
        }
        if *ready || listed.is_ok() {
            tracing::info!(bridge = %b, "nat networking removed from the host");
        }
        *ready = false;
        Ok(true)
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
            let batch = format!(
                "link add {veth} type veth peer name eth0 netns {}\nlink set {veth} master {} up\n",
                ns.display(),
                self.cfg.bridge
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

/// Whether `path` is a mounted namespace file.
fn is_netns(path: &Path) -> bool {
    std::fs::File::open(path)
        .ok()
        .and_then(|f| rustix::fs::fstatfs(&f).ok())
        .is_some_and(|s| s.f_type as u64 == NSFS_MAGIC)
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
