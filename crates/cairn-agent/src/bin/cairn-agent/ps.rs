//! `ps` and `kill` inside the sandbox, from `/proc`.

use cairn_agent::proto::ProcessInfo;

/// Every process of the sandbox, by pid.
pub fn list() -> Vec<ProcessInfo> {
    let mut out = Vec::new();
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return out;
    };
    for e in dir.flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        let Some((name, ppid)) = parse_stat(&stat) else {
            continue;
        };
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        let cmd = if cmdline.is_empty() {
            format!("[{name}]")
        } else {
            String::from_utf8_lossy(&cmdline)
                .trim_end_matches('\0')
                .replace('\0', " ")
        };
        out.push(ProcessInfo { pid, ppid, cmd });
    }
    out.sort_by_key(|p| p.pid);
    out
}

/// The name and parent pid in a `/proc/PID/stat` line.
fn parse_stat(stat: &str) -> Option<(String, u32)> {
    let open = stat.find('(')?;
    let close = stat.rfind(')')?;
    let name = stat.get(open + 1..close)?.to_string();
    let mut rest = stat.get(close + 1..)?.split_whitespace();
    let _state = rest.next()?;
    let ppid = rest.next()?.parse().ok()?;
    Some((name, ppid))
}

/// Sends `signal` to process `pid`; the sandbox's init and the agent are refused (stop the
/// sandbox instead). The error: a reason word ([`kill_reason`]) and a message.
pub fn kill(pid: u32, signal: i32) -> Result<(), (&'static str, String)> {
    if pid <= 1 || pid == std::process::id() {
        return Err((
            kill_reason::REFUSED,
            format!("process {pid} is the sandbox's init or agent: stop the sandbox instead"),
        ));
    }
    let p = i32::try_from(pid)
        .map_err(|_| (kill_reason::NO_SUCH_PROCESS, format!("no process {pid}")))?;
    crate::sys::kill(p, signal).map_err(|e| match e.raw_os_error() {
        Some(libc::ESRCH) => (
            kill_reason::NO_SUCH_PROCESS,
            format!("no process {pid} in the sandbox"),
        ),
        Some(libc::EINVAL) => (kill_reason::REFUSED, format!("no signal {signal}")),
        _ => ("error", format!("cannot signal process {pid}: {e}")),
    })
}

use cairn_agent::proto::kill_reason;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_lines_with_odd_names_parse() {
        assert_eq!(
            parse_stat("42 (a) b (c)) S 7 42 42 0"),
            Some(("a) b (c)".to_string(), 7))
        );
        assert_eq!(parse_stat("garbage"), None);
    }
}
