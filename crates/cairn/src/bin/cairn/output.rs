//! Printing: tables for people, JSON for scripts.

use std::io::IsTerminal;
use std::time::Duration;

use chrono::{DateTime, Utc};
use comfy_table::presets::NOTHING;
use comfy_table::Table;
use indicatif::{ProgressBar, ProgressStyle};

use cairn_types::api::{DiffEntry, DroppedFiles, ImageInfo, SandboxInfo, SnapshotInfo};
use cairn_types::{format_bytes, PauseReason};

/// The exit status of a CLI whose reader went away (`cairn ls | head -1`): that of a Unix
/// tool ended by SIGPIPE (128 + 13), with no message.
pub const READER_GONE_EXIT: i32 = 141;

/// Ends the CLI quietly when `r` failed because stdout's reader went away; other results
/// pass through.
pub fn or_gone<T>(r: std::io::Result<T>) -> std::io::Result<T> {
    match r {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => {
            std::process::exit(READER_GONE_EXIT)
        }
        r => r,
    }
}

/// What `outln!` prints with: a line on stdout, ending the CLI as [`or_gone`] does when its
/// reader went away (where `println!` panics).
pub fn line(args: std::fmt::Arguments<'_>) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    if let Err(e) = or_gone(out.write_fmt(args).and_then(|()| out.write_all(b"\n"))) {
        eprintln!("cairn: cannot write to stdout: {e}");
        std::process::exit(1);
    }
}

fn table(header: &[&str]) -> Table {
    let mut t = Table::new();
    t.load_preset(NOTHING).set_header(header.to_vec());
    t
}

/// "3 minutes ago" style age.
pub fn age(at: DateTime<Utc>) -> String {
    let secs = (Utc::now() - at).num_seconds().max(0);
    match secs {
        0..=59 => format!("{secs} seconds ago"),
        60..=3599 => format!("{} minutes ago", secs / 60),
        3600..=86399 => format!("{} hours ago", secs / 3600),
        _ => format!("{} days ago", secs / 86400),
    }
}

pub fn print_json<T: serde::Serialize>(v: &T) -> anyhow::Result<()> {
    outln!("{}", serde_json::to_string_pretty(v)?);
    Ok(())
}

/// Prints `v` as JSON for scripts, or with `human` for people.
pub fn show<T: serde::Serialize>(json: bool, v: &T, human: impl FnOnce(&T)) -> anyhow::Result<()> {
    if json {
        print_json(v)
    } else {
        human(v);
        Ok(())
    }
}

pub fn sandboxes(list: &[SandboxInfo]) {
    let mut t = table(&[
        "ID", "NAME", "IMAGE", "RUNTIME", "STATE", "NETWORK", "CREATED",
    ]);
    for s in list {
        t.add_row(vec![
            s.id.clone(),
            s.name.clone().unwrap_or_default(),
            s.image.clone(),
            s.runtime.to_string(),
            // Why it is paused: `idle` wakes on the next exec, `user` waits for `cairn resume`.
            match s.pause_reason {
                Some(why) => format!("{} ({why})", s.state),
                None => s.state.to_string(),
            },
            s.address.clone().unwrap_or_else(|| s.network.to_string()),
            age(s.created_at),
        ]);
    }
    outln!("{t}");
}

pub fn sandbox(s: &SandboxInfo) {
    let mut t = table(&["FIELD", "VALUE"]);
    let rows = [
        ("id", s.id.clone()),
        ("name", s.name.clone().unwrap_or_default()),
        ("image", s.image.clone()),
        ("runtime", s.runtime.to_string()),
        (
            "state",
            if s.memory_released {
                format!("{} (memory released to disk)", s.state)
            } else {
                s.state.to_string()
            },
        ),
        ("reason", s.state_reason.clone().unwrap_or_default()),
        ("paused", paused(s)),
        ("cpus", s.cpus.to_string()),
        ("memory", format_bytes(s.memory_bytes)),
        ("pids limit", s.pids_limit.to_string()),
        (
            "disk",
            match (s.disk_bytes, s.disk_used_bytes) {
                (Some(limit), Some(used)) => {
                    format!("{} used of {}", format_bytes(used), format_bytes(limit))
                }
                (Some(limit), None) => format!("limit {}", format_bytes(limit)),
                (None, Some(used)) => format!("{} used, no limit of its own", format_bytes(used)),
                (None, None) => "no limit".into(),
            },
        ),
        ("workdir", s.workdir.clone()),
        ("network", s.network.to_string()),
        ("address", s.address.clone().unwrap_or_default()),
        (
            "published",
            s.published
                .iter()
                .map(|p| format!("127.0.0.1:{}->{}", p.host_port, p.port))
                .collect::<Vec<_>>()
                .join(" "),
        ),
        ("env", s.env.join(" ")),
        ("secrets", s.secrets.join(" ")),
        ("created", s.created_at.to_rfc3339()),
        (
            "idle timeout",
            s.idle_timeout_secs
                .map(|t| format!("{t}s"))
                .unwrap_or_else(|| "none".into()),
        ),
    ];
    for (k, v) in rows {
        t.add_row(vec![k.to_string(), v]);
    }
    outln!("{t}");
}

/// When and why a paused sandbox was paused, and what continues it (empty when not paused).
fn paused(s: &SandboxInfo) -> String {
    let Some(at) = s.paused_at else {
        return String::new();
    };
    let since = format!(
        "since {} ({})",
        at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        age(at)
    );
    match s.pause_reason {
        Some(PauseReason::Idle) => format!("{since}, by its idle timeout: wakes on the next exec"),
        _ => format!(
            "{since}, by request: stays paused until 'cairn resume {}'",
            s.id
        ),
    }
}

/// What an import left out, for a human (`None` when nothing was).
pub fn dropped_note(d: &DroppedFiles) -> Option<String> {
    if d.total() == 0 {
        return None;
    }
    let parts: Vec<String> = [
        (d.char_devices, "character device"),
        (d.block_devices, "block device"),
        (d.fifos, "named pipe"),
        (d.sockets, "socket"),
    ]
    .iter()
    .filter(|(n, _)| *n > 0)
    .map(|(n, what)| format!("{n} {what}{}", if *n == 1 { "" } else { "s" }))
    .collect();
    Some(format!(
        "left out of the image: {} (images never carry special files; sandboxes get their own /dev)",
        parts.join(", ")
    ))
}

pub fn images(list: &[ImageInfo]) {
    let mut t = table(&["ID", "NAME", "SIZE", "VISIBILITY", "SOURCE", "CREATED"]);
    for i in list {
        let visibility = match (i.owned, i.public) {
            (true, true) => "yours, public",
            (true, false) => "yours",
            (false, _) => "public",
        };
        t.add_row(vec![
            i.id.clone(),
            i.name.clone(),
            format_bytes(i.size_bytes),
            visibility.to_string(),
            i.source.clone(),
            age(i.created_at),
        ]);
    }
    outln!("{t}");
}

/// Who took a snapshot: `user` or `auto` (a pause).
fn taken_by(s: &SnapshotInfo) -> &'static str {
    if s.auto {
        "auto"
    } else {
        "user"
    }
}

pub fn snapshots(list: &[SnapshotInfo], with_sandbox: bool) {
    let mut header = vec!["ID", "NAME", "BY", "SIZE", "CREATED", "STATE"];
    if with_sandbox {
        header.insert(1, "SANDBOX");
    }
    let mut t = table(&header);
    for s in list {
        let mut row = vec![
            s.id.clone(),
            s.name.clone(),
            taken_by(s).to_string(),
            format_bytes(s.size_bytes),
            age(s.created_at),
            s.state.to_string(),
        ];
        if with_sandbox {
            // The name `SANDBOX:NAME` uses, when it had one.
            row.insert(
                1,
                s.sandbox_name.clone().unwrap_or_else(|| s.sandbox.clone()),
            );
        }
        t.add_row(row);
    }
    outln!("{t}");
}

/// The remote catalog (`cairn snapshot list --remote`).
pub fn remote_snapshots(list: &[cairn_types::api::RemoteSnapshotInfo]) {
    let mut t = table(&[
        "ID", "NAME", "RUNTIME", "STATEFUL", "SIZE", "CREATED", "PUSHED", "HERE",
    ]);
    for s in list {
        t.add_row(vec![
            s.id.clone(),
            s.name.clone(),
            s.runtime.to_string(),
            if s.stateful { "yes" } else { "no" }.to_string(),
            format_bytes(s.size_bytes),
            age(s.created_at),
            age(s.pushed_at),
            if s.local { "yes" } else { "no" }.to_string(),
        ]);
    }
    outln!("{t}");
}

pub fn snapshot(s: &SnapshotInfo) {
    let mut t = table(&["FIELD", "VALUE"]);
    let rows = [
        ("id", s.id.clone()),
        ("name", s.name.clone()),
        ("state", s.state.to_string()),
        ("error", s.error.clone().unwrap_or_default()),
        ("sandbox", s.sandbox.clone()),
        ("sandbox name", s.sandbox_name.clone().unwrap_or_default()),
        ("taken by", taken_by(s).to_string()),
        ("parent", s.parent.clone().unwrap_or_default()),
        (
            "lineage",
            s.imported_from
                .as_ref()
                .map(|f| format!("imported from {f}"))
                .unwrap_or_default(),
        ),
        ("image", s.image.clone()),
        ("runtime", s.runtime.to_string()),
        ("size (exclusive)", format_bytes(s.size_bytes)),
        ("size (total)", format_bytes(s.total_bytes)),
        ("created", s.created_at.to_rfc3339()),
    ];
    for (k, v) in rows {
        t.add_row(vec![k.to_string(), v]);
    }
    outln!("{t}");
}

pub fn diff(list: &[DiffEntry]) {
    let mut t = table(&["CHANGE", "PATH", "SIZE"]);
    for d in list {
        t.add_row(vec![d.kind.clone(), d.path.clone(), format_bytes(d.size)]);
    }
    outln!("{t}");
}

pub fn processes(list: &[serde_json::Value]) {
    let mut t = table(&["PID", "PPID", "COMMAND"]);
    for p in list {
        t.add_row(vec![
            p["pid"].to_string(),
            p["ppid"].to_string(),
            p["cmd"].as_str().unwrap_or_default().to_string(),
        ]);
    }
    outln!("{t}");
}

pub fn doctor(checks: &[serde_json::Value]) {
    let mut t = table(&["COMPONENT", "VERSION", "OK", "WHAT FOR / HOW TO FIX"]);
    for c in checks {
        t.add_row(vec![
            c["name"].as_str().unwrap_or_default().to_string(),
            c["version"].as_str().unwrap_or("missing").to_string(),
            if c["ok"] == true {
                "yes".into()
            } else {
                "no".into()
            },
            c["note"].as_str().unwrap_or_default().to_string(),
        ]);
    }
    outln!("{t}");
}

/// The progress of a transfer on stderr: `VERB WHAT`, a bar with bytes, rate and time left
/// when the total is known, else a spinner with bytes and rate; hidden with `--json` or
/// when stderr is not a terminal.
pub fn transfer_bar(total: Option<u64>, verb: &str, what: &str, json: bool) -> ProgressBar {
    let pb = match total {
        Some(n) => {
            let pb = ProgressBar::new(n);
            determinate(&pb, n, verb);
            pb
        }
        None => {
            let pb = ProgressBar::new_spinner();
            pb.set_style(
                ProgressStyle::with_template(&format!(
                    "{{spinner}} {verb} {{msg}}: {{bytes}} ({{bytes_per_sec}}) {{elapsed}}"
                ))
                .unwrap_or_else(|_| ProgressStyle::default_spinner()),
            );
            pb
        }
    };
    if json || !std::io::stderr().is_terminal() {
        pb.set_draw_target(indicatif::ProgressDrawTarget::hidden());
    }
    pb.set_message(what.to_string());
    pb.enable_steady_tick(Duration::from_millis(120));
    pb
}

/// Makes a transfer bar determinate: `total` bytes, with the time left.
pub fn determinate(pb: &ProgressBar, total: u64, verb: &str) {
    pb.set_length(total);
    pb.set_style(
        ProgressStyle::with_template(&format!(
            "{verb} {{msg}} {{wide_bar}} {{bytes}}/{{total_bytes}} ({{bytes_per_sec}}, {{eta}})"
        ))
        .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
}

pub fn templates(list: &[cairn_types::api::TemplateInfo]) {
    let mut t = table(&[
        "NAME", "SNAPSHOT", "IMAGE", "RUNTIME", "STATEFUL", "SIZE", "CREATED",
    ]);
    for i in list {
        t.add_row(vec![
            i.name.clone(),
            i.snapshot.clone(),
            i.image.clone(),
            i.runtime.to_string(),
            if i.stateful { "yes" } else { "no" }.to_string(),
            format_bytes(i.total_bytes),
            age(i.created_at),
        ]);
    }
    outln!("{t}");
}
