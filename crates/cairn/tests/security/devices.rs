//! Finding 2: device nodes reached the host. A tar holding a block node for
//! the loop devices, imported as an image, let a gVisor sandbox read cairnd's
//! own pool device (gVisor's gofer opened the host node; runc's device cgroup
//! happened to stop it). Now imports drop device nodes, FIFOs and sockets
//! (counted in the answer), and the pool is mounted `nodev`, so no node in it
//! opens, whoever made it: an image, `mknod` in a runc sandbox (which has
//! CAP_MKNOD), or a process on the host.
//!
//! And the part of finding 5 that is about images: a 100 GiB sparse file in a
//! small tar imports in moments and takes about its data in the pool, and a
//! gzip bomb stops at the image size cap leaving nothing behind.

use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use cairn_test_support::{both_runtimes, Daemon, Via};

use crate::assert_healthy;

/// The btrfs magic, at byte 64 KiB + 64 of every btrfs device: what a
/// sandbox reading the pool's device would see.
const BTRFS_MAGIC: &str = "_BHRfS_M";
/// Reads the 8 bytes of `BTRFS_MAGIC`'s place from the file `$1` (busybox).
const READ_MAGIC: &str = "head -c 65608 \"$1\" | tail -c 8";

fn daemon() -> Daemon {
    Daemon::with_base(
        env!("CARGO_BIN_EXE_cairnd"),
        env!("CARGO_BIN_EXE_cairn"),
        &[],
    )
}

/// Runs a host shell script (as root), failing the test if it fails.
fn host_sh(script: &str) -> String {
    let out = Command::new("sh").arg("-c").arg(script).output().unwrap();
    assert!(
        out.status.success(),
        "host script failed: {script}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// (per-mount options, source) of the topmost mount on the daemon's pool.
fn pool_mount(d: &Daemon) -> (String, String) {
    let pool = d.home.join("pool").canonicalize().unwrap();
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .rev()
        .find_map(|l| {
            let f: Vec<&str> = l.split(' ').collect();
            let dash = f.iter().position(|x| *x == "-")?;
            (Path::new(f[4]) == pool).then(|| (f[5].to_string(), f[dash + 2].to_string()))
        })
        .expect("the pool is mounted")
}

/// The loop device under the daemon's pool, with its device number, after
/// checking from the host that it does hold the btrfs magic where a reader
/// would find it (so the "never read" assertions cannot pass vacuously).
fn pool_device(d: &Daemon) -> (PathBuf, u64) {
    let (_, source) = pool_mount(d);
    let dev = PathBuf::from(&source);
    let md = std::fs::metadata(&dev).unwrap();
    assert!(md.file_type().is_block_device(), "{source}");
    let magic = host_sh(&format!("set -- {source}; {READ_MAGIC}"));
    assert_eq!(magic, BTRFS_MAGIC, "the pool device should hold btrfs");
    (dev, md.rdev())
}

fn major_minor(rdev: u64) -> (u64, u64) {
    (
        (rdev >> 8) & 0xfff,
        (rdev & 0xff) | ((rdev >> 12) & 0xfff00),
    )
}

/// Every special file under `dir` on the host (images must hold none).
fn special_files(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(d) = pending.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let e = e.unwrap();
            let ft = e.file_type().unwrap();
            if ft.is_dir() {
                pending.push(e.path());
            } else if !ft.is_file() && !ft.is_symlink() {
                found.push(e.path());
            }
        }
    }
    found
}

/// The review's archive: busybox, plus a block node for the pool's own
/// device at /srv/pooldisk (outside /dev, which runtimes cover with their
/// own), /dev/loop7, a /dev/null-like node at an odd path, a /dev/mem-like
/// node, a FIFO and a hard link to the pool node.
fn hostile_archive(d: &Daemon, pool_rdev: u64) -> PathBuf {
    let (major, minor) = major_minor(pool_rdev);
    let dir = d.scratch().join("evil-root");
    let tar = d.scratch().join("evil.tar");
    host_sh(&format!(
        r#"set -e
D={dir}
cp -a {base}/. $D/
mkdir -p $D/srv $D/dev
mknod $D/srv/pooldisk b {major} {minor}
mknod $D/dev/loop7 b 7 0
mknod $D/srv/nullish c 1 3
mknod $D/srv/mem c 1 1
mkfifo $D/srv/fifo
ln $D/srv/pooldisk $D/srv/pool-alias
echo hello > $D/srv/hello
tar -C $D -cf {tar} .
rm -rf $D
"#,
        dir = dir.display(),
        base = cairn_test_support::base_rootfs().display(),
        tar = tar.display(),
    ));
    tar
}

/// Import → image → open the node in a sandbox: the nodes are left out (the
/// answer counts them), the image holds no special file, and a sandbox sees
/// none of them and never reads the pool's device.
fn device_nodes_in_an_archive_never_reach_a_sandbox(runtime: &str) {
    let d = daemon();
    let (_, pool_rdev) = pool_device(&d);
    let tar = hostile_archive(&d, pool_rdev);

    let r = d.cairn(&[
        "--json",
        "image",
        "import",
        tar.to_str().unwrap(),
        "--name",
        "evil",
    ]);
    let img = r.json();
    assert_eq!(
        img["dropped"],
        serde_json::json!({ "char_devices": 2, "block_devices": 3, "fifos": 1, "sockets": 0 }),
        "{r:?}"
    );
    // The same count is kept with the image, and a person is told.
    let (code, list) = d.http(Via::Unix, "GET", "/v1/images", None, None);
    assert_eq!(code, 200);
    let listed = list
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["name"] == "evil")
        .unwrap()
        .clone();
    assert_eq!(listed["dropped"]["block_devices"], 3, "{listed}");
    let human = d.cairn(&["image", "import", tar.to_str().unwrap(), "--name", "evil2"]);
    assert_eq!(human.ok(), "evil2");
    assert!(
        human.stderr.contains("3 block devices") && human.stderr.contains("1 named pipe"),
        "{human:?}"
    );
    let image_dir = d.home.join("pool/images").join(img["id"].as_str().unwrap());
    assert!(image_dir.join("bin/busybox").is_file());
    assert_eq!(special_files(&image_dir), Vec::<PathBuf>::new());

    let id = d
        .cairn(&["up", "--image", "evil", "--runtime", runtime])
        .ok();
    let r = d.cairn(&[
        "exec",
        &id,
        &format!(
            "for f in /srv/pooldisk /srv/pool-alias /srv/nullish /srv/mem /srv/fifo; do \
               test -e $f -o -L $f && echo present $f; done; \
             cat /srv/hello; \
             for f in /srv/pooldisk /srv/pool-alias /dev/loop7; do \
               set -- $f; {READ_MAGIC} 2>/dev/null; echo; done"
        ),
    ]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(
        !r.stdout.contains(BTRFS_MAGIC),
        "{runtime}: the sandbox read the pool's device: {r:?}"
    );
    assert!(!r.stdout.contains("present"), "{runtime}: {r:?}");
    assert!(r.stdout.starts_with("hello\n"), "{runtime}: {r:?}");

    // Nothing else was touched: the base image and the daemon are fine.
    let other = d
        .cairn(&["up", "--image", "base", "--runtime", runtime])
        .ok();
    assert_eq!(
        d.cairn(&["exec", &other, "cat /etc/cairn-image"]).ok(),
        "cairn-test-image"
    );
    d.cairn(&["destroy", "--force", &id]).ok();
    d.cairn(&["destroy", "--force", &other]).ok();
    assert_healthy(&d);
}

/// Defence in depth: a node that reaches the pool anyway (here planted by
/// the host into a running sandbox's root) does not open from inside, on
/// either runtime, because the pool is mounted nodev. /dev/zero's numbers
/// (1:5) are allowed by runc's device cgroup, so only nodev stops it there.
fn a_node_planted_in_the_pool_cannot_be_opened_from_a_sandbox(runtime: &str) {
    let d = daemon();
    let (_, pool_rdev) = pool_device(&d);
    let (major, minor) = major_minor(pool_rdev);
    let id = d
        .cairn(&["up", "--image", "base", "--runtime", runtime])
        .ok();
    let root = d.home.join("pool/sandboxes").join(&id);
    assert!(
        root.join("etc/cairn-image").is_file(),
        "{} is not the sandbox's root",
        root.display()
    );
    host_sh(&format!(
        "mknod {r}/root/zero c 1 5 && mknod {r}/root/pooldisk b {major} {minor}",
        r = root.display()
    ));

    let r = d.cairn(&[
        "exec",
        &id,
        &format!(
            "if head -c 4 /root/zero | wc -c | grep -qx 4; then echo opened zero; fi; \
             set -- /root/pooldisk; {READ_MAGIC} 2>&1; echo"
        ),
    ]);

    assert_eq!(r.code, 0, "{r:?}");
    assert!(!r.stdout.contains("opened zero"), "{runtime}: {r:?}");
    assert!(
        !r.stdout.contains(BTRFS_MAGIC),
        "{runtime}: the sandbox read the pool's device: {r:?}"
    );
    d.cairn(&["destroy", "--force", &id]).ok();
    assert_healthy(&d);
}

/// `mknod` inside a sandbox: runc grants CAP_MKNOD, so the node can be made,
/// but it does not open (nodev); gVisor refuses device nodes or their opening.
/// Either way the pool's device is never read.
fn a_node_made_inside_a_sandbox_cannot_be_opened(runtime: &str) {
    let d = daemon();
    let (_, pool_rdev) = pool_device(&d);
    let (major, minor) = major_minor(pool_rdev);
    let id = d
        .cairn(&["up", "--image", "base", "--runtime", runtime])
        .ok();

    let r = d.cairn(&[
        "exec",
        &id,
        &format!(
            "mknod /root/zero c 1 5 && echo made zero; \
             if head -c 4 /root/zero | wc -c | grep -qx 4; then echo opened zero; fi; \
             mknod /tmp/disk b {major} {minor} && echo made disk; \
             set -- /tmp/disk; {READ_MAGIC} 2>&1; echo"
        ),
    ]);

    assert_eq!(r.code, 0, "{r:?}");
    if runtime == "runc" {
        // The capability is there (the attack is real), the open is what fails.
        assert!(
            r.stdout.contains("made zero") && r.stdout.contains("made disk"),
            "{r:?}"
        );
        assert!(r.stderr.contains("Permission denied"), "{r:?}");
    } else {
        // gVisor's own kernel refuses to make device nodes on the gofer's
        // file system at all (this held before the fix too).
        assert!(
            !r.stdout.contains("made zero") && !r.stdout.contains("made disk"),
            "{r:?}"
        );
    }
    assert!(!r.stdout.contains("opened zero"), "{runtime}: {r:?}");
    assert!(!r.stdout.contains(BTRFS_MAGIC), "{runtime}: {r:?}");
    d.cairn(&["destroy", "--force", &id]).ok();
    assert_healthy(&d);
}

both_runtimes!(
    device_nodes_in_an_archive_never_reach_a_sandbox,
    a_node_planted_in_the_pool_cannot_be_opened_from_a_sandbox,
    a_node_made_inside_a_sandbox_cannot_be_opened,
);

/// The pool carries nodev (and not nosuid, which would break sudo in
/// images), also after a restart.
#[test]
fn the_pool_is_mounted_nodev_but_not_nosuid_across_restarts() {
    let mut d = daemon();
    for round in ["first start", "restart"] {
        let (o, _) = pool_mount(&d);
        let has = |opt: &str| o.split(',').any(|x| x == opt);
        assert!(has("nodev"), "{round}: {o}");
        assert!(!has("nosuid"), "{round}: {o}");
        d.restart();
    }
    assert_healthy(&d);
}

/// Bytes the pool has in use.
fn pool_used(d: &Daemon) -> u64 {
    let out = host_sh(&format!(
        "sync; stat -f -c '%b %f %S' {}",
        d.home.join("pool").display()
    ));
    let v: Vec<u64> = out.split_whitespace().map(|x| x.parse().unwrap()).collect();
    (v[0] - v[1]) * v[2]
}

/// A small tar holding a 100 GiB (GNU) sparse file imports in moments, the
/// pool grows by about its data, and a sandbox reads its bytes back.
#[test]
fn a_100_gib_sparse_file_in_a_small_tar_imports_quickly_and_takes_its_data() {
    let d = daemon();
    let dir = d.scratch().join("sparse-src");
    let tar = d.scratch().join("sparse.tar");
    host_sh(&format!(
        r#"set -e
mkdir -p {dir}
truncate -s 100G {dir}/big
printf needle | dd of={dir}/big bs=1 seek=$((50 << 30)) conv=notrunc 2>/dev/null
printf tail | dd of={dir}/big bs=1 seek=$(((100 << 30) - 4)) conv=notrunc 2>/dev/null
tar -C {base} -cSf {tar} . -C {dir} big
rm -rf {dir}
"#,
        dir = dir.display(),
        base = cairn_test_support::base_rootfs().display(),
        tar = tar.display(),
    ));
    let archive_len = std::fs::metadata(&tar).unwrap().len();
    assert!(archive_len < 8 << 20, "{archive_len} bytes");
    let before = pool_used(&d);

    let started = Instant::now();
    d.cairn(&["image", "import", tar.to_str().unwrap(), "--name", "sparse"])
        .ok();
    let took = started.elapsed();

    assert!(
        took < Duration::from_secs(60),
        "importing a {archive_len}-byte archive took {took:?}"
    );
    let grown = pool_used(&d).saturating_sub(before);
    assert!(
        grown < 256 << 20,
        "the pool grew by {grown} bytes for a {archive_len}-byte archive"
    );
    let id = d
        .cairn(&["up", "--image", "sparse", "--runtime", "runc"])
        .ok();
    let r = d.cairn(&[
        "exec",
        &id,
        "stat -c %s /big; dd if=/big bs=1 skip=$((50 << 30)) count=6 2>/dev/null; echo; tail -c 4 /big",
    ]);
    assert_eq!(r.stdout, "107374182400\nneedle\ntail", "{r:?}");
    d.cairn(&["destroy", "--force", &id]).ok();
    assert_healthy(&d);
    eprintln!(
        "sparse import: {archive_len}-byte archive, 100 GiB file, {took:?}, pool grew {} KiB",
        grown >> 10
    );
}

/// The review's gzip bomb (11 MB of gzip, 11 GB of zeros) is refused at the
/// default 10 GiB cap with a clear 4xx that names the limit, and leaves no
/// image row and no subvolume behind.
#[test]
fn a_gzip_bomb_is_refused_at_the_image_size_cap_and_leaves_nothing_behind() {
    let d = daemon();
    let bomb = d.scratch().join("bomb.tar.gz");
    // A tar header for one 11 GB file, then its zeros: gzip -9 of 64 MiB of
    // zeros, repeated (a multi-member gzip stream is valid gzip), quick to make.
    host_sh(&format!(
        r#"set -e
cd {home}
truncate -s 11000000000 zeros
tar --format=gnu -cf - zeros | head -c 512 > head || true
truncate -s 0 zeros && truncate -s 64M zeros
gzip -c head > {bomb}
gzip -9 -c zeros > piece.gz
i=0; while [ $i -lt 164 ]; do cat piece.gz >> {bomb}; i=$((i + 1)); done
rm -f zeros head piece.gz
"#,
        home = d.home.display(),
        bomb = bomb.display(),
    ));
    let bomb_len = std::fs::metadata(&bomb).unwrap().len();
    assert!(bomb_len < 16 << 20, "{bomb_len} bytes");
    let body = serde_json::json!({ "name": "bomb", "path": bomb.to_str().unwrap() }).to_string();

    let started = Instant::now();
    let resp = d.http(Via::Unix, "POST", "/v1/images", None, Some(&body));
    let took = started.elapsed();

    cairn_test_support::assert_error(&resp, 400, "invalid_argument", "10 GiB");
    let msg = resp.1["error"]["message"].as_str().unwrap();
    assert!(msg.contains("--max-image-size"), "{msg}");
    let (_, list) = d.http(Via::Unix, "GET", "/v1/images", None, None);
    let names: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, vec!["base"]);
    assert_eq!(
        std::fs::read_dir(d.home.join("pool/images"))
            .unwrap()
            .count(),
        1,
        "only base's subvolume is left"
    );
    assert_healthy(&d);
    eprintln!("gzip bomb: {bomb_len} bytes refused in {took:?}");
}
