//! The protocol between cairnd and the agent inside a sandbox: one connection, which the
//! agent dials out to ([`SOCKET_PATH`]), carrying length-prefixed frames multiplexed by
//! channel.
//!
//! A frame is a 9-byte header — payload length (u32, big-endian), [`Kind`] (u8), channel
//! (u32, big-endian) — then the payload. Control frames carry one [`Message`] as JSON; data
//! frames carry a process's stdin, stdout or stderr bytes. Channel 0 is the connection's own
//! (hello, ping, ps, kill, quiesce, init); every spawned process gets the channel cairnd named in
//! its `spawn`, and everything about that process travels on it. File operations (stat, mkdir,
//! remove, rename, symlink, hard-link, put-file) each get a channel of their own too.
//!
//! Either side may be hostile (the agent runs inside the sandbox): a header naming more than
//! [`MAX_PAYLOAD`] bytes, an unknown kind, a truncated frame or bad JSON is an error, never a
//! panic or an allocation of the announced size.
//!
//! Not for: how the agent runs processes (its binary) or how cairnd routes them (the engine).

use std::io::{Read, Write};

use serde::{Deserialize, Serialize};

/// The agent's version, sent in its `hello`.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// The protocol's version: a cairnd refuses an agent that speaks another.
pub const PROTOCOL: u32 = 1;

/// Where the agent binary is bind-mounted (read-only) inside every sandbox.
pub const BINARY_PATH: &str = "/.cairn/agent";

/// The directory, inside the sandbox, of the host directory that holds cairnd's socket.
pub const SOCKET_DIR: &str = "/.cairn/sock";

/// The socket's name in [`SOCKET_DIR`] (and in its host directory).
pub const SOCKET_NAME: &str = "agent.sock";

/// The socket the agent dials, inside the sandbox.
pub const SOCKET_PATH: &str = "/.cairn/sock/agent.sock";

/// Bytes of a frame's header.
pub const HEADER_LEN: usize = 9;

/// The largest payload a frame may carry (control or data).
pub const MAX_PAYLOAD: u32 = 1024 * 1024;

/// The channel of the connection itself.
pub const CONTROL_CHANNEL: u32 = 0;

/// What a frame carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// A [`Message`] as JSON.
    Control,
    /// Bytes for a process's stdin (or terminal), cairnd → agent.
    Stdin,
    /// Bytes a process wrote to stdout (or its terminal), agent → cairnd.
    Stdout,
    /// Bytes a process wrote to stderr, agent → cairnd.
    Stderr,
}

impl Kind {
    /// Its byte on the wire.
    pub fn byte(self) -> u8 {
        match self {
            Kind::Control => 0,
            Kind::Stdin => 1,
            Kind::Stdout => 2,
            Kind::Stderr => 3,
        }
    }

    /// The kind a byte names.
    pub fn from_byte(b: u8) -> Result<Kind, ProtoError> {
        Ok(match b {
            0 => Kind::Control,
            1 => Kind::Stdin,
            2 => Kind::Stdout,
            3 => Kind::Stderr,
            other => return Err(ProtoError::UnknownKind(other)),
        })
    }
}

/// What is wrong with what a peer sent.
#[derive(Debug, thiserror::Error)]
pub enum ProtoError {
    /// The connection failed (or ended inside a frame).
    #[error("agent connection: {0}")]
    Io(#[from] std::io::Error),
    /// A header announced a payload over [`MAX_PAYLOAD`].
    #[error("a frame of {0} bytes is over the limit of {MAX_PAYLOAD}")]
    TooLarge(u32),
    /// A header named no known [`Kind`].
    #[error("unknown frame kind {0}")]
    UnknownKind(u8),
    /// A control frame's JSON is not a [`Message`].
    #[error("bad control message: {0}")]
    BadMessage(String),
}

/// A frame's header, parsed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    /// What the payload is.
    pub kind: Kind,
    /// Whose it is.
    pub channel: u32,
    /// Its length (at most [`MAX_PAYLOAD`]).
    pub len: u32,
}

impl Header {
    /// Parses a header, refusing an oversize length or an unknown kind.
    pub fn parse(b: &[u8; HEADER_LEN]) -> Result<Header, ProtoError> {
        let len = u32::from_be_bytes([b[0], b[1], b[2], b[3]]);
        if len > MAX_PAYLOAD {
            return Err(ProtoError::TooLarge(len));
        }
        let kind = Kind::from_byte(b[4])?;
        let channel = u32::from_be_bytes([b[5], b[6], b[7], b[8]]);
        Ok(Header { kind, channel, len })
    }
}

/// One frame.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Frame {
    /// What the payload is.
    pub kind: Kind,
    /// Whose it is.
    pub channel: u32,
    /// The bytes.
    pub payload: Vec<u8>,
}

impl Frame {
    /// A control frame carrying `msg` on `channel`.
    pub fn control(channel: u32, msg: &Message) -> Frame {
        // Serializing these types cannot fail (no maps with non-string keys, no custom code).
        let payload = serde_json::to_vec(msg).unwrap_or_default();
        Frame {
            kind: Kind::Control,
            channel,
            payload,
        }
    }

    /// A data frame.
    pub fn data(kind: Kind, channel: u32, payload: Vec<u8>) -> Frame {
        Frame {
            kind,
            channel,
            payload,
        }
    }

    /// Header and payload, ready to write. A payload over [`MAX_PAYLOAD`] is the caller's bug:
    /// split data into chunks of at most that (see [`CHUNK`]).
    pub fn encode(&self) -> Vec<u8> {
        let len = u32::try_from(self.payload.len()).unwrap_or(u32::MAX);
        let mut out = Vec::with_capacity(HEADER_LEN + self.payload.len());
        out.extend_from_slice(&len.to_be_bytes());
        out.push(self.kind.byte());
        out.extend_from_slice(&self.channel.to_be_bytes());
        out.extend_from_slice(&self.payload);
        out
    }

    /// The message of a control frame.
    pub fn message(&self) -> Result<Message, ProtoError> {
        if self.kind != Kind::Control {
            return Err(ProtoError::BadMessage("not a control frame".into()));
        }
        serde_json::from_slice(&self.payload).map_err(|e| ProtoError::BadMessage(e.to_string()))
    }
}

/// The most bytes of output or input one data frame carries.
pub const CHUNK: usize = 64 * 1024;

/// Reads one frame; `Ok(None)` when the peer closed the connection between frames.
pub fn read_frame(r: &mut impl Read) -> Result<Option<Frame>, ProtoError> {
    let mut head = [0u8; HEADER_LEN];
    let mut got = 0;
    while got < HEADER_LEN {
        match r.read(&mut head[got..]) {
            Ok(0) if got == 0 => return Ok(None),
            Ok(0) => return Err(std::io::Error::from(std::io::ErrorKind::UnexpectedEof).into()),
            Ok(n) => got += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e.into()),
        }
    }
    let h = Header::parse(&head)?;
    // The length is bounded by MAX_PAYLOAD above: this allocation is too.
    let mut payload = vec![0u8; h.len as usize];
    r.read_exact(&mut payload)?;
    Ok(Some(Frame {
        kind: h.kind,
        channel: h.channel,
        payload,
    }))
}

/// Writes one frame.
pub fn write_frame(w: &mut impl Write, f: &Frame) -> std::io::Result<()> {
    w.write_all(&f.encode())
}

/// A terminal's size.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TtySize {
    /// Rows.
    pub rows: u16,
    /// Columns.
    pub cols: u16,
}

/// Where the agent writes the sandbox's secrets, one file each (mode 0400, owner root): a
/// tmpfs the runtime mounts, emptied before every checkpoint.
pub const SECRETS_DIR: &str = "/run/secrets";

/// One secret, as `init` carries it.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Secret {
    /// Its name: its file in [`SECRETS_DIR`] and its variable with `secret_env`.
    pub name: String,
    /// Its value, hexadecimal (any bytes; no JSON escapes, so no scratch copies of them).
    pub hex: String,
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the value: a debug print of a message must not leak it.
        f.debug_struct("Secret")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

/// One process, as `ps` lists it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProcessInfo {
    /// Its pid in the sandbox.
    pub pid: u32,
    /// Its parent's pid.
    pub ppid: u32,
    /// Its command line (arguments joined by spaces), or its name in brackets.
    pub cmd: String,
}

/// How often the agent acknowledges a `put-file`'s bytes.
pub const WRITTEN_EVERY: u64 = 1024 * 1024;

/// The most bytes of a `put-file` cairnd sends ahead of the agent's `written`.
pub const PUT_WINDOW: u64 = 4 * 1024 * 1024;

/// A file as a file operation of the agent reports it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileStat {
    /// `file`, `directory`, `symlink`, `fifo`, `socket`, `char_device`, `block_device`.
    pub kind: String,
    /// Bytes.
    pub size: u64,
    /// Permission, set-id and sticky bits.
    pub mode: u32,
    /// Owner.
    pub uid: u32,
    /// Group.
    pub gid: u32,
    /// Last modification, seconds since the epoch.
    pub mtime: i64,
    /// A symlink's target.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
}

/// Why a process could not start (the words `cairn_engine` turns into exit codes 126/127).
pub mod unstartable {
    /// Its working directory does not exist.
    pub const WORKDIR_MISSING: &str = "workdir-missing";
    /// Its working directory is not a directory.
    pub const WORKDIR_NOT_DIRECTORY: &str = "workdir-not-directory";
    /// Its working directory cannot be entered.
    pub const WORKDIR_DENIED: &str = "workdir-denied";
    /// Its program is not there (or not in PATH).
    pub const PROGRAM_MISSING: &str = "program-missing";
    /// Its program is a directory or not executable.
    pub const PROGRAM_NOT_EXECUTABLE: &str = "program-not-executable";
}

/// Why a `kill` was refused.
pub mod kill_reason {
    /// No such process in the sandbox.
    pub const NO_SUCH_PROCESS: &str = "no-such-process";
    /// The init or the agent, or no such signal.
    pub const REFUSED: &str = "refused";
}

/// A control message.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "kebab-case")]
pub enum Message {
    /// Agent → cairnd, first on every connection.
    Hello {
        /// [`VERSION`].
        version: String,
        /// [`PROTOCOL`].
        protocol: u32,
        /// The agent's own pid in the sandbox.
        pid: u32,
    },
    /// cairnd → agent: start a process on the frame's channel.
    Spawn {
        /// Program and arguments (the program looked up in the env's PATH when it has no `/`).
        cmd: Vec<String>,
        /// Its whole environment, `KEY=VALUE`.
        env: Vec<String>,
        /// Its working directory.
        cwd: String,
        /// `uid` or `uid:gid`, numeric; the agent's own when absent.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        user: Option<String>,
        /// A terminal of this size instead of pipes.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        tty: Option<TtySize>,
        /// Whether cairnd will send stdin (else it is `/dev/null`).
        #[serde(default)]
        stdin: bool,
        /// Detached: stdio is `/dev/null`, nothing is sent but `started` and `exit`.
        #[serde(default)]
        detach: bool,
        /// Names of secrets (from the last `init`) added to its environment as `NAME=VALUE`;
        /// a name the agent does not hold refuses the spawn.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        secret_env: Vec<String>,
    },
    /// Agent → cairnd: the channel's process runs.
    Started {
        /// Its pid in the sandbox.
        pid: u32,
    },
    /// cairnd → agent: no more stdin for the channel's process.
    CloseStdin,
    /// cairnd → agent: the channel's terminal has a new size.
    Resize {
        /// Rows.
        rows: u16,
        /// Columns.
        cols: u16,
    },
    /// cairnd → agent: send the channel's process a signal.
    Signal {
        /// The signal's number.
        signal: i32,
    },
    /// Agent → cairnd: the channel's process ended (after its output).
    Exit {
        /// Its exit code, when it exited.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        code: Option<i32>,
        /// The signal that killed it, when one did.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        signal: Option<i32>,
    },
    /// cairnd → agent: list the sandbox's processes.
    Ps,
    /// Agent → cairnd: the answer to `ps`.
    PsReply {
        /// Every process.
        processes: Vec<ProcessInfo>,
    },
    /// cairnd → agent: send any process of the sandbox a signal.
    Kill {
        /// Its pid.
        pid: u32,
        /// The signal's number.
        signal: i32,
    },
    /// Agent → cairnd: the answer to `kill` that worked.
    Done,
    /// cairnd → agent: close the connection (a checkpoint follows), buffering output until
    /// the next one.
    Quiesce,
    /// cairnd → agent, after a (re)connection: what the sandbox should be.
    Init {
        /// cairnd's clock, milliseconds since the epoch.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        clock_ms: Option<u64>,
        /// The environment processes start with when a spawn gives none.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        env: Vec<String>,
        /// The sandbox's hostname, when it must change.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        hostname: Option<String>,
        /// The content of `/etc/machine-id`, when it must change. cairnd sends none: it
        /// writes a fork's machine id into its root before any process runs.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        machine_id: Option<String>,
        /// Random bytes (hexadecimal) the agent writes into `/dev/urandom`, so that a
        /// kernel whose state came from a checkpoint mixes in entropy of its own.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        entropy: Option<String>,
        /// The sandbox's secrets: the agent replaces [`SECRETS_DIR`]'s files with these
        /// (an empty list removes them all).
        #[serde(default)]
        secrets: Vec<Secret>,
    },
    /// cairnd → agent: what `path` is (a final symlink itself); answered `entry`.
    Stat {
        /// An absolute path in the sandbox.
        path: String,
    },
    /// cairnd → agent: make directory `path` (with `parents`, its missing parents too and no
    /// error when it is there); answered `entry`.
    Mkdir {
        /// An absolute path in the sandbox.
        path: String,
        /// `mkdir -p`.
        #[serde(default)]
        parents: bool,
        /// Its permission bits.
        mode: u32,
        /// Its owner, when not root.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        uid: Option<u32>,
        /// Its group, when not root.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        gid: Option<u32>,
    },
    /// cairnd → agent: remove `path` (a link itself; a non-empty directory only with
    /// `recursive`); answered `done`.
    Remove {
        /// An absolute path in the sandbox.
        path: String,
        /// Remove a directory's contents too.
        #[serde(default)]
        recursive: bool,
    },
    /// cairnd → agent: rename `from` to `to`; answered `entry` (of `to`).
    Rename {
        /// An absolute path in the sandbox.
        from: String,
        /// An absolute path in the sandbox.
        to: String,
    },
    /// cairnd → agent: make `path` a symbolic link to `target` (replacing a file or link
    /// there); answered `done`.
    Symlink {
        /// An absolute path in the sandbox.
        path: String,
        /// What the link holds.
        target: String,
        /// Its owner, when not root.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        uid: Option<u32>,
        /// Its group, when not root.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        gid: Option<u32>,
    },
    /// cairnd → agent: make `path` a hard link to the regular file `existing` (replacing a
    /// file or link there); answered `done`.
    HardLink {
        /// An absolute path in the sandbox.
        path: String,
        /// An existing regular file in the sandbox.
        existing: String,
    },
    /// cairnd → agent: write file `path`, whose bytes follow on the channel as stdin frames
    /// ended by `close-stdin`. The file is written under a temporary name and renamed over
    /// `path` at the end (a file or link there is replaced, never followed). Answered
    /// `written` as the bytes land, then `entry`; or `file-error` (the rest is ignored).
    PutFile {
        /// An absolute path in the sandbox.
        path: String,
        /// Permission bits; default: the replaced file's, else 0o644.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        mode: Option<u32>,
        /// Owner; default: the replaced file's, else root.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        uid: Option<u32>,
        /// Group; default: the replaced file's, else root.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        gid: Option<u32>,
        /// Sync the file and its directory before answering.
        #[serde(default)]
        sync: bool,
    },
    /// cairnd → agent: give up the channel's `put-file` (its temporary file is removed);
    /// not answered.
    Cancel,
    /// Agent → cairnd: the bytes of a `put-file` written so far (every [`WRITTEN_EVERY`]
    /// bytes): cairnd sends at most [`PUT_WINDOW`] bytes ahead of it.
    Written {
        /// Bytes written.
        bytes: u64,
    },
    /// Agent → cairnd: what a file is, after a file operation.
    Entry(FileStat),
    /// Agent → cairnd: a file operation failed with this `errno`.
    FileError {
        /// The error number (`ENOENT`…).
        errno: i32,
    },
    /// cairnd → agent: are you there?
    Ping,
    /// Agent → cairnd: yes.
    Pong,
    /// Either way: something failed (on a process's channel: it could not start).
    Error {
        /// One of [`unstartable`]'s words when a process could not start, else `error`.
        reason: String,
        /// What happened.
        message: String,
    },
}

#[cfg(test)]
mod tests;
