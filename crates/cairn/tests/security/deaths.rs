//! Finding 11, "gVisor deaths are invisible": a sandbox whose runtime dies (killed for its
//! memory, killed on the host, dead while cairnd was down) is recorded `stopped` with the
//! true reason as it happens, the exec that died with it says so, and `cairn start` brings
//! it back; what ends a sandbox on purpose (stop, restore, release, fork) is never taken for
//! a death. A hostile tenant (`mallory`, over TCP) does the killing; another tenant's
//! (`alice`) sandbox keeps running throughout.

use std::time::{Duration, Instant};

use cairn_test_support::{Daemon, Run, Via};

use super::{assert_healthy, tcp_daemon};

cairn_test_support::both_runtimes!(
    a_memory_death_is_recorded_with_its_reason_and_told_to_the_exec,
    a_fork_bomb_leaves_the_sandbox_running_or_recorded_stopped_with_its_reason,
    a_runtime_killed_on_the_host_is_recorded_stopped_at_once,
    deliberate_ends_are_not_recorded_as_deaths_and_every_new_process_is_watched,
    a_runtime_that_died_while_cairnd_was_down_is_stopped_with_its_reason_at_start,
);

/// How long a death may take to show in `inspect`, without any exec.
const NOTICED_WITHIN: Duration = Duration::from_secs(10);

/// How long an end on purpose is given to be (wrongly) recorded as a death.
const SETTLE: Duration = Duration::from_secs(2);

/// A daemon with two tenants: `mallory` (hostile) and `alice`, who has a running sandbox with
/// a file in it.
struct World {
    d: Daemon,
    mallory: String,
    alice: String,
    alice_box: String,
    rt: &'static str,
}

impl World {
    fn new(rt: &'static str) -> World {
        let d = tcp_daemon(&[]);
        let mallory = d.token("mallory");
        let alice = d.token("alice");
        let mut w = World {
            d,
            mallory,
            alice,
            alice_box: String::new(),
            rt,
        };
        let alice = w.alice.clone();
        w.alice_box = w.up(&alice, &[]);
        w.cli(&alice, &["exec", &w.alice_box, "echo alice-data > /root/f"])
            .ok();
        w
    }

    /// `cairn ARGS` as the tenant holding `token`, over TCP.
    fn cli(&self, token: &str, args: &[&str]) -> Run {
        let addr = format!("http://{}", self.d.tcp.as_ref().unwrap());
        self.d
            .cairn_env(args, &[("CAIRN_HOST", &addr), ("CAIRN_TOKEN", token)])
    }

    /// A new sandbox of the tenant holding `token`, on this world's runtime.
    fn up(&self, token: &str, extra: &[&str]) -> String {
        let mut args = vec!["up", "--image", "base", "--runtime", self.rt];
        args.extend_from_slice(extra);
        self.cli(token, &args).ok()
    }

    fn inspect(&self, token: &str, id: &str) -> serde_json::Value {
        let r = self.cli(token, &["inspect", id, "--json"]);
        assert_eq!(r.code, 0, "{r:?}");
        r.json()
    }

    /// Waits (without exec) until sandbox `id` shows `want`; returns what it shows then.
    fn wait_for_state(&self, token: &str, id: &str, want: &str) -> serde_json::Value {
        let started = Instant::now();
        loop {
            let info = self.inspect(token, id);
            if info["state"] == want {
                return info;
            }
            assert!(
                started.elapsed() < NOTICED_WITHIN,
                "{id} should be {want} within {NOTICED_WITHIN:?}: {info}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The exec stream's events of `cmd` run by the tenant holding `token`, over the raw API.
    fn exec_events(&self, token: &str, id: &str, cmd: &str) -> Vec<serde_json::Value> {
        let body = serde_json::json!({ "cmd": ["/bin/sh", "-c", cmd] }).to_string();
        let path = format!("/v1/sandboxes/{id}/exec");
        let (code, resp) = self
            .d
            .http(Via::Tcp, "POST", &path, Some(token), Some(&body));
        assert_eq!(code, 200, "{resp:?}");
        let text = match resp {
            serde_json::Value::String(s) => s,
            one => one.to_string(),
        };
        text.lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
            .collect()
    }

    /// The host pid of the process whose life is sandbox `id`'s (runsc's sandbox process,
    /// runc's init), as its runtime reports it.
    fn runtime_pid(&self, id: &str) -> i32 {
        let (bin, root) = match self.rt {
            "runc" => ("runc", "run/runc"),
            _ => ("runsc", "run/runsc"),
        };
        let out = std::process::Command::new(bin)
            .arg("--root")
            .arg(self.d.home.join(root))
            .args(["state", id])
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        let state: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        let pid = state["pid"].as_i64().unwrap();
        assert!(pid > 0, "{state}");
        i32::try_from(pid).unwrap()
    }

    /// Kills sandbox `id`'s runtime process from the host, as an operator's mistake or a
    /// crash would end it.
    fn kill_runtime(&self, id: &str) {
        let pid = self.runtime_pid(id);
        let st = std::process::Command::new("kill")
            .args(["-9", &pid.to_string()])
            .status()
            .unwrap();
        assert!(st.success());
    }

    /// Asserts `id` is recorded stopped (within [`NOTICED_WITHIN`], no exec) because its runtime
    /// exited without hitting a limit.
    fn assert_runtime_death_noticed(&self, token: &str, id: &str) {
        let info = self.wait_for_state(token, id, "stopped");
        let reason = reason_of(&info);
        assert!(
            reason.contains(
                "the runtime running it exited without hitting the memory or process limit"
            ),
            "{id}: {info}"
        );
        self.assert_clean(reason);
    }

    /// A reason or message names no host path.
    fn assert_clean(&self, text: &str) {
        let home = self.d.home.to_string_lossy();
        assert!(
            !text.contains(home.as_ref()) && !text.contains("/sys/") && !text.contains("/proc/"),
            "host paths leak: {text}"
        );
    }

    /// Asserts `id` is running and answers an exec (after `SETTLE`, so that a wrongly fired
    /// watch would have shown).
    fn assert_still_running(&self, token: &str, id: &str, after: &str) {
        std::thread::sleep(SETTLE);
        let info = self.inspect(token, id);
        assert_eq!(info["state"], "running", "after {after}: {info}");
        assert_eq!(
            info["state_reason"],
            serde_json::Value::Null,
            "after {after}: {info}"
        );
        assert_eq!(
            self.cli(token, &["exec", id, "echo up"]).ok(),
            "up",
            "after {after}"
        );
    }

    /// Alice's sandbox runs, answers and kept her file; the daemon answers.
    fn assert_alice_untouched(&self) {
        let info = self.inspect(&self.alice, &self.alice_box);
        assert_eq!(info["state"], "running", "{info}");
        let r = self.cli(&self.alice, &["exec", &self.alice_box, "cat /root/f"]);
        assert_eq!(r.ok(), "alice-data");
        assert_healthy(&self.d);
    }
}

fn reason_of(info: &serde_json::Value) -> &str {
    info["state_reason"].as_str().unwrap_or_default()
}

/// The command that makes a 64 MiB sandbox die of memory: under gVisor one 200 MB allocation
/// (the host's out-of-memory killer ends gVisor's sandbox process); under runc the same
/// allocation only kills the command, so its init is first made the one the killer picks
/// (anyone may raise a process's `oom_score_adj`) and the memory is taken in small pieces.
fn memory_killer(rt: &str) -> &'static str {
    match rt {
        "runc" => "echo 1000 > /proc/1/oom_score_adj; for i in $(seq 24); do dd if=/dev/zero bs=4M count=1 2>/dev/null | sleep 30 & done; wait",
        _ => "dd if=/dev/zero of=/dev/null bs=200M count=1",
    }
}

/// One allocation over the limit.
const HOG: &str = "dd if=/dev/zero of=/dev/null bs=200M count=1";

fn a_memory_death_is_recorded_with_its_reason_and_told_to_the_exec(rt: &'static str) {
    let w = World::new(rt);
    let m = w.mallory.clone();
    let id = w.up(&m, &["--memory", "64M"]);
    w.cli(&m, &["exec", &id, "echo kept > /root/f"]).ok();
    if rt == "runc" {
        // A command killed for its memory is not a dead sandbox: it answers 137 alone.
        let events = w.exec_events(&m, &id, HOG);
        let exit = events.last().unwrap();
        assert_eq!(exit["type"], "exit", "{events:?}");
        assert_eq!(exit["code"], 137, "{events:?}");
        assert!(exit.get("message").is_none(), "{events:?}");
        w.assert_still_running(&m, &id, "a command killed for its memory");
    }
    let started = Instant::now();
    let r = w.cli(&m, &["exec", &id, memory_killer(rt)]);
    assert_eq!(r.code, 137, "the command died with its sandbox: {r:?}");
    let told = format!(
        "cairn: sandbox {id} stopped: its processes were killed for exceeding the memory limit of 64.0 MiB; start it again with 'cairn start {id}'"
    );
    assert!(r.stderr.contains(&told), "{r:?}");
    w.assert_clean(&r.stderr);
    // Recorded as it happened: no further exec needed.
    let info = w.wait_for_state(&m, &id, "stopped");
    eprintln!(
        "{rt}: memory death answered and recorded in {:?}",
        started.elapsed()
    );
    assert!(
        reason_of(&info)
            .starts_with("its processes were killed for exceeding the memory limit of 64.0 MiB"),
        "{info}"
    );
    // The dead container is gone, so start creates it again, on the same files.
    assert_eq!(
        w.cli(&m, &["start", &id, "--json"]).json()["state"],
        "running"
    );
    assert_eq!(w.cli(&m, &["exec", &id, "cat /root/f"]).ok(), "kept");
    w.assert_alice_untouched();
}

fn a_fork_bomb_leaves_the_sandbox_running_or_recorded_stopped_with_its_reason(rt: &'static str) {
    let w = World::new(rt);
    let m = w.mallory.clone();
    // A small process limit holds a fork bomb (runc: the pids cgroup; gVisor: its kernel's
    // RLIMIT_NPROC); gVisor with a small memory and the default process limit is killed by it.
    let mut cases = vec![("--pids", "20")];
    if rt == "gvisor" {
        cases.push(("--memory", "64M"));
    }
    for (flag, value) in cases {
        let id = w.up(&m, &[flag, value]);
        let events = w.exec_events(&m, &id, "f(){ f|f& }; f; sleep 3");
        let exit = events.last().unwrap().clone();
        assert_eq!(exit["type"], "exit", "{flag} {value}: {exit}");
        // Let a death be recorded, without any exec.
        std::thread::sleep(SETTLE);
        let info = w.inspect(&m, &id);
        match info["state"].as_str() {
            Some("running") => {
                eprintln!("{rt} {flag} {value}: the sandbox survived the fork bomb");
                assert!(exit.get("message").is_none(), "{exit}");
                // Survivors must answer (the bomb's last processes may hold the limit a moment).
                let started = Instant::now();
                loop {
                    let r = w.cli(&m, &["exec", &id, "echo alive"]);
                    if r.code == 0 && r.stdout.trim() == "alive" {
                        break;
                    }
                    assert_eq!(
                        w.inspect(&m, &id)["state"],
                        "running",
                        "shown running but does not answer: {r:?}"
                    );
                    assert!(started.elapsed() < Duration::from_secs(30), "{r:?}");
                    std::thread::sleep(Duration::from_millis(500));
                }
            }
            Some("stopped") => {
                eprintln!("{rt} {flag} {value}: the fork bomb killed the sandbox: {info}");
                let reason = reason_of(&info);
                assert!(reason.contains("limit of"), "{info}");
                assert_eq!(exit["code"], 137, "{exit}");
                let message = exit["message"].as_str().unwrap_or_default();
                assert!(message.contains(reason), "{exit} vs {info}");
                if flag == "--memory" {
                    assert!(reason.contains("memory limit of 64.0 MiB"), "{info}");
                }
                w.cli(&m, &["start", &id]).ok();
                assert_eq!(w.cli(&m, &["exec", &id, "echo back"]).ok(), "back");
            }
            _ => panic!("{info}"),
        }
    }
    w.assert_alice_untouched();
}

fn a_runtime_killed_on_the_host_is_recorded_stopped_at_once(rt: &'static str) {
    let w = World::new(rt);
    let m = w.mallory.clone();
    let id = w.up(&m, &["--memory", "64M"]);
    w.cli(&m, &["exec", &id, "echo kept > /root/f"]).ok();
    if rt == "runc" {
        // A command killed for its memory first: its kill must not be blamed for the death.
        assert_eq!(w.cli(&m, &["exec", &id, HOG]).code, 137);
        w.assert_still_running(&m, &id, "a command killed for its memory");
    }
    let started = Instant::now();
    w.kill_runtime(&id);
    w.assert_runtime_death_noticed(&m, &id);
    eprintln!(
        "{rt}: a killed runtime was recorded in {:?}",
        started.elapsed()
    );
    assert_eq!(
        w.cli(&m, &["start", &id, "--json"]).json()["state"],
        "running"
    );
    assert_eq!(w.cli(&m, &["exec", &id, "cat /root/f"]).ok(), "kept");
    w.assert_alice_untouched();
}

fn deliberate_ends_are_not_recorded_as_deaths_and_every_new_process_is_watched(rt: &'static str) {
    let w = World::new(rt);
    let m = w.mallory.clone();
    let id = w.up(&m, &[]);
    w.cli(&m, &["exec", &id, "echo kept > /root/f"]).ok();

    // Stop and start.
    w.cli(&m, &["stop", &id]).ok();
    std::thread::sleep(SETTLE);
    let info = w.inspect(&m, &id);
    assert_eq!(info["state"], "stopped", "{info}");
    assert_eq!(reason_of(&info), "stopped by request", "{info}");
    w.cli(&m, &["start", &id]).ok();
    w.assert_still_running(&m, &id, "stop and start");
    // `start` watches the new process.
    w.kill_runtime(&id);
    w.assert_runtime_death_noticed(&m, &id);
    w.cli(&m, &["start", &id]).ok();

    // A stateful snapshot (paused for it: not dead), then restore in place (which ends and
    // replaces the process).
    let snap = w.cli(&m, &["snapshot", "create", &id, "--stateful"]).ok();
    w.assert_still_running(&m, &id, "a stateful snapshot");
    let restored = w.cli(&m, &["snapshot", "restore", &snap, "--json"]).json();
    assert_eq!(restored["state"], "running", "{restored}");
    w.assert_still_running(&m, &id, "restore in place");
    w.kill_runtime(&id);
    w.assert_runtime_death_noticed(&m, &id);
    w.cli(&m, &["start", &id]).ok();

    // A pause (frozen, not dead), then a pause that releases the memory and a resume that
    // restores it into a new process.
    assert_eq!(
        w.cli(&m, &["pause", &id, "--json"]).json()["state"],
        "paused"
    );
    std::thread::sleep(SETTLE);
    assert_eq!(w.inspect(&m, &id)["state"], "paused");
    w.cli(&m, &["resume", &id]).ok();
    w.assert_still_running(&m, &id, "pause and resume");
    let paused = w
        .cli(&m, &["pause", &id, "--release-memory", "--json"])
        .json();
    assert_eq!(paused["memory_released"], true, "{paused}");
    std::thread::sleep(SETTLE);
    let info = w.inspect(&m, &id);
    assert_eq!(info["state"], "paused", "{info}");
    assert_eq!(info["state_reason"], serde_json::Value::Null, "{info}");
    w.cli(&m, &["resume", &id]).ok();
    w.assert_still_running(&m, &id, "resume from released memory");
    assert_eq!(w.cli(&m, &["exec", &id, "cat /root/f"]).ok(), "kept");
    w.kill_runtime(&id);
    w.assert_runtime_death_noticed(&m, &id);

    // A stateful fork runs in its own new process, watched too; its source is not disturbed.
    w.cli(&m, &["start", &id]).ok();
    let fork = w
        .cli(&m, &["up", "--from-snapshot", &snap, "--json"])
        .json()["id"]
        .as_str()
        .unwrap()
        .to_string();
    w.assert_still_running(&m, &fork, "a stateful fork");
    w.assert_still_running(&m, &id, "a fork of its snapshot");
    w.kill_runtime(&fork);
    w.assert_runtime_death_noticed(&m, &fork);
    assert_eq!(w.inspect(&m, &id)["state"], "running");

    // Destroying a running sandbox ends its process on purpose too.
    w.cli(&m, &["destroy", "--force", &id]).ok();
    std::thread::sleep(SETTLE);
    let gone = w.cli(&m, &["inspect", &id]);
    assert!(gone.stderr.contains("no sandbox"), "{gone:?}");
    w.assert_alice_untouched();
}

fn a_runtime_that_died_while_cairnd_was_down_is_stopped_with_its_reason_at_start(rt: &'static str) {
    let mut w = World::new(rt);
    let m = w.mallory.clone();
    let killed = w.up(&m, &[]);
    let starved = w.up(&m, &["--memory", "64M"]);
    let watched = w.up(&m, &[]);
    // A detached command that will take the memory once cairnd is gone.
    let delayed = format!("sleep 3; {}", memory_killer(rt));
    w.cli(&m, &["exec", "-d", &starved, &delayed]).ok();
    w.d.kill9();
    w.kill_runtime(&killed);
    std::thread::sleep(Duration::from_secs(6));
    w.d.relaunch();

    let info = w.inspect(&m, &killed);
    assert_eq!(info["state"], "stopped", "{info}");
    assert!(
        reason_of(&info).starts_with("while cairnd was not running, the runtime running it exited without hitting the memory or process limit"),
        "{info}"
    );
    let info = w.inspect(&m, &starved);
    assert_eq!(info["state"], "stopped", "{info}");
    assert!(
        reason_of(&info).starts_with("while cairnd was not running, its processes were killed for exceeding the memory limit of 64.0 MiB"),
        "{info}"
    );
    w.assert_clean(reason_of(&info));
    for id in [&killed, &starved] {
        w.cli(&m, &["start", id]).ok();
        assert_eq!(w.cli(&m, &["exec", id, "echo back"]).ok(), "back");
    }
    // The sandboxes found alive are watched again.
    assert_eq!(w.inspect(&m, &watched)["state"], "running");
    w.kill_runtime(&watched);
    w.assert_runtime_death_noticed(&m, &watched);
    w.assert_alice_untouched();
}
