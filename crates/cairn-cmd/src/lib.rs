//! The one way Cairn runs an external program (`runsc`, `runc`, `btrfs`,
//! `mount`, `ip`, …): it logs the argv, captures stderr, applies a timeout,
//! and turns failure into a typed error carrying the tail of stderr.
//!
//! Nothing else in Cairn calls `Command::new`.

use std::ffi::{OsStr, OsString};
use std::process::{ExitStatus, Stdio};
use std::time::{Duration, Instant};

use tokio::io::AsyncWriteExt;
use tokio::process::{Child, Command};

/// How long a command may run unless told otherwise.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);

/// Why a command did not succeed.
#[derive(Debug, thiserror::Error)]
pub enum CmdError {
    /// The program is not installed (not on `PATH`).
    #[error("'{program}' was not found: {hint}")]
    NotFound {
        /// The missing program.
        program: String,
        /// What to install.
        hint: String,
    },
    /// The program ran and exited non-zero.
    #[error("'{argv}' failed ({status}): {stderr}")]
    Failed {
        /// The whole command line, for logs and errors.
        argv: String,
        /// Exit status description.
        status: String,
        /// Exit code, when it exited normally.
        code: Option<i32>,
        /// The last lines of its stderr (or stdout when stderr was empty).
        stderr: String,
    },
    /// The program ran longer than its timeout and was killed.
    #[error("'{argv}' did not finish within {secs} s and was killed")]
    Timeout {
        /// The whole command line.
        argv: String,
        /// The timeout.
        secs: u64,
    },
    /// The program could not be started or talked to.
    #[error("could not run '{argv}': {source}")]
    Io {
        /// The whole command line.
        argv: String,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
}

impl CmdError {
    /// The tail of the command's stderr, when it failed by exiting non-zero.
    pub fn stderr(&self) -> Option<&str> {
        match self {
            CmdError::Failed { stderr, .. } => Some(stderr),
            _ => None,
        }
    }
}

/// What a successful command printed.
#[derive(Debug, Clone)]
pub struct Output {
    /// Everything it wrote to stdout.
    pub stdout: Vec<u8>,
    /// Everything it wrote to stderr.
    pub stderr: Vec<u8>,
}

impl Output {
    /// Stdout as (lossy) UTF-8, trimmed.
    pub fn stdout_str(&self) -> String {
        String::from_utf8_lossy(&self.stdout).trim().to_string()
    }
}

/// A command line to run.
#[derive(Debug, Clone)]
pub struct Cmd {
    program: OsString,
    args: Vec<OsString>,
    timeout: Duration,
    stdin: Option<Vec<u8>>,
    hint: String,
    output_file: Option<std::path::PathBuf>,
    /// Variables added to the inherited environment (kept out of `argv` and errors: they
    /// may carry credentials).
    env: Env,
}

/// A command's added environment; its `Debug` shows the names only.
#[derive(Clone, Default)]
struct Env(Vec<(OsString, OsString)>);

impl std::fmt::Debug for Env {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries(self.0.iter().map(|(k, _)| k))
            .finish()
    }
}

/// The last `max` bytes of `bytes` as text, on a line boundary when possible.
fn tail(bytes: &[u8], max: usize) -> String {
    let text = String::from_utf8_lossy(bytes);
    let text = text.trim();
    if text.len() <= max {
        return text.to_string();
    }
    let mut start = text.len() - max;
    while !text.is_char_boundary(start) {
        start += 1;
    }
    let cut = &text[start..];
    cut.find('\n').map_or(cut, |i| &cut[i + 1..]).to_string()
}

impl Cmd {
    /// A command running `program` with the default timeout.
    pub fn new(program: impl AsRef<OsStr>) -> Self {
        let program = program.as_ref().to_os_string();
        let hint = format!(
            "install it (e.g. 'apt-get install {}') or put it on PATH",
            program.to_string_lossy()
        );
        Cmd {
            program,
            args: Vec::new(),
            timeout: DEFAULT_TIMEOUT,
            stdin: None,
            hint,
            output_file: None,
            env: Env::default(),
        }
    }

    /// Adds one argument.
    pub fn arg(mut self, arg: impl AsRef<OsStr>) -> Self {
        self.args.push(arg.as_ref().to_os_string());
        self
    }

    /// Adds several arguments.
    pub fn args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        self.args
            .extend(args.into_iter().map(|a| a.as_ref().to_os_string()));
        self
    }

    /// Sets the timeout.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Feeds these bytes on stdin.
    pub fn stdin(mut self, data: Vec<u8>) -> Self {
        self.stdin = Some(data);
        self
    }

    /// Sends stdout and stderr to this file (truncated first) instead of
    /// pipes. Needed for programs that hand their stdio to a long-lived
    /// child (`runc create`), which would otherwise hold our pipes open.
    pub fn output_file(mut self, path: impl Into<std::path::PathBuf>) -> Self {
        self.output_file = Some(path.into());
        self
    }

    /// Sets an environment variable for the program (never shown in `argv` or errors).
    pub fn env(mut self, key: impl AsRef<OsStr>, value: impl AsRef<OsStr>) -> Self {
        self.env
            .0
            .push((key.as_ref().to_os_string(), value.as_ref().to_os_string()));
        self
    }

    /// Sets what the "not found" error tells the user to install.
    pub fn install_hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = hint.into();
        self
    }

    /// The whole command line as one string, for logs and errors.
    pub fn argv(&self) -> String {
        std::iter::once(&self.program)
            .chain(&self.args)
            .map(|a| a.to_string_lossy().into_owned())
            .collect::<Vec<_>>()
            .join(" ")
    }

    fn command(&self) -> Command {
        let mut c = Command::new(&self.program);
        c.args(&self.args).kill_on_drop(true);
        c.envs(self.env.0.iter().map(|(k, v)| (k, v)));
        c
    }

    fn spawn_error(&self, source: std::io::Error) -> CmdError {
        if source.kind() == std::io::ErrorKind::NotFound {
            CmdError::NotFound {
                program: self.program.to_string_lossy().into_owned(),
                hint: self.hint.clone(),
            }
        } else {
            CmdError::Io {
                argv: self.argv(),
                source,
            }
        }
    }

    /// Runs the command to the end; success means exit code 0.
    pub async fn run(&self) -> Result<Output, CmdError> {
        let argv = self.argv();
        let started = Instant::now();
        tracing::debug!(%argv, "running");
        let mut cmd = self.command();
        cmd.stdin(if self.stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        });
        match &self.output_file {
            Some(path) => {
                let io = |source| CmdError::Io {
                    argv: argv.clone(),
                    source,
                };
                let file = std::fs::File::create(path).map_err(io)?;
                cmd.stdout(file.try_clone().map_err(io)?).stderr(file);
            }
            None => {
                cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
            }
        }
        let mut child = cmd.spawn().map_err(|e| self.spawn_error(e))?;
        if let (Some(data), Some(mut pipe)) = (self.stdin.clone(), child.stdin.take()) {
            let _ = pipe.write_all(&data).await;
        }
        let out = match tokio::time::timeout(self.timeout, child.wait_with_output()).await {
            Ok(r) => r.map_err(|source| CmdError::Io {
                argv: argv.clone(),
                source,
            })?,
            Err(_) => {
                tracing::warn!(%argv, "timed out");
                return Err(CmdError::Timeout {
                    argv,
                    secs: self.timeout.as_secs(),
                });
            }
        };
        tracing::debug!(%argv, ms = started.elapsed().as_millis(), status = %out.status, "finished");
        let mut out = out;
        if let Some(path) = &self.output_file {
            out.stderr = std::fs::read(path).unwrap_or_default();
        }
        if out.status.success() {
            Ok(Output {
                stdout: out.stdout,
                stderr: out.stderr,
            })
        } else {
            let text = if out.stderr.iter().any(|b| !b.is_ascii_whitespace()) {
                &out.stderr
            } else {
                &out.stdout
            };
            Err(CmdError::Failed {
                argv,
                status: describe(out.status),
                code: out.status.code(),
                stderr: tail(text, 2000),
            })
        }
    }

    /// Starts the command with the given stdio and returns the child, for
    /// callers that stream its output (e.g. `exec`). The timeout does not
    /// apply; the caller owns the child and kills it on drop.
    pub fn spawn(&self, stdin: Stdio, stdout: Stdio, stderr: Stdio) -> Result<Child, CmdError> {
        tracing::debug!(argv = %self.argv(), "spawning");
        let mut cmd = self.command();
        cmd.stdin(stdin).stdout(stdout).stderr(stderr);
        cmd.spawn().map_err(|e| self.spawn_error(e))
    }
}

/// `exit code 3`, `killed by signal 9`.
pub fn describe(status: ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(c), _) => format!("exit code {c}"),
        (None, Some(s)) => format!("killed by signal {s}"),
        _ => status.to_string(),
    }
}

/// The shell-style exit code of a status: the code, or 128 + signal.
pub fn exit_code(status: ExitStatus) -> i32 {
    use std::os::unix::process::ExitStatusExt;
    status
        .code()
        .unwrap_or_else(|| 128 + status.signal().unwrap_or(0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn success_returns_stdout() {
        let out = Cmd::new("sh")
            .args(["-c", "echo hello"])
            .run()
            .await
            .unwrap();
        assert_eq!(out.stdout_str(), "hello");
    }

    #[tokio::test]
    async fn failure_carries_code_and_stderr_tail() {
        let err = Cmd::new("sh")
            .args(["-c", "echo doom >&2; exit 7"])
            .run()
            .await
            .unwrap_err();
        match &err {
            CmdError::Failed { code, stderr, .. } => {
                assert_eq!(*code, Some(7));
                assert_eq!(stderr, "doom");
            }
            other => panic!("unexpected {other:?}"),
        }
        assert!(err.to_string().contains("exit code 7"));
    }

    #[tokio::test]
    async fn missing_program_says_what_to_install() {
        let err = Cmd::new("cairn-no-such-tool")
            .install_hint("apt-get install frob")
            .run()
            .await
            .unwrap_err();
        assert!(matches!(err, CmdError::NotFound { .. }));
        assert!(err.to_string().contains("apt-get install frob"));
    }

    #[tokio::test]
    async fn slow_commands_are_killed_at_the_timeout() {
        let err = Cmd::new("sleep")
            .arg("5")
            .timeout(Duration::from_millis(100))
            .run()
            .await
            .unwrap_err();
        assert!(matches!(err, CmdError::Timeout { .. }));
    }

    #[tokio::test]
    async fn output_file_receives_output_and_errors_read_it() {
        let dir = std::env::temp_dir().join(format!("cairn-cmd-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let log = dir.join("log");
        let err = Cmd::new("sh")
            .args(["-c", "echo oops; exit 2"])
            .output_file(&log)
            .run()
            .await
            .unwrap_err();
        assert_eq!(err.stderr(), Some("oops"));
        assert_eq!(std::fs::read_to_string(&log).unwrap(), "oops\n");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn tail_keeps_the_end_on_a_line_boundary() {
        let text = "first line\nsecond line\nthird";
        assert_eq!(tail(text.as_bytes(), 15), "third");
        assert_eq!(tail(b"short", 100), "short");
    }
}
