//! Whether an exec's process started, and when it could not, why — in the same words on
//! both runtimes.
//!
//! runc and runsc refuse a missing working directory or program in their own words and exit
//! codes (runc: 255 and a log line; runsc: 128 and its call chain). Both write the exec's
//! pid file once the process runs, so output is held back behind a [`Gate`] until the pid
//! file appears: a runtime that exits before that failed to start the process, and what it
//! printed is its own, not the command's. A short probe in the sandbox then says why
//! ([`diagnose`]), and the exec ends with 126 or 127 (as a shell's would) and a message.
//!
//! Not for detached execs (see `detach`), whose helper checks the same things itself.

use std::path::Path;
use std::time::Duration;

use tokio::sync::watch;

use cairn_runtime::{ExecIo, ExecSpec, Runtime};
use cairn_types::SandboxId;

use crate::ExecOutput;

/// Exit code of a command that was found but could not run (or whose working directory
/// could not be entered), as in POSIX shells.
pub const CANNOT_RUN_EXIT_CODE: i32 = 126;

/// Exit code of a command whose program does not exist, as in POSIX shells.
pub const NOT_FOUND_EXIT_CODE: i32 = 127;

/// How often the pid file is looked for while the process starts.
const START_POLL: Duration = Duration::from_millis(5);

/// After this long without a pid file, output flows anyway (and the process is taken as
/// started): runtimes refuse a process within milliseconds.
const START_WAIT: Duration = Duration::from_secs(2);

/// Why a command could not start.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Unstartable {
    /// Its working directory does not exist.
    WorkdirMissing,
    /// Its working directory is not a directory.
    WorkdirNotDirectory,
    /// Its working directory cannot be entered.
    WorkdirDenied,
    /// Its program is not there (or not in PATH).
    ProgramMissing,
    /// Its program is a directory or has no execute permission.
    ProgramNotExecutable,
}

impl Unstartable {
    const ALL: [Unstartable; 5] = [
        Unstartable::WorkdirMissing,
        Unstartable::WorkdirNotDirectory,
        Unstartable::WorkdirDenied,
        Unstartable::ProgramMissing,
        Unstartable::ProgramNotExecutable,
    ];

    /// The word the in-sandbox checks print for it.
    pub(crate) fn word(self) -> &'static str {
        match self {
            Unstartable::WorkdirMissing => "workdir-missing",
            Unstartable::WorkdirNotDirectory => "workdir-not-directory",
            Unstartable::WorkdirDenied => "workdir-denied",
            Unstartable::ProgramMissing => "program-missing",
            Unstartable::ProgramNotExecutable => "program-not-executable",
        }
    }

    /// The reason a check printed.
    pub(crate) fn from_word(word: &str) -> Option<Unstartable> {
        Self::ALL.into_iter().find(|u| u.word() == word.trim())
    }

    /// The end of an exec that could not start: its code and what to do.
    pub(crate) fn exit(
        self,
        id: &SandboxId,
        workdir: &str,
        cmd: &[String],
        env: &[String],
    ) -> ExecOutput {
        let w = shown(workdir);
        let p = shown(cmd.first().map(String::as_str).unwrap_or_default());
        let (code, message) = match self {
            Unstartable::WorkdirMissing => (
                CANNOT_RUN_EXIT_CODE,
                format!("cannot start the command: its working directory {w} does not exist in sandbox {id}; create it first (cairn exec {id} mkdir -p {w}) or give another with --workdir"),
            ),
            Unstartable::WorkdirNotDirectory => (
                CANNOT_RUN_EXIT_CODE,
                format!("cannot start the command: its working directory {w} is not a directory in sandbox {id}; give a directory with --workdir"),
            ),
            Unstartable::WorkdirDenied => (
                CANNOT_RUN_EXIT_CODE,
                format!("cannot start the command: its working directory {w} cannot be entered in sandbox {id} (permission denied); give another with --workdir"),
            ),
            Unstartable::ProgramMissing => {
                let path = env
                    .iter()
                    .rev()
                    .find_map(|kv| kv.strip_prefix("PATH="))
                    .unwrap_or_default();
                let looked = if p.contains('/') {
                    String::new()
                } else {
                    format!(" (looked in PATH={})", shown(path))
                };
                (
                    NOT_FOUND_EXIT_CODE,
                    format!("cannot start {p}: sandbox {id} has no such program{looked}; install it in the sandbox or its image, or give its full path"),
                )
            }
            Unstartable::ProgramNotExecutable => (
                CANNOT_RUN_EXIT_CODE,
                format!("cannot start {p} in sandbox {id}: it is not an executable file (a directory, or no execute permission); make it executable (chmod +x) or run it through its interpreter"),
            ),
        };
        ExecOutput::Exit {
            code,
            message: Some(message),
        }
    }
}

/// The caller's own text in a message: quoted, control characters shown as `?`, at most
/// 200 characters.
fn shown(s: &str) -> String {
    let mut out: String = s
        .chars()
        .take(200)
        .map(|c| if c.is_control() { '?' } else { c })
        .collect();
    if s.chars().count() > 200 {
        out.push('…');
    }
    format!("'{out}'")
}

/// Whether the runtime wrote the exec's pid file: its process started.
pub(crate) fn started(pid_file: &Path) -> bool {
    std::fs::metadata(pid_file).is_ok_and(|m| m.len() > 0)
}

/// Where an exec's start stands, for its output.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Gate {
    /// Not known yet: output is held.
    Pending,
    /// It started: output flows.
    Open,
    /// It never started: what was held is the runtime's, and is dropped.
    Shut,
}

/// Opens the gate once `pid_file` appears (or [`START_WAIT`] has passed); ends when the gate
/// is decided either way.
pub(crate) async fn watch_start(pid_file: std::path::PathBuf, gate: &watch::Sender<Gate>) {
    let deadline = tokio::time::Instant::now() + START_WAIT;
    while *gate.borrow() == Gate::Pending {
        if started(&pid_file) || tokio::time::Instant::now() >= deadline {
            gate.send_if_modified(|g| open_if_pending(g, Gate::Open));
            return;
        }
        tokio::time::sleep(START_POLL).await;
    }
}

/// Moves a pending gate to `to`; says whether it moved.
pub(crate) fn open_if_pending(g: &mut Gate, to: Gate) -> bool {
    if *g == Gate::Pending {
        *g = to;
        true
    } else {
        false
    }
}

/// Output read before the gate decided: passed on once it opens, dropped if it shuts.
pub(crate) struct Held {
    chunks: Vec<ExecOutput>,
}

impl Held {
    /// Nothing held.
    pub(crate) fn new() -> Self {
        Held { chunks: Vec::new() }
    }

    /// Holds `ev`.
    pub(crate) fn push(&mut self, ev: ExecOutput) {
        self.chunks.push(ev);
    }

    /// Takes what is held, in order.
    pub(crate) fn take(&mut self) -> Vec<ExecOutput> {
        std::mem::take(&mut self.chunks)
    }
}

/// The probe [`diagnose`] runs: `$1` the working directory, `$2` the program.
const PROBE: &str = r#"if ! cd -- "$1" 2>/dev/null; then if [ ! -e "$1" ]; then echo workdir-missing; elif [ ! -d "$1" ]; then echo workdir-not-directory; else echo workdir-denied; fi; exit 0; fi
set -- "$2"
case $1 in */*) ;; *) set -- "$(command -v -- "$1")" ;; esac
case $1 in
'') echo program-missing ;;
*/*) if [ ! -e "$1" ]; then echo program-missing; elif [ -d "$1" ] || [ ! -x "$1" ]; then echo program-not-executable; fi ;;
esac
"#;

/// Why the process of `spec` could not start in sandbox `id`, asked of the sandbox itself
/// (with the exec's environment, so PATH is the one the runtime searched); `None` when the
/// probe finds nothing wrong or cannot run.
pub(crate) async fn diagnose(
    rt: &dyn Runtime,
    id: &SandboxId,
    scratch: &Path,
    spec: &ExecSpec,
) -> Option<Unstartable> {
    use tokio::io::AsyncReadExt;
    let probe = ExecSpec {
        args: vec![
            "/bin/sh".to_string(),
            "-c".to_string(),
            PROBE.to_string(),
            "cairn-probe".to_string(),
            spec.cwd.clone(),
            spec.args.first().cloned().unwrap_or_default(),
        ],
        env: spec.env.clone(),
        cwd: "/".to_string(),
    };
    let mut exec = rt
        .exec(id.as_str(), &probe, scratch, ExecIo::Pipes { stdin: false })
        .await
        .ok()?;
    let mut out = String::new();
    let read = async {
        if let Some(stdout) = exec.child.stdout.take() {
            let _ = stdout.take(4096).read_to_string(&mut out).await;
        }
        let _ = exec.child.wait().await;
    };
    let done = tokio::time::timeout(Duration::from_secs(10), read).await;
    if done.is_err() {
        let _ = rt.kill_exec(id.as_str(), &exec).await;
    }
    exec.remove_files();
    Unstartable::from_word(out.lines().next().unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id() -> SandboxId {
        "sbx-0000abcd".parse().unwrap()
    }

    #[test]
    fn reasons_read_back_from_their_words() {
        for u in Unstartable::ALL {
            assert_eq!(Unstartable::from_word(&format!("{}\n", u.word())), Some(u));
        }
        assert_eq!(Unstartable::from_word("ok"), None);
    }

    #[test]
    fn each_reason_ends_the_exec_like_a_shell_with_what_to_do() {
        let env = vec!["PATH=/usr/bin:/bin".to_string()];
        let cmd = vec!["nope".to_string(), "x".to_string()];
        let ExecOutput::Exit { code, message } =
            Unstartable::ProgramMissing.exit(&id(), "/", &cmd, &env)
        else {
            panic!()
        };
        assert_eq!(code, 127);
        let m = message.unwrap();
        assert!(
            m.contains("'nope'") && m.contains("PATH='/usr/bin:/bin'"),
            "{m}"
        );
        let ExecOutput::Exit { code, message } =
            Unstartable::WorkdirMissing.exit(&id(), "/missing\n", &cmd, &env)
        else {
            panic!()
        };
        assert_eq!(code, 126);
        let m = message.unwrap();
        assert!(
            m.contains("'/missing?' does not exist in sandbox sbx-0000abcd"),
            "{m}"
        );
    }

    #[test]
    fn a_gate_moves_once() {
        let mut g = Gate::Pending;
        assert!(open_if_pending(&mut g, Gate::Shut));
        assert!(!open_if_pending(&mut g, Gate::Open));
        assert_eq!(g, Gate::Shut);
    }
}
