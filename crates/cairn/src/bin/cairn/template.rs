//! `cairn template create | build | ls | inspect | rm | prune`.

use std::path::PathBuf;

use anyhow::Result;
use clap::Subcommand;
use hyper::Method;
use serde_json::json;

use cairn_types::api::{PrunedSteps, TemplateInfo};

use crate::client::Client;
use crate::{enc, output, spinner};

/// The template subcommands.
#[derive(Subcommand)]
pub enum TemplateCommand {
    /// Name one of your snapshots as a template ('cairn up --template NAME' forks it).
    #[command(
        after_help = "Examples:\n  cairn snapshot create $ID --name ready\n  cairn template create py --from-snapshot ready\n  cairn template create py --from-snapshot builder:ready --env MODE=dev --workdir /app\n  cairn up --template py"
    )]
    Create {
        /// The template's name (unique in your account).
        name: String,
        /// The snapshot: id, NAME or SANDBOX:NAME.
        #[arg(long, value_name = "SNAP")]
        from_snapshot: String,
        /// Environment variable KEY=VALUE its sandboxes get (repeatable).
        #[arg(long = "env", short = 'e', value_name = "KEY=VALUE")]
        env: Vec<String>,
        /// Working directory its sandboxes' processes start in.
        #[arg(long, short = 'w')]
        workdir: Option<String>,
    },
    /// Build a template from a Cairnfile (FROM, RUN, COPY, ENV, WORKDIR, USER): each step
    /// runs in a build sandbox and is cached as a snapshot, so a rebuild runs only the
    /// steps from the first one that changed.
    #[command(
        after_help = "Examples:\n  cairn template build py                            # ./Cairnfile, context: the current directory\n  cairn template build py -f Cairnfile ./app --runtime runc\n  cairn template build web -f Cairnfile --stateful   # RUN ... & processes keep running in every sandbox\n  cairn up --template py\n\nA Cairnfile:\n  FROM base                      # an image, or one of your templates\n  RUN mkdir -p /app && echo ready > /app/state\n  COPY src /app/src              # from the context directory, never outside it\n  ENV MODE=dev\n  WORKDIR /app\n  RUN [\"sh\", \"-c\", \"setsid httpd -p 8000 >/dev/null 2>&1 &\"]\n\nProgress ('step 2/6 cached: ...', 'step 3/6 running: ...') and the steps' output go to\nstderr; the template's name (or, with --json, the template) to stdout."
    )]
    Build {
        /// The template's name (a rebuild replaces it).
        name: String,
        /// The Cairnfile [default: CONTEXT/Cairnfile].
        #[arg(long, short = 'f')]
        file: Option<PathBuf>,
        /// The directory COPY sources are read from.
        #[arg(default_value = ".")]
        context: PathBuf,
        /// Snapshot every step with its processes' memory: what the Cairnfile started in
        /// the background is running in every sandbox of the template.
        #[arg(long)]
        stateful: bool,
        /// The build sandbox's runtime (gvisor or runc), which the template's sandboxes take.
        #[arg(long)]
        runtime: Option<String>,
    },
    /// List your templates.
    #[command(
        after_help = "Examples:\n  cairn template ls\n  cairn template ls --json | jq -r '.[].name'"
    )]
    Ls,
    /// Show one template.
    #[command(after_help = "Example:\n  cairn template inspect py --json")]
    Inspect {
        /// Template name.
        name: String,
    },
    /// Remove a template, and the build steps no other template uses.
    #[command(after_help = "Example:\n  cairn template rm py")]
    Rm {
        /// Template name.
        name: String,
    },
    /// Delete cached build steps no template uses (left by failed or interrupted builds).
    #[command(after_help = "Example:\n  cairn template prune")]
    Prune,
}

/// Runs a template subcommand.
pub async fn run(client: &Client, command: TemplateCommand, json: bool) -> Result<()> {
    match command {
        TemplateCommand::Create {
            name,
            from_snapshot,
            env,
            workdir,
        } => {
            let req = json!({ "name": name, "from_snapshot": from_snapshot, "env": env, "workdir": workdir });
            let t: TemplateInfo = client
                .json(Method::POST, "/v1/templates", Some(req))
                .await?;
            output::show(json, &t, |t| outln!("{}", t.name))?;
        }
        TemplateCommand::Build {
            name,
            file,
            context,
            stateful,
            runtime,
        } => {
            let args = crate::build::BuildArgs {
                name,
                file: file.unwrap_or_else(|| context.join("Cairnfile")),
                context,
                stateful,
                runtime,
            };
            let t = crate::build::build(client, args).await?;
            output::show(json, &t, |t| outln!("{}", t.name))?;
        }
        TemplateCommand::Ls => {
            let list: Vec<TemplateInfo> = client.json(Method::GET, "/v1/templates", None).await?;
            output::show(json, &list, |l| output::templates(l))?;
        }
        TemplateCommand::Inspect { name } => {
            let t: TemplateInfo = client
                .json(Method::GET, &format!("/v1/templates/{}", enc(&name)), None)
                .await?;
            output::show(json, &t, |t| output::templates(std::slice::from_ref(t)))?;
        }
        TemplateCommand::Rm { name } => {
            let pb = spinner(&format!("removing template {name}"));
            let res = client
                .empty(Method::DELETE, &format!("/v1/templates/{}", enc(&name)))
                .await;
            pb.finish_and_clear();
            res?;
            output::show(json, &json!({ "removed": name }), |_| outln!("{name}"))?;
        }
        TemplateCommand::Prune => {
            let p: PrunedSteps = client
                .json(Method::DELETE, "/v1/template-steps", None)
                .await?;
            output::show(json, &p, |p| {
                for s in &p.removed {
                    outln!("{s}");
                }
            })?;
        }
    }
    Ok(())
}
