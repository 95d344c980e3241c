//! Snapshots by name, and the snapshots that got in a user's way (issue 15, findings 4
//! and 5): `NAME` and `SANDBOX:NAME` wherever a snapshot is taken (also after its sandbox
//! is destroyed, and never another account's), failed snapshots that count toward no
//! limit and make way, and the seeds' idiom `snapshot list SBX --json | jq -r '.[-1].id'`
//! landing on the user's latest ready snapshot, not on an automatic or failed one.

#![allow(clippy::unwrap_used)]

use std::process::Command;

use cairn_test_support::{assert_error, Daemon, Via};

fn daemon_with(args: &[&str]) -> Daemon {
    Daemon::with_base(
        env!("CARGO_BIN_EXE_cairnd"),
        env!("CARGO_BIN_EXE_cairn"),
        args,
    )
}

/// A daemon also listening on TCP, for a second account.
fn tcp_daemon() -> Daemon {
    Daemon::tcp_with_base(
        env!("CARGO_BIN_EXE_cairnd"),
        env!("CARGO_BIN_EXE_cairn"),
        &[],
    )
}

fn up(d: &Daemon, runtime: &str, name: Option<&str>) -> String {
    let mut args = vec!["up", "--image", "base", "--runtime", runtime];
    if let Some(n) = name {
        args.extend(["--name", n]);
    }
    d.cairn(&args).ok()
}

fn json_list(v: &serde_json::Value) -> &Vec<serde_json::Value> {
    v.as_array().unwrap_or_else(|| panic!("not a list: {v}"))
}

/// Exactly the seeds' idiom, run by bash: `cairn snapshot list SBX --json | jq -r '.[-1].id'`.
fn latest_by_idiom(d: &Daemon, sandbox: &str) -> String {
    assert!(
        cairn_test_support::which("jq").is_some(),
        "jq is needed for this test: apt-get install jq"
    );
    let out = Command::new("bash")
        .args([
            "-c",
            r#"set -o pipefail; "$CAIRN" snapshot list "$1" --json | jq -r '.[-1].id'"#,
            "idiom",
            sandbox,
        ])
        .env("CAIRN", env!("CARGO_BIN_EXE_cairn"))
        .env("CAIRN_HOME", &d.home)
        .env_remove("CAIRN_HOST")
        .env_remove("CAIRN_TOKEN")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// The snapshot directories in the pool, sorted.
fn on_disk(d: &Daemon) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(d.home.join("pool/snapshots"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

/// Rows and trees agree: every ready snapshot has its directory, and no other directory is
/// left (a failed snapshot keeps its row, never files).
fn assert_rows_match_trees(d: &Daemon) {
    assert_rows_match_trees_with(d, &[]);
}

/// [`assert_rows_match_trees`] where `others` are the ready snapshots of other accounts.
fn assert_rows_match_trees_with(d: &Daemon, others: &[&str]) {
    let all = d.cairn(&["snapshot", "list", "--all", "--json"]).json();
    let mut ready: Vec<String> = json_list(&all)
        .iter()
        .filter(|s| s["state"] == "ready")
        .map(|s| s["id"].as_str().unwrap().to_string())
        .chain(others.iter().map(|s| s.to_string()))
        .collect();
    ready.sort();
    assert_eq!(on_disk(d), ready, "{all}");
    assert!(
        json_list(&all)
            .iter()
            .all(|s| s["state"] == "ready" || s["state"] == "failed"),
        "{all}"
    );
}

cairn_test_support::both_runtimes!(the_seeds_idiom_returns_the_users_latest_ready_snapshot,);

/// A user snapshot, then a pause (an automatic snapshot), then a snapshot interrupted by a
/// crash (failed): the idiom keeps returning the user's snapshot; the failed one counts
/// toward no limit, and its name is free for the retry.
fn the_seeds_idiom_returns_the_users_latest_ready_snapshot(rt: &str) {
    let mut d = daemon_with(&["--max-snapshots-per-sandbox", "2"]);
    let id = up(&d, rt, None);
    d.cairn(&["exec", &id, "echo one > /root/f"]).ok();
    let first = d
        .cairn(&["snapshot", "create", &id, "--name", "first"])
        .ok();
    assert_eq!(latest_by_idiom(&d, &id), first);

    // A pause takes an automatic snapshot, listed with --all only, marked as such.
    d.cairn(&["pause", &id]).ok();
    d.cairn(&["resume", &id]).ok();
    let all = d
        .cairn(&["snapshot", "list", &id, "--all", "--json"])
        .json();
    let auto = json_list(&all)
        .iter()
        .find(|s| s["auto"] == true)
        .unwrap_or_else(|| panic!("no automatic snapshot: {all}"));
    assert_eq!(auto["state"], "ready", "{auto}");
    assert_eq!(latest_by_idiom(&d, &id), first, "{all}");
    let table = d.cairn(&["snapshot", "list", &id, "--all"]).ok();
    let auto_row = table
        .lines()
        .find(|l| l.contains(auto["id"].as_str().unwrap()))
        .unwrap();
    assert!(auto_row.contains(" auto "), "{table}");
    let user_row = table.lines().find(|l| l.contains(&first)).unwrap();
    assert!(
        table.lines().next().unwrap().contains("BY") && user_row.contains(" user "),
        "{table}"
    );
    let table = d.cairn(&["snapshot", "list", &id]).ok();
    assert!(!table.contains(auto["id"].as_str().unwrap()), "{table}");

    // cairnd dies while taking "second": recovery leaves it failed.
    let (point, stateful) = match rt {
        "gvisor" => ("snapshot-while-paused", true),
        _ => ("snapshot-after-subvolume", false),
    };
    d.terminate();
    d.env = vec![("CAIRN_CRASH_AT".into(), point.into())];
    d.relaunch();
    let mut args = vec!["snapshot", "create", &id, "--name", "second"];
    if stateful {
        args.push("--stateful");
    }
    assert_ne!(d.cairn(&args).code, 0);
    for _ in 0..50 {
        if d.has_exited() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert!(d.has_exited(), "cairnd did not stop at {point}");
    d.env.clear();
    d.relaunch();
    let all = d
        .cairn(&["snapshot", "list", &id, "--all", "--json"])
        .json();
    let failed = json_list(&all)
        .iter()
        .find(|s| s["name"] == "second")
        .unwrap_or_else(|| panic!("{all}"));
    assert_eq!(failed["state"], "failed", "{failed}");
    assert!(
        failed["error"].as_str().unwrap().contains("interrupted"),
        "{failed}"
    );
    assert_eq!(latest_by_idiom(&d, &id), first, "{all}");
    assert_rows_match_trees(&d);

    // The retry under the same name works: the failed one does not count toward the limit
    // of 2, and gives its name up.
    d.cairn(&["exec", &id, "echo two > /root/f"]).ok();
    let second = d
        .cairn(&["snapshot", "create", &id, "--name", "second"])
        .ok();
    assert_eq!(latest_by_idiom(&d, &id), second);
    let all = d
        .cairn(&["snapshot", "list", &id, "--all", "--json"])
        .json();
    assert!(
        !json_list(&all).iter().any(|s| s["state"] == "failed"),
        "the failed snapshot is pruned: {all}"
    );
    // The limit still holds for ready snapshots (the automatic one is not counted).
    let r = d.cairn(&["snapshot", "create", &id, "--name", "third"]);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(r.stderr.contains("limit is 2"), "{r:?}");
    assert_eq!(latest_by_idiom(&d, &id), second);
    // The idiom's snapshot is the one a restore by name brings back.
    d.cairn(&["exec", &id, "echo three > /root/f"]).ok();
    d.cairn(&["snapshot", "restore", &latest_by_idiom(&d, &id)])
        .ok();
    assert_eq!(d.cairn(&["exec", &id, "cat /root/f"]).ok(), "two");
    assert_rows_match_trees(&d);
}

/// Snapshots that fail (here: over the size limit) count toward no limit; only the latest
/// failure of a sandbox is kept (with its error, listed with --all), and it goes when the
/// sandbox's next snapshot is taken or the sandbox is destroyed.
#[test]
fn failed_snapshots_count_toward_no_limit_and_are_pruned() {
    let d = daemon_with(&[
        "--max-snapshots-per-sandbox",
        "2",
        "--max-snapshot-size",
        "1M",
    ]);
    let id = up(&d, "runc", Some("builder"));
    d.cairn(&[
        "exec",
        &id,
        "dd if=/dev/urandom of=/root/big bs=1M count=3 2>/dev/null",
    ])
    .ok();
    // Three failures in a row, the last two under one name: each says why, none says the
    // sandbox has too many snapshots or that the name is taken.
    for name in [None, Some("big"), Some("big")] {
        let mut args = vec!["snapshot", "create", "builder"];
        if let Some(n) = name {
            args.extend(["--name", n]);
        }
        let r = d.cairn(&args);
        assert_eq!(r.code, 1, "{r:?}");
        assert!(r.stderr.contains("over the limit of 1.0 MiB"), "{r:?}");
    }
    // Listed with --all only: the latest failure, with its error.
    let listed = d.cairn(&["snapshot", "list", "builder", "--json"]).json();
    assert!(json_list(&listed).is_empty(), "{listed}");
    let all = d
        .cairn(&["snapshot", "list", "builder", "--all", "--json"])
        .json();
    assert_eq!(json_list(&all).len(), 1, "{all}");
    assert_eq!(all[0]["state"], "failed");
    assert_eq!(all[0]["name"], "big");
    assert_eq!(all[0]["auto"], false);
    assert!(all[0]["error"].as_str().unwrap().contains("limit"), "{all}");
    let table = d.cairn(&["snapshot", "list", "builder", "--all"]).ok();
    assert!(
        table.contains("failed") && table.contains("user"),
        "{table}"
    );
    assert_rows_match_trees(&d);

    // Room again: two snapshots, the first under the failed one's name; the limit of 2 holds.
    d.cairn(&["exec", &id, "rm /root/big"]).ok();
    let big = d
        .cairn(&["snapshot", "create", "builder", "--name", "big"])
        .ok();
    d.cairn(&["snapshot", "create", "builder", "--name", "small"])
        .ok();
    let r = d.cairn(&["snapshot", "create", "builder", "--name", "third"]);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(
        r.stderr.contains("limit is 2") && r.stderr.contains("has 2 snapshots"),
        "{r:?}"
    );
    let all = d
        .cairn(&["snapshot", "list", "builder", "--all", "--json"])
        .json();
    let states: Vec<&str> = json_list(&all)
        .iter()
        .map(|s| s["state"].as_str().unwrap())
        .collect();
    assert_eq!(states, ["ready", "ready"], "{all}");
    assert_eq!(all[0]["id"], big.as_str());
    assert_rows_match_trees(&d);

    // A destroyed sandbox takes its failed snapshots along and keeps its ready ones.
    let other = up(&d, "runc", Some("other"));
    let kept = d
        .cairn(&["snapshot", "create", "other", "--name", "kept"])
        .ok();
    d.cairn(&[
        "exec",
        &other,
        "dd if=/dev/urandom of=/root/big bs=1M count=3 2>/dev/null",
    ])
    .ok();
    assert_eq!(d.cairn(&["snapshot", "create", "other"]).code, 1);
    d.cairn(&["destroy", "--force", "other"]).ok();
    let all = d
        .cairn(&["snapshot", "list", &other, "--all", "--json"])
        .json();
    let ids: Vec<&str> = json_list(&all)
        .iter()
        .map(|s| s["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, [kept.as_str()], "{all}");
    assert_rows_match_trees(&d);
}

/// cairnd killed while destroying a sandbox, after its row went and before its failed
/// snapshots were pruned: start-up recovery prunes them; its ready snapshot stays.
#[test]
fn a_crash_mid_destroy_leaves_no_failed_snapshot_behind() {
    let mut d = daemon_with(&["--max-snapshot-size", "1M"]);
    let id = up(&d, "runc", Some("builder"));
    let kept = d
        .cairn(&["snapshot", "create", "builder", "--name", "kept"])
        .ok();
    d.cairn(&[
        "exec",
        &id,
        "dd if=/dev/urandom of=/root/big bs=1M count=3 2>/dev/null",
    ])
    .ok();
    assert_eq!(d.cairn(&["snapshot", "create", "builder"]).code, 1);
    let all = d
        .cairn(&["snapshot", "list", &id, "--all", "--json"])
        .json();
    assert_eq!(json_list(&all).len(), 2, "{all}");

    d.terminate();
    d.env = vec![("CAIRN_CRASH_AT".into(), "destroy-after-row".into())];
    d.relaunch();
    assert_ne!(d.cairn(&["destroy", "--force", "builder"]).code, 0);
    for _ in 0..50 {
        if d.has_exited() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert!(d.has_exited(), "cairnd did not stop at destroy-after-row");
    d.env.clear();
    d.relaunch();

    assert!(json_list(&d.cairn(&["ls", "--json"]).json()).is_empty());
    for sandbox in [id.as_str(), "builder"] {
        let all = d
            .cairn(&["snapshot", "list", sandbox, "--all", "--json"])
            .json();
        let ids: Vec<&str> = json_list(&all)
            .iter()
            .map(|s| s["id"].as_str().unwrap())
            .collect();
        assert_eq!(ids, [kept.as_str()], "{sandbox}: {all}");
    }
    assert_eq!(
        d.cairn(&["snapshot", "inspect", "builder:kept", "--json"])
            .json()["id"],
        kept.as_str()
    );
    assert_rows_match_trees(&d);
}

/// Every place a snapshot is taken accepts `NAME` and `SANDBOX:NAME` (sandbox by id or name):
/// inspect, restore, diff (and its later snapshot), fork, `up --from-snapshot`, delete, and the
/// API's paths and bodies. Ids stay ids.
#[test]
fn snapshots_are_found_by_name_wherever_a_snapshot_is_taken() {
    let d = daemon_with(&[]);
    let id = up(&d, "runc", Some("builder"));
    d.cairn(&["exec", &id, "echo v1 > /root/f"]).ok();
    let baseline = d
        .cairn(&["snapshot", "create", "builder", "--name", "baseline"])
        .ok();
    for reference in ["baseline", "builder:baseline", &format!("{id}:baseline")] {
        let got = d
            .cairn(&["snapshot", "inspect", reference, "--json"])
            .json();
        assert_eq!(got["id"], baseline.as_str(), "{reference}: {got}");
        assert_eq!(got["sandbox_name"], "builder");
        let (code, got) = d.http(
            Via::Unix,
            "GET",
            &format!("/v1/snapshots/{reference}"),
            None,
            None,
        );
        assert_eq!(code, 200, "{reference}: {got}");
        assert_eq!(got["id"], baseline.as_str());
    }
    let table = d.cairn(&["snapshot", "inspect", "builder:baseline"]).ok();
    assert!(
        table.contains("sandbox name") && table.contains("taken by"),
        "{table}"
    );

    // Restore by name, and by SANDBOX:NAME over the API.
    d.cairn(&["exec", &id, "echo v2 > /root/f; echo new > /root/g"])
        .ok();
    let diff = d.cairn(&["snapshot", "diff", "baseline", "--json"]).json();
    assert!(
        json_list(&diff)
            .iter()
            .any(|e| e["path"] == "/root/g" && e["kind"] == "added"),
        "{diff}"
    );
    d.cairn(&["snapshot", "restore", "baseline"]).ok();
    assert_eq!(d.cairn(&["exec", &id, "cat /root/f"]).ok(), "v1");
    d.cairn(&["exec", &id, "echo v2 > /root/f"]).ok();
    let (code, body) = d.http(
        Via::Unix,
        "POST",
        "/v1/snapshots/builder:baseline/restore",
        None,
        Some("{}"),
    );
    assert_eq!(code, 200, "{body}");
    assert_eq!(d.cairn(&["exec", &id, "cat /root/f"]).ok(), "v1");

    // Diff between two snapshots by name: positional, flag, and API query.
    d.cairn(&["exec", &id, "echo new > /root/g"]).ok();
    d.cairn(&["snapshot", "create", "builder", "--name", "step-2"])
        .ok();
    for args in [
        vec!["snapshot", "diff", "baseline", "builder:step-2", "--json"],
        vec![
            "snapshot",
            "diff",
            "builder:baseline",
            "--against",
            "step-2",
            "--json",
        ],
    ] {
        let diff = d.cairn(&args).json();
        assert!(
            json_list(&diff).iter().any(|e| e["path"] == "/root/g"),
            "{args:?}: {diff}"
        );
    }
    let (code, diff) = d.http(
        Via::Unix,
        "GET",
        "/v1/snapshots/baseline/diff?against=builder:step-2",
        None,
        None,
    );
    assert_eq!(code, 200, "{diff}");
    assert!(json_list(&diff).iter().any(|e| e["path"] == "/root/g"));

    // Forks by name: cairn fork, up --from-snapshot, and from_snapshot in the API.
    let forks: Vec<String> = d
        .cairn(&["fork", "builder:baseline", "--count", "2"])
        .ok()
        .lines()
        .map(str::to_string)
        .collect();
    assert_eq!(forks.len(), 2);
    forks.iter().for_each(|f| {
        assert_eq!(d.cairn(&["exec", f, "cat /root/f"]).ok(), "v1");
        assert!(d.cairn(&["exec", f, "test -e /root/g"]).code != 0);
    });
    let fork = d.cairn(&["up", "--from-snapshot", "step-2"]).ok();
    assert_eq!(d.cairn(&["exec", &fork, "cat /root/g"]).ok(), "new");
    let (code, body) = d.http(
        Via::Unix,
        "POST",
        "/v1/sandboxes",
        None,
        Some(&format!(r#"{{"from_snapshot":"{id}:baseline"}}"#)),
    );
    assert_eq!(code, 201, "{body}");
    assert_eq!(
        d.cairn(&["exec", body["id"].as_str().unwrap(), "cat /root/f"])
            .ok(),
        "v1"
    );

    // Ids stay ids: a name never has an id's shape, and an unknown id is not found.
    let r = d.cairn(&["snapshot", "create", "builder", "--name", "snap-0badf00d"]);
    assert_eq!(r.code, 1);
    assert!(r.stderr.contains("shape of an id"), "{r:?}");
    let r = d.cairn(&["snapshot", "inspect", "snap-0badf00d"]);
    assert_eq!(r.code, 1);
    assert!(r.stderr.contains("no snapshot 'snap-0badf00d'"), "{r:?}");
    // Malformed SANDBOX:NAME: a 400 saying the forms.
    assert_error(
        &d.http(Via::Unix, "GET", "/v1/snapshots/:baseline", None, None),
        400,
        "invalid_argument",
        "SANDBOX:NAME",
    );
    assert_error(
        &d.http(
            Via::Unix,
            "GET",
            "/v1/snapshots/builder:nothing",
            None,
            None,
        ),
        404,
        "not_found",
        "cairn snapshot list builder --all",
    );

    // Delete by SANDBOX:NAME.
    d.cairn(&["snapshot", "delete", "builder:step-2"]).ok();
    let r = d.cairn(&["snapshot", "inspect", "step-2"]);
    assert_eq!(r.code, 1, "{r:?}");
    assert_rows_match_trees(&d);
}

/// The same name on two sandboxes: `NAME` is refused (409) with the `SANDBOX:NAME` forms to
/// use, listing only the caller's own; nothing is restored. Another account's snapshots are
/// never found by name, nor mentioned.
#[test]
fn an_ambiguous_name_lists_the_callers_forms_and_changes_nothing() {
    let d = tcp_daemon();
    let builder = up(&d, "runc", Some("builder"));
    let anonymous = up(&d, "runc", None);
    for sbx in [&builder, &anonymous] {
        d.cairn(&["exec", sbx, "echo v1 > /root/f"]).ok();
        d.cairn(&["snapshot", "create", sbx, "--name", "baseline"])
            .ok();
        d.cairn(&["exec", sbx, "echo v2 > /root/f"]).ok();
    }
    // Bob has a sandbox named builder with a snapshot named baseline too.
    let bob = d.token("bob");
    let tcp = format!("http://{}", d.tcp.as_ref().unwrap());
    let as_bob = |args: &[&str]| d.cairn_env(args, &[("CAIRN_HOST", &tcp), ("CAIRN_TOKEN", &bob)]);
    let bobs = as_bob(&[
        "up",
        "--image",
        "base",
        "--runtime",
        "runc",
        "--name",
        "builder",
    ])
    .ok();
    let bobs_snap = as_bob(&["snapshot", "create", "builder", "--name", "baseline"]).ok();

    let r = d.cairn(&["snapshot", "restore", "baseline"]);
    assert_eq!(r.code, 1, "{r:?}");
    let expected = format!("builder:baseline, {anonymous}:baseline");
    assert!(
        r.stderr.contains("is ambiguous") && r.stderr.contains(&expected),
        "{r:?}"
    );
    assert!(
        !r.stderr.contains(&bobs) && !r.stderr.contains(&bobs_snap),
        "another account's objects named: {r:?}"
    );
    assert_error(
        &d.http(
            Via::Unix,
            "POST",
            "/v1/snapshots/baseline/restore",
            None,
            Some("{}"),
        ),
        409,
        "conflict",
        "SANDBOX:NAME",
    );
    assert_error(
        &d.http(
            Via::Unix,
            "POST",
            "/v1/sandboxes",
            None,
            Some(r#"{"from_snapshot":"baseline"}"#),
        ),
        409,
        "conflict",
        "builder:baseline",
    );
    // Nothing was restored, nothing forked.
    for sbx in [&builder, &anonymous] {
        assert_eq!(d.cairn(&["exec", sbx, "cat /root/f"]).ok(), "v2");
    }
    assert_eq!(json_list(&d.cairn(&["ls", "--json"]).json()).len(), 2);
    // The forms the message gave work.
    d.cairn(&["snapshot", "restore", &format!("{anonymous}:baseline")])
        .ok();
    assert_eq!(d.cairn(&["exec", &anonymous, "cat /root/f"]).ok(), "v1");
    assert_eq!(d.cairn(&["exec", &builder, "cat /root/f"]).ok(), "v2");

    // Bob: his own name resolves to his own snapshot, by NAME and by SANDBOX:NAME; alice's
    // (the operator's `local` account) are not found by any of their forms.
    for reference in ["baseline", "builder:baseline"] {
        let got = as_bob(&["snapshot", "inspect", reference, "--json"]).json();
        assert_eq!(got["id"], bobs_snap.as_str(), "{reference}: {got}");
    }
    let r = as_bob(&["snapshot", "inspect", &format!("{anonymous}:baseline")]);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(!r.stderr.contains(&builder), "{r:?}");
    let (code, body) = d.http(
        Via::Tcp,
        "GET",
        &format!("/v1/sandboxes/{anonymous}/snapshots?all=true"),
        Some(&bob),
        None,
    );
    assert!(code == 404 || json_list(&body).is_empty(), "{code} {body}");
    assert_rows_match_trees_with(&d, &[&bobs_snap]);
}

/// `SANDBOX:NAME` keeps working after the sandbox is destroyed (by the name it had); a new
/// sandbox of the same name takes the name over, and the old snapshot stays reachable by
/// the old sandbox's id.
#[test]
fn sandbox_and_name_outlive_the_sandbox() {
    let d = daemon_with(&[]);
    let old = up(&d, "runc", Some("builder"));
    d.cairn(&["exec", &old, "echo old > /root/f"]).ok();
    let old_snap = d
        .cairn(&["snapshot", "create", "builder", "--name", "baseline"])
        .ok();
    d.cairn(&["destroy", "--force", "builder"]).ok();

    let fork = d.cairn(&["fork", "builder:baseline"]).ok();
    assert_eq!(d.cairn(&["exec", &fork, "cat /root/f"]).ok(), "old");
    // Still listed by the name its sandbox had, and found by plain NAME too.
    let listed = d.cairn(&["snapshot", "list", "builder", "--json"]).json();
    assert_eq!(listed[0]["id"], old_snap.as_str(), "{listed}");
    assert_eq!(listed[0]["sandbox"], old.as_str());
    assert_eq!(listed[0]["sandbox_name"], "builder");
    assert_eq!(
        d.cairn(&["snapshot", "inspect", "baseline", "--json"])
            .json()["id"],
        old_snap.as_str()
    );
    // Restoring it needs a target: the message says how.
    let r = d.cairn(&["snapshot", "restore", "builder:baseline"]);
    assert_eq!(r.code, 1);
    assert!(r.stderr.contains("--to"), "{r:?}");
    d.cairn(&["exec", &fork, "echo changed > /root/f"]).ok();
    d.cairn(&["snapshot", "restore", "builder:baseline", "--to", &fork])
        .ok();
    assert_eq!(d.cairn(&["exec", &fork, "cat /root/f"]).ok(), "old");

    // A new sandbox named builder, with its own baseline: builder:baseline is now its.
    let new = up(&d, "runc", Some("builder"));
    d.cairn(&["exec", &new, "echo new > /root/f"]).ok();
    let new_snap = d
        .cairn(&["snapshot", "create", "builder", "--name", "baseline"])
        .ok();
    let got = d
        .cairn(&["snapshot", "inspect", "builder:baseline", "--json"])
        .json();
    assert_eq!(got["id"], new_snap.as_str());
    let got = d
        .cairn(&["snapshot", "inspect", &format!("{old}:baseline"), "--json"])
        .json();
    assert_eq!(got["id"], old_snap.as_str());
    // Plain NAME is ambiguous, and the message tells the two apart.
    let r = d.cairn(&["snapshot", "inspect", "baseline"]);
    assert_eq!(r.code, 1);
    assert!(
        r.stderr
            .contains(&format!("{old}:baseline, builder:baseline")),
        "{r:?}"
    );
    let forked = d.cairn(&["up", "--from-snapshot", "builder:baseline"]).ok();
    assert_eq!(d.cairn(&["exec", &forked, "cat /root/f"]).ok(), "new");

    // Once the new one is destroyed too, builder:baseline names two destroyed sandboxes'
    // snapshots: refused, each named by its sandbox's id.
    d.cairn(&["destroy", "--force", "builder"]).ok();
    let r = d.cairn(&["fork", "builder:baseline"]);
    assert_eq!(r.code, 1);
    assert!(
        r.stderr
            .contains(&format!("{old}:baseline, {new}:baseline")),
        "{r:?}"
    );
    let got = d
        .cairn(&["snapshot", "inspect", &format!("{new}:baseline"), "--json"])
        .json();
    assert_eq!(got["id"], new_snap.as_str());
    assert_rows_match_trees(&d);
}
