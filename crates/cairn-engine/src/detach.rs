//! `exec -d`: start a command detached, as a child of the sandbox's init (so stateful
//! snapshots carry it), and answer with its process id — or with why it could not start.
//!
//! The sandbox's init runs every line written to its spawn FIFO
//! ([`cairn_runtime::bundle::SPAWN_FIFO`]) as a shell command, in the background. A line holds
//! no newline, so the command does not travel in it: a helper, run by the runtime's `exec`,
//! writes the whole command as a script into a private directory of `/dev`
//! (`/dev/cairn-detach.<its pid>/run`) beside a reply FIFO, and sends the init the line
//! `exec /bin/sh <dir>/run`. The script enters the working directory, exports the extra
//! environment, checks that the program exists and can run, starts the command as its child
//! and watches it for a moment: it writes `ok <the command's pid>` into the reply FIFO — or
//! what is wrong, or `exited <code>` when the command failed at once (a shell line whose
//! program is missing ends with 127) — and then waits for the command, so that it stays in
//! the init's tree. The helper prints the reply and removes the directory. Any command text
//! works, newlines included; inits started by older cairnds run the line the same way.
//!
//! Not for plain exec (see `exec`), whose processes belong to the runtime's exec.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use cairn_runtime::{ExecIo, ExecSpec, Runtime};
use cairn_types::SandboxId;
use tokio::io::AsyncReadExt;

use crate::exec_start::{self, Unstartable};
use crate::ExecOutput;

/// How long the helper may take to get the init's answer.
const REPLY_WAIT: Duration = Duration::from_secs(30);

/// Most bytes of the helper's output read (its answer is one short line).
const HELPER_OUTPUT_MAX: u64 = 64 * 1024;

/// The helper the runtime execs (`/bin/sh -c HELPER cairn-detach SCRIPT NONCE`): waits for the
/// init's FIFO, hands it the script, and prints the script's answer: `ok PID` once the
/// command has run for a grace period (0.1 s) or ended at once with 0, `exited CODE` when it
/// ended at once with another code, or why it could not start.
const HELPER: &str = r#"f=/dev/cairn-spawn
i=0
while [ ! -p $f ] && [ $i -lt 100 ]; do sleep 0.05; i=$((i+1)); done
[ -p $f ] || { echo 'this sandbox was started by an older cairnd and cannot detach processes: restart it (cairn stop, cairn start)' >&2; exit 125; }
d=/dev/cairn-detach.$2
rm -rf "$d"
mkdir -m 700 "$d" && mkfifo -m 600 "$d/reply" && printf '%s' "$1" > "$d/run" || exit 125
exec 3<>"$d/reply"
printf 'exec /bin/sh %s/run
' "$d" > $f
read -r answer <&3
case $answer in
pid\ *)
  (sleep 0.1; printf 'grace
' 1<>"$d/reply") >/dev/null 2>&1 &
  read -r more <&3
  case $more in
  'exited 0'|grace) answer="ok ${answer#pid }" ;;
  *) answer=$more ;;
  esac
  kill $! 2>/dev/null
  ;;
esac
rm -rf "$d"
printf '%s\n' "$answer"
"#;

/// A name no other detach of this cairnd uses (its request directory): a command that ends
/// long after its helper must not answer a later one.
fn nonce() -> String {
    static COUNT: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    format!(
        "{nanos:x}-{}-{}",
        std::process::id(),
        COUNT.fetch_add(1, Ordering::Relaxed)
    )
}

/// Quotes `s` for a POSIX shell.
pub(crate) fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "'\\''"))
}

/// The script the init runs for a detached `cmd` in `workdir` with the extra `env`: it
/// answers through the reply FIFO beside it (never blocking: the FIFO is opened read-write),
/// then becomes the command. It sets no variable the command could see.
pub(crate) fn detached_script(cmd: &[String], workdir: &str, env: &[String]) -> String {
    let w = shell_quote(workdir);
    let mut s =
        String::from("reply() { printf '%s\\n' \"$1\" 1<>\"${0%/*}/reply\" 2>/dev/null; }\n");
    s.push_str(&format!(
        "if ! cd -- {w} 2>/dev/null; then if [ ! -e {w} ]; then reply {m}; elif [ ! -d {w} ]; then reply {n}; else reply {d}; fi; exit 126; fi\n",
        m = Unstartable::WorkdirMissing.word(),
        n = Unstartable::WorkdirNotDirectory.word(),
        d = Unstartable::WorkdirDenied.word(),
    ));
    for kv in env {
        // Keys are checked (letters, digits, '_') before any exec.
        if let Some((k, v)) = kv.split_once('=') {
            s.push_str(&format!("export {k}={}\n", shell_quote(v)));
        }
    }
    let program = cmd.first().map(String::as_str).unwrap_or_default();
    s.push_str(&format!(
        "set -- {p}\ncase $1 in */*) ;; *) set -- \"$(command -v -- \"$1\")\" ;; esac\n\
         case $1 in\n\
         '') reply {missing}; exit 127 ;;\n\
         */*) if [ ! -e \"$1\" ]; then reply {missing}; exit 127; elif [ -d \"$1\" ] || [ ! -x \"$1\" ]; then reply {notexec}; exit 126; fi ;;\n\
         esac\n",
        p = shell_quote(program),
        missing = Unstartable::ProgramMissing.word(),
        notexec = Unstartable::ProgramNotExecutable.word(),
    ));
    // The command runs as this script's child, which waits for it (so that the helper hears
    // of a command that fails at once: a shell line whose program is missing ends with 127).
    // Variables are set only once the command has been started.
    s.push_str(
        &cmd.iter()
            .map(|a| shell_quote(a))
            .collect::<Vec<_>>()
            .join(" "),
    );
    s.push_str(
        " &\n__cairn_pid=$!\nreply \"pid $__cairn_pid\"\nwait $__cairn_pid\nreply \"exited $?\"\n",
    );
    s
}

/// What a detached command's script answered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Reply {
    /// It runs, with this pid.
    Started(u32),
    /// It could not start, for this reason.
    Unstartable(Unstartable),
    /// It ended at once with this (non-zero) code.
    Exited(i32),
}

/// What the helper's answer says, if it is one.
pub(crate) fn read_reply(answer: &str) -> Option<Reply> {
    let answer = answer.trim();
    if let Some(pid) = answer.strip_prefix("ok ") {
        return pid.trim().parse().ok().map(Reply::Started);
    }
    if let Some(code) = answer.strip_prefix("exited ") {
        return code.trim().parse().ok().map(Reply::Exited);
    }
    Unstartable::from_word(answer).map(Reply::Unstartable)
}

/// The exit of a detached command that ended at once with `code`.
pub(crate) fn exited_at_once(id: &SandboxId, code: i32) -> ExecOutput {
    let why = match code {
        exec_start::NOT_FOUND_EXIT_CODE => ": a program it runs was not found",
        exec_start::CANNOT_RUN_EXIT_CODE => ": a program it runs could not be executed",
        _ => "",
    };
    ExecOutput::Exit {
        code,
        message: Some(format!(
            "the detached command ended at once with code {code}{why} in sandbox {id} (its error output went where the command sends it: /dev/null unless it redirects it)"
        )),
    }
}

/// Starts `cmd` detached in sandbox `id` through `rt`; `env` is the exec's whole environment
/// (for the helper), `extra_env` what the request adds to the sandbox's. Returns the one event
/// of a detached exec: `Started` with the pid, or an `Exit` saying why it could not start.
pub(crate) async fn detach(
    rt: &dyn Runtime,
    id: &SandboxId,
    scratch: &std::path::Path,
    cmd: &[String],
    workdir: &str,
    env: Vec<String>,
    extra_env: &[String],
) -> crate::Result<ExecOutput> {
    let spec = ExecSpec {
        args: vec![
            "/bin/sh".to_string(),
            "-c".to_string(),
            HELPER.to_string(),
            "cairn-detach".to_string(),
            detached_script(cmd, workdir, extra_env),
            nonce(),
        ],
        env,
        cwd: "/".to_string(),
    };
    let mut exec = rt
        .exec(id.as_str(), &spec, scratch, ExecIo::Pipes { stdin: false })
        .await?;
    let read = |pipe: Option<Box<dyn tokio::io::AsyncRead + Unpin + Send>>| async move {
        let mut text = String::new();
        if let Some(p) = pipe {
            let _ = p.take(HELPER_OUTPUT_MAX).read_to_string(&mut text).await;
        }
        text
    };
    let stdout = exec
        .child
        .stdout
        .take()
        .map(|p| Box::new(p) as Box<dyn tokio::io::AsyncRead + Unpin + Send>);
    let stderr = exec
        .child
        .stderr
        .take()
        .map(|p| Box::new(p) as Box<dyn tokio::io::AsyncRead + Unpin + Send>);
    let ran = tokio::time::timeout(REPLY_WAIT, async {
        let (out, err) = tokio::join!(read(stdout), read(stderr));
        let status = exec.child.wait().await;
        (out, err, status)
    })
    .await;
    let outcome = match ran {
        Ok((out, err, status)) => {
            let code = status.map(cairn_cmd::exit_code).unwrap_or(-1);
            let started = exec_start::started(&exec.pid_file);
            match read_reply(&out) {
                Some(Reply::Started(pid)) => ExecOutput::Started { pid },
                Some(Reply::Unstartable(why)) => why.exit(id, workdir, cmd, &spec.env),
                Some(Reply::Exited(code)) => exited_at_once(id, code),
                None if !started => ExecOutput::Exit {
                    code: exec_start::CANNOT_RUN_EXIT_CODE,
                    message: Some(format!(
                        "could not start the detached command in sandbox {id}: the sandbox needs /bin/sh to start it"
                    )),
                },
                None => {
                    tracing::warn!(sandbox = %id, code, stderr = %err.trim(), "a detached exec got no answer from the init");
                    let said = err.trim().lines().last().unwrap_or_default().to_string();
                    ExecOutput::Exit {
                        code: if code == 0 { 125 } else { code },
                        message: Some(if said.is_empty() {
                            format!("the detached command did not report back from sandbox {id}: whether it started is unknown")
                        } else {
                            said
                        }),
                    }
                }
            }
        }
        Err(_) => {
            if let Err(e) = rt.kill_exec(id.as_str(), &exec).await {
                tracing::warn!(sandbox = %id, error = %e, "could not kill a detach helper that got no answer");
            }
            ExecOutput::Exit {
                code: 125,
                message: Some(format!(
                    "the sandbox's init did not answer within {} s: the detached command may not have started; is sandbox {id} overloaded?",
                    REPLY_WAIT.as_secs()
                )),
            }
        }
    };
    exec.remove_files();
    Ok(outcome)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_script_carries_any_command_text_quoted() {
        let cmd = vec![
            "sh".to_string(),
            "-c".to_string(),
            "echo 'a'\nexit 3".to_string(),
        ];
        let s = detached_script(&cmd, "/srv/it's", &["MODE=x y".to_string()]);
        assert!(s.contains("cd -- '/srv/it'\\''s'"), "{s}");
        assert!(s.contains("export MODE='x y'\n"), "{s}");
        assert!(
            s.contains("\n'sh' '-c' 'echo '\\''a'\\''\nexit 3' &\n__cairn_pid=$!\n"),
            "{s}"
        );
        // Nothing is assigned before the command starts (it would see an exported name).
        let before = &s[..s.find(" &\n__cairn_pid").unwrap()];
        assert!(!before.contains("__cairn"), "{before}");
        // The reply opens its FIFO read-write: it never blocks, even with no reader left.
        assert!(
            s.starts_with("reply() { printf '%s\\n' \"$1\" 1<>\"${0%/*}/reply\" 2>/dev/null; }")
        );
    }

    #[test]
    fn replies_read_back_as_a_pid_or_a_reason() {
        assert_eq!(read_reply("ok 42\n"), Some(Reply::Started(42)));
        assert_eq!(read_reply("exited 127"), Some(Reply::Exited(127)));
        assert_eq!(
            read_reply("program-missing"),
            Some(Reply::Unstartable(Unstartable::ProgramMissing))
        );
        assert_eq!(read_reply("ok nope"), None);
        assert_eq!(read_reply(""), None);
    }
}
