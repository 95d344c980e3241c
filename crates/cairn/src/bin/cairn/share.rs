//! `cairn snapshot export | import`: snapshots that leave the host as one archive.

use std::io::Write;
use std::path::Path;
use std::time::Instant;

use anyhow::{Context, Result};
use bytes::Bytes;
use futures_util::StreamExt;
use http_body_util::{BodyExt, StreamBody};
use hyper::body::Frame;
use hyper::Method;
use serde::Serialize;

use cairn_types::api::{frames, ProgressEvent, SnapshotInfo};

use crate::client::{full, Body, CliError, Client};
use crate::durable::DurableFile;
use crate::{enc, output};

/// What `cairn snapshot export --json` prints.
#[derive(Serialize)]
struct Exported {
    snapshot: String,
    path: String,
    format: String,
    bytes: u64,
    seconds: f64,
}

/// The archive format for `output` (`--format` wins, then the file name; `tar.zst` by default).
fn format_for(output: &str, format: Option<&str>) -> Result<&'static str> {
    let f = match format {
        Some(f) => f.trim_start_matches('.'),
        None if output.ends_with(".tar.gz") || output.ends_with(".tgz") => "tar.gz",
        None => "tar.zst",
    };
    match f {
        "tar.zst" | "zst" => Ok("tar.zst"),
        "tar.gz" | "gz" | "tgz" => Ok("tar.gz"),
        other => Err(CliError::invalid(format!(
            "unknown archive format '{other}': use tar.zst or tar.gz"
        ))
        .into()),
    }
}

/// `cairn snapshot export SNAP -o FILE`: downloads the archive into FILE (through a
/// temporary name, renamed only once the archive arrived whole) or to stdout (`-`).
pub async fn export(
    client: &Client,
    snapshot: &str,
    output_path: &str,
    format: Option<&str>,
    json: bool,
) -> Result<()> {
    let format = format_for(output_path, format)?;
    let started = Instant::now();
    let resp = client
        .send_accepting(
            Method::GET,
            &format!("/v1/snapshots/{}/archive?format={format}", enc(snapshot)),
            None,
            Some(frames::ARCHIVE_FRAMES),
            full(Bytes::new()),
        )
        .await?;
    let to_stdout = output_path == "-";
    // A file is written under a temporary name, renamed only once the archive arrived whole.
    let mut out = if to_stdout {
        Sink::Stdout(std::io::BufWriter::with_capacity(
            1 << 20,
            std::io::stdout(),
        ))
    } else {
        let file = DurableFile::create(Path::new(output_path))
            .with_context(|| format!("cannot write '{output_path}'"))?;
        Sink::File(std::io::BufWriter::with_capacity(1 << 20, file))
    };
    let bytes = receive(resp, &mut out, json || to_stdout, snapshot).await?;
    if let Sink::File(file) = out {
        file.into_inner()
            .map_err(|e| e.into_error())
            .and_then(DurableFile::commit)
            .with_context(|| format!("cannot write '{output_path}'"))?;
    }
    let done = Exported {
        snapshot: snapshot.to_string(),
        path: output_path.to_string(),
        format: format.to_string(),
        bytes,
        seconds: started.elapsed().as_secs_f64(),
    };
    if to_stdout && !json {
        return Ok(());
    }
    output::show(json, &done, |d| {
        eprintln!(
            "exported {} to {} ({})",
            d.snapshot,
            d.path,
            cairn_types::format_bytes(d.bytes)
        )
    })
}

/// Where an export goes: stdout, or a file renamed into place once whole (dropped
/// unfinished, it leaves nothing).
enum Sink {
    Stdout(std::io::BufWriter<std::io::Stdout>),
    File(std::io::BufWriter<DurableFile>),
}

impl Write for Sink {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        match self {
            Sink::Stdout(w) => w.write(data),
            Sink::File(w) => w.write(data),
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        match self {
            Sink::Stdout(w) => w.flush(),
            Sink::File(w) => w.flush(),
        }
    }
}

/// Copies the archive in `resp` into `out`, with a progress bar, and returns its size; a
/// body cut off midway, or ending in an error, is an error. The archive comes in frames
/// between progress reports (a cairnd that does not send frames sends it plain).
async fn receive(
    resp: hyper::Response<hyper::body::Incoming>,
    out: &mut Sink,
    quiet: bool,
    snapshot: &str,
) -> Result<u64> {
    let framed = resp
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with(frames::ARCHIVE_FRAMES));
    let mut body = resp.into_body();
    let pb = output::transfer_bar(None, "exporting", snapshot, quiet);
    let mut reader = frames::FrameReader::default();
    let mut bytes = 0u64;
    let mut end: Option<ProgressEvent> = None;
    let broke = |e: &dyn std::fmt::Display| {
        CliError::connection(format!(
            "the export of {snapshot} failed midway ({e}): nothing was kept; see cairnd's log, or try again"
        ))
    };
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| broke(&e))?;
        let Ok(data) = frame.into_data() else {
            continue;
        };
        if !framed {
            crate::output::or_gone(out.write_all(&data)).context("cannot write the archive")?;
            bytes += data.len() as u64;
            pb.set_position(bytes);
            continue;
        }
        let mut failed_write = None;
        let read = reader.read(&data, &mut |piece| {
            match piece {
                frames::Piece::Data(d) if end.is_none() => {
                    if let Err(e) = out.write_all(d) {
                        let kind = e.kind();
                        failed_write = Some(e);
                        return Err(std::io::Error::new(kind, "cannot write the archive"));
                    }
                    bytes += d.len() as u64;
                }
                frames::Piece::Event(ProgressEvent::Progress { done, total, .. }) => {
                    if let Some(total) = total.filter(|t| pb.length() != Some(*t)) {
                        output::determinate(&pb, total, "exporting");
                    }
                    pb.set_position(done);
                }
                frames::Piece::Event(e) if end.is_none() => end = Some(e),
                _ => return Err(std::io::Error::other("more came after the archive's end")),
            }
            Ok(())
        });
        if let Some(e) = failed_write {
            crate::output::or_gone(Err::<(), _>(e)).context("cannot write the archive")?;
        }
        read.map_err(|e| broke(&e))?;
    }
    pb.finish_and_clear();
    match end {
        _ if !framed => {}
        Some(ProgressEvent::Result { .. }) if reader.at_boundary() => {}
        Some(ProgressEvent::Error { status, error }) => {
            let mut failed = crate::progress::failure(status, error);
            failed.message = format!("the export of {snapshot} failed midway: {}", failed.message);
            return Err(failed.into());
        }
        _ => return Err(broke(&"cairnd ended it early").into()),
    }
    crate::output::or_gone(out.flush()).context("cannot write the archive")?;
    Ok(bytes)
}

/// `cairn snapshot import FILE [--name N]`: uploads the archive (`-`: stdin).
pub async fn import(client: &Client, path: &Path, name: Option<&str>, json: bool) -> Result<()> {
    let (reader, total): (Box<dyn tokio::io::AsyncRead + Send + Sync + Unpin>, _) =
        if path.as_os_str() == "-" {
            (Box::new(tokio::io::stdin()), None)
        } else {
            let file = tokio::fs::File::open(path)
                .await
                .map_err(|e| CliError::invalid(format!("cannot read '{}': {e}", path.display())))?;
            let len = file.metadata().await.map(|m| m.len()).ok();
            (Box::new(file), len)
        };
    let pb = output::transfer_bar(total, "importing", &path.display().to_string(), json);
    let counted = pb.clone();
    let stream = tokio_util::io::ReaderStream::with_capacity(reader, 1 << 20).map(move |chunk| {
        chunk.map(|bytes: Bytes| {
            counted.inc(bytes.len() as u64);
            Frame::data(bytes)
        })
    });
    let body: Body = BodyExt::boxed(StreamBody::new(stream));
    let uri = match name {
        Some(n) => format!("/v1/snapshots?name={}", enc(n)),
        None => "/v1/snapshots".to_string(),
    };
    let sent = client
        .send_body(Method::POST, &uri, Some("application/octet-stream"), body)
        .await;
    pb.finish_and_clear();
    let bytes = sent?.into_body().collect().await?.to_bytes();
    let snap: SnapshotInfo = crate::client::decode_answer(&bytes)?;
    output::show(json, &snap, |s| outln!("{}", s.id))
}
