//! `ps` and `kill` in a running sandbox, through its agent.

use std::time::Duration;

use cairn_agent::proto::{kill_reason, Message};
use cairn_types::api::ProcessInfo;
use cairn_types::SandboxState;

use crate::{Engine, EngineError, Result};

/// How long the agent may take to answer.
const ANSWER_WAIT: Duration = Duration::from_secs(10);

/// The number of signal `name` (`TERM`, `SIGTERM`, `term` or `15`), among those a user sends.
pub(crate) fn signal_number(name: &str) -> Option<i32> {
    if let Ok(n) = name.parse::<i32>() {
        return (1..=64).contains(&n).then_some(n);
    }
    let upper = name.to_ascii_uppercase();
    let bare = upper.strip_prefix("SIG").unwrap_or(&upper);
    Some(match bare {
        "HUP" => 1,
        "INT" => 2,
        "QUIT" => 3,
        "KILL" => 9,
        "USR1" => 10,
        "USR2" => 12,
        "TERM" => 15,
        "CONT" => 18,
        "STOP" => 19,
        "WINCH" => 28,
        _ => return None,
    })
}

impl Engine {
    /// Asks the agent of running sandbox `id_or_name` (of `account`) `msg`; its answer.
    async fn ask_agent(&self, account: &str, id_or_name: &str, msg: Message) -> Result<Message> {
        let r = self.find(account, id_or_name).await?;
        if r.state != SandboxState::Running {
            return Err(EngineError::Conflict(format!(
                "sandbox {} is {}: only a running sandbox lists and signals its processes",
                r.id, r.state
            )));
        }
        let Some(link) = self.agent(&r.id) else {
            return Err(EngineError::Unavailable(format!(
                "sandbox {} runs without the agent, which lists and signals processes: restart it (cairn stop, cairn start) once 'cairn doctor' shows cairn-agent",
                r.id
            )));
        };
        let (channel, mut events) = link.open();
        link.control(channel, &msg);
        let answer = tokio::time::timeout(ANSWER_WAIT, async {
            while let Some(super::link::Event::Frame(f)) = events.recv().await {
                if let Ok(m) = f.message() {
                    return Some(m);
                }
            }
            None
        })
        .await;
        link.close(channel);
        match answer {
            Ok(Some(m)) => Ok(m),
            _ => Err(EngineError::Unavailable(format!(
                "the agent of sandbox {} did not answer: try again",
                r.id
            ))),
        }
    }

    /// The processes of running sandbox `id_or_name`.
    pub async fn processes(&self, account: &str, id_or_name: &str) -> Result<Vec<ProcessInfo>> {
        match self.ask_agent(account, id_or_name, Message::Ps).await? {
            Message::PsReply { processes } => Ok(processes
                .into_iter()
                .map(|p| ProcessInfo {
                    pid: p.pid,
                    ppid: p.ppid,
                    cmd: p.cmd,
                })
                .collect()),
            _ => Err(EngineError::Unavailable(
                "the sandbox's agent answered something else than its processes".into(),
            )),
        }
    }

    /// Sends `signal` (a name or number; TERM when `None`) to process `pid` of running
    /// sandbox `id_or_name`.
    pub async fn signal_process(
        &self,
        account: &str,
        id_or_name: &str,
        pid: u32,
        signal: Option<&str>,
    ) -> Result<()> {
        let name = signal.unwrap_or("TERM");
        let Some(signal) = signal_number(name) else {
            return Err(EngineError::InvalidArgument(format!(
                "unknown signal '{}': give a name (TERM, KILL, INT, HUP, QUIT, USR1, USR2, STOP, CONT, WINCH) or a number from 1 to 64",
                name.chars().take(20).collect::<String>()
            )));
        };
        match self
            .ask_agent(account, id_or_name, Message::Kill { pid, signal })
            .await?
        {
            Message::Done => Ok(()),
            Message::Error { reason, .. } if reason == kill_reason::NO_SUCH_PROCESS => Err(
                EngineError::NotFound(format!("no process {pid} in sandbox {id_or_name}")),
            ),
            Message::Error { reason, .. } if reason == kill_reason::REFUSED => {
                Err(EngineError::InvalidArgument(format!(
                    "process {pid} is the sandbox's init or its agent: stop the sandbox instead (cairn stop {id_or_name})"
                )))
            }
            _ => Err(EngineError::Unavailable(format!(
                "the agent of sandbox {id_or_name} could not signal process {pid}"
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signals_by_name_or_number() {
        assert_eq!(signal_number("TERM"), Some(15));
        assert_eq!(signal_number("sigkill"), Some(9));
        assert_eq!(signal_number("9"), Some(9));
        assert_eq!(signal_number("0"), None);
        assert_eq!(signal_number("65"), None);
        assert_eq!(signal_number("NOPE"), None);
    }
}
