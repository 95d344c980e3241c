//! CRIU, which `runc checkpoint` and `runc restore` drive for runc sandboxes'
//! memory checkpoints: which version this host has, the per-container
//! configuration file runc hands it, and the errors its logs hold. Not for
//! gVisor, whose `runsc` checkpoints by itself.

use std::fmt;
use std::path::Path;

use cairn_cmd::{Cmd, CmdError};

use crate::RuntimeError;

/// The oldest CRIU that works here: 3.17 (Debian 12's) fails on kernels >= 6.13
/// with "vdso: Unexpected rt vDSO area bounds".
pub const MIN_VERSION: CriuVersion = CriuVersion(4, 1, 0);

/// How to get a recent enough CRIU.
pub const INSTALL_HINT: &str =
    "install CRIU 4.1 or newer as root with scripts/install-criu.sh (Debian 12's criu 3.17 fails on this kernel)";

/// The annotation through which runc 1.1 takes a CRIU configuration file for
/// one container (instead of the host-wide `/etc/criu/runc.conf`).
pub const CONFIG_ANNOTATION: &str = "org.criu.config";

/// The name of that file in a runc sandbox's bundle.
pub const CONFIG_FILE: &str = "criu.conf";

/// What every checkpoint and restore of a sandbox tells CRIU (the file's options
/// override runc's own):
/// - `network-lock nftables`: this host has no iptables, CRIU's default lock;
/// - `tcp-close`: open TCP connections are neither frozen nor dumped (the source
///   keeps them) and come back closed in a restored sandbox, whose processes
///   see a reset — the same snapshot can be restored many times, at once;
/// - `file-locks`: processes holding `flock`/`fcntl` locks can be checkpointed.
pub const CONFIG: &str = "network-lock nftables\ntcp-close\nfile-locks\n";

/// A CRIU version, e.g. 4.2.1.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct CriuVersion(pub u32, pub u32, pub u32);

impl fmt::Display for CriuVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.0, self.1, self.2)
    }
}

impl CriuVersion {
    /// Reads the version from `criu --version` ("Version: 4.2.1", maybe followed by a GitID line).
    pub fn parse(text: &str) -> Option<CriuVersion> {
        let v = text
            .lines()
            .find_map(|l| l.trim().strip_prefix("Version:"))?
            .trim();
        let mut parts = v.split('.').map(|p| {
            p.chars()
                .take_while(char::is_ascii_digit)
                .collect::<String>()
                .parse::<u32>()
                .ok()
        });
        let major = parts.next().flatten()?;
        let minor = parts.next().flatten().unwrap_or(0);
        let patch = parts.next().flatten().unwrap_or(0);
        Some(CriuVersion(major, minor, patch))
    }
}

/// The version of the `criu` on `PATH` (the one runc runs), or `None` when there is none.
pub async fn criu_version() -> Result<Option<CriuVersion>, RuntimeError> {
    match Cmd::new("criu")
        .install_hint(INSTALL_HINT)
        .arg("--version")
        .run()
        .await
    {
        Ok(out) => Ok(CriuVersion::parse(&out.stdout_str())),
        Err(CmdError::NotFound { .. }) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// `found` when it is recent enough for runc checkpoints, else the error that says what to install.
pub fn require(found: Option<CriuVersion>) -> Result<CriuVersion, RuntimeError> {
    match found {
        Some(v) if v >= MIN_VERSION => Ok(v),
        _ => Err(RuntimeError::CriuMissing { found }),
    }
}

/// Checks that this host's CRIU can checkpoint and restore runc sandboxes. A good answer is
/// remembered (CRIU is not downgraded under a running cairnd); a bad one is asked again next
/// time, so installing CRIU takes effect without a restart.
pub async fn require_installed() -> Result<CriuVersion, RuntimeError> {
    static FOUND: std::sync::OnceLock<CriuVersion> = std::sync::OnceLock::new();
    if let Some(v) = FOUND.get() {
        return Ok(*v);
    }
    let v = require(criu_version().await?)?;
    let _ = FOUND.set(v);
    Ok(v)
}

/// The names of the files CRIU writes the page data of the first `count` memories it dumps
/// into (a process's private memory, or a shared segment), in that order: CRIU numbers them
/// from 1 in each dump and writes each from start to end, once.
pub fn page_images(count: usize) -> Vec<String> {
    (1..=count).map(|n| format!("pages-{n}.img")).collect()
}

/// The `Error` lines of a CRIU log (the last few), which say why a dump or restore failed.
pub(crate) fn log_errors(log: &Path) -> Option<String> {
    let text = std::fs::read_to_string(log).ok()?;
    let errors: Vec<&str> = text
        .lines()
        .filter(|l| l.contains("Error (") && !l.contains("RLIMIT_NOFILE"))
        .map(|l| match l.find("Error (") {
            Some(i) => &l[i..],
            None => l,
        })
        .collect();
    if errors.is_empty() {
        return None;
    }
    Some(errors[errors.len().saturating_sub(4)..].join("; "))
}

/// What to do about a failed dump, when the log shows a known cause.
pub(crate) fn advice(errors: &str) -> &'static str {
    if errors.contains("Can't lookup mount") || errors.contains("iptables-restore") {
        // Its init holds host files as stdio, or it has no CRIU configuration.
        " (this sandbox was started by an older cairnd: restart it with 'cairn stop' and 'cairn start', then snapshot again)"
    } else {
        ""
    }
}

/// What a failed dump's errors say about the sandbox, in words for its user (no host path,
/// no command line: CRIU's lines name both), when the cause is a known one.
pub fn known_cause(errors: &str) -> Option<&'static str> {
    if errors.contains("Can't dump ghost file") {
        Some("a process holds open a deleted file larger than CRIU saves (1 MiB)")
    } else if errors.contains("io_uring") {
        Some("a process uses io_uring, which CRIU cannot save")
    } else if errors.contains("Can't lookup mount") || errors.contains("iptables-restore") {
        Some("this sandbox was started by an older cairnd: restart it with 'cairn stop' and 'cairn start' first")
    } else if errors.contains("External socket") || errors.contains("unix socket") {
        Some("a process holds a socket connected outside the sandbox")
    } else {
        None
    }
}

/// Describes what was found, for [`RuntimeError::CriuMissing`].
pub(crate) fn describe(found: &Option<CriuVersion>) -> String {
    match found {
        Some(v) => format!("criu {v}"),
        None => "no criu".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_are_read_from_criu_banner() {
        assert_eq!(
            CriuVersion::parse("Version: 3.17.1\n"),
            Some(CriuVersion(3, 17, 1))
        );
        assert_eq!(
            CriuVersion::parse("Version: 4.2\nGitID: v4.2-12-gabc\n"),
            Some(CriuVersion(4, 2, 0))
        );
        assert_eq!(CriuVersion::parse("nonsense"), None);
        assert_eq!(CriuVersion(4, 2, 1).to_string(), "4.2.1");
    }

    #[test]
    fn criu_older_than_4_1_is_refused_with_what_to_install() {
        assert_eq!(
            require(Some(CriuVersion(4, 2, 1))).unwrap(),
            CriuVersion(4, 2, 1)
        );
        assert!(require(Some(CriuVersion(4, 1, 0))).is_ok());
        let old = require(Some(CriuVersion(3, 17, 1)))
            .unwrap_err()
            .to_string();
        assert!(
            old.contains("CRIU 4.1") && old.contains("criu 3.17.1"),
            "{old}"
        );
        assert!(old.contains("scripts/install-criu.sh"), "{old}");
        let none = require(None).unwrap_err().to_string();
        assert!(none.contains("no criu"), "{none}");
    }

    #[test]
    fn log_errors_keep_the_last_error_lines() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("dump.log");
        std::fs::write(
            &log,
            "(00.04) Error (criu/util.c:1534): rlimit: Can't setup RLIMIT_NOFILE for self\n\
             (00.10) Dumping things\n\
             (00.17) Error (criu/files-reg.c:1790): Can't lookup mount=27 for fd=1 path=/x/init.log\n\
             (00.18) Error (criu/cr-dump.c:1975): Dumping FAILED.\n",
        )
        .unwrap();
        let e = log_errors(&log).unwrap();
        assert!(e.starts_with("Error (criu/files-reg.c"), "{e}");
        assert!(e.ends_with("Dumping FAILED."), "{e}");
        assert!(!advice(&e).is_empty());
        assert!(known_cause(&e).is_some_and(|c| c.contains("older cairnd")));
        let ghost = "Error (criu/files-reg.c:1006): Can't dump ghost file /tmp/big of 2097152 size, increase limit";
        let cause = known_cause(ghost).unwrap();
        assert!(
            cause.contains("deleted file") && !cause.contains("/tmp"),
            "{cause}"
        );
        assert_eq!(
            known_cause("Error (criu/cr-dump.c:1): Dumping FAILED."),
            None
        );
        assert_eq!(log_errors(&dir.path().join("missing.log")), None);
    }
}
