//! E2B's SDKs against a real cairnd (issue 19): `tests/e2b/test_python.py` drives it with the
//! unmodified `e2b` Python SDK that scripts/setup.sh installs, pinned, in /opt/cairn-venv, and
//! `tests/e2b/js/test_js.mjs` with the JS SDK it installs in /opt/cairn-e2b-js.

#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::process::Command;

use cairn_test_support::Daemon;

/// The virtual environment scripts/setup.sh makes, with the pinned e2b SDK.
const PYTHON: &str = "/opt/cairn-venv/bin/python";

/// The JS SDK's packages, installed from tests/e2b/js/package-lock.json.
const JS_MODULES: &str = "/opt/cairn-e2b-js/node_modules";

/// A cairnd with a TCP listener and the public `base` image, and the environment that points
/// an E2B SDK at it with account `alice`'s key (and `bob`'s as CAIRN_OTHER_KEY).
fn daemon_and_env() -> (Daemon, Vec<(String, String)>) {
    let d = Daemon::tcp_with_base(
        env!("CARGO_BIN_EXE_cairnd"),
        env!("CARGO_BIN_EXE_cairn"),
        &[],
    );
    // A Debian minbase, whose bash `commands.run` uses (busybox's `base` has only sh).
    let debian = cairn_test_support::debian_rootfs(Path::new(env!("CARGO_TARGET_TMPDIR")));
    d.cairn(&[
        "image",
        "import",
        debian.to_str().unwrap(),
        "--name",
        "debian",
        "--public",
    ])
    .ok();
    let addr = d.tcp.clone().unwrap();
    let env = vec![
        ("E2B_API_URL".to_string(), format!("http://{addr}/e2b")),
        (
            "E2B_SANDBOX_URL".to_string(),
            format!("http://{addr}/e2b/envd"),
        ),
        ("E2B_API_KEY".to_string(), d.token("alice")),
        ("CAIRN_OTHER_KEY".to_string(), d.token("bob")),
    ];
    (d, env)
}

/// Runs `cmd` with `env`; panics with its output unless it succeeds and says "all passed".
fn run_sdk(mut cmd: Command, env: &[(String, String)], what: &str) {
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd
        .env_remove("E2B_DOMAIN")
        .env_remove("E2B_DEBUG")
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success(),
        "the e2b {what} SDK's run failed:\n{text}"
    );
    assert!(text.contains("all passed"), "{text}");
}

#[test]
fn the_e2b_python_sdk_drives_cairn() {
    let ok = Command::new(PYTHON)
        .args(["-c", "import e2b"])
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        ok,
        "the e2b Python SDK is not installed in {PYTHON}: run scripts/setup.sh (it installs e2b==2.63.0 there)"
    );
    let (_d, env) = daemon_and_env();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/e2b/test_python.py");
    let mut cmd = Command::new(PYTHON);
    cmd.arg(&script);
    run_sdk(cmd, &env, "Python");
}

#[test]
fn the_e2b_js_sdk_drives_cairn() {
    assert!(
        Path::new(JS_MODULES).join("e2b").is_dir(),
        "the e2b JS SDK is not installed in {JS_MODULES}: run scripts/setup.sh (it installs e2b@2.51.0 there with npm)"
    );
    let (d, env) = daemon_and_env();
    // Node finds the SDK from the script's own directory: a copy beside a link to it.
    let dir = d.scratch().join("js");
    std::fs::create_dir_all(&dir).unwrap();
    std::os::unix::fs::symlink(JS_MODULES, dir.join("node_modules")).unwrap();
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/e2b/js");
    for f in ["test_js.mjs", "package.json"] {
        std::fs::copy(src.join(f), dir.join(f)).unwrap();
    }
    let mut cmd = Command::new("node");
    cmd.arg(dir.join("test_js.mjs"));
    run_sdk(cmd, &env, "JS");
}
