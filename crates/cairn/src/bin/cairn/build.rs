//! `cairn template build`: runs a Cairnfile's steps in a build sandbox over the API (exec,
//! file upload, snapshots), each finished step kept as a snapshot in the account's step
//! cache (`/v1/template-steps/{key}`), and names the last one as the template.
//!
//! A step's key hashes its parent step's key, the instruction and, for `COPY`, the content
//! of the copied files; a rebuild forks the last cached step and runs only the rest. The
//! build sandbox is named `build-NAME`: destroyed at the end, on failure, and (left by a
//! build that was killed) at the start of the next build of NAME.

use std::io::Write as _;
use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, Result};
use base64::Engine as _;
use bytes::Bytes;
use futures_util::StreamExt;
use http_body_util::{BodyExt, StreamBody};
use hyper::body::Frame;
use hyper::Method;
use serde_json::json;
use sha2::{Digest, Sha256};

use cairn_types::api::{
    ExecEvent, ExecRequest, ImageInfo, SandboxInfo, SnapshotInfo, TemplateInfo,
};

use crate::cairnfile::{Cairnfile, Step};
use crate::client::{Body, CliError, Client};
use crate::context::{pack, plan_copy, CopyPlan};
use crate::enc;

/// What `template build` was asked.
pub struct BuildArgs {
    /// The template's name.
    pub name: String,
    /// The Cairnfile's path.
    pub file: PathBuf,
    /// The context directory COPY reads from.
    pub context: PathBuf,
    /// Take every step's snapshot with memory.
    pub stateful: bool,
    /// The build sandbox's runtime.
    pub runtime: Option<String>,
}

/// The process defaults the steps build up.
#[derive(Default, Clone)]
struct Defaults {
    env: Vec<String>,
    workdir: Option<String>,
    user: Option<String>,
}

impl Defaults {
    fn apply(&mut self, step: &Step) {
        match step {
            Step::Env(pairs) => {
                for (k, v) in pairs {
                    self.env.retain(|kv| kv.split('=').next() != Some(k));
                    self.env.push(format!("{k}={v}"));
                }
            }
            Step::Workdir(w) => self.workdir = Some(self.resolve(w)),
            Step::User(u) => self.user = Some(u.clone()),
            Step::Run(_) | Step::Copy { .. } => {}
        }
    }

    /// A sandbox path, relative ones under the working directory.
    fn resolve(&self, p: &str) -> String {
        if p.starts_with('/') {
            p.to_string()
        } else {
            format!(
                "{}/{p}",
                self.workdir.as_deref().unwrap_or("").trim_end_matches('/')
            )
        }
    }
}

/// `d` for what the build itself runs (directories COPY and WORKDIR make): as root, from /.
fn as_root(d: &Defaults) -> Defaults {
    Defaults {
        env: d.env.clone(),
        workdir: None,
        user: None,
    }
}

/// Whether a step leaves files (and so a snapshot).
fn has_files(step: &Step) -> bool {
    matches!(step, Step::Run(_) | Step::Copy { .. } | Step::Workdir(_))
}

fn key_of(parent: &str, what: &str) -> String {
    let mut h = Sha256::new();
    h.update(parent.as_bytes());
    h.update(b"\n");
    h.update(what.as_bytes());
    hex::encode(h.finalize())
}

/// A command's outcome: its exit code and the tail of its output.
struct Ran {
    code: i32,
    tail: String,
    message: Option<String>,
}

const TAIL_BYTES: usize = 2048;

/// Runs a command in the build sandbox, its output on our stderr.
async fn run(client: &Client, sandbox: &str, cmd: Vec<String>, d: &Defaults) -> Result<Ran> {
    let req = ExecRequest {
        cmd,
        env: d.env.clone(),
        workdir: d.workdir.clone(),
        timeout_secs: None,
        detach: false,
        started_event: false,
        secret_env: Vec::new(),
        user: d.user.clone(),
    };
    let path = format!("/v1/sandboxes/{}/exec", enc(sandbox));
    let resp = client
        .send(Method::POST, &path, Some(serde_json::to_value(&req)?))
        .await?;
    let mut body = resp.into_body();
    let mut pending: Vec<u8> = Vec::new();
    let mut tail: Vec<u8> = Vec::new();
    let b64 = base64::engine::general_purpose::STANDARD;
    let mut err = std::io::stderr();
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| {
            CliError::connection(format!("the connection to cairnd broke during a step: {e}"))
        })?;
        let Some(data) = frame.data_ref() else {
            continue;
        };
        pending.extend_from_slice(data);
        while let Some(nl) = pending.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = pending.drain(..=nl).collect();
            let event: ExecEvent = serde_json::from_slice(&line).map_err(|e| {
                CliError::new("unexpected_answer", format!("unexpected exec stream: {e}"))
            })?;
            match event {
                ExecEvent::Stdout { data } | ExecEvent::Stderr { data } => {
                    let bytes = b64.decode(data)?;
                    let _ = err.write_all(&bytes);
                    tail.extend_from_slice(&bytes);
                    if tail.len() > TAIL_BYTES {
                        tail.drain(..tail.len() - TAIL_BYTES);
                    }
                }
                ExecEvent::Exit { code, message } => {
                    return Ok(Ran {
                        code,
                        tail: String::from_utf8_lossy(&tail).into_owned(),
                        message,
                    })
                }
                ExecEvent::Error { message, code } => {
                    return Err(crate::failure::stream_error(message, code))
                }
                ExecEvent::Started { .. } => {}
            }
        }
    }
    Err(CliError::connection("cairnd ended the exec stream without an exit code").into())
}

/// Uploads a COPY's sources into the build sandbox.
async fn copy(client: &Client, sandbox: &str, plan: CopyPlan, d: &Defaults) -> Result<()> {
    let mkdir = vec!["mkdir".into(), "-p".into(), "--".into(), plan.dir.clone()];
    let ran = run(client, sandbox, mkdir, &as_root(d)).await?;
    if ran.code != 0 {
        return Err(CliError::new(
            "step_failed",
            format!(
                "cannot make the directory {} (exit code {}): {}",
                plan.dir,
                ran.code,
                ran.tail.trim()
            ),
        )
        .into());
    }
    let uri = format!(
        "/v1/sandboxes/{}/files?{}&archive=tar",
        enc(sandbox),
        crate::files::query(&plan.dir)
    );
    let (writer, reader) = tokio::io::duplex(1 << 20);
    let items = plan.items;
    let packer = tokio::task::spawn_blocking(move || pack(items, writer));
    let stream = tokio_util::io::ReaderStream::with_capacity(reader, 1 << 20)
        .map(|chunk| chunk.map(|bytes: Bytes| Frame::data(bytes)));
    let body: Body = BodyExt::boxed(StreamBody::new(stream));
    let resp = client
        .send_body(Method::PUT, &uri, Some("application/octet-stream"), body)
        .await?;
    packer
        .await
        .context("the COPY packer failed")?
        .context("cannot pack the COPY sources")?;
    let _ = resp.into_body().collect().await?;
    Ok(())
}

/// What FROM names, as a key part and as the request's field: a template (first) or an image.
async fn resolve_from(client: &Client, from: &str) -> Result<(String, serde_json::Value)> {
    let t: Result<TemplateInfo> = client
        .json(Method::GET, &format!("/v1/templates/{}", enc(from)), None)
        .await;
    match t {
        Ok(t) => {
            return Ok((
                format!("template {}", t.snapshot),
                json!({ "template": from }),
            ))
        }
        Err(e)
            if !e
                .downcast_ref::<crate::client::ApiFailure>()
                .is_some_and(|f| f.code == "not_found" || f.code == "invalid_argument") =>
        {
            return Err(e)
        }
        Err(_) => {}
    }
    let images: Vec<ImageInfo> = client.json(Method::GET, "/v1/images", None).await?;
    let img = images
        .into_iter()
        .find(|i| i.name == from || i.id == from)
        .ok_or_else(|| {
            CliError::new(
                "not_found",
                format!("FROM {from}: no template or image of that name: see 'cairn template ls' and 'cairn image ls'"),
            )
        })?;
    Ok((format!("image {}", img.id), json!({ "image": from })))
}

/// The cached snapshot of a step, if any.
async fn cached(client: &Client, key: &str) -> Result<Option<String>> {
    let r: Result<serde_json::Value> = client
        .json(Method::GET, &format!("/v1/template-steps/{key}"), None)
        .await;
    match r {
        Ok(v) => Ok(v["snapshot"].as_str().map(str::to_string)),
        Err(e)
            if e.downcast_ref::<crate::client::ApiFailure>()
                .is_some_and(|f| f.code == "not_found") =>
        {
            Ok(None)
        }
        Err(e) => Err(e),
    }
}

async fn destroy(client: &Client, sandbox: &str) {
    let path = format!("/v1/sandboxes/{}?force=true", enc(sandbox));
    if let Err(e) = client.empty(Method::DELETE, &path).await {
        eprintln!("warning: could not destroy the build sandbox {sandbox}: {e}");
    }
}

/// Builds the template; returns it.
pub async fn build(client: &Client, a: BuildArgs) -> Result<TemplateInfo> {
    cairn_types::validate_name(&a.name).map_err(|e| CliError::invalid(e.to_string()))?;
    let text = std::fs::read_to_string(&a.file).map_err(|e| {
        CliError::invalid(format!(
            "cannot read the Cairnfile '{}': {e}",
            a.file.display()
        ))
    })?;
    let file: Cairnfile = crate::cairnfile::parse(&text)?;
    let (from_key, from_req) = resolve_from(client, &file.from).await?;
    let total = file.steps.len() + 1;
    // Keys, and the defaults before each step.
    let root = key_of(
        "cairn-template-v1",
        &format!(
            "{from_key} runtime={} stateful={}",
            a.runtime.as_deref().unwrap_or("default"),
            a.stateful
        ),
    );
    let mut d = Defaults::default();
    let mut keys = vec![root.clone()];
    let mut before = vec![d.clone()];
    let mut copies: Vec<Option<CopyPlan>> = vec![None];
    for (_, text, step) in &file.steps {
        before.push(d.clone());
        let mut what = serde_json::to_string(&(text, &d.env, &d.workdir, &d.user))?;
        let plan = match step {
            Step::Copy { srcs, dst } => {
                let p = plan_copy(&a.context, srcs, &d.resolve(dst))?;
                what.push_str(&p.hash);
                Some(p)
            }
            _ => None,
        };
        copies.push(plan);
        keys.push(key_of(keys.last().map_or("", String::as_str), &what));
        d.apply(step);
    }
    // The last cached step with files (the FROM step has them too).
    let files_at = |i: usize| i == 0 || has_files(&file.steps[i - 1].2);
    let mut resume: Option<(usize, String)> = None;
    for i in (0..total).rev().filter(|i| files_at(*i)) {
        if let Some(snap) = cached(client, &keys[i]).await? {
            resume = Some((i, snap));
            break;
        }
    }
    let label = |i: usize| {
        if i == 0 {
            format!("FROM {}", file.from)
        } else {
            file.steps[i - 1].1.clone()
        }
    };
    let first_to_run = resume.as_ref().map_or(0, |(i, _)| i + 1);
    for i in 0..first_to_run {
        eprintln!("step {}/{total} cached: {}", i + 1, label(i));
    }
    let mut last_snap = resume.as_ref().map(|(_, s)| s.clone());
    let needs_sandbox = (first_to_run..total).any(files_at);
    if needs_sandbox {
        let sandbox = format!("build-{}", a.name);
        sandbox_gone(client, &sandbox).await?;
        let mut req = json!({ "name": sandbox });
        match &last_snap {
            Some(s) => req["from_snapshot"] = json!(s),
            None => {
                if let Some(o) = from_req.as_object() {
                    for (k, v) in o {
                        req[k] = v.clone();
                    }
                }
            }
        }
        if let Some(rt) = &a.runtime {
            req["runtime"] = json!(rt);
        }
        let sb: SandboxInfo = client
            .json(Method::POST, "/v1/sandboxes", Some(req))
            .await?;
        let outcome = steps(
            client,
            &a,
            &file,
            &keys,
            &before,
            &mut copies,
            first_to_run,
            &sb.id,
        )
        .await;
        destroy(client, &sb.id).await;
        if let Some(s) = outcome? {
            last_snap = Some(s);
        }
    } else {
        for i in first_to_run..total {
            eprintln!("step {}/{total}: {}", i + 1, label(i));
        }
    }
    let snap = last_snap.ok_or_else(|| CliError::new("failed", "the build left no snapshot"))?;
    let req = json!({
        "name": a.name,
        "from_snapshot": snap,
        "env": d.env,
        "workdir": d.workdir,
        "user": d.user,
        "replace": true,
    });
    client.json(Method::POST, "/v1/templates", Some(req)).await
}

/// Destroys the build sandbox a killed build left.
async fn sandbox_gone(client: &Client, sandbox: &str) -> Result<()> {
    let there: Result<SandboxInfo> = client
        .json(
            Method::GET,
            &format!("/v1/sandboxes/{}", enc(sandbox)),
            None,
        )
        .await;
    let Ok(there) = there else {
        return Ok(());
    };
    // Only a build's: every snapshot of it a build step (a sandbox of the user's that
    // happens to have the name is left alone).
    let path = format!("/v1/sandboxes/{}/snapshots?all=true", there.id);
    let snaps: Vec<SnapshotInfo> = client.json(Method::GET, &path, None).await?;
    if snaps.iter().any(|s| !s.name.starts_with("step-")) {
        return Err(CliError::new(
            "conflict",
            format!("a sandbox named {sandbox} ({}) exists and is no build sandbox: the build needs that name; rename or destroy it", there.id),
        )
        .into());
    }
    eprintln!("destroying {sandbox}, left by an interrupted build");
    destroy(client, &there.id).await;
    Ok(())
}

/// Runs steps `from..` in the build sandbox; returns the last step snapshot taken.
#[allow(clippy::too_many_arguments)]
async fn steps(
    client: &Client,
    a: &BuildArgs,
    file: &Cairnfile,
    keys: &[String],
    before: &[Defaults],
    copies: &mut [Option<CopyPlan>],
    from: usize,
    sandbox: &str,
) -> Result<Option<String>> {
    let total = file.steps.len() + 1;
    let mut last = None;
    for i in from..total {
        let started = Instant::now();
        let (text, step) = if i == 0 {
            (format!("FROM {}", file.from), None)
        } else {
            (file.steps[i - 1].1.clone(), Some(&file.steps[i - 1].2))
        };
        eprintln!("step {}/{total} running: {text}", i + 1);
        let d = &before[i];
        match step {
            None | Some(Step::Env(_)) | Some(Step::User(_)) => {}
            Some(Step::Run(argv)) => {
                let ran = run(client, sandbox, argv.clone(), d).await?;
                if ran.code != 0 {
                    let why = ran.message.map(|m| format!(" ({m})")).unwrap_or_default();
                    return Err(CliError::new(
                        "step_failed",
                        format!(
                            "step {}/{total} failed with exit code {}{why}: {text}\n{}\nnothing was kept: fix the step and build again (the steps before it are cached)",
                            i + 1,
                            ran.code,
                            ran.tail.trim_end()
                        ),
                    )
                    .into());
                }
            }
            Some(Step::Workdir(w)) => {
                let dir = d.resolve(w);
                let ran = run(
                    client,
                    sandbox,
                    vec!["mkdir".into(), "-p".into(), "--".into(), dir.clone()],
                    &as_root(d),
                )
                .await?;
                if ran.code != 0 {
                    return Err(CliError::new(
                        "step_failed",
                        format!(
                            "step {}/{total} failed: cannot make {dir}: {}",
                            i + 1,
                            ran.tail.trim()
                        ),
                    )
                    .into());
                }
            }
            Some(Step::Copy { .. }) => {
                let plan = copies[i]
                    .take()
                    .ok_or_else(|| CliError::new("failed", "COPY planned twice"))?;
                copy(client, sandbox, plan, d).await?;
            }
        }
        let leaves_files = step.is_none_or(has_files);
        if leaves_files {
            let req = json!({ "name": format!("step-{}-{}", i + 1, &keys[i][..12]), "stateful": a.stateful });
            let snap: SnapshotInfo = client
                .json(
                    Method::POST,
                    &format!("/v1/sandboxes/{}/snapshots", enc(sandbox)),
                    Some(req),
                )
                .await?;
            client
                .empty_with(
                    Method::PUT,
                    &format!("/v1/template-steps/{}", keys[i]),
                    Some(json!({ "snapshot": snap.id })),
                )
                .await?;
            last = Some(snap.id);
        }
        eprintln!(
            "step {}/{total} done in {:.1} s",
            i + 1,
            started.elapsed().as_secs_f64()
        );
    }
    Ok(last)
}
