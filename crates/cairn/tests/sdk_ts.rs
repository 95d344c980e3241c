//! Cairn's own TypeScript SDK (sdk/typescript) against a real cairnd, on both runtimes: the
//! seeds' programmatic workflows in `sdk/typescript/test/*.test.mjs` (checkpoint before a
//! risky step and restore, five forks compared with Promise.all, the iterative agent loop
//! with save points, typed errors), run by node's test runner on the SDK's committed
//! JavaScript with the pinned packages of /opt/cairn-sdk-ts; the checks that the generated
//! types are what the committed docs/openapi.json generates today and that the committed
//! JavaScript is what tsc builds from the source; and `npm install ./sdk/typescript`.

#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use cairn_test_support::{output_text, tail, Daemon};

/// Where scripts/setup.sh installs the SDK's pinned packages (sdk/typescript/package-lock.json).
const MODULES: &str = "/opt/cairn-sdk-ts/node_modules";

/// The snapshot limit per sandbox the daemon gets, which the typed-error test reaches.
const SNAPSHOT_LIMIT: &str = "8";

fn sdk_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../sdk/typescript")
}

/// Fails, saying how to install them, unless node and the SDK's packages are there.
fn require_node_deps() {
    let node = Command::new("node")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success() && o.stdout.starts_with(b"v2"));
    assert!(
        node,
        "node >= 20 is needed for the TypeScript SDK's tests: install it (apt-get install nodejs npm, or NodeSource's node 20)"
    );
    for bin in ["tsc", "openapi-typescript"] {
        assert!(
            Path::new(MODULES).join(".bin").join(bin).exists(),
            "{MODULES}/.bin/{bin} is missing: run scripts/setup.sh (it installs sdk/typescript/package-lock.json there with npm ci)"
        );
    }
}

/// A copy of the SDK (its sources, built JavaScript and tests) in a temporary directory, with
/// the pinned packages of /opt/cairn-sdk-ts as its node_modules: nothing is written into the
/// repository.
fn staged() -> (tempfile::TempDir, PathBuf) {
    require_node_deps();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("typescript");
    std::fs::create_dir(&dir).unwrap();
    let src = sdk_dir();
    for entry in [
        "package.json",
        "package-lock.json",
        "tsconfig.json",
        "generate.sh",
        "src",
        "dist",
        "test",
        "examples",
    ] {
        let ok = Command::new("cp")
            .args(["-r", "--no-preserve=mode"])
            .arg(src.join(entry))
            .arg(&dir)
            .status()
            .unwrap();
        assert!(ok.success(), "cannot copy sdk/typescript/{entry}");
    }
    std::os::unix::fs::symlink(MODULES, dir.join("node_modules")).unwrap();
    (tmp, dir)
}

/// Runs one of the SDK's test files with node's test runner against a cairnd with a TCP
/// listener, as account `alice`, on runtime `rt`; panics with its output unless all pass.
fn run_tests(file: &str, rt: &str) {
    let (_tmp, dir) = staged();
    let d = Daemon::tcp_with_base(
        env!("CARGO_BIN_EXE_cairnd"),
        env!("CARGO_BIN_EXE_cairn"),
        &["--max-snapshots-per-sandbox", SNAPSHOT_LIMIT],
    );
    let out = Command::new("node")
        .args(["--test", "--test-reporter=spec"])
        .arg(Path::new("test").join(file))
        .current_dir(&dir)
        .envs(d.sdk_env("alice", rt))
        .env("CAIRN_SNAPSHOT_LIMIT", SNAPSHOT_LIMIT)
        .env("NO_COLOR", "1")
        .env_remove("CAIRN_HOME")
        .output()
        .unwrap();
    let text = output_text(&out);
    assert!(
        out.status.success() && text.contains("fail 0"),
        "sdk/typescript/test/{file} failed on {rt}:\n{text}"
    );
}

cairn_test_support::both_runtimes!(typescript_sdk_workflows, typescript_sdk_promise_all_forks,);

fn typescript_sdk_workflows(rt: &str) {
    run_tests("workflows.test.mjs", rt);
}

fn typescript_sdk_promise_all_forks(rt: &str) {
    run_tests("forks.test.mjs", rt);
}

#[test]
fn the_typescript_quickstart_example_runs() {
    let (_tmp, dir) = staged();
    let out = Command::new(dir.join("node_modules/.bin/tsc"))
        .args(["-p", "examples"])
        .current_dir(&dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "tsc does not build sdk/typescript/examples:\n{}",
        output_text(&out)
    );
    let d = Daemon::tcp_with_base(
        env!("CARGO_BIN_EXE_cairnd"),
        env!("CARGO_BIN_EXE_cairn"),
        &[],
    );
    let out = Command::new("node")
        .arg("examples/out/quickstart.js")
        .current_dir(&dir)
        .env("CAIRN_HOST", format!("http://{}", d.tcp.clone().unwrap()))
        .env("CAIRN_TOKEN", d.token("alice"))
        .env_remove("CAIRN_HOME")
        .output()
        .unwrap();
    let text = output_text(&out);
    assert!(
        out.status.success()
            && text.contains("risky step exited with 3")
            && text.contains("after restore: step 1")
            && text.matches(" step 1\n").count() == 6,
        "sdk/typescript/examples/quickstart.ts did not do what it says:\n{text}"
    );
    // Every sandbox the quickstart made was destroyed by `await using`.
    let left = Command::new(env!("CARGO_BIN_EXE_cairn"))
        .args(["ls", "--json"])
        .env("CAIRN_HOST", format!("http://{}", d.tcp.clone().unwrap()))
        .env("CAIRN_TOKEN", d.token("alice"))
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&left.stdout).trim(),
        "[]",
        "sandboxes outlived the example's `await using`: {}",
        String::from_utf8_lossy(&left.stderr)
    );
    // The README's TypeScript example too, on the same cairnd.
    let readme =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../../README.md"))
            .unwrap();
    let after = readme
        .split_once("From TypeScript")
        .expect("README.md has no 'From TypeScript' example")
        .1;
    let block = after
        .split_once("```ts\n")
        .unwrap()
        .1
        .split_once("```")
        .unwrap()
        .0;
    let code = block.replace(
        r#"new Cairn({ host: "http://127.0.0.1:7421", token: "ck_…" })"#,
        "new Cairn()",
    );
    assert_ne!(
        code, block,
        "the README's TypeScript example no longer makes its Cairn the way this test expects"
    );
    std::fs::write(dir.join("examples/readme.ts"), code).unwrap();
    let built = Command::new(dir.join("node_modules/.bin/tsc"))
        .args(["-p", "examples"])
        .current_dir(&dir)
        .output()
        .unwrap();
    assert!(
        built.status.success(),
        "tsc does not build the README's TypeScript example:\n{}",
        output_text(&built)
    );
    let ran = Command::new("node")
        .arg("examples/out/readme.js")
        .current_dir(&dir)
        .env("CAIRN_HOST", format!("http://{}", d.tcp.clone().unwrap()))
        .env("CAIRN_TOKEN", d.token("alice"))
        .env_remove("CAIRN_HOME")
        .output()
        .unwrap();
    let ran_text = output_text(&ran);
    assert!(
        ran.status.success()
            && ran_text.starts_with("3\n")
            && ran_text.matches(" step 1\n").count() == 5,
        "the README's TypeScript example did not do what it says:\n{ran_text}"
    );
}

#[test]
fn the_typescript_sdk_offline_tests_pass() {
    let (_tmp, dir) = staged();
    let doc = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/openapi.json");
    let out = Command::new("node")
        .args(["--test", "--test-reporter=spec", "test/offline.test.mjs"])
        .current_dir(&dir)
        .env("CAIRN_OPENAPI", doc)
        .env("NO_COLOR", "1")
        .output()
        .unwrap();
    let text = output_text(&out);
    assert!(
        out.status.success() && text.contains("fail 0"),
        "sdk/typescript/test/offline.test.mjs failed:\n{text}"
    );
}

#[test]
fn the_generated_typescript_types_match_the_committed_document() {
    let (tmp, dir) = staged();
    let fresh = tmp.path().join("schema.ts");
    let doc = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/openapi.json");
    let out = Command::new("bash")
        .arg(dir.join("generate.sh"))
        .arg(&fresh)
        .env("CAIRN_OPENAPI", doc)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "sdk/typescript/generate.sh failed:\n{}",
        output_text(&out)
    );
    let diff = Command::new("diff")
        .arg("-u")
        .arg(sdk_dir().join("src/schema.ts"))
        .arg(&fresh)
        .output()
        .unwrap();
    assert!(
        diff.status.success(),
        "sdk/typescript/src/schema.ts is not what docs/openapi.json generates: run sdk/typescript/generate.sh, then (cd sdk/typescript && npx tsc), and commit the result\n{}",
        tail(&String::from_utf8_lossy(&diff.stdout), 60)
    );
}

#[test]
fn the_committed_javascript_is_what_tsc_builds() {
    let (tmp, dir) = staged();
    let fresh = tmp.path().join("dist");
    let out = Command::new(dir.join("node_modules/.bin/tsc"))
        .args(["-p", "."])
        .arg("--outDir")
        .arg(&fresh)
        .current_dir(&dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "tsc does not build sdk/typescript:\n{}",
        output_text(&out)
    );
    let diff = Command::new("diff")
        .arg("-r")
        .arg("-u")
        .arg(sdk_dir().join("dist"))
        .arg(&fresh)
        .output()
        .unwrap();
    assert!(
        diff.status.success(),
        "sdk/typescript/dist is not what tsc builds from sdk/typescript/src: run (cd sdk/typescript && npx tsc) and commit dist/\n{}",
        tail(&String::from_utf8_lossy(&diff.stdout), 60)
    );
}

/// What `node` prints importing the SDK installed in `app`: its classes work.
fn imports_in(app: &Path) -> Output {
    Command::new("node")
        .args([
            "--input-type=module",
            "-e",
            "import { Sandbox, Cairn, LimitExceeded, Conflict } from 'cairn-sdk'; \
             const e = new LimitExceeded('x'); \
             console.log(typeof Sandbox.fromSnapshot, typeof new Cairn({ host: 'http://127.0.0.1:9' }).api.GET, e instanceof Conflict, e.code);",
        ])
        .current_dir(app)
        .output()
        .unwrap()
}

/// `npm install ARGS…` in `app`, offline: from npm's cache, which the npm ci of
/// scripts/setup.sh filled.
fn npm_install(app: &Path, args: &[&str]) {
    std::fs::create_dir_all(app).unwrap();
    std::fs::write(
        app.join("package.json"),
        r#"{"name": "app", "private": true, "type": "module"}"#,
    )
    .unwrap();
    let out = Command::new("npm")
        .args([
            "install",
            "--offline",
            "--no-audit",
            "--no-fund",
            "--loglevel=error",
        ])
        .args(args)
        .current_dir(app)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "npm install {args:?} failed in {} (the SDK's dependencies come from npm's cache, filled by scripts/setup.sh):\n{}",
        app.display(),
        output_text(&out)
    );
    let check = imports_in(app);
    assert_eq!(
        String::from_utf8_lossy(&check.stdout).trim(),
        "function function true limit_exceeded",
        "the SDK installed by npm install {args:?} does not import: {}",
        output_text(&check)
    );
}

#[test]
fn npm_installs_the_sdk_from_the_repository() {
    let (tmp, dir) = staged();
    // The package as a user's checkout has it: without node_modules, inside the project
    // that installs it (npm then installs the folder's dependencies too) ...
    std::fs::remove_file(dir.join("node_modules")).unwrap();
    let app = tmp.path().join("app");
    std::fs::create_dir_all(app.join("sdk")).unwrap();
    let inside = app.join("sdk/typescript");
    std::fs::rename(&dir, &inside).unwrap();
    npm_install(&app, &["./sdk/typescript"]);
    // ... or anywhere else, packed and copied with --install-links.
    let elsewhere = tmp.path().join("elsewhere");
    npm_install(&elsewhere, &["--install-links", inside.to_str().unwrap()]);
}
