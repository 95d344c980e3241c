//! `cairn files ls | stat | mkdir | rm | mv`: files of sandboxes and snapshots through the
//! files API, and what `cairn cp` shares with them: whether a reference is a sandbox or a
//! snapshot, and what a path is.

use anyhow::Result;
use clap::Subcommand;
use hyper::Method;
use serde_json::json;

use cairn_types::api::FileEntry;

use crate::client::{ApiFailure, CliError, Client};
use crate::{enc, output};

/// The files subcommands.
#[derive(Subcommand)]
pub enum FilesCommand {
    /// List a directory of a sandbox or snapshot (links are shown, never followed).
    #[command(
        after_help = "Examples:\n  cairn files ls sbx-7f3a9c2e /etc\n  cairn files ls builder:baseline /root --depth 3\n  cairn files ls sbx-7f3a9c2e / --json | jq -r '.[] | select(.kind == \"file\") | .path'"
    )]
    Ls {
        /// Sandbox (id or name) or snapshot (id, NAME or SANDBOX:NAME).
        target: String,
        /// Absolute path of a directory.
        #[arg(default_value = "/")]
        path: String,
        /// Levels to list (1: the directory's own entries; at most 64).
        #[arg(long, default_value_t = 1)]
        depth: u32,
    },
    /// Show what a path is: kind, size, mode, owner, time, a link's target.
    #[command(after_help = "Example:\n  cairn files stat sbx-7f3a9c2e /etc/hosts --json")]
    Stat {
        /// Sandbox (id or name) or snapshot (id, NAME or SANDBOX:NAME).
        target: String,
        /// Absolute path.
        path: String,
    },
    /// Make a directory in a sandbox.
    #[command(after_help = "Example:\n  cairn files mkdir sbx-7f3a9c2e /srv/data/cache -p")]
    Mkdir {
        /// Sandbox id or name.
        sandbox: String,
        /// Absolute path.
        path: String,
        /// Make missing parents too; no error when it exists.
        #[arg(short, long)]
        parents: bool,
    },
    /// Remove a file, link or directory of a sandbox.
    #[command(after_help = "Example:\n  cairn files rm sbx-7f3a9c2e /tmp/build -r")]
    Rm {
        /// Sandbox id or name.
        sandbox: String,
        /// Absolute path.
        path: String,
        /// Remove a directory and everything below it.
        #[arg(short, long)]
        recursive: bool,
    },
    /// Move (rename) a file or directory inside a sandbox.
    #[command(after_help = "Example:\n  cairn files mv sbx-7f3a9c2e /root/a.txt /root/b.txt")]
    Mv {
        /// Sandbox id or name.
        sandbox: String,
        /// Absolute path of what to move.
        from: String,
        /// Its new absolute path.
        to: String,
    },
}

/// Whose files.
pub(crate) enum Target {
    Sandbox(String),
    Snapshot(String),
}

impl Target {
    pub(crate) fn base(&self) -> String {
        match self {
            Target::Sandbox(s) => format!("/v1/sandboxes/{}/files", enc(s)),
            Target::Snapshot(s) => format!("/v1/snapshots/{}/files", enc(s)),
        }
    }
}

/// Whether `reference` is a sandbox or a snapshot: `snap-…` and `SANDBOX:NAME` are
/// snapshots; otherwise a sandbox of that id or name, else a snapshot of that name.
pub(crate) async fn locate(client: &Client, reference: &str) -> Result<Target> {
    if reference.starts_with("snap-") || reference.contains(':') {
        return Ok(Target::Snapshot(reference.to_string()));
    }
    let sandbox = format!("/v1/sandboxes/{}", enc(reference));
    match client
        .json::<serde_json::Value>(Method::GET, &sandbox, None)
        .await
    {
        Ok(_) => Ok(Target::Sandbox(reference.to_string())),
        Err(e) if is_not_found(&e) => {
            let snapshot = format!("/v1/snapshots/{}", enc(reference));
            match client
                .json::<serde_json::Value>(Method::GET, &snapshot, None)
                .await
            {
                Ok(_) => Ok(Target::Snapshot(reference.to_string())),
                Err(_) => Err(e),
            }
        }
        Err(e) => Err(e),
    }
}

fn is_not_found(e: &anyhow::Error) -> bool {
    e.downcast_ref::<ApiFailure>()
        .is_some_and(|f| f.code == "not_found")
}

/// `?path=…` with the path percent-encoded.
pub(crate) fn query(path: &str) -> String {
    format!("path={}", enc(path))
}

/// What `path` of `target` is, or `None` when it does not exist.
pub(crate) async fn stat(
    client: &Client,
    target: &Target,
    path: &str,
) -> Result<Option<FileEntry>> {
    let uri = format!("{}/stat?{}", target.base(), query(path));
    match client.json(Method::GET, &uri, None).await {
        Ok(e) => Ok(Some(e)),
        // A missing file, not a missing sandbox or snapshot.
        Err(e) if is_not_found(&e) && e.to_string().starts_with("no such file") => Ok(None),
        Err(e) => Err(e),
    }
}

/// Runs a files subcommand.
pub async fn run(client: &Client, command: FilesCommand, json: bool) -> Result<()> {
    match command {
        FilesCommand::Ls {
            target,
            path,
            depth,
        } => {
            let t = locate(client, &target).await?;
            let uri = format!("{}/list?{}&depth={depth}", t.base(), query(&path));
            let list: Vec<FileEntry> = client.json(Method::GET, &uri, None).await?;
            output::show(json, &list, |list| {
                for e in list {
                    outln!("{}", line(e));
                }
            })
        }
        FilesCommand::Stat { target, path } => {
            let t = locate(client, &target).await?;
            let e = stat(client, &t, &path).await?.ok_or_else(|| {
                CliError::new("not_found", format!("no such file or directory: {path}"))
            })?;
            output::show(json, &e, |e| outln!("{}", line(e)))
        }
        FilesCommand::Mkdir {
            sandbox,
            path,
            parents,
        } => {
            let uri = format!("/v1/sandboxes/{}/files/mkdir", enc(&sandbox));
            let e: FileEntry = client
                .json(
                    Method::POST,
                    &uri,
                    Some(json!({ "path": path, "parents": parents })),
                )
                .await?;
            output::show(json, &e, |e| outln!("{}", e.path))
        }
        FilesCommand::Rm {
            sandbox,
            path,
            recursive,
        } => {
            let uri = format!(
                "/v1/sandboxes/{}/files?{}&recursive={recursive}",
                enc(&sandbox),
                query(&path)
            );
            client.empty(Method::DELETE, &uri).await?;
            output::show(json, &json!({ "removed": path }), |_| outln!("{path}"))
        }
        FilesCommand::Mv { sandbox, from, to } => {
            let uri = format!("/v1/sandboxes/{}/files/move", enc(&sandbox));
            let e: FileEntry = client
                .json(Method::POST, &uri, Some(json!({ "from": from, "to": to })))
                .await?;
            output::show(json, &e, |e| outln!("{}", e.path))
        }
    }
}

/// One `ls -l`-like line.
fn line(e: &FileEntry) -> String {
    let kind = match e.kind.as_str() {
        "directory" => 'd',
        "symlink" => 'l',
        "fifo" => 'p',
        "socket" => 's',
        "char_device" => 'c',
        "block_device" => 'b',
        _ => '-',
    };
    let mut mode = String::from(kind);
    for (bit, c) in [
        (0o400, 'r'),
        (0o200, 'w'),
        (0o100, 'x'),
        (0o40, 'r'),
        (0o20, 'w'),
        (0o10, 'x'),
        (0o4, 'r'),
        (0o2, 'w'),
        (0o1, 'x'),
    ] {
        mode.push(if e.mode & bit != 0 { c } else { '-' });
    }
    let when = chrono::DateTime::from_timestamp(e.mtime, 0)
        .map(|t| t.format("%Y-%m-%d %H:%M").to_string())
        .unwrap_or_default();
    let link = e
        .target
        .as_ref()
        .map(|t| format!(" -> {t}"))
        .unwrap_or_default();
    format!(
        "{mode} {:>5} {:>5} {:>10} {when} {}{link}",
        e.uid, e.gid, e.size, e.path
    )
}
