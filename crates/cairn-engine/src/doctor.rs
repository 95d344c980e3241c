//! `doctor`: what this host has, and which Cairn features it allows.

use cairn_cmd::Cmd;
use cairn_types::RuntimeKind;

use crate::Engine;

/// One component's report.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct Check {
    /// Component name.
    pub name: String,
    /// Its version, or `None` when missing.
    pub version: Option<String>,
    /// Whether Cairn can use it.
    pub ok: bool,
    /// What it is needed for, and what to do when it is missing.
    pub note: String,
}

async fn version_of(program: &str, args: &[&str]) -> Option<String> {
    let out = Cmd::new(program).args(args).run().await.ok()?;
    let text = if out.stdout.is_empty() {
        out.stderr
    } else {
        out.stdout
    };
    String::from_utf8_lossy(&text)
        .lines()
        .next()
        .map(|l| l.trim().to_string())
}

/// CRIU's version as (major, minor), from `criu --version` ("Version: 3.17.1").
fn criu_version(text: &str) -> Option<(u32, u32)> {
    let v = text
        .split_whitespace()
        .find(|w| w.chars().next().is_some_and(|c| c.is_ascii_digit()))?;
    let mut parts = v.split('.').map(|p| p.parse::<u32>().ok());
    Some((parts.next()??, parts.next().flatten().unwrap_or(0)))
}

impl Engine {
    /// Versions of runsc, runc, CRIU, btrfs-progs and the kernel, and what each enables.
    pub async fn doctor(&self) -> Vec<Check> {
        let mut checks = Vec::new();
        for kind in [RuntimeKind::Gvisor, RuntimeKind::Runc] {
            let version = match self.runtime(kind) {
                Ok(rt) => rt.version().await.ok(),
                Err(_) => None,
            };
            let (name, note) = match kind {
                RuntimeKind::Gvisor => (
                    "runsc",
                    "gvisor sandboxes (the default) and stateful snapshots; install: apt-get install -t bookworm-backports runsc",
                ),
                RuntimeKind::Runc => ("runc", "runc sandboxes; install: apt-get install runc"),
            };
            checks.push(Check {
                name: name.into(),
                ok: version.is_some(),
                version,
                note: note.into(),
            });
        }
        let criu = version_of("criu", &["--version"]).await;
        let criu_ok = criu
            .as_deref()
            .and_then(criu_version)
            .is_some_and(|v| v >= (4, 1));
        checks.push(Check {
            name: "criu".into(),
            ok: criu_ok,
            version: criu,
            note: "stateful snapshots of runc sandboxes need CRIU >= 4.1 (Debian 12's 3.17 fails on kernels >= 6.13); gvisor sandboxes do not need it".into(),
        });
        let btrfs = version_of("btrfs", &["--version"]).await;
        checks.push(Check {
            name: "btrfs-progs".into(),
            ok: btrfs.is_some(),
            version: btrfs,
            note: "the snapshot pool; install: apt-get install btrfs-progs".into(),
        });
        checks.push(Check {
            name: "kernel".into(),
            ok: true,
            version: Some(crate::snapshots::kernel_release()),
            note: "recorded in stateful snapshots: they resume only on the same kernel release"
                .into(),
        });
        checks
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn criu_versions_are_read_from_its_banner() {
        assert_eq!(criu_version("Version: 3.17.1"), Some((3, 17)));
        assert_eq!(criu_version("Version: 4.2"), Some((4, 2)));
        assert_eq!(criu_version("nonsense"), None);
    }
}
