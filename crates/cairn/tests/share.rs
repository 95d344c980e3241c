//! Snapshots that leave the host: export on one cairnd, import on another (separate
//! homes), fork there; stateful snapshots continue; hostile archives are refused leaving
//! nothing behind; limits; crash safety; tenancy.

#![allow(clippy::unwrap_used)]

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use cairn_test_support::Daemon;

fn daemon_with(args: &[&str]) -> Daemon {
    Daemon::with_base(
        env!("CARGO_BIN_EXE_cairnd"),
        env!("CARGO_BIN_EXE_cairn"),
        args,
    )
}

/// A daemon without any image: what it imports brings its own.
fn bare_daemon(args: &[&str]) -> Daemon {
    Daemon::start_opts(
        env!("CARGO_BIN_EXE_cairnd"),
        env!("CARGO_BIN_EXE_cairn"),
        false,
        args,
    )
}

fn up(d: &Daemon, runtime: &str) -> String {
    d.cairn(&["up", "--image", "base", "--runtime", runtime])
        .ok()
}

/// Every file under /root, /etc and /tmp with its checksum, sorted.
fn listing(d: &Daemon, id: &str) -> String {
    d.cairn(&[
        "exec",
        id,
        "find /root /etc /tmp -xdev \\( -type f -o -type l \\) -exec md5sum {} + 2>&1 | grep -v machine-id | sort; ls -l /root/link; stat -c %h /root/hard",
    ])
    .ok()
}

/// Makes a sandbox with files of its own (a sparse one, a symlink, a hard link) and
/// snapshots it; returns (sandbox, snapshot).
fn source(d: &Daemon, rt: &str) -> (String, String) {
    let id = up(d, rt);
    d.cairn(&[
        "exec",
        &id,
        "mkdir -p /root/work && echo hello > /root/work/a && dd if=/dev/urandom of=/root/blob bs=64k count=8 2>/dev/null \
         && ln -s work/a /root/link && ln /root/work/a /root/hard && chmod 750 /root/work \
         && dd if=/dev/zero of=/root/sparse bs=1 count=1 seek=50000000 2>/dev/null",
    ])
    .ok();
    let snap = d
        .cairn(&["snapshot", "create", &id, "--name", "shared"])
        .ok();
    (id, snap)
}

fn export(d: &Daemon, snap: &str, file: &Path) {
    d.cairn(&["snapshot", "export", snap, "-o", file.to_str().unwrap()])
        .ok();
}

/// What must be left after a refused import: no snapshot row, directory or upload file.
fn assert_nothing_left(d: &Daemon, images_before: &str) {
    let all = d.cairn(&["snapshot", "list", "--all", "--json"]).json();
    assert_eq!(all.as_array().unwrap().len(), 0, "{all}");
    let dirs: Vec<_> = std::fs::read_dir(d.home.join("pool/snapshots"))
        .map(|r| r.flatten().map(|e| e.file_name()).collect())
        .unwrap_or_default();
    assert!(dirs.is_empty(), "snapshot directories left: {dirs:?}");
    let uploads: Vec<_> = std::fs::read_dir(d.home.join("pool/uploads"))
        .map(|r| r.flatten().map(|e| e.file_name()).collect())
        .unwrap_or_default();
    assert!(uploads.is_empty(), "uploads left: {uploads:?}");
    assert_eq!(d.cairn(&["image", "ls", "--json"]).ok(), images_before);
}

cairn_test_support::both_runtimes!(
    a_snapshot_exported_on_one_host_forks_on_another_with_the_same_files,
    a_stateful_snapshot_continues_its_processes_on_another_host,
);

fn a_snapshot_exported_on_one_host_forks_on_another_with_the_same_files(rt: &str) {
    let a = daemon_with(&[]);
    let (id, snap) = source(&a, rt);
    let want = listing(&a, &id);
    for name in ["snap.tar.gz", "snap.tar.zst"] {
        let file = a.scratch().join(name);
        export(&a, &snap, &file);
        // Both with the image (it is used) and without (the archive brings it).
        for b in [daemon_with(&[]), bare_daemon(&[])] {
            let imported = b
                .cairn(&["snapshot", "import", file.to_str().unwrap(), "--json"])
                .json();
            assert_eq!(imported["state"], "ready", "{imported}");
            assert_eq!(imported["name"], "shared");
            assert_eq!(imported["imported_from"], snap.as_str());
            assert_eq!(imported["image"], "base");
            let new = imported["id"].as_str().unwrap();
            assert_ne!(new, snap);
            let fork = b.cairn(&["up", "--from-snapshot", new]).ok();
            assert_eq!(listing(&b, &fork), want, "{name}");
            // The sparse file stayed sparse.
            use std::os::unix::fs::MetadataExt;
            let md = std::fs::metadata(
                b.home
                    .join("pool/snapshots")
                    .join(new)
                    .join("rootfs/root/sparse"),
            )
            .unwrap();
            assert_eq!(md.len(), 50_000_001);
            assert!(md.blocks() < 1000, "{} blocks", md.blocks());
            let inspect = b.cairn(&["snapshot", "inspect", new]).ok();
            assert!(
                inspect.contains(&format!("imported from {snap}")),
                "{inspect}"
            );
            assert_eq!(
                b.cairn(&["snapshot", "list", "--json"]).json()[0]["id"],
                new
            );
            // Forks of the import work as any: fork again.
            b.cairn(&["fork", new]).ok();
        }
    }
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

fn a_stateful_snapshot_continues_its_processes_on_another_host(rt: &str) {
    let a = daemon_with(&[]);
    let id = up(&a, rt);
    a.start_counter(&id);
    let snap = a.cairn(&["snapshot", "create", &id, "--stateful"]).ok();
    let file = a.scratch().join("counter.tar.zst");
    export(&a, &snap, &file);
    let b = daemon_with(&[]);
    let imported = b
        .cairn(&["snapshot", "import", file.to_str().unwrap(), "--json"])
        .json();
    assert_eq!(imported["stateful"], true);
    let new = imported["id"].as_str().unwrap();
    let fresh = b.cairn(&["up", "--from-snapshot", new, "--fresh"]).ok();
    let at_snapshot = counter(&b, &fresh);
    let fork = b.cairn(&["fork", new]).ok();
    std::thread::sleep(Duration::from_millis(600));
    let v = counter(&b, &fork);
    assert!(
        v > at_snapshot,
        "the fork did not continue: {v} <= {at_snapshot}"
    );
    assert!(v < at_snapshot + 300, "the fork restarted or ran away: {v}");
}

// ---------------------------------------------------------------------------------------
// Hostile input. Archives are made here with the tar crate and the gzip command.

fn gzip(tar: &[u8]) -> Vec<u8> {
    let mut child = Command::new("gzip")
        .arg("-1")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let data = tar.to_vec();
    let writer = std::thread::spawn(move || stdin.write_all(&data).unwrap());
    let mut out = Vec::new();
    child.stdout.take().unwrap().read_to_end(&mut out).unwrap();
    writer.join().unwrap();
    assert!(child.wait().unwrap().success());
    out
}

fn gunzip(data: &[u8]) -> Vec<u8> {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("a.gz");
    std::fs::write(&p, data).unwrap();
    let out = Command::new("gzip").arg("-dc").arg(&p).output().unwrap();
    assert!(out.status.success());
    out.stdout
}

/// The entries of a tar: (header, data).
fn entries(tar: &[u8]) -> Vec<(tar::Header, Vec<u8>)> {
    let mut a = tar::Archive::new(tar);
    a.entries()
        .unwrap()
        .map(|e| {
            let mut e = e.unwrap();
            let mut h = e.header().clone();
            // Long names live in extension entries the reader folded in.
            h.set_path(e.path().unwrap()).ok();
            if let Ok(Some(link)) = e.link_name() {
                h.set_link_name(link).ok();
            }
            let mut data = Vec::new();
            e.read_to_end(&mut data).unwrap();
            (h, data)
        })
        .collect()
}

fn build(list: &[(tar::Header, Vec<u8>)]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (h, data) in list {
        let mut h = h.clone();
        h.set_cksum();
        b.append(&h, &data[..]).unwrap();
    }
    b.into_inner().unwrap()
}

fn import_bytes(d: &Daemon, data: &[u8]) -> cairn_test_support::Run {
    let p = d.scratch().join(format!("in-{}.tar.gz", rand_suffix()));
    std::fs::write(&p, data).unwrap();
    d.cairn(&["snapshot", "import", p.to_str().unwrap()])
}

fn rand_suffix() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
}

fn raw_header(name: &str, kind: tar::EntryType, size: u64) -> tar::Header {
    let mut h = tar::Header::new_gnu();
    {
        let gnu = h.as_gnu_mut().unwrap();
        gnu.name[..name.len()].copy_from_slice(name.as_bytes());
    }
    h.set_entry_type(kind);
    h.set_size(size);
    h.set_mode(0o644);
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(0);
    h
}

#[test]
fn hostile_archives_are_refused_naming_the_problem_and_leave_nothing() {
    let a = daemon_with(&[]);
    let (_, snap) = source(&a, "runc");
    let file = a.scratch().join("good.tar.gz");
    export(&a, &snap, &file);
    let good = std::fs::read(&file).unwrap();
    let tar = gunzip(&good);
    let list = entries(&tar);
    assert_eq!(
        list[0].0.path().unwrap().to_str(),
        Some("cairn-snapshot.json")
    );
    assert_eq!(
        list.last().unwrap().0.path().unwrap().to_str(),
        Some("checksums")
    );
    let b = daemon_with(&[]);
    let images = b.cairn(&["image", "ls", "--json"]).ok();
    let refused = |data: &[u8], want: &str| {
        let r = import_bytes(&b, data);
        assert_ne!(r.code, 0, "{want}: {r:?}");
        assert!(
            r.stderr.contains(want),
            "expected '{want}' in: {}",
            r.stderr
        );
        assert!(!r.stderr.contains(b.home.to_str().unwrap()), "{r:?}");
        assert_nothing_left(&b, &images);
    };

    // Truncated: cut off in the middle, and just before the end.
    refused(&good[..good.len() / 2], "truncated");
    refused(&gzip(&tar[..tar.len() - 3000]), "truncated");
    // Not an archive at all.
    refused(b"hello there", "not a snapshot archive");
    // Corrupted: one byte of a file's data changed.
    let mut bad = list.clone();
    let blob = bad
        .iter_mut()
        .find(|(h, _)| h.path().unwrap().ends_with("root/blob"))
        .unwrap();
    blob.1[1000] ^= 0xff;
    refused(&gzip(&build(&bad)), "checksums do not match");
    // Path-escaping: `..`, an absolute name, a symlink then a write through it.
    for (evil, kind, link) in [
        ("rootfs/../../etc/evil", tar::EntryType::Regular, None),
        ("/etc/evil", tar::EntryType::Regular, None),
        ("rootfs/../x", tar::EntryType::Regular, None),
        (
            "rootfs/root/up",
            tar::EntryType::Link,
            Some("../../../etc/passwd"),
        ),
    ] {
        let mut bad = list.clone();
        let mut h = raw_header(evil, kind, if link.is_some() { 0 } else { 1 });
        if let Some(l) = link {
            h.set_link_name(l).unwrap();
        }
        bad.insert(
            2,
            (
                h,
                if link.is_some() {
                    vec![]
                } else {
                    b"x".to_vec()
                },
            ),
        );
        let r = import_bytes(&b, &gzip(&build(&bad)));
        assert_ne!(r.code, 0, "{evil}: {r:?}");
        assert!(
            r.stderr.contains("refused") || r.stderr.contains("unexpected entry"),
            "{evil}: {}",
            r.stderr
        );
        assert_nothing_left(&b, &images);
        assert!(!Path::new("/etc/evil").exists());
    }
    // A symlink out of the tree, then a file written through it, lands inside the tree:
    // the archive is still refused (its checksums no longer match), and the host is untouched.
    let mut bad = list.clone();
    let mut h = raw_header("rootfs/root/out", tar::EntryType::Symlink, 0);
    h.set_link_name("/etc").unwrap();
    bad.insert(2, (h, vec![]));
    bad.insert(
        3,
        (
            raw_header("rootfs/root/out/evil-share", tar::EntryType::Regular, 1),
            b"x".to_vec(),
        ),
    );
    refused(&gzip(&build(&bad)), "checksums do not match");
    assert!(!Path::new("/etc/evil-share").exists());
    // A device node.
    let mut bad = list.clone();
    bad.insert(
        2,
        (
            raw_header("rootfs/dev/sda", tar::EntryType::Block, 0),
            vec![],
        ),
    );
    refused(&gzip(&build(&bad)), "device nodes");
    // A manifest of an unknown format version.
    let mut doc: serde_json::Value = serde_json::from_slice(&list[0].1).unwrap();
    doc["version"] = 99.into();
    let mut bad = list.clone();
    let data = serde_json::to_vec(&doc).unwrap();
    bad[0].0.set_size(data.len() as u64);
    bad[0].1 = data;
    refused(&gzip(&build(&bad)), "format version 99");
    // More data than it declares.
    let mut doc: serde_json::Value = serde_json::from_slice(&list[0].1).unwrap();
    doc["sizes"]["rootfs_bytes"] = 1000.into();
    doc["sizes"]["rootfs_entries"] = 1.into();
    let mut bad = list.clone();
    let data = serde_json::to_vec(&doc).unwrap();
    bad[0].0.set_size(data.len() as u64);
    bad[0].1 = data;
    refused(
        &gzip(&build(&bad)),
        "more than its cairn-snapshot.json declares",
    );
    // Entries before the manifest.
    let mut bad = list.clone();
    bad.swap(0, 1);
    let r = import_bytes(&b, &gzip(&build(&bad)));
    assert_ne!(r.code, 0);
    assert_nothing_left(&b, &images);
    // And the good one still imports.
    b.cairn(&["snapshot", "import", file.to_str().unwrap()])
        .ok();
}

#[test]
fn imports_count_against_the_snapshot_limits() {
    let a = daemon_with(&[]);
    let (_, snap) = source(&a, "runc");
    let file = a.scratch().join("s.tar.zst");
    export(&a, &snap, &file);
    // The snapshot holds ~0.5 MiB of data plus the base image's files.
    for (flag, want) in [
        ("--max-snapshot-size=100K", "per snapshot"),
        ("--max-account-snapshot-size=100K", "over the limit of"),
    ] {
        let b = daemon_with(&[flag]);
        let images = b.cairn(&["image", "ls", "--json"]).ok();
        let r = b.cairn(&["snapshot", "import", file.to_str().unwrap()]);
        assert_ne!(r.code, 0, "{flag}");
        assert!(r.stderr.contains(want), "{flag}: {}", r.stderr);
        assert_nothing_left(&b, &images);
    }
}

#[test]
fn an_import_cut_short_by_a_crash_leaves_nothing_after_restart() {
    let a = daemon_with(&[]);
    let (_, snap) = source(&a, "runc");
    let file = a.scratch().join("s.tar.zst");
    export(&a, &snap, &file);
    let mut b = bare_daemon(&[]);
    b.env
        .push(("CAIRN_CRASH_AT".into(), "import-before-ready".into()));
    b.restart();
    let r = b.cairn(&["snapshot", "import", file.to_str().unwrap()]);
    assert_ne!(r.code, 0);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !b.has_exited() {
        assert!(std::time::Instant::now() < deadline, "cairnd did not crash");
        std::thread::sleep(Duration::from_millis(50));
    }
    b.env.clear();
    b.relaunch();
    assert_nothing_left(&b, "[]");
    b.cairn(&["snapshot", "import", file.to_str().unwrap()])
        .ok();
}

#[test]
fn a_snapshot_deleted_while_it_exports_is_never_a_complete_archive() {
    let a = daemon_with(&[]);
    let id = up(&a, "runc");
    // Enough data that the export is still streaming when the snapshot goes.
    a.cairn(&[
        "exec",
        &id,
        "dd if=/dev/urandom of=/root/big bs=1M count=200 2>/dev/null",
    ])
    .ok();
    let snap = a.cairn(&["snapshot", "create", &id]).ok();
    let out = a.scratch().join("gone.tar.gz");
    let child = a
        .cairn_command(&["snapshot", "export", &snap, "-o", out.to_str().unwrap()])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    a.cairn(&["snapshot", "delete", &snap]).ok();
    let res = child.wait_with_output().unwrap();
    assert!(!res.status.success(), "the export reported success");
    // The CLI reads the archive in frames: their last event says why it stopped.
    let stderr = String::from_utf8_lossy(&res.stderr);
    assert!(
        stderr.contains("failed midway") && stderr.contains("deleted while it was exported"),
        "{stderr}"
    );
    assert!(!out.exists());
    let leftovers: Vec<PathBuf> = std::fs::read_dir(a.scratch())
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.to_string_lossy().contains(".part-"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

#[test]
fn an_export_in_frames_reports_its_progress_and_carries_the_plain_archive() {
    use cairn_test_support::Via;
    use cairn_types::api::frames::{FrameReader, Piece, ARCHIVE_FRAMES};
    use cairn_types::api::ProgressEvent;

    let a = daemon_with(&[]);
    let (_, snap) = source(&a, "runc");
    let b = daemon_with(&[]);
    for format in ["tar.zst", "tar.gz"] {
        let path = format!("/v1/snapshots/{snap}/archive?format={format}");
        let plain = a.scratch().join(format!("plain.{format}"));
        let framed = a.scratch().join(format!("framed.{format}"));
        let (code, _) = a.curl(
            Via::Unix,
            &path,
            None,
            &["-o".into(), plain.display().to_string()],
        );
        assert_eq!(code, 200);
        let (code, _) = a.curl(
            Via::Unix,
            &path,
            None,
            &[
                "-H".into(),
                format!("Accept: {ARCHIVE_FRAMES}"),
                "-o".into(),
                framed.display().to_string(),
            ],
        );
        assert_eq!(code, 200);
        let body = std::fs::read(&framed).unwrap();
        let (mut archive, mut reports, mut end) = (Vec::new(), Vec::new(), None);
        let mut reader = FrameReader::default();
        reader
            .read(&body, &mut |piece| {
                match piece {
                    Piece::Data(d) => archive.extend_from_slice(d),
                    Piece::Event(ProgressEvent::Progress {
                        phase, done, total, ..
                    }) => {
                        assert_eq!(phase, "archive");
                        reports.push((done, total.expect("a total")));
                    }
                    Piece::Event(e) => end = Some(e),
                }
                Ok(())
            })
            .expect("frames");
        assert!(reader.at_boundary());
        // The same archive as the plain answer, byte for byte.
        assert!(
            archive == std::fs::read(&plain).unwrap(),
            "the {format} archives differ"
        );
        // Reports rise (the 50 MB sparse file alone makes several), never past their total,
        // and the last is the whole stream.
        assert!(reports.len() >= 5, "{reports:?}");
        assert!(reports.windows(2).all(|w| w[0].0 <= w[1].0), "{reports:?}");
        assert!(reports.iter().all(|(d, t)| d <= t), "{reports:?}");
        let (done, total) = *reports.last().unwrap();
        assert_eq!(done, total);
        assert!(done > 50_000_000, "{reports:?}");
        match end {
            Some(ProgressEvent::Result { status: 200, body }) => {
                assert_eq!(body["bytes"], serde_json::json!(archive.len()));
            }
            other => panic!("the frames end with {other:?}"),
        }
        // The archive imports.
        let name = format.replace('.', "-");
        b.cairn(&[
            "snapshot",
            "import",
            plain.to_str().unwrap(),
            "--name",
            &name,
        ])
        .ok();
    }
}

/// `curl -s -o FILE -w %{http_code} URL`: (status, body).
fn curl(url: &str, out: &Path) -> (u16, String) {
    let res = Command::new("curl")
        .args(["-s", "-o", out.to_str().unwrap(), "-w", "%{http_code}", url])
        .output()
        .unwrap();
    let code = String::from_utf8_lossy(&res.stdout)
        .trim()
        .parse()
        .unwrap_or(0);
    (code, std::fs::read_to_string(out).unwrap_or_default())
}

#[test]
fn signed_links_download_with_curl_until_they_expire_or_the_snapshot_goes() {
    let a = Daemon::start_opts(
        env!("CARGO_BIN_EXE_cairnd"),
        env!("CARGO_BIN_EXE_cairn"),
        true,
        &["--max-link-expiry", "2h"],
    );
    a.import_base();
    let alice = a.token("alice");
    let bob = a.token("bob");
    let host = format!("http://{}", a.tcp.as_ref().unwrap());
    let as_ = |token: &str, args: &[&str]| {
        a.cairn_env(
            args,
            &[("CAIRN_HOST", host.as_str()), ("CAIRN_TOKEN", token)],
        )
    };
    let id = as_(&alice, &["up", "--image", "base", "--runtime", "runc"]).ok();
    as_(&alice, &["exec", &id, "echo secret > /root/f"]).ok();
    let snap = as_(&alice, &["snapshot", "create", &id, "--name", "s"]).ok();

    // Over TCP, export and import upload and download through the API too.
    let file = a.scratch().join("tcp.tar.zst");
    as_(
        &alice,
        &["snapshot", "export", &snap, "-o", file.to_str().unwrap()],
    )
    .ok();
    let copy = as_(
        &alice,
        &[
            "snapshot",
            "import",
            file.to_str().unwrap(),
            "--name",
            "copy",
        ],
    )
    .ok();
    assert_ne!(copy, snap);

    // Another account can neither export, link nor see it; its own list stays empty.
    for args in [
        vec!["snapshot", "export", &snap, "-o", "/dev/null"],
        vec!["snapshot", "url", &snap],
        vec!["snapshot", "inspect", &snap],
    ] {
        let r = as_(&bob, &args);
        assert_ne!(r.code, 0, "{args:?}");
        assert!(r.stderr.contains("no snapshot"), "{args:?}: {}", r.stderr);
    }
    assert_eq!(as_(&bob, &["snapshot", "list", "--json"]).ok(), "[]");

    // A link downloads the archive with no token; it imports elsewhere.
    let url = as_(&alice, &["snapshot", "url", &snap, "--format", "tar.gz"]).ok();
    assert!(url.starts_with(&host), "{url}");
    let out = a.scratch().join("dl.tar.gz");
    let (code, _) = curl(&url, &out);
    assert_eq!(code, 200);
    let b = daemon_with(&[]);
    let imported = b.cairn(&["snapshot", "import", out.to_str().unwrap()]).ok();
    let fork = b.cairn(&["up", "--from-snapshot", &imported]).ok();
    assert_eq!(b.cairn(&["exec", &fork, "cat /root/f"]).ok(), "secret");

    // Default expiry is 1 h; more than the maximum is refused.
    let link = as_(&alice, &["snapshot", "url", &snap, "--json"]).json();
    let expires =
        chrono::DateTime::parse_from_rfc3339(link["expires_at"].as_str().unwrap()).unwrap();
    let left = expires
        .signed_duration_since(chrono::Utc::now())
        .num_seconds();
    assert!((3500..=3600).contains(&left), "{left}");
    let r = as_(&alice, &["snapshot", "url", &snap, "--expires", "3h"]);
    assert_ne!(r.code, 0);

    // Tampered: another expiry, another snapshot id, another signature.
    let parts: Vec<&str> = url.rsplit('/').next().unwrap().split('.').collect();
    let later: i64 = parts[1].parse::<i64>().unwrap() + 3600;
    for bad in [
        format!(
            "{host}/v1/links/{}.{later}.{}.{}",
            parts[0], parts[2], parts[3]
        ),
        format!(
            "{host}/v1/links/{copy}.{}.{}.{}",
            parts[1], parts[2], parts[3]
        ),
        format!(
            "{host}/v1/links/{}.{}.{}.{}",
            parts[0],
            parts[1],
            parts[2],
            "0".repeat(64)
        ),
        format!("{host}/v1/links/{}.{}.zst.{}", parts[0], parts[1], parts[3]),
    ] {
        let (code, body) = curl(&bad, &out);
        assert_eq!(code, 403, "{bad}: {body}");
        assert!(!body.contains(&snap) && !body.contains(&copy), "{body}");
    }

    // Expired.
    let short = as_(&alice, &["snapshot", "url", &snap, "--expires", "1s"]).ok();
    std::thread::sleep(Duration::from_millis(2100));
    let (code, body) = curl(&short, &out);
    assert_eq!(code, 403, "{body}");
    assert!(body.contains("expired"), "{body}");

    // Dead once the snapshot is deleted, without naming it.
    as_(&alice, &["snapshot", "delete", &snap]).ok();
    let (code, body) = curl(&url, &out);
    assert!(code == 403 || code == 404, "{code}: {body}");
    assert!(!body.contains(&snap), "{body}");

    // Without a TCP listener there are no links, and the error says how to get them.
    let r = b.cairn(&["snapshot", "url", &imported]);
    assert_ne!(r.code, 0);
    assert!(r.stderr.contains("--listen"), "{}", r.stderr);
}

#[test]
fn the_share_with_a_teammate_example_runs() {
    let a = Daemon::start_opts(
        env!("CARGO_BIN_EXE_cairnd"),
        env!("CARGO_BIN_EXE_cairn"),
        true,
        &[],
    );
    a.import_base();
    let b = daemon_with(&[]);
    let script =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../examples/share-with-a-teammate.sh");
    let out = Command::new("bash")
        .arg(&script)
        .args(["runc", "base"])
        .env("CAIRN", env!("CARGO_BIN_EXE_cairn"))
        .env("CAIRN_HOME", &a.home)
        .env("TEAMMATE_HOME", &b.home)
        .env_remove("CAIRN_HOST")
        .env_remove("CAIRN_TOKEN")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(stdout.matches("sees the same files").count(), 2, "{stdout}");
}
