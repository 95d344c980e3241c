//! Sandbox networking as the engine sees it: which mode a new sandbox gets,
//! its persistent address, its namespace before every start or restore,
//! its published ports (bound again when cairnd restarts), whether an
//! account's sandboxes may reach each other (its bridge ports' policy, applied
//! at every start and restore, when the account changes it, and to every port
//! at start-up), and their removal with the sandbox. The host work itself is
//! `cairn-net`'s.
//!
//! Order of a `nat` create: row (mode) → address and published ports (rows)
//! → listeners bound → root filesystem → namespace + veth + address → runtime.
//! A failure anywhere rolls all of it back (`teardown` + row delete); a crash
//! leaves a `creating` row that recovery tears down the same way.

use std::collections::{HashMap, HashSet};
use std::net::Ipv4Addr;
use std::path::PathBuf;

use cairn_db::{SandboxRecord, SnapshotRecord};
use cairn_net::{NetError, NetworkMode, PeerGroup, PortPolicy, PublishSpec};
use cairn_types::api::PublishedPort;
use cairn_types::{SandboxId, SandboxState};

use crate::{Engine, EngineError, Result};

impl From<NetError> for EngineError {
    fn from(e: NetError) -> Self {
        match e {
            NetError::Invalid(m) => EngineError::InvalidArgument(m),
            // Who holds a port (a host process, another tenant's sandbox) is the log's to say.
            NetError::PortTaken { port, holder } => {
                tracing::info!(port, %holder, "a host port asked for is taken");
                EngineError::Conflict(format!(
                    "host port {port} is already in use on this host: choose another HOSTPORT (the operator finds its holder in the cairnd log)"
                ))
            }
            e @ NetError::SubnetInUse(_) => EngineError::Conflict(e.to_string()),
            other => EngineError::Internal(format!("networking failed: {other}")),
        }
    }
}

pub(crate) fn mode_of(r: &SandboxRecord) -> NetworkMode {
    r.network
}

impl Engine {
    /// The network mode of the sandbox snapshot `id` was taken from, at that time (the mode
    /// its processes resume with).
    pub(crate) async fn snapshot_mode(&self, id: &cairn_types::SnapshotId) -> Result<NetworkMode> {
        let id = id.clone();
        Ok(self.db(move |db| db.snapshot_network(&id)).await?)
    }

    /// The network mode and published ports a create request asks for: `network`
    /// if given; else a fork's snapshot's mode; else `nat` when ports are
    /// published, `none` otherwise. Validated before anything is written.
    pub(crate) async fn requested_network(
        &self,
        req: &crate::CreateSandbox,
        snapshot: Option<&SnapshotRecord>,
    ) -> Result<(NetworkMode, Vec<PublishSpec>)> {
        let publish = PublishSpec::parse_all(&req.publish)?;
        let inherited = match snapshot {
            Some(s) => Some(self.snapshot_mode(&s.id).await?),
            None => None,
        };
        let mode = match (req.network, inherited) {
            (Some(m), _) => m,
            (None, Some(m)) if publish.is_empty() || m == NetworkMode::Nat => m,
            (None, _) if !publish.is_empty() => NetworkMode::Nat,
            (None, _) => NetworkMode::None,
        };
        if mode == NetworkMode::None && !publish.is_empty() {
            return Err(EngineError::InvalidArgument(
                "publishing ports needs --network nat: a 'none' sandbox has only loopback".into(),
            ));
        }
        Ok((mode, publish))
    }

    /// Gives a new `nat` sandbox its address and records its published ports
    /// (a host port another sandbox publishes is a conflict), then listens on them.
    pub(crate) async fn attach_network(
        &self,
        id: &SandboxId,
        publish: &[PublishSpec],
    ) -> Result<Ipv4Addr> {
        let subnet = self.net.config().subnet;
        let row = id.clone();
        let addr = self
            .db(move |db| {
                db.assign_address(&row, |used| {
                    subnet
                        .sandbox_addresses()
                        .map(|a| a.to_string())
                        .find(|a| !used.contains(a))
                })
            })
            .await?
            .ok_or_else(|| {
                EngineError::Limit(format!(
                    "every address of the subnet {subnet} is taken: destroy unused nat sandboxes, or restart cairnd with a larger --subnet"
                ))
            })?;
        let addr: Ipv4Addr = addr
            .parse()
            .map_err(|_| EngineError::Internal(format!("bad address {addr}")))?;
        let pairs: Vec<(u16, u16)> = publish.iter().map(|p| (p.host_port, p.port)).collect();
        let row = id.clone();
        self.db(move |db| db.insert_published_ports(&row, &pairs))
            .await
            .map_err(EngineError::from_db)?;
        for p in publish {
            self.ports.publish(id.as_str(), *p, addr).await?;
        }
        Ok(addr)
    }

    /// Sets a `nat` sandbox's namespace up (again) and returns its path for the
    /// bundle, with the resolver file to bind over its `/etc/resolv.conf` (when the
    /// host has a nameserver it can reach); `None`s for `none` sandboxes.
    pub(crate) async fn prepare_network(
        &self,
        r: &SandboxRecord,
    ) -> Result<(Option<PathBuf>, Option<PathBuf>)> {
        if mode_of(r) != NetworkMode::Nat {
            return Ok((None, None));
        }
        let addr: Ipv4Addr = r
            .address
            .as_deref()
            .and_then(|a| a.parse().ok())
            .ok_or_else(|| EngineError::Internal(format!("nat sandbox {} has no address", r.id)))?;
        let netns = self.net.prepare(r.id.as_str(), addr).await?;
        self.apply_port_policy(r).await?;
        let host = std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
        let own = self.net.host_addresses().await?;
        let resolv = match cairn_net::sandbox_resolv_conf(&host, &own) {
            Some(text) => {
                let dir = self.run_dir(&r.id);
                let path = dir.join("resolv.conf");
                std::fs::create_dir_all(&dir)
                    .and_then(|()| cairn_runtime::bundle::write_atomic(&path, text.as_bytes()))
                    .map_err(|e| {
                        EngineError::Internal(format!("cannot write {}: {e}", path.display()))
                    })?;
                Some(path)
            }
            None => None,
        };
        Ok((Some(netns), resolv))
    }

    /// The policy of the bridge ports of `account`'s sandboxes.
    async fn port_policy(&self, account: &str) -> Result<PortPolicy> {
        let who = account.to_string();
        match self.db(move |db| db.peer_group(&who)).await? {
            None => Ok(PortPolicy::Isolated),
            Some(id) => PeerGroup::from_id(id)
                .map(PortPolicy::Group)
                .ok_or_else(|| {
                    EngineError::Internal(format!("peer group id {id} is out of range"))
                }),
        }
    }

    /// Gives a sandbox's bridge port its account's policy (nothing when it has none).
    async fn apply_port_policy(&self, r: &SandboxRecord) -> Result<()> {
        let _serial = self.peers.lock().await;
        let policy = self.port_policy(&r.account).await?;
        self.net.set_port_policy(r.id.as_str(), policy).await?;
        Ok(())
    }

    /// Whether `account`'s `nat` sandboxes reach each other.
    pub async fn sandbox_to_sandbox(&self, account: &str) -> Result<bool> {
        let who = account.to_string();
        Ok(self.db(move |db| db.peer_group(&who)).await?.is_some())
    }

    /// Lets (`allow`) or stops `account`'s `nat` sandboxes reaching each other, at once for
    /// the running ones. Other accounts' sandboxes, the gateway and the host stay out of
    /// reach either way. The setting is recorded first; start-up applies it again to every
    /// port, so a crash half-way leaves nothing in between.
    pub async fn set_sandbox_to_sandbox(&self, account: &str, allow: bool) -> Result<bool> {
        let _serial = self.peers.lock().await;
        let who = account.to_string();
        let ports: Vec<SandboxRecord> = self
            .db(move |db| db.list_sandboxes(&who))
            .await?
            .into_iter()
            .filter(|r| mode_of(r) == NetworkMode::Nat && r.state != SandboxState::Destroyed)
            .collect();
        let mut failed = None;
        if allow {
            let who = account.to_string();
            let id = self.db(move |db| db.allow_peers(&who)).await?;
            let g = PeerGroup::from_id(id).ok_or_else(|| {
                EngineError::Internal(format!("peer group id {id} is out of range"))
            })?;
            // The table lists the group before any port carries it.
            self.net.allow_group(g).await?;
            for r in &ports {
                if let Err(e) = self
                    .net
                    .set_port_policy(r.id.as_str(), PortPolicy::Group(g))
                    .await
                {
                    failed.get_or_insert((r.id.clone(), e));
                }
            }
        } else {
            let who = account.to_string();
            let old = self.db(move |db| db.deny_peers(&who)).await?;
            for r in &ports {
                if let Err(e) = self
                    .net
                    .set_port_policy(r.id.as_str(), PortPolicy::Isolated)
                    .await
                {
                    failed.get_or_insert((r.id.clone(), e));
                }
            }
            if let Some(g) = old.and_then(PeerGroup::from_id) {
                self.net.forget_group(g).await?;
            }
        }
        if let Some((id, e)) = failed {
            return Err(EngineError::Internal(format!(
                "sandbox {id} lost its network: its bridge port could not be changed ({e}); start it again"
            )));
        }
        tracing::info!(
            account,
            allow,
            sandboxes = ports.len(),
            "sandbox-to-sandbox traffic set"
        );
        Ok(allow)
    }

    /// Stops a sandbox's published ports and removes its namespace and veth; best effort.
    pub(crate) async fn release_network(&self, r: &SandboxRecord) {
        self.ports.unpublish_all(r.id.as_str());
        if mode_of(r) == NetworkMode::Nat || self.net.netns_path(r.id.as_str()).exists() {
            if let Err(e) = self.net.teardown(r.id.as_str()).await {
                tracing::warn!(sandbox = %r.id, error = %e, "network teardown failed");
            }
        }
    }

    /// Removes the bridge and its nftables table once no `nat` sandbox row is left.
    pub(crate) async fn remove_unused_bridge(&self) {
        // Asked under the network's lock (the future runs only there).
        let unused = async {
            self.db(|db| db.all_sandboxes())
                .await
                .map(|all| !all.iter().any(|s| mode_of(s) == NetworkMode::Nat))
                .unwrap_or(false)
        };
        if let Err(e) = self.net.remove_host_if(unused).await {
            tracing::warn!(error = %e, "could not remove the bridge");
        }
    }

    /// The network part of a sandbox's API view.
    pub(crate) async fn network_info(
        &self,
        r: &SandboxRecord,
    ) -> (NetworkMode, Option<String>, Vec<PublishedPort>) {
        let row = r.id.clone();
        let published = self
            .db(move |db| db.published_ports(Some(&row)))
            .await
            .unwrap_or_default()
            .into_iter()
            .map(|p| PublishedPort {
                host_port: p.host_port,
                port: p.port,
            })
            .collect();
        (r.network, r.address.clone(), published)
    }

    /// Start-up: removes namespaces and veths of sandboxes that no longer exist,
    /// writes the nftables tables again with the peer groups of the database, gives
    /// every remaining port its account's policy (whatever a crash left on it), binds
    /// the published ports again, and removes the bridge when no `nat` sandbox is left.
    pub(crate) async fn recover_network(&self) -> Result<()> {
        let groups = self.db(|db| db.peer_groups()).await?;
        self.net
            .set_peer_groups(groups.iter().filter_map(|(_, id)| PeerGroup::from_id(*id)))
            .await;
        let nat: HashMap<String, SandboxRecord> = self
            .db(|db| db.all_sandboxes())
            .await?
            .into_iter()
            .filter(|r| mode_of(r) == NetworkMode::Nat && r.state != SandboxState::Destroyed)
            .map(|r| (r.id.to_string(), r))
            .collect();
        for id in self.net.namespaces() {
            if !nat.contains_key(&id) {
                tracing::warn!(sandbox = %id, "removing the network namespace of a sandbox that no longer exists");
                self.net.teardown(&id).await?;
            }
        }
        let veths: HashSet<String> = nat
            .keys()
            .map(|id| cairn_net::Network::veth_name(id))
            .collect();
        for port in self.net.bridge_ports() {
            if port.starts_with("cv") && !veths.contains(&port) {
                tracing::warn!(link = %port, "removing a veth of a sandbox that no longer exists");
                self.net.delete_link(&port).await?;
            }
        }
        if nat.is_empty() {
            self.remove_unused_bridge().await;
            return Ok(());
        }
        let host = self.net.ensure_host().await;
        // Every port gets its account's policy; isolation when the tables could not be
        // written (a grouped port the bridge table does not list would reach isolated ones).
        for r in nat.values() {
            let policy = match &host {
                Ok(()) => self.port_policy(&r.account).await?,
                Err(_) => PortPolicy::Isolated,
            };
            if let Err(e) = self.net.set_port_policy(r.id.as_str(), policy).await {
                tracing::error!(sandbox = %r.id, error = %e, "could not set the bridge port's policy again after the restart");
            }
        }
        match host {
            Ok(()) => {}
            // A network the host reaches now (a VPN, a LAN) took the subnet: cairnd still
            // starts, and each nat sandbox says so when it is started.
            Err(e @ NetError::SubnetInUse(_)) => {
                tracing::error!(error = %e, "nat networking cannot be set up");
                return Ok(());
            }
            Err(e) => return Err(e.into()),
        }
        for p in self.db(|db| db.published_ports(None)).await? {
            let Some(r) = nat.get(p.sandbox_id.as_str()) else {
                continue;
            };
            let Some(addr) = r.address.as_deref().and_then(|a| a.parse().ok()) else {
                continue;
            };
            let spec = PublishSpec {
                host_port: p.host_port,
                port: p.port,
            };
            if let Err(e) = self.ports.publish(r.id.as_str(), spec, addr).await {
                tracing::error!(sandbox = %r.id, host_port = p.host_port, error = %e, "could not publish a port again after the restart");
            }
        }
        Ok(())
    }
}
