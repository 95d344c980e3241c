//! Cairn's own Python SDK (sdk/python) against a real cairnd, on both runtimes: the seeds'
//! programmatic workflows in `sdk/python/tests/*.py` (checkpoint before a risky step and
//! restore, five forks compared with asyncio.gather, the iterative agent loop with save
//! points, typed errors), run with the Python of /opt/cairn-venv on the SDK's source; and
//! the check that the generated client under it is what the committed docs/openapi.json
//! generates today, and that the document passes a real OpenAPI validator.

#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::Command;

use cairn_test_support::{output_text, tail, Daemon};

/// The virtual environment scripts/setup.sh makes, with the SDK's pinned dependencies and
/// generator (scripts/sdk-requirements.txt).
const VENV: &str = "/opt/cairn-venv/bin";

/// The snapshot limit per sandbox the daemon gets, which the typed-error test reaches.
const SNAPSHOT_LIMIT: &str = "8";

fn sdk_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../sdk/python")
}

/// Fails, saying how to install them, unless the SDK's dependencies are in the venv.
fn require_python_deps() {
    let ok = Command::new(format!("{VENV}/python"))
        .args(["-c", "import httpx, attrs, dateutil"])
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        ok,
        "the Python SDK's dependencies are not in {VENV}: run scripts/setup.sh (it installs scripts/sdk-requirements.txt there)"
    );
}

/// Runs one of the SDK's test scripts against a cairnd with a TCP listener, as account
/// `alice`, on runtime `rt`; panics with its output unless it says "all passed".
fn run_script(script: &str, rt: &str) {
    require_python_deps();
    let d = Daemon::tcp_with_base(
        env!("CARGO_BIN_EXE_cairnd"),
        env!("CARGO_BIN_EXE_cairn"),
        &["--max-snapshots-per-sandbox", SNAPSHOT_LIMIT],
    );
    let dir = sdk_dir();
    let out = Command::new(format!("{VENV}/python"))
        .arg(dir.join("tests").join(script))
        .env("PYTHONPATH", dir.join("src"))
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .envs(d.sdk_env("alice", rt))
        .env("CAIRN_SNAPSHOT_LIMIT", SNAPSHOT_LIMIT)
        .env_remove("CAIRN_HOME")
        .output()
        .unwrap();
    let text = output_text(&out);
    assert!(
        out.status.success() && text.contains("all passed"),
        "sdk/python/tests/{script} failed on {rt}:\n{text}"
    );
}

cairn_test_support::both_runtimes!(python_sdk_workflows, python_sdk_asyncio_forks,);

fn python_sdk_workflows(rt: &str) {
    run_script("test_workflows.py", rt);
}

fn python_sdk_asyncio_forks(rt: &str) {
    run_script("test_async.py", rt);
}

#[test]
fn the_generated_python_client_matches_the_committed_document() {
    let generator = format!("{VENV}/openapi-python-client");
    assert!(
        Path::new(&generator).exists(),
        "{generator} is missing: run scripts/setup.sh (it installs the pinned openapi-python-client from scripts/sdk-requirements.txt)"
    );
    let dir = sdk_dir();
    let tmp = tempfile::tempdir().unwrap();
    let fresh = tmp.path().join("_api");
    let out = Command::new("bash")
        .arg(dir.join("generate.sh"))
        .arg(&fresh)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "sdk/python/generate.sh failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let diff = Command::new("diff")
        .args(["-r", "-u", "-x", "__pycache__"])
        .arg(dir.join("src/cairn/_api"))
        .arg(&fresh)
        .output()
        .unwrap();
    assert!(
        diff.status.success(),
        "sdk/python/src/cairn/_api is not what docs/openapi.json generates: run sdk/python/generate.sh and commit the result\n{}",
        tail(&String::from_utf8_lossy(&diff.stdout), 60)
    );
}

#[test]
fn the_committed_api_document_is_valid_openapi() {
    let validator = format!("{VENV}/openapi-spec-validator");
    assert!(
        Path::new(&validator).exists(),
        "{validator} is missing: run scripts/setup.sh (it installs the pinned openapi-spec-validator from scripts/sdk-requirements.txt)"
    );
    let doc = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/openapi.json");
    let out = Command::new(&validator).arg(&doc).output().unwrap();
    assert!(
        out.status.success(),
        "docs/openapi.json is not a valid OpenAPI document:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn pip_installs_the_sdk_from_the_repository() {
    require_python_deps();
    let tmp = tempfile::tempdir().unwrap();
    let target = tmp.path().join("site");
    // A copy, so that the build leaves nothing in the repository.
    let src = tmp.path().join("python");
    let cp = Command::new("cp")
        .args(["-r", "--no-preserve=mode"])
        .arg(sdk_dir())
        .arg(&src)
        .status()
        .unwrap();
    assert!(cp.success());
    let out = Command::new(format!("{VENV}/pip"))
        .args([
            "install",
            "-q",
            "--disable-pip-version-check",
            "--no-deps",
            "--target",
        ])
        .arg(&target)
        .arg(&src)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "pip install sdk/python failed (its build needs setuptools from PyPI):\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let check = Command::new(format!("{VENV}/python"))
        .args([
            "-c",
            "import cairn, cairn._api.api.snapshots.fork_snapshot, sys; assert cairn.__file__.startswith(sys.argv[1]), cairn.__file__; print(cairn.Sandbox.create.__doc__ is not None)",
        ])
        .arg(&target)
        .current_dir(tmp.path())
        .env("PYTHONPATH", &target)
        .output()
        .unwrap();
    assert!(
        check.status.success() && String::from_utf8_lossy(&check.stdout).trim() == "True",
        "the installed SDK does not import: {}{}",
        String::from_utf8_lossy(&check.stdout),
        String::from_utf8_lossy(&check.stderr)
    );
}
