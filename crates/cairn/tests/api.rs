//! The HTTP API as a client sees it: authentication, account isolation,
//! JSON errors for every kind of bad input (never a 500), and the OpenAPI
//! document. Requests are made with curl, over TCP and over the unix socket.

#![allow(clippy::unwrap_used)]

use std::process::Command;

use cairn_test_support::{assert_error, Daemon, Via};

#[test]
fn tokens_are_required_over_tcp_and_accounts_are_isolated() {
    let d = Daemon::start_with(
        env!("CARGO_BIN_EXE_cairnd"),
        env!("CARGO_BIN_EXE_cairn"),
        true,
    );
    d.import_base();
    assert_error(
        &d.http(Via::Tcp, "GET", "/v1/sandboxes", None, None),
        401,
        "unauthenticated",
        "token create",
    );
    assert_error(
        &d.http(Via::Tcp, "GET", "/v1/sandboxes", Some("ck_bogus"), None),
        401,
        "unauthenticated",
        "unknown token",
    );
    let alice = d.token("alice");
    let bob = d.token("bob");
    assert!(alice.starts_with("ck_"));
    let stored = std::fs::read(d.home.join("cairn.db")).unwrap();
    assert!(
        !String::from_utf8_lossy(&stored).contains(&alice),
        "the token itself must not be stored"
    );
    let (code, sbx) = d.http(
        Via::Tcp,
        "POST",
        "/v1/sandboxes",
        Some(&alice),
        Some(r#"{"image":"base","runtime":"runc","name":"mine"}"#),
    );
    assert_eq!(code, 201, "{sbx}");
    let id = sbx["id"].as_str().unwrap();
    let (code, list) = d.http(Via::Tcp, "GET", "/v1/sandboxes", Some(&alice), None);
    assert_eq!((code, list.as_array().unwrap().len()), (200, 1));
    let (code, list) = d.http(Via::Tcp, "GET", "/v1/sandboxes", Some(&bob), None);
    assert_eq!((code, list), (200, serde_json::json!([])));
    assert_error(
        &d.http(
            Via::Tcp,
            "GET",
            &format!("/v1/sandboxes/{id}"),
            Some(&bob),
            None,
        ),
        404,
        "not_found",
        "no sandbox",
    );
    assert_error(
        &d.http(Via::Tcp, "GET", "/v1/sandboxes/mine", Some(&bob), None),
        404,
        "not_found",
        "no sandbox",
    );
    assert_error(
        &d.http(
            Via::Tcp,
            "DELETE",
            &format!("/v1/sandboxes/{id}?force=true"),
            Some(&bob),
            None,
        ),
        404,
        "not_found",
        "no sandbox",
    );
    assert_error(
        &d.http(
            Via::Tcp,
            "POST",
            &format!("/v1/sandboxes/{id}/exec"),
            Some(&bob),
            Some(r#"{"cmd":["true"]}"#),
        ),
        404,
        "not_found",
        "no sandbox",
    );
    // The unix socket's local account does not see alice's sandbox either.
    assert_eq!(
        d.http(Via::Unix, "GET", "/v1/sandboxes", None, None).1,
        serde_json::json!([])
    );
    // The CLI works over TCP with a token.
    let addr = format!("http://{}", d.tcp.as_ref().unwrap());
    let r = d.cairn_env(
        &["ls", "--json"],
        &[("CAIRN_HOST", &addr), ("CAIRN_TOKEN", &alice)],
    );
    assert_eq!(r.json()[0]["id"], id);
    let r = d.cairn_env(
        &["exec", id, "echo over-tcp"],
        &[("CAIRN_HOST", &addr), ("CAIRN_TOKEN", &alice)],
    );
    assert_eq!(r.ok(), "over-tcp");
    let r = d.cairn_env(&["ls"], &[("CAIRN_HOST", &addr)]);
    assert_eq!(r.code, 1);
    assert!(r.stderr.contains("token"), "{r:?}");
    let (code, _) = d.http(
        Via::Tcp,
        "DELETE",
        &format!("/v1/sandboxes/{id}?force=true"),
        Some(&alice),
        None,
    );
    assert_eq!(code, 204);
}

#[test]
fn bad_input_gets_a_4xx_json_error_that_says_what_to_do() {
    let d = Daemon::start(env!("CARGO_BIN_EXE_cairnd"), env!("CARGO_BIN_EXE_cairn"));
    d.import_base();
    assert_error(
        &d.http(Via::Unix, "GET", "/v1/sandboxes/sbx-00000000", None, None),
        404,
        "not_found",
        "cairn ls",
    );
    assert_error(
        &d.http(Via::Unix, "GET", "/v1/nothing-here", None, None),
        404,
        "not_found",
        "openapi",
    );
    assert_error(
        &d.http(Via::Unix, "POST", "/v1/sandboxes", None, Some("{not json")),
        400,
        "invalid_argument",
        "invalid request body",
    );
    assert_error(
        &d.http(
            Via::Unix,
            "POST",
            "/v1/sandboxes",
            None,
            Some(r#"{"image":"base","colour":"red"}"#),
        ),
        400,
        "invalid_argument",
        "colour",
    );
    assert_error(
        &d.http(
            Via::Unix,
            "POST",
            "/v1/sandboxes",
            None,
            Some(r#"{"image":"nope"}"#),
        ),
        404,
        "not_found",
        "cairn image",
    );
    assert_error(
        &d.http(
            Via::Unix,
            "POST",
            "/v1/sandboxes",
            None,
            Some(r#"{"image":"base","memory":"lots"}"#),
        ),
        400,
        "invalid_argument",
        "512M",
    );
    assert_error(
        &d.http(
            Via::Unix,
            "POST",
            "/v1/sandboxes",
            None,
            Some(r#"{"image":"base","name":"bad name!"}"#),
        ),
        400,
        "invalid_argument",
        "invalid name",
    );
    assert_error(
        &d.http(
            Via::Unix,
            "POST",
            "/v1/sandboxes",
            None,
            Some(r#"{"image":"base","runtime":"docker"}"#),
        ),
        400,
        "invalid_argument",
        "runtime",
    );
    assert_error(
        &d.http(
            Via::Unix,
            "POST",
            "/v1/sandboxes",
            None,
            Some(r#"{"image":"base","cpus":-1}"#),
        ),
        400,
        "invalid_argument",
        "cpus",
    );
    assert_error(
        &d.http(
            Via::Unix,
            "POST",
            "/v1/sandboxes",
            None,
            Some(r#"{"image":"base","env":["NOVALUE"]}"#),
        ),
        400,
        "invalid_argument",
        "KEY=VALUE",
    );
    assert_error(
        &d.http(
            Via::Unix,
            "POST",
            "/v1/sandboxes",
            None,
            Some(r#"{"image":"base","workdir":"relative"}"#),
        ),
        400,
        "invalid_argument",
        "absolute",
    );
    assert_error(
        &d.http(Via::Unix, "DELETE", "/v1/sandboxes", None, None),
        405,
        "method_not_allowed",
        "openapi",
    );
    assert_error(
        &d.http(
            Via::Unix,
            "POST",
            "/v1/images",
            None,
            Some(r#"{"name":"x","path":"/does/not/exist"}"#),
        ),
        400,
        "invalid_argument",
        "does not exist",
    );
    assert_error(
        &d.http(
            Via::Unix,
            "POST",
            "/v1/images",
            None,
            Some(r#"{"name":"base","path":"/tmp"}"#),
        ),
        409,
        "conflict",
        "already have an image named 'base'",
    );
    // Names clash within an account; exec on a bad request is refused before anything runs.
    let (code, sbx) = d.http(
        Via::Unix,
        "POST",
        "/v1/sandboxes",
        None,
        Some(r#"{"image":"base","runtime":"runc","name":"one"}"#),
    );
    assert_eq!(code, 201, "{sbx}");
    assert_error(
        &d.http(
            Via::Unix,
            "POST",
            "/v1/sandboxes",
            None,
            Some(r#"{"image":"base","runtime":"runc","name":"one"}"#),
        ),
        409,
        "conflict",
        "already exists",
    );
    assert_error(
        &d.http(
            Via::Unix,
            "POST",
            "/v1/sandboxes/one/exec",
            None,
            Some(r#"{"cmd":[]}"#),
        ),
        400,
        "invalid_argument",
        "no command",
    );
    assert_error(
        &d.http(Via::Unix, "DELETE", "/v1/sandboxes/one", None, None),
        409,
        "conflict",
        "--force",
    );
    assert_error(
        &d.http(Via::Unix, "DELETE", "/v1/images/base", None, None),
        409,
        "conflict",
        "destroy or delete them first",
    );
    // The CLI reports the same errors in one line with a non-zero exit.
    let r = d.cairn(&["up", "--image", "base", "--memory", "lots"]);
    assert_eq!(r.code, 1);
    assert_eq!(r.stderr.lines().count(), 1, "{r:?}");
    assert!(r.stderr.contains("512M"), "{r:?}");
    let r = d.cairn(&["exec", "sbx-00000000", "true"]);
    assert_eq!(r.code, 125, "{r:?}");
    // Nothing above left a sandbox behind besides 'one'.
    let (_, list) = d.http(Via::Unix, "GET", "/v1/sandboxes", None, None);
    assert_eq!(list.as_array().unwrap().len(), 1);
    assert_eq!(
        std::fs::read_dir(d.home.join("pool/sandboxes"))
            .unwrap()
            .count(),
        1
    );
}

#[test]
fn openapi_document_describes_the_paths() {
    let d = Daemon::start(env!("CARGO_BIN_EXE_cairnd"), env!("CARGO_BIN_EXE_cairn"));
    let (code, doc) = d.http(Via::Unix, "GET", "/v1/openapi.json", None, None);
    assert_eq!(code, 200);
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    for p in [
        "/v1/sandboxes",
        "/v1/sandboxes/{id}",
        "/v1/sandboxes/{id}/exec",
        "/v1/images",
    ] {
        assert!(doc["paths"][p].is_object(), "{p} missing");
    }
    assert!(doc["components"]["schemas"]["ErrorBody"].is_object());
    let committed = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/openapi.json");
    let committed: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(committed).unwrap()).unwrap();
    assert!(
        doc == committed,
        "cairnd serves another document than docs/openapi.json: regenerate it with 'cargo run -q -p cairn-api --example openapi > docs/openapi.json'"
    );
}

#[test]
fn images_import_list_and_remove() {
    let d = Daemon::start(env!("CARGO_BIN_EXE_cairnd"), env!("CARGO_BIN_EXE_cairn"));
    d.import_base();
    let list = d.cairn(&["image", "ls", "--json"]).json();
    assert_eq!(list[0]["name"], "base");
    assert!(list[0]["size_bytes"].as_u64().unwrap() > 500_000);
    let table = d.cairn(&["image", "ls"]).ok();
    assert!(table.contains("NAME") && table.contains("base"));
    let r = d.cairn(&["image", "import", "/definitely/missing", "--name", "x"]);
    assert_eq!(r.code, 1);
    assert!(r.stderr.contains("/definitely/missing"), "{r:?}");
    d.cairn(&["image", "rm", "base"]).ok();
    assert_eq!(
        d.cairn(&["image", "ls", "--json"]).json(),
        serde_json::json!([])
    );
    assert_eq!(
        std::fs::read_dir(d.home.join("pool/images"))
            .unwrap()
            .count(),
        0
    );
}

/// Writes an OCI image layout tarball with two gzip layers (the second
/// deletes a file of the first with a whiteout and adds one) and an image
/// config with Env and WorkingDir.
fn make_oci_archive(root: &std::path::Path, out: &std::path::Path) {
    let script = r#"set -euo pipefail
ROOT=$1; OUT=$2; W=$(mktemp -d); L=$W/layout; mkdir -p $L/blobs/sha256 $W/l2/etc
blob() { local d; d=$(sha256sum "$1" | cut -d' ' -f1); cp "$1" $L/blobs/sha256/$d; echo $d; }
size() { stat -c %s "$1"; }
tar -C "$ROOT" -cf $W/l1.tar . ; D1=$(sha256sum $W/l1.tar | cut -d' ' -f1); gzip -n $W/l1.tar
echo from-layer-two > $W/l2/etc/layer2; touch $W/l2/etc/.wh.cairn-image
tar -C $W/l2 -cf $W/l2.tar . ; D2=$(sha256sum $W/l2.tar | cut -d' ' -f1); gzip -n $W/l2.tar
B1=$(blob $W/l1.tar.gz); B2=$(blob $W/l2.tar.gz)
printf '{"architecture":"amd64","os":"linux","config":{"Env":["PATH=/usr/bin:/bin","FROM_IMAGE=yes"],"WorkingDir":"/root"},"rootfs":{"type":"layers","diff_ids":["sha256:%s","sha256:%s"]}}' $D1 $D2 > $W/config.json
C=$(blob $W/config.json)
printf '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:%s","size":%s},"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"sha256:%s","size":%s},{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"sha256:%s","size":%s}]}' $C $(size $W/config.json) $B1 $(size $W/l1.tar.gz) $B2 $(size $W/l2.tar.gz) > $W/manifest.json
M=$(blob $W/manifest.json)
printf '{"schemaVersion":2,"manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:%s","size":%s,"platform":{"architecture":"amd64","os":"linux"}}]}' $M $(size $W/manifest.json) > $L/index.json
echo '{"imageLayoutVersion":"1.0.0"}' > $L/oci-layout
tar -C $L -cf "$OUT" .
rm -rf $W
"#;
    let st = Command::new("bash")
        .arg("-c")
        .arg(script)
        .arg("bash")
        .arg(root)
        .arg(out)
        .status()
        .unwrap();
    assert!(st.success(), "building the OCI archive failed");
}

#[test]
fn oci_image_archives_import_with_layers_whiteouts_and_config() {
    let d = Daemon::start(env!("CARGO_BIN_EXE_cairnd"), env!("CARGO_BIN_EXE_cairn"));
    // Archives lie outside the data directory: nothing inside it may be imported.
    let work = tempfile::tempdir().unwrap();
    let archive = work.path().join("image-oci.tar");
    make_oci_archive(cairn_test_support::base_rootfs(), &archive);
    d.cairn(&[
        "image",
        "import",
        archive.to_str().unwrap(),
        "--name",
        "layered",
    ])
    .ok();
    for rt in ["runc", "gvisor"] {
        let id = d.cairn(&["up", "--image", "layered", "--runtime", rt]).ok();
        let r = d.cairn(&[
            "exec",
            &id,
            "cat /etc/layer2; test -e /etc/cairn-image || echo whited-out; echo $FROM_IMAGE; pwd",
        ]);
        assert_eq!(
            r.stdout, "from-layer-two\nwhited-out\nyes\n/root\n",
            "{rt}: {r:?}"
        );
        d.cairn(&["destroy", "--force", &id]).ok();
    }
    // A corrupted archive is refused and leaves no image behind.
    let mut bytes = std::fs::read(&archive).unwrap();
    let n = bytes.len();
    bytes.truncate(n / 2);
    let bad = work.path().join("bad.tar");
    std::fs::write(&bad, bytes).unwrap();
    let r = d.cairn(&["image", "import", bad.to_str().unwrap(), "--name", "broken"]);
    assert_eq!(r.code, 1, "{r:?}");
    assert_eq!(
        d.cairn(&["image", "ls", "--json"])
            .json()
            .as_array()
            .unwrap()
            .len(),
        1
    );
    assert_eq!(
        std::fs::read_dir(d.home.join("pool/images"))
            .unwrap()
            .count(),
        1
    );
}

/// `Accept: application/x-ndjson` on an image import: `unpack` reports (the stored bytes of
/// the layers applied, of their total), the last one the whole, then the image; for a host
/// path (the operator) and for an upload (answered once the upload is read whole).
#[test]
fn an_image_import_streams_its_unpacking_when_asked() {
    let d = Daemon::start(env!("CARGO_BIN_EXE_cairnd"), env!("CARGO_BIN_EXE_cairn"));
    let work = tempfile::tempdir().unwrap();
    let archive = work.path().join("image-oci.tar");
    make_oci_archive(cairn_test_support::base_rootfs(), &archive);
    let check = |lines: &[serde_json::Value], name: &str| {
        let (last, reports) = lines.split_last().unwrap();
        assert_eq!(
            (&last["type"], &last["status"]),
            (&"result".into(), &201.into()),
            "{last}"
        );
        assert_eq!(last["body"]["name"], name, "{last}");
        assert!(!reports.is_empty(), "{lines:?}");
        for r in reports {
            assert_eq!(
                (&r["phase"], &r["unit"]),
                (&"unpack".into(), &"bytes".into()),
                "{r}"
            );
            assert!(r["done"].as_u64() <= r["total"].as_u64(), "{r}");
        }
        let whole = reports.last().unwrap();
        assert_eq!(whole["done"], whole["total"], "{lines:?}");
    };
    let body = format!(r#"{{"name": "by-path", "path": "{}"}}"#, archive.display());
    let (code, lines) = d.ndjson(Via::Unix, "POST", "/v1/images", None, &body);
    assert_eq!(code, 200, "{lines:?}");
    check(&lines, "by-path");
    let (code, answer) = d.curl(
        Via::Unix,
        "/v1/images?name=uploaded",
        None,
        &[
            "-H".into(),
            "Accept: application/x-ndjson".into(),
            "-H".into(),
            "Content-Type: application/x-tar".into(),
            "--data-binary".into(),
            format!("@{}", archive.display()),
        ],
    );
    assert_eq!(code, 200, "{answer}");
    let text = answer.as_str().unwrap_or_default().to_string();
    let lines: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    check(&lines, "uploaded");
    // Refused: one error line with the ordinary answer's status.
    let (code, lines) = d.ndjson(Via::Unix, "POST", "/v1/images", None, &body);
    assert_eq!((code, lines.len()), (200, 1), "{lines:?}");
    assert_eq!(lines[0]["status"], 409, "{lines:?}");
}

#[test]
fn doctor_reports_runtimes_and_what_they_enable() {
    let d = Daemon::start(env!("CARGO_BIN_EXE_cairnd"), env!("CARGO_BIN_EXE_cairn"));
    let checks = d.cairn(&["doctor", "--json"]).json();
    let get = |name: &str| {
        checks
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["name"] == name)
            .unwrap()
            .clone()
    };
    for name in [
        "runsc",
        "runc",
        "criu",
        "btrfs-progs",
        "nft",
        "ip",
        "nsenter",
        "disk limits",
    ] {
        assert_eq!(get(name)["ok"], true, "{checks}");
        assert!(get(name)["version"].is_string());
    }
    // scripts/setup.sh installs CRIU >= 4.1 (scripts/install-criu.sh).
    assert!(get("criu")["note"].as_str().unwrap().contains("4.1"));
    assert!(get("nft")["note"]
        .as_str()
        .unwrap()
        .contains("--network nat"));
    let table = d.cairn(&["doctor"]).ok();
    assert!(
        table.contains("COMPONENT") && table.contains("kernel"),
        "{table}"
    );
}
