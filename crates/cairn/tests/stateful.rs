//! Stateful snapshots with a large resident process: a 512 MB process is
//! checkpointed, forked and keeps its memory in every fork.

#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};

use cairn_test_support::{Daemon, Via};

fn daemon() -> Daemon {
    Daemon::with_base(
        env!("CARGO_BIN_EXE_cairnd"),
        env!("CARGO_BIN_EXE_cairn"),
        &[],
    )
}

/// "count length sample" written by the loop below.
fn status(d: &Daemon, id: &str) -> (u64, u64, String) {
    let out = d.cairn(&["exec", id, "cat /tmp/status"]).ok();
    let f: Vec<&str> = out.split_whitespace().collect();
    assert_eq!(f.len(), 3, "{out:?}");
    (
        f[0].parse().unwrap(),
        f[1].parse().unwrap(),
        f[2].to_string(),
    )
}

const BIG: u64 = 512 << 20;

/// Starts, in sandbox `id`, a process holding a string of `bytes` built in awk's memory from
/// a per-run seed, then a loop that writes "count length sample" to /tmp/status (the sample
/// taken from three places of the string); returns once it has.
fn hold_memory(d: &Daemon, id: &str, bytes: u64) {
    let seed = std::process::id();
    let at = [1_000_001, bytes / 2 + 1, bytes - 8];
    d.cairn(&[
        "exec",
        "-d",
        id,
        &format!(
            "awk 'BEGIN {{ s = \"{seed}:\"; while (length(s) < {bytes}) s = s \"-\" s; s = substr(s, 1, {bytes}); \
             for (n = 1; ; n++) {{ print n, length(s), substr(s, {}, 9) substr(s, {}, 9) substr(s, {}, 9) > \"/tmp/status.new\"; \
             close(\"/tmp/status.new\"); system(\"mv /tmp/status.new /tmp/status; sleep 0.1\") }} }}'",
            at[0], at[1], at[2]
        ),
    ])
    .ok();
    let deadline = Instant::now() + Duration::from_secs(120);
    while d.cairn(&["exec", id, "test -s /tmp/status"]).code != 0 {
        assert!(
            Instant::now() < deadline,
            "the {bytes}-byte process never started"
        );
        std::thread::sleep(Duration::from_millis(300));
    }
}

/// A new `rt` sandbox limited to `memory` whose process holds `bytes` (see [`hold_memory`]):
/// its id and the sample of its string.
fn up_holding(d: &Daemon, rt: &str, memory: &str, bytes: u64) -> (String, String) {
    let id = d
        .cairn(&["up", "--image", "base", "--runtime", rt, "--memory", memory])
        .ok();
    hold_memory(d, &id, bytes);
    let (_, len, sample) = status(d, &id);
    assert_eq!(len, bytes);
    (id, sample)
}

/// Waits until `read` (a counter of `what`) goes past `from`: the process counts on. Polls
/// (its loop starts a program every 100 ms, which may take a while on a busy host).
fn counts_on(what: &str, from: u64, read: impl Fn() -> u64) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let now = read();
        if now > from {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{what} is not running: its counter stays at {now} (was {from})"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn a_512_mb_process_snapshots_and_forks_with_its_memory(rt: &str) {
    let d = daemon();
    let (id, sample) = up_holding(&d, rt, "3G", BIG);

    let t0 = Instant::now();
    let snap = d
        .cairn(&["snapshot", "create", &id, "--stateful", "--json"])
        .json();
    eprintln!("stateful snapshot of a 512 MB process: {:?}", t0.elapsed());
    assert!(snap["size_bytes"].as_u64().unwrap() > 0, "{snap}");
    let snap = snap["id"].as_str().unwrap().to_string();
    let at_snapshot = {
        let (n, _, _) = status(&d, &id);
        n
    };
    let t0 = Instant::now();
    let forks: Vec<String> = d
        .cairn(&["fork", &snap, "--count", "2"])
        .ok()
        .lines()
        .map(str::to_string)
        .collect();
    eprintln!("2 stateful forks of it: {:?}", t0.elapsed());
    std::thread::sleep(Duration::from_millis(500));
    for f in &forks {
        let (n1, len, s) = status(&d, f);
        assert_eq!(len, BIG, "fork {f} lost memory");
        assert_eq!(s, sample, "fork {f} has other bytes in memory");
        assert!(
            n1 + 50 > at_snapshot,
            "fork {f} restarted: {n1} vs {at_snapshot}"
        );
        counts_on(&format!("fork {f}"), n1, || status(&d, f).0);
    }
    // The source carries on.
    let (n, len, _) = status(&d, &id);
    assert_eq!(len, BIG);
    assert!(n >= at_snapshot);
}

#[test]
fn gvisor_a_512_mb_process_snapshots_and_forks_with_its_memory() {
    a_512_mb_process_snapshots_and_forks_with_its_memory("gvisor");
}

#[test]
fn runc_a_512_mb_process_snapshots_and_forks_with_its_memory() {
    a_512_mb_process_snapshots_and_forks_with_its_memory("runc");
}

/// A second stateful snapshot of a runc sandbox stores only the pages that changed since
/// the first (it shares the rest with the first's checkpoint), and a fork of it resumes the
/// whole memory, even once the first snapshot is deleted.
#[test]
fn runc_a_second_stateful_snapshot_stores_only_what_changed_and_forks_whole() {
    a_second_stateful_snapshot_stores_only_what_changed_and_forks_whole("runc");
}

#[test]
fn gvisor_a_second_stateful_snapshot_stores_only_what_changed_and_forks_whole() {
    a_second_stateful_snapshot_stores_only_what_changed_and_forks_whole("gvisor");
}

/// (gVisor's checkpoint also holds a state file of a few MB, which changes every time.)
fn a_second_stateful_snapshot_stores_only_what_changed_and_forks_whole(rt: &str) {
    const MID: u64 = 64 << 20;
    let d = daemon();
    let (id, sample) = up_holding(&d, rt, "1G", MID);
    let size = |snap: &serde_json::Value| snap["size_bytes"].as_u64().unwrap();
    let first = d
        .cairn(&["snapshot", "create", &id, "--stateful", "--json"])
        .json();
    assert!(
        size(&first) >= MID,
        "the first holds all its memory: {first}"
    );
    std::thread::sleep(Duration::from_millis(300));
    let second = d
        .cairn(&["snapshot", "create", &id, "--stateful", "--json"])
        .json();
    assert!(
        size(&second) < size(&first) / 4,
        "the second stores what changed only: {} bytes vs {} for the first",
        size(&second),
        size(&first)
    );
    let at_second = status(&d, &id).0;
    d.cairn(&["snapshot", "delete", first["id"].as_str().unwrap()])
        .ok();
    let fork = d
        .cairn(&["up", "--from-snapshot", second["id"].as_str().unwrap()])
        .ok();
    std::thread::sleep(Duration::from_millis(500));
    let (n1, len, s) = status(&d, &fork);
    assert_eq!(
        (len, s.as_str()),
        (MID, sample.as_str()),
        "the fork's memory differs"
    );
    assert!(
        n1 + 50 > at_second,
        "the fork restarted: {n1} vs {at_second}"
    );
    counts_on("the fork", n1, || status(&d, &fork).0);
    // A third snapshot, of the fork, shares with the second.
    let third = d
        .cairn(&["snapshot", "create", &fork, "--stateful", "--json"])
        .json();
    assert!(size(&third) < size(&first) / 4, "{third}");
}

/// A process that keeps starting programs (`system()`, which vforks) is often frozen while it
/// waits for its child to exec, a state CRIU cannot seize: every checkpoint must still work.
#[test]
fn runc_a_process_that_keeps_starting_programs_is_checkpointed_every_time() {
    let d = daemon();
    let id = d
        .cairn(&["up", "--image", "base", "--runtime", "runc"])
        .ok();
    d.cairn(&[
        "exec",
        "-d",
        &id,
        "awk 'BEGIN { for (n = 1; ; n++) { print n > \"/tmp/n\"; close(\"/tmp/n\"); system(\"true\") } }'",
    ])
    .ok();
    let count = |sbx: &str| -> u64 {
        let out = d.cairn(&["exec", sbx, "cat /tmp/n 2>/dev/null"]).stdout;
        out.trim().parse().unwrap_or(0)
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    while count(&id) == 0 {
        assert!(Instant::now() < deadline, "the loop never started");
        std::thread::sleep(Duration::from_millis(100));
    }
    let mut last = String::new();
    for i in 0..20 {
        let out = d.cairn(&["snapshot", "create", &id, "--stateful", "--json"]);
        assert_eq!(out.code, 0, "stateful snapshot {i} failed: {}", out.stderr);
        if !last.is_empty() {
            d.cairn(&["snapshot", "delete", &last]).ok();
        }
        last = out.json()["id"].as_str().unwrap().to_string();
    }
    let fork = d.cairn(&["up", "--from-snapshot", &last]).ok();
    counts_on("the fork", count(&fork), || count(&fork));
}

/// Under gVisor, processes that exited do not pile up in the checkpoint: each program started
/// once added ~115 KB to it (runsc's `/proc` cached the dead task), up to ~115 MB, until
/// Cairn mounted a `/proc` with a small dentry cache over it, which forks keep.
#[test]
fn gvisor_programs_that_ended_do_not_grow_the_checkpoint() {
    let d = daemon();
    let id = d
        .cairn(&["up", "--image", "base", "--runtime", "gvisor"])
        .ok();
    let bounded = |sbx: &str| {
        let mounts = d.cairn(&["exec", sbx, "cat /proc/mounts"]).ok();
        assert!(
            mounts.contains("proc rw,dentry_cache_limit=1 "),
            "{sbx}'s /proc has no bounded cache: {mounts}"
        );
    };
    bounded(&id);
    d.cairn(&[
        "exec",
        "-d",
        &id,
        "n=0; while :; do n=$((n+1)); echo $n > /tmp/n; /bin/true; done",
    ])
    .ok();
    let count = |sbx: &str| -> u64 {
        let out = d.cairn(&["exec", sbx, "cat /tmp/n 2>/dev/null"]).stdout;
        out.trim().parse().unwrap_or(0)
    };
    let size = |snap: &serde_json::Value| snap["size_bytes"].as_u64().unwrap();
    let snap = || {
        d.cairn(&["snapshot", "create", &id, "--stateful", "--json"])
            .json()
    };
    counts_on("the loop", 0, || count(&id));
    snap();
    let second = snap();
    let from = count(&id);
    let deadline = Instant::now() + Duration::from_secs(60);
    while count(&id) < from + 300 {
        assert!(
            Instant::now() < deadline,
            "the loop started too few programs"
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    let third = snap();
    // Each holds the state file and the pages that changed; without the bound the third
    // holds 300 dead tasks more (~35 MB).
    assert!(
        size(&third) < size(&second) + (8 << 20),
        "{} bytes vs {} after {} programs",
        size(&third),
        size(&second),
        count(&id) - from
    );
    let fork = d
        .cairn(&["up", "--from-snapshot", third["id"].as_str().unwrap()])
        .ok();
    bounded(&fork);
    counts_on("the fork", count(&fork), || count(&fork));
}

/// A stateful snapshot whose manifest this cairnd cannot read (here: one written by a newer
/// Cairn, as an imported snapshot may be) is refused with a 409 that says why and what works
/// instead, not a 500; nothing is left behind, and `--fresh` still boots its files.
#[test]
fn runc_a_stateful_snapshot_with_a_newer_manifest_is_refused_saying_so() {
    let d = daemon();
    let id = d
        .cairn(&["up", "--image", "base", "--runtime", "runc"])
        .ok();
    d.start_counter(&id);
    let snap = d
        .cairn(&["snapshot", "create", &id, "--stateful", "--json"])
        .json()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let path = d
        .home
        .join("pool/snapshots")
        .join(&snap)
        .join("manifest.json");
    let mut manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    manifest["version"] = 99.into();
    std::fs::write(&path, serde_json::to_vec(&manifest).unwrap()).unwrap();
    // The sandboxes as listed, less the agent's link (it dials back after the snapshot's
    // pause, whenever it does).
    let listed = || {
        let mut v = d.cairn(&["ls", "--json"]).json();
        for s in v.as_array_mut().unwrap() {
            s.as_object_mut().unwrap().remove("agent");
        }
        v
    };
    let before = listed();

    let refused = d.cairn(&["up", "--from-snapshot", &snap, "--json"]);
    assert_ne!(refused.code, 0);
    let err: serde_json::Value = serde_json::from_str(refused.stderr.trim()).unwrap();
    assert_eq!(err["error"]["code"], "conflict", "{err}");
    let message = err["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("newer Cairn") && message.contains("--fresh"),
        "{message}"
    );
    assert!(!message.contains("/pool/"), "a host path leaked: {message}");
    let restore = d.cairn(&["snapshot", "restore", &snap, "--json"]);
    assert_ne!(restore.code, 0);
    assert_eq!(listed(), before);

    let fresh = d.cairn(&["up", "--from-snapshot", &snap, "--fresh"]).ok();
    assert_eq!(d.cairn(&["exec", &fresh, "echo ok"]).ok().trim(), "ok");
}

/// `Accept: application/x-ndjson` on a stateful snapshot: progress lines of the memory as
/// cairnd receives it, the last one the whole of it, then the snapshot.
fn a_stateful_snapshot_streams_the_memory_it_receives(rt: &str) {
    const HELD: u64 = 96 << 20;
    let d = daemon();
    let (id, _) = up_holding(&d, rt, "512M", HELD);
    let (code, lines) = d.ndjson(
        Via::Unix,
        "POST",
        &format!("/v1/sandboxes/{id}/snapshots"),
        None,
        r#"{"name": "watched", "stateful": true}"#,
    );
    assert_eq!(code, 200, "{lines:?}");
    let (last, reports) = lines.split_last().unwrap();
    assert_eq!(last["type"], "result", "{lines:?}");
    assert_eq!(last["status"], 201, "{last}");
    assert_eq!(last["body"]["stateful"], true, "{last}");
    assert!(!reports.is_empty(), "no progress line: {lines:?}");
    for r in reports {
        assert_eq!(
            (&r["phase"], &r["unit"]),
            (&"memory".into(), &"bytes".into()),
            "{r}"
        );
        if let Some(total) = r["total"].as_u64() {
            assert!(r["done"].as_u64().unwrap() <= total, "{r}");
        }
    }
    let whole = reports.last().unwrap();
    assert_eq!(whole["done"], whole["total"], "{lines:?}");
    assert!(
        whole["done"].as_u64().unwrap() >= HELD,
        "the checkpoint holds the {HELD}-byte string: {whole}"
    );
    // The stream's snapshot is an ordinary one: a fork has the process.
    let snap = last["body"]["id"].as_str().unwrap();
    let fork = d.cairn(&["up", "--from-snapshot", snap]).ok();
    assert_eq!(status(&d, &fork).1, HELD);
}

#[test]
fn gvisor_a_stateful_snapshot_streams_the_memory_it_receives() {
    a_stateful_snapshot_streams_the_memory_it_receives("gvisor");
}

#[test]
fn runc_a_stateful_snapshot_streams_the_memory_it_receives() {
    a_stateful_snapshot_streams_the_memory_it_receives("runc");
}
