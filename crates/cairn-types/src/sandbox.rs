//! What a sandbox is made with, as the engine, the database and the runtime speak of it:
//! its network mode, its resource limits and the defaults of its processes. Parsed once
//! (at the API's edge, or from a stored row) and passed around typed from there.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// How a sandbox reaches the network.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
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

/// The cgroup limits of a sandbox (and, recorded, of the sandbox a snapshot was taken from,
/// which its forks inherit).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Resources {
    /// CPU limit in cores.
    pub cpus: f64,
    /// Memory limit in bytes.
    pub memory_bytes: u64,
    /// Most processes at once.
    pub pids_limit: u32,
}

/// What every process of a sandbox starts with unless its exec says otherwise.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ProcessDefaults {
    /// Environment, `KEY=VALUE`.
    pub env: Vec<String>,
    /// Working directory (absolute).
    pub workdir: String,
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn network_modes_parse_print_and_serialize_as_their_names() {
        assert_eq!("none".parse::<NetworkMode>(), Ok(NetworkMode::None));
        assert_eq!("nat".parse::<NetworkMode>(), Ok(NetworkMode::Nat));
        assert_eq!(NetworkMode::Nat.to_string(), "nat");
        assert!("bridge"
            .parse::<NetworkMode>()
            .unwrap_err()
            .to_string()
            .contains("'nat'"));
        assert_eq!(serde_json::to_string(&NetworkMode::Nat).unwrap(), "\"nat\"");
        assert_eq!(
            serde_json::from_str::<NetworkMode>("\"none\"").unwrap(),
            NetworkMode::None
        );
    }
}
