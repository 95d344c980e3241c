//! The agent inside every sandbox, seen from the engine: which sandboxes have it (the static
//! `cairn-agent` binary cairnd was given, bound into the sandbox and run as its init), the
//! link to each (see `link`), exec through it (see `exec`), and the quiesce before every
//! checkpoint (runsc 20240729 crashes when a sandbox is checkpointed with a host-connected
//! socket open: google/gvisor#10897).
//!
//! A sandbox booted without the agent (no binary, or an older sandbox) keeps the shell init
//! and the runtime's own exec. See docs/agent.md.

mod exec;
pub(crate) mod link;
mod ps;

pub(crate) use exec::AgentExec;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use cairn_agent::proto::{Message, Secret};
use cairn_db::SandboxRecord;
use cairn_runtime::AgentMounts;
use cairn_types::SandboxId;

pub(crate) use link::Link;
use link::LinkState;

use crate::Engine;

/// How long a quiesce waits for the agent to close its connection.
const QUIESCE_WAIT: Duration = Duration::from_secs(5);

/// How long cairnd waits for a restored agent to answer its `init` before setting the
/// hostname through the runtime instead.
const INIT_ANSWER_WAIT: Duration = Duration::from_secs(5);

/// `bytes` as lowercase hexadecimal.
fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Whether the file at `path` is a statically linked ELF executable (no program interpreter):
/// the only kind that runs in any image.
pub fn is_static_executable(path: &Path) -> std::io::Result<bool> {
    let bytes = std::fs::read(path)?;
    Ok(elf_is_static(&bytes))
}

/// Whether `elf` is a 64-bit little-endian ELF file without a `PT_INTERP` program header.
fn elf_is_static(elf: &[u8]) -> bool {
    let u16_at = |o: usize| elf.get(o..o + 2).map(|b| u16::from_le_bytes([b[0], b[1]]));
    let u32_at = |o: usize| {
        elf.get(o..o + 4)
            .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    };
    let u64_at = |o: usize| {
        elf.get(o..o + 8)
            .map(|b| u64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]))
    };
    if elf.get(0..4) != Some(b"\x7fELF") || elf.get(4) != Some(&2) || elf.get(5) != Some(&1) {
        return false;
    }
    let (Some(phoff), Some(phentsize), Some(phnum)) = (u64_at(0x20), u16_at(0x36), u16_at(0x38))
    else {
        return false;
    };
    let Ok(phoff) = usize::try_from(phoff) else {
        return false;
    };
    (0..usize::from(phnum)).all(|i| {
        let at = phoff.saturating_add(i.saturating_mul(usize::from(phentsize)));
        // PT_INTERP = 3; a truncated table is not a static executable.
        u32_at(at).is_some_and(|t| t != 3)
    })
}

/// The agent binary cairnd was given, checked: its path, or why sandboxes go without it.
pub(crate) fn check_binary(path: Option<&Path>) -> Result<PathBuf, String> {
    let Some(path) = path else {
        return Err("no agent binary (cairnd --agent PATH)".into());
    };
    match is_static_executable(path) {
        Ok(true) => std::path::absolute(path).map_err(|e| e.to_string()),
        Ok(false) => Err(format!(
            "{} is not a statically linked executable (build it with scripts/build-agent.sh)",
            path.display()
        )),
        Err(e) => Err(format!("cannot read {}: {e}", path.display())),
    }
}

impl Engine {
    /// The directory of sandbox `id` the agent's socket is in (bound into the sandbox).
    fn agent_dir(&self, id: &SandboxId) -> PathBuf {
        self.run_dir(id).join("agent")
    }

    /// Before sandbox `id` boots or is restored: listens for its agent and returns what its
    /// bundle binds in, or `None` (the shell init) when there is no usable agent binary or
    /// the socket cannot be made.
    pub(crate) fn prepare_agent(&self, id: &SandboxId) -> Option<AgentMounts> {
        let binary = self.agent_binary.as_ref().ok()?.clone();
        // The previous run's link goes first: it removes its socket, the one bound below.
        self.end_agent(id);
        let dir = self.agent_dir(id);
        let made = std::fs::create_dir_all(&dir).and_then(|()| {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755))
        });
        if let Err(e) = made {
            tracing::warn!(sandbox = %id, error = %e, "cannot make the agent's directory: the sandbox runs without it");
            return None;
        }
        let link = Link::new(id, &dir);
        if let Err(e) = link.listen() {
            tracing::warn!(sandbox = %id, error = %e, "cannot listen for the agent: the sandbox runs without it");
            return None;
        }
        self.agents().insert(id.clone(), link);
        Some(AgentMounts {
            binary,
            socket_dir: dir,
        })
    }

    fn agents(&self) -> std::sync::MutexGuard<'_, std::collections::HashMap<SandboxId, Arc<Link>>> {
        self.agents.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// At start-up, for sandbox `id` found running: listens again for its agent, when it was
    /// booted with one (its directory is there); the agent dials back.
    pub(crate) fn adopt_agent(&self, id: &SandboxId) {
        let dir = self.agent_dir(id);
        if self.agent_binary.is_err() || !dir.is_dir() {
            return;
        }
        self.end_agent(id);
        let link = Link::new(id, &dir);
        match link.listen() {
            Ok(()) => {
                self.agents().insert(id.clone(), link);
            }
            Err(e) => {
                tracing::warn!(sandbox = %id, error = %e, "cannot listen for the agent again: execs go through the runtime")
            }
        }
    }

    /// Makes the `init` the agent of sandbox `r` gets at every connection: its hostname
    /// (where the agent sets it: [`cairn_runtime::Runtime::agent_sets_hostname`]), fresh
    /// entropy and its secrets. Called once its link is made (boot, restore, fork, found
    /// again at start-up); the link holds connections until it is set.
    pub(crate) async fn arm_agent_init(&self, r: &SandboxRecord) {
        let Some(link) = self.agent(&r.id) else {
            return;
        };
        let hostname = self
            .runtime(r.runtime)
            .is_ok_and(|rt| rt.agent_sets_hostname())
            .then(|| r.id.to_string());
        let secrets = match self.secrets_of(&r.account, r.id.as_str()).await {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(sandbox = %r.id, error = %e, "cannot read the sandbox's secrets: it starts without them");
                cairn_types::Secrets::default()
            }
        };
        let mut seed = [0u8; 32];
        rand::fill(&mut seed);
        link.set_init(Message::Init {
            clock_ms: None,
            env: Vec::new(),
            hostname,
            machine_id: None,
            entropy: Some(hex(&seed)),
            secrets: secrets
                .0
                .iter()
                .map(|(name, value)| Secret {
                    name: name.clone(),
                    hex: hex(value.as_bytes()),
                })
                .collect(),
        });
    }

    /// Whether sandbox `r`, whose processes were just restored from a checkpoint, got its
    /// hostname from its agent's `init`: false (the caller sets it through the runtime)
    /// when the runtime leaves that to cairnd, or the agent did not manage (one restored
    /// from a checkpoint older than this, without the capability) or did not answer in time.
    pub(crate) async fn agent_renamed(&self, r: &SandboxRecord) -> bool {
        let Some(link) = self.agent(&r.id) else {
            return false;
        };
        if !self
            .runtime(r.runtime)
            .is_ok_and(|rt| rt.agent_sets_hostname())
        {
            return false;
        }
        match link.init_answered(INIT_ANSWER_WAIT).await {
            Some(Ok(())) => true,
            Some(Err((reason, _))) => !reason.split(',').any(|r| r == "hostname"),
            None => false,
        }
    }

    /// The link to sandbox `id`'s agent, if it has one.
    pub(crate) fn agent(&self, id: &SandboxId) -> Option<Arc<Link>> {
        self.agents().get(id).cloned()
    }

    /// Sandbox `id` ended (stopped, destroyed, replaced): its link goes, and the execs
    /// through it end.
    pub(crate) fn end_agent(&self, id: &SandboxId) {
        if let Some(link) = self.agents().remove(id) {
            link.end();
        }
    }

    /// Before a checkpoint of sandbox `id` (it must be running): the agent closes its
    /// connection and cairnd stops listening. Whatever the agent does, the checkpoint goes on:
    /// one that fails for an open connection says so.
    pub(crate) async fn quiesce_agent(&self, id: &SandboxId) {
        let Some(link) = self.agent(id) else { return };
        let started = std::time::Instant::now();
        if !link.quiesce(QUIESCE_WAIT).await {
            tracing::warn!(sandbox = %id, "the agent did not close its connection before the checkpoint");
        }
        tracing::debug!(sandbox = %id, elapsed_us = started.elapsed().as_micros() as u64, "agent quiesced");
    }

    /// After a checkpoint of sandbox `id`: listens again; the agent dials back.
    pub(crate) fn relisten_agent(&self, id: &SandboxId) {
        if let Some(link) = self.agent(id) {
            if let Err(e) = link.listen() {
                tracing::warn!(sandbox = %id, error = %e, "cannot listen for the agent again");
            }
        }
    }

    /// What `inspect` says of sandbox `id`'s agent.
    pub(crate) fn agent_status(&self, id: &SandboxId) -> Option<String> {
        match self.agent(id) {
            Some(link) => Some(match link.state() {
                LinkState::Connected(_) => "connected".to_string(),
                LinkState::Waiting => "waiting".to_string(),
                LinkState::Quiesced => "quiesced".to_string(),
            }),
            None => match &self.agent_binary {
                Err(why) => Some(format!("unavailable: {why}")),
                Ok(_) => None,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_elf_files_without_an_interpreter_are_static() {
        let mut elf = vec![0u8; 0x100];
        elf[..4].copy_from_slice(b"\x7fELF");
        elf[4] = 2;
        elf[5] = 1;
        elf[0x20] = 0x40; // phoff
        elf[0x36] = 0x38; // phentsize
        elf[0x38] = 2; // phnum
        elf[0x40] = 1; // PT_LOAD
        elf[0x78] = 6; // PT_PHDR
        assert!(elf_is_static(&elf));
        elf[0x78] = 3; // PT_INTERP
        assert!(!elf_is_static(&elf));
        assert!(!elf_is_static(b"#!/bin/sh\n"));
        // A table past the end of the file.
        elf[0x38] = 200;
        assert!(!elf_is_static(&elf));
    }

    #[test]
    fn this_test_binary_is_not_static() {
        let me = std::env::current_exe().unwrap();
        assert!(!is_static_executable(&me).unwrap());
    }
}
