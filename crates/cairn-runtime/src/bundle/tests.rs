//! Tests of the OCI bundle: what each runtime's spec holds.

use super::*;

const RUNC: Flavor = Flavor {
    nproc_in_sandbox: false,
    seccomp: true,
    criu_config: true,
    agent_admin: false,
};
const GVISOR: Flavor = Flavor {
    nproc_in_sandbox: true,
    seccomp: false,
    criu_config: false,
    agent_admin: true,
};

fn spec() -> SandboxSpec {
    SandboxSpec {
        hostname: "sbx-00000001".into(),
        rootfs: "/pool/sandboxes/sbx-00000001".into(),
        cpus: 0.5,
        memory_bytes: 256 << 20,
        pids_limit: 64,
        env: default_env(),
        workdir: "/root".into(),
        cgroups_path: "/cairn/sbx-00000001".into(),
        netns: None,
        resolv_conf: None,
        agent: None,
    }
}

#[test]
fn the_agent_is_the_init_with_its_binary_read_only_and_its_socket_directory() {
    let mut s = spec();
    s.agent = Some(AgentMounts {
        binary: "/usr/lib/cairn/cairn-agent".into(),
        socket_dir: "/var/lib/cairn/run/sbx-00000001/agent".into(),
    });
    let v = serde_json::to_value(build_spec(&s, GVISOR).unwrap()).unwrap();
    assert_eq!(
        v["process"]["args"],
        serde_json::json!(["/.cairn/agent", "init"])
    );
    let mounts = v["mounts"].as_array().unwrap();
    let bin = mounts
        .iter()
        .find(|m| m["destination"] == "/.cairn/agent")
        .unwrap();
    assert_eq!(bin["source"], "/usr/lib/cairn/cairn-agent");
    assert!(bin["options"].as_array().unwrap().iter().any(|o| o == "ro"));
    let sock = mounts
        .iter()
        .find(|m| m["destination"] == "/.cairn/sock")
        .unwrap();
    assert_eq!(sock["source"], "/var/lib/cairn/run/sbx-00000001/agent");
    // The secrets' tmpfs, never the root's disk.
    let secrets = mounts
        .iter()
        .find(|m| m["destination"] == "/run/secrets")
        .unwrap();
    assert_eq!(secrets["type"], "tmpfs");
    assert!(secrets["options"]
        .as_array()
        .unwrap()
        .iter()
        .any(|o| o == "noexec"));
    // gVisor's agent may set the hostname (CAP_SYS_ADMIN in its own kernel); runc's not.
    let has_admin = |v: &serde_json::Value| {
        v["process"]["capabilities"]["bounding"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c == "CAP_SYS_ADMIN")
    };
    assert!(has_admin(&v));
    assert!(!has_admin(
        &serde_json::to_value(build_spec(&s, RUNC).unwrap()).unwrap()
    ));
    // Without it, the shell init, without the capability nor the tmpfs.
    let v = serde_json::to_value(build_spec(&spec(), GVISOR).unwrap()).unwrap();
    assert_eq!(v["process"]["args"][0], "/bin/sh");
    assert!(!has_admin(&v));
    assert!(!v["mounts"]
        .as_array()
        .unwrap()
        .iter()
        .any(|m| m["destination"] == "/run/secrets"));
}

#[test]
fn spec_carries_limits_hostname_and_hardening() {
    let v = serde_json::to_value(build_spec(&spec(), RUNC).unwrap()).unwrap();
    assert_eq!(v["hostname"], "sbx-00000001");
    assert_eq!(v["linux"]["resources"]["memory"]["limit"], 256 << 20);
    assert_eq!(v["linux"]["resources"]["cpu"]["quota"], 50_000);
    assert_eq!(v["linux"]["resources"]["pids"]["limit"], 64);
    assert!(!v["process"]["rlimits"]
        .as_array()
        .unwrap()
        .iter()
        .any(|r| r["type"] == "RLIMIT_NPROC"));
    // Open files start at the usual soft limit, whatever cairnd raised its own to.
    let nofile = v["process"]["rlimits"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["type"] == "RLIMIT_NOFILE")
        .unwrap()
        .clone();
    assert_eq!(nofile["soft"], SANDBOX_NOFILE);
    assert!(nofile["hard"].as_u64().unwrap() >= SANDBOX_NOFILE);
    assert_eq!(v["process"]["noNewPrivileges"], true);
    assert!(v["linux"]["readonlyPaths"]
        .as_array()
        .unwrap()
        .iter()
        .any(|p| p == "/proc/sys"));
    let caps = v["process"]["capabilities"]["bounding"].as_array().unwrap();
    assert!(!caps.iter().any(|c| c == "CAP_SYS_ADMIN"));
    assert!(caps.iter().any(|c| c == "CAP_CHOWN"));
    assert!(!caps.iter().any(|c| c == "CAP_NET_RAW"));
    assert_eq!(
        v["linux"]["sysctl"]["net.ipv4.ping_group_range"],
        "0 2147483647"
    );
    let ns: Vec<&str> = v["linux"]["namespaces"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["type"].as_str().unwrap())
        .collect();
    for want in ["pid", "mount", "network", "uts", "ipc"] {
        assert!(ns.contains(&want), "{want} missing in {ns:?}");
    }
}

#[test]
fn a_cairn_namespace_is_joined_by_path() {
    let mut sp = spec();
    assert_eq!(netns_path(&build_spec(&sp, RUNC).unwrap()), None);
    sp.netns = Some("/var/lib/cairn/run/netns/sbx-00000001".into());
    let built = build_spec(&sp, RUNC).unwrap();
    assert_eq!(netns_path(&built), sp.netns);
    let v = serde_json::to_value(&built).unwrap();
    let net = v["linux"]["namespaces"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["type"] == "network")
        .unwrap()
        .clone();
    assert_eq!(net["path"], "/var/lib/cairn/run/netns/sbx-00000001");
}

#[test]
fn runc_sandboxes_cannot_make_btrfs_subvolumes() {
    let v = serde_json::to_value(build_spec(&spec(), RUNC).unwrap()).unwrap();
    let seccomp = &v["linux"]["seccomp"];
    assert_eq!(seccomp["defaultAction"], "SCMP_ACT_ALLOW");
    let rules = seccomp["syscalls"].as_array().unwrap();
    // BTRFS_IOC_SUBVOL_CREATE = _IOW(0x94, 14, struct btrfs_ioctl_vol_args): 0x5000940e.
    let refused = |cmd: u64| {
        rules.iter().any(|r| {
            let a = &r["args"][0];
            r["names"][0] == "ioctl"
                && r["action"] == "SCMP_ACT_ERRNO"
                && r["errnoRet"] == 1
                && a["index"] == 1
                && a["op"] == "SCMP_CMP_MASKED_EQ"
                && cmd & a["value"].as_u64().unwrap() == a["valueTwo"].as_u64().unwrap()
        })
    };
    assert!(refused(0x5000_940e));
    assert!(
        refused(0xdead_beef_5000_940e),
        "bits above the ioctl number are ignored"
    );
    assert!(refused(0x5000_9401) && refused(0x5000_9417) && refused(0x5000_9418));
    assert!(
        !refused(0x4004_9409),
        "FICLONE (reflink copies) stays allowed"
    );
    // gVisor passes no btrfs ioctl to the host (and applies no OCI seccomp by default).
    let v = serde_json::to_value(build_spec(&spec(), GVISOR).unwrap()).unwrap();
    assert!(v["linux"]["seccomp"].is_null());
}

#[test]
fn gvisor_caps_processes_with_nproc_and_gives_the_sentry_headroom() {
    let v = serde_json::to_value(build_spec(&spec(), GVISOR).unwrap()).unwrap();
    assert_eq!(
        v["linux"]["resources"]["pids"]["limit"],
        64 + i64::from(GVISOR_PIDS_HEADROOM)
    );
    let nproc = v["process"]["rlimits"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["type"] == "RLIMIT_NPROC")
        .unwrap()
        .clone();
    assert_eq!(nproc["hard"], 64);
}

#[test]
fn bundle_is_written_atomically_with_a_tmp_dir_in_the_root() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = spec();
    s.rootfs = dir.path().join("root");
    std::fs::create_dir(&s.rootfs).unwrap();
    write_bundle(&dir.path().join("bundle"), &s, RUNC).unwrap();
    let text = std::fs::read_to_string(dir.path().join("bundle/config.json")).unwrap();
    assert!(text.contains("sbx-00000001"));
    assert!(s.rootfs.join("tmp").is_dir());
    assert!(!dir.path().join("bundle/config.tmp").exists());
}

#[test]
fn runc_bundles_name_their_criu_configuration_and_trade_host_stdio() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = spec();
    s.rootfs = dir.path().join("root");
    std::fs::create_dir(&s.rootfs).unwrap();
    let bundle = dir.path().join("bundle");
    write_bundle(&bundle, &s, RUNC).unwrap();
    let v: serde_json::Value =
        serde_json::from_slice(&std::fs::read(bundle.join("config.json")).unwrap()).unwrap();
    let conf = v["annotations"][crate::criu::CONFIG_ANNOTATION]
        .as_str()
        .unwrap();
    assert_eq!(Path::new(conf), bundle.join(crate::criu::CONFIG_FILE));
    let text = std::fs::read_to_string(conf).unwrap();
    assert!(text.contains("network-lock nftables") && text.contains("tcp-close"));
    assert!(v["process"]["args"][2]
        .as_str()
        .unwrap()
        .starts_with(INIT_STDIO_PREFIX));

    let gvisor = dir.path().join("gvisor");
    write_bundle(&gvisor, &s, GVISOR).unwrap();
    let v: serde_json::Value =
        serde_json::from_slice(&std::fs::read(gvisor.join("config.json")).unwrap()).unwrap();
    assert!(v["annotations"]
        .get(crate::criu::CONFIG_ANNOTATION)
        .is_none());
    // gVisor's init lets go of the host's init.log too (a sandbox could fill it).
    assert_eq!(
        v["process"]["args"][2],
        format!("{INIT_STDIO_PREFIX}{}", INIT_ARGS[2])
    );
    assert!(!gvisor.join(crate::criu::CONFIG_FILE).exists());
}
