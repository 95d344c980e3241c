//! The agent as a sandbox's init (pid 1): it starts the agent proper (`cairn-agent serve`) as
//! its child and starts it again should it end, reaps every orphan, and on SIGTERM or SIGINT
//! passes the signal on to every process and exits 0, which ends the sandbox.
//!
//! The split keeps pid 1 simple: the agent proper waits for its own processes through their
//! handles, and only orphans (whose parents ended) come to pid 1.

use std::process::{Command, Stdio};
use std::time::Duration;

use crate::sys;

const SIGNALS: [i32; 4] = [libc::SIGCHLD, libc::SIGTERM, libc::SIGINT, libc::SIGHUP];

/// Runs as init; never returns.
pub fn run() -> ! {
    quiet_stdio();
    if let Err(e) = sys::block_signals(&SIGNALS) {
        eprintln!("cairn-agent: cannot block signals: {e}");
    }
    let mut server = start_server();
    loop {
        if server.is_none() {
            // It could not be started (the sandbox's process limit, say): again shortly,
            // reaping meanwhile.
            std::thread::sleep(Duration::from_millis(100));
            while sys::reap_any().is_some() {}
            server = start_server();
            continue;
        }
        let sig = match sys::wait_signal(&SIGNALS) {
            Ok(sig) => sig,
            Err(_) => {
                std::thread::sleep(Duration::from_millis(10));
                continue;
            }
        };
        match sig {
            libc::SIGCHLD => {
                let mut server_ended = false;
                while let Some(pid) = sys::reap_any() {
                    if Some(pid) == server {
                        server_ended = true;
                    }
                }
                if server_ended {
                    // Started again, a little later, so that a crashing agent does not spin.
                    std::thread::sleep(Duration::from_millis(100));
                    server = start_server();
                }
            }
            libc::SIGHUP => {}
            _ => {
                let _ = sys::kill(-1, libc::SIGTERM);
                std::process::exit(0);
            }
        }
    }
}

/// The agent proper, as a child (std resets the signal mask in it); its pid.
fn start_server() -> Option<i32> {
    let exe = std::env::current_exe().unwrap_or_else(|_| cairn_agent::proto::BINARY_PATH.into());
    match Command::new(exe).arg("serve").stdin(Stdio::null()).spawn() {
        Ok(child) => i32::try_from(child.id()).ok(),
        Err(_) => None,
    }
}

/// The runtime's stdio are host files (runc: `init.log`); the sandbox's processes must not
/// reach them through `/proc/1/fd`: they become `/dev/null`.
fn quiet_stdio() {
    if let Ok(null) = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/null")
    {
        let _ = rustix::stdio::dup2_stdin(&null);
        let _ = rustix::stdio::dup2_stdout(&null);
        let _ = rustix::stdio::dup2_stderr(&null);
    }
}
