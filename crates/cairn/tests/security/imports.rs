//! Finding 1: importing a host path is the operator's; tenants upload archives; nobody
//! imports from inside the data directory; an import error never quotes the file.

use std::path::{Path, PathBuf};
use std::process::Command;

use cairn_test_support::{assert_error, base_rootfs, Daemon, Via};

use super::{assert_healthy, tcp_daemon};

/// `tar -C DIR -cf OUT .`
fn tar_of(dir: &Path, out: &Path) {
    let st = Command::new("tar")
        .arg("-C")
        .arg(dir)
        .arg("-cf")
        .arg(out)
        .arg(".")
        .status()
        .expect("tar is needed: apt-get install tar");
    assert!(st.success());
}

fn image_count(d: &Daemon) -> usize {
    std::fs::read_dir(d.home.join("pool/images"))
        .unwrap()
        .count()
}

fn uploads_left(d: &Daemon) -> Vec<PathBuf> {
    std::fs::read_dir(d.home.join("pool/uploads"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect()
}

/// The CLI over TCP as `token`.
fn cairn_as(d: &Daemon, token: &str, args: &[&str]) -> cairn_test_support::Run {
    let host = format!("http://{}", d.tcp.as_ref().unwrap());
    d.cairn_env(args, &[("CAIRN_HOST", &host), ("CAIRN_TOKEN", token)])
}

/// `cairn image import BUSYBOX_DIR --name NAME` over TCP: the CLI packs the directory and
/// uploads it.
fn import_busybox_dir(d: &Daemon, token: &str, name: &str) {
    let dir = base_rootfs().to_str().unwrap();
    let r = cairn_as(d, token, &["image", "import", dir, "--name", name]);
    assert_eq!(r.code, 0, "{r:?}");
}

#[test]
fn a_tenant_cannot_import_a_host_path_and_every_path_gets_the_same_answer() {
    let d = tcp_daemon(&[]);
    let alice = d.token("alice");
    let bob = d.token("bob");
    // Bob has a sandbox whose files are his.
    let (code, sbx) = d.http(
        Via::Tcp,
        "POST",
        "/v1/sandboxes",
        Some(&bob),
        Some(r#"{"image":"base","runtime":"runc"}"#),
    );
    assert_eq!(code, 201, "{sbx}");
    let bobs = sbx["id"].as_str().unwrap().to_string();
    let bobs_root = d.home.join("pool/sandboxes").join(&bobs);
    std::fs::write(bobs_root.join("root/secret"), "bob's").unwrap();
    let before = image_count(&d);
    let mut answers = Vec::new();
    for path in [
        "/etc".to_string(),
        "/etc/shadow".to_string(),
        "/no/such/path".to_string(),
        bobs_root.display().to_string(),
    ] {
        let body = serde_json::json!({ "name": "loot", "path": path }).to_string();
        let resp = d.http(Via::Tcp, "POST", "/v1/images", Some(&alice), Some(&body));
        assert_error(&resp, 403, "forbidden", "upload the archive");
        answers.push(resp.1.to_string());
    }
    // Whether a path exists, or what it holds, cannot be told from the answer.
    assert!(answers.windows(2).all(|w| w[0] == w[1]), "{answers:?}");
    // The CLI over TCP uploads instead of sending the path: a directory of the client's
    // is packed and sent, with the client's own permissions.
    import_busybox_dir(&d, &alice, "loot");
    assert_eq!(image_count(&d), before + 1, "the upload became an image");
    // Nothing of bob's was read; alice sees only her own upload and the public base.
    let (_, list) = d.http(Via::Tcp, "GET", "/v1/images", Some(&alice), None);
    let names: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["base", "loot"]);
    assert_eq!(
        std::fs::read_to_string(bobs_root.join("root/secret")).unwrap(),
        "bob's"
    );
    assert_healthy(&d);
}

#[test]
fn nobody_imports_from_inside_the_data_directory() {
    let d = tcp_daemon(&[]);
    let admin = d.token_with("ops", &["--admin"]);
    let (code, sbx) = d.http(
        Via::Unix,
        "POST",
        "/v1/sandboxes",
        None,
        Some(r#"{"image":"base","runtime":"runc"}"#),
    );
    assert_eq!(code, 201, "{sbx}");
    let id = sbx["id"].as_str().unwrap();
    let outside = tempfile::tempdir().unwrap();
    let link = outside.path().join("sneaky");
    std::os::unix::fs::symlink(d.home.join("pool"), &link).unwrap();
    let before = image_count(&d);
    for path in [
        d.home.join("pool/sandboxes").join(id),
        d.home.join("pool"),
        d.home.clone(),
        d.home.join("cairn.db"),
        link.join("sandboxes").join(id),
    ] {
        let body =
            serde_json::json!({ "name": "inner", "path": path.display().to_string() }).to_string();
        // Not the operator on the socket, not an admin token.
        let resp = d.http(Via::Unix, "POST", "/v1/images", None, Some(&body));
        assert_error(&resp, 403, "forbidden", "data directory");
        let resp = d.http(Via::Tcp, "POST", "/v1/images", Some(&admin), Some(&body));
        assert_error(&resp, 403, "forbidden", "data directory");
    }
    assert_eq!(image_count(&d), before);
    // An admin token imports a host path from elsewhere, like the socket.
    let body =
        serde_json::json!({ "name": "ops-image", "path": base_rootfs().display().to_string() })
            .to_string();
    let (code, img) = d.http(Via::Tcp, "POST", "/v1/images", Some(&admin), Some(&body));
    assert_eq!(code, 201, "{img}");
    assert_eq!(img["owned"], true);
    assert_healthy(&d);
}

#[test]
fn tenants_upload_archives_and_sandboxes_run_from_them() {
    let d = tcp_daemon(&[]);
    let alice = d.token("alice");
    let bob = d.token("bob");
    let work = tempfile::tempdir().unwrap();
    let archive = work.path().join("img.tar");
    tar_of(base_rootfs(), &archive);
    let r = cairn_as(
        &d,
        &alice,
        &[
            "image",
            "import",
            archive.to_str().unwrap(),
            "--name",
            "mine",
            "--json",
        ],
    );
    assert_eq!(r.code, 0, "{r:?}");
    let img = r.json();
    assert_eq!(
        (img["owned"].clone(), img["public"].clone()),
        (true.into(), false.into())
    );
    // A raw upload with curl works too, and so does a directory through the CLI.
    let resp = d.curl(
        Via::Tcp,
        "/v1/images?name=raw",
        Some(&alice),
        &[
            "-H".into(),
            "Content-Type: application/x-tar".into(),
            "--data-binary".into(),
            format!("@{}", archive.display()),
        ],
    );
    assert_eq!(resp.0, 201, "{resp:?}");
    import_busybox_dir(&d, &alice, "fromdir");
    for image in ["mine", "raw", "fromdir"] {
        let id = cairn_as(&d, &alice, &["up", "--image", image, "--runtime", "runc"]).ok();
        let out = cairn_as(&d, &alice, &["exec", &id, "cat /etc/cairn-image"]).ok();
        assert_eq!(out, "cairn-test-image", "{image}");
        cairn_as(&d, &alice, &["destroy", "--force", &id]).ok();
    }
    // Bob cannot see, use or remove them.
    let r = cairn_as(&d, &bob, &["up", "--image", "mine", "--runtime", "runc"]);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(r.stderr.contains("no image named 'mine'"), "{r:?}");
    let r = cairn_as(&d, &bob, &["image", "rm", "mine"]);
    assert!(r.stderr.contains("you have no image named 'mine'"), "{r:?}");
    let (_, list) = d.http(Via::Tcp, "GET", "/v1/images", Some(&bob), None);
    assert_eq!(list.as_array().unwrap().len(), 1, "{list}");
    assert!(uploads_left(&d).is_empty(), "{:?}", uploads_left(&d));
    assert_healthy(&d);
}

#[test]
fn oversized_or_garbage_uploads_are_refused_and_leave_nothing_behind() {
    let d = tcp_daemon(&["--max-image-size", "16M"]);
    let alice = d.token("alice");
    let work = tempfile::tempdir().unwrap();
    let before = image_count(&d);
    // 24 MiB: over the cap, refused while it streams.
    let big = work.path().join("big.tar");
    let st = Command::new("dd")
        .args(["if=/dev/urandom", "bs=1M", "count=24", "status=none"])
        .arg(format!("of={}", big.display()))
        .status()
        .unwrap();
    assert!(st.success());
    let upload = |file: &Path, name: &str| {
        d.curl(
            Via::Tcp,
            &format!("/v1/images?name={name}"),
            Some(&alice),
            &[
                "-H".into(),
                "Content-Type: application/octet-stream".into(),
                "--data-binary".into(),
                format!("@{}", file.display()),
            ],
        )
    };
    assert_error(&upload(&big, "big"), 413, "too_large", "--max-image-size");
    // A file that is not an archive: the answer says so without quoting it.
    let shadow = work.path().join("shadow");
    std::fs::write(
        &shadow,
        "root:$6$SECRETSALT$hashhashhashhashhashhash:19000:0:99999:7:::\n".repeat(40),
    )
    .unwrap();
    let resp = upload(&shadow, "garbage");
    assert_error(&resp, 400, "invalid_argument", "not a tar archive");
    assert!(!resp.1.to_string().contains("SECRETSALT"), "{resp:?}");
    assert!(
        !resp.1.to_string().contains(&d.home.display().to_string()),
        "{resp:?}"
    );
    // An empty upload, a bad name, a missing name.
    let empty = work.path().join("empty");
    std::fs::write(&empty, "").unwrap();
    assert_error(&upload(&empty, "empty"), 400, "invalid_argument", "empty");
    assert_error(
        &upload(&shadow, "sbx-0badf00d"),
        400,
        "invalid_argument",
        "shape of an id",
    );
    let resp = d.curl(
        Via::Tcp,
        "/v1/images",
        Some(&alice),
        &["--data-binary".into(), format!("@{}", shadow.display())],
    );
    assert_error(&resp, 400, "invalid_argument", "?name=");
    assert_eq!(image_count(&d), before, "no image subvolume was left");
    let (_, list) = d.http(Via::Tcp, "GET", "/v1/images", Some(&alice), None);
    assert_eq!(list.as_array().unwrap().len(), 1, "only base: {list}");
    assert!(uploads_left(&d).is_empty(), "{:?}", uploads_left(&d));
    assert_healthy(&d);
}
