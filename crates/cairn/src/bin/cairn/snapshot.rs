//! `cairn snapshot …` and `cairn fork`.

use anyhow::Result;
use clap::Subcommand;
use hyper::Method;
use serde_json::json;

use std::io::IsTerminal;

use cairn_types::api::{
    DiffEntry, ForkBatch, PushInfo, RemoteSnapshotInfo, SandboxInfo, SnapshotInfo,
};

use crate::client::{CliError, Client};
use crate::{enc, output, spinner};

#[derive(Subcommand)]
pub enum SnapshotCommand {
    /// Snapshot a sandbox: a brief pause, then a read-only copy-on-write capture of its files. Prints the id.
    #[command(
        after_help = "Examples:\n  cairn snapshot create sbx-7f3a9c2e --name baseline-passing\n  cairn snapshot create sbx-7f3a9c2e --stateful          # with process memory (gvisor)\n  SNAP=$(cairn snapshot create my-box)"
    )]
    Create {
        /// Sandbox id or name.
        sandbox: String,
        /// Name, unique per sandbox [default: the UTC time].
        #[arg(long)]
        name: Option<String>,
        /// Also capture process memory (gvisor): forks and restores resume the running processes.
        #[arg(long)]
        stateful: bool,
    },
    /// List snapshots, oldest first: the ready ones you took (of one sandbox, or of all yours).
    ///
    /// Automatic snapshots (taken by a pause) and failed, in-progress or deleted ones are left
    /// out unless --all, so the last entry is your latest usable snapshot. BY says who took
    /// each: you (user) or a pause (auto).
    #[command(
        after_help = "Examples:\n  cairn snapshot list sbx-7f3a9c2e\n  cairn snapshot list sbx-7f3a9c2e --json | jq -r '.[-1].id'   # your latest ready snapshot\n  cairn snapshot list builder --all                           # also automatic and failed ones (with their error)\n  cairn snapshot list                                         # every sandbox's\n  cairn snapshot list --remote                                # the ones you pushed to cairnd's remote store"
    )]
    List {
        /// Sandbox id or name (a destroyed sandbox's id or the name it had) [default: all of yours].
        sandbox: Option<String>,
        /// Also automatic, failed, in-progress and deleted snapshots.
        #[arg(long)]
        all: bool,
        /// The snapshots your account pushed to the remote store (cairnd --remote), from any host.
        #[arg(long, conflicts_with_all = ["sandbox", "all"])]
        remote: bool,
    },
    /// Push a ready snapshot to cairnd's remote store (cairnd --remote s3://…): only the
    /// chunks the store lacks are uploaded. Any host on that store can then fork it by id.
    #[command(
        after_help = "Examples:\n  cairn snapshot push baseline\n  cairn snapshot push snap-1b2c3d4e --json     # chunks and bytes uploaded\n  cairn fork snap-1b2c3d4e                      # on another host: pulls it, then forks"
    )]
    Push {
        /// Snapshot: id, NAME or SANDBOX:NAME.
        snapshot: String,
    },
    /// Bring a snapshot your account pushed into this host (same id), without forking it.
    /// 'cairn fork' and 'cairn up --from-snapshot' pull by themselves.
    #[command(
        after_help = "Examples:\n  cairn snapshot pull snap-1b2c3d4e\n  cairn snapshot pull baseline                   # by name, when one pushed snapshot has it\n  cairn snapshot list --remote --json | jq -r '.[].id'"
    )]
    Pull {
        /// Pushed snapshot: id, or NAME.
        snapshot: String,
    },
    /// Draw the lineage: each image, the snapshots taken on top of one another, and where each
    /// sandbox's files descend from (a fork under the snapshot it came from, a restored
    /// sandbox under the snapshot it went back to).
    #[command(
        after_help = "Examples:\n  cairn snapshot tree                  # all your sandboxes and snapshots\n  cairn snapshot tree builder          # the trees that hold sandbox builder or its snapshots\n  cairn snapshot tree --json | jq '.[0].children'"
    )]
    Tree {
        /// Sandbox id or name (a destroyed sandbox's id works too) [default: all of yours].
        sandbox: Option<String>,
    },
    /// Show a snapshot's manifest: parent, source sandbox, image, runtime, sizes.
    #[command(
        after_help = "Examples:\n  cairn snapshot inspect snap-1b2c3d4e --json\n  cairn snapshot inspect builder:baseline"
    )]
    Inspect {
        /// Snapshot: id, NAME (when only one of your sandboxes has it) or SANDBOX:NAME.
        snapshot: String,
    },
    /// Restore a snapshot in place. OVERWRITES the sandbox's files: everything written since the
    /// snapshot is discarded, and its processes restart on the restored files.
    #[command(
        after_help = "Examples:\n  cairn snapshot restore baseline                      # into the sandbox it was taken from\n  cairn snapshot restore builder:baseline             # SANDBOX:NAME when several sandboxes have one\n  cairn snapshot restore snap-1b2c3d4e --to sbx-0a1b2c3d\n  cairn snapshot restore baseline --fresh              # a stateful snapshot's files only: its processes are not resumed"
    )]
    Restore {
        /// Snapshot: id, NAME (when only one of your sandboxes has it) or SANDBOX:NAME.
        snapshot: String,
        /// Restore into this sandbox instead of the source one (same account).
        #[arg(long)]
        to: Option<String>,
        /// With a stateful snapshot: put back its files only and boot on them, without resuming
        /// its processes (for a host or runtime they cannot resume on).
        #[arg(long)]
        fresh: bool,
    },
    /// Delete a snapshot; sandboxes forked or restored from it keep working. With --remote,
    /// delete your pushed copy from the remote store instead (and the chunks no other pushed
    /// snapshot of yours uses); this host's copy, and other hosts' pulled copies, stay.
    #[command(
        after_help = "Examples:\n  cairn snapshot delete snap-1b2c3d4e\n  cairn snapshot delete builder:baseline\n  cairn snapshot delete --remote snap-1b2c3d4e"
    )]
    Delete {
        /// Snapshot: id, NAME (when only one of your sandboxes has it) or SANDBOX:NAME;
        /// with --remote: a pushed snapshot's id or name.
        snapshot: String,
        /// Delete the pushed copy from the remote store (cairnd --remote).
        #[arg(long)]
        remote: bool,
    },
    /// Paths added, modified and deleted since a snapshot: against another snapshot, or the live sandbox.
    #[command(
        after_help = "Examples:\n  cairn snapshot diff baseline                         # against its live sandbox\n  cairn snapshot diff snap-1b2c3d4e snap-5f6a7b8c --json\n  cairn snapshot diff builder:baseline --against builder:step-2"
    )]
    Diff {
        /// The older snapshot: id, NAME or SANDBOX:NAME.
        snapshot: String,
        /// A later snapshot (id, NAME or SANDBOX:NAME) [default: the live sandbox].
        #[arg(conflicts_with = "against_flag")]
        against: Option<String>,
        /// The later snapshot, as a flag (the same as the second argument).
        #[arg(long = "against", value_name = "SNAP")]
        against_flag: Option<String>,
    },
    /// Download a ready snapshot as one archive (files, memory when stateful, manifest,
    /// checksums) that 'cairn snapshot import' brings into any Cairn host.
    #[command(
        after_help = "Examples:\n  cairn snapshot export baseline -o baseline.tar.gz\n  cairn snapshot export snap-1b2c3d4e -o snap.tar.zst\n  cairn snapshot export baseline -o - --format tar.gz | ssh other 'cairn snapshot import -'"
    )]
    Export {
        /// Snapshot: id, NAME or SANDBOX:NAME.
        snapshot: String,
        /// Where to write it (`-`: stdout). Its name picks the format (.tar.gz or .tar.zst).
        #[arg(short = 'o', long = "output")]
        output: String,
        /// tar.zst or tar.gz [default: from the file name, else tar.zst].
        #[arg(long)]
        format: Option<String>,
    },
    /// Print a signed URL that downloads a snapshot's archive with plain curl, no token, until
    /// it expires (default and most: 1h, or what cairnd's --max-link-expiry says).
    #[command(
        after_help = "Examples:\n  cairn snapshot url baseline                 # then: curl -fo baseline.tar.zst URL\n  cairn snapshot url baseline --expires 10m --format tar.gz\n  cairn snapshot url baseline --store         # the remote store's own URL (cairnd --remote)"
    )]
    Url {
        /// Snapshot: id, NAME or SANDBOX:NAME.
        snapshot: String,
        /// How long it works: 90s, 30m, 1h.
        #[arg(long)]
        expires: Option<String>,
        /// tar.zst or tar.gz [default: tar.zst].
        #[arg(long)]
        format: Option<String>,
        /// A pre-signed URL of the remote store (cairnd --remote) instead: the archive is
        /// uploaded there once, and the download does not pass through cairnd.
        #[arg(long)]
        store: bool,
    },
    /// Import a snapshot archive (from 'cairn snapshot export') as a snapshot of your account.
    #[command(
        after_help = "Examples:\n  cairn snapshot import baseline.tar.gz\n  cairn snapshot import snap.tar.zst --name from-alice\n  cairn fork $(cairn snapshot import baseline.tar.gz)"
    )]
    Import {
        /// The archive (`-`: stdin).
        file: std::path::PathBuf,
        /// Name of the imported snapshot [default: the name it had].
        #[arg(long)]
        name: Option<String>,
    },
}

pub async fn run(client: &Client, cmd: SnapshotCommand, json: bool) -> Result<()> {
    match cmd {
        SnapshotCommand::Export {
            snapshot,
            output,
            format,
        } => crate::share::export(client, &snapshot, &output, format.as_deref(), json).await?,
        SnapshotCommand::Url {
            snapshot,
            expires,
            format,
            store,
        } => {
            let mut path = format!("/v1/snapshots/{}/link?", enc(&snapshot));
            if store {
                path.push_str("store=true&");
            }
            if let Some(e) = &expires {
                path.push_str(&format!("expires={}&", enc(e)));
            }
            if let Some(f) = &format {
                path.push_str(&format!("format={}", enc(f.trim_start_matches('.'))));
            }
            // With --store the archive may be uploaded first.
            let pb = store.then(|| spinner(&format!("putting {snapshot} in the store")));
            let link: Result<cairn_types::api::SnapshotLinkInfo> =
                client.json(Method::POST, &path, None).await;
            if let Some(pb) = pb {
                pb.finish_and_clear();
            }
            let link = link?;
            output::show(json, &link, |l| outln!("{}", l.url))?;
        }
        SnapshotCommand::Import { file, name } => {
            crate::share::import(client, &file, name.as_deref(), json).await?
        }
        SnapshotCommand::Create {
            sandbox,
            name,
            stateful,
        } => {
            let path = format!("/v1/sandboxes/{}/snapshots", enc(&sandbox));
            let body = json!({ "name": name, "stateful": stateful });
            let res: Result<SnapshotInfo> = if stateful {
                // A bar of the memory as cairnd receives it, from its progress stream.
                let shown = std::io::stderr().is_terminal();
                crate::progress::request(client, Method::POST, &path, &body, shown).await
            } else {
                let pb = spinner(&format!("snapshotting {sandbox}"));
                let res = client.json(Method::POST, &path, Some(body)).await;
                pb.finish_and_clear();
                res
            };
            output::show(json, &res?, |s| outln!("{}", s.id))?;
        }
        SnapshotCommand::List { remote: true, .. } => {
            let list: Vec<RemoteSnapshotInfo> = client
                .json(Method::GET, "/v1/remote/snapshots", None)
                .await?;
            output::show(json, &list, |l| output::remote_snapshots(l))?;
        }
        SnapshotCommand::Push { snapshot } => {
            let pb = spinner(&format!("pushing {snapshot}"));
            let res: Result<PushInfo> = client
                .json(
                    Method::POST,
                    &format!("/v1/snapshots/{}/push", enc(&snapshot)),
                    None,
                )
                .await;
            pb.finish_and_clear();
            output::show(json, &res?, |p| {
                if p.already_pushed {
                    outln!("{} (pushed already: nothing uploaded)", p.snapshot);
                } else {
                    outln!(
                        "{} ({} chunks, {} uploaded: {} of {}, in {:.1}s)",
                        p.snapshot,
                        p.chunks,
                        p.uploaded_chunks,
                        cairn_types::format_bytes(p.uploaded_bytes),
                        cairn_types::format_bytes(p.bytes),
                        p.seconds
                    );
                }
            })?;
        }
        SnapshotCommand::Pull { snapshot } => {
            let pb = spinner(&format!("pulling {snapshot}"));
            let res: Result<SnapshotInfo> = client
                .json(
                    Method::POST,
                    &format!("/v1/remote/snapshots/{}/pull", enc(&snapshot)),
                    None,
                )
                .await;
            pb.finish_and_clear();
            output::show(json, &res?, |s| outln!("{}", s.id))?;
        }
        SnapshotCommand::List { sandbox, all, .. } => {
            let mut path = match &sandbox {
                None => "/v1/snapshots".to_string(),
                Some(s) => format!("/v1/sandboxes/{}/snapshots", enc(s)),
            };
            if all {
                path.push_str("?all=true");
            }
            let list: Vec<SnapshotInfo> = client.json(Method::GET, &path, None).await?;
            output::show(json, &list, |l| output::snapshots(l, sandbox.is_none()))?;
        }
        SnapshotCommand::Tree { sandbox } => {
            let snapshots: Vec<SnapshotInfo> = client
                .json(Method::GET, "/v1/snapshots?all=true", None)
                .await?;
            let sandboxes: Vec<SandboxInfo> =
                client.json(Method::GET, "/v1/sandboxes", None).await?;
            // A name names a live sandbox; anything else is taken as a (perhaps destroyed)
            // sandbox's id, which its snapshots still carry.
            let focus = sandbox.map(|s| {
                sandboxes
                    .iter()
                    .find(|b| b.id == s || b.name.as_deref() == Some(s.as_str()))
                    .map_or(s.clone(), |b| b.id.clone())
            });
            let roots = crate::tree::build(&snapshots, &sandboxes, focus.as_deref());
            if json {
                output::print_json(&roots)?;
            } else if roots.is_empty() {
                eprintln!(
                    "cairn: nothing to draw: no sandbox or ready snapshot{}",
                    match &focus {
                        Some(f) => format!(" of {f}"),
                        None => String::new(),
                    }
                );
            } else {
                outln!("{}", crate::tree::render(&roots).trim_end());
            }
        }
        SnapshotCommand::Inspect { snapshot } => {
            let s: SnapshotInfo = client
                .json(
                    Method::GET,
                    &format!("/v1/snapshots/{}", enc(&snapshot)),
                    None,
                )
                .await?;
            output::show(json, &s, output::snapshot)?;
        }
        SnapshotCommand::Restore {
            snapshot,
            to,
            fresh,
        } => {
            let pb = spinner(&format!("restoring {snapshot}"));
            let res: Result<SandboxInfo> = client
                .json(
                    Method::POST,
                    &format!("/v1/snapshots/{}/restore", enc(&snapshot)),
                    Some(json!({ "to": to, "fresh": fresh })),
                )
                .await;
            pb.finish_and_clear();
            output::show(json, &res?, |s| outln!("{}", s.id))?;
        }
        SnapshotCommand::Delete {
            snapshot,
            remote: true,
        } => {
            let info: cairn_types::remote::RemoteDeleteInfo = client
                .json(
                    Method::DELETE,
                    &format!("/v1/remote/snapshots/{}", enc(&snapshot)),
                    None,
                )
                .await?;
            output::show(json, &info, |i| outln!("{}", i.snapshot))?;
        }
        SnapshotCommand::Delete { snapshot, .. } => {
            client
                .empty(Method::DELETE, &format!("/v1/snapshots/{}", enc(&snapshot)))
                .await?;
            output::show(json, &json!({ "deleted": snapshot }), |_| {
                outln!("{snapshot}")
            })?;
        }
        SnapshotCommand::Diff {
            snapshot,
            against,
            against_flag,
        } => {
            let mut path = format!("/v1/snapshots/{}/diff", enc(&snapshot));
            if let Some(b) = against.or(against_flag) {
                path.push_str(&format!("?against={}", enc(&b)));
            }
            let list: Vec<DiffEntry> = client.json(Method::GET, &path, None).await?;
            output::show(json, &list, |l| output::diff(l))?;
        }
    }
    Ok(())
}

/// `cairn fork SNAP --count N`: N sandboxes from one snapshot, made by cairnd in one
/// request (`POST /v1/snapshots/{id}/fork`), with a progress bar on a terminal.
pub async fn fork(
    client: &Client,
    snapshot: &str,
    count: u32,
    fresh: bool,
    secrets: &cairn_types::Secrets,
    json: bool,
) -> Result<()> {
    if count == 0 || count > 256 {
        return Err(CliError::invalid(format!("invalid --count {count}: give 1 to 256")).into());
    }
    let body = json!({ "count": count, "fresh": fresh, "secrets": secrets });
    let path = format!("/v1/snapshots/{}/fork", enc(snapshot));
    // The bar follows cairnd's progress stream (one report per fork made).
    let shown = std::io::stderr().is_terminal() && count > 1;
    let batch: ForkBatch =
        crate::progress::request(client, Method::POST, &path, &body, shown).await?;
    let made = batch.sandboxes;
    if let Some(first) = batch.failed.first() {
        let ids: Vec<&str> = made.iter().map(|s| s.id.as_str()).collect();
        if !json {
            eprintln!(
                "cairn: {} of {count} forks were made: {}",
                made.len(),
                ids.join(" ")
            );
            for s in &made {
                outln!("{}", s.id);
            }
        }
        // One error that also says which forks exist.
        return Err(CliError {
            code: first.code.clone(),
            message: format!(
                "{} of {count} forks were made ({}): {}",
                made.len(),
                ids.join(" "),
                first.message
            ),
            details: Some(json!({ "made": ids, "failed": batch.failed })),
        }
        .into());
    }
    output::show(json, &made, |m| {
        for s in m {
            outln!("{}", s.id);
        }
    })
}
