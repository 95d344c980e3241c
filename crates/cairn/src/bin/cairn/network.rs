//! `cairn network …`: the account's network settings.

use anyhow::Result;
use clap::{Subcommand, ValueEnum};
use hyper::Method;
use serde_json::json;

use cairn_types::api::AccountNetwork;

use crate::client::Client;
use crate::output;

#[derive(Subcommand)]
pub enum NetworkCommand {
    /// Show your account's network settings.
    #[command(after_help = "Examples:\n  cairn network show\n  cairn network show --json")]
    Show,
    /// Change your account's network settings; applies at once to your running sandboxes.
    ///
    /// nat sandboxes always reach the outside world and answer the host; they never reach
    /// another account's sandboxes, the gateway or the host's addresses.
    #[command(
        after_help = "Examples:\n  cairn network set --sandbox-to-sandbox on    # your nat sandboxes reach each other by address\n  cairn network set --sandbox-to-sandbox off   # the default: they do not"
    )]
    Set {
        /// Whether your nat sandboxes reach each other.
        #[arg(long, value_name = "on|off")]
        sandbox_to_sandbox: OnOff,
    },
}

/// A switch.
#[derive(Clone, Copy, ValueEnum)]
pub enum OnOff {
    /// Allowed.
    On,
    /// Not allowed.
    Off,
}

pub async fn run(client: &Client, command: NetworkCommand, json: bool) -> Result<()> {
    let settings: AccountNetwork = match command {
        NetworkCommand::Show => {
            client
                .json(Method::GET, "/v1/account/network", None)
                .await?
        }
        NetworkCommand::Set { sandbox_to_sandbox } => {
            let on = matches!(sandbox_to_sandbox, OnOff::On);
            client
                .json(
                    Method::PUT,
                    "/v1/account/network",
                    Some(json!({ "sandbox_to_sandbox": on })),
                )
                .await?
        }
    };
    output::show(json, &settings, |s| {
        let state = if s.sandbox_to_sandbox { "on" } else { "off" };
        outln!("account {}: sandbox-to-sandbox {state}", s.account);
    })
}
