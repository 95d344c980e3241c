//! The files API and `cairn cp` / `cairn files` (issue 17): copies both ways with a
//! directory tree and a 100 MB file, on both runtimes; symlinks that point out of the
//! sandbox never lead to the host (read, copied out, written through, extracted through);
//! device nodes and FIFOs refused; a write over the disk limit refused with nothing left;
//! snapshots read-only; another account's sandbox or snapshot the same 404 as a missing one;
//! bad paths 4xx errors that say the fix.

#![allow(clippy::unwrap_used)]

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use sha2::Digest;

use cairn_test_support::{assert_error, both_runtimes, Daemon};

fn daemon(args: &[&str]) -> Daemon {
    Daemon::with_base(
        env!("CARGO_BIN_EXE_cairnd"),
        env!("CARGO_BIN_EXE_cairn"),
        args,
    )
}

/// `curl` a raw request: (status, body bytes). `upload`: a file sent as the body.
fn raw(
    d: &Daemon,
    method: &str,
    path: &str,
    token: Option<&str>,
    upload: Option<&Path>,
) -> (u16, Vec<u8>) {
    let out = d.scratch().join(format!("resp-{}", rand_suffix()));
    let mut cmd = Command::new("curl");
    cmd.args(["-s", "--max-time", "60", "-o"])
        .arg(&out)
        .args(["-w", "%{http_code}", "-X", method]);
    let url = match token {
        Some(t) => {
            cmd.args(["-H", &format!("Authorization: Bearer {t}")]);
            format!("http://{}{path}", d.tcp.as_ref().unwrap())
        }
        None => {
            cmd.arg("--unix-socket").arg(d.home.join("cairnd.sock"));
            format!("http://cairnd{path}")
        }
    };
    if let Some(f) = upload {
        cmd.arg("--data-binary").arg(format!("@{}", f.display()));
        cmd.args(["-H", "Content-Type: application/octet-stream"]);
    }
    let res = cmd.arg(url).output().unwrap();
    let code = String::from_utf8_lossy(&res.stdout)
        .trim()
        .parse()
        .unwrap_or(0);
    let body = std::fs::read(&out).unwrap_or_default();
    let _ = std::fs::remove_file(&out);
    (code, body)
}

fn rand_suffix() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    format!(
        "{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::SeqCst)
    )
}

fn as_json(body: &[u8]) -> serde_json::Value {
    serde_json::from_slice(body)
        .unwrap_or_else(|_| serde_json::Value::String(String::from_utf8_lossy(body).into()))
}

fn sha(path: &Path) -> String {
    let mut f = std::fs::File::open(path).unwrap();
    let mut h = sha2::Sha256::new();
    std::io::copy(&mut f, &mut h).unwrap();
    hex::encode(h.finalize())
}

/// A file of `mib` MiB of bytes that do not repeat (xorshift).
fn big_file(path: &Path, mib: usize) {
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut data = Vec::with_capacity(mib << 20);
    while data.len() < mib << 20 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        data.extend_from_slice(&x.to_le_bytes());
    }
    std::fs::write(path, data).unwrap();
}

/// A local tree: files, a subdirectory with an executable, a relative symlink.
fn local_tree(dir: &Path) {
    std::fs::create_dir_all(dir.join("sub/deeper")).unwrap();
    std::fs::write(dir.join("a.txt"), "alpha\n").unwrap();
    std::fs::write(dir.join("sub/run.sh"), "#!/bin/sh\necho ran\n").unwrap();
    std::fs::set_permissions(
        dir.join("sub/run.sh"),
        std::fs::Permissions::from_mode(0o755),
    )
    .unwrap();
    std::fs::write(dir.join("sub/deeper/z"), "zed").unwrap();
    std::os::unix::fs::symlink("a.txt", dir.join("link")).unwrap();
}

fn assert_same_tree(a: &Path, b: &Path) {
    assert_eq!(std::fs::read(a.join("a.txt")).unwrap(), b"alpha\n");
    assert_eq!(std::fs::read(b.join("a.txt")).unwrap(), b"alpha\n");
    assert_eq!(std::fs::read(b.join("sub/deeper/z")).unwrap(), b"zed");
    let mode = std::fs::metadata(b.join("sub/run.sh"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o755, "the executable keeps its mode");
    assert_eq!(
        std::fs::read_link(b.join("link")).unwrap(),
        PathBuf::from("a.txt")
    );
}

fn up(d: &Daemon, runtime: &str, extra: &[&str]) -> String {
    let mut args = vec!["up", "--image", "base", "--runtime", runtime];
    args.extend(extra);
    d.cairn(&args).ok()
}

/// Copies both ways: a directory tree and a 100 MB file (checksums compared), into a
/// running sandbox (gVisor: through its agent, so that the sandbox's own kernel sees them at
/// once), into a stopped one and out of a running one; mkdir, mv and rm on a running one.
fn cp_round_trips_a_tree_and_a_big_file(runtime: &str) {
    let d = daemon(&[]);
    let id = up(&d, runtime, &[]);
    let s = d.scratch();
    local_tree(&s.join("tree"));
    big_file(&s.join("big"), 100);

    d.cairn(&[
        "cp",
        s.join("tree").to_str().unwrap(),
        &format!("{id}:/root/tree"),
    ])
    .ok();
    d.cairn(&[
        "cp",
        s.join("big").to_str().unwrap(),
        &format!("{id}:/root/"),
    ])
    .ok();
    let inside = d
        .cairn(&[
            "exec",
            &id,
            "sha256sum /root/big; /root/tree/sub/run.sh; cat /root/tree/link; stat -c '%a' /root/tree/sub/run.sh",
        ])
        .ok();
    assert!(inside.contains(&sha(&s.join("big"))), "{inside}");
    assert!(
        inside.contains("ran") && inside.contains("alpha") && inside.contains("755"),
        "{inside}"
    );
    d.cairn(&["files", "mkdir", &id, "/root/made/deep", "-p"])
        .ok();
    d.cairn(&["files", "mv", &id, "/root/big", "/root/made/deep/big"])
        .ok();
    d.cairn(&["files", "rm", &id, "/root/made/deep/big"]).ok();
    let not_empty = d.cairn(&["files", "rm", &id, "/root/made"]);
    assert_eq!(not_empty.code, 1, "{not_empty:?}");
    assert!(not_empty.stderr.contains("-r"), "{not_empty:?}");
    let seen = d
        .cairn(&["exec", &id, "ls /root/made/deep | wc -l; ls /root"])
        .ok();
    assert!(seen.starts_with('0'), "{seen}");
    d.cairn(&["files", "rm", &id, "/root/made", "-r"]).ok();
    // Nothing half-written stays behind.
    let seen = d.cairn(&["exec", &id, "ls -a /root"]).ok();
    assert!(
        !seen.contains("cairn-upload") && !seen.contains("made"),
        "{seen}"
    );
    d.cairn(&["stop", &id]).ok();
    d.cairn(&["files", "rm", &id, "/root/tree", "-r"]).ok();
    d.cairn(&[
        "cp",
        s.join("tree").to_str().unwrap(),
        &format!("{id}:/root/tree"),
    ])
    .ok();
    // Into an existing directory the copy keeps its name.
    d.cairn(&[
        "cp",
        s.join("tree").to_str().unwrap(),
        &format!("{id}:/root/tree"),
    ])
    .ok();
    d.cairn(&[
        "cp",
        s.join("big").to_str().unwrap(),
        &format!("{id}:/root/"),
    ])
    .ok();
    let listed = d
        .cairn(&["files", "ls", &id, "/root/tree", "--depth", "3", "--json"])
        .json();
    let paths: Vec<&str> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["path"].as_str().unwrap())
        .collect();
    for want in [
        "/root/tree/a.txt",
        "/root/tree/link",
        "/root/tree/sub/run.sh",
        "/root/tree/sub/deeper/z",
        "/root/tree/tree/a.txt",
    ] {
        assert!(paths.contains(&want), "{want} in {paths:?}");
    }
    d.cairn(&["start", &id]).ok();
    let inside = d
        .cairn(&[
            "exec",
            &id,
            "sha256sum /root/big; /root/tree/sub/run.sh; cat /root/tree/link",
        ])
        .ok();
    assert!(inside.contains(&sha(&s.join("big"))), "{inside}");
    assert!(
        inside.contains("ran") && inside.contains("alpha"),
        "{inside}"
    );

    // Out of the running sandbox (gVisor: flushed first), to new local names.
    d.cairn(&["exec", &id, "echo fresh > /root/tree/new.txt"])
        .ok();
    d.cairn(&[
        "cp",
        &format!("{id}:/root/tree"),
        s.join("out").to_str().unwrap(),
    ])
    .ok();
    assert_same_tree(&s.join("tree"), &s.join("out"));
    assert_eq!(std::fs::read(s.join("out/new.txt")).unwrap(), b"fresh\n");
    d.cairn(&[
        "cp",
        &format!("{id}:/root/big"),
        s.join("big.out").to_str().unwrap(),
    ])
    .ok();
    assert_eq!(sha(&s.join("big.out")), sha(&s.join("big")));
    // And into an existing local directory: under the source's name.
    std::fs::create_dir(s.join("into")).unwrap();
    d.cairn(&[
        "cp",
        &format!("{id}:/etc/passwd"),
        s.join("into").to_str().unwrap(),
    ])
    .ok();
    assert_eq!(
        std::fs::read_to_string(s.join("into/passwd")).unwrap(),
        "root:x:0:0:root:/root:/bin/sh\n"
    );
}

/// Symlinks inside a sandbox that point out of it (`/etc/shadow`, `../../../../etc`) resolve
/// inside the sandbox: reads give its own files or a 404, a copy out stores the link,
/// writes through them land inside, and tar entries cannot climb out.
fn symlinks_never_lead_to_the_host(runtime: &str) {
    let d = daemon(&[]);
    let id = up(&d, runtime, &[]);
    d.cairn(&["exec", &id, "ln -s /etc/passwd /root/pw; ln -s ../../../../../../etc/passwd /root/rel; ln -s /etc/shadow /root/shadow; ln -s ../../../../etc /root/up"]).ok();
    let host_passwd = std::fs::read("/etc/passwd").unwrap();
    let host_shadow = std::fs::read("/etc/shadow").unwrap_or_default();
    let own = b"root:x:0:0:root:/root:/bin/sh\n".to_vec();
    for link in ["/root/pw", "/root/rel", "/root/up/passwd"] {
        let (code, body) = raw(
            &d,
            "GET",
            &format!("/v1/sandboxes/{id}/files?path={link}"),
            None,
            None,
        );
        assert_eq!(
            (code, &body),
            (200, &own),
            "{link} reads the sandbox's own file"
        );
        assert_ne!(body, host_passwd);
    }
    let (code, body) = raw(
        &d,
        "GET",
        &format!("/v1/sandboxes/{id}/files?path=/root/shadow"),
        None,
        None,
    );
    assert_eq!(code, 404, "{}", String::from_utf8_lossy(&body));
    assert!(host_shadow.is_empty() || body != host_shadow);
    let stat = d
        .cairn(&["files", "stat", &id, "/root/shadow", "--json"])
        .json();
    assert_eq!(
        (stat["kind"].as_str(), stat["target"].as_str()),
        (Some("symlink"), Some("/etc/shadow"))
    );
    let listed = d.cairn(&["files", "ls", &id, "/root/up", "--json"]).json();
    let names: Vec<&str> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["path"].as_str().unwrap())
        .collect();
    assert!(
        names.contains(&"/root/up/cairn-image"),
        "the sandbox's /etc: {names:?}"
    );

    // Copied out, a link stays a link.
    let s = d.scratch();
    d.cairn(&[
        "cp",
        &format!("{id}:/root/shadow"),
        s.join("shadow").to_str().unwrap(),
    ])
    .ok();
    assert_eq!(
        std::fs::read_link(s.join("shadow")).unwrap(),
        PathBuf::from("/etc/shadow")
    );

    // Written through: inside the sandbox, never the host.
    d.cairn(&["stop", &id]).ok();
    std::fs::write(s.join("evil"), "pwned\n").unwrap();
    d.cairn(&[
        "cp",
        s.join("evil").to_str().unwrap(),
        &format!("{id}:/root/up/cairn-files-probe"),
    ])
    .ok();
    assert!(
        !Path::new("/etc/cairn-files-probe").exists(),
        "a write reached the host's /etc"
    );
    d.cairn(&[
        "cp",
        s.join("evil").to_str().unwrap(),
        &format!("{id}:/root/shadow"),
    ])
    .ok();
    assert_eq!(
        std::fs::read("/etc/shadow").unwrap_or_default(),
        host_shadow
    );
    let stat = d
        .cairn(&["files", "stat", &id, "/root/shadow", "--json"])
        .json();
    assert_eq!(stat["kind"], "file", "the link was replaced, not followed");

    // Tar entries: `..` refused, a link climbing out refused, a path through a link to
    // `/etc` lands in the sandbox's /etc.
    let tar_of = |name: &str, build: &dyn Fn(&mut tar::Builder<std::fs::File>)| {
        let path = s.join(name);
        let mut b = tar::Builder::new(std::fs::File::create(&path).unwrap());
        build(&mut b);
        b.finish().unwrap();
        path
    };
    let file_entry = |b: &mut tar::Builder<std::fs::File>, name: &[u8]| {
        let mut h = tar::Header::new_gnu();
        h.set_size(3);
        h.set_mode(0o644);
        h.set_entry_type(tar::EntryType::Regular);
        // Raw names: the tar crate refuses to write `..` itself.
        h.as_old_mut().name[..name.len()].copy_from_slice(name);
        h.set_cksum();
        b.append(&h, &b"bad"[..]).unwrap();
    };
    let link_entry = |b: &mut tar::Builder<std::fs::File>, name: &str, target: &str| {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::Symlink);
        h.set_size(0);
        h.set_mode(0o777);
        b.append_link(&mut h, name, target).unwrap();
    };
    let dotdot = tar_of("dotdot.tar", &|b| {
        file_entry(b, b"../../../../tmp/cairn-escape")
    });
    let put = |tarball: &Path| {
        raw(
            &d,
            "PUT",
            &format!("/v1/sandboxes/{id}/files?path=/root&archive=tar"),
            None,
            Some(tarball),
        )
    };
    let resp = put(&dotdot);
    assert_error(&(resp.0, as_json(&resp.1)), 400, "invalid_argument", "'..'");
    let climbing = tar_of("climb.tar", &|b| link_entry(b, "esc", "../../../../etc"));
    let resp = put(&climbing);
    assert_error(
        &(resp.0, as_json(&resp.1)),
        400,
        "invalid_argument",
        "climbs out",
    );
    let through = tar_of("through.tar", &|b| {
        link_entry(b, "etc-link", "/etc");
        file_entry(b, b"etc-link/cairn-files-through");
    });
    let resp = put(&through);
    assert_eq!(resp.0, 200, "{}", String::from_utf8_lossy(&resp.1));
    assert!(
        !Path::new("/etc/cairn-files-through").exists(),
        "an extraction reached the host's /etc"
    );
    let stat = d
        .cairn(&["files", "stat", &id, "/etc/cairn-files-through", "--json"])
        .json();
    assert_eq!(stat["size"], 3, "it landed in the sandbox's /etc");
    // A FIFO or device entry is refused.
    let fifo = tar_of("fifo.tar", &|b| {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::Fifo);
        h.set_size(0);
        b.append_data(&mut h, "pipe", std::io::empty()).unwrap();
    });
    let resp = put(&fifo);
    assert_error(&(resp.0, as_json(&resp.1)), 400, "invalid_argument", "FIFO");
}

/// Device nodes, FIFOs and sockets in a sandbox are never opened: reading one is a 400
/// that names its type (and never hangs).
fn special_files_are_refused(runtime: &str) {
    let d = daemon(&[]);
    let id = up(&d, runtime, &[]);
    d.cairn(&["stop", &id]).ok();
    // Made from the host in the stopped sandbox's root (a sandbox may not be allowed to).
    let root = d.home.join("pool/sandboxes").join(&id);
    let made = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "mkfifo {r}/root/fifo && mknod {r}/root/null c 1 3",
            r = root.display()
        ))
        .status()
        .unwrap();
    assert!(made.success());
    for (path, kind) in [("/root/fifo", "fifo"), ("/root/null", "char device")] {
        let (code, body) = raw(
            &d,
            "GET",
            &format!("/v1/sandboxes/{id}/files?path={path}"),
            None,
            None,
        );
        assert_error(&(code, as_json(&body)), 400, "invalid_argument", kind);
        let (code, body) = raw(
            &d,
            "GET",
            &format!("/v1/sandboxes/{id}/files?path={path}&archive=tar"),
            None,
            None,
        );
        assert_error(&(code, as_json(&body)), 400, "invalid_argument", kind);
    }
    // A directory holding them copies without them.
    let (code, _) = raw(
        &d,
        "GET",
        &format!("/v1/sandboxes/{id}/files?path=/root&archive=tar"),
        None,
        None,
    );
    assert_eq!(code, 200);
}

/// A write over the sandbox's disk limit is refused (4xx) and leaves no partial file, into
/// a running sandbox (gVisor: through its agent) and a stopped one.
fn writes_over_the_disk_limit_leave_nothing(runtime: &str) {
    let d = daemon(&[]);
    let id = up(&d, runtime, &["--disk", "32M"]);
    let s = d.scratch();
    big_file(&s.join("too-big"), 64);
    let (code, body) = raw(
        &d,
        "PUT",
        &format!("/v1/sandboxes/{id}/files?path=/root/too-big"),
        None,
        Some(&s.join("too-big")),
    );
    assert_error(&(code, as_json(&body)), 409, "limit_exceeded", "disk limit");
    let seen = d.cairn(&["exec", &id, "ls -a /root"]).ok();
    assert_eq!(seen.split_whitespace().count(), 2, "nothing left: {seen}");
    d.cairn(&["stop", &id]).ok();
    let (code, body) = raw(
        &d,
        "PUT",
        &format!("/v1/sandboxes/{id}/files?path=/root/too-big"),
        None,
        Some(&s.join("too-big")),
    );
    assert_error(&(code, as_json(&body)), 409, "limit_exceeded", "disk limit");
    let listed = d.cairn(&["files", "ls", &id, "/root", "--json"]).json();
    assert_eq!(
        listed,
        serde_json::json!([]),
        "no partial or temporary file is left"
    );
    // A write that fits still works afterwards.
    big_file(&s.join("fits"), 8);
    d.cairn(&[
        "cp",
        s.join("fits").to_str().unwrap(),
        &format!("{id}:/root/fits"),
    ])
    .ok();
}

/// cairnd killed (kill -9) in the middle of an upload leaves no file in the sandbox, whole
/// or partial, under any name: into a running sandbox (gVisor: its agent removes what it
/// wrote once its connection ends) and into a stopped one; and the sandbox takes a write
/// afterwards.
fn a_cairnd_killed_mid_upload_leaves_nothing(runtime: &str) {
    let mut d = daemon(&[]);
    let id = up(&d, runtime, &[]);
    let big = d.scratch().join("big");
    big_file(&big, 64);
    for running in [true, false] {
        if !running {
            d.cairn(&["stop", &id]).ok();
        }
        let mut curl = Command::new("curl")
            .args(["-s", "-o", "/dev/null", "--limit-rate", "8M", "-T"])
            .arg(&big)
            .arg("--unix-socket")
            .arg(d.home.join("cairnd.sock"))
            .arg(format!(
                "http://cairnd/v1/sandboxes/{id}/files?path=/root/big"
            ))
            .spawn()
            .unwrap();
        // About a quarter of it is on its way.
        std::thread::sleep(std::time::Duration::from_secs(2));
        d.kill9();
        let _ = curl.kill();
        let _ = curl.wait();
        d.relaunch();
        let listed = d.cairn(&["files", "ls", &id, "/root", "--json"]).json();
        assert_eq!(
            listed,
            serde_json::json!([]),
            "running: {running}: nothing of the upload is left"
        );
        if running {
            let seen = d.cairn(&["exec", &id, "ls -a /root"]).ok();
            assert_eq!(seen.split_whitespace().count(), 2, "{seen}");
        }
    }
    d.cairn(&["cp", big.to_str().unwrap(), &format!("{id}:/root/big")])
        .ok();
    let listed = d.cairn(&["files", "ls", &id, "/root", "--json"]).json();
    assert_eq!(listed[0]["size"], 64 * 1024 * 1024, "{listed}");
}

both_runtimes!(
    a_cairnd_killed_mid_upload_leaves_nothing,
    cp_round_trips_a_tree_and_a_big_file,
    symlinks_never_lead_to_the_host,
    special_files_are_refused,
    writes_over_the_disk_limit_leave_nothing,
);

/// Snapshots' files read (also after their sandbox is destroyed), never written; another
/// account's sandbox or snapshot is the same 404 as a missing one; bad paths are 400s that
/// say the fix; `..` stays in the root.
#[test]
fn snapshots_tenancy_and_bad_paths() {
    let d = Daemon::tcp_with_base(
        env!("CARGO_BIN_EXE_cairnd"),
        env!("CARGO_BIN_EXE_cairn"),
        &[],
    );
    let id = up(&d, "runc", &[]);
    d.cairn(&["exec", &id, "echo v1 > /root/state"]).ok();
    let snap = d.cairn(&["snapshot", "create", &id, "--name", "one"]).ok();
    d.cairn(&["exec", &id, "echo v2 > /root/state"]).ok();
    let (code, body) = raw(
        &d,
        "GET",
        &format!("/v1/snapshots/{snap}/files?path=/root/state"),
        None,
        None,
    );
    assert_eq!((code, body), (200, b"v1\n".to_vec()));
    let s = d.scratch();
    d.cairn(&[
        "cp",
        &format!("{id}:one:/root/state"),
        s.join("state").to_str().unwrap(),
    ])
    .ok();
    assert_eq!(std::fs::read(s.join("state")).unwrap(), b"v1\n");
    d.cairn(&["destroy", &id, "--force"]).ok();
    d.cairn(&[
        "cp",
        &format!("{snap}:/root"),
        s.join("root-copy").to_str().unwrap(),
    ])
    .ok();
    assert_eq!(std::fs::read(s.join("root-copy/state")).unwrap(), b"v1\n");
    let listed = d.cairn(&["files", "ls", &snap, "/root", "--json"]).json();
    assert_eq!(listed[0]["path"], "/root/state");

    // Read-only: no write route, and cp says to fork.
    let (code, _) = raw(
        &d,
        "PUT",
        &format!("/v1/snapshots/{snap}/files?path=/root/x"),
        None,
        Some(&s.join("state")),
    );
    assert_eq!(code, 405);
    let r = d.cairn(&[
        "cp",
        s.join("state").to_str().unwrap(),
        &format!("{snap}:/root/x"),
    ]);
    assert!(r.code != 0 && r.stderr.contains("read-only"), "{r:?}");

    // Another account: the same 404 as an id that does not exist, naming nothing else.
    let bob = d.token("bob");
    let other = up(&d, "runc", &[]);
    for (theirs, missing, kind) in [
        (other.as_str(), "sbx-00000000", "sandboxes"),
        (snap.as_str(), "snap-00000000", "snapshots"),
    ] {
        for route in [
            "files?path=/etc/passwd",
            "files/stat?path=/",
            "files/list?path=/",
        ] {
            let (c1, b1) = raw(
                &d,
                "GET",
                &format!("/v1/{kind}/{theirs}/{route}"),
                Some(&bob),
                None,
            );
            let (c2, b2) = raw(
                &d,
                "GET",
                &format!("/v1/{kind}/{missing}/{route}"),
                Some(&bob),
                None,
            );
            assert_eq!((c1, c2), (404, 404));
            let (t1, t2) = (String::from_utf8_lossy(&b1), String::from_utf8_lossy(&b2));
            assert_eq!(t1.replace(theirs, "ID"), t2.replace(missing, "ID"));
        }
    }
    let (code, _) = raw(
        &d,
        "PUT",
        &format!("/v1/sandboxes/{other}/files?path=/root/x"),
        Some(&bob),
        Some(&s.join("state")),
    );
    assert_eq!(code, 404);

    // Bad paths: 400s that say the fix; `..` resolves inside the root.
    let long = "a".repeat(5000);
    for (query, says) in [
        ("path=etc/passwd", "absolute path"),
        ("path=/etc%00/passwd", "NUL"),
        (&format!("path=/{long}") as &str, "over the limit"),
        ("", "no path given"),
        ("path=/etc&archive=zip", "archive"),
    ] {
        let (code, body) = raw(
            &d,
            "GET",
            &format!("/v1/sandboxes/{other}/files?{query}"),
            None,
            None,
        );
        assert_error(&(code, as_json(&body)), 400, "invalid_argument", says);
    }
    let (code, body) = raw(
        &d,
        "GET",
        &format!("/v1/sandboxes/{other}/files/list?path=/&depth=0"),
        None,
        None,
    );
    assert_error(&(code, as_json(&body)), 400, "invalid_argument", "depth");
    let (code, body) = raw(
        &d,
        "GET",
        &format!("/v1/sandboxes/{other}/files?path=/../../../etc/passwd"),
        None,
        None,
    );
    assert_eq!(
        (code, body),
        (200, b"root:x:0:0:root:/root:/bin/sh\n".to_vec())
    );
    let (code, body) = raw(
        &d,
        "GET",
        &format!("/v1/sandboxes/{other}/files?path=/etc"),
        None,
        None,
    );
    assert_error(&(code, as_json(&body)), 409, "conflict", "archive=tar");

    // The OpenAPI document describes the routes.
    let (_, doc) = d.http(
        cairn_test_support::Via::Unix,
        "GET",
        "/v1/openapi.json",
        None,
        None,
    );
    for p in [
        "/v1/sandboxes/{id}/files",
        "/v1/sandboxes/{id}/files/list",
        "/v1/sandboxes/{id}/files/stat",
        "/v1/sandboxes/{id}/files/mkdir",
        "/v1/sandboxes/{id}/files/move",
        "/v1/snapshots/{id}/files",
        "/v1/snapshots/{id}/files/list",
        "/v1/snapshots/{id}/files/stat",
    ] {
        assert!(
            doc["paths"][p].is_object(),
            "{p} missing from the OpenAPI document"
        );
    }
    assert!(doc["paths"]["/v1/sandboxes/{id}/files"]["put"].is_object());

    // `-`: a tar stream on stdout, and from stdin.
    let sh = |script: &str| {
        let out = Command::new("bash")
            .args(["-c", &format!("set -o pipefail; {script}"), "sh", &other])
            .env("CAIRN", env!("CARGO_BIN_EXE_cairn"))
            .env("CAIRN_HOME", &d.home)
            .env_remove("CAIRN_HOST")
            .env_remove("CAIRN_TOKEN")
            .current_dir(d.scratch())
            .output()
            .unwrap();
        assert!(out.status.success(), "{script}: {out:?}");
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let listed = sh(r#""$CAIRN" cp "$1:/etc" - | tar -t"#);
    assert!(listed.lines().any(|l| l == "etc/passwd"), "{listed}");
    std::fs::create_dir_all(s.join("streamed/sub")).unwrap();
    std::fs::write(s.join("streamed/sub/f"), "via stdin").unwrap();
    sh(r#""$CAIRN" files mkdir "$1" /srv -p && tar -C streamed -c . | "$CAIRN" cp - "$1:/srv""#);
    let (code, body) = raw(
        &d,
        "GET",
        &format!("/v1/sandboxes/{other}/files?path=/srv/sub/f"),
        None,
        None,
    );
    assert_eq!((code, body), (200, b"via stdin".to_vec()));

    // mkdir -p, mv, rm -r.
    d.cairn(&["files", "mkdir", &other, "/srv/a/b", "-p"]).ok();
    d.cairn(&["files", "mv", &other, "/srv/a", "/srv/c"]).ok();
    let r = d.cairn(&["files", "rm", &other, "/srv/c"]);
    assert!(r.code != 0 && r.stderr.contains("-r"), "{r:?}");
    d.cairn(&["files", "rm", &other, "/srv/c", "-r"]).ok();
    let left = d.cairn(&["files", "ls", &other, "/srv", "--json"]).json();
    assert_eq!(
        left.as_array().unwrap().len(),
        1,
        "only /srv/sub is left: {left}"
    );
    assert_eq!(left[0]["path"], "/srv/sub");
}
