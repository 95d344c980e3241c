//! The typed words of the runtime boundary: a container's status as the runtime reports it
//! ([`ContainerStatus`]) and the signals Cairn sends a container's init ([`Signal`]). Not the
//! sandbox's state (that is `cairn_types::SandboxState`, the engine's): a runtime knows only
//! its containers.

use std::fmt;

/// A container's status, as `runsc state`/`runc state` (or `list`) report it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ContainerStatus {
    /// Being created (the runtime's `create` has not finished).
    Creating,
    /// Created, its init not started yet.
    Created,
    /// Its processes run.
    Running,
    /// On its way to being frozen (runc).
    Pausing,
    /// Its processes are frozen.
    Paused,
    /// Its init has ended.
    Stopped,
    /// A word this version of Cairn does not know.
    Unknown,
}

impl ContainerStatus {
    /// The status a runtime's `status` field names.
    pub fn parse(word: &str) -> ContainerStatus {
        match word {
            "creating" => ContainerStatus::Creating,
            "created" => ContainerStatus::Created,
            "running" => ContainerStatus::Running,
            "pausing" => ContainerStatus::Pausing,
            "paused" => ContainerStatus::Paused,
            "stopped" => ContainerStatus::Stopped,
            _ => ContainerStatus::Unknown,
        }
    }

    /// The runtime's word for it.
    pub fn as_str(self) -> &'static str {
        match self {
            ContainerStatus::Creating => "creating",
            ContainerStatus::Created => "created",
            ContainerStatus::Running => "running",
            ContainerStatus::Pausing => "pausing",
            ContainerStatus::Paused => "paused",
            ContainerStatus::Stopped => "stopped",
            ContainerStatus::Unknown => "unknown",
        }
    }

    /// Running or paused: its processes exist and hold their state.
    pub fn is_up(self) -> bool {
        matches!(self, ContainerStatus::Running | ContainerStatus::Paused)
    }

    /// Created, running or paused: it has a host process whose end ends it.
    pub fn has_process(self) -> bool {
        matches!(
            self,
            ContainerStatus::Created | ContainerStatus::Running | ContainerStatus::Paused
        )
    }
}

impl fmt::Display for ContainerStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A signal for a container's init ([`crate::Runtime::kill`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Signal {
    /// `SIGTERM`: asks the processes to end.
    Term,
    /// `SIGKILL`: ends them.
    Kill,
}

impl Signal {
    /// The name the runtimes' `kill` command takes.
    pub fn name(self) -> &'static str {
        match self {
            Signal::Term => "TERM",
            Signal::Kill => "KILL",
        }
    }
}

impl fmt::Display for Signal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_status_word_reads_back_as_itself() {
        for s in [
            ContainerStatus::Creating,
            ContainerStatus::Created,
            ContainerStatus::Running,
            ContainerStatus::Pausing,
            ContainerStatus::Paused,
            ContainerStatus::Stopped,
            ContainerStatus::Unknown,
        ] {
            assert_eq!(ContainerStatus::parse(s.as_str()), s);
        }
        assert_eq!(ContainerStatus::parse("exploded"), ContainerStatus::Unknown);
    }

    #[test]
    fn only_created_running_and_paused_containers_have_a_process() {
        assert!(ContainerStatus::Created.has_process());
        assert!(!ContainerStatus::Created.is_up());
        assert!(ContainerStatus::Paused.is_up());
        assert!(!ContainerStatus::Stopped.has_process());
        assert!(!ContainerStatus::Pausing.has_process());
    }
}
