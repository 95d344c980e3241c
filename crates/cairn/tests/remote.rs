//! The remote tier against a real S3-compatible server (moto): two cairnd with separate
//! homes and one bucket push snapshots and fork each other's (stateful too); a second
//! push uploads nothing; a corrupt chunk is refused with nothing left; another account
//! neither lists nor pulls what an account pushed; a cairnd whose remote is unusable
//! does not start.

#![allow(clippy::unwrap_used)]

use std::time::Duration;

use cairn_test_support::{Daemon, Moto};

/// A cairnd with image `base` on the moto bucket at `prefix`.
fn host(moto: &Moto, prefix: &str, tcp: bool) -> Daemon {
    host_with(moto, prefix, tcp, &[])
}

/// [`host`] with more arguments for cairnd.
fn host_with(moto: &Moto, prefix: &str, tcp: bool, extra: &[&str]) -> Daemon {
    let args = moto.args(prefix);
    let mut args: Vec<&str> = args.iter().map(String::as_str).collect();
    args.extend_from_slice(extra);
    let d = Daemon::start_env(
        env!("CARGO_BIN_EXE_cairnd"),
        env!("CARGO_BIN_EXE_cairn"),
        tcp,
        &args,
        &moto.env(),
    );
    d.import_base();
    d
}

/// The error output of a command that must fail.
fn failed(run: cairn_test_support::Run) -> String {
    assert_ne!(run.code, 0, "it succeeded: {}", run.stdout);
    run.stderr
}

/// The counter a background loop keeps in memory and mirrors to /tmp/c.
fn counter(d: &Daemon, id: &str) -> u64 {
    for _ in 0..20 {
        if let Ok(v) = d.cairn(&["exec", id, "cat /tmp/c"]).ok().parse() {
            return v;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("/tmp/c of {id} never held a number");
}

fn files(d: &Daemon, id: &str) -> String {
    d.cairn(&["exec", id, "md5sum /root/blob /root/note; ls -l /root/link"])
        .ok()
}

cairn_test_support::both_runtimes!(snapshots_pushed_on_one_host_fork_on_another_and_back,);

fn snapshots_pushed_on_one_host_fork_on_another_and_back(rt: &str) {
    let moto = Moto::start();
    let a = host(&moto, "team", false);
    let b = host(&moto, "team", false);

    // A: a stateful snapshot of a running counter, pushed.
    let id = a.cairn(&["up", "--image", "base", "--runtime", rt]).ok();
    a.cairn(&[
        "exec",
        &id,
        "dd if=/dev/urandom of=/root/blob bs=1M count=3 2>/dev/null && echo from-a > /root/note && ln -s note /root/link",
    ])
    .ok();
    a.start_counter(&id);
    let snap = a
        .cairn(&[
            "snapshot",
            "create",
            &id,
            "--stateful",
            "--name",
            "counting",
        ])
        .ok();
    let pushed = a.cairn(&["snapshot", "push", &snap, "--json"]).json();
    assert_eq!(pushed["already_pushed"], false, "{pushed}");
    let chunks = pushed["chunks"].as_u64().unwrap();
    assert!(chunks > 0, "{pushed}");
    assert_eq!(
        pushed["uploaded_chunks"].as_u64().unwrap(),
        chunks,
        "{pushed}"
    );

    // A second push uploads nothing.
    let again = a.cairn(&["snapshot", "push", &snap, "--json"]).json();
    assert_eq!(again["already_pushed"], true, "{again}");
    assert_eq!(again["uploaded_bytes"], 0, "{again}");

    // B lists it and forks it: the counter continues from the snapshot's count.
    let listed = b.cairn(&["snapshot", "list", "--remote", "--json"]).json();
    let listed = listed.as_array().unwrap();
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert_eq!(listed[0]["id"], snap.as_str());
    assert_eq!(listed[0]["name"], "counting");
    assert_eq!(listed[0]["stateful"], true);
    assert_eq!(listed[0]["local"], false);
    assert!(b
        .cairn(&["snapshot", "list", "--remote"])
        .ok()
        .contains("counting"));
    let fork = b.cairn(&["fork", &snap]).ok();
    let pulled = b.cairn(&["snapshot", "inspect", &snap, "--json"]).json();
    assert_eq!(pulled["state"], "ready", "{pulled}");
    assert_eq!(pulled["stateful"], true);
    assert_eq!(files(&b, &fork), files(&a, &id));
    let fresh = b.cairn(&["up", "--from-snapshot", &snap, "--fresh"]).ok();
    let at_snapshot = counter(&b, &fresh);
    std::thread::sleep(Duration::from_millis(600));
    let v = counter(&b, &fork);
    assert!(
        v > at_snapshot,
        "the fork did not continue: {v} <= {at_snapshot}"
    );
    assert!(v < at_snapshot + 300, "the fork restarted or ran away: {v}");
    assert_eq!(
        b.cairn(&["snapshot", "list", "--remote", "--json"]).json()[0]["local"],
        true
    );

    // B pushes a snapshot of its fork; A forks it by name. The chunks the two snapshots
    // share (the blob, the image's files) are not uploaded again.
    b.cairn(&["exec", &fork, "echo from-b > /root/note"]).ok();
    let snap_b = b
        .cairn(&["snapshot", "create", &fork, "--name", "from-b"])
        .ok();
    let pushed_b = b.cairn(&["snapshot", "push", "from-b", "--json"]).json();
    assert!(
        pushed_b["uploaded_chunks"].as_u64().unwrap() < pushed_b["chunks"].as_u64().unwrap(),
        "{pushed_b}"
    );
    let fork_a = a.cairn(&["up", "--from-snapshot", "from-b"]).ok();
    assert_eq!(a.cairn(&["exec", &fork_a, "cat /root/note"]).ok(), "from-b");
    assert_eq!(
        a.cairn(&["snapshot", "inspect", "from-b", "--json"]).json()["id"],
        snap_b.as_str()
    );
    // A pulled snapshot is on the host: pulling it again says so.
    let err = failed(a.cairn(&["snapshot", "pull", &snap_b]));
    assert!(err.contains("on this host already"), "{err}");
}

#[test]
fn a_corrupt_chunk_is_refused_on_pull_and_leaves_nothing() {
    let moto = Moto::start();
    let a = host(&moto, "p", false);
    let b = host(&moto, "p", false);
    let id = a
        .cairn(&["up", "--image", "base", "--runtime", "runc"])
        .ok();
    a.cairn(&[
        "exec",
        &id,
        "dd if=/dev/urandom of=/root/blob bs=1M count=2 2>/dev/null",
    ])
    .ok();
    let snap = a.cairn(&["snapshot", "create", &id]).ok();
    a.cairn(&["snapshot", "push", &snap]).ok();
    let chunks: Vec<_> = moto
        .objects("p/local/chunks/")
        .into_iter()
        .filter(|(_, size)| *size > 100_000)
        .collect();
    assert!(!chunks.is_empty());
    let key = &chunks[chunks.len() / 2].0;
    let mut data = moto.get(key);
    data[1000] ^= 0xff;
    let bad = a.scratch().join("bad");
    std::fs::write(&bad, &data).unwrap();
    moto.put(key, &bad);

    let images_before = b.cairn(&["image", "ls", "--json"]).ok();
    for args in [vec!["snapshot", "pull", &snap], vec!["fork", &snap]] {
        let err = failed(b.cairn(&args));
        assert!(err.contains("corrupt"), "{args:?}: {err}");
        let all = b.cairn(&["snapshot", "list", "--all", "--json"]).json();
        assert_eq!(all.as_array().unwrap().len(), 0, "{all}");
        let dirs: Vec<_> = std::fs::read_dir(b.home.join("pool/snapshots"))
            .map(|r| r.flatten().map(|e| e.file_name()).collect())
            .unwrap_or_default();
        assert!(dirs.is_empty(), "snapshot directories left: {dirs:?}");
        assert_eq!(b.cairn(&["image", "ls", "--json"]).ok(), images_before);
        assert_eq!(
            b.cairn(&["ls", "--json"]).json().as_array().unwrap().len(),
            0
        );
    }
    // A missing chunk likewise.
    let missing = moto.objects("p/local/chunks/")[0].0.clone();
    let empty = a.scratch().join("empty");
    std::fs::write(&empty, b"").unwrap();
    moto.put(&missing, &empty);
    let err = failed(b.cairn(&["snapshot", "pull", &snap]));
    assert!(err.contains("corrupt"), "{err}");
}

#[test]
fn another_account_can_neither_list_nor_pull_what_an_account_pushed() {
    let moto = Moto::start();
    let a = host(&moto, "t", true);
    let alice = a.token("alice");
    let bob = a.token("bob");
    let hostname = format!("http://{}", a.tcp.as_ref().unwrap());
    let as_ = |token: &str, args: &[&str]| {
        a.cairn_env(
            args,
            &[("CAIRN_HOST", hostname.as_str()), ("CAIRN_TOKEN", token)],
        )
    };
    let id = as_(&alice, &["up", "--image", "base", "--runtime", "runc"]).ok();
    as_(&alice, &["exec", &id, "echo secret > /root/f"]).ok();
    let snap = as_(&alice, &["snapshot", "create", &id, "--name", "mine"]).ok();
    as_(&alice, &["snapshot", "push", &snap]).ok();
    // Alice's host copy goes; she pulls it back by name (her account, her prefix).
    as_(&alice, &["snapshot", "delete", &snap]).ok();
    let list = as_(&alice, &["snapshot", "list", "--remote", "--json"]).json();
    assert_eq!(list.as_array().unwrap().len(), 1, "{list}");

    for who in [bob.as_str()] {
        let list = as_(who, &["snapshot", "list", "--remote", "--json"]).json();
        assert_eq!(list.as_array().unwrap().len(), 0, "{list}");
        for args in [
            vec!["snapshot", "pull", &snap],
            vec!["snapshot", "pull", "mine"],
            vec!["fork", &snap],
        ] {
            let run = as_(who, &args);
            assert_ne!(run.code, 0, "{args:?}");
            assert!(run.stderr.contains("no "), "{args:?}: {}", run.stderr);
        }
    }
    // Nor delete it from the store.
    let run = as_(&bob, &["snapshot", "delete", "--remote", &snap]);
    assert!(
        run.code != 0 && run.stderr.contains("no pushed snapshot"),
        "{run:?}"
    );
    let list = as_(&alice, &["snapshot", "list", "--remote", "--json"]).json();
    assert_eq!(list.as_array().unwrap().len(), 1, "{list}");
    // The operator's account (the unix socket) is another account too.
    let list = a.cairn(&["snapshot", "list", "--remote", "--json"]).json();
    assert_eq!(list.as_array().unwrap().len(), 0, "{list}");
    // Nothing of alice's is under another account's prefix.
    let keys = moto.objects("t/");
    assert!(
        keys.iter().all(|(k, _)| k.starts_with("t/alice/")),
        "{keys:?}"
    );
}

#[test]
fn a_cairnd_whose_remote_is_unusable_does_not_start() {
    let moto = Moto::start();
    let home = tempfile::tempdir().unwrap();
    let run = |args: &[&str]| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_cairnd"))
            .env("CAIRN_HOME", home.path())
            .envs(moto.env())
            .args(args)
            .output()
            .unwrap();
        assert!(!out.status.success());
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    let err = run(&[
        "--remote",
        "s3://no-such-bucket/x",
        "--remote-endpoint",
        &moto.endpoint,
    ]);
    assert!(err.contains("check that the bucket exists"), "{err}");
    let err = run(&[
        "--remote",
        "s3://cairn-test",
        "--remote-endpoint",
        "http://127.0.0.1:9",
    ]);
    assert!(err.contains("--remote-endpoint"), "{err}");
    let err = run(&["--remote", "gs://bucket"]);
    assert!(err.contains("only s3://"), "{err}");
    // It stopped before making its pool.
    assert!(!home.path().join("pool.img").exists());
}

/// Waits until `d`'s cairnd crashed at its crash point, then starts it again without it.
fn crash_and_relaunch(d: &mut Daemon) {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !d.has_exited() {
        assert!(std::time::Instant::now() < deadline, "cairnd did not crash");
        std::thread::sleep(Duration::from_millis(50));
    }
    d.env.retain(|(k, _)| k != "CAIRN_CRASH_AT");
    d.relaunch();
}

#[test]
fn pushes_and_pulls_cut_short_by_a_crash_leave_nothing_visible() {
    let moto = Moto::start();
    let mut a = host(&moto, "c", false);
    let mut b = host(&moto, "c", false);
    let id = a
        .cairn(&["up", "--image", "base", "--runtime", "runc"])
        .ok();
    a.cairn(&["exec", &id, "echo kept > /root/f"]).ok();
    let snap = a.cairn(&["snapshot", "create", &id]).ok();

    // A push that dies before its recipe publishes nothing; the next one does.
    a.env
        .push(("CAIRN_CRASH_AT".into(), "push-before-recipe".into()));
    a.restart();
    assert_ne!(a.cairn(&["snapshot", "push", &snap]).code, 0);
    crash_and_relaunch(&mut a);
    let list = b.cairn(&["snapshot", "list", "--remote", "--json"]).json();
    assert_eq!(list.as_array().unwrap().len(), 0, "{list}");
    a.cairn(&["snapshot", "push", &snap]).ok();

    // A pull that dies before the snapshot is ready leaves nothing after the restart.
    b.env
        .push(("CAIRN_CRASH_AT".into(), "import-before-ready".into()));
    b.restart();
    assert_ne!(b.cairn(&["snapshot", "pull", &snap]).code, 0);
    crash_and_relaunch(&mut b);
    let all = b.cairn(&["snapshot", "list", "--all", "--json"]).json();
    assert_eq!(all.as_array().unwrap().len(), 0, "{all}");
    let dirs: Vec<_> = std::fs::read_dir(b.home.join("pool/snapshots"))
        .map(|r| r.flatten().map(|e| e.file_name()).collect())
        .unwrap_or_default();
    assert!(dirs.is_empty(), "snapshot directories left: {dirs:?}");
    let fork = b.cairn(&["fork", &snap]).ok();
    assert_eq!(b.cairn(&["exec", &fork, "cat /root/f"]).ok(), "kept");
}

#[test]
fn without_a_remote_push_pull_and_the_catalog_say_how_to_configure_one() {
    use cairn_test_support::{assert_error, Via};
    let d = Daemon::start(env!("CARGO_BIN_EXE_cairnd"), env!("CARGO_BIN_EXE_cairn"));
    d.import_base();
    let id = d
        .cairn(&["up", "--image", "base", "--runtime", "runc"])
        .ok();
    let snap = d.cairn(&["snapshot", "create", &id]).ok();
    for (method, path) in [
        ("POST", format!("/v1/snapshots/{snap}/push")),
        ("GET", "/v1/remote/snapshots".to_string()),
        ("POST", format!("/v1/remote/snapshots/{snap}/pull")),
    ] {
        assert_error(
            &d.http(Via::Unix, method, &path, None, None),
            503,
            "unavailable",
            "--remote s3://",
        );
    }
    let run = d.cairn(&["snapshot", "push", &snap, "--json"]);
    assert_ne!(run.code, 0);
    let err: serde_json::Value = serde_json::from_str(&run.stderr).unwrap();
    assert_eq!(err["error"]["code"], "unavailable", "{err}");
    // A fork of a snapshot that is nowhere is the usual "not found".
    let err = failed(d.cairn(&["fork", "snap-00000000"]));
    assert!(err.contains("no snapshot"), "{err}");
    let (code, doc) = d.http(Via::Unix, "GET", "/v1/openapi.json", None, None);
    assert_eq!(code, 200);
    for p in [
        "/v1/snapshots/{id}/push",
        "/v1/remote/snapshots",
        "/v1/remote/snapshots/{id}/pull",
    ] {
        assert!(doc["paths"][p].is_object(), "{p} missing");
    }
}

/// Whether `d`'s remote catalog lists `snap`.
fn listed_remotely_now(d: &Daemon, snap: &str) -> bool {
    let list = d.cairn(&["snapshot", "list", "--remote", "--json"]).json();
    list.as_array().unwrap().iter().any(|s| s["id"] == snap)
}

/// Waits (at most 60 s) until `d`'s remote catalog lists `snap`.
fn listed_remotely(d: &Daemon, snap: &str) -> bool {
    for _ in 0..300 {
        if listed_remotely_now(d, snap) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    false
}

/// `cairnd --remote-push-ready` pushes every snapshot as it becomes ready, and at start-up
/// the ready ones a stopped cairnd had not pushed; a pause's automatic snapshot stays home.
#[test]
fn with_push_ready_every_ready_snapshot_reaches_the_store_by_itself() {
    let moto = Moto::start();
    let mut a = host(&moto, "auto", false);
    // Taken while nothing pushes: the same cairnd started again with --remote-push-ready
    // pushes it at start.
    let id = a
        .cairn(&["up", "--image", "base", "--runtime", "runc"])
        .ok();
    a.cairn(&["exec", &id, "echo before > /root/note"]).ok();
    let before = a
        .cairn(&["snapshot", "create", &id, "--name", "before"])
        .ok();
    std::thread::sleep(Duration::from_secs(1));
    assert!(
        !listed_remotely_now(&a, &before),
        "{before} was pushed unasked"
    );
    a.terminate();
    a.args.push("--remote-push-ready".into());
    a.relaunch();
    assert!(
        listed_remotely(&a, &before),
        "{before} was not pushed at start"
    );

    // Taken now: pushed as it becomes ready.
    a.cairn(&["exec", &id, "echo after > /root/note"]).ok();
    let after = a
        .cairn(&["snapshot", "create", &id, "--name", "after"])
        .ok();
    assert!(listed_remotely(&a, &after), "{after} was not pushed");
    // A pause's automatic snapshot is not pushed.
    a.cairn(&["pause", &id]).ok();
    a.cairn(&["resume", &id]).ok();
    let autos = a
        .cairn(&["snapshot", "list", &id, "--all", "--json"])
        .json();
    let auto: Vec<String> = autos
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["auto"] == true)
        .map(|s| s["id"].as_str().unwrap().to_string())
        .collect();
    assert!(
        !auto.is_empty(),
        "the pause took no automatic snapshot: {autos}"
    );

    // Another host forks what was pushed by itself.
    let b = host(&moto, "auto", false);
    let fork = b.cairn(&["fork", &after]).ok();
    assert_eq!(b.cairn(&["exec", &fork, "cat /root/note"]).ok(), "after");
    std::thread::sleep(Duration::from_secs(1));
    let keys: Vec<String> = moto.objects("auto/").into_iter().map(|(k, _)| k).collect();
    for s in &auto {
        assert!(
            keys.iter().all(|k| !k.contains(s.as_str())),
            "{s} was pushed: {keys:?}"
        );
    }
}

/// The chunk names under `prefix`'s `local` account.
fn chunk_names(moto: &Moto, prefix: &str) -> std::collections::BTreeSet<String> {
    moto.objects(&format!("{prefix}/local/chunks/"))
        .into_iter()
        .map(|(k, _)| k.rsplit('/').next().unwrap().to_string())
        .collect()
}

/// `snapshot delete --remote`: the pushed copy leaves the catalog and cannot be pulled, the
/// chunks only it used are collected (and only those: what another pushed snapshot names
/// stays, and it still forks elsewhere), the host's own copy stays; a chunk younger than the
/// grace period is never collected.
#[test]
fn deleting_a_pushed_snapshot_collects_only_the_chunks_no_other_names() {
    let moto = Moto::start();
    let a = host_with(&moto, "g", false, &["--remote-gc-grace", "0"]);
    let b = host(&moto, "g", false);
    let id = a
        .cairn(&["up", "--image", "base", "--runtime", "runc"])
        .ok();
    a.cairn(&["exec", &id, "head -c 4194304 /dev/urandom > /root/one"])
        .ok();
    let first = a
        .cairn(&["snapshot", "create", &id, "--name", "first"])
        .ok();
    a.cairn(&["snapshot", "push", &first]).ok();
    let only_first = chunk_names(&moto, "g");
    a.cairn(&[
        "exec",
        &id,
        "rm /root/one; head -c 2097152 /dev/urandom > /root/two",
    ])
    .ok();
    let second = a
        .cairn(&["snapshot", "create", &id, "--name", "second"])
        .ok();
    a.cairn(&["snapshot", "push", &second]).ok();
    let recipe: serde_json::Value =
        serde_json::from_slice(&moto.get(&format!("g/local/snapshots/{second}.json"))).unwrap();
    let named: std::collections::BTreeSet<String> = recipe["chunks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["hash"].as_str().unwrap().to_string())
        .collect();

    let done = a
        .cairn(&["snapshot", "delete", "--remote", &first, "--json"])
        .json();
    assert_eq!(done["snapshot"], first.as_str(), "{done}");
    // The 4 MiB only the first held is collected; the store keeps exactly what the second names.
    assert!(
        done["collected_bytes"].as_u64().unwrap() >= 4 << 20,
        "{done}"
    );
    assert_eq!(chunk_names(&moto, "g"), named);
    assert!(only_first.difference(&named).count() as u64 >= 1);
    let list = a.cairn(&["snapshot", "list", "--remote", "--json"]).json();
    let ids: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, vec![second.as_str()], "{list}");
    let err = failed(b.cairn(&["snapshot", "pull", &first]));
    assert!(err.contains("no pushed snapshot"), "{err}");
    let err = failed(a.cairn(&["snapshot", "delete", "--remote", &first]));
    assert!(err.contains("no pushed snapshot"), "{err}");
    // This host's copy stays; the other pushed snapshot forks on the other host, whole.
    assert_eq!(
        a.cairn(&["snapshot", "list", "--json"])
            .json()
            .as_array()
            .unwrap()
            .len(),
        2
    );
    let fork = b.cairn(&["fork", &second]).ok();
    assert_eq!(
        b.cairn(&["exec", &fork, "md5sum < /root/two"]).ok(),
        a.cairn(&["exec", &id, "md5sum < /root/two"]).ok()
    );

    // With the default grace (an hour) the recipe goes, and its young chunks stay.
    let done = b
        .cairn(&["snapshot", "delete", "--remote", "second", "--json"])
        .json();
    assert_eq!(done["collected_chunks"], 0, "{done}");
    assert_eq!(chunk_names(&moto, "g"), named);
    let list = b.cairn(&["snapshot", "list", "--remote", "--json"]).json();
    assert_eq!(list, serde_json::json!([]));
}

/// `snapshot url --store`: a pre-signed URL of the store downloads the archive with plain
/// curl (not through cairnd), which imports and forks elsewhere with the same files; a
/// second link reuses the uploaded archive; deleting the snapshot makes the link 404;
/// without a remote the flag is a 503 saying how to configure one.
#[test]
fn a_store_link_downloads_the_archive_from_the_store_until_the_snapshot_goes() {
    let moto = Moto::start();
    let a = host(&moto, "l", false);
    let id = a
        .cairn(&["up", "--image", "base", "--runtime", "runc"])
        .ok();
    a.cairn(&["exec", &id, "head -c 3145728 /dev/urandom > /root/blob"])
        .ok();
    let snap = a
        .cairn(&["snapshot", "create", &id, "--name", "shared"])
        .ok();
    let link = a
        .cairn(&[
            "snapshot",
            "url",
            &snap,
            "--store",
            "--expires",
            "10m",
            "--json",
        ])
        .json();
    let url = link["url"].as_str().unwrap().to_string();
    assert!(
        url.starts_with(&moto.endpoint),
        "not the store's URL: {url}"
    );
    assert!(url.contains("X-Amz-Signature="), "not pre-signed: {url}");
    assert_eq!(moto.objects("l/local/archives/").len(), 1);
    let again = a
        .cairn(&["snapshot", "url", &snap, "--store", "--json"])
        .json();
    assert_ne!(again["url"], link["url"]);
    assert_eq!(moto.objects("l/local/archives/").len(), 1, "uploaded once");

    let file = a.scratch().join("shared.tar.zst");
    let got = std::process::Command::new("curl")
        .args(["-sf", "-o"])
        .arg(&file)
        .arg(&url)
        .status()
        .unwrap();
    assert!(got.success(), "curl {url}");
    let b = host(&moto, "other", false);
    let imported = b
        .cairn(&["snapshot", "import", file.to_str().unwrap()])
        .ok();
    let fork = b.cairn(&["fork", &imported]).ok();
    assert_eq!(
        b.cairn(&["exec", &fork, "md5sum < /root/blob"]).ok(),
        a.cairn(&["exec", &id, "md5sum < /root/blob"]).ok()
    );

    // The archive goes in the background, just after the deletion.
    a.cairn(&["snapshot", "delete", &snap]).ok();
    for _ in 0..100 {
        if moto.objects("l/local/archives/").is_empty() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert!(moto.objects("l/local/archives/").is_empty());
    let code = std::process::Command::new("curl")
        .args(["-s", "-o", "/dev/null", "-w", "%{http_code}"])
        .arg(&url)
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&code.stdout), "404");

    let plain = Daemon::with_base(
        env!("CARGO_BIN_EXE_cairnd"),
        env!("CARGO_BIN_EXE_cairn"),
        &[],
    );
    let sid = plain
        .cairn(&["up", "--image", "base", "--runtime", "runc"])
        .ok();
    let s = plain.cairn(&["snapshot", "create", &sid]).ok();
    let err = failed(plain.cairn(&["snapshot", "url", &s, "--store"]));
    assert!(err.contains("--remote"), "{err}");
}

/// `cairnd --max-account-remote-size`: a push (or store link) past the account's share of the
/// store is refused with limit_exceeded and leaves nothing there; one within it works.
#[test]
fn a_push_past_the_accounts_share_of_the_store_is_refused_and_leaves_nothing() {
    let moto = Moto::start();
    let a = host_with(&moto, "q", false, &["--max-account-remote-size", "6M"]);
    let id = a
        .cairn(&["up", "--image", "base", "--runtime", "runc"])
        .ok();
    let small = a
        .cairn(&["snapshot", "create", &id, "--name", "small"])
        .ok();
    a.cairn(&["exec", &id, "head -c 8388608 /dev/urandom > /root/big"])
        .ok();
    let big = a.cairn(&["snapshot", "create", &id, "--name", "big"]).ok();

    for args in [
        vec!["snapshot", "push", big.as_str(), "--json"],
        vec!["snapshot", "url", big.as_str(), "--store", "--json"],
    ] {
        let run = a.cairn(&args);
        assert_ne!(run.code, 0, "{args:?}: {}", run.stdout);
        let err: serde_json::Value = serde_json::from_str(run.stderr.trim()).unwrap();
        assert_eq!(err["error"]["code"], "limit_exceeded", "{err}");
        assert!(
            err["error"]["message"]
                .as_str()
                .unwrap()
                .contains("--max-account-remote-size"),
            "{err}"
        );
        assert!(
            moto.objects("q/").is_empty(),
            "{args:?} left {:?}",
            moto.objects("q/")
        );
    }
    let list = a.cairn(&["snapshot", "list", "--remote", "--json"]).json();
    assert_eq!(list, serde_json::json!([]));
    let pushed = a.cairn(&["snapshot", "push", &small, "--json"]).json();
    assert_eq!(pushed["already_pushed"], false, "{pushed}");
    assert!(moto.bytes("q/") <= 6 << 20);
}
