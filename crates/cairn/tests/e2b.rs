//! E2B's SDKs against a real cairnd (issue 19): `tests/e2b/test_python.py` drives it with the
//! unmodified `e2b` Python SDK that scripts/setup.sh installs, pinned, in /opt/cairn-venv.

#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::process::Command;

use cairn_test_support::Daemon;

/// The virtual environment scripts/setup.sh makes, with the pinned e2b SDK.
const PYTHON: &str = "/opt/cairn-venv/bin/python";

#[test]
fn the_e2b_python_sdk_creates_runs_reads_writes_and_kills() {
    let ok = Command::new(PYTHON)
        .args(["-c", "import e2b"])
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        ok,
        "the e2b Python SDK is not installed in {PYTHON}: run scripts/setup.sh (it installs e2b==2.63.0 there)"
    );
    let d = Daemon::start_opts(
        env!("CARGO_BIN_EXE_cairnd"),
        env!("CARGO_BIN_EXE_cairn"),
        true,
        &[],
    );
    d.import_base();
    let key = d.token("alice");
    let other = d.token("bob");
    let addr = d.tcp.clone().unwrap();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/e2b/test_python.py");
    let out = Command::new(PYTHON)
        .arg(&script)
        .env("E2B_API_URL", format!("http://{addr}/e2b"))
        .env("E2B_SANDBOX_URL", format!("http://{addr}/e2b/envd"))
        .env("E2B_API_KEY", &key)
        .env("CAIRN_OTHER_KEY", &other)
        .env_remove("E2B_DOMAIN")
        .env_remove("E2B_DEBUG")
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "the e2b SDK's run failed:\n{text}");
    assert!(text.contains("all passed"), "{text}");
}
