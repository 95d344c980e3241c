//! Pause and resume end to end: the automatic snapshot a pause takes, its
//! pruning, releasing memory to disk, and the idle timeout.

#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};

use cairn_test_support::Daemon;

fn daemon_with(args: &[&str]) -> Daemon {
    Daemon::with_base(
        env!("CARGO_BIN_EXE_cairnd"),
        env!("CARGO_BIN_EXE_cairn"),
        args,
    )
}

fn counter(d: &Daemon, id: &str) -> u64 {
    d.cairn(&["exec", id, "cat /tmp/c"]).ok().parse().unwrap()
}

fn snapshots(d: &Daemon, id: &str) -> Vec<serde_json::Value> {
    // --all: automatic (and failed) snapshots are left out of the default listing.
    d.cairn(&["snapshot", "list", id, "--all", "--json"])
        .json()
        .as_array()
        .unwrap()
        .clone()
}

fn state(d: &Daemon, id: &str) -> serde_json::Value {
    let list = d.cairn(&["ls", "--json"]).json();
    list.as_array()
        .unwrap()
        .iter()
        .find(|s| s["id"] == id)
        .cloned()
        .unwrap()
}

cairn_test_support::both_runtimes!(
    pause_takes_an_automatic_stateful_snapshot_and_resume_continues_the_counter,
    release_memory_ends_the_processes_and_resume_restores_them,
    idle_timeout_pauses_a_sandbox_nobody_uses,
);

fn pause_takes_an_automatic_stateful_snapshot_and_resume_continues_the_counter(rt: &str) {
    let d = daemon_with(&[]);
    let id = d.cairn(&["up", "--image", "base", "--runtime", rt]).ok();
    d.start_counter(&id);
    let info = d.cairn(&["pause", &id, "--json"]).json();
    assert_eq!(info["state"], "paused");
    assert_eq!(info["memory_released"], false);
    let at_pause = d.counter_on_disk(&id).unwrap();
    std::thread::sleep(Duration::from_millis(400));
    assert_eq!(
        d.counter_on_disk(&id).unwrap(),
        at_pause,
        "a paused sandbox runs nothing"
    );

    let snaps = snapshots(&d, &id);
    assert_eq!(snaps.len(), 1, "{snaps:?}");
    assert!(snaps[0]["name"]
        .as_str()
        .unwrap()
        .starts_with("auto-pause-"));
    assert_eq!(snaps[0]["auto"], true);
    assert_eq!(snaps[0]["stateful"], true);
    assert_eq!(snaps[0]["state"], "ready");

    d.cairn(&["resume", &id]).ok();
    std::thread::sleep(Duration::from_millis(300));
    let v = counter(&d, &id);
    assert!(
        v > at_pause && v < at_pause + 100,
        "the loop continues from where it was paused: {v} vs {at_pause}"
    );

    // A fork of the automatic snapshot continues from the paused moment too.
    let fork = d
        .cairn(&["up", "--from-snapshot", snaps[0]["id"].as_str().unwrap()])
        .ok();
    std::thread::sleep(Duration::from_millis(300));
    let f = counter(&d, &fork);
    assert!(f > at_pause && f < at_pause + 100, "{f} vs {at_pause}");
}

#[test]
fn automatic_snapshots_are_pruned_and_do_not_count_against_the_limit() {
    let d = daemon_with(&["--keep-auto-pause", "2", "--max-snapshots-per-sandbox", "1"]);
    let id = d
        .cairn(&["up", "--image", "base", "--runtime", "runc"])
        .ok();
    d.cairn(&["snapshot", "create", &id, "--name", "mine"]).ok();
    let mut names = Vec::new();
    for i in 0..4 {
        d.cairn(&["exec", &id, &format!("echo {i} > /root/step")])
            .ok();
        d.cairn(&["pause", &id]).ok();
        names.push(
            snapshots(&d, &id).last().unwrap()["name"]
                .as_str()
                .unwrap()
                .to_string(),
        );
        d.cairn(&["resume", &id]).ok();
    }
    let snaps = snapshots(&d, &id);
    let autos: Vec<&str> = snaps
        .iter()
        .filter(|s| s["auto"] == true)
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        autos,
        vec![names[2].as_str(), names[3].as_str()],
        "{snaps:?}"
    );
    assert!(snaps.iter().any(|s| s["name"] == "mine"));
    // The user's own limit (1) is reached by "mine" alone.
    let r = d.cairn(&["snapshot", "create", &id]);
    assert_eq!(r.code, 1);
    assert!(r.stderr.contains("limit is 1 per sandbox"), "{r:?}");
    // The newest automatic snapshot holds the files as they were at that pause.
    let newest = snaps
        .iter()
        .find(|s| s["name"] == names[3].as_str())
        .unwrap();
    let fork = d
        .cairn(&["up", "--from-snapshot", newest["id"].as_str().unwrap()])
        .ok();
    assert_eq!(d.cairn(&["exec", &fork, "cat /root/step"]).ok(), "3");
}

fn release_memory_ends_the_processes_and_resume_restores_them(rt: &str) {
    let d = daemon_with(&[]);
    let id = d.cairn(&["up", "--image", "base", "--runtime", rt]).ok();
    d.start_counter(&id);
    let info = d
        .cairn(&["pause", "--release-memory", &id, "--json"])
        .json();
    assert_eq!(info["state"], "paused");
    assert_eq!(info["memory_released"], true);
    let at_pause = d.counter_on_disk(&id).unwrap();
    // No container is left: the processes exist only in the checkpoint.
    let bin = if rt == "gvisor" { "runsc" } else { "runc" };
    let listed = std::process::Command::new(bin)
        .arg("--root")
        .arg(d.home.join("run").join(bin))
        .args(["list", "--quiet"])
        .output()
        .unwrap();
    let listed = String::from_utf8_lossy(&listed.stdout).to_string();
    assert!(!listed.contains(&id), "container still there: {listed}");
    assert!(d
        .cairn(&["inspect", &id])
        .ok()
        .contains("memory released to disk"));
    let r = d.cairn(&["exec", &id, "true"]);
    assert_ne!(r.code, 0);
    // The snapshot holding the processes cannot be deleted meanwhile.
    let held = snapshots(&d, &id)[0]["id"].as_str().unwrap().to_string();
    let r = d.cairn(&["snapshot", "delete", &held]);
    assert_eq!(r.code, 1);
    assert!(r.stderr.contains("resume (or stop) it first"), "{r:?}");

    // The same survives a restart of cairnd.
    let mut d = d;
    d.restart();
    assert_eq!(state(&d, &id)["memory_released"], true);
    let info = d.cairn(&["resume", &id, "--json"]).json();
    assert_eq!(info["state"], "running");
    assert_eq!(info["memory_released"], false);
    std::thread::sleep(Duration::from_millis(300));
    let v = counter(&d, &id);
    assert!(
        v > at_pause && v < at_pause + 100,
        "restored from the checkpoint: {v} vs {at_pause}"
    );
}

fn idle_timeout_pauses_a_sandbox_nobody_uses(rt: &str) {
    let d = daemon_with(&[]);
    for bad in ["0", "5x", "1.5h"] {
        let r = d.cairn(&["up", "--image", "base", "--idle-timeout", bad]);
        assert_eq!(r.code, 1, "{bad}: {r:?}");
        assert!(r.stderr.contains("invalid duration"), "{r:?}");
    }
    let id = d
        .cairn(&[
            "up",
            "--image",
            "base",
            "--runtime",
            rt,
            "--idle-timeout",
            "3s",
        ])
        .ok();
    assert_eq!(
        d.cairn(&["inspect", &id, "--json"]).json()["idle_timeout_secs"],
        3
    );
    d.start_counter(&id);
    // A command running longer than the timeout keeps it busy.
    d.cairn(&["exec", &id, "sleep 4"]).ok();
    assert_eq!(state(&d, &id)["state"], "running");
    // Then nobody touches it ('ls' lists, it does not use the sandbox).
    let deadline = Instant::now() + Duration::from_secs(20);
    while state(&d, &id)["state"] != "paused" {
        assert!(
            Instant::now() < deadline,
            "not paused after its idle timeout"
        );
        std::thread::sleep(Duration::from_millis(250));
    }
    let snaps = snapshots(&d, &id);
    assert_eq!(snaps.len(), 1);
    assert_eq!(snaps[0]["auto"], true);
    let at_pause = d.counter_on_disk(&id).unwrap();
    d.cairn(&["resume", &id]).ok();
    std::thread::sleep(Duration::from_millis(300));
    let v = counter(&d, &id);
    assert!(v > at_pause && v < at_pause + 100, "{v} vs {at_pause}");
}
