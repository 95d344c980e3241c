//! What a request may ask for: the operator's caps on a sandbox's resources, and the
//! rules for environment variables, commands and working directories that every
//! request (create, fork, exec, attach) is held to the same way.
//!
//! Every check here is linear in the size of its input and bounded by a cap, so a
//! hostile request costs little to refuse. It is not for account-wide limits
//! (snapshot storage: see `snapshots::SnapshotLimits`).

use std::collections::HashMap;

use cairn_types::format_bytes;

use crate::{EngineError, Result};

/// Most environment variables one sandbox or exec may carry (after merging).
pub const MAX_ENV_ENTRIES: usize = 1024;
/// Most bytes all of them together may take (`KEY=VALUE` strings).
pub const MAX_ENV_BYTES: usize = 256 << 10;
/// Most arguments of one command.
pub const MAX_ARGS: usize = 4096;
/// Most bytes of one command's arguments together (Linux allows 2 MiB for arguments and
/// environment together).
pub const MAX_ARGS_BYTES: usize = 1 << 20;
/// Longest working directory (Linux's PATH_MAX).
pub const MAX_PATH_BYTES: usize = 4096;
/// Longest idle timeout or exec timeout, in seconds (30 days).
pub const MAX_TIMEOUT_SECS: u64 = 30 * 86_400;
/// Most ports one sandbox may publish.
pub const MAX_PUBLISHED: usize = 64;

/// The operator's caps on what one sandbox may ask for (`cairnd --max-memory`,
/// `--max-cpus`, `--max-pids`).
#[derive(Clone, Debug, PartialEq)]
pub struct ResourceCaps {
    /// Largest memory limit, in bytes.
    pub memory_bytes: u64,
    /// Most CPU cores.
    pub cpus: f64,
    /// Largest process limit.
    pub pids: u32,
}

impl ResourceCaps {
    /// This host's memory and CPU count, and 32768 processes.
    pub fn of_host() -> Self {
        let memory_bytes = rustix::system::sysinfo().totalram.max(1 << 30);
        let cpus = std::thread::available_parallelism().map_or(1, |n| n.get()) as f64;
        ResourceCaps {
            memory_bytes,
            cpus,
            pids: 32_768,
        }
    }

    /// Refuses a memory limit above the cap.
    pub(crate) fn check_memory(&self, bytes: u64) -> Result<()> {
        if bytes > self.memory_bytes {
            return Err(EngineError::InvalidArgument(format!(
                "memory limit {} is above this host's cap of {}: ask for less (the operator sets the cap with 'cairnd --max-memory')",
                format_bytes(bytes),
                format_bytes(self.memory_bytes)
            )));
        }
        Ok(())
    }

    /// Refuses a CPU count that is not a number of cores between 0.01 and the cap.
    pub(crate) fn check_cpus(&self, cpus: f64) -> Result<()> {
        if !(cpus.is_finite() && cpus >= 0.01) {
            return Err(EngineError::InvalidArgument(format!(
                "invalid cpus {cpus}: give a number of cores such as 0.5 or 2"
            )));
        }
        if cpus > self.cpus {
            return Err(EngineError::InvalidArgument(format!(
                "cpus {cpus} is above this host's cap of {}: ask for fewer (the operator sets the cap with 'cairnd --max-cpus')",
                self.cpus
            )));
        }
        Ok(())
    }

    /// Refuses a process limit below 2 or above the cap.
    pub(crate) fn check_pids(&self, pids: u32) -> Result<()> {
        if pids < 2 {
            return Err(EngineError::InvalidArgument(
                "pids limit must be at least 2".into(),
            ));
        }
        if pids > self.pids {
            return Err(EngineError::InvalidArgument(format!(
                "pids limit {pids} is above this host's cap of {}: ask for fewer (the operator sets the cap with 'cairnd --max-pids')",
                self.pids
            )));
        }
        Ok(())
    }
}

/// Shortens `s` for an error message (the caller's own input, never echoed whole).
fn excerpt(s: &str) -> String {
    let mut end = s.len().min(40);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    let cut = &s[..end];
    let shown: String = cut
        .chars()
        .map(|c| if c.is_control() { '?' } else { c })
        .collect();
    if end < s.len() {
        format!("{shown}…")
    } else {
        shown
    }
}

/// Checks environment entries a caller sends: `KEY=VALUE`, KEY of letters, digits and
/// `_` (not starting with a digit), no NUL byte, within the caps.
pub(crate) fn check_env(env: &[String]) -> Result<()> {
    check_env_size(env, "the request")?;
    for kv in env {
        let ok = kv.split_once('=').is_some_and(|(k, _)| {
            !k.is_empty()
                && k.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
                && !k.as_bytes()[0].is_ascii_digit()
        });
        if !ok {
            return Err(EngineError::InvalidArgument(format!(
                "invalid environment variable '{}': use KEY=VALUE with KEY made of letters, digits and '_'",
                excerpt(kv)
            )));
        }
        if kv.contains('\0') {
            return Err(EngineError::InvalidArgument(format!(
                "environment variable '{}' contains a NUL byte, which no process can receive",
                excerpt(kv)
            )));
        }
    }
    Ok(())
}

/// Refuses an environment (a request's, or a merged one) over the caps.
pub(crate) fn check_env_size(env: &[String], whose: &str) -> Result<()> {
    check_count_and_bytes(
        env,
        (MAX_ENV_ENTRIES, MAX_ENV_BYTES),
        &format!("the environment of {whose}"),
        "variables",
        "pass large data as a file instead",
    )
}

/// Refuses a list of strings with more than `max.0` items or `max.1` bytes together.
fn check_count_and_bytes(
    items: &[String],
    max: (usize, usize),
    what: &str,
    unit: &str,
    advice: &str,
) -> Result<()> {
    let bytes: usize = items.iter().map(|s| s.len() + 1).sum();
    if items.len() > max.0 || bytes > max.1 {
        return Err(EngineError::InvalidArgument(format!(
            "{what} has {} {unit} in {}: at most {} {unit} and {} are allowed; {advice}",
            items.len(),
            format_bytes(bytes as u64),
            max.0,
            format_bytes(max.1 as u64)
        )));
    }
    Ok(())
}

/// Checks a command: a program and arguments, no NUL byte, within the caps.
pub(crate) fn check_cmd(cmd: &[String]) -> Result<()> {
    if cmd.first().is_none_or(|c| c.is_empty()) {
        return Err(EngineError::InvalidArgument(
            "no command given: pass the program and its arguments in 'cmd'".into(),
        ));
    }
    check_count_and_bytes(
        cmd,
        (MAX_ARGS, MAX_ARGS_BYTES),
        "the command",
        "arguments",
        "put long input in a file",
    )?;
    if let Some(a) = cmd.iter().find(|a| a.contains('\0')) {
        return Err(EngineError::InvalidArgument(format!(
            "the command argument '{}' contains a NUL byte, which no program can receive",
            excerpt(a)
        )));
    }
    Ok(())
}

/// Checks a working directory: absolute, no `..`, no NUL byte, at most PATH_MAX.
pub(crate) fn check_workdir(dir: &str) -> Result<()> {
    if !dir.starts_with('/')
        || dir.split('/').any(|c| c == "..")
        || dir.contains('\0')
        || dir.len() > MAX_PATH_BYTES
    {
        return Err(EngineError::InvalidArgument(format!(
            "invalid working directory '{}': give an absolute path inside the sandbox (no '..', no NUL, at most {MAX_PATH_BYTES} bytes), e.g. /root",
            excerpt(dir)
        )));
    }
    Ok(())
}

/// Refuses a timeout of 0 or over [`MAX_TIMEOUT_SECS`].
pub(crate) fn check_timeout(what: &str, secs: u64) -> Result<()> {
    if secs == 0 || secs > MAX_TIMEOUT_SECS {
        return Err(EngineError::InvalidArgument(format!(
            "{what} must be between 1 second and 30 days"
        )));
    }
    Ok(())
}

/// Merges `extra` over `base`: a later KEY replaces an earlier one, in the earlier one's
/// place. Linear in the number of entries.
pub(crate) fn merge_env(base: &[String], extra: &[String]) -> Vec<String> {
    let mut out: Vec<String> = Vec::with_capacity(base.len() + extra.len());
    let mut at: HashMap<&str, usize> = HashMap::with_capacity(base.len() + extra.len());
    for kv in base.iter().chain(extra) {
        let key = kv.split('=').next().unwrap_or_default();
        match at.get(key) {
            Some(&i) => out[i] = kv.clone(),
            None => {
                at.insert(key, out.len());
                out.push(kv.clone());
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn later_env_entries_replace_earlier_keys() {
        let merged = merge_env(
            &["PATH=/bin".into(), "A=1".into()],
            &["A=2".into(), "B=3".into()],
        );
        assert_eq!(merged, vec!["PATH=/bin", "A=2", "B=3"]);
    }

    #[test]
    fn merging_keeps_each_key_once_in_its_first_place() {
        // 200,000 entries: the quadratic merge this replaced took minutes on this many.
        let base: Vec<String> = (0..200_000).map(|i| format!("K{i}=a")).collect();
        let extra: Vec<String> = (0..200_000).rev().map(|i| format!("K{i}=b")).collect();
        let merged = merge_env(&base, &extra);
        assert_eq!(merged.len(), base.len());
        assert_eq!(merged[0], "K0=b");
        assert_eq!(merged[199_999], "K199999=b");
    }

    #[test]
    fn malformed_env_and_workdirs_are_refused() {
        assert!(check_env(&["NOEQUALS".into()]).is_err());
        assert!(check_env(&["=x".into()]).is_err());
        assert!(check_env(&["1A=x".into()]).is_err());
        assert!(check_env(&["A=x\0y".into()]).is_err());
        assert!(check_env(&["OK_1=x=y".into()]).is_ok());
        let too_many: Vec<String> = (0..=MAX_ENV_ENTRIES).map(|i| format!("K{i}=v")).collect();
        assert!(check_env(&too_many).is_err());
        assert!(check_env(&[format!("BIG={}", "x".repeat(MAX_ENV_BYTES))]).is_err());
        assert!(check_workdir("relative").is_err());
        assert!(check_workdir("/a/../b").is_err());
        assert!(check_workdir("/a\0b").is_err());
        assert!(check_workdir(&format!("/{}", "a".repeat(MAX_PATH_BYTES))).is_err());
        assert!(check_workdir("/srv/app").is_ok());
    }

    #[test]
    fn commands_are_checked_for_nul_and_size() {
        assert!(check_cmd(&[]).is_err());
        assert!(check_cmd(&["".into()]).is_err());
        assert!(check_cmd(&["echo".into(), "a\0b".into()]).is_err());
        assert!(check_cmd(&["x".repeat(MAX_ARGS_BYTES)]).is_err());
        assert!(check_cmd(&["echo".into(), "hi".into()]).is_ok());
    }

    #[test]
    fn caps_refuse_what_is_above_them() {
        let caps = ResourceCaps {
            memory_bytes: 1 << 30,
            cpus: 2.0,
            pids: 100,
        };
        assert!(caps.check_memory(2 << 30).is_err());
        assert!(caps.check_memory(1 << 30).is_ok());
        assert!(caps.check_cpus(4.0).is_err());
        assert!(caps.check_cpus(f64::NAN).is_err());
        assert!(caps.check_cpus(2.0).is_ok());
        assert!(caps.check_pids(101).is_err());
        assert!(caps.check_pids(1).is_err());
        assert!(caps.check_pids(100).is_ok());
    }
}
