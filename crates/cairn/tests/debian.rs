//! A real distribution as the image: Debian bookworm made by debootstrap
//! (cached under target/ between runs), run on both runtimes.

#![allow(clippy::unwrap_used)]

use std::path::PathBuf;

use cairn_test_support::Daemon;

fn debian_rootfs() -> PathBuf {
    cairn_test_support::debian_rootfs(std::path::Path::new(env!("CARGO_TARGET_TMPDIR")))
}

#[test]
fn a_debootstrapped_debian_runs_on_both_runtimes() {
    let root = debian_rootfs();
    let d = Daemon::start(env!("CARGO_BIN_EXE_cairnd"), env!("CARGO_BIN_EXE_cairn"));
    d.cairn(&[
        "image",
        "import",
        root.to_str().unwrap(),
        "--name",
        "debian",
    ])
    .ok();
    for rt in ["runc", "gvisor"] {
        let id = d.cairn(&["up", "--image", "debian", "--runtime", rt]).ok();
        let r = d.cairn(&[
            "exec",
            &id,
            "cat /etc/debian_version; dpkg-query -W -f='${Package}\\n' bash; id -un",
        ]);
        assert_eq!(r.code, 0, "{rt}: {r:?}");
        let lines: Vec<&str> = r.stdout.lines().collect();
        assert!(lines[0].starts_with("12"), "{rt}: {r:?}");
        assert_eq!(&lines[1..], ["bash", "root"], "{rt}: {r:?}");
        d.cairn(&["destroy", "--force", &id]).ok();
    }
}
