//! Per-sandbox networking.
//!
//! Two modes ([`NetworkMode`]):
//! - `none` (the default): loopback only. The runtime makes the namespace
//!   (`runc` a fresh one with `lo`; `runsc --network=none` gVisor's own
//!   loopback-only stack); nothing here is involved.
//! - `nat`: Cairn makes a network namespace (a bind-mounted nsfs file under
//!   the data directory, so that leftovers are found per data directory),
//!   a veth pair whose host end joins the bridge (`cairn0`), one IPv4
//!   address from the configured [`Subnet`], a default route via the
//!   bridge's address (the subnet's first), and `lo` up. Two nftables tables
//!   named like the bridge masquerade traffic leaving the subnet, keep the
//!   outside from opening connections to sandboxes, and keep sandboxes from
//!   opening connections to the host and to each other (unless their account
//!   allows its own sandboxes to). See [`host`] and [`isolation`].
//!
//! Published ports ([`PortProxy`]) are a userspace TCP proxy from
//! `127.0.0.1:HOSTPORT` on the host to the sandbox's address.
//!
//! This crate knows nothing of the database or the runtimes: the engine
//! allocates addresses (persistently) and hands the namespace path to the
//! runtime.

pub mod host;
pub mod isolation;
mod publish;
mod resolv;
mod subnet;

/// The modes live with the rest of the vocabulary; re-exported for the crates that speak of them here.
pub use cairn_types::{NetworkMode, NetworkModeError};
pub use host::{NetConfig, Network};
pub use isolation::{PeerGroup, PortPolicy};
pub use publish::{PortHolder, PortProxy, PublishSpec};
pub use resolv::sandbox_resolv_conf;
pub use subnet::Subnet;

use cairn_cmd::CmdError;

/// What can go wrong setting up or tearing down networking.
#[derive(Debug, thiserror::Error)]
pub enum NetError {
    /// Bad input (subnet, publish spec…): the caller's mistake.
    #[error("{0}")]
    Invalid(String),
    /// The configured subnet collides with a network the host already uses.
    #[error("{0}")]
    SubnetInUse(String),
    /// A host port is already taken.
    #[error("host port {port} is already taken by {holder}: choose another HOSTPORT")]
    PortTaken {
        /// The port.
        port: u16,
        /// Who holds it.
        holder: PortHolder,
    },
    /// `ip`, `nft`, `unshare`… failed.
    #[error(transparent)]
    Cmd(#[from] CmdError),
    /// A file operation failed.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// Cause.
        #[source]
        source: std::io::Error,
    },
}
