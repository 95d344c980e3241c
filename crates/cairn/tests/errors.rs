//! One error vocabulary (issue 15, findings 8 and 9), end to end: every code docs/api.md lists
//! is produced here and nothing else is; a runtime identity mismatch is a 409 on every path
//! with advice that works; a CRIU failure is the sandbox's to fix; a command that cannot
//! start says why the same way on both runtimes; execs ended by a stop, restore, release or
//! destroy say so; `--json` makes the CLI's errors JSON; every JSON endpoint follows one
//! body rule; `exec -d` prints the pid, fails when the command cannot start and takes any
//! text.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::process::Stdio;
use std::time::{Duration, Instant};

use cairn_test_support::{assert_error, Daemon, Via};
use cairn_types::ErrorCode;
use serde_json::Value;

fn daemon_with(args: &[&str]) -> Daemon {
    Daemon::with_base(
        env!("CARGO_BIN_EXE_cairnd"),
        env!("CARGO_BIN_EXE_cairn"),
        args,
    )
}

fn daemon() -> Daemon {
    daemon_with(&[])
}

/// A daemon listening on TCP too, with image `base` imported (public) by the operator.
fn tcp_daemon(args: &[&str]) -> Daemon {
    let d = Daemon::start_opts(
        env!("CARGO_BIN_EXE_cairnd"),
        env!("CARGO_BIN_EXE_cairn"),
        true,
        args,
    );
    d.import_base();
    d
}

fn up(d: &Daemon, runtime: &str) -> String {
    d.cairn(&["up", "--image", "base", "--runtime", runtime])
        .ok()
}

/// `POST path` over the unix socket with `body` and `content_type` (none: no header at all).
fn post_as(d: &Daemon, path: &str, content_type: Option<&str>, body: &str) -> (u16, Value) {
    let mut args: Vec<String> = vec!["-X".into(), "POST".into()];
    // curl adds its own type for --data-binary unless told to send none ("Content-Type:").
    args.extend([
        "-H".into(),
        match content_type {
            Some(ct) => format!("Content-Type: {ct}"),
            None => "Content-Type:".into(),
        },
    ]);
    args.extend(["--data-binary".into(), "@-".into()]);
    d.curl_with_stdin(Via::Unix, path, None, &args, body.as_bytes())
}

/// Parses a raw HTTP/1.1 answer: its status and its JSON body.
fn parse_response(raw: &[u8]) -> (u16, Value) {
    let text = String::from_utf8_lossy(raw);
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = text.split_once("\r\n\r\n").map_or("", |(_, b)| b);
    let json = body
        .find('{')
        .and_then(|a| body.rfind('}').map(|b| &body[a..=b]))
        .unwrap_or("");
    (status, serde_json::from_str(json).unwrap_or(Value::Null))
}

/// The codes docs/api.md's error table lists, with their statuses.
fn documented_codes() -> BTreeMap<String, u16> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/api.md");
    let text = std::fs::read_to_string(path).unwrap();
    let start = text
        .find("\n## Errors")
        .expect("docs/api.md has an Errors section");
    let section = &text[start..];
    let section = &section[..section.find("\n### ").unwrap_or(section.len())];
    let mut codes = BTreeMap::new();
    for line in section.lines().filter(|l| l.starts_with("| ")) {
        let cells: Vec<&str> = line.split('|').map(str::trim).collect();
        let (Some(status), Some(code)) = (cells.get(1), cells.get(2)) else {
            continue;
        };
        let (Ok(status), Some(code)) = (
            status.parse::<u16>(),
            code.strip_prefix('`').and_then(|c| c.strip_suffix('`')),
        ) else {
            continue;
        };
        assert!(
            codes.insert(code.to_string(), status).is_none(),
            "docs/api.md lists {code} twice"
        );
    }
    codes
}

/// Waits until `f` holds, for at most `secs`.
fn eventually(secs: u64, what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !f() {
        assert!(Instant::now() < deadline, "{what}: not within {secs} s");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The script that leaves process `$1` (a group leader that keeps running programs through
/// vfork) waiting on a stopped vfork child: stop the group until the leader is caught in
/// the vfork wait (state D), else let it go on and try again.
const CATCH_IN_VFORK: &str = r#"a=$1; i=0
while [ $i -lt 5000 ]; do
  kill -STOP -$a
  read -r st </proc/$a/stat; st=${st##*) }; st=${st%% *}
  if [ "$st" = D ]; then
    # Still waiting a moment later: its child is stopped before running its program.
    sleep 0.05
    read -r st </proc/$a/stat; st=${st##*) }; st=${st%% *}
    if [ "$st" = D ]; then echo caught; exit 0; fi
  fi
  kill -CONT -$a
  i=$((i+1))
done
echo missed; exit 1"#;

/// Walks the error vocabulary: produces every code the API has, through the API as a client
/// would, and checks the three lists agree — the codes produced here, the codes cairnd can
/// answer ([`ErrorCode::ALL`]), and docs/api.md's table — statuses included. A code the docs
/// list but nothing here produces, or one produced but not documented, fails it.
#[test]
fn every_documented_error_code_is_produced_and_no_other() {
    let d = tcp_daemon(&[
        "--default-runtime",
        "runc",
        // gVisor is "not installed" on this daemon: its sandboxes are refused with 503.
        "--runsc",
        "/nonexistent/runsc",
        "--max-snapshots-per-sandbox",
        "1",
        "--body-idle-timeout",
        "1s",
        "--max-connections-per-peer",
        "3",
    ]);
    let alice = d.token("alice");
    let mut produced: BTreeMap<String, (u16, String)> = BTreeMap::new();
    let mut record = |what: &str, resp: (u16, Value)| {
        let code = resp.1["error"]["code"]
            .as_str()
            .unwrap_or_else(|| panic!("{what}: not a JSON error: {resp:?}"))
            .to_string();
        let message = resp.1["error"]["message"].as_str().unwrap_or_default();
        assert!(!message.is_empty(), "{what}: no message: {resp:?}");
        produced.insert(code, (resp.0, what.to_string()));
    };

    record(
        "bad JSON",
        d.http(Via::Unix, "POST", "/v1/sandboxes", None, Some("{not json")),
    );
    record(
        "no token over TCP",
        d.http(Via::Tcp, "GET", "/v1/sandboxes", None, None),
    );
    record(
        "a tenant importing a host path",
        d.http(
            Via::Tcp,
            "POST",
            "/v1/images",
            Some(&alice),
            Some(r#"{"name":"x","path":"/tmp"}"#),
        ),
    );
    record(
        "an unknown sandbox",
        d.http(Via::Unix, "GET", "/v1/sandboxes/sbx-00000000", None, None),
    );
    record(
        "a wrong method",
        d.http(Via::Unix, "DELETE", "/v1/sandboxes", None, None),
    );
    // A body that stops arriving.
    let mut s = std::os::unix::net::UnixStream::connect(d.home.join("cairnd.sock")).unwrap();
    s.write_all(b"POST /v1/sandboxes HTTP/1.1\r\nHost: cairnd\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"image\"")
        .unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let mut raw = Vec::new();
    let _ = s.read_to_end(&mut raw);
    record("a stalled body", parse_response(&raw));
    let sbx = up(&d, "runc");
    record(
        "destroying a running sandbox without --force",
        d.http(
            Via::Unix,
            "DELETE",
            &format!("/v1/sandboxes/{sbx}"),
            None,
            None,
        ),
    );
    let snapshots = format!("/v1/sandboxes/{sbx}/snapshots");
    let (code, first) = d.http(
        Via::Unix,
        "POST",
        &snapshots,
        None,
        Some(r#"{"stateful":true}"#),
    );
    assert_eq!(code, 201, "{first}");
    let stateful = first["id"].as_str().unwrap().to_string();
    record(
        "a second snapshot over --max-snapshots-per-sandbox 1",
        d.http(Via::Unix, "POST", &snapshots, None, Some("{}")),
    );
    record(
        "a runc memory snapshot forked under gvisor",
        d.http(
            Via::Unix,
            "POST",
            "/v1/sandboxes",
            None,
            Some(&format!(
                r#"{{"from_snapshot":"{stateful}","runtime":"gvisor"}}"#
            )),
        ),
    );
    // A process caught waiting for a vfork child that never runs its program.
    let busy = up(&d, "runc");
    let pid = d
        .cairn(&[
            "exec",
            "-d",
            &busy,
            "--",
            "setsid",
            "awk",
            "BEGIN { for (;;) system(\"true\") }",
        ])
        .ok();
    let caught = d.cairn(&[
        "exec",
        &busy,
        "--",
        "sh",
        "-c",
        CATCH_IN_VFORK,
        "catch",
        &pid,
    ]);
    assert_eq!(caught.stdout.trim(), "caught", "{caught:?}");
    record(
        "a memory snapshot of a process waiting on vfork",
        d.http(
            Via::Unix,
            "POST",
            &format!("/v1/sandboxes/{busy}/snapshots"),
            None,
            Some(r#"{"stateful":true}"#),
        ),
    );
    d.cairn(&["exec", &busy, "--", "kill", "-CONT", &format!("-{pid}")])
        .ok();
    // A process holding a deleted 2 MiB file: CRIU saves at most 1 MiB of those.
    let ghost = up(&d, "runc");
    d.cairn(&["exec", "-d", &ghost, "dd if=/dev/zero of=/tmp/big bs=1M count=2 2>/dev/null; exec 3</tmp/big; rm /tmp/big; exec sleep 1000"])
        .ok();
    record(
        "a memory snapshot CRIU cannot take",
        d.http(
            Via::Unix,
            "POST",
            &format!("/v1/sandboxes/{ghost}/snapshots"),
            None,
            Some(r#"{"stateful":true}"#),
        ),
    );
    let big = format!(r#"{{"image":"base","name":"{}"}}"#, "x".repeat(3 << 20));
    record(
        "a JSON body over 2 MiB",
        d.curl_with_stdin(
            Via::Unix,
            "/v1/sandboxes",
            None,
            &[
                "-X".into(),
                "POST".into(),
                "-H".into(),
                "Content-Type: application/json".into(),
                "--data-binary".into(),
                "@-".into(),
            ],
            big.as_bytes(),
        ),
    );
    record(
        "a form body on a JSON endpoint",
        post_as(
            &d,
            &snapshots,
            Some("application/x-www-form-urlencoded"),
            "{}",
        ),
    );
    // A snapshot whose manifest the operator removed by hand: our failure, a reference only.
    std::fs::remove_file(
        d.home
            .join("pool/snapshots")
            .join(&stateful)
            .join("manifest.json"),
    )
    .unwrap();
    let internal = d.http(
        Via::Unix,
        "POST",
        "/v1/sandboxes",
        None,
        Some(&format!(r#"{{"from_snapshot":"{stateful}"}}"#)),
    );
    assert!(
        !internal.1.to_string().contains(d.home.to_str().unwrap()),
        "{internal:?}"
    );
    record("a snapshot without its manifest", internal);
    record(
        "a gvisor sandbox without runsc",
        d.http(
            Via::Unix,
            "POST",
            "/v1/sandboxes",
            None,
            Some(r#"{"image":"base","runtime":"gvisor"}"#),
        ),
    );
    // Three idle connections from one address take its whole share.
    let addr = d.tcp.clone().unwrap();
    let held: Vec<_> = (0..3)
        .map(|_| std::net::TcpStream::connect(&addr).unwrap())
        .collect();
    std::thread::sleep(Duration::from_millis(300));
    record(
        "a fourth connection from one address",
        d.http(Via::Tcp, "GET", "/v1/sandboxes", Some(&alice), None),
    );
    drop(held);
    // Last: a pool filled below half its reserve by something else.
    let filler = d.home.join("pool/filler");
    let free = {
        let out = std::process::Command::new("df")
            .args(["-B1", "--output=avail"])
            .arg(d.home.join("pool"))
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .nth(1)
            .unwrap()
            .trim()
            .parse::<u64>()
            .unwrap()
    };
    let st = std::process::Command::new("fallocate")
        .args(["-l", &(free - (16 << 20)).to_string()])
        .arg(&filler)
        .status()
        .unwrap();
    assert!(st.success());
    std::process::Command::new("sync").status().unwrap();
    let mut full = (0, Value::Null);
    eventually(20, "the pool refuses new sandboxes", || {
        full = d.http(
            Via::Unix,
            "POST",
            "/v1/sandboxes",
            None,
            Some(r#"{"image":"base"}"#),
        );
        full.0 == 507
    });
    record("a full pool", full);
    let _ = std::fs::remove_file(&filler);

    // The three lists agree.
    let documented = documented_codes();
    let known: BTreeMap<String, u16> = ErrorCode::ALL
        .iter()
        .map(|c| (c.as_str().to_string(), c.status()))
        .collect();
    assert_eq!(
        documented, known,
        "docs/api.md's error table and the codes cairnd answers differ"
    );
    let produced_codes: Vec<&String> = produced.keys().collect();
    let documented_codes: Vec<&String> = documented.keys().collect();
    assert_eq!(
        produced_codes, documented_codes,
        "codes produced here vs codes documented: {produced:?}"
    );
    for (code, (status, what)) in &produced {
        assert_eq!(
            Some(status),
            documented.get(code),
            "{what}: {code} answered {status}, documented otherwise"
        );
    }
}

/// A stateful snapshot whose processes cannot resume is a 409 `runtime_identity_mismatch` on
/// every path (fork, restore, resume of a released memory), never a 400, and each message
/// says what works for that command — which then works.
#[test]
fn a_runtime_mismatch_is_a_409_on_every_path_with_advice_that_works() {
    let d = daemon();
    let g = up(&d, "gvisor");
    d.cairn(&["exec", &g, "echo from-gvisor > /root/mark"]).ok();
    d.cairn(&["exec", "-d", &g, "sleep 1000"]).ok();
    let snap = d
        .cairn(&["snapshot", "create", &g, "--stateful", "--name", "mem"])
        .ok();
    let count = || d.cairn(&["ls", "--json"]).json().as_array().unwrap().len();
    let before = count();

    // A fork under another runtime.
    let body = format!(r#"{{"from_snapshot":"{snap}","runtime":"runc"}}"#);
    let resp = d.http(Via::Unix, "POST", "/v1/sandboxes", None, Some(&body));
    assert_error(&resp, 409, "runtime_identity_mismatch", "--fresh");
    let e = &resp.1["error"];
    assert!(
        e["details"]["differs"]
            .as_str()
            .unwrap()
            .contains("runtime"),
        "{resp:?}"
    );
    assert_eq!(e["details"]["recorded"]["runtime"], "gvisor", "{resp:?}");
    assert_eq!(e["details"]["host"]["runtime"], "runc", "{resp:?}");
    let msg = e["message"].as_str().unwrap();
    assert!(
        msg.contains(&format!("cairn up --from-snapshot {snap} --fresh")),
        "{msg}"
    );
    assert_eq!(count(), before, "nothing was created");
    // What it says works.
    let fork = d
        .cairn(&[
            "up",
            "--from-snapshot",
            &snap,
            "--fresh",
            "--runtime",
            "runc",
        ])
        .ok();
    assert_eq!(
        d.cairn(&["exec", &fork, "cat /root/mark"]).ok(),
        "from-gvisor"
    );

    // A restore into a sandbox of another runtime.
    let r = up(&d, "runc");
    d.cairn(&["exec", &r, "echo mine > /root/mark"]).ok();
    let resp = d.http(
        Via::Unix,
        "POST",
        &format!("/v1/snapshots/{snap}/restore"),
        None,
        Some(&format!(r#"{{"to":"{r}"}}"#)),
    );
    assert_error(&resp, 409, "runtime_identity_mismatch", "--fresh");
    let msg = resp.1["error"]["message"].as_str().unwrap();
    assert!(
        msg.contains(&format!("cairn snapshot restore {snap} --to {r} --fresh")),
        "{msg}"
    );
    assert_eq!(
        d.cairn(&["exec", &r, "cat /root/mark"]).ok(),
        "mine",
        "nothing was restored"
    );
    // The CLI says the same, and its advice works: the files come back, no processes.
    let refused = d.cairn(&["snapshot", "restore", &snap, "--to", &r]);
    assert_eq!(refused.code, 1, "{refused:?}");
    assert!(refused.stderr.contains("--fresh"), "{refused:?}");
    d.cairn(&["snapshot", "restore", &snap, "--to", &r, "--fresh"])
        .ok();
    assert_eq!(d.cairn(&["exec", &r, "cat /root/mark"]).ok(), "from-gvisor");
    let ps = d
        .cairn(&["exec", &r, "ps -o args | grep -c '^sleep 1000' || true"])
        .ok();
    assert_eq!(ps, "0", "a fresh restore resumes no process");
    assert_eq!(
        d.cairn(&["inspect", &r, "--json"]).json()["state"],
        "running"
    );
    // --fresh into its own sandbox puts back the files and boots: the detached sleep is gone.
    d.cairn(&["snapshot", "restore", &snap, "--fresh"]).ok();
    let ps = d
        .cairn(&["exec", &g, "ps -o args | grep -c '^sleep 1000' || true"])
        .ok();
    assert_eq!(ps, "0", "{ps}");
}

cairn_test_support::both_runtimes!(
    resuming_a_released_memory_on_another_kernel_says_to_stop_and_start,
    commands_that_cannot_start_say_why_the_same_way,
    execs_ended_by_stop_restore_release_or_destroy_say_what_ended_them,
    exec_detach_prints_the_pid_and_fails_when_the_command_cannot_start,
);

/// The resume of a sandbox paused with its memory released, on a host whose kernel differs
/// from the snapshot's: 409 `runtime_identity_mismatch` that says to stop and start it (no
/// `--fresh`, which resume does not have), and stop and start then work.
fn resuming_a_released_memory_on_another_kernel_says_to_stop_and_start(rt: &str) {
    let d = daemon();
    let id = up(&d, rt);
    d.cairn(&["exec", &id, "echo kept > /root/file"]).ok();
    let paused = d
        .cairn(&["pause", "--release-memory", &id, "--json"])
        .json();
    assert_eq!(paused["state"], "paused", "{paused}");
    // Its memory is in the pause's snapshot, the only one: as if taken on another kernel.
    let mut forged = 0;
    for e in std::fs::read_dir(d.home.join("pool/snapshots")).unwrap() {
        let manifest = e.unwrap().path().join("manifest.json");
        let mut m: Value = serde_json::from_slice(&std::fs::read(&manifest).unwrap()).unwrap();
        m["kernel_release"] = "9.9.9-elsewhere".into();
        std::fs::write(&manifest, serde_json::to_vec(&m).unwrap()).unwrap();
        forged += 1;
    }
    assert_eq!(forged, 1);

    let resp = d.http(
        Via::Unix,
        "POST",
        &format!("/v1/sandboxes/{id}/resume"),
        None,
        None,
    );
    assert_error(
        &resp,
        409,
        "runtime_identity_mismatch",
        &format!("cairn stop {id}"),
    );
    let msg = resp.1["error"]["message"].as_str().unwrap();
    assert!(!msg.contains("--fresh"), "resume has no --fresh: {msg}");
    assert_eq!(resp.1["error"]["details"]["differs"], "kernel release");
    let r = d.cairn(&["resume", &id]);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(r.stderr.contains("cairn start"), "{r:?}");
    assert_eq!(
        d.cairn(&["inspect", &id, "--json"]).json()["state"],
        "paused"
    );
    // The advice works: its files, booted fresh.
    d.cairn(&["stop", &id]).ok();
    d.cairn(&["start", &id]).ok();
    assert_eq!(d.cairn(&["exec", &id, "cat /root/file"]).ok(), "kept");
}

/// A CRIU dump that fails on what the sandbox holds (a deleted 2 MiB file still open) is a
/// 409 `checkpoint_failed` that says what and what to do, names no host path nor runc command
/// line; the snapshot is `failed` with the same words, and the sandbox runs on.
#[test]
fn runc_a_checkpoint_criu_cannot_take_is_a_409_that_says_what_to_do() {
    let d = daemon();
    let id = up(&d, "runc");
    d.cairn(&["exec", "-d", &id, "dd if=/dev/zero of=/tmp/big bs=1M count=2 2>/dev/null; exec 3</tmp/big; rm /tmp/big; exec sleep 1000"])
        .ok();
    let resp = d.http(
        Via::Unix,
        "POST",
        &format!("/v1/sandboxes/{id}/snapshots"),
        None,
        Some(r#"{"stateful":true,"name":"mem"}"#),
    );
    assert_error(&resp, 409, "checkpoint_failed", "deleted file");
    let msg = resp.1["error"]["message"].as_str().unwrap().to_string();
    for leak in [
        d.home.to_str().unwrap(),
        "runc ",
        "criu.conf",
        "--image-path",
        "dump.log",
    ] {
        assert!(!msg.contains(leak), "the message names {leak:?}: {msg}");
    }
    assert!(msg.contains("without --stateful"), "{msg}");
    // The CLI (and its --json) says the same.
    let r = d.cairn(&["--json", "snapshot", "create", &id, "--stateful"]);
    assert_eq!(r.code, 1);
    let e: Value = serde_json::from_str(r.stderr.trim()).unwrap();
    assert_eq!(e["error"]["code"], "checkpoint_failed", "{r:?}");
    // The sandbox runs on, untouched, and a snapshot of its files works.
    assert_eq!(d.cairn(&["exec", &id, "echo alive"]).ok(), "alive");
    assert_eq!(
        d.cairn(&["inspect", &id, "--json"]).json()["state"],
        "running"
    );
    d.cairn(&["snapshot", "create", &id, "--name", "files"])
        .ok();
    // Whatever failed rows remain say only the same words.
    let all = d.cairn(&["snapshot", "list", "--all", "--json"]).ok();
    assert!(!all.contains(d.home.to_str().unwrap()), "{all}");
    assert!(!all.contains("criu/"), "{all}");
    // The operator finds CRIU's own words in the log.
    assert!(d.log_text().contains("Can't dump ghost file"));
}

/// A missing working directory or program, or a program that is not executable: the same
/// exit code (126, 127) and message on both runtimes, no runtime text, and `--json` makes it a
/// `cannot_start` error. Commands that do start are untouched (output, code).
fn commands_that_cannot_start_say_why_the_same_way(rt: &str) {
    let d = daemon();
    let id = up(&d, rt);
    let r = d.cairn(&["exec", "-w", "/missing", &id, "--", "ls"]);
    assert_eq!(r.code, 126, "{r:?}");
    assert_eq!(r.stdout, "");
    assert_eq!(
        r.stderr.trim(),
        format!("cairn: cannot start the command: its working directory '/missing' does not exist in sandbox {id}; create it first (cairn exec {id} mkdir -p '/missing') or give another with --workdir")
    );
    let r = d.cairn(&["exec", &id, "--", "no-such-program", "arg"]);
    assert_eq!(r.code, 127, "{r:?}");
    assert!(
        r.stderr
            .starts_with("cairn: cannot start 'no-such-program'"),
        "{r:?}"
    );
    assert_eq!(
        r.stderr.lines().count(),
        1,
        "the runtime's text is not passed on: {r:?}"
    );
    let r = d.cairn(&["exec", &id, "--", "/etc/passwd", "x"]);
    assert_eq!(r.code, 126, "{r:?}");
    assert!(r.stderr.contains("not an executable file"), "{r:?}");
    for leak in ["runc", "runsc", "level=error", "config.json", "executing"] {
        assert!(!r.stderr.contains(leak), "{r:?}");
    }
    let r = d.cairn(&["--json", "exec", "-w", "/missing", &id, "--", "ls"]);
    assert_eq!(r.code, 126);
    let e: Value = serde_json::from_str(r.stderr.trim()).unwrap();
    assert_eq!(e["error"]["code"], "cannot_start", "{r:?}");
    // Over the API: one exit event with the code and the message.
    let (code, body) = d.http(
        Via::Unix,
        "POST",
        &format!("/v1/sandboxes/{id}/exec"),
        None,
        Some(r#"{"cmd":["ls"],"workdir":"/missing"}"#),
    );
    assert_eq!(code, 200);
    let events: Vec<Value> = body
        .as_str()
        .map(|s| {
            s.lines()
                .map(|l| serde_json::from_str(l).unwrap())
                .collect()
        })
        .unwrap_or_else(|| vec![body.clone()]);
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0]["type"], "exit");
    assert_eq!(events[0]["code"], 126);
    assert!(events[0]["message"]
        .as_str()
        .unwrap()
        .contains("'/missing' does not exist"));
    // A command that starts keeps its output, order of lines and code, at once.
    let r = d.cairn(&[
        "exec",
        "-w",
        "/tmp",
        &id,
        "--",
        "sh",
        "-c",
        "pwd; echo err >&2; exit 3",
    ]);
    assert_eq!(
        (r.code, r.stdout.as_str(), r.stderr.as_str()),
        (3, "/tmp\n", "err\n")
    );
    let r = d.cairn(&["exec", &id, "--", "sh", "-c", "exit 127"]);
    assert_eq!(
        (r.code, r.stderr.as_str()),
        (127, ""),
        "a command's own 127 is its own"
    );
}

/// Starts `cairn exec ID sleep 300` and waits until the sleep runs.
fn running_exec(d: &Daemon, id: &str) -> std::process::Child {
    let child = d
        .cairn_command(&["exec", id, "--", "sleep", "300"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    eventually(20, "the exec's sleep runs", || {
        d.cairn(&["exec", id, "ps -o args | grep -c '^sleep 300' || true"])
            .stdout
            .trim()
            != "0"
    });
    child
}

/// How a `cairn exec` ended: its code and stderr.
fn ended(child: std::process::Child) -> (i32, String) {
    let out = child.wait_with_output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A stop, a restore in place, a pause with its memory released and a destroy end the
/// commands running in the sandbox with 137 and a line naming what ended them (`--json`:
/// an `interrupted` error), never a bare 137.
fn execs_ended_by_stop_restore_release_or_destroy_say_what_ended_them(rt: &str) {
    let d = daemon();
    let id = up(&d, rt);
    let snap = d.cairn(&["snapshot", "create", &id]).ok();

    let exec = running_exec(&d, &id);
    d.cairn(&["snapshot", "restore", &snap]).ok();
    let (code, err) = ended(exec);
    assert_eq!(code, 137, "{err}");
    assert!(
        err.contains(&format!(
            "sandbox {id} was restored from snapshot {snap} while the command ran"
        )),
        "{err}"
    );

    let exec = running_exec(&d, &id);
    d.cairn(&["stop", &id]).ok();
    let (code, err) = ended(exec);
    assert_eq!(code, 137, "{err}");
    assert!(
        err.contains(&format!("sandbox {id} was stopped while the command ran")),
        "{err}"
    );
    assert!(err.contains(&format!("cairn start {id}")), "{err}");
    d.cairn(&["start", &id]).ok();

    // Destroyed under a command: a sandbox of its own.
    let other = up(&d, rt);
    let exec = running_exec(&d, &other);
    d.cairn(&["destroy", "--force", &other]).ok();
    let (code, err) = ended(exec);
    assert_eq!(code, 137, "{err}");
    assert!(
        err.contains(&format!(
            "sandbox {other} was destroyed while the command ran"
        )),
        "{err}"
    );
    let gone = d.http(
        Via::Unix,
        "GET",
        &format!("/v1/sandboxes/{other}"),
        None,
        None,
    );
    assert_eq!(gone.0, 404, "{gone:?}");

    // Last, and with no resume after it: under gVisor a sandbox whose memory was released
    // while an exec ran cannot resume (runsc cannot restore the exec's host pipes: a
    // limitation outside this test's subject, reported with this branch).
    let exec = d
        .cairn_command(&["--json", "exec", &id, "--", "sleep", "300"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    eventually(20, "the exec's sleep runs", || {
        d.cairn(&["exec", &id, "ps -o args | grep -c '^sleep 300' || true"])
            .stdout
            .trim()
            != "0"
    });
    d.cairn(&["pause", "--release-memory", &id]).ok();
    let (code, err) = ended(exec);
    assert_eq!(code, 137, "{err}");
    // The CLI's own word is its last line (under gVisor, runsc's complaint that it lost the
    // process, part of the command's stderr, may come before it).
    let last = err.trim().lines().last().unwrap_or_default();
    let e: Value = serde_json::from_str(last).unwrap_or_else(|_| panic!("{err}"));
    assert_eq!(e["error"]["code"], "interrupted", "{err}");
    assert!(
        e["error"]["message"]
            .as_str()
            .unwrap()
            .contains("paused with its memory released"),
        "{err}"
    );
    d.cairn(&["destroy", "--force", &id]).ok();
}

/// `exec -d` prints the pid of the process inside the sandbox, fails (non-zero, a message)
/// when the command cannot start or fails at once, takes any command text (newlines
/// included), and the process it starts is the init's, so a stateful snapshot carries it.
fn exec_detach_prints_the_pid_and_fails_when_the_command_cannot_start(rt: &str) {
    let d = daemon();
    let id = up(&d, rt);
    let r = d.cairn(&["exec", "-d", &id, "sleep 600"]);
    assert_eq!(r.code, 0, "{r:?}");
    let pid: u32 = r.stdout.trim().parse().unwrap_or_else(|_| panic!("{r:?}"));
    let cmdline = d
        .cairn(&["exec", &id, &format!("tr '\\0' ' ' < /proc/{pid}/cmdline")])
        .ok();
    assert_eq!(cmdline, "sleep 600", "pid {pid} is the detached command");
    // Any text: newlines in the command and in its environment.
    let r = d.cairn(&[
        "exec",
        "-d",
        "-e",
        "LINES=one\ntwo",
        &id,
        "--",
        "sh",
        "-c",
        "echo \"$LINES\" > /tmp/env\necho second-line > /tmp/cmd\nsleep 600",
    ]);
    assert_eq!(r.code, 0, "{r:?}");
    eventually(10, "the detached command wrote", || {
        d.cairn(&["exec", &id, "cat /tmp/cmd 2>/dev/null"])
            .stdout
            .trim()
            == "second-line"
    });
    assert_eq!(d.cairn(&["exec", &id, "cat /tmp/env"]).ok(), "one\ntwo");
    // --json prints {"pid": N}.
    let j = d.cairn(&["--json", "exec", "-d", &id, "sleep 600"]).json();
    assert!(j["pid"].as_u64().unwrap() > 1, "{j}");
    // A program that is not there, directly or in a shell line; a missing directory.
    let r = d.cairn(&["exec", "-d", &id, "--", "no-such-program", "x"]);
    assert_eq!(r.code, 127, "{r:?}");
    assert!(r.stderr.contains("cannot start 'no-such-program'"), "{r:?}");
    assert_eq!(r.stdout, "");
    let r = d.cairn(&["exec", "-d", &id, "no-such-program --serve"]);
    assert_eq!(r.code, 127, "{r:?}");
    assert!(r.stderr.contains("ended at once with code 127"), "{r:?}");
    let r = d.cairn(&["exec", "-d", "-w", "/missing", &id, "sleep 1"]);
    assert_eq!(r.code, 126, "{r:?}");
    assert!(r.stderr.contains("'/missing' does not exist"), "{r:?}");
    let r = d.cairn(&["--json", "exec", "-d", &id, "exit 3"]);
    assert_eq!(r.code, 3, "{r:?}");
    let e: Value = serde_json::from_str(r.stderr.trim()).unwrap();
    assert_eq!(e["error"]["code"], "cannot_start", "{r:?}");
    // A quick command that succeeds is fine.
    let r = d.cairn(&["exec", "-d", &id, "true"]);
    assert_eq!(r.code, 0, "{r:?}");
    // The detached sleep descends from the init, so a stateful fork has it.
    let snap = d.cairn(&["snapshot", "create", &id, "--stateful"]).ok();
    let fork = d.cairn(&["up", "--from-snapshot", &snap]).ok();
    let there = d
        .cairn(&[
            "exec",
            &fork,
            &format!("tr '\\0' ' ' < /proc/{pid}/cmdline"),
        ])
        .ok();
    assert_eq!(there, "sleep 600", "the fork carries pid {pid}");
}

/// Under `--json` every error the CLI prints is one JSON object on stderr with a code, and
/// the exit code stays non-zero: API refusals (with their `details`), usage errors, an
/// unreachable daemon, a bad local file.
#[test]
fn under_json_every_cli_error_is_one_json_object() {
    let d = daemon();
    let one = |args: &[&str], exit: i32, code: &str| -> Value {
        let r = d.cairn(args);
        assert_eq!(r.code, exit, "{args:?}: {r:?}");
        assert_eq!(r.stdout, "", "{args:?}: {r:?}");
        assert_eq!(r.stderr.lines().count(), 1, "{args:?}: one line: {r:?}");
        let v: Value = serde_json::from_str(r.stderr.trim())
            .unwrap_or_else(|e| panic!("{args:?}: not JSON ({e}): {r:?}"));
        assert_eq!(v["error"]["code"], code, "{args:?}: {v}");
        assert!(!v["error"]["message"].as_str().unwrap().is_empty());
        v
    };
    one(&["--json", "inspect", "nope"], 1, "not_found");
    one(&["inspect", "nope", "--json"], 1, "not_found");
    one(
        &["--json", "up", "--image", "base", "--memory", "lots"],
        1,
        "invalid_argument",
    );
    one(&["--json", "up"], 2, "invalid_argument");
    one(
        &["--json", "up", "--image", "base", "--bogus"],
        2,
        "invalid_argument",
    );
    one(
        &["--json", "exec", "sbx-00000000", "true"],
        125,
        "not_found",
    );
    one(
        &["--json", "--host", "/nonexistent/cairnd.sock", "ls"],
        1,
        "connection_failed",
    );
    one(
        &[
            "--json",
            "image",
            "import",
            "--upload",
            "/nonexistent/image.tar",
            "--name",
            "x",
        ],
        1,
        "invalid_argument",
    );
    one(
        &["--json", "fork", "snap-00000000", "--count", "0"],
        1,
        "invalid_argument",
    );
    // Without --json: one plain line.
    let r = d.cairn(&["inspect", "nope"]);
    assert_eq!(r.code, 1);
    assert!(r.stderr.starts_with("cairn: no sandbox 'nope'"), "{r:?}");
    // Help is still help.
    let r = d.cairn(&["--json", "--help"]);
    assert_eq!(r.code, 0);
    assert!(r.stdout.contains("Usage"), "{r:?}");
}

/// One body rule on every JSON endpoint: no Content-Type is JSON, a JSON type (with
/// parameters) is JSON, any other type is 415 `unsupported_media_type`; the image upload
/// takes any type.
#[test]
fn every_json_endpoint_takes_the_same_bodies() {
    let d = daemon();
    let id = up(&d, "runc");
    d.cairn(&["snapshot", "create", &id, "--name", "first"])
        .ok();
    // Each endpoint with a body it accepts; the answer's status when it is taken as JSON.
    let endpoints: Vec<(String, String, u16)> = vec![
        (
            "/v1/sandboxes".into(),
            r#"{"image":"base","runtime":"runc"}"#.into(),
            201,
        ),
        (
            format!("/v1/sandboxes/{id}/exec"),
            r#"{"cmd":["true"]}"#.into(),
            200,
        ),
        (format!("/v1/sandboxes/{id}/snapshots"), "{}".into(), 201),
        (
            "/v1/images/base/publish".into(),
            r#"{"public":true}"#.into(),
            200,
        ),
    ];
    for (path, body, ok) in &endpoints {
        for ct in [
            None,
            Some("application/json"),
            Some("application/json; charset=utf-8"),
        ] {
            let (code, answer) = post_as(&d, path, ct, body);
            assert_eq!(code, *ok, "{path} with {ct:?}: {answer}");
        }
        for ct in [
            "text/plain",
            "application/x-www-form-urlencoded",
            "application/xml",
        ] {
            let resp = post_as(&d, path, Some(ct), body);
            assert_error(
                &resp,
                415,
                "unsupported_media_type",
                "Content-Type: application/json",
            );
            assert!(
                resp.1["error"]["message"].as_str().unwrap().contains(ct),
                "{resp:?}"
            );
        }
    }
    let snap = d.cairn(&["snapshot", "list", &id, "--json"]).json()[0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let restore = format!("/v1/snapshots/{snap}/restore");
    assert_eq!(
        post_as(&d, &restore, None, "").0,
        200,
        "an empty restore body is all defaults"
    );
    assert_error(
        &post_as(&d, &restore, Some("text/plain"), "{}"),
        415,
        "unsupported_media_type",
        "text/plain",
    );
    // PUT too.
    let put = |ct: Option<&str>| {
        let mut args: Vec<String> = vec!["-X".into(), "PUT".into()];
        args.extend([
            "-H".into(),
            ct.map_or("Content-Type:".into(), |ct| format!("Content-Type: {ct}")),
        ]);
        args.extend(["--data-binary".into(), "@-".into()]);
        d.curl_with_stdin(
            Via::Unix,
            "/v1/account/network",
            None,
            &args,
            br#"{"sandbox_to_sandbox":false}"#,
        )
    };
    assert_eq!(put(None).0, 200);
    assert_error(
        &put(Some("text/plain")),
        415,
        "unsupported_media_type",
        "text/plain",
    );
    // Bad JSON and unknown fields stay 400 whatever the type; an empty body where one is needed too.
    assert_error(
        &post_as(&d, "/v1/sandboxes", None, "{nope"),
        400,
        "invalid_argument",
        "invalid request body",
    );
    assert_error(
        &post_as(&d, "/v1/sandboxes", None, ""),
        400,
        "invalid_argument",
        "empty",
    );
    assert_error(
        &post_as(
            &d,
            &format!("/v1/sandboxes/{id}/snapshots"),
            None,
            r#"{"colour":1}"#,
        ),
        400,
        "invalid_argument",
        "colour",
    );
    // The image upload is the exception: an archive of any type.
    let tar = d.scratch().join("rootfs.tar");
    let st = std::process::Command::new("tar")
        .arg("-cf")
        .arg(&tar)
        .arg("-C")
        .arg(cairn_test_support::base_rootfs())
        .arg(".")
        .status()
        .unwrap();
    assert!(st.success());
    let upload = d.curl(
        Via::Unix,
        "/v1/images?name=uploaded",
        None,
        &[
            "-X".into(),
            "POST".into(),
            "-H".into(),
            "Content-Type: application/x-tar".into(),
            "--data-binary".into(),
            format!("@{}", tar.display()),
        ],
    );
    assert_eq!(upload.0, 201, "{upload:?}");
}

/// A CLI whose reader went away (`cairn image ls | head -0`, `cairn exec … | head -1`) ends
/// as a Unix tool ended by SIGPIPE does: status 141 and nothing on stderr, never a panic.
#[test]
fn a_reader_that_goes_away_ends_the_cli_quietly() {
    let d = daemon();
    let id = d
        .cairn(&["up", "--image", "base", "--runtime", "runc"])
        .ok();
    let closed = || {
        let (reader, writer) = std::io::pipe().unwrap();
        drop(reader);
        writer
    };
    for args in [
        vec!["image", "ls"],
        vec!["ls", "--json"],
        vec!["exec", id.as_str(), "--", "echo", "hello"],
    ] {
        let out = d
            .cairn_command(&args)
            .stdout(closed())
            .stderr(Stdio::piped())
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(
            out.status.code(),
            Some(141),
            "cairn {args:?} into a closed pipe: {stderr}"
        );
        assert!(stderr.is_empty(), "cairn {args:?} said: {stderr}");
    }
}
