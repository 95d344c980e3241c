//! The processes the agent runs for cairnd: started with pipes or a terminal, their output
//! streamed as data frames on their channel, their stdin fed, signals and resizes passed on,
//! and their end reported (`exit`) after the output they wrote before it.

use std::collections::HashMap;
use std::ffi::CString;
use std::io::{Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use cairn_agent::proto::{unstartable, Frame, Kind, Message, TtySize, CHUNK};

use crate::link::Link;

/// After a process ends, how long its output may keep coming before `exit` is sent anyway
/// (a background process may hold its pipes open forever).
const DRAIN_MAX: Duration = Duration::from_secs(2);
/// After a process ends, how long its pipes may stay quiet before `exit` is sent.
const DRAIN_QUIET: Duration = Duration::from_millis(100);

/// The PATH searched when a spawn's environment has none.
const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// What cairnd asked to run.
pub struct Request {
    pub cmd: Vec<String>,
    pub env: Vec<String>,
    pub cwd: String,
    pub user: Option<String>,
    pub tty: Option<TtySize>,
    pub stdin: bool,
    pub detach: bool,
    /// Secrets (by name) added to its environment.
    pub secret_env: Vec<String>,
}

/// One running process.
struct Proc {
    pid: i32,
    /// Where its input goes (`None`: close it).
    input: Option<mpsc::Sender<Option<Vec<u8>>>>,
    /// Its terminal's master end.
    master: Option<Arc<OwnedFd>>,
}

/// The processes, by channel.
pub struct Procs {
    link: Arc<Link>,
    table: Mutex<HashMap<u32, Proc>>,
    default_env: Mutex<Vec<String>>,
}

/// The agent's ends of a process's standard streams.
enum Ours {
    /// Detached: the process has /dev/null, the agent nothing.
    Detached,
    /// A terminal: its master, which reads the output and takes the input.
    Terminal(OwnedFd),
    /// Pipes: the writing end of its input (when it takes input), the reading ends of its
    /// output and errors.
    Pipes {
        stdin: Option<OwnedFd>,
        stdout: OwnedFd,
        stderr: OwnedFd,
    },
}

impl Procs {
    /// None yet.
    pub fn new(link: Arc<Link>) -> Procs {
        Procs {
            link,
            table: Mutex::new(HashMap::new()),
            default_env: Mutex::new(Vec::new()),
        }
    }

    fn table(&self) -> std::sync::MutexGuard<'_, HashMap<u32, Proc>> {
        self.table.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The environment of spawns that give none (from `init`).
    pub fn set_default_env(&self, env: Vec<String>) {
        *self.default_env.lock().unwrap_or_else(|p| p.into_inner()) = env;
    }

    fn refuse(&self, channel: u32, reason: &str, message: String) {
        self.link.send(Frame::control(
            channel,
            &Message::Error {
                reason: reason.to_string(),
                message,
            },
        ));
    }

    /// Starts `req` on `channel`: `started` then output then `exit`, or `error` when it
    /// cannot start.
    pub fn spawn(self: &Arc<Self>, channel: u32, mut req: Request) {
        if self.table().contains_key(&channel) {
            return self.refuse(channel, "error", format!("channel {channel} is in use"));
        }
        if req.env.is_empty() {
            req.env = self
                .default_env
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .clone();
        }
        let secret_env = match crate::secrets::env(&req.secret_env) {
            Ok(e) => e,
            Err(message) => return self.refuse(channel, "secret-missing", message),
        };
        let program = match check(&req) {
            Ok(p) => p,
            Err((reason, message)) => return self.refuse(channel, reason, message),
        };
        match self.start(channel, &req, &program, &secret_env) {
            Ok(()) => {}
            Err(e) => {
                let reason = match e.raw_os_error() {
                    Some(libc::ENOENT) => unstartable::PROGRAM_MISSING,
                    Some(libc::EACCES) | Some(libc::ENOEXEC) => unstartable::PROGRAM_NOT_EXECUTABLE,
                    _ => "error",
                };
                self.refuse(channel, reason, format!("cannot start the command: {e}"));
            }
        }
    }

    fn start(
        self: &Arc<Self>,
        channel: u32,
        req: &Request,
        program: &Path,
        secret_env: &[(String, Vec<u8>)],
    ) -> std::io::Result<()> {
        use std::os::unix::ffi::OsStrExt;
        let c = |b: &[u8]| {
            CString::new(b).map_err(|_| {
                std::io::Error::new(
                    std::io::ErrorKind::InvalidInput,
                    "a NUL byte in the command, its directory or its environment",
                )
            })
        };
        let program_c = c(program.as_os_str().as_bytes())?;
        let argv = req
            .cmd
            .iter()
            .map(|a| c(a.as_bytes()))
            .collect::<std::io::Result<Vec<_>>>()?;
        let envp = environment(&req.env, secret_env)
            .iter()
            .map(|kv| c(kv))
            .collect::<std::io::Result<Vec<_>>>()?;
        let cwd = c(req.cwd.as_bytes())?;
        let user = req.user.as_deref().map(parse_user).transpose()?;
        // The ends the process gets (closed here once it runs), and the agent's.
        let (stdio, ours): ([OwnedFd; 3], Ours) = if req.detach {
            let null = std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .open("/dev/null")?;
            let null = OwnedFd::from(null);
            ([null.try_clone()?, null.try_clone()?, null], Ours::Detached)
        } else if let Some(size) = req.tty {
            let (m, slave) = open_pty(size)?;
            (
                [slave.try_clone()?, slave.try_clone()?, slave],
                Ours::Terminal(m),
            )
        } else {
            let (in_theirs, in_ours) = if req.stdin {
                let (r, w) = crate::sys::pipe()?;
                (r, Some(w))
            } else {
                let null = std::fs::File::open("/dev/null")?;
                (OwnedFd::from(null), None)
            };
            let (out_ours, out_theirs) = crate::sys::pipe()?;
            let (err_ours, err_theirs) = crate::sys::pipe()?;
            (
                [in_theirs, out_theirs, err_theirs],
                Ours::Pipes {
                    stdin: in_ours,
                    stdout: out_ours,
                    stderr: err_ours,
                },
            )
        };
        let [fd0, fd1, fd2] = &stdio;
        let spawn = crate::sys::Spawn {
            program: &program_c,
            argv: &argv,
            envp: &envp,
            cwd: &cwd,
            stdio: [fd0.as_fd(), fd1.as_fd(), fd2.as_fd()],
            user,
            terminal: req.tty.is_some(),
            // The agent may hold CAP_SYS_ADMIN (for the hostname); its processes never do.
            before_exec: crate::identity::drop_admin,
        };
        // Its threads are made before it is: a process that exhausts the sandbox's process
        // limit at once (a fork bomb) must not leave the agent without them.
        let mut workers = (0..4)
            .map(|_| Worker::new())
            .collect::<std::io::Result<Vec<_>>>()?;
        // Registered under the table's lock, so that input that follows the spawn finds it.
        let mut table = self.table();
        let pid = crate::sys::spawn(&spawn)?;
        // The process's ends are its own now: the master sees the end of the terminal, and
        // the readers the end of the pipes, when it and its children close theirs.
        drop(stdio);
        let pid_u32 = u32::try_from(pid).unwrap_or(0);
        // Before any output (its readers start below).
        self.link
            .send(Frame::control(channel, &Message::Started { pid: pid_u32 }));
        let (in_tx, in_rx) = mpsc::channel::<Option<Vec<u8>>>();
        let mut readers = Vec::new();
        let out = Arc::new(Output::new(Arc::clone(&self.link), channel));
        let mut master = None;
        match ours {
            Ours::Detached => {}
            Ours::Terminal(m) => {
                let reader = std::fs::File::from(m.try_clone()?);
                readers.push(out.pump(next(&mut workers), reader, Kind::Stdout));
                let writer = std::fs::File::from(m.try_clone()?);
                next(&mut workers).run(move || feed(writer, in_rx));
                master = Some(Arc::new(m));
            }
            Ours::Pipes {
                stdin,
                stdout,
                stderr,
            } => {
                let (o, e) = (std::fs::File::from(stdout), std::fs::File::from(stderr));
                readers.push(out.pump(next(&mut workers), o, Kind::Stdout));
                readers.push(out.pump(next(&mut workers), e, Kind::Stderr));
                if let Some(i) = stdin {
                    let i = std::fs::File::from(i);
                    next(&mut workers).run(move || feed(i, in_rx));
                }
            }
        }
        table.insert(
            channel,
            Proc {
                pid,
                input: Some(in_tx),
                master: master.clone(),
            },
        );
        drop(table);
        let procs = Arc::clone(self);
        next(&mut workers).run(move || procs.wait(channel, pid, out, readers, master));
        Ok(())
    }

    /// Waits for the process on `channel`, lets its output drain, then reports its end.
    fn wait(
        &self,
        channel: u32,
        pid: i32,
        out: Arc<Output>,
        readers: Vec<mpsc::Receiver<()>>,
        master: Option<Arc<OwnedFd>>,
    ) {
        let status = crate::sys::wait_pid(pid);
        let ended = Instant::now();
        // Quiet is counted from the end: what it wrote just before is in the pipes already.
        out.heard();
        let mut open: Vec<_> = readers;
        while !open.is_empty() && ended.elapsed() < DRAIN_MAX {
            open.retain(|r| matches!(r.try_recv(), Err(mpsc::TryRecvError::Empty)));
            if open.is_empty() || out.quiet_for() >= DRAIN_QUIET {
                break;
            }
            // Woken as soon as a reader reaches the end of its pipe (the usual case: at once),
            // else after a little while to look at the quiet again.
            let _ = open[0].recv_timeout(Duration::from_millis(5));
        }
        let (code, signal) = status.unwrap_or((None, None));
        self.table().remove(&channel);
        out.finish(Message::Exit { code, signal });
        drop(master);
    }

    /// Bytes for the stdin of the process on `channel`.
    pub fn stdin(&self, channel: u32, data: Vec<u8>) {
        if let Some(tx) = self.table().get(&channel).and_then(|p| p.input.as_ref()) {
            let _ = tx.send(Some(data));
        }
    }

    /// No more stdin for the process on `channel`.
    pub fn close_stdin(&self, channel: u32) {
        if let Some(p) = self.table().get_mut(&channel) {
            if let Some(tx) = p.input.take() {
                let _ = tx.send(None);
            }
        }
    }

    /// A new terminal size for the process on `channel`.
    pub fn resize(&self, channel: u32, rows: u16, cols: u16) {
        if let Some(m) = self.table().get(&channel).and_then(|p| p.master.clone()) {
            let _ = rustix::termios::tcsetwinsize(m.as_fd(), winsize(TtySize { rows, cols }));
        }
    }

    /// A signal for the process on `channel`.
    pub fn signal(&self, channel: u32, signal: i32) {
        if let Some(pid) = self.table().get(&channel).map(|p| p.pid) {
            let _ = crate::sys::kill(pid, signal);
        }
    }
}

/// A process's output: forwarded on its channel until its `exit` is sent.
struct Output {
    link: Arc<Link>,
    channel: u32,
    /// Whether output still goes out (false once the exit was sent), and when it last came.
    state: Mutex<(bool, Instant)>,
}

impl Output {
    fn new(link: Arc<Link>, channel: u32) -> Output {
        Output {
            link,
            channel,
            state: Mutex::new((true, Instant::now())),
        }
    }

    /// Counts quiet from now.
    fn heard(&self) {
        if let Ok(mut s) = self.state.lock() {
            s.1 = Instant::now();
        }
    }

    fn quiet_for(&self) -> Duration {
        self.state.lock().map(|s| s.1.elapsed()).unwrap_or_default()
    }

    /// Reads `r` to its end in a thread, forwarding what it reads; the receiver hears (is
    /// dropped) when it ends.
    fn pump<R: Read + Send + 'static>(
        self: &Arc<Self>,
        worker: Worker,
        mut r: R,
        kind: Kind,
    ) -> mpsc::Receiver<()> {
        let (done_tx, done_rx) = mpsc::channel::<()>();
        let me = Arc::clone(self);
        worker.run(move || {
            let _done = done_tx;
            let mut buf = vec![0u8; CHUNK];
            loop {
                let n = match r.read(&mut buf) {
                    Ok(0) | Err(_) => return,
                    Ok(n) => n,
                };
                let mut state = me.state.lock().unwrap_or_else(|p| p.into_inner());
                state.1 = Instant::now();
                if state.0 {
                    // Sent under the lock: nothing goes out after the exit.
                    me.link
                        .send(Frame::data(kind, me.channel, buf[..n].to_vec()));
                }
            }
        });
        done_rx
    }

    /// Sends `exit`; output read from now on is dropped (but still read).
    fn finish(&self, exit: Message) {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        state.0 = false;
        self.link.send(Frame::control(self.channel, &exit));
    }
}

/// A thread made ahead of the work it will do (see [`Procs::spawn`]); one that is given
/// none ends.
struct Worker(mpsc::Sender<Box<dyn FnOnce() + Send>>);

impl Worker {
    fn new() -> std::io::Result<Worker> {
        let (tx, rx) = mpsc::channel::<Box<dyn FnOnce() + Send>>();
        std::thread::Builder::new().spawn(move || {
            if let Ok(job) = rx.recv() {
                job();
            }
        })?;
        Ok(Worker(tx))
    }

    /// Runs `job` on the thread.
    fn run(self, job: impl FnOnce() + Send + 'static) {
        let _ = self.0.send(Box::new(job));
    }
}

/// The next of the workers made for a process (four are made, at most four taken).
fn next(workers: &mut Vec<Worker>) -> Worker {
    match workers.pop() {
        Some(w) => w,
        // Not reached; should it be, a thread made now does as well (or the job is dropped).
        None => Worker::new().unwrap_or_else(|_| Worker(mpsc::channel().0)),
    }
}

/// Writes what arrives to `w` until told to close.
fn feed(mut w: impl Write, rx: mpsc::Receiver<Option<Vec<u8>>>) {
    while let Ok(Some(data)) = rx.recv() {
        if w.write_all(&data).and_then(|()| w.flush()).is_err() {
            return;
        }
    }
}

fn winsize(s: TtySize) -> rustix::termios::Winsize {
    rustix::termios::Winsize {
        ws_row: s.rows,
        ws_col: s.cols,
        ws_xpixel: 0,
        ws_ypixel: 0,
    }
}

/// A new terminal of `size`: its master and slave ends.
fn open_pty(size: TtySize) -> std::io::Result<(OwnedFd, OwnedFd)> {
    use rustix::pty::OpenptFlags;
    let master =
        rustix::pty::openpt(OpenptFlags::RDWR | OpenptFlags::NOCTTY | OpenptFlags::CLOEXEC)?;
    rustix::pty::grantpt(&master)?;
    rustix::pty::unlockpt(&master)?;
    let name = rustix::pty::ptsname(&master, Vec::new())?;
    let slave = rustix::fs::open(
        name.as_c_str(),
        rustix::fs::OFlags::RDWR | rustix::fs::OFlags::NOCTTY | rustix::fs::OFlags::CLOEXEC,
        rustix::fs::Mode::empty(),
    )?;
    rustix::termios::tcsetwinsize(&master, winsize(size))?;
    Ok((master, slave))
}

/// A process's `NAME=value` strings: `env`'s (entries without `=` dropped), then the secrets;
/// a name given twice keeps its last value.
fn environment(env: &[String], secret_env: &[(String, Vec<u8>)]) -> Vec<Vec<u8>> {
    let mut out: Vec<Vec<u8>> = Vec::new();
    let mut at: HashMap<Vec<u8>, usize> = HashMap::new();
    let pairs = env
        .iter()
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.as_bytes(), v.as_bytes()))
        .chain(secret_env.iter().map(|(k, v)| (k.as_bytes(), v.as_slice())));
    for (k, v) in pairs {
        let mut kv = Vec::with_capacity(k.len() + 1 + v.len());
        kv.extend_from_slice(k);
        kv.push(b'=');
        kv.extend_from_slice(v);
        match at.get(k) {
            Some(&i) => out[i] = kv,
            None => {
                at.insert(k.to_vec(), out.len());
                out.push(kv);
            }
        }
    }
    out
}

/// `uid` or `uid:gid`.
fn parse_user(user: &str) -> std::io::Result<(u32, Option<u32>)> {
    let bad = || std::io::Error::new(std::io::ErrorKind::InvalidInput, "user must be uid[:gid]");
    let (u, g) = match user.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (user, None),
    };
    let uid = u.parse().map_err(|_| bad())?;
    let gid = g.map(|g| g.parse().map_err(|_| bad())).transpose()?;
    Ok((uid, gid))
}

/// Whether `req` can start: its program's path, or why not (a reason word and a message).
fn check(req: &Request) -> Result<PathBuf, (&'static str, String)> {
    let cwd = Path::new(&req.cwd);
    match std::fs::metadata(cwd) {
        Err(_) => {
            return Err((
                unstartable::WORKDIR_MISSING,
                format!("no directory {}", req.cwd),
            ))
        }
        Ok(m) if !m.is_dir() => {
            return Err((
                unstartable::WORKDIR_NOT_DIRECTORY,
                format!("{} is not a directory", req.cwd),
            ))
        }
        Ok(_) => {}
    }
    if rustix::fs::access(cwd, rustix::fs::Access::EXEC_OK).is_err() {
        return Err((
            unstartable::WORKDIR_DENIED,
            format!("cannot enter {}", req.cwd),
        ));
    }
    let Some(program) = req.cmd.first().filter(|p| !p.is_empty()) else {
        return Err((unstartable::PROGRAM_MISSING, "no command".into()));
    };
    let executable =
        |p: &Path| std::fs::metadata(p).map(|m| !m.is_dir() && m.permissions().mode() & 0o111 != 0);
    if program.contains('/') {
        let p = cwd.join(program);
        return match executable(&p) {
            Ok(true) => Ok(p),
            Ok(false) => Err((
                unstartable::PROGRAM_NOT_EXECUTABLE,
                format!("{program} is not executable"),
            )),
            Err(_) => Err((
                unstartable::PROGRAM_MISSING,
                format!("no program {program}"),
            )),
        };
    }
    let path = req
        .env
        .iter()
        .rev()
        .find_map(|kv| kv.strip_prefix("PATH="))
        .unwrap_or(DEFAULT_PATH);
    let mut found_unrunnable = false;
    for dir in path.split(':').filter(|d| !d.is_empty()) {
        let p = cwd.join(dir).join(program);
        match executable(&p) {
            Ok(true) => return Ok(p),
            Ok(false) => found_unrunnable = true,
            Err(_) => {}
        }
    }
    if found_unrunnable {
        Err((
            unstartable::PROGRAM_NOT_EXECUTABLE,
            format!("{program} is not executable"),
        ))
    } else {
        Err((
            unstartable::PROGRAM_MISSING,
            format!("no program {program} in PATH"),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_environment_keeps_the_last_value_of_a_name_and_drops_entries_without_one() {
        let env = ["A=1", "B=2", "NOVALUE", "A=3", "C=x=y"].map(String::from);
        let secrets = [("B".to_string(), b"s\xffcret".to_vec())];
        let got = environment(&env, &secrets);
        let want: Vec<Vec<u8>> = vec![b"A=3".to_vec(), b"B=s\xffcret".to_vec(), b"C=x=y".to_vec()];
        assert_eq!(got, want);
    }
}
