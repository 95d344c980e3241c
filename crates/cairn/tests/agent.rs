//! The agent inside every sandbox, end to end on both runtimes (issue 17): every process is
//! a descendant of the sandbox's init, so a plain background process — started by an exec
//! without `-d` — keeps running in a stateful fork and after a restore; an exec's output
//! streams across a stateful snapshot; inspect and doctor say the agent is there. (`exec -t`
//! on both runtimes: tests/sandboxes.rs; resize: the agent's own tests.)

#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};

use cairn_test_support::Daemon;

fn daemon() -> Daemon {
    Daemon::with_base(
        env!("CARGO_BIN_EXE_cairnd"),
        env!("CARGO_BIN_EXE_cairn"),
        &[],
    )
}

/// The count the loop last wrote to `/tmp/c` in sandbox `id`, read on the host.
fn count(d: &Daemon, id: &str) -> Option<u64> {
    let path = d.home.join("pool/sandboxes").join(id).join("tmp/c");
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}

/// Waits until sandbox `id`'s count goes past `above`; panics after 10 s.
fn counts_past(d: &Daemon, id: &str, above: u64, what: &str) -> u64 {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(c) = count(d, id).filter(|c| *c > above) {
            return c;
        }
        assert!(
            Instant::now() < deadline,
            "{what}: the background counter does not count (stuck at {:?})\n{}",
            count(d, id),
            d.log_text()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn a_plain_background_process_survives_stateful_fork_and_restore(rt: &str) {
    let d = daemon();
    let id = d.cairn(&["up", "--image", "base", "--runtime", rt]).ok();
    let info = d.cairn(&["inspect", &id, "--json"]).json();
    assert_eq!(info["agent"], "connected", "{info}");
    // A plain exec (no -d) whose shell backgrounds the loop and returns at once.
    d.cairn(&[
        "exec",
        &id,
        "sh -c 'i=0; while :; do i=$((i+1)); echo $i > /tmp/c; sleep 0.1; done' > /dev/null 2>&1 &",
    ])
    .ok();
    let c = counts_past(&d, &id, 0, "the source");
    let snap = d
        .cairn(&["snapshot", "create", &id, "--stateful", "--json"])
        .json();
    let snap = snap["id"].as_str().unwrap().to_string();
    let c = counts_past(&d, &id, c, "the source after the snapshot");
    // A fork resumes the loop where the snapshot caught it.
    let fork = d.cairn(&["up", "--from-snapshot", &snap]).ok();
    let f = counts_past(&d, &fork, 0, "the fork");
    counts_past(&d, &fork, f, "the fork, later");
    let info = d.cairn(&["inspect", &fork, "--json"]).json();
    assert_eq!(info["agent"], "connected", "{info}");
    // The fork's agent runs its commands.
    assert_eq!(d.cairn(&["exec", &fork, "echo forked"]).ok(), "forked");
    // A restore in place brings the loop back too.
    d.cairn(&["snapshot", "restore", &snap]).ok();
    let r = counts_past(&d, &id, 0, "the restored source");
    counts_past(&d, &id, r, "the restored source, later");
    assert_eq!(d.cairn(&["exec", &id, "echo restored"]).ok(), "restored");
    let _ = c;
}

fn exec_streams_across_a_stateful_snapshot(rt: &str) {
    let d = std::sync::Arc::new(daemon());
    let id = d.cairn(&["up", "--image", "base", "--runtime", rt]).ok();
    let long = {
        let (d, id) = (std::sync::Arc::clone(&d), id.clone());
        std::thread::spawn(move || {
            d.cairn(&[
                "exec",
                &id,
                "for i in $(seq 1 20); do echo $i; sleep 0.1; done",
            ])
        })
    };
    std::thread::sleep(Duration::from_millis(500));
    d.cairn(&["snapshot", "create", &id, "--stateful"]).ok();
    let run = long.join().unwrap();
    let expected: Vec<String> = (1..=20).map(|i| i.to_string()).collect();
    assert_eq!(run.code, 0, "{run:?}");
    assert_eq!(run.stdout.lines().collect::<Vec<_>>(), expected, "{run:?}");
}

cairn_test_support::both_runtimes!(
    a_plain_background_process_survives_stateful_fork_and_restore,
    exec_streams_across_a_stateful_snapshot,
);

#[test]
fn doctor_says_the_agent_is_there_and_static() {
    let d = daemon();
    let checks = d.cairn(&["doctor", "--json"]);
    assert!(
        checks.stdout.contains("cairn-agent") && checks.stdout.contains("(static)"),
        "{checks:?}"
    );
}

#[test]
fn ps_lists_and_kill_signals_the_processes_of_a_sandbox() {
    let d = daemon();
    let id = d.cairn(&["up", "--image", "base"]).ok();
    let pid = d.cairn(&["exec", "-d", &id, "sleep 301"]).ok();
    let pid: u32 = pid.trim().parse().unwrap();
    let procs = d.cairn(&["ps", &id, "--json"]).json();
    assert!(
        procs
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["pid"] == pid && p["cmd"].as_str().unwrap().contains("sleep 301")),
        "{procs}"
    );
    d.cairn(&["kill", &id, &pid.to_string(), "KILL"]).ok();
    let deadline = Instant::now() + Duration::from_secs(5);
    while d.cairn(&["ps", &id]).ok().contains("sleep 301") {
        assert!(Instant::now() < deadline, "the process is still there");
        std::thread::sleep(Duration::from_millis(50));
    }
    // A process that is not there, the init, a signal that does not exist: refused, saying so.
    let gone = d.cairn(&["kill", &id, &pid.to_string()]);
    assert_ne!(gone.code, 0);
    assert!(gone.stderr.contains("no process"), "{gone:?}");
    let init = d.cairn(&["kill", &id, "1"]);
    assert!(init.stderr.contains("stop the sandbox"), "{init:?}");
    let bad = d.cairn(&["kill", &id, "2", "NOPE"]);
    assert!(bad.stderr.contains("unknown signal"), "{bad:?}");
}

#[test]
fn an_agent_killed_inside_the_sandbox_comes_back_and_the_sandbox_stays_usable() {
    let d = daemon();
    let id = d.cairn(&["up", "--image", "base"]).ok();
    let procs = d.cairn(&["ps", &id, "--json"]).json();
    let agent = procs
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["cmd"].as_str().unwrap().ends_with("agent serve"))
        .unwrap_or_else(|| panic!("no agent in {procs}"))["pid"]
        .clone();
    // The exec that kills it loses its agent: it ends, saying so.
    let killed = d.cairn(&["exec", &id, &format!("kill -9 {agent}; sleep 5")]);
    assert_ne!(killed.code, 0, "{killed:?}");
    // The init starts it again; it dials back and runs commands.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let r = d.cairn(&["exec", &id, "echo back"]);
        if r.code == 0 && r.stdout.trim() == "back" {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the agent did not come back: {r:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let info = d.cairn(&["inspect", &id, "--json"]).json();
    assert_eq!(info["state"], "running", "{info}");
    assert_eq!(info["agent"], "connected", "{info}");
}

/// cairnd's resident memory, in bytes.
fn rss(d: &Daemon) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{}/status", d.pid().unwrap())).unwrap();
    let kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap();
    kb * 1024
}

/// A client that streams an exec's stdin while the sandbox is paused (its agent quiesced, so
/// nothing reaches it) is held back once cairnd holds a few MiB for the agent: cairnd's
/// memory does not grow with what the client sends, and every byte arrives after the resume.
#[test]
fn stdin_sent_while_the_agent_is_away_is_held_back_not_buffered() {
    use std::io::Write;
    use std::process::Stdio;
    const MIB: usize = 1 << 20;
    let d = daemon();
    let id = d
        .cairn(&["up", "--image", "base", "--runtime", "runc"])
        .ok();
    let mut exec = d
        .cairn_command(&["exec", "-i", &id, "--", "wc", "-c"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = exec.stdin.take().unwrap();
    stdin.write_all(b"started").unwrap();
    std::thread::sleep(Duration::from_millis(500));
    d.cairn(&["pause", &id]).ok();
    let before = rss(&d);
    let writer = std::thread::spawn(move || {
        let chunk = vec![b'x'; MIB];
        for _ in 0..256 {
            stdin.write_all(&chunk).unwrap();
        }
    });
    std::thread::sleep(Duration::from_secs(4));
    let during = rss(&d);
    assert!(
        during < before + 64 * MIB as u64,
        "cairnd grew from {before} to {during} bytes while the agent was away"
    );
    assert!(!writer.is_finished(), "the client was not held back");
    d.cairn(&["resume", &id]).ok();
    writer.join().unwrap();
    let out = exec.wait_with_output().unwrap();
    assert!(out.status.success(), "{out:?}");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        (7 + 256 * MIB).to_string()
    );
}
