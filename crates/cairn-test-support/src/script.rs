//! Programs other than cairn run against a test daemon (the SDKs' test scripts, examples):
//! the environment that points them at it, and their output for assertion messages.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::Output;

use super::Daemon;

impl Daemon {
    /// The environment that points an SDK's script at this daemon: its TCP listener (it
    /// must have one) with a token of `account`, its unix socket, runtime `rt` and image
    /// `base`.
    pub fn sdk_env(&self, account: &str, rt: &str) -> Vec<(String, String)> {
        let tcp = self.tcp.clone().expect(
            "this daemon has no TCP listener: start it with Daemon::start_opts(.., true, ..)",
        );
        [
            ("CAIRN_HOST", format!("http://{tcp}")),
            ("CAIRN_TOKEN", self.token(account)),
            (
                "CAIRN_SOCKET_PATH",
                self.home.join("cairnd.sock").to_string_lossy().into_owned(),
            ),
            ("CAIRN_RUNTIME", rt.to_string()),
            ("CAIRN_IMAGE", "base".to_string()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect()
    }
}

/// A finished program's standard output, then its standard error, as text.
pub fn output_text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// The last `lines` lines of `text` (for messages about long outputs).
pub fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}
