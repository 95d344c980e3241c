//! `cairn exec`: stream a command's output live and exit with its code.

use std::io::Write;

use anyhow::Result;
use base64::Engine as _;
use clap::Args;
use http_body_util::BodyExt;
use hyper::Method;

use cairn_types::api::{AttachRequest, ExecEvent, ExecRequest};

use crate::client::{CliError, Client, UNEXPECTED_ANSWER};
use crate::failure::{report_exit, stream_error};

#[derive(Args)]
pub struct ExecArgs {
    /// Sandbox id or name.
    sandbox: String,
    /// The command: one argument is run by /bin/sh -c, several are run as they are (put them after --).
    #[arg(required = true, num_args = 1.., trailing_var_arg = true, allow_hyphen_values = true)]
    command: Vec<String>,
    /// Extra environment variable KEY=VALUE (repeatable).
    #[arg(long = "env", short = 'e', value_name = "KEY=VALUE")]
    env: Vec<String>,
    /// Working directory inside the sandbox.
    #[arg(long, short = 'w')]
    workdir: Option<String>,
    /// Kill the command after this many seconds (exit code 124).
    #[arg(long, value_name = "SECS")]
    timeout: Option<u64>,
    /// Send this terminal's stdin to the command (interactive).
    #[arg(short = 'i', long)]
    interactive: bool,
    /// Start it detached under the sandbox's init and print its process id (inside the
    /// sandbox); it outlives this command and is carried by stateful snapshots (output:
    /// redirect it yourself). Fails (126, 127) when it cannot start.
    #[arg(short = 'd', long)]
    detach: bool,
    /// Give the command a terminal (use with -i for a shell: cairn exec -it ID sh).
    #[arg(short = 't', long)]
    tty: bool,
    /// Add the sandbox's secret NAME to the command's environment as $NAME (repeatable; see
    /// 'cairn up --secret').
    #[arg(long = "secret-env", value_name = "NAME")]
    secret_env: Vec<String>,
    /// Run it as this numeric uid or uid:gid [default: the sandbox's, from its template's
    /// USER; else root].
    #[arg(long, short = 'u', value_name = "UID[:GID]")]
    user: Option<String>,
}

pub async fn run(client: &Client, a: ExecArgs, json: bool) -> Result<i32> {
    let cmd = if a.command.len() == 1 {
        vec!["/bin/sh".into(), "-c".into(), a.command[0].clone()]
    } else {
        a.command
    };
    if a.tty || a.interactive {
        let req = AttachRequest {
            cmd,
            env: a.env,
            workdir: a.workdir,
            timeout_secs: a.timeout,
            tty: a.tty,
            cols: None,
            rows: None,
            secret_env: a.secret_env,
        };
        return crate::attach::run(client, &a.sandbox, req, json).await;
    }
    let req = ExecRequest {
        cmd,
        env: a.env,
        workdir: a.workdir,
        timeout_secs: a.timeout,
        detach: a.detach,
        started_event: false,
        secret_env: a.secret_env,
        user: a.user,
    };
    let path = format!("/v1/sandboxes/{}/exec", crate::enc(&a.sandbox));
    let resp = client
        .send(Method::POST, &path, Some(serde_json::to_value(&req)?))
        .await?;
    let mut body = resp.into_body();
    let mut pending: Vec<u8> = Vec::new();
    let (mut stdout, mut stderr) = (std::io::stdout(), std::io::stderr());
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| {
            CliError::connection(format!("the connection to cairnd broke during exec: {e}"))
        })?;
        let Some(data) = frame.data_ref() else {
            continue;
        };
        pending.extend_from_slice(data);
        while let Some(nl) = pending.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = pending.drain(..=nl).collect();
            let event: ExecEvent = serde_json::from_slice(&line).map_err(|e| {
                CliError::new(
                    UNEXPECTED_ANSWER,
                    format!("unexpected exec stream from cairnd: {e}"),
                )
            })?;
            let b64 = base64::engine::general_purpose::STANDARD;
            match event {
                ExecEvent::Stdout { data } => {
                    let data = b64.decode(data)?;
                    crate::output::or_gone(stdout.write_all(&data).and_then(|()| stdout.flush()))?;
                }
                ExecEvent::Stderr { data } => {
                    stderr.write_all(&b64.decode(data)?)?;
                    stderr.flush()?;
                }
                ExecEvent::Exit { code, message } => {
                    // It could not start, or its sandbox ended under it: say so, after its output.
                    if let Some(m) = message {
                        report_exit(code, m, json, req.detach);
                    }
                    return Ok(code);
                }
                ExecEvent::Error { message, code } => return Err(stream_error(message, code)),
                ExecEvent::Started { pid } => {
                    if json {
                        crate::output::print_json(&serde_json::json!({ "pid": pid }))?;
                    } else {
                        outln!("{pid}");
                    }
                    return Ok(0);
                }
            }
        }
    }
    Err(CliError::connection("cairnd ended the exec stream without an exit code").into())
}
