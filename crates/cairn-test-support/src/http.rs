//! Raw HTTP to a test daemon (curl over its unix socket or TCP listener), the JSON error
//! assertion, and private networks for network tests.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::{Command, Stdio};

use super::{which, Daemon};

/// How a raw HTTP request reaches cairnd: its unix socket (the operator, `local` account unless
/// a token is given) or its TCP listener.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Via {
    /// The unix socket.
    Unix,
    /// The TCP listener (the daemon must have been started with one).
    Tcp,
}

impl Daemon {
    /// (status, body) of a request made with curl: `token` becomes a bearer header, `body` a
    /// JSON body. A body that is not JSON comes back as a JSON string.
    pub fn http(
        &self,
        via: Via,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<&str>,
    ) -> (u16, serde_json::Value) {
        let mut args: Vec<String> = vec!["-X".into(), method.into()];
        if body.is_some() {
            args.extend([
                "-H".into(),
                "Content-Type: application/json".into(),
                "--data-binary".into(),
                "@-".into(),
            ]);
        }
        self.curl_with_stdin(via, path, token, &args, body.unwrap_or_default().as_bytes())
    }

    /// (status, body) of `curl ARGS URL` (with `-s` and a bearer header for `token`), for
    /// requests [`Daemon::http`] cannot express (uploads, other headers).
    pub fn curl(
        &self,
        via: Via,
        path: &str,
        token: Option<&str>,
        extra: &[String],
    ) -> (u16, serde_json::Value) {
        self.curl_with_stdin(via, path, token, extra, b"")
    }

    /// [`Daemon::curl`] with `stdin` on curl's standard input (for `--data-binary @-`: bodies
    /// too large for a command line).
    pub fn curl_with_stdin(
        &self,
        via: Via,
        path: &str,
        token: Option<&str>,
        extra: &[String],
        stdin: &[u8],
    ) -> (u16, serde_json::Value) {
        let mut args: Vec<String> = vec!["-s".into(), "-w".into(), "\n%{http_code}".into()];
        let url = match via {
            Via::Unix => {
                let sock = self.home.join("cairnd.sock");
                args.extend(["--unix-socket".into(), sock.to_string_lossy().into_owned()]);
                format!("http://cairnd{path}")
            }
            Via::Tcp => format!(
                "http://{}{path}",
                self.tcp.as_ref().expect("this daemon has no TCP listener")
            ),
        };
        if let Some(t) = token {
            args.extend(["-H".into(), format!("Authorization: Bearer {t}")]);
        }
        args.extend(extra.iter().cloned());
        args.push(url);
        let mut child = Command::new("curl")
            .args(&args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("curl is needed for these tests: apt-get install curl");
        let mut input = child.stdin.take().unwrap();
        let data = stdin.to_vec();
        let feeder = std::thread::spawn(move || {
            let _ = std::io::Write::write_all(&mut input, &data);
        });
        let out = child.wait_with_output().unwrap();
        let _ = feeder.join();
        let text = String::from_utf8_lossy(&out.stdout).to_string();
        let (body, code) = text.rsplit_once('\n').unwrap_or(("", text.as_str()));
        let code: u16 = code.trim().parse().unwrap_or(0);
        let value = if body.trim().is_empty() {
            serde_json::Value::Null
        } else {
            serde_json::from_str(body).unwrap_or(serde_json::Value::String(body.into()))
        };
        (code, value)
    }
}

impl Daemon {
    /// (status, lines) of a request for a progress stream (`Accept: application/x-ndjson`)
    /// with a JSON `body`: each line of the answer parsed as JSON.
    pub fn ndjson(
        &self,
        via: Via,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: &str,
    ) -> (u16, Vec<serde_json::Value>) {
        let args: Vec<String> = [
            "-X",
            method,
            "-H",
            "Accept: application/x-ndjson",
            "-H",
            "Content-Type: application/json",
            "--data-binary",
            "@-",
        ]
        .map(String::from)
        .to_vec();
        let (code, answer) = self.curl_with_stdin(via, path, token, &args, body.as_bytes());
        let text = match answer {
            serde_json::Value::String(s) => s,
            other => other.to_string(),
        };
        let lines = text
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l:?}")))
            .collect();
        (code, lines)
    }
}

/// Asserts an API error: its status, its code, and that its message mentions `mentions`.
pub fn assert_error(resp: &(u16, serde_json::Value), status: u16, code: &str, mentions: &str) {
    assert_eq!(resp.0, status, "{resp:?}");
    assert_eq!(resp.1["error"]["code"], code, "{resp:?}");
    let msg = resp.1["error"]["message"].as_str().unwrap_or_default();
    assert!(
        msg.contains(mentions),
        "message {msg:?} should mention {mentions:?}"
    );
}

/// A bridge and subnet of a test daemon's own (`cairnd --bridge NAME --subnet CIDR`), so that
/// network tests never touch `cairn0` nor each other, in this process or another.
#[derive(Clone, Debug)]
pub struct PrivateNet {
    /// `<prefix><pid><n>`: at most 15 characters.
    pub bridge: String,
    /// `10.<base+n>.<pid % 250>.0/24`.
    pub subnet: String,
    /// The subnet's first address, which the bridge takes.
    pub gateway: std::net::Ipv4Addr,
}

impl PrivateNet {
    /// The next private network of this process: `prefix` (3 letters) and `base` (the second
    /// octet of the first one) keep the networks of different test files apart. Fails with
    /// install instructions unless `nft`, `ip` and `nsenter` are there.
    pub fn next(prefix: &str, base: u8) -> PrivateNet {
        for (tool, pkg) in [
            ("nft", "nftables"),
            ("ip", "iproute2"),
            ("nsenter", "util-linux"),
        ] {
            assert!(
                which(tool).is_some(),
                "'{tool}' is missing: apt-get install {pkg} (or run scripts/setup.sh once)"
            );
        }
        static N: std::sync::atomic::AtomicU8 = std::sync::atomic::AtomicU8::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let pid = std::process::id();
        let third = (pid % 250) as u8;
        let second = base.wrapping_add(n);
        PrivateNet {
            bridge: format!("{prefix}{}{n}", pid % 100_000),
            subnet: format!("10.{second}.{third}.0/24"),
            gateway: std::net::Ipv4Addr::new(10, second, third, 1),
        }
    }

    /// `--bridge NAME --subnet CIDR`, for cairnd.
    pub fn args(&self) -> [&str; 4] {
        ["--bridge", &self.bridge, "--subnet", &self.subnet]
    }
}

/// Declares a `#[test]` per runtime for each named `fn name(runtime: &str)`:
/// `runc::name` and `gvisor::name`.
#[macro_export]
macro_rules! both_runtimes {
    ($($name:ident),* $(,)?) => {
        mod runc { $( #[test] fn $name() { super::$name("runc") } )* }
        mod gvisor { $( #[test] fn $name() { super::$name("gvisor") } )* }
    };
}
