//! `doctor`: what this host has, and which Cairn features it allows.

use cairn_cmd::Cmd;

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

impl Engine {
    /// Versions of runsc, runc, CRIU, btrfs-progs and the kernel, and what each enables.
    pub async fn doctor(&self) -> Vec<Check> {
        let mut checks = Vec::new();
        for rt in &self.runtimes {
            let version = rt.version().await.ok();
            checks.push(Check {
                name: rt.program().into(),
                ok: version.is_some(),
                version,
                note: rt.enables().into(),
            });
        }
        checks.push(criu_check().await);
        checks.push(self.agent_check());
        let btrfs = version_of("btrfs", &["--version"]).await;
        checks.push(Check {
            name: "btrfs-progs".into(),
            ok: btrfs.is_some(),
            version: btrfs,
            note: "the snapshot pool; install: apt-get install btrfs-progs".into(),
        });
        for (name, args, pkg) in [
            ("nft", &["--version"][..], "nftables"),
            ("ip", &["-V"][..], "iproute2"),
            ("nsenter", &["--version"][..], "util-linux"),
        ] {
            let version = version_of(name, args).await;
            checks.push(Check {
                name: name.into(),
                ok: version.is_some(),
                version,
                note: format!(
                    "--network nat and --publish (bridge, NAT, per-sandbox namespaces); install: apt-get install {pkg}"
                ),
            });
        }
        let limits = self.storage.limits_writes();
        checks.push(Check {
            name: "disk limits".into(),
            ok: limits,
            version: Some(if limits { "btrfs simple quotas" } else { "off" }.into()),
            note: if limits {
                format!(
                    "per-sandbox disk limits (--disk) and a pool reserve of {} that sandboxes' writes cannot take",
                    cairn_types::format_bytes(self.reserve)
                )
            } else {
                "cairnd runs with --no-disk-quota: sandboxes have no disk limits and their writes can fill the pool; btrfs simple quotas need Linux 6.7 or newer".into()
            },
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

impl Engine {
    /// The agent binary: there and static, or why sandboxes go without it.
    fn agent_check(&self) -> Check {
        let needs = "the init of every sandbox: processes that survive stateful snapshots on gvisor, exec -t on gvisor, exec -d";
        match &self.agent_binary {
            Ok(path) => Check {
                name: "cairn-agent".into(),
                version: Some(format!("{} (static)", path.display())),
                ok: true,
                note: needs.into(),
            },
            Err(why) => Check {
                name: "cairn-agent".into(),
                version: None,
                ok: false,
                note: format!(
                    "{needs}; {why}: sandboxes run a shell init and exec through the runtime"
                ),
            },
        }
    }
}

/// CRIU: its version, whether it is recent enough, and whether `criu check` passes.
async fn criu_check() -> Check {
    let found = cairn_runtime::criu_version().await.ok().flatten();
    let needs = "stateful snapshots of runc sandboxes, and their forks and restores, need CRIU >= 4.1 (Debian 12's 3.17 fails on kernels >= 6.13); gvisor sandboxes do not need it";
    let (ok, note) = match cairn_runtime::criu::require(found) {
        Err(_) => (false, format!("{needs}; install: scripts/install-criu.sh")),
        Ok(_) => match Cmd::new("criu").arg("check").run().await {
            Ok(_) => (true, needs.to_string()),
            Err(e) => (false, format!("{needs}; 'criu check' fails: {e}")),
        },
    };
    Check {
        name: "criu".into(),
        version: found.map(|v| v.to_string()),
        ok,
        note,
    }
}
