//! `cairn`: the command-line client of cairnd.

/// `println!` that ends the CLI quietly when stdout's reader went away (see `output::line`).
macro_rules! outln {
    ($($arg:tt)*) => {
        $crate::output::line(format_args!($($arg)*))
    };
}

mod attach;
mod build;
mod cairnfile;
mod client;
mod context;
mod cp;
mod durable;
mod exec;
mod failure;
mod files;
mod image;
mod network;
mod output;
mod progress;
mod secrets;
mod share;
mod snapshot;
mod template;
mod tree;

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Result;
use clap::{Args as ClapArgs, Parser, Subcommand};
use hyper::Method;
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::json;

use cairn_types::api::{CreateSandboxRequest, SandboxInfo};
use cairn_types::RuntimeKind;
use client::{Client, Endpoint};

const EXAMPLES: &str = "Examples:
  cairn image import /srv/rootfs --name base
  ID=$(cairn up --image base)
  cairn exec $ID -- sh -c 'echo hi; exit 3'; echo $?      # prints hi, then 3
  cairn exec $ID 'ls / | wc -l'
  cairn cp ./src $ID:/root/src                               # files in, and out: cairn cp $ID:/root/out .
  WEB=$(cairn up --image base --publish 8080:80)             # nat network, port 80 on 127.0.0.1:8080
  cairn ls --json | jq -r '.[].id'
  cairn snapshot create $ID --name baseline
  cairn snapshot restore baseline                            # roll back in place (or $ID:baseline)
  cairn fork baseline --count 3                              # three independent copies
  cairn template build py -f Cairnfile . && cairn up --template py
  cairn destroy $ID --force";

#[derive(Parser)]
#[command(name = "cairn", version, about = "Sandboxes for AI agents: run, exec, destroy", after_help = EXAMPLES)]
struct Cli {
    /// Where cairnd listens: unix:///path/cairnd.sock or http://HOST:PORT
    /// [default: unix://$CAIRN_HOME/cairnd.sock, CAIRN_HOME=/var/lib/cairn].
    #[arg(long, env = "CAIRN_HOST", global = true)]
    host: Option<String>,
    /// API token (required over TCP; see 'cairnd token create').
    #[arg(long, env = "CAIRN_TOKEN", global = true, hide_env_values = true)]
    token: Option<String>,
    /// Print JSON instead of tables; errors too, as one JSON object on stderr
    /// ({"error": {"code", "message"}}), with the same non-zero exit code.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Create and start a sandbox from an image; prints its id.
    #[command(
        after_help = "Examples:\n  cairn up --image base\n  cairn up --image base --name agent-1 --runtime runc --cpus 2 --memory 1G --disk 5G --env MODE=test --workdir /root\n  cairn up --image base --network nat                  # own address (see 'cairn inspect'), NAT to the outside\n  cairn up --image base --publish 8080:80 -p 8443:443  # implies --network nat; reach it at 127.0.0.1:8080\n  cairn up --image base --secret API_KEY             # /run/secrets/API_KEY holds $API_KEY\n  cairn up --image base --repo https://github.com/org/project --branch main   # checkout in /workspace\n  cairn up --template py                              # a fork of template py's snapshot\n  cairn up --image registry.example.com/team/app:1.2  # pulls it first if you have no image from it"
    )]
    Up(Box<UpArgs>),
    /// Run a command in a sandbox, streaming its output; exits with the command's exit code.
    #[command(
        after_help = "A single argument is run by /bin/sh -c; several are run directly.\nExit code: the command's; 124 when --timeout ran out; 125 when cairn itself failed.\n\nExamples:\n  cairn exec sbx-7f3a9c2e -- python3 -c 'print(1)'\n  cairn exec sbx-7f3a9c2e 'cd /src && make test'\n  cairn exec --env DEBUG=1 --workdir /tmp --timeout 30 sbx-7f3a9c2e -- ./run.sh\n  cairn exec --secret-env API_KEY sbx-7f3a9c2e -- ./deploy.sh   # $API_KEY from the sandbox's secret"
    )]
    Exec(exec::ExecArgs),
    /// List your sandboxes.
    #[command(
        after_help = "Examples:\n  cairn ls\n  cairn ls --json | jq -r '.[] | select(.state == \"running\") | .id'"
    )]
    Ls,
    /// Show one sandbox.
    #[command(after_help = "Example:\n  cairn inspect sbx-7f3a9c2e --json")]
    Inspect {
        /// Sandbox id or name.
        sandbox: String,
    },
    /// List the processes of a running sandbox (through its agent).
    #[command(after_help = "Example:\n  cairn ps sbx-7f3a9c2e")]
    Ps {
        /// Sandbox id or name.
        sandbox: String,
    },
    /// Send a signal to a process of a running sandbox (TERM unless another is given).
    #[command(
        after_help = "Examples:\n  cairn kill sbx-7f3a9c2e 42\n  cairn kill sbx-7f3a9c2e 42 KILL"
    )]
    Kill {
        /// Sandbox id or name.
        sandbox: String,
        /// The process's pid in the sandbox (see 'cairn ps').
        pid: u32,
        /// A signal name (TERM, KILL, INT, HUP…) or number.
        signal: Option<String>,
    },
    /// Stop a sandbox's processes (TERM, then KILL after 10 s); its files are kept.
    #[command(after_help = "Example:\n  cairn stop sbx-7f3a9c2e && cairn start sbx-7f3a9c2e")]
    Stop {
        /// Sandbox id or name.
        sandbox: String,
    },
    /// Freeze a running sandbox until 'cairn resume', taking an automatic snapshot (auto-pause-TIME).
    ///
    /// The snapshot holds process memory where the runtime can checkpoint it (gVisor; runc with
    /// CRIU >= 4.1); the oldest automatic snapshots beyond cairnd's --keep-auto-pause are pruned and
    /// they never count against the per-sandbox snapshot limit.
    #[command(
        after_help = "Examples:\n  cairn pause sbx-7f3a9c2e && cairn resume sbx-7f3a9c2e\n  cairn pause --release-memory sbx-7f3a9c2e   # processes to disk: no RAM until resume"
    )]
    Pause {
        /// Sandbox id or name.
        sandbox: String,
        /// Checkpoint the processes to disk and end them, so the sandbox uses no memory;
        /// 'cairn resume' restores them.
        #[arg(long)]
        release_memory: bool,
    },
    /// Continue a paused sandbox (restoring its processes if their memory was released).
    #[command(after_help = "Example:\n  cairn resume sbx-7f3a9c2e")]
    Resume {
        /// Sandbox id or name.
        sandbox: String,
    },
    /// Start a stopped sandbox again on its files.
    #[command(after_help = "Example:\n  cairn start sbx-7f3a9c2e")]
    Start {
        /// Sandbox id or name.
        sandbox: String,
    },
    /// Destroy a sandbox and everything it has on the host.
    #[command(
        after_help = "Examples:\n  cairn destroy sbx-7f3a9c2e            # refused while it runs\n  cairn destroy sbx-7f3a9c2e --force"
    )]
    Destroy {
        /// Sandbox id or name.
        sandbox: String,
        /// Destroy it even while it runs.
        #[arg(long, short)]
        force: bool,
        /// Also delete its snapshots (they are kept by default).
        #[arg(long)]
        with_snapshots: bool,
    },
    /// Copy files and directories between a sandbox or snapshot and the local machine.
    #[command(after_help = cp::CP_HELP)]
    Cp {
        /// What to copy: REF:/path, a local path, or - (a tar stream on stdin).
        src: String,
        /// Where to: REF:/path, a local path, or - (a tar stream on stdout).
        dst: String,
    },
    /// Files of a sandbox or snapshot: ls, stat, mkdir, rm, mv (to copy, see 'cairn cp').
    Files {
        #[command(subcommand)]
        command: files::FilesCommand,
    },
    /// Snapshots: create, list, inspect, restore, diff, delete.
    Snapshot {
        #[command(subcommand)]
        command: snapshot::SnapshotCommand,
    },
    /// Templates: named snapshots sandboxes start from, built from a Cairnfile or made from a snapshot.
    Template {
        #[command(subcommand)]
        command: template::TemplateCommand,
    },
    /// Make N new sandboxes from one snapshot, concurrently; prints their ids.
    #[command(
        after_help = "Examples:\n  cairn fork snap-1b2c3d4e --count 3\n  cairn fork builder:baseline       # SANDBOX:NAME, also after the sandbox is destroyed\n  cairn fork snap-1b2c3d4e --secret TOKEN=other   # this fork's own TOKEN"
    )]
    Fork {
        /// Snapshot: id, NAME (when only one of your sandboxes has it) or SANDBOX:NAME.
        snapshot: String,
        /// How many forks.
        #[arg(long, default_value_t = 1)]
        count: u32,
        /// Boot on a stateful snapshot's files instead of resuming its processes.
        #[arg(long)]
        fresh: bool,
        /// A secret NAME=VALUE or NAME (from $NAME) for every fork, over those of the
        /// snapshot's sandbox, which the forks get again (repeatable).
        #[arg(long = "secret", value_name = "NAME[=VALUE]")]
        secrets: Vec<String>,
    },
    /// Report what cairnd's host has (runsc, runc, CRIU, btrfs-progs, kernel) and what each enables.
    #[command(
        after_help = "Example:\n  cairn doctor\n  cairn doctor --json | jq '.[] | select(.ok | not)'"
    )]
    Doctor,
    /// Open the web console: prints its URL on cairnd's TCP listener with a login code that
    /// works once, for 10 minutes (the session it opens lasts 8 hours).
    #[command(
        after_help = "Examples:\n  cairn ui                      # on cairnd's host: prints http://HOST:PORT/ui#code=…\n  cairn ui --json | jq -r .url\n\ncairnd needs a TCP listener ('cairnd --listen 127.0.0.1:7421'). Over TCP (--host http://…),\ncairn ui prints the console's address: paste your token into its token field."
    )]
    Ui,
    /// Manage images.
    Image {
        #[command(subcommand)]
        command: image::ImageCommand,
    },
    /// Your account's network settings: whether your nat sandboxes reach each other.
    Network {
        #[command(subcommand)]
        command: network::NetworkCommand,
    },
}

#[derive(ClapArgs)]
struct UpArgs {
    /// Image name (see 'cairn image ls'), or a registry reference (it holds '/', ':' or '@',
    /// which no image name does): your image pulled from it, pulled now if you have none.
    #[arg(
        long,
        required_unless_present_any = ["from_snapshot", "template"],
        conflicts_with_all = ["from_snapshot", "template"]
    )]
    image: Option<String>,
    /// Start from one of your templates (see 'cairn template ls'): a fork of its snapshot,
    /// with its environment and working directory (flags add to them).
    #[arg(long, value_name = "NAME", conflicts_with_all = ["from_snapshot", "repo"])]
    template: Option<String>,
    /// Fork: start from a snapshot's files (id, NAME or SANDBOX:NAME), with its image, runtime
    /// and resources (flags override).
    #[arg(long, value_name = "SNAP")]
    from_snapshot: Option<String>,
    /// With a stateful --from-snapshot: boot fresh on its files instead of resuming its processes.
    #[arg(long, requires = "from_snapshot")]
    fresh: bool,
    /// A name for the sandbox, unique among yours.
    #[arg(long)]
    name: Option<String>,
    /// gvisor (default, stronger isolation) or runc (host kernel, fastest).
    #[arg(long)]
    runtime: Option<RuntimeKind>,
    /// CPU limit in cores [default: 1].
    #[arg(long)]
    cpus: Option<f64>,
    /// Memory limit, e.g. 512M or 2G [default: 512M].
    #[arg(long)]
    memory: Option<String>,
    /// Maximum number of processes [default: 1024].
    #[arg(long)]
    pids: Option<u32>,
    /// Environment variable KEY=VALUE (repeatable).
    #[arg(long = "env", short = 'e', value_name = "KEY=VALUE")]
    env: Vec<String>,
    /// Default working directory for exec.
    #[arg(long, short = 'w')]
    workdir: Option<String>,
    /// none (loopback only) or nat (own address on the Cairn bridge, NAT to the outside)
    /// [default: none; nat with --publish; a fork takes its snapshot's].
    #[arg(long, value_name = "MODE")]
    network: Option<String>,
    /// Publish sandbox TCP port PORT on the host's 127.0.0.1:HOSTPORT (repeatable; needs nat).
    #[arg(long, short = 'p', value_name = "HOSTPORT:PORT")]
    publish: Vec<String>,
    /// Pause it (with an automatic snapshot) after this long without exec or other use
    /// (inspect and ls do not count): 90s, 30m, 2h. The next exec resumes it.
    #[arg(long, value_name = "DURATION")]
    idle_timeout: Option<String>,
    /// Disk limit: what it may write beyond its image or snapshot, e.g. 512M or 10G; writes
    /// over it fail inside with "Disk quota exceeded" [default: cairnd's --default-disk; a
    /// fork takes its snapshot's].
    #[arg(long, value_name = "SIZE")]
    disk: Option<String>,
    /// A secret NAME=VALUE, or NAME to take the value of $NAME here (repeatable): the file
    /// /run/secrets/NAME in the sandbox (and, with exec --secret-env NAME, a variable).
    /// Never stored in plain text nor in snapshots; forks get it again.
    #[arg(long = "secret", value_name = "NAME[=VALUE]")]
    secrets: Vec<String>,
    /// Clone this git repository into the sandbox before it starts (cairnd clones it: the
    /// sandbox needs no network or git): https://, http:// or git:// (a host path: the
    /// operator only).
    #[arg(long, value_name = "URL", conflicts_with = "from_snapshot")]
    repo: Option<String>,
    /// The branch or tag to clone [default: the repository's default].
    #[arg(long, value_name = "BRANCH", requires = "repo")]
    branch: Option<String>,
    /// Where the checkout goes in the sandbox.
    #[arg(
        long,
        value_name = "PATH",
        default_value = "/workspace",
        requires = "repo"
    )]
    repo_path: String,
    /// A token with read access for the clone (never stored) [env: CAIRN_REPO_TOKEN].
    #[arg(
        long,
        value_name = "TOKEN",
        env = "CAIRN_REPO_TOKEN",
        hide_env_values = true,
        requires = "repo"
    )]
    repo_token: Option<String>,
}

fn default_endpoint() -> Endpoint {
    let home = std::env::var_os("CAIRN_HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| "/var/lib/cairn".into());
    Endpoint::Unix(home.join("cairnd.sock"))
}

pub(crate) fn spinner(msg: &str) -> ProgressBar {
    let pb = ProgressBar::new_spinner();
    pb.set_style(
        ProgressStyle::with_template("{spinner} {msg} {elapsed}")
            .unwrap_or_else(|_| ProgressStyle::default_spinner()),
    );
    pb.set_message(msg.to_string());
    // Show it only when the work takes a while, and never in scripts (it draws on stderr only when that is a terminal).
    pb.enable_steady_tick(Duration::from_millis(120));
    pb
}

fn main() {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            use clap::error::ErrorKind;
            let shown = matches!(
                e.kind(),
                ErrorKind::DisplayHelp
                    | ErrorKind::DisplayVersion
                    | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
            );
            if !shown && failure::wants_json() {
                failure::report(&failure::usage(&e), true);
                std::process::exit(e.exit_code());
            }
            e.exit()
        }
    };
    let is_exec = matches!(cli.command, Command::Exec(_));
    let json = cli.json;
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            failure::report(&failure::describe(&e.into()), json);
            std::process::exit(125);
        }
    };
    match rt.block_on(run(cli)) {
        Ok(code) => std::process::exit(code),
        Err(e) => {
            failure::report(&failure::describe(&e), json);
            std::process::exit(if is_exec { 125 } else { 1 });
        }
    }
}

async fn run(cli: Cli) -> Result<i32> {
    let endpoint = match &cli.host {
        Some(h) => Endpoint::parse(h)?,
        None => default_endpoint(),
    };
    let client = Client::new(endpoint, cli.token.clone());
    let json = cli.json;
    match cli.command {
        Command::Up(a) => {
            let a = *a;
            let req = CreateSandboxRequest {
                image: a.image.unwrap_or_default(),
                from_snapshot: a.from_snapshot,
                fresh: a.fresh,
                name: a.name,
                runtime: a.runtime,
                cpus: a.cpus,
                memory: a.memory,
                pids_limit: a.pids,
                env: a.env,
                workdir: a.workdir,
                network: a.network,
                publish: a.publish,
                idle_timeout: a.idle_timeout,
                disk: a.disk,
                secrets: secrets::from_args(&a.secrets)?,
                repo: a.repo.map(|url| cairn_types::api::RepoSource {
                    url,
                    branch: a.branch,
                    path: Some(a.repo_path),
                    token: a.repo_token,
                }),
                template: a.template,
            };
            let pb = spinner(if req.repo.is_some() {
                "cloning the repository and starting the sandbox"
            } else {
                "starting sandbox"
            });
            let res: Result<SandboxInfo> = client
                .json(
                    Method::POST,
                    "/v1/sandboxes",
                    Some(serde_json::to_value(&req)?),
                )
                .await;
            pb.finish_and_clear();
            let s = res?;
            output::show(json, &s, |s| outln!("{}", s.id))?;
        }
        Command::Exec(a) => return exec::run(&client, a, json).await,
        Command::Ls => {
            let list: Vec<SandboxInfo> = client.json(Method::GET, "/v1/sandboxes", None).await?;
            output::show(json, &list, |list| output::sandboxes(list))?;
        }
        Command::Inspect { sandbox } => {
            let s: SandboxInfo = client
                .json(
                    Method::GET,
                    &format!("/v1/sandboxes/{}", enc(&sandbox)),
                    None,
                )
                .await?;
            output::show(json, &s, output::sandbox)?;
        }
        Command::Ps { sandbox } => {
            let path = format!("/v1/sandboxes/{}/processes", enc(&sandbox));
            let procs: Vec<serde_json::Value> = client.json(Method::GET, &path, None).await?;
            output::show(json, &procs, |p| output::processes(p))?;
        }
        Command::Kill {
            sandbox,
            pid,
            signal,
        } => {
            let path = format!("/v1/sandboxes/{}/processes/{pid}/signal", enc(&sandbox));
            client
                .empty_with(Method::POST, &path, Some(json!({ "signal": signal })))
                .await?;
        }
        Command::Stop { sandbox } => lifecycle(&client, &sandbox, "stop", json).await?,
        Command::Start { sandbox } => lifecycle(&client, &sandbox, "start", json).await?,
        Command::Pause {
            sandbox,
            release_memory,
        } => {
            let verb = if release_memory {
                "pause?release_memory=true"
            } else {
                "pause"
            };
            lifecycle(&client, &sandbox, verb, json).await?
        }
        Command::Resume { sandbox } => lifecycle(&client, &sandbox, "resume", json).await?,
        Command::Destroy {
            sandbox,
            force,
            with_snapshots,
        } => {
            let path = format!(
                "/v1/sandboxes/{}?force={force}&with_snapshots={with_snapshots}",
                enc(&sandbox)
            );
            client.empty(Method::DELETE, &path).await?;
            if json {
                output::print_json(&json!({ "destroyed": sandbox }))?;
            } else {
                outln!("{sandbox}");
            }
        }
        Command::Ui => {
            if client.is_tcp() {
                let base = cli
                    .host
                    .as_deref()
                    .unwrap_or_default()
                    .trim_end_matches('/');
                let url = format!("{base}/ui");
                if json {
                    output::print_json(&json!({ "url": url }))?;
                } else {
                    outln!("{url}");
                    eprintln!("paste your token into the console's token field");
                }
            } else {
                let login: serde_json::Value = client.json(Method::POST, "/ui/login", None).await?;
                if json {
                    output::print_json(&login)?;
                } else {
                    outln!("{}", login["url"].as_str().unwrap_or_default());
                    eprintln!(
                        "open it in a browser: the login code in it works once, for 10 minutes"
                    );
                }
            }
        }
        Command::Image { command } => image::run(&client, command, json).await?,
        Command::Network { command } => network::run(&client, command, json).await?,
        Command::Doctor => {
            let checks: Vec<serde_json::Value> =
                client.json(Method::GET, "/v1/doctor", None).await?;
            output::show(json, &checks, |c| output::doctor(c))?;
        }
        Command::Snapshot { command } => snapshot::run(&client, command, json).await?,
        Command::Template { command } => template::run(&client, command, json).await?,
        Command::Cp { src, dst } => cp::cp(&client, &src, &dst, json).await?,
        Command::Files { command } => files::run(&client, command, json).await?,
        Command::Fork {
            snapshot,
            count,
            fresh,
            secrets,
        } => {
            let secrets = secrets::from_args(&secrets)?;
            snapshot::fork(&client, &snapshot, count, fresh, &secrets, json).await?
        }
    }
    Ok(0)
}

/// Percent-encodes a path segment (ids and names are tame, but users type anything).
pub(crate) fn enc(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

async fn lifecycle(client: &Client, sandbox: &str, verb: &str, json: bool) -> Result<()> {
    let action = verb.split('?').next().unwrap_or(verb);
    let pb = spinner(&format!("{action} {sandbox}"));
    let res: Result<SandboxInfo> = client
        .json(
            Method::POST,
            &format!("/v1/sandboxes/{}/{verb}", enc(sandbox)),
            None,
        )
        .await;
    pb.finish_and_clear();
    let s = res?;
    output::show(json, &s, |s| outln!("{}", s.id))?;
    Ok(())
}
