//! What a cairnd that died left running under a runtime's state root, found in `/proc`:
//!
//! - **stale commands**: runtime commands it had started (`create`, `start`, `restore`,
//!   `checkpoint`, `delete`…) which still change containers after their caller is gone. A
//!   `runsc restore` that outlives cairnd, say, makes a container after start-up recovery
//!   has looked, and nothing would ever remove it. Recovery waits for them to end, and ends
//!   those that do not (with their children) after a while;
//! - **stray processes**: gVisor's sandbox and gofer processes serving a container the
//!   runtime no longer knows (a `runsc create` or `restore` cut short before it wrote the
//!   container's state), which `runsc delete` cannot reach.
//!
//! Cairn starts its runtime commands as `BINARY --root ROOT …` (two arguments) and runsc
//! starts its own sandbox and gofer processes with `--root=ROOT` (one), so the two are told
//! apart, and the processes of other data directories (other cairnds) are never touched.
//! Exec clients (`… exec …`) are left alone: they change no container.
//!
//! Only for start-up, before anything else runs under the state root: at any other time a
//! command in flight is this cairnd's own.

use std::collections::{HashMap, HashSet};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::time::Duration;

use crate::ExitWatch;

/// Subcommands that change (or wait on) containers; anything else (`exec`, `boot`, `gofer`)
/// is not a stale command.
const CHANGING: &[&[u8]] = &[
    b"create",
    b"start",
    b"run",
    b"restore",
    b"checkpoint",
    b"pause",
    b"resume",
    b"kill",
    b"delete",
    b"state",
    b"list",
];

/// A process's pid and argument vector.
struct Process {
    pid: u32,
    argv: Vec<Vec<u8>>,
}

/// Every process but this one, with its arguments (kernel threads have none and are left out).
fn processes() -> Vec<Process> {
    let me = std::process::id();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| *pid != me)
        .filter_map(|pid| {
            let raw = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
            let argv: Vec<Vec<u8>> = raw
                .split(|b| *b == 0)
                .filter(|a| !a.is_empty())
                .map(<[u8]>::to_vec)
                .collect();
            (!argv.is_empty()).then_some(Process { pid, argv })
        })
        .collect()
}

/// The subcommand of a container-changing runtime command run as `… --root ROOT …`, if
/// `argv` is one: the first argument after the root that is not a flag.
fn changing_command<'a>(argv: &'a [Vec<u8>], root: &[u8]) -> Option<&'a [u8]> {
    let at = argv
        .windows(2)
        .position(|w| w[0] == b"--root" && w[1] == root)?;
    let sub = argv[at + 2..].iter().find(|a| !a.starts_with(b"-"))?;
    CHANGING.contains(&sub.as_slice()).then_some(sub.as_slice())
}

/// The container a gVisor sandbox (`… boot … ID`) or gofer (`… gofer --bundle=…/ID …`)
/// process under `--root=ROOT` serves.
fn gvisor_container(argv: &[Vec<u8>], root: &[u8]) -> Option<String> {
    let flag = [b"--root=".as_slice(), root].concat();
    if !argv.contains(&flag) {
        return None;
    }
    let text = |a: &[u8]| String::from_utf8_lossy(a).into_owned();
    if argv.iter().any(|a| a == b"boot") {
        return argv.last().map(|a| text(a));
    }
    if argv.iter().any(|a| a == b"gofer") {
        let bundle = argv.iter().find_map(|a| a.strip_prefix(b"--bundle="))?;
        return Path::new(std::ffi::OsStr::from_bytes(bundle))
            .file_name()
            .map(|n| text(n.as_bytes()));
    }
    None
}

/// The parent pid in `/proc/PID/stat` text.
fn parent_of(stat: &str) -> Option<u32> {
    // The command name, in parentheses, may hold spaces: fields count from the last ')'.
    let (_, rest) = stat.rsplit_once(')')?;
    rest.split_whitespace().nth(1)?.parse().ok()
}

/// `pid` and every process below it.
fn with_descendants(pid: u32) -> Vec<u32> {
    let mut children: HashMap<u32, Vec<u32>> = HashMap::new();
    for p in processes() {
        if let Some(parent) = std::fs::read_to_string(format!("/proc/{}/stat", p.pid))
            .ok()
            .and_then(|s| parent_of(&s))
        {
            children.entry(parent).or_default().push(p.pid);
        }
    }
    let mut all = vec![pid];
    let mut i = 0;
    while i < all.len() {
        if let Some(kids) = children.get(&all[i]) {
            all.extend(kids.iter().filter(|k| !all.contains(k)).collect::<Vec<_>>());
        }
        i += 1;
    }
    all
}

fn kill(pid: u32) {
    if let Some(p) = i32::try_from(pid)
        .ok()
        .and_then(rustix::process::Pid::from_raw)
    {
        let _ = rustix::process::kill_process(p, rustix::process::Signal::KILL);
    }
}

/// Waits up to `wait` for the container-changing commands run under `root` to end, then
/// kills those still running with their children. Returns how many there were.
pub(crate) async fn settle(root: &Path, wait: Duration) -> usize {
    let root = root.as_os_str().as_bytes();
    let stale: Vec<(u32, String)> = processes()
        .iter()
        .filter_map(|p| {
            let sub = changing_command(&p.argv, root)?;
            Some((p.pid, String::from_utf8_lossy(sub).into_owned()))
        })
        .collect();
    if stale.is_empty() {
        return 0;
    }
    let mut watches = Vec::new();
    for (pid, command) in &stale {
        tracing::warn!(
            pid,
            command,
            "waiting for a runtime command that the previous cairnd left running"
        );
        if let Ok(Some(w)) = ExitWatch::open(*pid) {
            watches.push((w, command.clone()));
        }
    }
    let deadline = tokio::time::Instant::now() + wait;
    for (w, command) in &watches {
        if tokio::time::timeout_at(deadline, w.exited()).await.is_err() {
            // Its children too: a runsc restore's sandbox and gofer, a runc create's init.
            let tree = with_descendants(w.pid());
            tracing::warn!(
                pid = w.pid(),
                command,
                ?tree,
                "the runtime command did not end: killing it and its children"
            );
            for pid in tree {
                kill(pid);
            }
            let _ = tokio::time::timeout(Duration::from_secs(5), w.exited()).await;
        }
    }
    stale.len()
}

/// Kills gVisor sandbox and gofer processes under `root` that serve none of the containers in
/// `known`, and returns their pids.
pub(crate) fn end_gvisor_strays(root: &Path, known: &HashSet<String>) -> Vec<u32> {
    let root = root.as_os_str().as_bytes();
    let mut ended = Vec::new();
    for p in processes() {
        let Some(id) = gvisor_container(&p.argv, root) else {
            continue;
        };
        if known.contains(&id) {
            continue;
        }
        tracing::warn!(
            pid = p.pid,
            container = id,
            "killing a gVisor process of a container the runtime does not know"
        );
        kill(p.pid);
        ended.push(p.pid);
    }
    ended
}

#[cfg(test)]
mod tests {
    use super::*;

    fn argv(line: &str) -> Vec<Vec<u8>> {
        line.split(' ').map(|a| a.as_bytes().to_vec()).collect()
    }

    const ROOT: &[u8] = b"/var/lib/cairn/run/runsc";

    #[test]
    fn cairn_started_commands_are_found_by_their_root() {
        let restore = argv("runsc --root /var/lib/cairn/run/runsc --platform=systrap --overlay2=none --network=none restore --image-path /x --bundle /b -detach sbx-0000abcd");
        assert_eq!(
            changing_command(&restore, ROOT),
            Some(b"restore".as_slice())
        );
        let runc = argv("runc --root /var/lib/cairn/run/runsc checkpoint --image-path /x sbx-1");
        assert_eq!(
            changing_command(&runc, ROOT),
            Some(b"checkpoint".as_slice())
        );
        // The netstack wrapper, before it execs runsc, is one too.
        let wrapped = argv("unshare --mount -- sh -c x runsc --root /var/lib/cairn/run/runsc --network=sandbox start sbx-1");
        assert_eq!(changing_command(&wrapped, ROOT), Some(b"start".as_slice()));
    }

    #[test]
    fn execs_sandboxes_and_other_roots_are_not_stale_commands() {
        let exec = argv(
            "runsc --root /var/lib/cairn/run/runsc --network=none exec --process p.json sbx-1",
        );
        assert_eq!(changing_command(&exec, ROOT), None);
        let other = argv("runsc --root /srv/other/run/runsc delete -force sbx-1");
        assert_eq!(changing_command(&other, ROOT), None);
        let prefix = argv("runsc --root /var/lib/cairn/run/runsc2 delete sbx-1");
        assert_eq!(changing_command(&prefix, ROOT), None);
        let boot = argv(
            "runsc-sandbox --root=/var/lib/cairn/run/runsc --network=none boot --bundle=/b sbx-1",
        );
        assert_eq!(changing_command(&boot, ROOT), None);
    }

    #[test]
    fn gvisor_processes_name_their_container() {
        let boot = argv("runsc-sandbox --root=/var/lib/cairn/run/runsc --overlay2=none boot --apply-caps=false --bundle=/var/lib/cairn/run/sbx-246921b6 --cpu-num=2 sbx-246921b6");
        assert_eq!(
            gvisor_container(&boot, ROOT).as_deref(),
            Some("sbx-246921b6")
        );
        let gofer = argv("runsc-gofer --platform=systrap --root=/var/lib/cairn/run/runsc gofer --bundle=/var/lib/cairn/run/sbx-7d42fe1d --io-fds=5,6");
        assert_eq!(
            gvisor_container(&gofer, ROOT).as_deref(),
            Some("sbx-7d42fe1d")
        );
        let elsewhere = argv(
            "runsc-gofer --root=/srv/other/run/runsc gofer --bundle=/srv/other/run/sbx-7d42fe1d",
        );
        assert_eq!(gvisor_container(&elsewhere, ROOT), None);
        let client = argv("runsc --root /var/lib/cairn/run/runsc exec sbx-1");
        assert_eq!(gvisor_container(&client, ROOT), None);
    }

    #[test]
    fn the_parent_is_read_past_a_name_with_spaces() {
        assert_eq!(parent_of("8427 (a (b) c) S 1234 8420 8420 0"), Some(1234));
        assert_eq!(parent_of("garbage"), None);
    }

    #[tokio::test]
    async fn descendants_are_found() {
        let mut child = std::process::Command::new("sh")
            .args(["-c", "sleep 30 & wait"])
            .spawn()
            .unwrap();
        let pid = child.id();
        let mut tree = Vec::new();
        for _ in 0..50 {
            tree = with_descendants(pid);
            if tree.len() >= 2 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert_eq!(tree[0], pid);
        assert!(
            tree.len() >= 2,
            "the sleep below sh was not found: {tree:?}"
        );
        for p in tree.iter().rev() {
            kill(*p);
        }
        child.wait().unwrap();
    }
}
