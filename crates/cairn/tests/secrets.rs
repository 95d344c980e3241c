//! Secrets (issue 17): `cairn up --secret NAME=VALUE` gives a sandbox `/run/secrets/NAME`
//! and `exec --secret-env NAME`; the value is never in a snapshot (files, manifest, memory
//! checkpoint), the database or cairnd's log, and comes back after a snapshot, a restore and
//! a fork (which may be given another value). Another account never reaches it.

#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::time::{Duration, Instant};

use cairn_test_support::Daemon;
use cairn_test_support::Via;

fn daemon() -> Daemon {
    Daemon::with_base(
        env!("CARGO_BIN_EXE_cairnd"),
        env!("CARGO_BIN_EXE_cairn"),
        &[],
    )
}

/// A value no file would hold by chance.
fn unique(tag: &str) -> String {
    format!("cairn-secret-{tag}-{:016x}", rand_u64())
}

fn rand_u64() -> u64 {
    let mut b = [0u8; 8];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut b))
        .unwrap();
    u64::from_le_bytes(b)
}

fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// What the sandbox's `/run/secrets/NAME` holds (`missing` when there is none).
fn secret_file(d: &Daemon, id: &str, name: &str) -> String {
    d.cairn(&[
        "exec",
        id,
        &format!("cat /run/secrets/{name} 2>/dev/null || echo missing"),
    ])
    .ok()
}

/// Every file under `dir` (not following links) whose bytes hold `needle`; the pool's
/// loop image is skipped (its files are read through the pool itself).
fn files_holding(dir: &Path, needle: &[u8]) -> Vec<String> {
    let mut found = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(p) = stack.pop() {
        let Ok(meta) = std::fs::symlink_metadata(&p) else {
            continue;
        };
        if meta.is_dir() {
            for e in std::fs::read_dir(&p).unwrap().flatten() {
                stack.push(e.path());
            }
        } else if meta.is_file() && p.file_name().is_some_and(|n| n != "pool.img") {
            let bytes = std::fs::read(&p).unwrap_or_default();
            if bytes.windows(needle.len()).any(|w| w == needle) {
                found.push(p.display().to_string());
            }
        }
    }
    found
}

/// A loop (detached, so stateful snapshots carry it) that writes the SHA-256 of
/// `/run/secrets/TOKEN` (or `missing`) to /tmp/seen every 100 ms: what a process that
/// reads the file sees, without the value itself landing in any file.
fn start_reader(d: &Daemon, id: &str) {
    d.cairn(&[
        "exec",
        "-d",
        id,
        "while :; do (sha256sum /run/secrets/TOKEN 2>/dev/null || echo missing) | cut -c1-64 > /tmp/seen.new; mv /tmp/seen.new /tmp/seen; sleep 0.1; done",
    ])
    .ok();
    wait_for("the reader to start", || {
        d.cairn(&["exec", id, "test -s /tmp/seen"]).code == 0
    });
}

fn sha256(v: &str) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(v.as_bytes()))
}

fn seen(d: &Daemon, id: &str) -> String {
    d.cairn(&["exec", id, "cat /tmp/seen"]).ok()
}

cairn_test_support::both_runtimes!(
    secrets_stay_out_of_snapshots_and_come_back_after_them,
    bad_secret_names_and_unknown_secret_env_are_refused,
);

fn secrets_stay_out_of_snapshots_and_come_back_after_them(rt: &str) {
    let d = daemon();
    let token = unique("token");
    let from_env = unique("env");
    let up = d.cairn_env(
        &[
            "up",
            "--image",
            "base",
            "--runtime",
            rt,
            "--secret",
            &format!("TOKEN={token}"),
            "--secret",
            "FROM_ENV",
        ],
        &[("FROM_ENV", &from_env)],
    );
    let id = up.ok();

    // The files: the values, 0400 root, in a tmpfs.
    assert_eq!(secret_file(&d, &id, "TOKEN"), token);
    assert_eq!(secret_file(&d, &id, "FROM_ENV"), from_env);
    assert_eq!(
        d.cairn(&["exec", &id, "stat -c '%a %u %g' /run/secrets/TOKEN"])
            .ok(),
        "400 0 0"
    );
    assert_eq!(
        d.cairn(&[
            "exec",
            &id,
            "awk '$2 == \"/run/secrets\" {print $3}' /proc/mounts"
        ])
        .ok(),
        "tmpfs"
    );
    // In an exec's environment only when asked for.
    assert_eq!(
        d.cairn(&["exec", "--secret-env", "TOKEN", &id, "echo $TOKEN"])
            .ok(),
        token
    );
    assert_eq!(d.cairn(&["exec", &id, "echo \"[$TOKEN]\""]).ok(), "[]");
    // inspect names them, never shows them.
    let inspect = d.cairn(&["inspect", &id, "--json"]);
    assert_eq!(
        inspect.json()["secrets"],
        serde_json::json!(["FROM_ENV", "TOKEN"])
    );
    assert!(!inspect.stdout.contains(&token));
    assert!(d.cairn(&["inspect", &id]).ok().contains("FROM_ENV TOKEN"));

    // The scan below finds what a snapshot holds: a value in a file of the root, and one
    // only in a process's memory.
    let (in_file, in_memory) = (unique("file"), unique("memory"));
    d.cairn(&["exec", &id, &format!("echo {in_file} > /tmp/control")])
        .ok();
    d.cairn(&[
        "exec",
        "-d",
        &id,
        &format!("C={in_memory}; while :; do sleep 1; done"),
    ])
    .ok();
    // The agent's processes never hold CAP_SYS_ADMIN (the agent may, under gVisor).
    let cap_eff = d
        .cairn(&["exec", &id, "grep CapEff /proc/self/status | cut -f2"])
        .ok();
    let cap_eff = u64::from_str_radix(&cap_eff, 16).unwrap();
    assert_eq!(
        cap_eff & (1 << 21),
        0,
        "CapEff {cap_eff:x} has CAP_SYS_ADMIN"
    );
    let cap_bnd = d
        .cairn(&["exec", &id, "grep CapBnd /proc/self/status | cut -f2"])
        .ok();
    assert_eq!(u64::from_str_radix(&cap_bnd, 16).unwrap() & (1 << 21), 0);

    // A stateful snapshot, with a process reading the file.
    start_reader(&d, &id);
    wait_for("the reader to see the secret", || {
        seen(&d, &id) == sha256(&token)
    });
    let snap = d
        .cairn(&["snapshot", "create", &id, "--stateful", "--name", "s1"])
        .ok();
    // The source has its secrets back at once.
    assert_eq!(secret_file(&d, &id, "TOKEN"), token);

    // Nowhere in the snapshot (files, manifest, memory checkpoint), the database, the log.
    let snap_dir = d.home.join("pool").join("snapshots").join(&snap);
    assert!(snap_dir.is_dir(), "{}", snap_dir.display());
    let found = files_holding(&snap_dir.join("rootfs"), in_file.as_bytes());
    assert!(!found.is_empty(), "the scan misses the root's files");
    let found = files_holding(&snap_dir.join("checkpoint"), in_memory.as_bytes());
    assert!(!found.is_empty(), "the scan misses the memory checkpoint");
    for value in [&token, &from_env] {
        let found = files_holding(&snap_dir, value.as_bytes());
        assert!(found.is_empty(), "the secret is in {found:?}");
        let found = files_holding(&d.home, value.as_bytes());
        assert!(found.is_empty(), "the secret is in {found:?}");
        assert!(
            !d.log_text().contains(value.as_str()),
            "the secret is in cairnd's log"
        );
    }
    // A stateful fork: its reader sees the secret again; a fork given another value sees
    // that; both in the file.
    let fork = d.cairn(&["fork", &snap]).ok();
    assert_eq!(secret_file(&d, &fork, "TOKEN"), token);
    wait_for("the fork's reader to see the secret again", || {
        seen(&d, &fork) == sha256(&token)
    });
    let other = unique("other");
    let forked = d
        .cairn(&["fork", &snap, "--secret", &format!("TOKEN={other}")])
        .ok();
    assert_eq!(secret_file(&d, &forked, "TOKEN"), other);
    assert_eq!(secret_file(&d, &forked, "FROM_ENV"), from_env);
    wait_for("the other fork's reader to see its own value", || {
        seen(&d, &forked) == sha256(&other)
    });
    let fresh = d.cairn(&["up", "--from-snapshot", &snap, "--fresh"]).ok();
    assert_eq!(secret_file(&d, &fresh, "TOKEN"), token);
    assert!(files_holding(&d.home, other.as_bytes()).is_empty());

    // Restore in place: the secrets are back.
    d.cairn(&["snapshot", "restore", &snap]).ok();
    assert_eq!(secret_file(&d, &id, "TOKEN"), token);
    wait_for("the restored reader to see the secret", || {
        seen(&d, &id) == sha256(&token)
    });
    // Pause and resume (the automatic snapshot checkpoints it) keep them too.
    d.cairn(&["pause", &id]).ok();
    d.cairn(&["resume", &id]).ok();
    assert_eq!(secret_file(&d, &id, "TOKEN"), token);
    for value in [&token, &from_env, &other] {
        let found = files_holding(&d.home, value.as_bytes());
        assert!(found.is_empty(), "the secret is in {found:?}");
        assert!(!d.log_text().contains(value.as_str()));
    }
}

fn bad_secret_names_and_unknown_secret_env_are_refused(rt: &str) {
    let d = daemon();
    for bad in ["1ABC=x", "A-B=x", "../x=y", "A B=x"] {
        let r = d.cairn(&["up", "--image", "base", "--runtime", rt, "--secret", bad]);
        assert_eq!(r.code, 1, "{bad}: {r:?}");
        assert!(r.stderr.contains("invalid secret name"), "{bad}: {r:?}");
    }
    let r = d.cairn_env(
        &[
            "up",
            "--image",
            "base",
            "--runtime",
            rt,
            "--secret",
            "UNSET_HERE",
        ],
        &[],
    );
    assert_eq!(r.code, 1);
    assert!(r.stderr.contains("$UNSET_HERE is not set"), "{r:?}");
    // The API checks too (a client that skips the CLI), and the limits.
    let (status, body) = d.http(
        Via::Unix,
        "POST",
        "/v1/sandboxes",
        None,
        Some(&format!(
            r#"{{"image":"base","runtime":"{rt}","secrets":{{"a/b":"x"}}}}"#
        )),
    );
    assert_eq!(status, 400, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("invalid secret name"),
        "{body}"
    );
    let big = "x".repeat(64 * 1024 + 1);
    let (status, body) = d.http(
        Via::Unix,
        "POST",
        "/v1/sandboxes",
        None,
        Some(&format!(
            r#"{{"image":"base","runtime":"{rt}","secrets":{{"BIG":"{big}"}}}}"#
        )),
    );
    assert_eq!(status, 400, "{body}");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("limit") && !message.contains("xxxx"),
        "{body}"
    );

    let id = d
        .cairn(&["up", "--image", "base", "--runtime", rt, "--secret", "A=1"])
        .ok();
    let r = d.cairn(&["exec", "--secret-env", "NOPE", &id, "true"]);
    assert_ne!(r.code, 0);
    assert!(r.stderr.contains("has no secret NOPE"), "{r:?}");
    let r = d.cairn(&["exec", "--secret-env", "bad-name", &id, "true"]);
    assert!(r.stderr.contains("invalid secret name"), "{r:?}");
    assert_eq!(
        d.cairn(&["ls", "--json"]).json().as_array().unwrap().len(),
        1
    );
}

/// Another account never reaches a sandbox's secrets: its requests do not find the sandbox.
#[test]
fn another_account_cannot_read_secrets() {
    let d = Daemon::tcp_with_base(
        env!("CARGO_BIN_EXE_cairnd"),
        env!("CARGO_BIN_EXE_cairn"),
        &[],
    );
    let (alice, bob) = (d.token("alice"), d.token("bob"));
    let value = unique("alice");
    let (status, body) = d.http(
        Via::Tcp,
        "POST",
        "/v1/sandboxes",
        Some(&alice),
        Some(&format!(
            r#"{{"image":"base","runtime":"runc","secrets":{{"KEY":"{value}"}}}}"#
        )),
    );
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["secrets"], serde_json::json!(["KEY"]));
    assert!(!body.to_string().contains(&value));
    let id = body["id"].as_str().unwrap().to_string();
    for (method, path, req) in [
        ("GET", format!("/v1/sandboxes/{id}"), None),
        (
            "POST",
            format!("/v1/sandboxes/{id}/exec"),
            Some(r#"{"cmd":["cat","/run/secrets/KEY"],"secret_env":["KEY"]}"#),
        ),
        (
            "GET",
            format!("/v1/sandboxes/{id}/files?path=/run/secrets/KEY"),
            None,
        ),
    ] {
        let (status, body) = d.http(Via::Tcp, method, &path, Some(&bob), req);
        assert_eq!(status, 404, "{path}: {body}");
        assert!(!body.to_string().contains(&value));
    }
    // Alice's own exec reads it.
    let addr = format!("http://{}", d.tcp.as_ref().unwrap());
    let r = d.cairn_env(
        &[
            "exec",
            "--secret-env",
            "KEY",
            &id,
            "echo $KEY; cat /run/secrets/KEY",
        ],
        &[("CAIRN_HOST", &addr), ("CAIRN_TOKEN", &alice)],
    );
    assert_eq!(r.ok(), format!("{value}\n{value}"));
}

/// A cairnd without the agent refuses secrets with a message that says why.
#[test]
fn secrets_without_the_agent_are_refused() {
    let d = Daemon::with_base(
        env!("CARGO_BIN_EXE_cairnd"),
        env!("CARGO_BIN_EXE_cairn"),
        &["--agent", "/bin/sh"],
    );
    let r = d.cairn(&[
        "up",
        "--image",
        "base",
        "--runtime",
        "runc",
        "--secret",
        "A=1",
    ]);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(
        r.stderr.contains("secrets are delivered by the agent"),
        "{r:?}"
    );
    let id = d
        .cairn(&["up", "--image", "base", "--runtime", "runc"])
        .ok();
    let r = d.cairn(&["exec", "--secret-env", "A", &id, "true"]);
    assert_ne!(r.code, 0);
    assert!(r.stderr.contains("needs the agent"), "{r:?}");
}

/// A cairnd restarted under running sandboxes gives their agents their secrets again
/// (they dial the new cairnd, whose first word is `init`).
#[test]
fn secrets_survive_a_cairnd_restart() {
    let mut d = daemon();
    let value = unique("restart");
    let ids: Vec<String> = ["runc", "gvisor"]
        .iter()
        .map(|rt| {
            d.cairn(&[
                "up",
                "--image",
                "base",
                "--runtime",
                rt,
                "--secret",
                &format!("KEY={value}"),
            ])
            .ok()
        })
        .collect();
    d.restart();
    for id in &ids {
        assert_eq!(secret_file(&d, id, "KEY"), value);
        assert_eq!(
            d.cairn(&["exec", "--secret-env", "KEY", id, "echo $KEY"])
                .ok(),
            value
        );
    }
    assert!(!d.log_text().contains(value.as_str()));
}
