//! What makes a sandbox itself, applied from `init`: its hostname (a stateful fork's
//! processes resume with their source's) and fresh entropy for the kernel's random pool.
//!
//! `sethostname` needs `CAP_SYS_ADMIN`, which a sandbox's processes lack: where the runtime
//! gives it to the agent (gVisor, whose kernel is the sandbox's own), the agent keeps it and
//! its processes start without it ([`drop_admin`]); elsewhere (runc) cairnd sends no
//! hostname and sets it itself. The machine id is not set here: cairnd writes it into a
//! fork's root before any process runs.

use std::io::Write;

/// Sets the hostname, when given and different.
pub fn set_hostname(hostname: Option<&str>) -> Result<(), String> {
    let Some(name) = hostname else { return Ok(()) };
    if rustix::system::uname().nodename().to_bytes() == name.as_bytes() {
        return Ok(());
    }
    rustix::system::sethostname(name.as_bytes())
        .map_err(|e| format!("cannot set the hostname to {name}: {e}"))
}

/// Mixes `entropy` (hexadecimal) into `/dev/urandom`'s pool. Writing does not credit
/// entropy (random(4)), it only stirs the pool; gVisor's kernel draws from the host's for
/// every read and ignores it.
pub fn add_entropy(entropy: Option<&str>) -> Result<(), String> {
    let Some(hex) = entropy else { return Ok(()) };
    let bytes: Vec<u8> = hex
        .as_bytes()
        .chunks(2)
        .filter_map(|p| std::str::from_utf8(p).ok())
        .filter_map(|p| u8::from_str_radix(p, 16).ok())
        .collect();
    std::fs::OpenOptions::new()
        .write(true)
        .open("/dev/urandom")
        .and_then(|mut f| f.write_all(&bytes))
        .map_err(|e| format!("cannot write /dev/urandom: {e}"))
}

/// In a child between fork and exec: gives up `CAP_SYS_ADMIN` (effective, permitted,
/// inheritable and bounding), which the agent may hold for `sethostname`. Async-signal-safe
/// (system calls only). A child already switched to another user holds no capability and
/// cannot drop from the bounding set: nothing to do then.
pub fn drop_admin() -> std::io::Result<()> {
    use rustix::thread::{capabilities, set_capabilities, CapabilitySet};
    let mut caps = capabilities(None)?;
    let bounded = rustix::thread::capability_is_in_bounding_set(CapabilitySet::SYS_ADMIN)?;
    if bounded && caps.permitted.contains(CapabilitySet::SETPCAP) {
        rustix::thread::remove_capability_from_bounding_set(CapabilitySet::SYS_ADMIN)?;
    }
    if caps.permitted.contains(CapabilitySet::SYS_ADMIN)
        || caps.inheritable.contains(CapabilitySet::SYS_ADMIN)
    {
        caps.effective.remove(CapabilitySet::SYS_ADMIN);
        caps.permitted.remove(CapabilitySet::SYS_ADMIN);
        caps.inheritable.remove(CapabilitySet::SYS_ADMIN);
        set_capabilities(None, caps)?;
    }
    Ok(())
}
