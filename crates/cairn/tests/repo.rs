//! `cairn up --repo` (issue 21) against real git: a local repository (file://, the operator
//! only) and `git daemon` on 127.0.0.1 (git://): the checkout is in the sandbox before it
//! starts, at the branch asked for; a missing branch, a bad URL or a tenant naming a host
//! path is a 400 that names the problem and leaves nothing behind; the token is in no file
//! of the sandbox, no row and no log.

#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use cairn_test_support::Daemon;

fn git(dir: &Path, args: &[&str]) {
    let out = Command::new("git")
        .args(args)
        .current_dir(dir)
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .output()
        .expect("git is missing: run scripts/setup.sh (apt-get install git)");
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A bare repository `repo.git` under `base`: `main` with README, and `feature` with one
/// more file.
fn make_repo(base: &Path) {
    let work = base.join("work");
    std::fs::create_dir_all(&work).unwrap();
    git(&work, &["init", "-q", "-b", "main"]);
    git(&work, &["config", "user.email", "t@example.com"]);
    git(&work, &["config", "user.name", "t"]);
    std::fs::write(work.join("README"), "hello from main\n").unwrap();
    git(&work, &["add", "README"]);
    git(&work, &["commit", "-q", "-m", "one"]);
    git(&work, &["checkout", "-q", "-b", "feature"]);
    std::fs::write(work.join("feature.txt"), "on the branch\n").unwrap();
    git(&work, &["add", "feature.txt"]);
    git(&work, &["commit", "-q", "-m", "two"]);
    // The bare copy's default branch is the one checked out.
    git(&work, &["checkout", "-q", "main"]);
    git(
        base,
        &["clone", "-q", "--bare", work.to_str().unwrap(), "repo.git"],
    );
}

/// `git daemon` serving `base` on a free port of 127.0.0.1, killed on drop.
struct GitDaemon(Child, u16);

impl GitDaemon {
    fn start(base: &Path) -> GitDaemon {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = Command::new("git")
            .args([
                "daemon",
                "--reuseaddr",
                "--export-all",
                "--listen=127.0.0.1",
                &format!("--port={port}"),
                &format!("--base-path={}", base.display()),
                base.to_str().unwrap(),
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("git daemon is missing: run scripts/setup.sh (apt-get install git)");
        // Killed on drop, whether it comes up or not.
        let served = GitDaemon(child, port);
        for _ in 0..100 {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return served;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("git daemon did not listen on 127.0.0.1:{port}");
    }
}

impl Drop for GitDaemon {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn up_with_a_repository_has_its_checkout_before_it_starts() {
    // git daemon listens on 127.0.0.1, which tenants reach only when the operator allows.
    let d = Daemon::tcp_with_base(
        env!("CARGO_BIN_EXE_cairnd"),
        env!("CARGO_BIN_EXE_cairn"),
        &["--repo-allow-private"],
    );
    let base = tempfile::tempdir().unwrap();
    make_repo(base.path());
    let served = GitDaemon::start(base.path());
    let git_url = format!("git://127.0.0.1:{}/repo.git", served.1);

    // The operator, from a host path: the default branch, at /workspace.
    let file_url = format!("file://{}/repo.git", base.path().display());
    let id = d
        .cairn(&[
            "up",
            "--image",
            "base",
            "--runtime",
            "runc",
            "--repo",
            &file_url,
        ])
        .ok();
    assert_eq!(
        d.cairn(&["exec", &id, "cat /workspace/README"]).ok(),
        "hello from main"
    );
    assert_ne!(
        d.cairn(&["exec", &id, "test -e /workspace/feature.txt"])
            .code,
        0
    );

    // A tenant over TCP, from git daemon: a branch, at a path of their choice, with a token
    // that must be kept nowhere.
    let alice = d.token("alice");
    let addr = format!("http://{}", d.tcp.as_ref().unwrap());
    let tenant = [
        ("CAIRN_HOST", addr.as_str()),
        ("CAIRN_TOKEN", alice.as_str()),
    ];
    let secret = "tok-9f8e7d6c5b4a";
    let id = d
        .cairn_env(
            &[
                "up",
                "--image",
                "base",
                "--runtime",
                "runc",
                "--repo",
                &git_url,
                "--branch",
                "feature",
                "--repo-path",
                "/root/src/project",
                "--repo-token",
                secret,
            ],
            &tenant,
        )
        .ok();
    let got = d
        .cairn_env(
            &[
                "exec",
                &id,
                "cat /root/src/project/feature.txt /root/src/project/README",
            ],
            &tenant,
        )
        .ok();
    assert_eq!(got, "on the branch\nhello from main");
    let found = d
        .cairn_env(
            &[
                "exec",
                &id,
                "grep -rl tok-9f8e /root /workspace 2>/dev/null; true",
            ],
            &tenant,
        )
        .ok();
    assert_eq!(found, "", "the token is in the sandbox's files");
    let snap = d.cairn_env(&["snapshot", "create", &id], &tenant).ok();
    let leaked = Command::new("grep")
        .args(["-rl", secret])
        .arg(&d.home)
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&leaked.stdout).trim().is_empty(),
        "the token is kept on the host (after snapshot {snap}): {}",
        String::from_utf8_lossy(&leaked.stdout)
    );

    // Refused, with nothing left behind: a missing branch, a tenant's host path, a URL
    // with credentials, ssh.
    let ids = || -> Vec<String> {
        let list = d.cairn_env(&["ls", "--json"], &tenant).json();
        list.as_array()
            .unwrap()
            .iter()
            .map(|s| s["id"].as_str().unwrap().to_string())
            .collect()
    };
    let before = ids();
    let cases: [(&[&str], &str); 4] = [
        (
            &["--repo", &git_url, "--branch", "nope"],
            "no branch or tag 'nope'",
        ),
        (&["--repo", &file_url], "only the operator"),
        (
            &["--repo", "https://u:p@example.com/r.git"],
            "credentials in the repository URL",
        ),
        (
            &["--repo", "git@example.com:o/r.git"],
            "not a repository URL",
        ),
    ];
    for (extra, says) in cases {
        let mut args = vec!["up", "--image", "base", "--runtime", "runc", "--json"];
        args.extend_from_slice(extra);
        let r = d.cairn_env(&args, &tenant);
        assert_ne!(r.code, 0, "{extra:?} was accepted");
        assert!(
            r.stderr.contains("invalid_argument"),
            "{extra:?}: {}",
            r.stderr
        );
        assert!(r.stderr.contains(says), "{extra:?}: {}", r.stderr);
    }
    assert_eq!(ids(), before);
    let leftovers = std::fs::read_dir(d.home.join("pool/sandboxes"))
        .unwrap()
        .count();
    // The operator's sandbox and alice's: nothing of the refused ones.
    assert_eq!(leftovers, 2, "subvolumes of refused sandboxes were left");
}

/// A tenant cannot point cairnd's git at the host's own networks: a repository on a
/// loopback, private or link-local address (or a name resolving to one) is refused before
/// anything is made, naming the operator's flag; the operator's own clones still work.
#[test]
fn a_tenants_repository_on_a_private_address_is_refused() {
    let d = Daemon::tcp_with_base(
        env!("CARGO_BIN_EXE_cairnd"),
        env!("CARGO_BIN_EXE_cairn"),
        &[],
    );
    let base = tempfile::tempdir().unwrap();
    make_repo(base.path());
    let served = GitDaemon::start(base.path());
    let alice = d.token("alice");
    let addr = format!("http://{}", d.tcp.as_ref().unwrap());
    let tenant = [
        ("CAIRN_HOST", addr.as_str()),
        ("CAIRN_TOKEN", alice.as_str()),
    ];
    for url in [
        format!("git://127.0.0.1:{}/repo.git", served.1),
        format!("git://localhost:{}/repo.git", served.1),
        "http://169.254.169.254/latest/meta-data".to_string(),
        "https://10.0.0.1/o/r.git".to_string(),
    ] {
        let r = d.cairn_env(
            &[
                "up",
                "--image",
                "base",
                "--runtime",
                "runc",
                "--json",
                "--repo",
                &url,
            ],
            &tenant,
        );
        assert_ne!(r.code, 0, "{url} was cloned");
        assert!(r.stderr.contains("invalid_argument"), "{url}: {}", r.stderr);
        assert!(
            r.stderr.contains("--repo-allow-private"),
            "{url}: {}",
            r.stderr
        );
    }
    let list = d.cairn_env(&["ls", "--json"], &tenant).json();
    assert_eq!(list.as_array().unwrap().len(), 0, "{list}");
    assert_eq!(
        std::fs::read_dir(d.home.join("pool/sandboxes"))
            .unwrap()
            .count(),
        0,
        "refused sandboxes left subvolumes"
    );
    // The operator (the unix socket) clones from the same address.
    let id = d
        .cairn(&[
            "up",
            "--image",
            "base",
            "--runtime",
            "runc",
            "--repo",
            &format!("git://127.0.0.1:{}/repo.git", served.1),
        ])
        .ok();
    assert_eq!(
        d.cairn(&["exec", &id, "cat /workspace/README"]).ok(),
        "hello from main"
    );
}

/// The seed's workflow, as `examples/up-from-repo.sh` runs it against git daemon.
#[test]
fn the_up_from_repo_example_runs() {
    let d = Daemon::with_base(
        env!("CARGO_BIN_EXE_cairnd"),
        env!("CARGO_BIN_EXE_cairn"),
        &[],
    );
    let base = tempfile::tempdir().unwrap();
    make_repo(base.path());
    let served = GitDaemon::start(base.path());
    let url = format!("git://127.0.0.1:{}/repo.git", served.1);
    let example =
        std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../examples/up-from-repo.sh");
    let r = d.script(&example, &[&url, "main", "runc"]);
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    assert!(r.stdout.contains("README"), "{}", r.stdout);
    assert!(
        r.stdout.contains("the checkout is whole again"),
        "{}",
        r.stdout
    );
}

/// cairnd killed with the repository cloned into its staging directory (the sandbox still
/// `creating`): after a restart nothing of it is left (no sandbox, no tree, no container),
/// and the same `up --repo` then works.
#[test]
fn cairnd_killed_mid_clone_leaves_nothing_and_a_retry_works() {
    let mut d = Daemon::with_base(
        env!("CARGO_BIN_EXE_cairnd"),
        env!("CARGO_BIN_EXE_cairn"),
        &[],
    );
    let base = tempfile::tempdir().unwrap();
    make_repo(base.path());
    let url = format!("file://{}/repo.git", base.path().display());
    let args = [
        "up",
        "--image",
        "base",
        "--runtime",
        "runc",
        "--name",
        "cloned",
        "--repo",
        &url,
    ];
    d.terminate();
    d.env = vec![("CAIRN_CRASH_AT".into(), "repo-after-clone".into())];
    d.relaunch();
    let r = d.cairn(&args);
    assert_ne!(r.code, 0, "{r:?}");
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !d.has_exited() {
        assert!(
            std::time::Instant::now() < deadline,
            "cairnd did not stop at the crash point: {r:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    d.env.clear();
    d.relaunch();
    let listed = d.cairn(&["ls", "--json"]).json();
    assert_eq!(listed, serde_json::json!([]), "{listed}");
    let trees: Vec<_> = std::fs::read_dir(d.home.join("pool/sandboxes"))
        .map(|rd| rd.filter_map(|e| e.ok()).map(|e| e.file_name()).collect())
        .unwrap_or_default();
    assert!(trees.is_empty(), "trees left behind: {trees:?}");
    let containers = Command::new("runc")
        .arg("--root")
        .arg(d.home.join("run/runc"))
        .args(["list", "-q"])
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&containers.stdout).trim(), "");
    let id = d.cairn(&args).ok();
    assert_eq!(
        d.cairn(&["exec", &id, "cat /workspace/README"]).ok(),
        "hello from main"
    );
    let root = d.cairn(&["exec", &id, "ls -A /"]).ok();
    assert!(
        !root.contains(".cairn-repo-"),
        "staging left in the tree: {root}"
    );
}
