//! `cairn image import | pull | login | logout | ls | rm | publish | unpublish`.
//!
//! Over TCP an import uploads the archive (a directory is sent as a tar stream made on the
//! fly), with a progress bar; over the unix socket the operator's daemon reads the path
//! itself unless `--upload` is given.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result};
use bytes::Bytes;
use clap::Subcommand;
use futures_util::StreamExt;
use http_body_util::{BodyExt, StreamBody};
use hyper::body::Frame;
use hyper::Method;
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::json;

use cairn_types::api::ImageInfo;

use crate::client::{Body, CliError, Client};
use crate::{enc, output};

/// The image subcommands.
#[derive(Subcommand)]
pub enum ImageCommand {
    /// Import a root filesystem directory, an OCI image archive / layout tarball or a
    /// `docker save` archive (plain, gzip or zstd). Over TCP it is uploaded; over the unix
    /// socket cairnd reads the path itself (the operator's way), unless --upload.
    #[command(
        after_help = "Examples:\n  cairn image import /srv/rootfs --name base\n  cairn image import ./alpine-oci.tar --name alpine\n  CAIRN_HOST=http://10.0.0.5:7421 cairn image import ./py.tar.gz --name py   # uploads it\n  cairn image import /srv/rootfs --name base --public                       # operator: every account may use it"
    )]
    Import {
        /// Directory or .tar/.tar.gz/.tar.zst file.
        path: PathBuf,
        /// Name of the new image (unique in your account).
        #[arg(long)]
        name: String,
        /// Publish it to every account (the operator only).
        #[arg(long)]
        public: bool,
        /// Upload it even over the unix socket.
        #[arg(long)]
        upload: bool,
    },
    /// Pull an image from an OCI registry (HOST/REPOSITORY:TAG, HOST:PORT/REPOSITORY:TAG,
    /// …/REPOSITORY@sha256:DIGEST, or Docker Hub's short forms). cairnd downloads only the layers its cache lacks, over
    /// HTTPS (plain HTTP only to registries the operator lists with
    /// `cairnd --insecure-registry`).
    #[command(after_help = "Examples:
  cairn image pull registry.example.com/team/app:1.2          # image 'app-1.2'
  cairn image pull 127.0.0.1:5000/tools/busybox:1 --name bb  # cairnd --insecure-registry 127.0.0.1:5000
  cairn image pull ghcr.io/org/tool@sha256:0123… --json     # the image, with what was downloaded
  cairn up --image registry.example.com/team/app:1.2        # pulls it first when you have no image pulled from it")]
    Pull {
        /// The reference: HOST/REPOSITORY:TAG (HOST may have a :PORT; no TAG: latest) or
        /// HOST/REPOSITORY@sha256:DIGEST.
        reference: String,
        /// Name of the new image (default: the repository's last component and the tag,
        /// e.g. app-1.2).
        #[arg(long)]
        name: Option<String>,
    },
    /// Keep credentials for a registry in cairnd, for your account's pulls from it (sealed
    /// at rest, never shown again). The password is read from stdin.
    #[command(
        after_help = "Examples:\n  echo \"$REGISTRY_TOKEN\" | cairn image login registry.example.com -u ci --password-stdin\n  cairn image login 10.0.0.7:5000 -u alice --password-stdin < ~/.secrets/registry"
    )]
    Login {
        /// The registry: HOST or HOST:PORT, as your references write it.
        #[arg(value_name = "HOST")]
        registry: String,
        /// User name.
        #[arg(short = 'u', long)]
        username: String,
        /// Read the password (or access token) from stdin (the only way: not from the
        /// command line, which other users of the host can see).
        #[arg(long, required = true)]
        password_stdin: bool,
    },
    /// Forget your credentials for a registry.
    #[command(after_help = "Example:\n  cairn image logout registry.example.com")]
    Logout {
        /// The registry: HOST or HOST:PORT.
        #[arg(value_name = "HOST")]
        registry: String,
    },
    /// List the images you can use: your account's and the public ones.
    #[command(after_help = "Example:\n  cairn image ls --json")]
    Ls,
    /// Remove an image of yours that no sandbox or snapshot uses.
    #[command(after_help = "Example:\n  cairn image rm base")]
    Rm {
        /// Image name or id.
        image: String,
    },
    /// Publish an image to every account (the operator only).
    #[command(after_help = "Example:\n  cairn image publish base")]
    Publish {
        /// Image name or id.
        image: String,
    },
    /// Make a published image private to its account again (the operator only).
    #[command(after_help = "Example:\n  cairn image unpublish base")]
    Unpublish {
        /// Image name or id.
        image: String,
    },
}

/// Runs an image subcommand.
pub async fn run(client: &Client, command: ImageCommand, json: bool) -> Result<()> {
    match command {
        ImageCommand::Import {
            path,
            name,
            public,
            upload,
        } => {
            let img = if upload || client.is_tcp() {
                upload_image(client, &path, &name, public, json).await?
            } else {
                let abs = std::fs::canonicalize(&path).map_err(|e| {
                    CliError::invalid(format!("cannot read '{}': {e}", path.display()))
                })?;
                // A bar of cairnd's unpacking, from its progress stream.
                let body = json!({ "name": name, "path": abs.to_string_lossy(), "public": public });
                crate::progress::request(
                    client,
                    Method::POST,
                    "/v1/images",
                    &body,
                    !json && std::io::stderr().is_terminal(),
                )
                .await?
            };
            output::show(json, &img, |img| {
                outln!("{}", img.name);
                if let Some(note) = output::dropped_note(&img.dropped) {
                    eprintln!("{note}");
                }
            })?;
        }
        ImageCommand::Pull { reference, name } => {
            // One bar per layer downloaded, from cairnd's progress stream.
            let body = json!({ "reference": reference, "name": name });
            let img: ImageInfo = crate::progress::request(
                client,
                Method::POST,
                "/v1/images/pull",
                &body,
                std::io::stderr().is_terminal(),
            )
            .await?;
            output::show(json, &img, |img| {
                outln!("{}", img.name);
                if let Some(p) = &img.pull {
                    eprintln!(
                        "pulled {} ({}): {} of {} layers downloaded, {} bytes",
                        p.reference, p.digest, p.layers_downloaded, p.layers, p.downloaded_bytes
                    );
                }
                if let Some(note) = output::dropped_note(&img.dropped) {
                    eprintln!("{note}");
                }
            })?;
        }
        ImageCommand::Login {
            registry: host,
            username,
            ..
        } => {
            let mut password = String::new();
            std::io::Read::read_to_string(&mut std::io::stdin(), &mut password)
                .context("reading the password from stdin")?;
            let password = password.trim_end_matches(['\n', '\r']);
            if password.is_empty() {
                return Err(CliError::invalid(
                    "no password on stdin: pipe it in, e.g. echo \"$TOKEN\" | cairn image login HOST -u USER --password-stdin",
                )
                .into());
            }
            client
                .empty_with(
                    Method::POST,
                    "/v1/registries/login",
                    Some(json!({ "host": host, "username": username, "password": password })),
                )
                .await?;
            if json {
                output::print_json(&json!({ "logged_in": host }))?;
            } else {
                outln!("logged in to {host}");
            }
        }
        ImageCommand::Logout { registry: host } => {
            client
                .empty(Method::DELETE, &format!("/v1/registries/{}", enc(&host)))
                .await?;
            if json {
                output::print_json(&json!({ "logged_out": host }))?;
            } else {
                outln!("logged out of {host}");
            }
        }
        ImageCommand::Ls => {
            let list: Vec<ImageInfo> = client.json(Method::GET, "/v1/images", None).await?;
            output::show(json, &list, |list| output::images(list))?;
        }
        ImageCommand::Rm { image } => {
            client
                .empty(Method::DELETE, &format!("/v1/images/{}", enc(&image)))
                .await?;
            if json {
                output::print_json(&json!({ "removed": image }))?;
            } else {
                outln!("{image}");
            }
        }
        ImageCommand::Publish { image } => publish(client, &image, true, json).await?,
        ImageCommand::Unpublish { image } => publish(client, &image, false, json).await?,
    }
    Ok(())
}

async fn publish(client: &Client, image: &str, public: bool, json: bool) -> Result<()> {
    let img: ImageInfo = client
        .json(
            Method::POST,
            &format!("/v1/images/{}/publish", enc(image)),
            Some(json!({ "public": public })),
        )
        .await?;
    output::show(json, &img, |img| outln!("{}", img.name))
}

/// Uploads `path` (an archive as it is, a directory as a tar stream) as image `name`.
async fn upload_image(
    client: &Client,
    path: &Path,
    name: &str,
    public: bool,
    json: bool,
) -> Result<ImageInfo> {
    let md = std::fs::metadata(path)
        .map_err(|e| CliError::invalid(format!("cannot read '{}': {e}", path.display())))?;
    let pb = if md.is_dir() {
        let pb = ProgressBar::new_spinner();
        pb.set_style(
            ProgressStyle::with_template(
                "{spinner} uploading {msg}: {bytes} ({bytes_per_sec}) {elapsed}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_spinner()),
        );
        pb
    } else {
        let pb = ProgressBar::new(md.len());
        pb.set_style(
            ProgressStyle::with_template(
                "uploading {msg} {wide_bar} {bytes}/{total_bytes} ({bytes_per_sec}, {eta})",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        pb
    };
    if json {
        pb.set_draw_target(indicatif::ProgressDrawTarget::hidden());
    }
    pb.set_message(path.display().to_string());
    pb.enable_steady_tick(Duration::from_millis(120));
    let (reader, packer): (Box<dyn tokio::io::AsyncRead + Send + Sync + Unpin>, _) = if md.is_dir()
    {
        let (writer, reader) = tokio::io::duplex(1 << 20);
        let dir = path.to_path_buf();
        let packer = tokio::task::spawn_blocking(move || pack_dir(&dir, writer));
        (Box::new(reader), Some(packer))
    } else {
        let file = tokio::fs::File::open(path)
            .await
            .with_context(|| format!("cannot open '{}'", path.display()))?;
        (Box::new(file), None)
    };
    let counted = pb.clone();
    let stream = tokio_util::io::ReaderStream::with_capacity(reader, 1 << 20).map(move |chunk| {
        chunk.map(|bytes: Bytes| {
            counted.inc(bytes.len() as u64);
            Frame::data(bytes)
        })
    });
    let body: Body = BodyExt::boxed(StreamBody::new(stream));
    let uri = format!(
        "/v1/images?name={}{}",
        enc(name),
        if public { "&public=true" } else { "" }
    );
    // cairnd answers once it has read the whole upload: then a bar of its unpacking.
    let sent = client
        .send_accepting(
            Method::POST,
            &uri,
            Some("application/octet-stream"),
            Some("application/x-ndjson"),
            body,
        )
        .await;
    pb.finish_and_clear();
    if let Some(packer) = packer {
        // A directory that could not be read makes a truncated stream: say why.
        packer
            .await
            .context("the directory packer failed")?
            .with_context(|| format!("cannot pack '{}' for upload", path.display()))?;
    }
    crate::progress::answer(sent?, !json && std::io::stderr().is_terminal()).await
}

/// Writes `dir` as a tar stream (owners, modes, symlinks as links, special files as
/// themselves) into `writer`.
fn pack_dir(dir: &Path, writer: tokio::io::DuplexStream) -> Result<()> {
    let bridge = tokio_util::io::SyncIoBridge::new(writer);
    let mut tar = tar::Builder::new(bridge);
    tar.follow_symlinks(false);
    tar.mode(tar::HeaderMode::Complete);
    tar.append_dir_all(".", dir)?;
    let mut bridge = tar.into_inner()?;
    std::io::Write::flush(&mut bridge)?;
    Ok(())
}
