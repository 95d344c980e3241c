//! Forks in batches (`POST /v1/snapshots/{id}/fork {count}`, `cairn fork --count N`), end
//! to end on both runtimes: the count asked for is made, each fork is its own, a batch that
//! cannot be made whole is refused before any fork is made, bad counts are 4xx, and
//! another account's snapshot is not found.

#![allow(clippy::unwrap_used)]

use cairn_test_support::{assert_error, both_runtimes, Daemon, PrivateNet, Via};

fn daemon_with(args: &[&str]) -> Daemon {
    Daemon::with_base(
        env!("CARGO_BIN_EXE_cairnd"),
        env!("CARGO_BIN_EXE_cairn"),
        args,
    )
}

fn up(d: &Daemon, runtime: &str, extra: &[&str]) -> String {
    let mut args = vec!["up", "--image", "base", "--runtime", runtime];
    args.extend_from_slice(extra);
    d.cairn(&args).ok()
}

fn sandbox_count(d: &Daemon) -> usize {
    d.cairn(&["ls", "--json"])
        .json()
        .as_array()
        .map(Vec::len)
        .unwrap_or(0)
}

fn a_batch_makes_count_independent_forks(rt: &str) {
    let d = daemon_with(&[]);
    let src = up(&d, rt, &[]);
    d.cairn(&["exec", &src, "echo setup > /root/setup"]).ok();
    let snap = d.cairn(&["snapshot", "create", &src]).ok();
    let forks = d.cairn(&["fork", &snap, "--count", "5", "--json"]).json();
    let ids: Vec<String> = forks
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(ids.len(), 5, "{forks}");
    assert_eq!(sandbox_count(&d), 6);
    for f in forks.as_array().unwrap() {
        assert_eq!(f["state"], "running", "{f}");
        assert_eq!(f["runtime"], rt, "{f}");
    }
    for (i, f) in ids.iter().enumerate() {
        d.cairn(&["exec", f, &format!("echo {i} > /root/mine")])
            .ok();
    }
    for (i, f) in ids.iter().enumerate() {
        assert_eq!(
            d.cairn(&["exec", f, "cat /root/setup /root/mine"]).ok(),
            format!("setup\n{i}"),
            "fork {f} sees another's write"
        );
    }
    assert_eq!(d.cairn(&["exec", &src, "ls /root"]).ok(), "setup");
    // Without --json: one id a line.
    let more = d.cairn(&["fork", &snap, "--count", "2"]).ok();
    assert_eq!(more.lines().count(), 2, "{more}");
}

fn a_name_prefix_names_the_forks_in_order(rt: &str) {
    let d = daemon_with(&[]);
    let src = up(&d, rt, &[]);
    let snap = d.cairn(&["snapshot", "create", &src]).ok();
    let (code, batch) = d.http(
        Via::Unix,
        "POST",
        &format!("/v1/snapshots/{snap}/fork"),
        None,
        Some(r#"{"count": 3, "name": "web"}"#),
    );
    assert_eq!(code, 201, "{batch}");
    let names: Vec<&str> = batch["sandboxes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["web-1", "web-2", "web-3"]);
    assert_eq!(batch["failed"], serde_json::json!([]));
    assert_eq!(d.cairn(&["exec", "web-2", "echo hi"]).ok(), "hi");
    // A prefix whose names are taken is refused before anything is made.
    let taken = d.http(
        Via::Unix,
        "POST",
        &format!("/v1/snapshots/{snap}/fork"),
        None,
        Some(r#"{"count": 4, "name": "web"}"#),
    );
    assert_error(&taken, 409, "conflict", "web-1");
    assert_eq!(sandbox_count(&d), 4);
}

fn bad_counts_are_refused_and_make_nothing(rt: &str) {
    let d = daemon_with(&[]);
    let src = up(&d, rt, &[]);
    let snap = d.cairn(&["snapshot", "create", &src]).ok();
    let path = format!("/v1/snapshots/{snap}/fork");
    for body in [
        r#"{"count": 0}"#,
        r#"{"count": -1}"#,
        r#"{"count": 257}"#,
        r#"{"count": 4294967296}"#,
        r#"{"count": "3"}"#,
        r#"{"count": 2, "publish": ["8080:80"]}"#,
    ] {
        let (code, err) = d.http(Via::Unix, "POST", &path, None, Some(body));
        assert_eq!(code, 400, "{body}: {err}");
        assert_eq!(err["error"]["code"], "invalid_argument", "{body}: {err}");
    }
    let r = d.cairn(&["fork", &snap, "--count", "0"]);
    assert_ne!(r.code, 0, "{r:?}");
    // A fork the host refuses (memory over the cap) refuses the whole batch, up front.
    let over = d.http(
        Via::Unix,
        "POST",
        &path,
        None,
        Some(r#"{"count": 3, "memory": "100000G"}"#),
    );
    assert_error(&over, 400, "invalid_argument", "cap");
    assert_eq!(sandbox_count(&d), 1);
    let missing = d.http(
        Via::Unix,
        "POST",
        "/v1/snapshots/snap-00000000/fork",
        None,
        Some(r#"{"count": 2}"#),
    );
    assert_eq!(missing.0, 404, "{missing:?}");
}

fn a_batch_over_the_subnet_is_refused_up_front(rt: &str) {
    let net = PrivateNet::next("fbt", 60);
    // A /29: five sandbox addresses.
    let subnet = net.subnet.replace(".0/24", ".0/29");
    let d = daemon_with(&["--bridge", &net.bridge, "--subnet", &subnet]);
    let src = up(&d, rt, &["--network", "nat"]);
    let snap = d.cairn(&["snapshot", "create", &src]).ok();
    let (code, err) = d.http(
        Via::Unix,
        "POST",
        &format!("/v1/snapshots/{snap}/fork"),
        None,
        Some(r#"{"count": 5}"#),
    );
    assert_eq!(code, 409, "{err}");
    assert_eq!(err["error"]["code"], "limit_exceeded", "{err}");
    assert!(
        err["error"]["message"].as_str().unwrap().contains("4 free"),
        "{err}"
    );
    assert_eq!(sandbox_count(&d), 1);
    let forks = d.cairn(&["fork", &snap, "--count", "4", "--json"]).json();
    assert_eq!(forks.as_array().unwrap().len(), 4, "{forks}");
}

fn another_accounts_snapshot_is_not_found(rt: &str) {
    let d = Daemon::tcp_with_base(
        env!("CARGO_BIN_EXE_cairnd"),
        env!("CARGO_BIN_EXE_cairn"),
        &[],
    );
    let (alice, bob) = (d.token("alice"), d.token("bob"));
    let (code, sbx) = d.http(
        Via::Tcp,
        "POST",
        "/v1/sandboxes",
        Some(&alice),
        Some(&format!(r#"{{"image": "base", "runtime": "{rt}"}}"#)),
    );
    assert_eq!(code, 201, "{sbx}");
    let id = sbx["id"].as_str().unwrap();
    let (code, snap) = d.http(
        Via::Tcp,
        "POST",
        &format!("/v1/sandboxes/{id}/snapshots"),
        Some(&alice),
        Some(r#"{"name": "base-line"}"#),
    );
    assert_eq!(code, 201, "{snap}");
    let snap_id = snap["id"].as_str().unwrap();
    for reference in [snap_id.to_string(), format!("{id}:base-line")] {
        let resp = d.http(
            Via::Tcp,
            "POST",
            &format!("/v1/snapshots/{reference}/fork"),
            Some(&bob),
            Some(r#"{"count": 2}"#),
        );
        assert_eq!(resp.0, 404, "{resp:?}");
        assert!(!resp.1.to_string().contains("alice"), "{resp:?}");
    }
    let (_, list) = d.http(Via::Tcp, "GET", "/v1/sandboxes", Some(&bob), None);
    assert_eq!(list, serde_json::json!([]));
    // Alice's own batch works over TCP too.
    let (code, batch) = d.http(
        Via::Tcp,
        "POST",
        &format!("/v1/snapshots/{snap_id}/fork"),
        Some(&alice),
        Some(r#"{"count": 2}"#),
    );
    assert_eq!(code, 201, "{batch}");
    assert_eq!(batch["sandboxes"].as_array().unwrap().len(), 2, "{batch}");
}

/// `Accept: application/x-ndjson`: progress lines (forks made of the count), then the
/// batch as the ordinary answer has it; a refused batch is one error line with its status.
fn a_batch_streams_its_progress_when_asked(rt: &str) {
    let d = daemon_with(&[]);
    let src = up(&d, rt, &[]);
    let snap = d.cairn(&["snapshot", "create", &src]).ok();
    let (code, lines) = d.ndjson(
        Via::Unix,
        "POST",
        &format!("/v1/snapshots/{snap}/fork"),
        None,
        r#"{"count": 3}"#,
    );
    assert_eq!(code, 200, "{lines:?}");
    let (last, reports) = lines.split_last().unwrap();
    assert_eq!(last["type"], "result", "{lines:?}");
    assert_eq!(last["status"], 201, "{last}");
    assert_eq!(
        last["body"]["sandboxes"].as_array().unwrap().len(),
        3,
        "{last}"
    );
    assert!(!reports.is_empty(), "no progress line: {lines:?}");
    let mut seen = 0;
    for r in reports {
        assert_eq!(r["type"], "progress", "{r}");
        assert_eq!(r["phase"], "forks", "{r}");
        assert_eq!(r["unit"], "items", "{r}");
        assert_eq!(r["total"], 3, "{r}");
        let done = r["done"].as_u64().unwrap();
        assert!(done > seen && done <= 3, "{lines:?}");
        seen = done;
    }
    assert_eq!(
        seen, 3,
        "the last report says every fork is made: {lines:?}"
    );
    assert_eq!(sandbox_count(&d), 4);
    // Refused: one error line, the status and error the ordinary answer has, nothing made.
    let (code, lines) = d.ndjson(
        Via::Unix,
        "POST",
        "/v1/snapshots/no-such-snapshot/fork",
        None,
        r#"{"count": 2}"#,
    );
    assert_eq!(code, 200);
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert_eq!(lines[0]["type"], "error");
    assert_eq!(lines[0]["status"], 404);
    assert_eq!(lines[0]["error"]["code"], "not_found");
    let (code, lines) = d.ndjson(
        Via::Unix,
        "POST",
        &format!("/v1/snapshots/{snap}/fork"),
        None,
        r#"{"count": 0}"#,
    );
    assert_eq!((code, lines.len()), (200, 1), "{lines:?}");
    assert_eq!(lines[0]["status"], 400, "{lines:?}");
    assert_eq!(sandbox_count(&d), 4);
}

both_runtimes!(
    a_batch_streams_its_progress_when_asked,
    a_batch_makes_count_independent_forks,
    a_name_prefix_names_the_forks_in_order,
    bad_counts_are_refused_and_make_nothing,
    a_batch_over_the_subnet_is_refused_up_front,
    another_accounts_snapshot_is_not_found,
);

#[test]
fn the_openapi_document_describes_batch_forks() {
    let d = Daemon::start(env!("CARGO_BIN_EXE_cairnd"), env!("CARGO_BIN_EXE_cairn"));
    let (code, doc) = d.http(Via::Unix, "GET", "/v1/openapi.json", None, None);
    assert_eq!(code, 200);
    assert!(doc["paths"]["/v1/snapshots/{id}/fork"]["post"].is_object());
    for schema in ["ForkRequest", "ForkBatch"] {
        assert!(
            doc["components"]["schemas"][schema].is_object(),
            "{schema} missing"
        );
    }
}
