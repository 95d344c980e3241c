//! `cairn cp`: copies between a sandbox or snapshot and the local machine, with `docker
//! cp`'s conventions.
//!
//! One side is `REF:/path` (a sandbox's id or name, or a snapshot's id, NAME or
//! SANDBOX:NAME), the other a local path, or `-` for a tar stream on stdin or stdout.
//! Directories (and symlinks, which are copied as links) travel as tar streams; a file as
//! its bytes. Copying to an existing directory puts the source inside it under its own
//! name; to a path that does not exist, names the copy so.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use bytes::Bytes;
use futures_util::StreamExt;
use http_body_util::{BodyExt, StreamBody};
use hyper::body::Frame;
use hyper::Method;
use tokio::io::AsyncWriteExt;

use cairn_types::api::FileEntry;

use crate::client::{Body, CliError, Client};
use crate::files::{locate, query, stat, Target};
use crate::output;

/// `cairn cp`'s help.
pub const CP_HELP: &str = "One side is REF:/path: a sandbox (id or name) or a snapshot (id, NAME or SANDBOX:NAME, read-only) and an absolute path in it; the other a local path, or - for a tar stream on stdout (copy out) or stdin (copy in). Directories are copied whole (as tar streams), symlinks as links (never followed). Into an existing directory the copy keeps its name; otherwise it takes the destination's.\nWriting into a sandbox needs it stopped, or running under runc.\n\nExamples:\n  cairn cp sbx-7f3a9c2e:/etc/hosts .\n  cairn cp ./src sbx-7f3a9c2e:/root/src          # a directory: /root/src (or /root/src/src if it exists)\n  cairn cp builder:baseline:/root/out ./out      # from a snapshot\n  cairn cp sbx-7f3a9c2e:/var/log - | tar -tv     # a tar stream on stdout\n  tar -C dir -c . | cairn cp - sbx-7f3a9c2e:/srv # extract a tar stream into /srv";

/// One side of `cp`.
enum Side {
    Remote(String, String),
    Local(PathBuf),
    Stream,
}

fn side(arg: &str) -> Side {
    if arg == "-" {
        return Side::Stream;
    }
    if let Some(at) = arg.find(":/") {
        let reference = &arg[..at];
        if !reference.is_empty() && !reference.contains('/') {
            return Side::Remote(reference.to_string(), arg[at + 1..].to_string());
        }
    }
    Side::Local(arg.into())
}

/// `cairn cp SRC DST`.
pub async fn cp(client: &Client, src: &str, dst: &str, json: bool) -> Result<()> {
    match (side(src), side(dst)) {
        (Side::Remote(r, path), local @ (Side::Local(_) | Side::Stream)) => {
            let t = locate(client, &r).await?;
            copy_out(client, &t, &path, local, json).await
        }
        (local @ (Side::Local(_) | Side::Stream), Side::Remote(r, path)) => {
            let t = locate(client, &r).await?;
            let Target::Sandbox(sandbox) = t else {
                return Err(CliError::invalid(format!(
                    "'{r}' is a snapshot, whose files are read-only: fork it ('cairn fork {r}') and copy into the fork"
                ))
                .into());
            };
            copy_in(client, &sandbox, local, &path, json).await
        }
        (Side::Remote(..), Side::Remote(..)) => Err(CliError::invalid(
            "both sides are in sandboxes: copy out to a local path first, then in",
        )
        .into()),
        _ => Err(CliError::invalid(
            "neither side is in a sandbox: write one as SANDBOX:/absolute/path (or SNAPSHOT:/path to copy out of a snapshot)",
        )
        .into()),
    }
}

async fn copy_out(client: &Client, t: &Target, path: &str, to: Side, json: bool) -> Result<()> {
    let entry = stat(client, t, path)
        .await?
        .ok_or_else(|| CliError::new("not_found", format!("no such file or directory: {path}")))?;
    let archive = entry.kind != "file" || matches!(to, Side::Stream);
    let uri = format!(
        "{}?{}{}",
        t.base(),
        query(path),
        if archive { "&archive=tar" } else { "" }
    );
    let resp = client.send(Method::GET, &uri, None).await?;
    let pb = output::transfer_bar((!archive).then_some(entry.size), "copying", path, json);
    let counted = pb.clone();
    let body = resp.into_body().into_data_stream().map(move |chunk| {
        chunk
            .inspect(|b| counted.inc(b.len() as u64))
            .map_err(|e| std::io::Error::other(format!("the transfer broke off: {e}")))
    });
    let mut reader = tokio_util::io::StreamReader::new(body);
    let name = Path::new(path)
        .file_name()
        .map(|n| n.to_owned())
        .unwrap_or_else(|| ".".into());
    let done = match to {
        Side::Stream => {
            let mut out = tokio::io::stdout();
            crate::output::or_gone(tokio::io::copy(&mut reader, &mut out).await)?;
            crate::output::or_gone(out.flush().await).map_err(Into::into)
        }
        Side::Local(dst) if !archive => {
            let dst = if dst.is_dir() { dst.join(&name) } else { dst };
            // A new file takes the source's mode; an existing one (or /dev/null) keeps its own.
            let new = std::fs::symlink_metadata(&dst).is_err();
            let mut file = tokio::fs::File::create(&dst)
                .await
                .with_context(|| format!("cannot create '{}'", dst.display()))?;
            tokio::io::copy(&mut reader, &mut file).await?;
            file.flush().await?;
            if new {
                file.sync_all().await?;
                std::fs::set_permissions(
                    &dst,
                    std::os::unix::fs::PermissionsExt::from_mode(entry.mode),
                )
                .with_context(|| format!("cannot set the mode of '{}'", dst.display()))?;
            }
            Ok(())
        }
        Side::Local(dst) => {
            let bridge = tokio_util::io::SyncIoBridge::new(reader);
            tokio::task::spawn_blocking(move || unpack(bridge, &dst, &name))
                .await
                .context("the tar extractor stopped")?
        }
        Side::Remote(..) => unreachable_side(),
    };
    pb.finish_and_clear();
    done
}

fn unreachable_side() -> Result<()> {
    Err(CliError::invalid("a copy needs one local side").into())
}

/// Extracts a tar stream whose entries are under `name` (the source's name): into `dst`
/// when it is a directory (the copy keeps its name), else as `dst` itself.
fn unpack(reader: impl std::io::Read, dst: &Path, name: &std::ffi::OsStr) -> Result<()> {
    let open = |r| {
        let mut a = tar::Archive::new(r);
        a.set_preserve_permissions(true);
        a.set_preserve_ownerships(rustix::process::geteuid().is_root());
        a.set_overwrite(true);
        a
    };
    if dst.is_dir() && name != "." {
        return open(reader)
            .unpack(dst)
            .with_context(|| format!("cannot extract into '{}'", dst.display()));
    }
    if name == "." {
        std::fs::create_dir_all(dst)
            .with_context(|| format!("cannot create '{}'", dst.display()))?;
        return open(reader)
            .unpack(dst)
            .with_context(|| format!("cannot extract into '{}'", dst.display()));
    }
    // Into a scratch directory beside `dst` (the tar crate keeps every entry inside it),
    // then renamed to `dst`.
    let parent = match dst.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let scratch = tempfile::Builder::new()
        .prefix(".cairn-cp-")
        .tempdir_in(&parent)
        .with_context(|| format!("cannot write into '{}'", parent.display()))?;
    open(reader)
        .unpack(scratch.path())
        .with_context(|| format!("cannot extract into '{}'", parent.display()))?;
    std::fs::rename(scratch.path().join(name), dst)
        .with_context(|| format!("cannot create '{}'", dst.display()))
}

async fn copy_in(client: &Client, sandbox: &str, from: Side, path: &str, json: bool) -> Result<()> {
    let t = Target::Sandbox(sandbox.to_string());
    let there = stat(client, &t, path).await?;
    let into_dir = there.as_ref().is_some_and(|e| e.kind == "directory");
    let (uri, reader, total, packer): (
        String,
        Box<dyn tokio::io::AsyncRead + Send + Sync + Unpin>,
        Option<u64>,
        _,
    ) = match from {
        Side::Stream => (
            format!("{}?{}&archive=tar", t.base(), query(path)),
            Box::new(tokio::io::stdin()),
            None,
            None,
        ),
        Side::Local(src) => {
            let md = std::fs::symlink_metadata(&src)
                .map_err(|e| CliError::invalid(format!("cannot read '{}': {e}", src.display())))?;
            let src_name = src
                .canonicalize()
                .ok()
                .and_then(|p| p.file_name().map(|n| n.to_owned()))
                .unwrap_or_else(|| "root".into());
            if md.is_file() {
                let target = if into_dir {
                    format!(
                        "{}/{}",
                        path.trim_end_matches('/'),
                        src_name.to_string_lossy()
                    )
                } else {
                    path.to_string()
                };
                let mode = std::os::unix::fs::PermissionsExt::mode(&md.permissions()) & 0o7777;
                let file = tokio::fs::File::open(&src)
                    .await
                    .with_context(|| format!("cannot open '{}'", src.display()))?;
                (
                    format!("{}?{}&mode={mode:o}", t.base(), query(&target)),
                    Box::new(file),
                    Some(md.len()),
                    None,
                )
            } else {
                // A directory or link goes as a tar stream under the name it gets there.
                let (dir, stored) = if into_dir {
                    (path.to_string(), src_name)
                } else {
                    let p = Path::new(path);
                    let parent = p
                        .parent()
                        .map_or("/".to_string(), |d| d.display().to_string());
                    let name = p.file_name().map(|n| n.to_owned()).ok_or_else(|| {
                        CliError::invalid(format!("'{path}' names no directory to copy into"))
                    })?;
                    (parent, name)
                };
                let (writer, reader) = tokio::io::duplex(1 << 20);
                let packer = tokio::task::spawn_blocking(move || pack(&src, &stored, writer));
                (
                    format!("{}?{}&archive=tar", t.base(), query(&dir)),
                    Box::new(reader),
                    None,
                    Some(packer),
                )
            }
        }
        Side::Remote(..) => return unreachable_side(),
    };
    let pb = output::transfer_bar(total, "copying", path, json);
    let counted = pb.clone();
    let stream = tokio_util::io::ReaderStream::with_capacity(reader, 1 << 20).map(move |chunk| {
        chunk.map(|bytes: Bytes| {
            counted.inc(bytes.len() as u64);
            Frame::data(bytes)
        })
    });
    let body: Body = BodyExt::boxed(StreamBody::new(stream));
    let sent = client
        .send_body(Method::PUT, &uri, Some("application/octet-stream"), body)
        .await;
    pb.finish_and_clear();
    // cairnd's refusal first: it may have answered before reading the whole stream, which
    // then broke off on the packer's side.
    let resp = sent?;
    if let Some(packer) = packer {
        packer
            .await
            .context("the directory packer failed")?
            .context("cannot pack the local directory")?;
    }
    let bytes = resp.into_body().collect().await?.to_bytes();
    let entry: FileEntry = crate::client::decode_answer(&bytes)?;
    output::show(json, &entry, |_| {})
}

/// Writes `src` (a directory with everything in it, or a link) as a tar stream whose entries
/// are under `stored`.
fn pack(src: &Path, stored: &std::ffi::OsStr, writer: tokio::io::DuplexStream) -> Result<()> {
    let bridge = tokio_util::io::SyncIoBridge::new(writer);
    let mut tar = tar::Builder::new(bridge);
    tar.follow_symlinks(false);
    tar.mode(tar::HeaderMode::Complete);
    if std::fs::symlink_metadata(src)?.is_dir() {
        tar.append_dir_all(stored, src)?;
    } else {
        tar.append_path_with_name(src, stored)?;
    }
    let mut bridge = tar.into_inner()?;
    std::io::Write::flush(&mut bridge)?;
    Ok(())
}
