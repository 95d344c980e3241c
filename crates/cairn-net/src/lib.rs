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

pub use host::{NetConfig, Network};
pub use isolation::{PeerGroup, PortPolicy};
pub use publish::{PortHolder, PortProxy, PublishSpec};
pub use resolv::sandbox_resolv_conf;
pub use subnet::Subnet;

use std::fmt;
use std::str::FromStr;

use cairn_cmd::CmdError;

/// How a sandbox reaches the network.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, Hash)]
pub enum NetworkMode {
    /// Loopback only.
    #[default]
    None,
    /// Its own address on the Cairn bridge, NAT to the outside.
    Nat,
}

impl NetworkMode {
    /// The name used in the API, the CLI and the database.
    pub fn as_str(self) -> &'static str {
        match self {
            NetworkMode::None => "none",
            NetworkMode::Nat => "nat",
        }
    }
}

/// A network mode that does not exist.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("unknown network mode '{0}': use 'none' (loopback only, the default) or 'nat' (own address, NAT to the outside)")]
pub struct NetworkModeError(pub String);

impl FromStr for NetworkMode {
    type Err = NetworkModeError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "none" => Ok(NetworkMode::None),
            "nat" => Ok(NetworkMode::Nat),
            other => Err(NetworkModeError(other.to_string())),
        }
    }
}

impl fmt::Display for NetworkMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn modes_parse_and_print() {
        assert_eq!("none".parse::<NetworkMode>(), Ok(NetworkMode::None));
        assert_eq!("nat".parse::<NetworkMode>(), Ok(NetworkMode::Nat));
        assert_eq!(NetworkMode::Nat.to_string(), "nat");
        assert!("bridge"
            .parse::<NetworkMode>()
            .unwrap_err()
            .to_string()
            .contains("'nat'"));
    }
}
