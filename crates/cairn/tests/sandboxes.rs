//! End-to-end: the real cairnd and cairn, real runsc and runc, a real btrfs pool.

#![allow(clippy::unwrap_used)]

use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::time::{Duration, Instant};

use cairn_test_support::{Daemon, Run};

fn daemon() -> Daemon {
    let d = Daemon::start(env!("CARGO_BIN_EXE_cairnd"), env!("CARGO_BIN_EXE_cairn"));
    d.import_base();
    d
}

fn up(d: &Daemon, runtime: &str, extra: &[&str]) -> String {
    let mut args = vec!["up", "--image", "base", "--runtime", runtime];
    args.extend_from_slice(extra);
    let id = d.cairn(&args).ok();
    assert!(
        id.starts_with("sbx-") && id.len() == 12,
        "unexpected id {id}"
    );
    id
}

cairn_test_support::both_runtimes!(
    exec_prints_output_and_forwards_the_exit_code,
    exec_streams_output_while_the_command_runs,
    exec_honours_env_workdir_and_timeout,
    memory_limit_stops_a_hog,
    pids_limit_stops_a_fork_bomb,
    sandboxes_cannot_see_each_other_or_the_host,
    stop_start_keeps_files_and_destroy_leaves_nothing,
    sandboxes_survive_a_cairnd_sigkill,
    interactive_exec_forwards_stdin_and_terminals,
    detached_processes_outlive_their_exec,
    pause_freezes_processes_until_resume,
);

fn exec_prints_output_and_forwards_the_exit_code(rt: &str) {
    let d = daemon();
    let id = up(&d, rt, &[]);
    let r = d.cairn(&["exec", &id, "--", "sh", "-c", "echo hi; exit 3"]);
    assert_eq!(r.code, 3, "{r:?}");
    assert_eq!(r.stdout, "hi\n");
    let r = d.cairn(&["exec", &id, "echo out; echo err >&2; hostname"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(r.stdout, format!("out\n{id}\n"));
    assert_eq!(r.stderr, "err\n");
    let ls = d.cairn(&["ls", "--json"]).json();
    let row = &ls.as_array().unwrap()[0];
    assert_eq!(row["id"], id.as_str());
    assert_eq!(row["runtime"], rt);
    assert_eq!(row["state"], "running");
    let table = d.cairn(&["ls"]).ok();
    assert!(
        table.starts_with("ID") && table.contains("RUNTIME") && table.contains(&id),
        "{table}"
    );
    d.cairn(&["destroy", &id, "--force"]).ok();
    assert_eq!(d.cairn(&["ls", "--json"]).json(), serde_json::json!([]));
}

fn exec_streams_output_while_the_command_runs(rt: &str) {
    let d = daemon();
    let id = up(&d, rt, &[]);
    let mut child = d
        .cairn_command(&[
            "exec",
            &id,
            "for i in 1 2 3 4 5; do echo line$i; sleep 0.4; done; exit 7",
        ])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let started = Instant::now();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let first = lines.next().unwrap().unwrap();
    let first_at = started.elapsed();
    assert_eq!(first, "line1");
    let rest: Vec<String> = lines.map(|l| l.unwrap()).collect();
    let total = started.elapsed();
    assert_eq!(rest, ["line2", "line3", "line4", "line5"]);
    // The first line must arrive well before the command's 2 s of sleeping are over.
    assert!(
        first_at + Duration::from_millis(1000) < total,
        "output was buffered: first line after {first_at:?}, end after {total:?}"
    );
    assert_eq!(child.wait().unwrap().code(), Some(7));
}

fn exec_honours_env_workdir_and_timeout(rt: &str) {
    let d = daemon();
    let id = up(&d, rt, &["--env", "BASE=from-up", "--workdir", "/root"]);
    let r = d.cairn(&[
        "exec",
        "--env",
        "EXTRA=from-exec",
        &id,
        "echo $BASE $EXTRA; pwd",
    ]);
    assert_eq!(r.stdout, "from-up from-exec\n/root\n", "{r:?}");
    let r = d.cairn(&["exec", "--workdir", "/tmp", &id, "--", "pwd"]);
    assert_eq!(r.stdout, "/tmp\n", "{r:?}");
    let started = Instant::now();
    let r = d.cairn(&["exec", "--timeout", "1", &id, "--", "sleep", "30"]);
    assert_eq!(r.code, 124, "{r:?}");
    assert!(started.elapsed() < Duration::from_secs(20));
    // The sandbox is still usable afterwards.
    assert_eq!(d.cairn(&["exec", &id, "--", "true"]).code, 0);
}

fn memory_limit_stops_a_hog(rt: &str) {
    let d = daemon();
    let id = up(&d, rt, &["--memory", "64M"]);
    let r = d.cairn(&[
        "exec",
        &id,
        "--",
        "awk",
        "BEGIN{while(1){a[i++]=sprintf(\"%0200d\",i)}}",
    ]);
    match rt {
        // Under runc the kernel's cgroup OOM killer kills the hog.
        "runc" => assert_eq!(r.code, 137, "{r:?}"),
        // gVisor's kernel knows the limit as the machine's memory size and refuses
        // allocations beyond it (or the host kills the whole sandbox: 137).
        _ => {
            assert_ne!(r.code, 0, "{r:?}");
            let meminfo = d.cairn(&["exec", &id, "head -1 /proc/meminfo"]);
            if r.code != 137 {
                assert!(meminfo.stdout.contains("65536 kB"), "{meminfo:?}");
            }
        }
    }
    // The hog never got more than the limit from the host.
    let peak = std::fs::read_to_string(format!(
        "/sys/fs/cgroup/memory/cairn/{id}/memory.max_usage_in_bytes"
    ));
    if let Ok(peak) = peak {
        // (the kernel may overshoot its own limit by a few pages)
        assert!(
            peak.trim().parse::<u64>().unwrap() <= (64 << 20) + (1 << 20),
            "peak {peak}"
        );
    }
}

fn pids_limit_stops_a_fork_bomb(rt: &str) {
    let d = daemon();
    let id = up(&d, rt, &["--pids", "20"]);
    // The inner shell dies at the first failed fork; its sleeps stay. Counting /proc
    // with a glob needs no fork, so it works while the limit is reached.
    let r = d.cairn(&["exec", &id, "sh -c 'for i in $(seq 1 60); do sleep 30 >/dev/null 2>&1 & done'; set -- /proc/[0-9]*; echo procs=$#"]);
    assert!(
        r.stderr.contains("can't fork") || r.stderr.contains("Resource temporarily unavailable"),
        "{r:?}"
    );
    let procs: u32 = r
        .stdout
        .trim()
        .strip_prefix("procs=")
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{r:?}"));
    assert!(
        procs <= 20,
        "{procs} processes ran despite a pids limit of 20"
    );
    assert!(
        procs >= 10,
        "only {procs} processes could start: the limit is not 20"
    );
}

fn sandboxes_cannot_see_each_other_or_the_host(rt: &str) {
    let d = daemon();
    let a = up(&d, rt, &[]);
    let b = up(&d, rt, &[]);
    d.cairn(&[
        "exec",
        &a,
        "echo secret-a > /root/mine; sleep 300 >/dev/null 2>&1 &",
    ])
    .ok();
    // b does not see a's file, a's processes, or the host's.
    let r = d.cairn(&["exec", &b, "cat /root/mine 2>&1; ps -o pid,args"]);
    assert!(r.stdout.contains("No such file"), "{r:?}");
    assert!(
        !r.stdout.contains("sleep 300"),
        "b sees a's processes: {r:?}"
    );
    assert!(!r.stdout.contains("cairnd"), "b sees host processes: {r:?}");
    let procs = r.stdout.lines().count();
    assert!(procs < 8, "b sees too many processes:\n{}", r.stdout);
    let r = d.cairn(&["exec", &b, "ls /; cat /etc/cairn-image"]);
    assert!(r.stdout.contains("cairn-test-image"), "{r:?}");
    let home = d.home.to_string_lossy().to_string();
    let r = d.cairn(&["exec", &b, &format!("ls {home} 2>&1")]);
    assert!(
        r.stdout.contains("No such file"),
        "b sees the host's data directory: {r:?}"
    );
}

fn stop_start_keeps_files_and_destroy_leaves_nothing(rt: &str) {
    let d = daemon();
    let id = up(&d, rt, &["--name", "keeper"]);
    d.cairn(&[
        "exec",
        "keeper",
        "echo kept > /root/f; echo tmpkept > /tmp/g",
    ])
    .ok();
    let r = d.cairn(&["destroy", &id]);
    assert_ne!(r.code, 0);
    assert!(r.stderr.contains("--force"), "{r:?}");
    let stopped = d.cairn(&["stop", "keeper", "--json"]).json();
    assert_eq!(stopped["state"], "stopped");
    let r = d.cairn(&["exec", &id, "--", "true"]);
    assert_eq!(
        r.code, 125,
        "exec on a stopped sandbox must fail as a cairn error: {r:?}"
    );
    assert!(r.stderr.contains("cairn start"), "{r:?}");
    d.cairn(&["start", &id]).ok();
    assert_eq!(
        d.cairn(&["exec", &id, "cat /root/f /tmp/g"]).ok(),
        "kept\ntmpkept"
    );
    d.cairn(&["stop", &id]).ok();
    d.cairn(&["destroy", &id]).ok();
    assert!(!d.home.join("pool/sandboxes").join(&id).exists());
    assert!(!d.home.join("run").join(&id).exists());
    for ctl in ["memory", "pids", "cpu"] {
        let cg = std::path::Path::new("/sys/fs/cgroup")
            .join(ctl)
            .join("cairn")
            .join(&id);
        assert!(!cg.exists(), "cgroup {} left behind", cg.display());
    }
    let r = d.cairn(&["inspect", &id]);
    assert_eq!(r.code, 1);
    assert!(r.stderr.contains("no sandbox"), "{r:?}");
}

fn sandboxes_survive_a_cairnd_sigkill(rt: &str) {
    let mut d = daemon();
    let alive = up(&d, rt, &[]);
    let stopped = up(&d, rt, &[]);
    d.cairn(&["exec", &alive, "echo before > /root/f"]).ok();
    d.cairn(&["stop", &stopped]).ok();
    d.kill9();
    std::fs::write(d.home.join("tmp/leftover"), b"x").unwrap();
    d.relaunch();
    assert!(
        !d.home.join("tmp/leftover").exists(),
        "tmp/ was not emptied at start-up"
    );
    let ls = d.cairn(&["ls", "--json"]).json();
    let state = |id: &str| {
        ls.as_array()
            .unwrap()
            .iter()
            .find(|s| s["id"] == id)
            .unwrap()["state"]
            .clone()
    };
    assert_eq!(state(&alive), "running");
    assert_eq!(state(&stopped), "stopped");
    assert_eq!(d.cairn(&["exec", &alive, "cat /root/f"]).ok(), "before");
    // A sandbox whose runtime state vanished while cairnd was down is marked stopped with a reason.
    d.kill9();
    let (bin, root) = if rt == "runc" {
        ("runc", "run/runc")
    } else {
        ("runsc", "run/runsc")
    };
    let force = if rt == "runc" { "--force" } else { "-force" };
    let st = std::process::Command::new(bin)
        .arg("--root")
        .arg(d.home.join(root))
        .args(["delete", force, &alive])
        .output()
        .unwrap();
    assert!(st.status.success(), "{st:?}");
    d.relaunch();
    let s = d.cairn(&["inspect", &alive, "--json"]).json();
    assert_eq!(s["state"], "stopped");
    assert!(
        s["state_reason"].as_str().unwrap().contains("restarted"),
        "{s}"
    );
    d.cairn(&["start", &alive]).ok();
    assert_eq!(d.cairn(&["exec", &alive, "cat /root/f"]).ok(), "before");
}

fn interactive_exec_forwards_stdin_and_terminals(rt: &str) {
    let d = daemon();
    let id = up(&d, rt, &[]);
    // -i: stdin reaches the command; its end is the command's end of input.
    let Run {
        code,
        stdout: out,
        stderr: err,
    } = d.cairn_with_stdin(
        &[
            "exec",
            "-i",
            &id,
            "--",
            "sh",
            "-c",
            "read x; echo got:$x; wc -l",
        ],
        "hello\na\nb\n",
    );
    assert_eq!((code, out.as_str()), (0, "got:hello\n2\n"), "{err}");
    let code = d
        .cairn_with_stdin(&["exec", "-i", &id, "sh"], "exit 6\n")
        .code;
    assert_eq!(code, 6);
    // -t: the command gets a terminal of the requested size (on gVisor too: the agent
    // makes it).
    let Run {
        code,
        stdout: out,
        stderr: err,
    } = d.cairn_with_stdin(&["exec", "-it", &id, "sh"], "tty; stty size; exit 4\n");
    assert_eq!(code, 4, "{rt}: {out} {err}");
    assert!(out.contains("/dev/pts/"), "{out}");
    assert!(out.contains("24 80"), "{out}");
}

fn detached_processes_outlive_their_exec(rt: &str) {
    let d = daemon();
    let id = up(&d, rt, &[]);
    let started = Instant::now();
    let r = d.cairn(&[
        "exec",
        "-d",
        "--workdir",
        "/root",
        "--env",
        "WORD=it's here",
        &id,
        "sleep 1; echo \"$WORD\" > done; sleep 300",
    ]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "exec -d must return at once"
    );
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(d.cairn(&["exec", &id, "cat /root/done"]).ok(), "it's here");
    // It runs under the sandbox's init, not under the exec that started it.
    let ps = d
        .cairn(&[
            "exec",
            &id,
            "ps -o ppid,args | grep 'sleep 300' | grep -v grep",
        ])
        .ok();
    assert!(!ps.is_empty(), "{ps}");
    // Any command text: a newline is no longer refused (issue 15, finding 9), and the
    // answer is the detached process's pid.
    let r = d.cairn(&[
        "exec",
        "-d",
        &id,
        "--",
        "sh",
        "-c",
        "echo a > /root/lines\necho b >> /root/lines",
    ]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(r.stdout.trim().parse::<u32>().is_ok(), "{r:?}");
    assert_eq!(d.cairn(&["exec", &id, "cat /root/lines"]).ok(), "a\nb");
}

fn pause_freezes_processes_until_resume(rt: &str) {
    let d = daemon();
    let id = up(&d, rt, &[]);
    d.cairn(&[
        "exec",
        "-d",
        &id,
        "i=0; while :; do i=$((i+1)); echo $i > /tmp/n; sleep 0.05; done",
    ])
    .ok();
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(d.cairn(&["pause", &id, "--json"]).json()["state"], "paused");
    let r = d.cairn(&["exec", &id, "true"]);
    assert_eq!(r.code, 125);
    assert!(r.stderr.contains("paused"), "{r:?}");
    let frozen =
        std::fs::read_to_string(d.home.join("pool/sandboxes").join(&id).join("tmp/n")).unwrap();
    std::thread::sleep(Duration::from_millis(400));
    let still =
        std::fs::read_to_string(d.home.join("pool/sandboxes").join(&id).join("tmp/n")).unwrap();
    assert_eq!(frozen, still, "a paused sandbox kept running");
    // A paused sandbox survives a cairnd restart as paused.
    let mut d = d;
    d.restart();
    assert_eq!(
        d.cairn(&["inspect", &id, "--json"]).json()["state"],
        "paused"
    );
    assert_eq!(
        d.cairn(&["resume", &id, "--json"]).json()["state"],
        "running"
    );
    std::thread::sleep(Duration::from_millis(300));
    let moved: u64 = d.cairn(&["exec", &id, "cat /tmp/n"]).ok().parse().unwrap();
    assert!(moved > still.trim().parse::<u64>().unwrap());
    let r = d.cairn(&["resume", "--json", &id]);
    assert_eq!(
        r.json()["state"],
        "running",
        "resuming a running sandbox is a no-op"
    );
}

/// What is mounted on `dir`: (mount id, file system type, per-mount options, super
/// options), from this process's mountinfo (cairnd mounts in the host's namespace).
fn mount_at(dir: &std::path::Path) -> Option<(String, String, String, String)> {
    let dir = dir.canonicalize().ok()?;
    let text = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    text.lines().rev().find_map(|l| {
        let f: Vec<&str> = l.split_whitespace().collect();
        let dash = f.iter().position(|x| *x == "-")?;
        (std::path::Path::new(f[4]) == dir).then(|| {
            (
                f[0].to_string(),
                f[dash + 1].to_string(),
                f[5].to_string(),
                f.get(dash + 3).unwrap_or(&"").to_string(),
            )
        })
    })
}

/// The runtimes' state, bundles and agent sockets (`run/`) live in a tmpfs cairnd mounts
/// at start: kept across a cairnd restart, made again after a reboot empties it, and not
/// made over state a sandbox started before still uses (an upgrade under running
/// sandboxes), which stays on disk.
#[test]
fn runtime_state_lives_in_memory() {
    let mut d = daemon();
    let run = d.home.join("run");
    let (mount_id, fstype, options, sup) = mount_at(&run).expect("run/ is not a mount");
    assert_eq!(fstype, "tmpfs");
    assert!(
        options.contains("nosuid") && options.contains("nodev"),
        "{options}"
    );
    assert!(sup.contains("size=262144k"), "{sup}");
    let a = up(&d, "runc", &[]);
    d.cairn(&["exec", &a, "echo kept > /root/f"]).ok();
    assert!(run.join("runc").join(&a).join("state.json").exists());
    // A restart keeps the mount and what it holds.
    d.kill9();
    d.relaunch();
    assert_eq!(
        mount_at(&run).unwrap().0,
        mount_id,
        "run/ was mounted again"
    );
    assert_eq!(d.cairn(&["exec", &a, "cat /root/f"]).ok(), "kept");
    // A reboot: the containers and the tmpfs are gone; a new one is made, and the
    // sandbox, stopped, starts again.
    d.kill9();
    let st = std::process::Command::new("runc")
        .arg("--root")
        .arg(run.join("runc"))
        .args(["delete", "--force", &a])
        .output()
        .unwrap();
    assert!(st.status.success(), "{st:?}");
    let st = std::process::Command::new("umount")
        .arg("-l")
        .arg(&run)
        .output()
        .unwrap();
    assert!(st.status.success(), "{st:?}");
    std::fs::create_dir_all(run.join("sbx-0badf00d")).unwrap();
    std::fs::write(run.join("sbx-0badf00d/config.json"), b"{}").unwrap();
    d.relaunch();
    let (_, fstype, _, _) = mount_at(&run).expect("run/ was not mounted again");
    assert_eq!(fstype, "tmpfs");
    assert_eq!(
        d.cairn(&["inspect", &a, "--json"]).json()["state"],
        "stopped"
    );
    d.cairn(&["start", &a]).ok();
    assert_eq!(d.cairn(&["exec", &a, "cat /root/f"]).ok(), "kept");
    // An older cairnd's live state on disk (here: a container's state directory under
    // run/runc) is never hidden under a new mount.
    d.cairn(&["stop", &a]).ok();
    d.kill9();
    let st = std::process::Command::new("umount")
        .arg(&run)
        .output()
        .unwrap();
    assert!(st.status.success(), "{st:?}");
    assert!(
        !run.join("sbx-0badf00d").exists(),
        "the disk's stale bundle was not cleared before the mount"
    );
    std::fs::create_dir_all(run.join("netns")).unwrap();
    std::fs::write(run.join("netns/sbx-0badf00d"), b"").unwrap();
    d.relaunch();
    assert_eq!(mount_at(&run), None, "a mount was made over live state");
    assert!(
        d.log_text().contains("runtime state stays on disk"),
        "{}",
        d.log_text()
    );
    d.cairn(&["start", &a]).ok();
    assert_eq!(d.cairn(&["exec", &a, "cat /root/f"]).ok(), "kept");
    let _ = std::fs::remove_file(run.join("netns/sbx-0badf00d"));
}
