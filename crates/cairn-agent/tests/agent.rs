//! The real agent binary, run as a child (not pid 1) against a listener in the test: what
#![allow(clippy::unwrap_used)]
//! cairnd sees of spawning, output, stdin, signals, terminals, ps, kill and quiesce.

use std::os::unix::net::{UnixListener, UnixStream};
use std::process::{Child, Command};
use std::time::Duration;

use cairn_agent::proto::{self, Frame, Kind, Message, TtySize};

struct Agent {
    child: Child,
    listener: UnixListener,
    conn: UnixStream,
    _dir: tempfile::TempDir,
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start() -> Agent {
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("agent.sock");
    let listener = UnixListener::bind(&sock).unwrap();
    let child = Command::new(env!("CARGO_BIN_EXE_cairn-agent"))
        .arg("serve")
        .env("CAIRN_AGENT_SOCKET", &sock)
        .spawn()
        .unwrap();
    let conn = accept(&listener);
    Agent {
        child,
        listener,
        conn,
        _dir: dir,
    }
}

/// Accepts the agent and checks its hello.
fn accept(listener: &UnixListener) -> UnixStream {
    let (mut conn, _) = listener.accept().unwrap();
    conn.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let hello = proto::read_frame(&mut conn).unwrap().unwrap();
    match hello.message().unwrap() {
        Message::Hello {
            version, protocol, ..
        } => {
            assert_eq!(version, proto::VERSION);
            assert_eq!(protocol, proto::PROTOCOL);
        }
        other => panic!("{other:?}"),
    }
    conn
}

impl Agent {
    fn send(&mut self, f: Frame) {
        proto::write_frame(&mut self.conn, &f).unwrap();
    }

    fn spawn(&mut self, channel: u32, cmd: &[&str], tty: Option<TtySize>, stdin: bool) {
        self.send(Frame::control(
            channel,
            &Message::Spawn {
                cmd: cmd.iter().map(|s| s.to_string()).collect(),
                env: vec!["PATH=/usr/local/bin:/usr/bin:/bin".into()],
                cwd: "/".into(),
                user: None,
                tty,
                stdin,
                detach: false,
                secret_env: vec![],
            },
        ));
    }

    fn next(&mut self) -> Frame {
        proto::read_frame(&mut self.conn).unwrap().unwrap()
    }

    /// Output and exit of `channel`: (stdout, stderr, exit message); the pid of `started`.
    fn run_out(&mut self, channel: u32) -> (String, String, Message, Option<u32>) {
        let (mut out, mut err, mut pid) = (Vec::new(), Vec::new(), None);
        loop {
            let f = self.next();
            assert_eq!(f.channel, channel);
            match f.kind {
                Kind::Stdout => out.extend(f.payload),
                Kind::Stderr => err.extend(f.payload),
                Kind::Control => match f.message().unwrap() {
                    Message::Started { pid: p } => pid = Some(p),
                    m @ (Message::Exit { .. } | Message::Error { .. }) => {
                        return (
                            String::from_utf8_lossy(&out).into_owned(),
                            String::from_utf8_lossy(&err).into_owned(),
                            m,
                            pid,
                        )
                    }
                    m => panic!("{m:?}"),
                },
                Kind::Stdin => panic!("stdin from the agent"),
            }
        }
    }
}

fn exit(code: i32) -> Message {
    Message::Exit {
        code: Some(code),
        signal: None,
    }
}

#[test]
fn spawned_commands_stream_output_and_exit_codes() {
    let mut a = start();
    a.spawn(
        1,
        &["sh", "-c", "echo out; echo err >&2; exit 3"],
        None,
        false,
    );
    let (out, err, end, pid) = a.run_out(1);
    assert_eq!((out.as_str(), err.as_str()), ("out\n", "err\n"));
    assert_eq!(end, exit(3));
    assert!(pid.is_some());
}

#[test]
fn commands_that_cannot_start_say_why() {
    let mut a = start();
    a.spawn(1, &["no-such-program"], None, false);
    let (_, _, end, _) = a.run_out(1);
    assert!(
        matches!(&end, Message::Error { reason, .. } if reason == proto::unstartable::PROGRAM_MISSING),
        "{end:?}"
    );
    a.send(Frame::control(
        2,
        &Message::Spawn {
            cmd: vec!["true".into()],
            env: vec![],
            cwd: "/no/such/dir".into(),
            user: None,
            tty: None,
            stdin: false,
            detach: false,
            secret_env: vec![],
        },
    ));
    let (_, _, end, _) = a.run_out(2);
    assert!(
        matches!(&end, Message::Error { reason, .. } if reason == proto::unstartable::WORKDIR_MISSING),
        "{end:?}"
    );
}

#[test]
fn stdin_reaches_the_command_and_closes() {
    let mut a = start();
    a.spawn(5, &["sh", "-c", "tr a-z A-Z; echo done"], None, true);
    a.send(Frame::data(Kind::Stdin, 5, b"hello ".to_vec()));
    a.send(Frame::data(Kind::Stdin, 5, b"agent\n".to_vec()));
    a.send(Frame::control(5, &Message::CloseStdin));
    let (out, _, end, _) = a.run_out(5);
    assert_eq!(out, "HELLO AGENT\ndone\n");
    assert_eq!(end, exit(0));
}

#[test]
fn signals_reach_the_command() {
    let mut a = start();
    a.spawn(2, &["sleep", "30"], None, false);
    let f = a.next();
    assert!(matches!(f.message().unwrap(), Message::Started { .. }));
    a.send(Frame::control(2, &Message::Signal { signal: 15 }));
    let (_, _, end, _) = a.run_out(2);
    assert_eq!(
        end,
        Message::Exit {
            code: None,
            signal: Some(15)
        }
    );
}

#[test]
fn a_terminal_has_its_size_and_follows_resizes() {
    let mut a = start();
    a.spawn(
        3,
        &[
            "sh",
            "-c",
            "stty size; read x; stty size; test -t 0 && echo tty",
        ],
        Some(TtySize { rows: 24, cols: 80 }),
        true,
    );
    // The first size is printed before the resize is sent.
    let mut out = Vec::new();
    while !String::from_utf8_lossy(&out).contains("24 80") {
        let f = a.next();
        if f.kind == Kind::Stdout {
            out.extend(f.payload);
        }
    }
    a.send(Frame::control(
        3,
        &Message::Resize {
            rows: 50,
            cols: 132,
        },
    ));
    a.send(Frame::data(Kind::Stdin, 3, b"go\n".to_vec()));
    let (rest, _, end, _) = a.run_out(3);
    assert!(rest.contains("50 132"), "{rest}");
    assert!(rest.contains("tty"), "{rest}");
    assert_eq!(end, exit(0));
}

#[test]
fn ps_lists_and_kill_signals_processes() {
    let mut a = start();
    a.spawn(1, &["sleep", "31"], None, false);
    let Message::Started { pid } = a.next().message().unwrap() else {
        panic!()
    };
    a.send(Frame::control(2, &Message::Ps));
    let reply = a.next();
    assert_eq!(reply.channel, 2);
    let Message::PsReply { processes } = reply.message().unwrap() else {
        panic!()
    };
    assert!(
        processes
            .iter()
            .any(|p| p.pid == pid && p.cmd == "sleep 31"),
        "{processes:?}"
    );
    a.send(Frame::control(3, &Message::Kill { pid, signal: 9 }));
    let mut done = false;
    let mut killed = false;
    while !(done && killed) {
        let f = a.next();
        match (f.channel, f.message().unwrap()) {
            (3, Message::Done) => done = true,
            (
                1,
                Message::Exit {
                    signal: Some(9), ..
                },
            ) => killed = true,
            (c, m) => panic!("{c} {m:?}"),
        }
    }
    a.send(Frame::control(4, &Message::Kill { pid: 1, signal: 9 }));
    assert!(matches!(a.next().message().unwrap(), Message::Error { .. }));
}

#[test]
fn output_is_held_over_a_quiesce_and_sent_after_the_agent_dials_again() {
    let mut a = start();
    a.spawn(
        9,
        &[
            "sh",
            "-c",
            "echo before; sleep 0.5; echo during; sleep 0.5; echo after",
        ],
        None,
        false,
    );
    let mut out = Vec::new();
    while !String::from_utf8_lossy(&out).contains("before") {
        let f = a.next();
        if f.kind == Kind::Stdout {
            out.extend(f.payload);
        }
    }
    a.send(Frame::control(0, &Message::Quiesce));
    // The agent closes its side (what it sent before it saw the quiesce still arrives).
    while let Some(f) = proto::read_frame(&mut a.conn).unwrap() {
        assert_eq!(f.kind, Kind::Stdout, "{f:?}");
        out.extend(f.payload);
    }
    // No listener for a while (as during a checkpoint): the agent keeps dialing.
    let path = a.listener.local_addr().unwrap();
    let path = path.as_pathname().unwrap().to_path_buf();
    drop(std::mem::replace(
        &mut a.listener,
        UnixListener::bind(a._dir.path().join("other.sock")).unwrap(),
    ));
    std::fs::remove_file(&path).unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    a.listener = UnixListener::bind(&path).unwrap();
    a.conn = accept(&a.listener);
    let (rest, _, end, _) = a.run_out(9);
    assert_eq!(
        format!("{}{rest}", String::from_utf8_lossy(&out)),
        "before\nduring\nafter\n"
    );
    assert_eq!(end, exit(0));
}

#[test]
fn hostile_frames_end_the_connection_not_the_agent() {
    let mut a = start();
    use std::io::Write;
    a.conn
        .write_all(&[0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0, 0])
        .unwrap();
    assert!(proto::read_frame(&mut a.conn)
        .map(|f| f.is_none())
        .unwrap_or(true));
    // It dials again and works.
    a.conn = accept(&a.listener);
    a.send(Frame::control(1, &Message::Ping));
    assert_eq!(a.next().message().unwrap(), Message::Pong);
}
