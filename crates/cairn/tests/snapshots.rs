//! Snapshot, restore and fork, end to end on both runtimes: the seed
//! workflows (also runnable as examples/*.sh), independence of forks,
//! deletion, limits and crash safety.

#![allow(clippy::unwrap_used)]

use std::path::PathBuf;

use cairn_test_support::Daemon;

fn daemon_with(args: &[&str]) -> Daemon {
    Daemon::with_base(
        env!("CARGO_BIN_EXE_cairnd"),
        env!("CARGO_BIN_EXE_cairn"),
        args,
    )
}

fn daemon() -> Daemon {
    daemon_with(&[])
}

fn up(d: &Daemon, runtime: &str) -> String {
    d.cairn(&["up", "--image", "base", "--runtime", runtime])
        .ok()
}

fn example(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../examples")
        .join(name)
}

/// Every file under /root, /etc and /tmp with its checksum, sorted.
fn listing(d: &Daemon, id: &str) -> String {
    d.cairn(&[
        "exec",
        id,
        "find /root /etc /tmp -xdev \\( -type f -o -type l \\) -exec md5sum {} + 2>&1 | sort",
    ])
    .ok()
}

cairn_test_support::both_runtimes!(
    restore_discards_everything_written_after_the_snapshot,
    forks_are_independent_of_each_other_and_the_source,
    iterative_loop_with_save_points,
    writes_made_just_before_a_snapshot_are_in_it,
    deleting_a_snapshot_keeps_its_forks_and_restored_sandboxes_working,
    stateful_snapshots_resume_processes_in_every_fork,
);

fn restore_discards_everything_written_after_the_snapshot(rt: &str) {
    let d = daemon();
    let id = up(&d, rt);
    d.cairn(&["exec", &id, "mkdir -p /root/app && echo v1 > /root/app/main.py && echo temp > /tmp/t && ln -s main.py /root/app/link"]).ok();
    let before = listing(&d, &id);
    let snap = d
        .cairn(&["snapshot", "create", &id, "--name", "baseline-passing"])
        .ok();
    assert!(snap.starts_with("snap-"), "{snap}");
    // The sandbox kept running through the snapshot.
    assert_eq!(
        d.cairn(&["inspect", &id, "--json"]).json()["state"],
        "running"
    );
    d.cairn(&[
        "exec",
        &id,
        "rm -rf /root/app; echo broken > /etc/cairn-image; echo junk > /root/new; rm /tmp/t",
    ])
    .ok();
    assert_ne!(listing(&d, &id), before);
    let restored = d.cairn(&["snapshot", "restore", &snap, "--json"]).json();
    assert_eq!(restored["state"], "running");
    assert_eq!(listing(&d, &id), before);
    // The example script does the same with its own sandbox.
    let r = d.script(&example("checkpoint-before-risk.sh"), &[rt, "base"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(
        r.stdout.contains("restored: files are exactly as at"),
        "{r:?}"
    );
}

fn forks_are_independent_of_each_other_and_the_source(rt: &str) {
    let d = daemon();
    let src = up(&d, rt);
    d.cairn(&["exec", &src, "echo setup > /root/setup"]).ok();
    let snap = d
        .cairn(&["snapshot", "create", &src, "--name", "ready-to-experiment"])
        .ok();
    d.cairn(&["exec", &src, "echo after-snapshot > /root/source-only"])
        .ok();
    let forks: Vec<String> = d
        .cairn(&["fork", &snap, "--count", "3"])
        .ok()
        .lines()
        .map(str::to_string)
        .collect();
    assert_eq!(forks.len(), 3, "{forks:?}");
    for (i, f) in forks.iter().enumerate() {
        d.cairn(&["exec", f, &format!("echo fork-{i} > /root/mine-{i}")])
            .ok();
    }
    for (i, f) in forks.iter().enumerate() {
        let files = d.cairn(&["exec", f, "ls /root | tr '\\n' ' '"]).ok();
        assert_eq!(
            files,
            format!("mine-{i} setup"),
            "fork {f} sees others' writes"
        );
        let info = d.cairn(&["inspect", f, "--json"]).json();
        assert_eq!(info["runtime"], rt);
    }
    assert_eq!(
        d.cairn(&["exec", &src, "ls /root | tr '\\n' ' '"]).ok(),
        "setup source-only"
    );
    // Keep the winner, destroy the losers: the winner and the snapshot are intact.
    for f in &forks[1..] {
        d.cairn(&["destroy", "--force", f]).ok();
    }
    assert_eq!(
        d.cairn(&["exec", &forks[0], "cat /root/mine-0 /root/setup"])
            .ok(),
        "fork-0\nsetup"
    );
    let again = d
        .cairn(&["up", "--from-snapshot", &snap, "--name", "again"])
        .ok();
    assert_eq!(
        d.cairn(&["exec", &again, "ls /root | tr '\\n' ' '"]).ok(),
        "setup"
    );
    let r = d.script(&example("fork-and-compare.sh"), &[rt, "base"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(
        r.stdout.contains("winner: sbx-") && r.stdout.contains("(approach-3)"),
        "{r:?}"
    );
}

fn iterative_loop_with_save_points(rt: &str) {
    let d = daemon();
    let r = d.script(&example("save-points.sh"), &[rt, "base"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(r.stdout.contains("step 3 failed: restored snap-"), "{r:?}");
    // Step 3 deleted steps 1-2; the restore brought them back, then 4 and 5 ran.
    assert!(
        r.stdout.trim_end().ends_with("step-1 step-2 step-4 step-5"),
        "{r:?}"
    );
}

fn writes_made_just_before_a_snapshot_are_in_it(rt: &str) {
    let d = daemon();
    let id = up(&d, rt);
    d.cairn(&["exec", &id, "dd if=/dev/urandom of=/root/blob bs=64k count=16 2>/dev/null; md5sum /root/blob > /root/blob.md5"]).ok();
    let snap = d.cairn(&["snapshot", "create", &id]).ok();
    let fork = d.cairn(&["up", "--from-snapshot", &snap]).ok();
    assert_eq!(
        d.cairn(&["exec", &fork, "md5sum -c /root/blob.md5"]).ok(),
        "/root/blob: OK"
    );
    let info = d.cairn(&["snapshot", "inspect", &snap, "--json"]).json();
    let size = info["size_bytes"].as_u64().unwrap();
    assert!(
        size >= 1 << 20,
        "a 1 MiB write must count in the snapshot's size: {info}"
    );
    assert!(info["total_bytes"].as_u64().unwrap() > size);
    assert_eq!(info["state"], "ready");
    // A second snapshot with no change in between holds (almost) nothing of its own.
    let second = d.cairn(&["snapshot", "create", &id, "--json"]).json();
    assert_eq!(second["parent"], snap.as_str());
    assert!(
        second["size_bytes"].as_u64().unwrap() < 64 << 10,
        "{second}"
    );
}

fn deleting_a_snapshot_keeps_its_forks_and_restored_sandboxes_working(rt: &str) {
    let d = daemon();
    let id = up(&d, rt);
    d.cairn(&["exec", &id, "echo kept > /root/f"]).ok();
    let snap = d.cairn(&["snapshot", "create", &id]).ok();
    let fork = d.cairn(&["up", "--from-snapshot", &snap]).ok();
    d.cairn(&["exec", &id, "rm /root/f"]).ok();
    d.cairn(&["snapshot", "restore", &snap]).ok();
    d.cairn(&["snapshot", "delete", &snap]).ok();
    assert!(!d.home.join("pool/snapshots").join(&snap).exists());
    assert_eq!(d.cairn(&["exec", &fork, "cat /root/f"]).ok(), "kept");
    assert_eq!(d.cairn(&["exec", &id, "cat /root/f"]).ok(), "kept");
    d.cairn(&["stop", &fork]).ok();
    d.cairn(&["start", &fork]).ok();
    assert_eq!(d.cairn(&["exec", &fork, "cat /root/f"]).ok(), "kept");
    let r = d.cairn(&["snapshot", "restore", &snap]);
    assert_eq!(r.code, 1);
    assert!(r.stderr.contains("no snapshot"), "{r:?}");
}

#[test]
fn snapshots_outlive_their_sandbox_unless_destroyed_with_them() {
    let d = daemon();
    let id = up(&d, "runc");
    d.cairn(&["exec", &id, "echo x > /root/x"]).ok();
    let a = d.cairn(&["snapshot", "create", &id, "--name", "a"]).ok();
    d.cairn(&["stop", &id]).ok();
    // Snapshotting a stopped sandbox leaves it stopped.
    let b = d.cairn(&["snapshot", "create", &id, "--name", "b"]).ok();
    assert_eq!(
        d.cairn(&["inspect", &id, "--json"]).json()["state"],
        "stopped"
    );
    let list = d.cairn(&["snapshot", "list", &id, "--json"]).json();
    let ids: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, [a.as_str(), b.as_str()], "newest last");
    let table = d.cairn(&["snapshot", "list", &id]).ok();
    assert!(
        table.starts_with("ID") && table.contains("SIZE") && table.contains("ready"),
        "{table}"
    );
    d.cairn(&["destroy", &id]).ok();
    assert_eq!(
        d.cairn(&["snapshot", "list", "--all", "--json"])
            .json()
            .as_array()
            .unwrap()
            .len(),
        2
    );
    let fork = d.cairn(&["up", "--from-snapshot", &a]).ok();
    assert_eq!(d.cairn(&["exec", &fork, "cat /root/x"]).ok(), "x");
    // Restoring into the destroyed source is refused with a way out.
    let r = d.cairn(&["snapshot", "restore", &a]);
    assert!(r.stderr.contains("--to"), "{r:?}");
    d.cairn(&["exec", &fork, "rm /root/x"]).ok();
    d.cairn(&["snapshot", "restore", &a, "--to", &fork]).ok();
    assert_eq!(d.cairn(&["exec", &fork, "cat /root/x"]).ok(), "x");
    let c = d.cairn(&["snapshot", "create", &fork, "--name", "c"]).ok();
    d.cairn(&["destroy", "--force", "--with-snapshots", &fork])
        .ok();
    let all = d.cairn(&["snapshot", "list", "--all", "--json"]).json();
    assert!(
        !all.as_array()
            .unwrap()
            .iter()
            .any(|s| s["id"] == c.as_str()),
        "{all}"
    );
    assert!(!d.home.join("pool/snapshots").join(&c).exists());
}

#[test]
fn names_are_unique_per_sandbox_and_limits_are_enforced() {
    let d = daemon_with(&["--max-snapshots-per-sandbox", "2"]);
    let id = up(&d, "runc");
    let first = d.cairn(&["snapshot", "create", &id, "--name", "same"]).ok();
    let r = d.cairn(&["snapshot", "create", &id, "--name", "same"]);
    assert_eq!(r.code, 1);
    assert!(
        r.stderr.contains(&first) && r.stderr.contains("already has a snapshot named 'same'"),
        "{r:?}"
    );
    d.cairn(&["snapshot", "create", &id]).ok();
    let r = d.cairn(&["snapshot", "create", &id, "--name", "third"]);
    assert_eq!(r.code, 1);
    assert!(
        r.stderr.contains("limit is 2") && r.stderr.contains("has 2 snapshots"),
        "{r:?}"
    );
    assert_eq!(
        d.cairn(&["snapshot", "list", &id, "--json"])
            .json()
            .as_array()
            .unwrap()
            .len(),
        2
    );
    assert_eq!(
        std::fs::read_dir(d.home.join("pool/snapshots"))
            .unwrap()
            .count(),
        2
    );
    // Size limit: a 3 MiB change against a 1 MiB limit.
    let d = daemon_with(&["--max-snapshot-size", "1M"]);
    let id = up(&d, "runc");
    d.cairn(&[
        "exec",
        &id,
        "dd if=/dev/zero of=/root/big bs=1M count=3 2>/dev/null",
    ])
    .ok();
    let r = d.cairn(&["snapshot", "create", &id, "--name", "big"]);
    assert_eq!(r.code, 1);
    assert!(r.stderr.contains("over the limit of 1.0 MiB"), "{r:?}");
    // A failed snapshot is listed with --all only (issue 15), with its error and no files.
    let list = d
        .cairn(&["snapshot", "list", &id, "--all", "--json"])
        .json();
    assert_eq!(list[0]["state"], "failed", "{list}");
    assert!(
        list[0]["error"].as_str().unwrap().contains("limit"),
        "{list}"
    );
    assert!(!d
        .home
        .join("pool/snapshots")
        .join(list[0]["id"].as_str().unwrap())
        .exists());
}

#[test]
fn diff_lists_added_modified_and_deleted_paths() {
    let d = daemon();
    let id = up(&d, "runc");
    d.cairn(&[
        "exec",
        &id,
        "echo a > /root/keep; echo b > /root/change; echo c > /root/remove",
    ])
    .ok();
    let a = d.cairn(&["snapshot", "create", &id]).ok();
    d.cairn(&[
        "exec",
        &id,
        "echo bigger-now > /root/change; rm /root/remove; echo n > /root/new",
    ])
    .ok();
    let live = d.cairn(&["snapshot", "diff", &a, "--json"]).json();
    let got: Vec<(String, String)> = live
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["path"].as_str().unwrap().starts_with("/root/"))
        .map(|e| {
            (
                e["kind"].as_str().unwrap().to_string(),
                e["path"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(
        got,
        [
            ("modified".into(), "/root/change".into()),
            ("added".into(), "/root/new".into()),
            ("deleted".into(), "/root/remove".into())
        ],
        "{live}"
    );
    let b = d.cairn(&["snapshot", "create", &id]).ok();
    let between = d.cairn(&["snapshot", "diff", &a, &b]).ok();
    assert!(
        between.contains("/root/new") && between.contains("added"),
        "{between}"
    );
}

#[test]
fn a_crash_mid_snapshot_or_mid_fork_leaves_a_consistent_state() {
    // gVisor is paused through its control socket, which runsc's own state does not show:
    // the restart must still find it paused (stateful: the checkpoint is taken the same way).
    for (runtime, point, action) in [
        ("runc", "snapshot-while-paused", "snapshot"),
        ("gvisor", "snapshot-while-paused", "stateful"),
        ("runc", "snapshot-after-subvolume", "snapshot"),
        ("runc", "fork-after-subvolume", "fork"),
    ] {
        let point_name = point;
        let point = &format!("{runtime} {point_name}");
        let mut d = daemon();
        let id = up(&d, runtime);
        d.cairn(&["exec", &id, "echo precious > /root/f"]).ok();
        let snap = d
            .cairn(&["snapshot", "create", &id, "--name", "before"])
            .ok();
        // Restart cairnd with the crash hook armed.
        d.terminate();
        d.env = vec![("CAIRN_CRASH_AT".into(), point_name.into())];
        d.relaunch();
        let r = if action == "snapshot" {
            d.cairn(&["snapshot", "create", &id, "--name", "doomed"])
        } else if action == "stateful" {
            d.cairn(&["snapshot", "create", &id, "--name", "doomed", "--stateful"])
        } else {
            d.cairn(&["up", "--from-snapshot", &snap])
        };
        assert_ne!(r.code, 0, "{point}: {r:?}");
        for _ in 0..50 {
            if d.has_exited() {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        assert!(
            d.has_exited(),
            "{point}: cairnd did not stop at the crash point"
        );
        d.env.clear();
        d.relaunch();
        let snaps = d.cairn(&["snapshot", "list", "--all", "--json"]).json();
        assert!(
            !snaps
                .as_array()
                .unwrap()
                .iter()
                .any(|s| s["state"] == "creating"),
            "{point}: {snaps}"
        );
        let on_disk: Vec<String> = std::fs::read_dir(d.home.join("pool/snapshots"))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(
            on_disk,
            std::slice::from_ref(&snap),
            "{point}: orphan snapshot files"
        );
        let sandboxes = d.cairn(&["ls", "--json"]).json();
        assert_eq!(
            sandboxes.as_array().unwrap().len(),
            1,
            "{point}: {sandboxes}"
        );
        assert_eq!(
            std::fs::read_dir(d.home.join("pool/sandboxes"))
                .unwrap()
                .count(),
            1,
            "{point}: orphan root"
        );
        assert_eq!(sandboxes[0]["state"], "running", "{point}");
        // Not left frozen (a crash inside the pause window): an exec answers.
        assert_eq!(
            d.cairn(&["exec", "--timeout", "10", &id, "cat /root/f"])
                .ok(),
            "precious",
            "{point}"
        );
        if action != "fork" {
            let doomed = snaps
                .as_array()
                .unwrap()
                .iter()
                .find(|s| s["name"] == "doomed")
                .unwrap();
            assert_eq!(doomed["state"], "failed");
            assert!(
                doomed["error"].as_str().unwrap().contains("interrupted"),
                "{doomed}"
            );
        }
        // Everything still works afterwards.
        let fork = d.cairn(&["up", "--from-snapshot", &snap]).ok();
        assert_eq!(d.cairn(&["exec", &fork, "cat /root/f"]).ok(), "precious");
    }
}

#[test]
fn concurrent_snapshots_of_one_sandbox_both_succeed() {
    let d = daemon();
    let id = up(&d, "runc");
    let spawn = || {
        d.cairn_command(&["snapshot", "create", &id])
            .output()
            .unwrap()
    };
    let (a, b) = std::thread::scope(|s| {
        let a = s.spawn(spawn);
        let b = s.spawn(spawn);
        (a.join().unwrap(), b.join().unwrap())
    });
    for out in [&a, &b] {
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let list = d.cairn(&["snapshot", "list", &id, "--json"]).json();
    let states: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["state"].as_str().unwrap())
        .collect();
    assert_eq!(states, ["ready", "ready"]);
    // Serialized: the second one's parent is the first.
    assert_eq!(list[1]["parent"], list[0]["id"]);
}

#[test]
fn the_account_snapshot_limit_counts_each_snapshots_own_changes() {
    let d = daemon_with(&["--max-account-snapshot-size", "3M"]);
    let id = up(&d, "runc");
    d.cairn(&[
        "exec",
        &id,
        "dd if=/dev/urandom of=/root/a bs=1M count=2 2>/dev/null",
    ])
    .ok();
    d.cairn(&["snapshot", "create", &id]).ok();
    // Unchanged data is shared: a second snapshot with no change fits.
    d.cairn(&["snapshot", "create", &id]).ok();
    d.cairn(&[
        "exec",
        &id,
        "dd if=/dev/urandom of=/root/b bs=1M count=2 2>/dev/null",
    ])
    .ok();
    let r = d.cairn(&["snapshot", "create", &id, "--name", "too-much"]);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(
        r.stderr.contains("over the limit of 3.0 MiB") && r.stderr.contains("now 2.0 MiB"),
        "{r:?}"
    );
}

/// The counter a background loop keeps in memory and mirrors to /tmp/c.
fn counter(d: &Daemon, id: &str) -> u64 {
    // `echo $i > /tmp/c` truncates before it writes: a read can fall in between.
    for _ in 0..10 {
        if let Ok(v) = d.cairn(&["exec", id, "cat /tmp/c"]).ok().parse() {
            return v;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    panic!("/tmp/c of {id} never held a number");
}

/// Under runc (CRIU): a TCP connection open inside the sandbox, client and server.
fn open_tcp_connection(d: &Daemon, id: &str) {
    d.cairn(&[
        "exec",
        "-d",
        id,
        "nc -l -p 9000 -e cat; echo server >> /tmp/tcp-closed",
    ])
    .ok();
    std::thread::sleep(std::time::Duration::from_millis(200));
    d.cairn(&[
        "exec",
        "-d",
        id,
        "while :; do echo ping; sleep 0.1; done | nc 127.0.0.1 9000 > /tmp/tcp; echo client >> /tmp/tcp-closed",
    ])
    .ok();
    std::thread::sleep(std::time::Duration::from_millis(300));
    assert!(d.cairn(&["exec", id, "cat /tmp/tcp"]).ok().contains("ping"));
}

/// Whether the sandbox's end of that connection has seen it close.
fn tcp_closed(d: &Daemon, id: &str) -> bool {
    d.cairn(&["exec", id, "cat /tmp/tcp-closed 2>/dev/null || true"])
        .ok()
        .contains("client")
}

fn stateful_snapshots_resume_processes_in_every_fork(rt: &str) {
    let d = daemon();
    let id = up(&d, rt);
    let runc = rt == "runc";
    if runc {
        open_tcp_connection(&d, &id);
    }
    // The count lives in the shell's memory; the file only mirrors it.
    // Detached (-d): a child of the sandbox's init, which a stateful snapshot carries.
    d.cairn(&[
        "exec",
        "-d",
        &id,
        "i=1000; while :; do i=$((i+1)); echo $i > /tmp/c; sleep 0.05; done",
    ])
    .ok();
    std::thread::sleep(std::time::Duration::from_millis(600));
    // Data written just before the snapshot (possibly still in gVisor's cache) is in its files.
    d.cairn(&["exec", &id, "dd if=/dev/urandom of=/root/blob bs=64k count=16 2>/dev/null; md5sum /root/blob > /root/blob.md5"]).ok();
    let snap = d
        .cairn(&["snapshot", "create", &id, "--stateful", "--json"])
        .json();
    assert_eq!(snap["stateful"], true);
    assert!(snap["size_bytes"].as_u64().unwrap() > 0);
    let snap = snap["id"].as_str().unwrap().to_string();
    let forks: Vec<String> = d
        .cairn(&["fork", &snap, "--count", "2"])
        .ok()
        .lines()
        .map(str::to_string)
        .collect();
    // The forks' files start from the snapshot's mirror value; their memory continues the count.
    let at_snapshot = {
        let fresh = d.cairn(&["up", "--from-snapshot", &snap, "--fresh"]).ok();
        assert_eq!(
            d.cairn(&["exec", &fresh, "md5sum -c /root/blob.md5"]).ok(),
            "/root/blob: OK"
        );
        let v = counter(&d, &fresh);
        std::thread::sleep(std::time::Duration::from_millis(500));
        assert_eq!(
            counter(&d, &fresh),
            v,
            "a --fresh fork must not run the loop"
        );
        v
    };
    assert!(at_snapshot > 1000);
    std::thread::sleep(std::time::Duration::from_millis(500));
    for f in &forks {
        let v = counter(&d, f);
        assert!(
            v > at_snapshot,
            "fork {f} did not resume the loop: {v} <= {at_snapshot}"
        );
        assert!(v < at_snapshot + 200, "fork {f} restarted or ran away: {v}");
        if runc {
            // Connections open at the snapshot are reset in forks; loopback works again.
            assert!(tcp_closed(&d, f), "fork {f} kept the TCP connection");
            assert_eq!(
                d.cairn(&[
                    "exec",
                    f,
                    "nc -l -p 9100 -e echo hi & sleep 0.2; nc 127.0.0.1 9100 </dev/null"
                ])
                .ok(),
                "hi"
            );
        }
    }
    if runc {
        assert!(!tcp_closed(&d, &id), "the source lost its TCP connection");
        let manifest = d
            .home
            .join("pool/snapshots")
            .join(&snap)
            .join("manifest.json");
        let m: serde_json::Value =
            serde_json::from_slice(&std::fs::read(manifest).unwrap()).unwrap();
        assert!(m["criu_version"].as_str().unwrap().starts_with('4'), "{m}");
    }
    // Independent: stopping one fork's loop leaves the other counting.
    d.cairn(&["stop", &forks[0]]).ok();
    let before = counter(&d, &forks[1]);
    std::thread::sleep(std::time::Duration::from_millis(300));
    assert!(counter(&d, &forks[1]) > before);
    // The source was not disturbed.
    let src = counter(&d, &id);
    std::thread::sleep(std::time::Duration::from_millis(300));
    assert!(counter(&d, &id) > src);
    // Restore in place brings the loop back to the snapshot's moment.
    d.cairn(&["snapshot", "restore", &snap]).ok();
    let v = counter(&d, &id);
    assert!(
        v >= at_snapshot && v < at_snapshot + 200,
        "{v} vs {at_snapshot}"
    );
    std::thread::sleep(std::time::Duration::from_millis(300));
    assert!(counter(&d, &id) > v);

    // (Manifests from another kernel, platform or runtime: see network.rs's acceptance test.)
}

/// `cairn snapshot tree` draws the lineage: a fork and the snapshot taken of it hang under
/// the snapshot it came from, a restored sandbox moves under the snapshot it went back to,
/// a deleted snapshot's children move up to its parent, and naming a sandbox keeps only the
/// trees that concern it.
#[test]
fn the_snapshot_tree_shows_forks_restores_and_deletions() {
    let d = daemon();
    let a = up(&d, "runc");
    let s1 = d.cairn(&["snapshot", "create", &a, "--name", "one"]).ok();
    let b = d.cairn(&["fork", &s1]).ok();
    let s2 = d.cairn(&["snapshot", "create", &b, "--name", "two"]).ok();
    let s3 = d.cairn(&["snapshot", "create", &a, "--name", "three"]).ok();
    d.cairn(&["snapshot", "restore", &s1]).ok();
    let lone = up(&d, "runc");

    let tree = d.cairn(&["snapshot", "tree", "--json"]).json();
    let image = &tree[0];
    assert_eq!(image["kind"], "image", "{tree}");
    assert_eq!(image["name"], "base", "{tree}");
    let ids = |v: &serde_json::Value| -> Vec<String> {
        v["children"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["id"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(ids(image), vec![s1.clone(), lone.clone()], "{tree}");
    let one = &image["children"][0];
    // Snapshots first (oldest first), then the sandboxes sitting there: a, restored to s1.
    assert_eq!(ids(one), vec![s2.clone(), s3.clone(), a.clone()], "{tree}");
    assert_eq!(ids(&one["children"][0]), vec![b.clone()], "{tree}");
    assert_eq!(one["children"][0]["sandbox"], b.as_str(), "{tree}");

    // As text, for people.
    let text = d.cairn(&["snapshot", "tree"]).ok();
    assert!(text.starts_with("image base\n├── "), "{text}");
    assert!(
        text.contains(&format!("│   │   └── ● {b} running")),
        "{text}"
    );

    // Deleting s2 moves b up under s1; naming b leaves the lone sandbox out.
    d.cairn(&["snapshot", "delete", &s2]).ok();
    let tree = d.cairn(&["snapshot", "tree", &b, "--json"]).json();
    assert_eq!(ids(&tree[0]), vec![s1.clone()], "{tree}");
    assert_eq!(ids(&tree[0]["children"][0]), vec![s3, a, b], "{tree}");
}
