//! The command-line plumbing `runsc` and `runc` share: both speak the OCI runtime CLI
//! (`create`, `start`, `state`, `exec`, `kill`, `delete`, `list` with `--root`), so the
//! commands, their output parsing and the exec'd process's description live here once.
//! What differs between the two runtimes is not here: see [`crate::Runsc`] and
//! [`crate::Runc`], which hold a [`Cli`] each.

use std::collections::HashSet;
use std::ffi::OsString;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use oci_spec::runtime::{Capability, LinuxCapabilitiesBuilder, ProcessBuilder};

use cairn_cmd::{Cmd, CmdError};
use cairn_types::RuntimeKind;

use crate::bundle::{write_atomic, CGROUP_PARENT, DEFAULT_CAPABILITIES};
use crate::{
    ContainerState, ContainerStatus, ExecChild, ExecIo, ExecSpec, ExitWatch, Listed, RuntimeError,
    Signal,
};

/// One runtime binary with its state root and global flags.
#[derive(Clone, Debug)]
pub(crate) struct Cli {
    kind: RuntimeKind,
    binary: PathBuf,
    state_root: PathBuf,
    install_hint: &'static str,
    global: Vec<OsString>,
}

impl Cli {
    /// `binary` keeping its state under `state_root`; `global` are the flags every command
    /// gets after `--root`; `install_hint` says how to install the binary when it is missing.
    pub(crate) fn new(
        kind: RuntimeKind,
        binary: PathBuf,
        state_root: PathBuf,
        install_hint: &'static str,
        global: Vec<OsString>,
    ) -> Cli {
        Cli {
            kind,
            binary,
            state_root,
            install_hint,
            global,
        }
    }

    /// The binary.
    pub(crate) fn binary(&self) -> &Path {
        &self.binary
    }

    /// The directory the runtime keeps its containers' state in.
    pub(crate) fn state_root(&self) -> &Path {
        &self.state_root
    }

    /// The runtime command with its global flags.
    pub(crate) fn cmd(&self) -> Cmd {
        self.cmd_with(&self.global)
    }

    /// The runtime command with `--root` and the given global flags instead of the usual ones.
    pub(crate) fn cmd_with(&self, global: &[OsString]) -> Cmd {
        Cmd::new(&self.binary)
            .install_hint(self.install_hint)
            .args(self.root_flags())
            .args(global.iter().cloned())
    }

    /// `--root ROOT`, the first global flags of every command (see [`crate::strays`]).
    pub(crate) fn root_flags(&self) -> [OsString; 2] {
        ["--root".into(), self.state_root.clone().into()]
    }

    /// An error for output of the runtime that could not be understood.
    pub(crate) fn protocol(&self, detail: String) -> RuntimeError {
        RuntimeError::Protocol {
            runtime: self.kind,
            detail,
        }
    }

    /// The first line of `BINARY --version`.
    pub(crate) async fn version(&self) -> Result<String, RuntimeError> {
        let out = Cmd::new(&self.binary)
            .install_hint(self.install_hint)
            .arg("--version")
            .run()
            .await?;
        Ok(out
            .stdout_str()
            .lines()
            .next()
            .unwrap_or_default()
            .to_string())
    }

    /// `create` (through `create`, a runtime command with its global flags) then `start`
    /// (through `start`) of container `id` from `bundle`, the runtime's messages in
    /// `bundle/init.log`; a container that fails to start is deleted.
    pub(crate) async fn create_and_start(
        &self,
        id: &str,
        bundle: &Path,
        create: Cmd,
        start: Cmd,
    ) -> Result<(), RuntimeError> {
        create
            .arg("create")
            .arg("--bundle")
            .arg(bundle)
            .arg("--pid-file")
            .arg(bundle.join("init.pid"))
            .arg(id)
            .output_file(bundle.join("init.log"))
            .timeout(Duration::from_secs(60))
            .run()
            .await?;
        if let Err(e) = start
            .arg("start")
            .arg(id)
            .timeout(Duration::from_secs(60))
            .run()
            .await
        {
            let _ = self.delete(id).await;
            return Err(e.into());
        }
        Ok(())
    }

    /// `run --detach` of container `id` from `bundle` (through `run`, a runtime command with
    /// its global flags): create and start in one runtime process instead of two, the
    /// runtime's messages in `bundle/init.log`; a container that fails to start is deleted.
    pub(crate) async fn run_detached(
        &self,
        id: &str,
        bundle: &Path,
        run: Cmd,
    ) -> Result<(), RuntimeError> {
        if let Err(e) = run
            .arg("run")
            .arg("--detach")
            .arg("--bundle")
            .arg(bundle)
            .arg("--pid-file")
            .arg(bundle.join("init.pid"))
            .arg(id)
            .output_file(bundle.join("init.log"))
            .timeout(Duration::from_secs(60))
            .run()
            .await
        {
            let _ = self.delete(id).await;
            return Err(e.into());
        }
        Ok(())
    }

    /// `state`: `None` when the runtime does not know the container.
    pub(crate) async fn state(&self, id: &str) -> Result<Option<ContainerState>, RuntimeError> {
        let out = match self.cmd().arg("state").arg(id).run().await {
            Ok(out) => out,
            Err(e) if is_missing(&e) => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        let v: serde_json::Value = serde_json::from_slice(&out.stdout)
            .map_err(|e| self.protocol(format!("state is not JSON: {e}")))?;
        Ok(Some(state_of(&v)))
    }

    /// Every container under the state root.
    pub(crate) async fn list(&self) -> Result<Vec<Listed>, RuntimeError> {
        let out = self.cmd().arg("list").arg("--format=json").run().await?;
        parse_list(&out.stdout).map_err(|detail| self.protocol(detail))
    }

    /// `exec` of `spec` in container `id`, detached from nothing: the runtime client stays in
    /// the foreground and its exit status is the command's. `pid_flag` is the flag that has the
    /// runtime write the process's pid (`--pid-file`, or runsc's `--internal-pid-file`).
    pub(crate) async fn exec(
        &self,
        id: &str,
        spec: &ExecSpec,
        scratch: &Path,
        io_mode: ExecIo,
        pid_flag: &str,
    ) -> Result<ExecChild, RuntimeError> {
        let tty = matches!(io_mode, ExecIo::Tty { .. });
        let caps: HashSet<Capability> = DEFAULT_CAPABILITIES.into_iter().collect();
        let spec_err = |e: oci_spec::OciSpecError| RuntimeError::Spec(e.to_string());
        let mut process = ProcessBuilder::default();
        if let ExecIo::Tty { cols, rows } = io_mode {
            process = process.console_size(
                oci_spec::runtime::BoxBuilder::default()
                    .width(u64::from(cols))
                    .height(u64::from(rows))
                    .build()
                    .map_err(spec_err)?,
            );
        }
        let process = process
            .terminal(tty)
            .args(spec.args.clone())
            .env(spec.env.clone())
            .cwd(spec.cwd.clone())
            .no_new_privileges(true)
            .capabilities(
                LinuxCapabilitiesBuilder::default()
                    .bounding(caps.clone())
                    .effective(caps.clone())
                    .permitted(caps)
                    .build()
                    .map_err(spec_err)?,
            )
            .build()
            .map_err(spec_err)?;
        let token = format!("exec-{:016x}", rand_u64());
        let process_file = write_process(scratch, &format!("{token}.json"), &process)?;
        let pid_file = scratch.join(format!("{token}.pid"));
        let mut cmd = self
            .cmd()
            .arg("exec")
            .arg("--process")
            .arg(&process_file)
            .arg(pid_flag)
            .arg(&pid_file);
        if tty {
            cmd = cmd.arg("--tty");
        }
        let (stdin, stdout, stderr, console) = match io_mode {
            ExecIo::Pipes { stdin } => (
                if stdin { Stdio::piped() } else { Stdio::null() },
                Stdio::piped(),
                Stdio::piped(),
                None,
            ),
            ExecIo::Tty { cols, rows } => {
                // The runtime, in the foreground, copies between the process's terminal and its
                // own stdio; giving it a pseudo-terminal of ours as stdio passes raw mode and
                // window size through.
                let (master, slave) = open_pty(cols, rows)?;
                let dup = |f: &std::fs::File| {
                    f.try_clone()
                        .map_err(|e| RuntimeError::Terminal(e.to_string()))
                };
                (
                    Stdio::from(dup(&slave)?),
                    Stdio::from(dup(&slave)?),
                    Stdio::from(slave),
                    Some(master),
                )
            }
        };
        let cmd = cmd.arg(id);
        let child = cmd.spawn(stdin, stdout, stderr)?;
        Ok(ExecChild {
            child,
            pid_file,
            console,
        })
    }

    /// The pid the runtime wrote for an exec'd process; `None` when it never started.
    pub(crate) fn exec_pid(&self, exec: &ExecChild) -> Result<Option<i32>, RuntimeError> {
        let Ok(text) = std::fs::read_to_string(&exec.pid_file) else {
            return Ok(None);
        };
        text.trim()
            .parse()
            .map(Some)
            .map_err(|_| self.protocol(format!("bad pid file '{}'", text.trim())))
    }

    /// `kill`: succeeds when the container is gone or its processes have ended already.
    pub(crate) async fn kill(&self, id: &str, signal: Signal) -> Result<(), RuntimeError> {
        match self
            .cmd()
            .arg("kill")
            .arg(id)
            .arg(signal.name())
            .run()
            .await
        {
            Ok(_) => Ok(()),
            Err(e) if is_missing(&e) => Ok(()),
            Err(e) => {
                // A container whose processes already ended has nothing left to signal (runsc
                // refuses with "sandbox is not running").
                match self.state(id).await {
                    Ok(None) => Ok(()),
                    Ok(Some(s)) if s.status == ContainerStatus::Stopped => Ok(()),
                    _ => Err(e.into()),
                }
            }
        }
    }

    /// `delete --force`: succeeds when the container is already gone.
    pub(crate) async fn delete(&self, id: &str) -> Result<(), RuntimeError> {
        match self
            .cmd()
            .arg("delete")
            .arg("--force")
            .arg(id)
            .timeout(Duration::from_secs(60))
            .run()
            .await
        {
            Ok(_) => Ok(()),
            Err(e) if is_missing(&e) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// Watches the host process `state` reports for container `id` (see [`crate::Runtime::watch`]).
    pub(crate) async fn watch(&self, id: &str) -> Result<Option<ExitWatch>, RuntimeError> {
        let Some(state) = self.state(id).await? else {
            return Ok(None);
        };
        if !state.status.has_process() || state.pid == 0 {
            return Ok(None);
        }
        let Some(watch) = ExitWatch::open(state.pid)? else {
            return Ok(None);
        };
        // The pid could name another process if the container ended (and the pid was used
        // again) between `state` and the open. The container's process is in its cgroup;
        // where the cgroup cannot tell, the runtime is asked again.
        let cgroup = format!("{CGROUP_PARENT}/{id}");
        if watch.in_cgroup(&cgroup) {
            return Ok(Some(watch));
        }
        match self.state(id).await? {
            Some(again) if again.pid == state.pid && again.status != ContainerStatus::Stopped => {
                Ok(Some(watch))
            }
            _ => Ok(None),
        }
    }
}

/// Whether the runtime's error says the container does not exist.
pub(crate) fn is_missing(err: &CmdError) -> bool {
    err.stderr().is_some_and(|e| {
        let e = e.to_ascii_lowercase();
        e.contains("does not exist")
            || e.contains("no such file")
            || e.contains("not found")
            || e.contains("cannot load container")
    })
}

/// Writes an OCI process description to `scratch/name` (made if needed) for `exec --process`.
pub(crate) fn write_process(
    scratch: &Path,
    name: &str,
    process: &oci_spec::runtime::Process,
) -> Result<PathBuf, RuntimeError> {
    let io = |source| RuntimeError::Bundle {
        path: scratch.to_path_buf(),
        source,
    };
    std::fs::create_dir_all(scratch).map_err(io)?;
    let file = scratch.join(name);
    let json = serde_json::to_vec(process).map_err(|e| RuntimeError::Spec(e.to_string()))?;
    write_atomic(&file, &json).map_err(io)?;
    Ok(file)
}

/// A container's state from the JSON of `state` or one entry of `list`.
fn state_of(v: &serde_json::Value) -> ContainerState {
    ContainerState {
        status: ContainerStatus::parse(v["status"].as_str().unwrap_or("unknown")),
        pid: u32::try_from(v["pid"].as_u64().unwrap_or(0)).unwrap_or(0),
    }
}

/// The containers in `list --format json` output (`null` when there are none).
fn parse_list(stdout: &[u8]) -> Result<Vec<Listed>, String> {
    let v: serde_json::Value =
        serde_json::from_slice(stdout).map_err(|e| format!("list is not JSON: {e}"))?;
    let items = match v {
        serde_json::Value::Null => return Ok(Vec::new()),
        serde_json::Value::Array(items) => items,
        other => return Err(format!("list is not an array: {other}")),
    };
    items
        .iter()
        .map(|c| {
            let id = c["id"]
                .as_str()
                .ok_or_else(|| format!("a listed container has no id: {c}"))?;
            Ok(Listed {
                id: id.to_string(),
                state: state_of(c),
            })
        })
        .collect()
}

/// A hostname Cairn may set: letters, digits, `-` and `.`, 1 to 64 bytes, not starting with
/// `-` (so that no program takes it for an option).
pub(crate) fn valid_hostname(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && !name.starts_with('-')
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
}

/// A number for unique scratch file names.
pub(crate) fn rand_u64() -> u64 {
    use std::time::{SystemTime, UNIX_EPOCH};
    static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let t = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    t ^ (n << 48) ^ u64::from(std::process::id())
}

/// Sets the size of an exec'd process's terminal through its master end `console`, and tells
/// the runtime client `client` (SIGWINCH), which passes it on to the process's own terminal.
/// False when the size could not be set.
pub(crate) fn resize_terminal(
    console: std::os::fd::BorrowedFd<'_>,
    client: Option<u32>,
    cols: u16,
    rows: u16,
) -> bool {
    let size = rustix::termios::Winsize {
        ws_row: rows,
        ws_col: cols,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    let ok = rustix::termios::tcsetwinsize(console, size).is_ok();
    let pid = client
        .and_then(|p| i32::try_from(p).ok())
        .and_then(rustix::process::Pid::from_raw);
    if let Some(pid) = pid {
        let _ = rustix::process::kill_process(pid, rustix::process::Signal::WINCH);
    }
    ok
}

/// A new pseudo-terminal pair of the given size: (master, slave).
fn open_pty(cols: u16, rows: u16) -> Result<(std::os::fd::OwnedFd, std::fs::File), RuntimeError> {
    use rustix::pty::{grantpt, openpt, ptsname, unlockpt, OpenptFlags};
    use std::os::unix::fs::OpenOptionsExt;
    let err = |e: rustix::io::Errno| RuntimeError::Terminal(e.to_string());
    let master =
        openpt(OpenptFlags::RDWR | OpenptFlags::NOCTTY | OpenptFlags::CLOEXEC).map_err(err)?;
    grantpt(&master).map_err(err)?;
    unlockpt(&master).map_err(err)?;
    let name = ptsname(&master, Vec::new()).map_err(err)?;
    let size = rustix::termios::Winsize {
        ws_row: rows,
        ws_col: cols,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    rustix::termios::tcsetwinsize(&master, size).map_err(err)?;
    let slave = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_NOCTTY)
        .open(std::ffi::OsStr::from_bytes(name.as_bytes()))
        .map_err(|e| RuntimeError::Terminal(e.to_string()))?;
    // Raw from the start, so nothing typed before the runtime sets it raw is echoed twice.
    let mut attrs = rustix::termios::tcgetattr(&slave).map_err(err)?;
    attrs.make_raw();
    rustix::termios::tcsetattr(&slave, rustix::termios::OptionalActions::Now, &attrs)
        .map_err(err)?;
    Ok((master, slave))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_plain_hostnames_are_set() {
        assert!(valid_hostname("sbx-0a1b2c3d"));
        assert!(valid_hostname("web.local"));
        for bad in ["", "-n", "a b", "a;b", "x\n", &"a".repeat(65)] {
            assert!(!valid_hostname(bad), "{bad:?}");
        }
    }

    #[test]
    fn a_resize_sets_the_terminals_size() {
        use std::os::fd::AsFd;
        let (master, _slave) = open_pty(80, 24).unwrap();
        assert!(resize_terminal(master.as_fd(), None, 120, 40));
        let size = rustix::termios::tcgetwinsize(&master).unwrap();
        assert_eq!((size.ws_col, size.ws_row), (120, 40));
    }

    #[test]
    fn lists_are_read_from_both_runtimes_output() {
        assert_eq!(parse_list(b"null\n").unwrap(), Vec::new());
        let runsc = br#"[{"ociVersion":"1.0.2-dev","id":"sbx-7d42fe1d","status":"created","pid":22888,"bundle":"/b"}]"#;
        assert_eq!(
            parse_list(runsc).unwrap(),
            vec![Listed {
                id: "sbx-7d42fe1d".into(),
                state: ContainerState {
                    status: ContainerStatus::Created,
                    pid: 22888
                }
            }]
        );
        let runc = br#"[{"ociVersion":"1.0.2-dev","id":"sbx-b8aa2bb0","pid":0,"status":"stopped","rootfs":"/r","owner":"root"}]"#;
        assert_eq!(
            parse_list(runc).unwrap()[0].state.status,
            ContainerStatus::Stopped
        );
        assert!(parse_list(b"{}").is_err());
        assert!(parse_list(b"[{}]").is_err());
    }
}
