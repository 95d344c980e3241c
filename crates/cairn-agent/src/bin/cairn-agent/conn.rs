//! The agent's one connection to cairnd: served until it ends or cairnd asks for a quiesce,
//! then dialed again (see [`crate::link`]), and what cairnd sends dispatched.

use std::sync::Arc;

use cairn_agent::proto::{self, Frame, Kind, Message};

use crate::files::Files;
use crate::link::{dial, socket_path, Link};
use crate::procs::Procs;

/// The agent proper: dials cairnd, serves the connection until it ends or cairnd asks for a
/// quiesce, and dials again; never returns.
pub fn serve() -> ! {
    let link = Arc::new(Link::new());
    let procs = Arc::new(Procs::new(Arc::clone(&link)));
    let files = Files::default();
    let path = socket_path();
    loop {
        let stream = dial(&path);
        let Ok(mut reader) = stream.try_clone() else {
            continue;
        };
        if link.connected(stream).is_err() {
            link.disconnected();
            continue;
        }
        // Closed, broken or hostile: the connection is dropped and dialed again.
        while let Ok(Some(frame)) = proto::read_frame(&mut reader) {
            if !dispatch(&link, &procs, &files, frame) {
                break;
            }
        }
        // Files half written go: a checkpoint may follow, and cairnd has given up on them.
        files.abandon();
        drop(reader);
        link.disconnected();
    }
}

/// Handles one frame from cairnd; false when the connection must close (a quiesce).
fn dispatch(link: &Arc<Link>, procs: &Arc<Procs>, files: &Files, f: Frame) -> bool {
    let channel = f.channel;
    match f.kind {
        Kind::Stdin => {
            if !files.data(link, channel, &f.payload) {
                procs.stdin(channel, f.payload);
            }
            return true;
        }
        Kind::Stdout | Kind::Stderr => return true,
        Kind::Control => {}
    }
    let msg = match f.message() {
        Ok(m) => m,
        Err(e) => {
            link.send(Frame::control(
                channel,
                &Message::Error {
                    reason: "error".into(),
                    message: e.to_string(),
                },
            ));
            return true;
        }
    };
    match msg {
        Message::Spawn {
            cmd,
            env,
            cwd,
            user,
            tty,
            stdin,
            detach,
            secret_env,
        } => procs.spawn(
            channel,
            crate::procs::Request {
                cmd,
                env,
                cwd,
                user,
                tty,
                stdin,
                detach,
                secret_env,
            },
        ),
        Message::CloseStdin => {
            if !files.close(link, channel) {
                procs.close_stdin(channel);
            }
        }
        msg @ (Message::Stat { .. }
        | Message::Mkdir { .. }
        | Message::Remove { .. }
        | Message::Rename { .. }
        | Message::Symlink { .. }
        | Message::HardLink { .. }
        | Message::PutFile { .. }) => files.handle(link, channel, msg),
        Message::Cancel => files.cancel(channel),
        Message::Resize { rows, cols } => procs.resize(channel, rows, cols),
        Message::Signal { signal } => procs.signal(channel, signal),
        Message::Ps => link.send(Frame::control(
            channel,
            &Message::PsReply {
                processes: crate::ps::list(),
            },
        )),
        Message::Kill { pid, signal } => link.send(Frame::control(
            channel,
            &match crate::ps::kill(pid, signal) {
                Ok(()) => Message::Done,
                Err((reason, message)) => Message::Error {
                    reason: reason.into(),
                    message,
                },
            },
        )),
        Message::Init {
            env,
            hostname,
            entropy,
            secrets,
            ..
        } => {
            procs.set_default_env(env);
            let mut failed: Vec<(&str, String)> = Vec::new();
            if let Err(e) = crate::identity::set_hostname(hostname.as_deref()) {
                failed.push(("hostname", e));
            }
            if let Err(e) = crate::identity::add_entropy(entropy.as_deref()) {
                failed.push(("entropy", e));
            }
            if let Err(e) = crate::secrets::apply(secrets) {
                failed.push(("secrets", e));
            }
            // The answer: `done`, or an `error` whose reason names what failed.
            let answer = if failed.is_empty() {
                Message::Done
            } else {
                Message::Error {
                    reason: failed.iter().map(|(r, _)| *r).collect::<Vec<_>>().join(","),
                    message: failed
                        .into_iter()
                        .map(|(_, m)| m)
                        .collect::<Vec<_>>()
                        .join("; "),
                }
            };
            link.send(Frame::control(channel, &answer));
        }
        Message::Ping => link.send(Frame::control(channel, &Message::Pong)),
        Message::Quiesce => {
            // Before the checkpoint that follows: no secret in its files or memory.
            crate::secrets::scrub();
            return false;
        }
        // Messages only the agent sends: ignored.
        Message::Hello { .. }
        | Message::Started { .. }
        | Message::Exit { .. }
        | Message::PsReply { .. }
        | Message::Done
        | Message::Pong
        | Message::Written { .. }
        | Message::Entry(_)
        | Message::FileError { .. }
        | Message::Error { .. } => {}
    }
    true
}
