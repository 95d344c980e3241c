//! Per-sandbox networking.
//!
//! Every sandbox gets its own network namespace from its runtime (`runc`
//! creates one with loopback; `runsc --network=none` gives gVisor's own
//! loopback-only stack). The only mode today is [`NetworkMode::None`]:
//! loopback only, no route to the host or the outside. NAT through a
//! `cairn0` bridge and published ports come with stateful snapshots.

use std::fmt;
use std::str::FromStr;

/// How a sandbox reaches the network.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum NetworkMode {
    /// Loopback only.
    #[default]
    None,
}

/// A network mode that is not (yet) available.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("unknown network mode '{0}': the only mode available is 'none' (loopback only)")]
pub struct NetworkModeError(pub String);

impl FromStr for NetworkMode {
    type Err = NetworkModeError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "none" => Ok(NetworkMode::None),
            other => Err(NetworkModeError(other.to_string())),
        }
    }
}

impl fmt::Display for NetworkMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("none")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_none_is_accepted_for_now() {
        assert_eq!("none".parse::<NetworkMode>(), Ok(NetworkMode::None));
        assert!("nat"
            .parse::<NetworkMode>()
            .unwrap_err()
            .to_string()
            .contains("'none'"));
    }
}
