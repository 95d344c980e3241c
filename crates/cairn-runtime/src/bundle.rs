//! Writes the OCI bundle a sandbox runs from: `config.json` built with the
//! `oci-spec` crate. Namespaces (pid, mount, network, uts, ipc), cgroup limits
//! for cpu, memory and pids, no new privileges, a safe default capability
//! set, read-only `/proc/sys`, hostname = sandbox id. For runc, also the
//! CRIU configuration its checkpoints and restores use, and a seccomp filter that
//! refuses making btrfs subvolumes (which would escape the sandbox's disk limit).

use std::collections::HashSet;
use std::io::Write;
use std::path::{Path, PathBuf};

use oci_spec::runtime::{
    Arch, Capability, LinuxBuilder, LinuxCapabilitiesBuilder, LinuxCpuBuilder, LinuxMemoryBuilder,
    LinuxNamespaceBuilder, LinuxNamespaceType, LinuxPidsBuilder, LinuxResourcesBuilder,
    LinuxSeccomp, LinuxSeccompAction, LinuxSeccompArgBuilder, LinuxSeccompBuilder,
    LinuxSeccompOperator, LinuxSyscallBuilder, Mount, MountBuilder, PosixRlimitBuilder,
    PosixRlimitType, ProcessBuilder, RootBuilder, Spec, SpecBuilder,
};

use crate::RuntimeError;

/// The command every sandbox runs as its init: a shell that reaps orphans and
/// exits cleanly on SIGTERM, plus a spawner that runs each line written to
/// [`SPAWN_FIFO`] as a detached process. Detached processes descend from the
/// container's init, which is what lets gVisor checkpoint and restore them
/// (processes started by `runsc exec` are not restorable).
pub const INIT_ARGS: [&str; 3] = [
    "/bin/sh",
    "-c",
    "trap 'exit 0' TERM INT; \
     if mkfifo -m 600 /dev/cairn-spawn 2>/dev/null; then \
       (exec 3<>/dev/cairn-spawn; while read -r line <&3; do /bin/sh -c \"$line\" </dev/null >/dev/null 2>&1 & done) & \
     fi; \
     while :; do sleep 3600 & wait $!; done",
];

/// What a sandbox's init runs first: it starts with the runtime's stdio, host files
/// (`bundle/init.log`), and trades them for the container's own `/dev/null`. Under runc,
/// CRIU can only checkpoint open files it finds inside the container; under gVisor, any
/// process of the sandbox could otherwise write without limit into the host's `init.log`
/// through `/proc/1/fd/1`, outside the pool and its disk limits.
pub const INIT_STDIO_PREFIX: &str = "exec </dev/null >/dev/null 2>&1; ";

/// The init's argv: the agent's (`/.cairn/agent init`) when the sandbox has it, else
/// [`INIT_ARGS`] after [`INIT_STDIO_PREFIX`], under both runtimes.
pub fn init_args_for(agent: Option<&AgentMounts>) -> Vec<String> {
    match agent {
        Some(_) => vec![
            cairn_agent::proto::BINARY_PATH.to_string(),
            "init".to_string(),
        ],
        None => init_args(),
    }
}

/// The shell init's argv: [`INIT_ARGS`] after [`INIT_STDIO_PREFIX`].
pub fn init_args() -> Vec<String> {
    let mut args: Vec<String> = INIT_ARGS.iter().map(|s| s.to_string()).collect();
    args[2] = format!("{INIT_STDIO_PREFIX}{}", args[2]);
    args
}

/// The cgroup under which every sandbox gets `<parent>/<id>`.
pub const CGROUP_PARENT: &str = "/cairn";

/// The open-file soft limit a sandbox's processes start with (the usual default), whatever
/// cairnd raised its own to.
pub const SANDBOX_NOFILE: u64 = 1024;

/// The FIFO inside a sandbox whose lines the init runs as detached processes.
pub const SPAWN_FIFO: &str = "/dev/cairn-spawn";

/// The capabilities a sandbox's processes keep: Docker's default set without
/// `CAP_NET_RAW`, with which a sandbox could forge packets and ARP replies on the
/// `nat` bridge (take another sandbox's address, or the gateway's). `ping` works
/// without it through ICMP datagram sockets ([`PING_GROUP_RANGE`]).
pub const DEFAULT_CAPABILITIES: [Capability; 13] = [
    Capability::Chown,
    Capability::DacOverride,
    Capability::Fsetid,
    Capability::Fowner,
    Capability::Mknod,
    Capability::Setgid,
    Capability::Setuid,
    Capability::Setfcap,
    Capability::Setpcap,
    Capability::NetBindService,
    Capability::SysChroot,
    Capability::Kill,
    Capability::AuditWrite,
];

/// Every group may open ICMP datagram ("ping") sockets in the sandbox's own network
/// namespace, which need no capability.
pub const PING_GROUP_RANGE: (&str, &str) = ("net.ipv4.ping_group_range", "0 2147483647");

/// Everything needed to describe one sandbox to a runtime.
#[derive(Clone, Debug)]
pub struct SandboxSpec {
    /// Hostname (the sandbox id).
    pub hostname: String,
    /// Absolute path of its writable root filesystem.
    pub rootfs: PathBuf,
    /// CPU limit in cores.
    pub cpus: f64,
    /// Memory limit in bytes.
    pub memory_bytes: u64,
    /// Maximum number of processes.
    pub pids_limit: u32,
    /// Environment of the init (and default for exec).
    pub env: Vec<String>,
    /// Working directory of the init.
    pub workdir: String,
    /// Cgroup path, e.g. `/cairn/sbx-…`.
    pub cgroups_path: PathBuf,
    /// A network namespace (file) Cairn made for it (`nat`), or `None` for a fresh
    /// loopback-only one from the runtime.
    pub netns: Option<PathBuf>,
    /// A file to bind over the sandbox's `/etc/resolv.conf` (`nat` sandboxes).
    pub resolv_conf: Option<PathBuf>,
    /// The agent, run as the sandbox's init; `None`: the shell init ([`INIT_ARGS`]).
    pub agent: Option<AgentMounts>,
}

/// What a sandbox whose init is the agent gets bound in (see docs/agent.md).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AgentMounts {
    /// The static `cairn-agent` binary on the host, bound read-only at
    /// [`cairn_agent::proto::BINARY_PATH`].
    pub binary: PathBuf,
    /// The sandbox's own host directory where cairnd listens, bound read-write at
    /// [`cairn_agent::proto::SOCKET_DIR`]. The sandbox may write there: cairnd only creates
    /// and removes its own socket in it.
    pub socket_dir: PathBuf,
}

/// The btrfs ioctls that make a subvolume (`BTRFS_IOC_SNAP_CREATE`, `SUBVOL_CREATE` and
/// their `_V2`s, by number). A runc sandbox's root is a btrfs subvolume whose writes count
/// against its disk limit; a subvolume made inside it would get a quota group of its own,
/// without that limit, so runc sandboxes are refused them (`EPERM`) by seccomp. gVisor
/// never passes btrfs ioctls to the host.
pub const SUBVOLUME_IOCTL_NRS: [u64; 4] = [1, 14, 23, 24];
/// `BTRFS_IOCTL_MAGIC`, the type byte of every btrfs ioctl number.
const BTRFS_IOCTL_MAGIC: u64 = 0x94;

/// The seccomp filter of runc sandboxes: everything allowed, but making btrfs subvolumes
/// (see [`SUBVOLUME_IOCTL_NRS`]). The ioctl number is matched on its type and number bytes
/// only, so that higher bits (size, direction, garbage above 32 bits) cannot slip past.
fn runc_seccomp() -> Result<LinuxSeccomp, RuntimeError> {
    let rules = SUBVOLUME_IOCTL_NRS
        .iter()
        .map(|nr| {
            LinuxSyscallBuilder::default()
                .names(vec!["ioctl".to_string()])
                .action(LinuxSeccompAction::ScmpActErrno)
                .errno_ret(libc::EPERM as u32)
                .args(vec![LinuxSeccompArgBuilder::default()
                    .index(1usize)
                    .value(0xffffu64)
                    .value_two((BTRFS_IOCTL_MAGIC << 8) | nr)
                    .op(LinuxSeccompOperator::ScmpCmpMaskedEq)
                    .build()
                    .map_err(spec_err)?])
                .build()
                .map_err(spec_err)
        })
        .collect::<Result<Vec<_>, _>>()?;
    // Every architecture this host's processes can use, so 32-bit programs keep working.
    let architectures = if cfg!(target_arch = "aarch64") {
        vec![Arch::ScmpArchAarch64, Arch::ScmpArchArm]
    } else {
        vec![Arch::ScmpArchX86_64, Arch::ScmpArchX86, Arch::ScmpArchX32]
    };
    LinuxSeccompBuilder::default()
        .default_action(LinuxSeccompAction::ScmpActAllow)
        .architectures(architectures)
        .syscalls(rules)
        .build()
        .map_err(spec_err)
}

/// Host threads gVisor's sentry and gofer need beyond the sandbox's own
/// processes (its processes are goroutines, not host tasks).
pub const GVISOR_PIDS_HEADROOM: u32 = 512;

fn spec_err(e: impl std::fmt::Display) -> RuntimeError {
    RuntimeError::Spec(e.to_string())
}

/// The default environment: a PATH that works in common images.
pub fn default_env() -> Vec<String> {
    vec![
        "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".to_string(),
        "HOME=/root".to_string(),
    ]
}

/// What one runtime's bundles have that another's do not. Each runtime passes its own
/// ([`crate::Runtime::write_bundle`]), so that the bundle code never asks which runtime it
/// writes for. The default is a plain bundle: none of these.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Flavor {
    /// The sandbox's processes are capped by `RLIMIT_NPROC`, which the runtime's own kernel
    /// enforces per sandbox, and the pids cgroup, which counts the runtime's host threads,
    /// gets [`GVISOR_PIDS_HEADROOM`] above the limit (gVisor). Otherwise the pids cgroup
    /// counts the sandbox's processes (`RLIMIT_NPROC` would count every root process on the
    /// host).
    pub nproc_in_sandbox: bool,
    /// Cairn's seccomp filter, which keeps btrfs ioctls from the host (runc; gVisor passes
    /// none to the host and applies no OCI seccomp).
    pub seccomp: bool,
    /// CRIU's configuration beside `config.json`, named by the
    /// [`crate::criu::CONFIG_ANNOTATION`] annotation (runc's memory checkpoints).
    pub criu_config: bool,
    /// The agent, as init, keeps `CAP_SYS_ADMIN` to set the hostname from `init` (it drops
    /// it for every process it starts). Only where that capability reaches no further than
    /// the sandbox's own kernel (gVisor).
    pub agent_admin: bool,
}

/// Builds the OCI spec for a sandbox, with what `flavor` adds.
pub fn build_spec(s: &SandboxSpec, flavor: Flavor) -> Result<Spec, RuntimeError> {
    let mut caps: HashSet<Capability> = DEFAULT_CAPABILITIES.into_iter().collect();
    if flavor.agent_admin && s.agent.is_some() {
        caps.insert(Capability::SysAdmin);
    }
    let capabilities = LinuxCapabilitiesBuilder::default()
        .bounding(caps.clone())
        .effective(caps.clone())
        .permitted(caps)
        .build()
        .map_err(spec_err)?;
    // Under runc the pids cgroup counts the sandbox's processes. Under gVisor it
    // counts the sentry's host threads, so the cgroup gets headroom and the
    // sandbox's own process count is capped by RLIMIT_NPROC, which gVisor's
    // kernel enforces per sandbox (under runc it would count every root
    // process on the host, so it is not used there).
    let (host_pids, mut rlimits) = match flavor.nproc_in_sandbox {
        false => (i64::from(s.pids_limit), Vec::new()),
        true => (
            i64::from(s.pids_limit) + i64::from(GVISOR_PIDS_HEADROOM),
            vec![PosixRlimitBuilder::default()
                .typ(PosixRlimitType::RlimitNproc)
                .hard(u64::from(s.pids_limit))
                .soft(u64::from(s.pids_limit))
                .build()
                .map_err(spec_err)?],
        ),
    };
    // cairnd raises its own open-file limit for its connections; sandboxes must not inherit
    // that: they start at the usual soft limit, below cairnd's hard one.
    let hard = rustix::process::getrlimit(rustix::process::Resource::Nofile)
        .maximum
        .unwrap_or(u64::MAX);
    rlimits.push(
        PosixRlimitBuilder::default()
            .typ(PosixRlimitType::RlimitNofile)
            .hard(hard)
            .soft(SANDBOX_NOFILE.min(hard))
            .build()
            .map_err(spec_err)?,
    );
    let process = ProcessBuilder::default()
        .terminal(false)
        .rlimits(rlimits)
        .args(init_args_for(s.agent.as_ref()))
        .env(s.env.clone())
        .cwd(s.workdir.clone())
        .no_new_privileges(true)
        .capabilities(capabilities)
        .build()
        .map_err(spec_err)?;
    let period: u64 = 100_000;
    // The OCI limit is signed: a memory size past i64::MAX (nonsense, and refused where
    // sizes are parsed) becomes the largest limit, never a negative one (no limit at all).
    let memory = i64::try_from(s.memory_bytes).unwrap_or(i64::MAX);
    let resources = LinuxResourcesBuilder::default()
        .memory(
            LinuxMemoryBuilder::default()
                .limit(memory)
                .swap(memory)
                .build()
                .map_err(spec_err)?,
        )
        .cpu(
            LinuxCpuBuilder::default()
                .period(period)
                .quota((s.cpus * period as f64).round().max(1000.0) as i64)
                .build()
                .map_err(spec_err)?,
        )
        .pids(
            LinuxPidsBuilder::default()
                .limit(host_pids)
                .build()
                .map_err(spec_err)?,
        )
        .build()
        .map_err(spec_err)?;
    let namespaces = [
        LinuxNamespaceType::Pid,
        LinuxNamespaceType::Mount,
        LinuxNamespaceType::Network,
        LinuxNamespaceType::Uts,
        LinuxNamespaceType::Ipc,
    ]
    .into_iter()
    .map(|t| {
        let mut ns = LinuxNamespaceBuilder::default().typ(t);
        if let (LinuxNamespaceType::Network, Some(path)) = (t, &s.netns) {
            ns = ns.path(path.clone());
        }
        ns.build().map_err(spec_err)
    })
    .collect::<Result<Vec<_>, _>>()?;
    let mut linux = LinuxBuilder::default();
    if flavor.seccomp {
        linux = linux.seccomp(runc_seccomp()?);
    }
    let linux = linux
        .namespaces(namespaces)
        .resources(resources)
        .cgroups_path(s.cgroups_path.clone())
        .masked_paths(oci_spec::runtime::get_default_maskedpaths())
        .readonly_paths(oci_spec::runtime::get_default_readonly_paths())
        .sysctl(std::collections::HashMap::from([(
            PING_GROUP_RANGE.0.to_string(),
            PING_GROUP_RANGE.1.to_string(),
        )]))
        .build()
        .map_err(spec_err)?;
    SpecBuilder::default()
        .version("1.0.2")
        .hostname(s.hostname.clone())
        .root(
            RootBuilder::default()
                .path(s.rootfs.clone())
                .readonly(false)
                .build()
                .map_err(spec_err)?,
        )
        .process(process)
        .mounts(mounts(
            &s.rootfs,
            s.resolv_conf.as_deref(),
            s.agent.as_ref(),
        )?)
        .linux(linux)
        .build()
        .map_err(spec_err)
}

/// The default mounts, without the host cgroup tree, plus `/tmp` bound to
/// the root filesystem's own `/tmp` so that files written there land in the
/// sandbox's subvolume (gVisor otherwise puts a private tmpfs on `/tmp`), and
/// `resolv_conf` over `/etc/resolv.conf` (read-only) when given, and the agent's binary
/// (read-only) and socket directory when the sandbox has the agent.
fn mounts(
    rootfs: &Path,
    resolv_conf: Option<&Path>,
    agent: Option<&AgentMounts>,
) -> Result<Vec<Mount>, RuntimeError> {
    let mut mounts: Vec<Mount> = oci_spec::runtime::get_default_mounts()
        .into_iter()
        .filter(|m| m.destination() != Path::new("/sys/fs/cgroup"))
        .collect();
    mounts.push(
        MountBuilder::default()
            .destination("/tmp")
            .typ("bind")
            .source(rootfs.join("tmp"))
            .options(vec!["rbind".to_string(), "rw".to_string()])
            .build()
            .map_err(spec_err)?,
    );
    if let Some(file) = resolv_conf {
        mounts.push(
            MountBuilder::default()
                .destination("/etc/resolv.conf")
                .typ("bind")
                .source(file)
                // Read-only: the file is on the host's disk, outside the pool and the
                // sandbox's disk limit (written to, it could fill the host's disk).
                .options(vec!["bind".to_string(), "ro".to_string()])
                .build()
                .map_err(spec_err)?,
        );
    }
    if let Some(agent) = agent {
        for (source, destination, mode) in [
            (&agent.binary, cairn_agent::proto::BINARY_PATH, "ro"),
            (&agent.socket_dir, cairn_agent::proto::SOCKET_DIR, "rw"),
        ] {
            mounts.push(
                MountBuilder::default()
                    .destination(destination)
                    .typ("bind")
                    .source(source)
                    .options(vec![
                        "bind".to_string(),
                        mode.to_string(),
                        "nosuid".to_string(),
                        "nodev".to_string(),
                    ])
                    .build()
                    .map_err(spec_err)?,
            );
        }
        // The secrets' tmpfs: in memory, never in the sandbox's root (which snapshots
        // capture); the agent writes them there and empties it before every checkpoint.
        mounts.push(
            MountBuilder::default()
                .destination(cairn_agent::proto::SECRETS_DIR)
                .typ("tmpfs")
                .source("tmpfs")
                .options(
                    ["nosuid", "nodev", "noexec", "mode=755"]
                        .map(String::from)
                        .to_vec(),
                )
                .build()
                .map_err(spec_err)?,
        );
    }
    Ok(mounts)
}

/// Writes `config.json` for `spec` into `bundle_dir` (temp name, fsync,
/// rename), creating the directory and the root's `/tmp` if needed. A runc
/// bundle also gets [`crate::criu::CONFIG_FILE`], which its config names in the
/// [`crate::criu::CONFIG_ANNOTATION`] annotation (runc reads the annotation of
/// the config the container was created or restored from).
pub fn write_bundle(
    bundle_dir: &Path,
    spec: &SandboxSpec,
    flavor: Flavor,
) -> Result<(), RuntimeError> {
    let io = |source| RuntimeError::Bundle {
        path: bundle_dir.to_path_buf(),
        source,
    };
    std::fs::create_dir_all(bundle_dir).map_err(io)?;
    let tmp_dir = spec.rootfs.join("tmp");
    if !tmp_dir.exists() {
        std::fs::create_dir_all(&tmp_dir).map_err(io)?;
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&tmp_dir, std::fs::Permissions::from_mode(0o1777)).map_err(io)?;
    }
    let mut oci = build_spec(spec, flavor)?;
    if flavor.criu_config {
        let conf = std::path::absolute(bundle_dir.join(crate::criu::CONFIG_FILE)).map_err(io)?;
        // Like config.json: rewritten before every create and restore, so no fsync.
        let tmp = conf.with_extension("tmp");
        std::fs::write(&tmp, crate::criu::CONFIG.as_bytes()).map_err(io)?;
        std::fs::rename(&tmp, &conf).map_err(io)?;
        let mut annotations = oci.annotations().clone().unwrap_or_default();
        annotations.insert(
            crate::criu::CONFIG_ANNOTATION.to_string(),
            conf.to_string_lossy().into_owned(),
        );
        oci.set_annotations(Some(annotations));
    }
    let json = serde_json::to_vec_pretty(&oci).map_err(spec_err)?;
    // Temp name and rename, so a runtime never reads half a file; no fsync: the bundle
    // is written again before every create, and after a host crash no container survives.
    let path = bundle_dir.join("config.json");
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, &json).map_err(io)?;
    std::fs::rename(&tmp, &path).map_err(io)
}

/// The network namespace path a spec joins, if any.
pub fn netns_path(spec: &Spec) -> Option<PathBuf> {
    spec.linux()
        .as_ref()?
        .namespaces()
        .as_ref()?
        .iter()
        .find(|n| n.typ() == LinuxNamespaceType::Network)?
        .path()
        .clone()
}

/// The network namespace path the bundle in `bundle_dir` joins, if any.
pub fn bundle_netns(bundle_dir: &Path) -> Option<PathBuf> {
    let spec = Spec::load(bundle_dir.join("config.json")).ok()?;
    netns_path(&spec)
}

/// Writes `data` to `path` crash-safely: temp name, fsync, rename.
pub fn write_atomic(path: &Path, data: &[u8]) -> std::io::Result<()> {
    let tmp = path.with_extension("tmp");
    let mut f = std::fs::File::create(&tmp)?;
    f.write_all(data)?;
    f.sync_all()?;
    std::fs::rename(&tmp, path)
}

#[cfg(test)]
mod tests;
