//! Shared fixtures for Cairn's integration tests and benchmarks: a test
//! root filesystem made from Debian's busybox-static, and a harness that
//! runs the real `cairnd` on a throw-away data directory (with its own
//! loop-mounted btrfs pool) and the real `cairn` against it.
//!
//! [`DirStorage`] is a storage driver on plain directories and [`FakeRuntime`] a
//! runtime in memory, for tests of the engine without root, btrfs or OCI runtimes.
//!
//! Missing prerequisites make tests fail with a message that says what to
//! install; nothing is skipped silently.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

mod dir_storage;
mod fake_runtime;
mod http;
mod moto;
mod script;
pub use dir_storage::DirStorage;
pub use fake_runtime::{Failure, FakeRuntime, FAKE_CHECKPOINT};
pub use http::{assert_error, PrivateNet, Via};
pub use moto::{Moto, MOTO_VERSION};
pub use script::{output_text, tail};

/// Panics with install instructions unless the test prerequisites are present.
pub fn require_prerequisites() {
    let uid = unsafe_free_uid();
    assert_eq!(uid, 0, "Cairn's integration tests must run as root (they mount a btrfs pool and run OCI runtimes): run them with sudo, or use .ci/run");
    for (tool, pkg) in [
        ("mkfs.btrfs", "btrfs-progs"),
        ("runc", "runc"),
        (
            "runsc",
            "runsc (from bookworm-backports: apt-get install -t bookworm-backports runsc)",
        ),
    ] {
        assert!(
            which(tool).is_some(),
            "'{tool}' is missing: install {pkg}, or run scripts/setup.sh once"
        );
    }
    assert!(
        Path::new("/bin/busybox").exists(),
        "/bin/busybox is missing: apt-get install busybox-static (or run scripts/setup.sh once)"
    );
}

fn unsafe_free_uid() -> u32 {
    // Read our uid from /proc to avoid an unsafe libc call.
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|u| u.parse().ok())
        .unwrap_or(u32::MAX)
}

/// Where a program is on PATH.
pub fn which(tool: &str) -> Option<PathBuf> {
    std::env::var_os("PATH")?
        .to_str()?
        .split(':')
        .map(|d| Path::new(d).join(tool))
        .find(|p| p.is_file())
}

/// Builds (once per test process) a minimal root filesystem: static busybox
/// with all its applets, /etc/passwd, and the usual directories.
pub fn base_rootfs() -> &'static Path {
    static ROOT: OnceLock<PathBuf> = OnceLock::new();
    ROOT.get_or_init(|| {
        require_prerequisites();
        remove_stale_rootfs();
        let dir = std::env::temp_dir().join(format!("cairn-test-rootfs-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        make_busybox_rootfs(&dir);
        dir
    })
}

/// Removes the root filesystems of test processes that have ended (a process cannot remove
/// its own at exit: nothing runs then).
fn remove_stale_rootfs() {
    let Ok(entries) = std::fs::read_dir(std::env::temp_dir()) else {
        return;
    };
    for e in entries.flatten() {
        let name = e.file_name();
        let Some(pid) = name
            .to_str()
            .and_then(|n| n.strip_prefix("cairn-test-rootfs-"))
            .and_then(|p| p.parse::<u32>().ok())
        else {
            continue;
        };
        if !Path::new(&format!("/proc/{pid}")).exists() {
            let _ = std::fs::remove_dir_all(e.path());
        }
    }
}

/// A Debian bookworm minbase root filesystem made by debootstrap, cached in `cache` (a test
/// binary's `CARGO_TARGET_TMPDIR`) between runs.
pub fn debian_rootfs(cache: &Path) -> PathBuf {
    let dir = cache.join("debian-bookworm-minbase");
    if dir.join("etc/debian_version").exists() {
        return dir;
    }
    assert!(
        which("debootstrap").is_some(),
        "debootstrap is missing: apt-get install debootstrap (or run scripts/setup.sh)"
    );
    let tmp = dir.with_extension("partial");
    let _ = std::fs::remove_dir_all(&tmp);
    let out = Command::new("debootstrap")
        .args(["--variant=minbase", "bookworm"])
        .arg(&tmp)
        .arg("http://deb.debian.org/debian")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "debootstrap failed: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    std::fs::rename(&tmp, &dir).unwrap();
    dir
}

/// Writes a busybox root filesystem into `dir`.
pub fn make_busybox_rootfs(dir: &Path) {
    let script = format!(
        r#"set -e
D="{d}"
mkdir -p "$D/bin" "$D/sbin" "$D/usr/bin" "$D/usr/sbin" "$D/etc" "$D/proc" "$D/sys" "$D/dev" "$D/tmp" "$D/root" "$D/var/tmp"
chmod 1777 "$D/tmp" "$D/var/tmp"
cp /bin/busybox "$D/bin/busybox"
for a in $(/bin/busybox --list); do [ "$a" = busybox ] || ln -sf busybox "$D/bin/$a"; done
echo 'root:x:0:0:root:/root:/bin/sh' > "$D/etc/passwd"
echo 'root:x:0:' > "$D/etc/group"
echo 'cairn-test-image' > "$D/etc/cairn-image"
"#,
        d = dir.display()
    );
    let out = Command::new("sh")
        .arg("-c")
        .arg(script)
        .output()
        .expect("sh");
    assert!(
        out.status.success(),
        "building the busybox rootfs failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A running `cairnd` on a private data directory.
pub struct Daemon {
    /// The data directory.
    pub home: PathBuf,
    _tmp: tempfile::TempDir,
    /// A directory outside the data directory (whose files cairnd refuses to import), for
    /// archives and trees a test makes.
    scratch: tempfile::TempDir,
    child: Option<Child>,
    cairnd: PathBuf,
    cairn: PathBuf,
    /// TCP address, when started with one.
    pub tcp: Option<String>,
    log: PathBuf,
    /// Extra arguments for cairnd (limits…), used at every (re)launch.
    pub args: Vec<String>,
    /// Extra environment for cairnd (e.g. `CAIRN_CRASH_AT`), used at every (re)launch.
    pub env: Vec<(String, String)>,
}

/// How a command ended and what it printed.
#[derive(Debug)]
pub struct Run {
    /// Exit code.
    pub code: i32,
    /// Stdout.
    pub stdout: String,
    /// Stderr.
    pub stderr: String,
}

impl Run {
    /// Asserts success and returns trimmed stdout.
    pub fn ok(&self) -> String {
        assert_eq!(
            self.code, 0,
            "command failed: stdout={} stderr={}",
            self.stdout, self.stderr
        );
        self.stdout.trim().to_string()
    }

    /// Parses stdout as JSON.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.stdout))
    }
}

fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

impl Daemon {
    /// Starts cairnd (binaries from the calling test crate) on a fresh data directory.
    pub fn start(cairnd: &str, cairn: &str) -> Daemon {
        Self::start_with(cairnd, cairn, false)
    }

    /// Like [`Daemon::start`], also listening on a TCP port on loopback.
    pub fn start_with(cairnd: &str, cairn: &str, tcp: bool) -> Daemon {
        Self::start_opts(cairnd, cairn, tcp, &[])
    }

    /// Starts cairnd (unix socket only) with extra arguments and imports image `base`.
    pub fn with_base(cairnd: &str, cairn: &str, args: &[&str]) -> Daemon {
        let d = Daemon::start_opts(cairnd, cairn, false, args);
        d.import_base();
        d
    }

    /// Starts cairnd with a TCP listener (for tenants' tokens) and extra arguments, and
    /// imports image `base`.
    pub fn tcp_with_base(cairnd: &str, cairn: &str, args: &[&str]) -> Daemon {
        let d = Daemon::start_opts(cairnd, cairn, true, args);
        d.import_base();
        d
    }

    /// Starts cairnd with extra command-line arguments.
    pub fn start_opts(cairnd: &str, cairn: &str, tcp: bool, args: &[&str]) -> Daemon {
        Self::start_env(cairnd, cairn, tcp, args, &[])
    }

    /// Starts cairnd with extra command-line arguments and environment variables.
    pub fn start_env(
        cairnd: &str,
        cairn: &str,
        tcp: bool,
        args: &[&str],
        env: &[(String, String)],
    ) -> Daemon {
        require_prerequisites();
        let tmp = tempfile::Builder::new()
            .prefix("cairn-test-home-")
            .tempdir()
            .unwrap();
        let home = tmp.path().to_path_buf();
        let tcp = tcp.then(|| format!("127.0.0.1:{}", free_port()));
        let scratch = tempfile::Builder::new()
            .prefix("cairn-test-scratch-")
            .tempdir()
            .unwrap();
        let mut d = Daemon {
            log: home.join("cairnd.log"),
            home,
            _tmp: tmp,
            scratch,
            child: None,
            cairnd: cairnd.into(),
            cairn: cairn.into(),
            tcp,
            args: args.iter().map(|a| a.to_string()).collect(),
            env: env.to_vec(),
        };
        d.launch();
        d
    }

    fn launch(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .unwrap();
        let mut cmd = Command::new(&self.cairnd);
        cmd.env("CAIRN_HOME", &self.home)
            .arg("--pool-size")
            .arg("3G")
            .args(&self.args);
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        if let Some(addr) = &self.tcp {
            cmd.arg("--listen").arg(addr);
        }
        cmd.stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log);
        // A wrapper script a test just wrote is "busy" while another test thread's fork still
        // holds the descriptor it was written through (until that child execs): try again.
        let mut tries = 0;
        let child = loop {
            match cmd.spawn() {
                Err(e) if e.raw_os_error() == Some(26) && tries < 50 => {
                    tries += 1;
                    std::thread::sleep(Duration::from_millis(20));
                }
                spawned => break spawned.unwrap(),
            }
        };
        self.child = Some(child);
        let sock = self.home.join("cairnd.sock");
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            // Ready once both listeners answer: cairnd binds TCP just after the unix socket.
            if std::os::unix::net::UnixStream::connect(&sock).is_ok()
                && self
                    .tcp
                    .as_ref()
                    .is_none_or(|addr| std::net::TcpStream::connect(addr).is_ok())
            {
                return;
            }
            if let Some(status) = self.child.as_mut().unwrap().try_wait().unwrap() {
                panic!("cairnd exited ({status}) at start:\n{}", self.log_text());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!(
            "cairnd did not open its socket (and TCP listener) within 60 s:\n{}",
            self.log_text()
        );
    }

    /// A directory for the test's own files, outside the data directory.
    pub fn scratch(&self) -> &Path {
        self.scratch.path()
    }

    /// The daemon's log so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// cairnd's process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Whether cairnd has exited (e.g. at a crash point), reaping it if so.
    pub fn has_exited(&mut self) -> bool {
        match self.child.as_mut().map(|c| c.try_wait()) {
            Some(Ok(Some(_))) => {
                self.child = None;
                true
            }
            None => true,
            _ => false,
        }
    }

    /// Kills cairnd with SIGKILL (sandboxes keep running).
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Stops cairnd with SIGTERM and waits.
    pub fn terminate(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = Command::new("kill")
                .arg("-TERM")
                .arg(c.id().to_string())
                .status();
            let _ = c.wait();
        }
    }

    /// Starts cairnd again on the same data directory.
    pub fn restart(&mut self) {
        self.terminate();
        self.launch();
    }

    /// Starts cairnd again after a kill.
    pub fn relaunch(&mut self) {
        assert!(self.child.is_none(), "cairnd is still running");
        self.launch();
    }

    /// Runs a script (e.g. one of `examples/`) with `CAIRN` set to the cairn binary and
    /// `CAIRN_HOME` to this daemon's data directory.
    pub fn script(&self, path: &Path, args: &[&str]) -> Run {
        let out = Command::new("bash")
            .arg(path)
            .args(args)
            .env("CAIRN", &self.cairn)
            .env("CAIRN_HOME", &self.home)
            .env_remove("CAIRN_HOST")
            .env_remove("CAIRN_TOKEN")
            .stdin(Stdio::null())
            .output()
            .unwrap();
        Run {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    /// Runs `cairn ARGS` against this daemon (over the unix socket).
    pub fn cairn(&self, args: &[&str]) -> Run {
        self.cairn_env(args, &[])
    }

    /// Runs `cairn ARGS` with extra environment variables.
    pub fn cairn_env(&self, args: &[&str], env: &[(&str, &str)]) -> Run {
        let mut cmd = Command::new(&self.cairn);
        cmd.env("CAIRN_HOME", &self.home)
            .env_remove("CAIRN_HOST")
            .env_remove("CAIRN_TOKEN")
            .args(args);
        for (k, v) in env {
            cmd.env(k, v);
        }
        let out: Output = cmd.stdin(Stdio::null()).output().unwrap();
        let mut stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        // Only when the CLI was pointed at this daemon (a test may point it elsewhere on
        // purpose, and compare what it prints).
        let ours = self.home.join("cairnd.sock").display().to_string();
        if stderr.contains("cannot reach cairnd") && stderr.contains(&ours) {
            // Say why here, where a failing assertion prints it: the log printed at the end
            // of a failed test may be cut off.
            stderr.push_str(&self.unreachable_why());
        }
        Run {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr,
        }
    }

    /// What became of cairnd when a client could not reach it: whether its process still
    /// runs, and the end of its log.
    fn unreachable_why(&self) -> String {
        let process = match self.child.as_ref().map(Child::id) {
            None => "no cairnd started (stopped by the test)".to_string(),
            Some(pid) => match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
                Ok(stat) => {
                    let state = stat
                        .rsplit_once(')')
                        .and_then(|(_, rest)| rest.split_whitespace().next())
                        .unwrap_or("?")
                        .to_string();
                    if state == "Z" {
                        format!("cairnd (pid {pid}) has exited")
                    } else {
                        format!("cairnd (pid {pid}) is still running (state {state})")
                    }
                }
                Err(_) => format!("cairnd (pid {pid}) is gone"),
            },
        };
        let log = self.log_text();
        let lines: Vec<&str> = log.lines().collect();
        let tail = lines[lines.len().saturating_sub(40)..].join("\n");
        format!("\n[test harness: {process}; the end of its log:]\n{tail}\n")
    }

    /// Runs `cairn ARGS` with `input` written to its stdin (then closed).
    pub fn cairn_with_stdin(&self, args: &[&str], input: &str) -> Run {
        use std::io::Write;
        let mut child = self
            .cairn_command(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(input.as_bytes())
            .unwrap();
        let out = child.wait_with_output().unwrap();
        Run {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    /// Starts, detached in sandbox `id`, a loop that counts in the shell's memory and
    /// mirrors the count to `/tmp/c` (write then rename, so a reader never sees a
    /// half-written file), and waits until the first count is there.
    pub fn start_counter(&self, id: &str) {
        self.cairn(&[
            "exec",
            "-d",
            id,
            "i=1000; while :; do i=$((i+1)); echo $i > /tmp/c.new; mv /tmp/c.new /tmp/c; sleep 0.05; done",
        ])
        .ok();
        let deadline = Instant::now() + Duration::from_secs(10);
        while self.counter_on_disk(id).is_none() {
            assert!(Instant::now() < deadline, "the counter never started");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The count [`Daemon::start_counter`]'s loop last mirrored, read from the sandbox's
    /// root on the host (so it works while the sandbox is paused or its memory released).
    pub fn counter_on_disk(&self, id: &str) -> Option<u64> {
        let path = self.home.join("pool/sandboxes").join(id).join("tmp/c");
        std::fs::read_to_string(path).ok()?.trim().parse().ok()
    }

    /// A `cairn` command ready to spawn (for streaming tests).
    pub fn cairn_command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(&self.cairn);
        cmd.env("CAIRN_HOME", &self.home)
            .env_remove("CAIRN_HOST")
            .env_remove("CAIRN_TOKEN")
            .args(args);
        cmd
    }

    /// Imports the shared busybox root filesystem as image `base`, published to every
    /// account (as an operator would, so that tenants over TCP can use it).
    pub fn import_base(&self) {
        let root = base_rootfs().to_str().unwrap().to_string();
        self.cairn(&["image", "import", &root, "--name", "base", "--public"])
            .ok();
    }

    /// `cairnd token create --account NAME`.
    pub fn token(&self, account: &str) -> String {
        self.token_with(account, &[])
    }

    /// `cairnd token create --account NAME EXTRA…` (e.g. `--admin`, `--expires 2s`).
    pub fn token_with(&self, account: &str, extra: &[&str]) -> String {
        let out = self.cairnd(&[&["token", "create", "--account", account], extra].concat());
        out.ok()
    }

    /// Runs `cairnd ARGS` (a subcommand such as `token ls`) on this daemon's data directory.
    pub fn cairnd(&self, args: &[&str]) -> Run {
        let out = Command::new(&self.cairnd)
            .env("CAIRN_HOME", &self.home)
            .args(args)
            .output()
            .unwrap();
        Run {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    /// Removes every container this daemon's runtimes know, then unmounts the pool.
    fn cleanup_host(&self) {
        for (bin, root) in [("runc", "run/runc"), ("runsc", "run/runsc")] {
            let root = self.home.join(root);
            if !root.exists() {
                continue;
            }
            let out = Command::new(bin)
                .arg("--root")
                .arg(&root)
                .args(["list", "--quiet"])
                .output();
            if let Ok(out) = out {
                for id in String::from_utf8_lossy(&out.stdout).split_whitespace() {
                    let force = if bin == "runc" { "--force" } else { "-force" };
                    let _ = Command::new(bin)
                        .arg("--root")
                        .arg(&root)
                        .args(["delete", force, id])
                        .output();
                }
            }
        }
        // Network namespaces of nat sandboxes left behind by a failed test, then the
        // bridge and nftables tables of a daemon started with --bridge.
        if let Ok(entries) = std::fs::read_dir(self.home.join("run/netns")) {
            for e in entries.flatten() {
                let _ = Command::new("umount").arg("-l").arg(e.path()).output();
            }
        }
        if let Some(i) = self.args.iter().position(|a| a == "--bridge") {
            if let Some(bridge) = self.args.get(i + 1) {
                let _ = Command::new("ip").args(["link", "del", bridge]).output();
                for family in ["ip", "bridge"] {
                    let _ = Command::new("nft")
                        .args(["delete", "table", family, bridge])
                        .output();
                }
            }
        }
        // The mounts cairnd made: its runtime state (tmpfs) and the pool.
        for mount in ["run", "pool"] {
            let at = self.home.join(mount);
            let _ = Command::new("umount").arg(&at).output();
            let _ = Command::new("umount").arg("-l").arg(&at).output();
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.terminate();
        self.cleanup_host();
        if std::thread::panicking() {
            eprintln!("---- cairnd log ----\n{}", self.log_text());
        }
    }
}
