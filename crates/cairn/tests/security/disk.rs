//! Finding 5, no disk quota: one sandbox filled a 3 GiB pool in 2 s, and then every snapshot
//! of every sandbox failed with a 500.
//!
//! What must hold instead: a sandbox's writes stop at its disk limit (`EDQUOT` inside; it
//! keeps running); sandboxes together can never eat the pool's reserve, so other tenants'
//! snapshots still work; a full pool answers 507 `pool_full` (never a 500) and leaves nothing
//! half-written; limits survive restore, fork, stop/start and restarts; a runc sandbox cannot
//! slip out of its limit through a btrfs subvolume of its own; bad limits are a 400.
//!
//! The daemons use a 3 GiB pool, whose default reserve is 256 MiB.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use cairn_test_support::{assert_error, both_runtimes, Daemon, Run, Via};
use serde_json::Value;

use super::{assert_healthy, tcp_daemon};

const MIB: u64 = 1 << 20;
/// The default reserve of a 3 GiB pool (5% of it is less than the 256 MiB floor).
const RESERVE: u64 = 256 * MIB;

/// A tenant: an account with a token, using the TCP API like any remote client.
struct Tenant<'a> {
    d: &'a Daemon,
    token: String,
}

impl<'a> Tenant<'a> {
    fn new(d: &'a Daemon, account: &str) -> Self {
        Tenant {
            d,
            token: d.token(account),
        }
    }

    fn http(&self, method: &str, path: &str, body: Option<&str>) -> (u16, Value) {
        self.d.http(Via::Tcp, method, path, Some(&self.token), body)
    }

    /// `cairn ARGS` as this tenant, over TCP.
    fn cairn(&self, args: &[&str]) -> Run {
        let host = format!("http://{}", self.d.tcp.as_ref().unwrap());
        self.d
            .cairn_env(args, &[("CAIRN_HOST", &host), ("CAIRN_TOKEN", &self.token)])
    }

    /// Creates a sandbox from `body` (JSON), asserting 201; returns its id.
    fn up(&self, body: &str) -> String {
        let (code, sbx) = self.http("POST", "/v1/sandboxes", Some(body));
        assert_eq!(code, 201, "{sbx}");
        sbx["id"].as_str().unwrap().to_string()
    }

    fn inspect(&self, id: &str) -> Value {
        let (code, sbx) = self.http("GET", &format!("/v1/sandboxes/{id}"), None);
        assert_eq!(code, 200, "{sbx}");
        sbx
    }

    /// Writes up to `mib` MiB of zeros into `file` inside the sandbox; returns the bytes the
    /// file holds afterwards and everything dd said.
    fn fill(&self, id: &str, file: &str, mib: u64) -> (u64, String) {
        let script = format!(
            "dd if=/dev/zero of={file} bs=1M count={mib} 2>&1; echo SIZE=$(cat {file} 2>/dev/null | wc -c)"
        );
        let run = self.cairn(&["exec", id, &script]);
        let size = run
            .stdout
            .lines()
            .find_map(|l| l.strip_prefix("SIZE="))
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or_else(|| panic!("no size in {run:?}"));
        (size, format!("{}{}", run.stdout, run.stderr))
    }

    /// Asserts that the sandbox still runs its processes and answers an exec.
    fn assert_running(&self, id: &str) {
        assert_eq!(self.inspect(id)["state"], "running");
        let run = self.cairn(&["exec", id, "echo alive"]);
        assert_eq!(run.ok(), "alive", "{run:?}");
    }
}

/// What a write refused for want of space says (`EDQUOT` or `ENOSPC`).
fn refused_for_space(output: &str) -> bool {
    output.contains("Disk quota exceeded") || output.contains("No space left on device")
}

/// Free bytes in the daemon's pool (what `df` shows as available).
fn pool_free(d: &Daemon) -> u64 {
    let st = rustix::fs::statvfs(pool(d)).unwrap();
    st.f_bavail * st.f_frsize
}

fn pool(d: &Daemon) -> PathBuf {
    d.home.join("pool")
}

/// Asserts that a 507 is a `pool_full` that says what is left and names no host path.
fn assert_pool_full(resp: &(u16, Value), d: &Daemon) {
    assert_error(resp, 507, "pool_full", "pool is full");
    let msg = resp.1["error"]["message"].as_str().unwrap();
    let home = d.home.to_string_lossy();
    assert!(!msg.contains(&*home) && !msg.contains("/pool"), "{msg}");
}

/// The names of the entries of a directory.
fn entries(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

/// Repeats `check` once a second until it returns true, for at most `secs`.
fn eventually(secs: u64, what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !check() {
        assert!(Instant::now() < deadline, "{what} within {secs} s");
        std::thread::sleep(Duration::from_secs(1));
    }
}

/// (1) A sandbox with `--disk 64M` that writes 200 MB is stopped at about 64 MiB with
/// EDQUOT, keeps running, the pool keeps its room, and another tenant's sandbox is untouched.
fn writes_stop_at_the_disk_limit(runtime: &str) {
    let d = tcp_daemon(&[]);
    let alice = Tenant::new(&d, "alice");
    let bob = Tenant::new(&d, "bob");
    let bobs = bob.up(&format!(r#"{{"image":"base","runtime":"{runtime}"}}"#));
    let (_, out) = bob.fill(&bobs, "/root/keep", 8);
    assert!(!refused_for_space(&out), "{out}");
    let free_before = pool_free(&d);

    let hog = alice.up(&format!(
        r#"{{"image":"base","runtime":"{runtime}","disk":"64M"}}"#
    ));
    assert_eq!(alice.inspect(&hog)["disk_bytes"], 64 * MIB);
    let (written, out) = alice.fill(&hog, "/root/big", 200);
    assert!(refused_for_space(&out), "the write was not refused: {out}");
    assert!(
        (48 * MIB..=64 * MIB).contains(&written),
        "refused after {written} bytes, expected about 64 MiB: {out}"
    );
    // It was refused, not killed; a write elsewhere in its root is refused too.
    alice.assert_running(&hog);
    let (more, out) = alice.fill(&hog, "/tmp/more", 10);
    assert!(more < MIB && refused_for_space(&out), "{more}: {out}");
    // What it wrote is what it is charged (shown once btrfs commits, within 30 s).
    eventually(40, "the sandbox's disk use shows its writes", || {
        let used = alice.inspect(&hog)["disk_used_bytes"].as_u64().unwrap_or(0);
        (48 * MIB..=65 * MIB).contains(&used)
    });
    // Deleting frees its budget again.
    alice.cairn(&["exec", &hog, "rm /root/big && sync"]).ok();
    let (again, out) = alice.fill(&hog, "/root/again", 16);
    assert_eq!(again, 16 * MIB, "{out}");
    assert!(
        pool_free(&d) + 100 * MIB > free_before,
        "the pool lost more than the sandbox's limit"
    );

    // The other tenant: its files intact, its snapshots and writes work.
    let (code, snap) = bob.http(
        "POST",
        &format!("/v1/sandboxes/{bobs}/snapshots"),
        Some("{}"),
    );
    assert_eq!(code, 201, "{snap}");
    assert_eq!(snap["state"], "ready");
    let (size, out) = bob.fill(&bobs, "/root/more", 32);
    assert_eq!(size, 32 * MIB, "{out}");
    let run = bob.cairn(&["exec", &bobs, "wc -c < /root/keep"]);
    assert_eq!(run.ok(), (8 * MIB).to_string());
    assert_eq!(bob.inspect(&bobs)["disk_bytes"], 10u64 << 30);
    assert_healthy(&d);
}

/// (2) A sandbox without a limit smaller than the pool (the default 10G on a 3 GiB pool)
/// cannot make other tenants' snapshots fail with a 500: while it writes as much as it can,
/// their snapshots succeed or get 507 `pool_full`; its writes stop with the reserve still
/// free; after it is destroyed everything works again.
fn a_hog_cannot_fail_other_snapshots(runtime: &str) {
    let d = tcp_daemon(&["--max-snapshots-per-sandbox", "1000"]);
    let alice = Tenant::new(&d, "alice");
    let bob = Tenant::new(&d, "bob");
    let bobs = bob.up(&format!(r#"{{"image":"base","runtime":"{runtime}"}}"#));
    let hog = alice.up(&format!(r#"{{"image":"base","runtime":"{runtime}"}}"#));
    assert_eq!(alice.inspect(&hog)["disk_bytes"], 10u64 << 30);

    // Bob snapshots (files only, and with memory) while alice fills the pool.
    let snapshots = std::thread::scope(|s| {
        let writer = s.spawn(|| alice.fill(&hog, "/root/hog", 4000));
        let mut codes = Vec::new();
        let path = format!("/v1/sandboxes/{bobs}/snapshots");
        while !writer.is_finished() {
            for body in [r#"{}"#, r#"{"stateful":true}"#] {
                let resp = bob.http("POST", &path, Some(body));
                if resp.0 != 201 {
                    assert_pool_full(&resp, &d);
                }
                codes.push(resp.0);
            }
        }
        let (written, out) = writer.join().unwrap();
        assert!(refused_for_space(&out), "{out}");
        assert!(
            written < 3 * 1024 * MIB - RESERVE,
            "the hog wrote {written} bytes into a 3 GiB pool"
        );
        codes
    });
    assert!(!snapshots.is_empty());
    let refused = snapshots.iter().filter(|c| **c == 507).count();
    eprintln!(
        "while the hog wrote: {} snapshots made, {refused} refused with 507",
        snapshots.len() - refused
    );
    // Sandboxes' writes stopped before the reserve (minus what bob's snapshots took).
    let free = pool_free(&d);
    assert!(free >= RESERVE / 2, "only {free} bytes left in the pool");
    // With the pool at its reserve, bob's snapshots still work (they are what it is for).
    let resp = bob.http(
        "POST",
        &format!("/v1/sandboxes/{bobs}/snapshots"),
        Some("{}"),
    );
    if resp.0 != 201 {
        assert_pool_full(&resp, &d);
    }
    bob.assert_running(&bobs);
    alice.assert_running(&hog);

    // Every snapshot that exists is ready; those refused left nothing behind.
    // `all`: failed and in-progress rows too, which a default listing leaves out.
    let (code, list) = bob.http(
        "GET",
        &format!("/v1/sandboxes/{bobs}/snapshots?all=true"),
        None,
    );
    assert_eq!(code, 200);
    let list = list.as_array().unwrap();
    assert!(list.iter().all(|s| s["state"] == "ready"), "{list:?}");
    assert_eq!(entries(&pool(&d).join("snapshots")).len(), list.len());

    // Destroying the hog gives the space back.
    let (code, body) = alice.http("DELETE", &format!("/v1/sandboxes/{hog}?force=true"), None);
    assert_eq!(code, 204, "{body}");
    eventually(60, "bob can write 500 MiB again", || {
        bob.fill(&bobs, "/root/after", 500).0 == 500 * MIB
    });
    let (code, snap) = bob.http(
        "POST",
        &format!("/v1/sandboxes/{bobs}/snapshots"),
        Some(r#"{"stateful":true}"#),
    );
    assert_eq!(code, 201, "{snap}");
    let fork = bob.up(&format!(
        r#"{{"from_snapshot":"{}"}}"#,
        snap["id"].as_str().unwrap()
    ));
    bob.assert_running(&fork);
    assert_healthy(&d);
}

/// (3) The limit holds across restore in place, fork (inherited, or overridden), stop/start
/// and a cairnd restart: each time a root is made again, it carries the limit, counted from
/// what the new root starts with.
fn limits_survive_restore_fork_restart(runtime: &str) {
    let mut d = tcp_daemon(&[]);
    let alice = Tenant::new(&d, "alice");
    let id = alice.up(&format!(
        r#"{{"image":"base","runtime":"{runtime}","disk":"32M"}}"#
    ));
    let (size, out) = alice.fill(&id, "/root/ten", 10);
    assert_eq!(size, 10 * MIB, "{out}");
    let (code, snap) = alice.http("POST", &format!("/v1/sandboxes/{id}/snapshots"), Some("{}"));
    assert_eq!(code, 201, "{snap}");
    let snap = snap["id"].as_str().unwrap().to_string();
    let limited_at = |tenant: &Tenant, sbx: &str, limit: u64, what: &str| {
        let (written, out) = tenant.fill(sbx, "/root/big", 100);
        assert!(refused_for_space(&out), "{what}: not refused: {out}");
        assert!(
            (limit - 16 * MIB..=limit).contains(&written),
            "{what}: refused after {written} bytes, the limit is {limit}: {out}"
        );
        tenant.cairn(&["exec", sbx, "rm -f /root/big"]).ok();
    };
    limited_at(&alice, &id, 22 * MIB, "before anything");

    // Restore in place: a new root, counted from the snapshot's files.
    let (code, body) = alice.http("POST", &format!("/v1/snapshots/{snap}/restore"), Some("{}"));
    assert_eq!(code, 200, "{body}");
    assert_eq!(body["disk_bytes"], 32 * MIB);
    let run = alice.cairn(&["exec", &id, "wc -c < /root/ten"]);
    assert_eq!(run.ok(), (10 * MIB).to_string());
    limited_at(&alice, &id, 32 * MIB, "after restore");

    // A fork inherits the limit; one that asks for another gets that one.
    let fork = alice.up(&format!(r#"{{"from_snapshot":"{snap}"}}"#));
    assert_eq!(alice.inspect(&fork)["disk_bytes"], 32 * MIB);
    limited_at(&alice, &fork, 32 * MIB, "fork");
    let bigger = alice.up(&format!(r#"{{"from_snapshot":"{snap}","disk":"48M"}}"#));
    assert_eq!(alice.inspect(&bigger)["disk_bytes"], 48 * MIB);
    limited_at(&alice, &bigger, 48 * MIB, "fork with its own limit");

    // Stop and start.
    for verb in ["stop", "start"] {
        let (code, body) = alice.http("POST", &format!("/v1/sandboxes/{id}/{verb}"), None);
        assert_eq!(code, 200, "{verb}: {body}");
    }
    limited_at(&alice, &id, 32 * MIB, "after stop and start");

    // A cairnd restart (the token stays valid).
    let token = alice.token.clone();
    drop(alice);
    d.restart();
    let alice = Tenant { d: &d, token };
    assert_eq!(alice.inspect(&id)["disk_bytes"], 32 * MIB);
    limited_at(&alice, &id, 32 * MIB, "after a restart");
    limited_at(&alice, &fork, 32 * MIB, "the fork after a restart");
    assert_healthy(&d);
}

/// (4) Bad disk limits are a 400 that says what to give, and create nothing.
#[test]
fn bad_disk_limits_are_refused() {
    let d = tcp_daemon(&["--max-disk", "20G"]);
    let alice = Tenant::new(&d, "alice");
    for (disk, says) in [
        ("lots", "invalid disk limit"),
        ("-5G", "invalid disk limit"),
        ("0", "invalid disk limit"),
        ("10X", "invalid disk limit"),
        ("", "invalid disk limit"),
        ("4K", "too small"),
        ("15M", "too small"),
        ("21G", "over this host's maximum of 20.0 GiB"),
        ("1T", "over this host's maximum"),
        ("99999999999999999999T", "invalid disk limit"),
    ] {
        let body = format!(r#"{{"image":"base","runtime":"runc","disk":"{disk}"}}"#);
        assert_error(
            &alice.http("POST", "/v1/sandboxes", Some(&body)),
            400,
            "invalid_argument",
            says,
        );
    }
    assert_error(
        &alice.http(
            "POST",
            "/v1/sandboxes",
            Some(r#"{"image":"base","disk":64}"#),
        ),
        400,
        "invalid_argument",
        "",
    );
    let run = alice.cairn(&["up", "--image", "base", "--disk", "lots"]);
    assert_eq!(run.code, 1, "{run:?}");
    assert!(run.stderr.contains("invalid disk limit"), "{run:?}");
    let (code, list) = alice.http("GET", "/v1/sandboxes", None);
    assert_eq!((code, list), (200, serde_json::json!([])));
    assert!(entries(&pool(&d).join("sandboxes")).is_empty());
    // The operator's own flags are checked before cairnd starts.
    for args in [
        &["--default-disk", "lots"][..],
        &["--max-disk", "1K"],
        &["--default-disk", "50G", "--max-disk", "20G"],
        &["--pool-reserve", "60%"],
        &["--pool-reserve", "2G"],
    ] {
        let home = tempfile::tempdir().unwrap();
        let out = Command::new(env!("CARGO_BIN_EXE_cairnd"))
            .env("CAIRN_HOME", home.path())
            .args(["--pool-size", "3G"])
            .args(args)
            .output()
            .unwrap();
        let _ = Command::new("umount")
            .arg(home.path().join("pool"))
            .output();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?} was accepted");
        assert!(
            stderr.contains("--default-disk")
                || stderr.contains("--max-disk")
                || stderr.contains("pool reserve"),
            "{args:?}: {stderr}"
        );
    }
    assert_healthy(&d);
}

/// A small static program that makes a btrfs subvolume (`BTRFS_IOC_SUBVOL_CREATE`) in a
/// directory: what a hostile tenant would run to get a tree outside its sandbox's limit.
fn subvolume_maker() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("cairn-mksub-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let src = dir.join("mksub.c");
    std::fs::write(
        &src,
        r#"#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <linux/btrfs.h>
int main(int argc, char **argv) {
  int fd = open(argv[1], O_RDONLY | O_DIRECTORY);
  if (fd < 0) { perror("open"); return 1; }
  struct btrfs_ioctl_vol_args a;
  memset(&a, 0, sizeof a);
  strncpy(a.name, argv[2], sizeof a.name - 1);
  if (ioctl(fd, BTRFS_IOC_SUBVOL_CREATE, &a) < 0) { perror("SUBVOL_CREATE"); return 2; }
  puts("subvolume created");
  return 0;
}
"#,
    )
    .unwrap();
    let bin = dir.join("mksub");
    let out = Command::new("cc")
        .args(["-static", "-O2", "-o"])
        .arg(&bin)
        .arg(&src)
        .output()
        .expect(
            "a C compiler is needed for this test: apt-get install gcc libc6-dev linux-libc-dev",
        );
    assert!(
        out.status.success(),
        "compiling the subvolume maker failed (apt-get install gcc libc6-dev linux-libc-dev): {}",
        String::from_utf8_lossy(&out.stderr)
    );
    bin
}

/// (5) A sandbox cannot get out of its limit by making a btrfs subvolume inside its root
/// (its quota group would have no limit): runc sandboxes are refused the ioctl (seccomp),
/// gVisor passes no btrfs ioctl to the host.
fn a_subvolume_cannot_escape_the_disk_limit(runtime: &str) {
    let d = tcp_daemon(&[]);
    let alice = Tenant::new(&d, "alice");
    let id = alice.up(&format!(
        r#"{{"image":"base","runtime":"{runtime}","disk":"64M"}}"#
    ));
    // The tenant's program, put into its root (as an upload or an image would).
    std::fs::copy(
        subvolume_maker(),
        pool(&d).join("sandboxes").join(&id).join("mksub"),
    )
    .unwrap();
    let run = alice.cairn(&["exec", &id, "/mksub /root escape; echo EXIT=$?"]);
    let said = format!("{}{}", run.stdout, run.stderr);
    // Whatever it managed, its writes (into the would-be subvolume too) stay within its limit.
    alice.cairn(&["exec", &id, "mkdir -p /root/escape"]).ok();
    let (written, out) = alice.fill(&id, "/root/escape/big", 300);
    assert!(
        refused_for_space(&out) && written <= 64 * MIB,
        "wrote {written} bytes with a 64 MiB limit ({said}): {out}"
    );
    assert!(
        !said.contains("subvolume created") && !said.contains("EXIT=0"),
        "a subvolume was made inside the sandbox: {said}"
    );
    assert!(
        said.contains("Operation not permitted") || said.contains("Inappropriate ioctl"),
        "{said}"
    );
    alice.assert_running(&id);
    assert_healthy(&d);
}

/// (6) Below half the reserve (here: the disk under a shared pool filled by something else),
/// creates, forks, snapshots and imports are refused with a 507 `pool_full` that says what is
/// free and what to do, and create nothing; once space is back they work.
#[test]
fn a_pool_below_its_reserve_refuses_new_work_with_507() {
    let d = tcp_daemon(&[]);
    let alice = Tenant::new(&d, "alice");
    let id = alice.up(r#"{"image":"base","runtime":"runc"}"#);
    let (code, snap) = alice.http("POST", &format!("/v1/sandboxes/{id}/snapshots"), Some("{}"));
    assert_eq!(code, 201, "{snap}");
    let snap = snap["id"].as_str().unwrap().to_string();
    let filler = pool(&d).join("filler");
    let leave = RESERVE / 4;
    let size = pool_free(&d) - leave;
    let st = Command::new("fallocate")
        .args(["-l", &size.to_string()])
        .arg(&filler)
        .status()
        .unwrap();
    assert!(st.success());
    Command::new("sync").status().unwrap();
    eventually(10, "the pool is below half its reserve", || {
        pool_free(&d) < RESERVE / 2
    });
    let sandboxes_before = entries(&pool(&d).join("sandboxes"));
    let snapshots_before = entries(&pool(&d).join("snapshots"));

    let resp = alice.http("POST", "/v1/sandboxes", Some(r#"{"image":"base"}"#));
    assert_pool_full(&resp, &d);
    assert!(resp.1["error"]["message"]
        .as_str()
        .unwrap()
        .contains("reserve"));
    assert_pool_full(
        &alice.http(
            "POST",
            "/v1/sandboxes",
            Some(&format!(r#"{{"from_snapshot":"{snap}"}}"#)),
        ),
        &d,
    );
    assert_pool_full(
        &alice.http(
            "POST",
            &format!("/v1/sandboxes/{id}/snapshots"),
            Some(r#"{"name":"refused"}"#),
        ),
        &d,
    );
    let root = cairn_test_support::base_rootfs()
        .to_str()
        .unwrap()
        .to_string();
    let import = d.http(
        Via::Unix,
        "POST",
        "/v1/images",
        None,
        Some(&format!(r#"{{"name":"second","path":"{root}"}}"#)),
    );
    assert_error(&import, 507, "pool_full", "pool is full");
    let run = alice.cairn(&["up", "--image", "base"]);
    assert_eq!(run.code, 1);
    assert!(run.stderr.contains("pool is full"), "{run:?}");

    // Nothing was created.
    let (_, list) = alice.http("GET", "/v1/sandboxes", None);
    assert_eq!(list.as_array().unwrap().len(), 1);
    let (_, snaps) = alice.http("GET", "/v1/snapshots?all=true", None);
    assert_eq!(snaps.as_array().unwrap().len(), 1);
    let (_, images) = d.http(Via::Unix, "GET", "/v1/images", None, None);
    assert_eq!(images.as_array().unwrap().len(), 1);
    assert_eq!(entries(&pool(&d).join("sandboxes")), sandboxes_before);
    assert_eq!(entries(&pool(&d).join("snapshots")), snapshots_before);
    alice.assert_running(&id);

    std::fs::remove_file(&filler).unwrap();
    // btrfs frees the file's extents when the transaction commits.
    Command::new("sync").status().unwrap();
    eventually(60, "new sandboxes work once space is back", || {
        alice
            .http("POST", "/v1/sandboxes", Some(r#"{"image":"base"}"#))
            .0
            == 201
    });
    let (code, body) = alice.http("POST", &format!("/v1/sandboxes/{id}/snapshots"), Some("{}"));
    assert_eq!(code, 201, "{body}");
    assert_healthy(&d);
}

/// (7) With no reserve at all (`--pool-reserve 0`) sandboxes can fill the pool completely;
/// whatever then runs out of space mid-way (snapshots, their memory, forks) is still a 507
/// `pool_full`, never a 500, and leaves nothing half-written.
#[test]
fn out_of_space_mid_way_is_a_507_and_leaves_nothing_behind() {
    let d = tcp_daemon(&["--pool-reserve", "0"]);
    let alice = Tenant::new(&d, "alice");
    let bob = Tenant::new(&d, "bob");
    let bobs = bob.up(r#"{"image":"base","memory":"256M"}"#);
    let (code, first) = bob.http(
        "POST",
        &format!("/v1/sandboxes/{bobs}/snapshots"),
        Some("{}"),
    );
    assert_eq!(code, 201, "{first}");
    let hog = alice.up(r#"{"image":"base","runtime":"runc"}"#);
    let (_, out) = alice.fill(&hog, "/root/hog", 4000);
    assert!(refused_for_space(&out), "{out}");
    let (_, out) = alice.fill(&hog, "/root/crumbs", 100);
    assert!(refused_for_space(&out), "{out}");

    let path = format!("/v1/sandboxes/{bobs}/snapshots");
    let mut codes = Vec::new();
    for body in [r#"{"stateful":true}"#, r#"{}"#, r#"{"stateful":true}"#] {
        let resp = bob.http("POST", &path, Some(body));
        if resp.0 != 201 {
            assert_pool_full(&resp, &d);
        }
        codes.push(resp.0);
    }
    let resp = bob.http(
        "POST",
        "/v1/sandboxes",
        Some(&format!(
            r#"{{"from_snapshot":"{}"}}"#,
            first["id"].as_str().unwrap()
        )),
    );
    if resp.0 != 201 {
        assert_pool_full(&resp, &d);
    }
    codes.push(resp.0);
    eprintln!("with the pool full: stateful, files-only, stateful snapshot, fork: {codes:?}");
    // A memory checkpoint needs data space, of which there is none: refused, not a 500.
    assert_eq!(codes[0], 507, "{codes:?}");
    // Rows and trees agree: every snapshot listed is ready and has its directory; no other
    // directory is left; every sandbox listed has its root.
    let (_, snaps) = bob.http("GET", "/v1/snapshots?all=true", None);
    let snaps = snaps.as_array().unwrap().clone();
    assert!(snaps.iter().all(|s| s["state"] == "ready"), "{snaps:?}");
    let mut ids: Vec<String> = snaps
        .iter()
        .map(|s| s["id"].as_str().unwrap().to_string())
        .collect();
    ids.sort();
    assert_eq!(entries(&pool(&d).join("snapshots")), ids);
    let mut roots: Vec<String> = [&alice, &bob]
        .iter()
        .flat_map(|t| {
            t.http("GET", "/v1/sandboxes", None)
                .1
                .as_array()
                .unwrap()
                .clone()
        })
        .map(|s| s["id"].as_str().unwrap().to_string())
        .collect();
    roots.sort();
    assert_eq!(entries(&pool(&d).join("sandboxes")), roots);
    bob.assert_running(&bobs);

    let (code, _) = alice.http("DELETE", &format!("/v1/sandboxes/{hog}?force=true"), None);
    assert_eq!(code, 204);
    eventually(60, "snapshots with memory work again", || {
        bob.http("POST", &path, Some(r#"{"stateful":true}"#)).0 == 201
    });
    assert_healthy(&d);
}

/// A private bridge and subnet for a `nat` daemon, clear of `cairn0` and of other tests'
/// (`cqd<pid><n>`, `10.<230+n>.<pid>.0/24`).
fn private_network() -> Vec<String> {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    let n = N.fetch_add(1, Ordering::SeqCst);
    let pid = std::process::id();
    vec![
        "--bridge".into(),
        format!("cqd{}{n}", pid % 100_000),
        "--subnet".into(),
        format!("10.{}.{}.0/24", 230 + n, pid % 250),
    ]
}

/// Bytes of the files below `dir`.
fn dir_bytes(dir: &Path) -> u64 {
    let mut total = 0;
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let meta = entry.metadata().unwrap();
        total += if meta.is_dir() {
            dir_bytes(&entry.path())
        } else {
            meta.len()
        };
    }
    total
}

/// (8) Nothing a sandbox writes lands outside the pool, where no disk limit applies: not
/// its init's output (a host file under gVisor, reachable through `/proc/1/fd/1`), not the
/// resolver file a `nat` sandbox gets bound from the host.
fn nothing_is_written_outside_the_pool(runtime: &str) {
    let net = private_network();
    let args: Vec<&str> = net.iter().map(String::as_str).collect();
    let d = tcp_daemon(&args);
    let alice = Tenant::new(&d, "alice");
    let id = alice.up(&format!(
        r#"{{"image":"base","runtime":"{runtime}","network":"nat","disk":"64M"}}"#
    ));
    let run_dir = d.home.join("run").join(&id);
    let before = dir_bytes(&run_dir);
    for target in ["/proc/1/fd/1", "/proc/1/fd/2", "/etc/resolv.conf"] {
        let script = format!("dd if=/dev/zero of={target} bs=1M count=100 2>&1; true");
        alice.cairn(&["exec", &id, &script]).ok();
    }
    let after = dir_bytes(&run_dir);
    assert!(
        after < before + MIB,
        "the sandbox wrote {} bytes into the host's {}",
        after - before,
        run_dir.display()
    );
    let run = alice.cairn(&["exec", &id, "grep -c nameserver /etc/resolv.conf || true"]);
    run.ok();
    alice.assert_running(&id);
    assert_healthy(&d);
}

both_runtimes!(
    writes_stop_at_the_disk_limit,
    a_hog_cannot_fail_other_snapshots,
    limits_survive_restore_fork_restart,
    a_subvolume_cannot_escape_the_disk_limit,
    nothing_is_written_outside_the_pool,
);
