//! `cairnd token create | ls | revoke`: API tokens, straight on the database (cairnd may be
//! running: SQLite serializes the writes). Only a token's SHA-256 is stored; its id
//! (`tok-…`) names it for listing and revoking.

use anyhow::{Context, Result};
use clap::Subcommand;

use cairn_api::new_token;
use cairn_db::{Db, TokenRecord, TokenRole};

#[derive(Subcommand)]
pub enum TokenCommand {
    /// Create a token for an account (created if new); prints the token once.
    #[command(
        after_help = "Examples:\n  cairnd token create --account alice\n  cairnd token create --account ci --expires 30d\n  cairnd token create --account ops --admin      # may import host paths and publish images\n  CAIRN_TOKEN=ck_… cairn --host http://127.0.0.1:7421 ls"
    )]
    Create {
        /// The account the token acts for.
        #[arg(long)]
        account: String,
        /// The token stops working after this long: 90m, 12h, 30d.
        #[arg(long, value_name = "DURATION")]
        expires: Option<String>,
        /// An operator token: like the unix socket, it may import paths on this host and
        /// publish images to every account.
        #[arg(long)]
        admin: bool,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// List tokens (their ids, never the tokens themselves).
    #[command(
        after_help = "Examples:\n  cairnd token ls\n  cairnd token ls --account alice --json"
    )]
    Ls {
        /// Only this account's tokens.
        #[arg(long)]
        account: Option<String>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Revoke a token by its id: every request with it gets 401 from now on.
    #[command(after_help = "Example:\n  cairnd token revoke tok-1a2b3c4d")]
    Revoke {
        /// The token's id (see 'cairnd token ls').
        id: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

/// `cairnd token create | ls | revoke`: straight on the database (cairnd may be running).
pub fn run(db: &Db, command: &TokenCommand) -> Result<()> {
    match command {
        TokenCommand::Create {
            account,
            expires,
            admin,
            json,
        } => {
            cairn_types::validate_name(account).context("invalid account name")?;
            let expires_at = match expires {
                Some(d) => {
                    let secs = cairn_types::parse_duration(d).context("invalid --expires")?;
                    let secs = i64::try_from(secs)
                        .ok()
                        .filter(|s| *s <= 10 * 365 * 86_400)
                        .context("invalid --expires: at most 3650d")?;
                    Some(chrono::Utc::now() + chrono::Duration::seconds(secs))
                }
                None => None,
            };
            let role = if *admin {
                TokenRole::Admin
            } else {
                TokenRole::User
            };
            let (token, hash) = new_token();
            let id = cairn_types::TokenId::generate();
            let record = db.add_token(id.as_str(), account, &hash, role, expires_at)?;
            if *json {
                let mut v = token_json(&record);
                v["token"] = serde_json::Value::String(token);
                println!("{v}");
            } else {
                println!("{token}");
            }
        }
        TokenCommand::Ls { account, json } => {
            let tokens = db.list_tokens(account.as_deref())?;
            if *json {
                let list: Vec<_> = tokens.iter().map(token_json).collect();
                println!("{}", serde_json::Value::Array(list));
            } else {
                let mut table = comfy_table::Table::new();
                table.load_preset(comfy_table::presets::NOTHING);
                table.set_header(["ID", "ACCOUNT", "ROLE", "CREATED", "EXPIRES", "STATE"]);
                let day = |t: chrono::DateTime<chrono::Utc>| t.format("%Y-%m-%d %H:%M").to_string();
                for t in &tokens {
                    table.add_row([
                        t.id.clone(),
                        t.account.clone(),
                        t.role.as_str().to_string(),
                        day(t.created_at),
                        t.expires_at.map(day).unwrap_or_else(|| "never".into()),
                        token_state(t).to_string(),
                    ]);
                }
                println!("{table}");
            }
        }
        TokenCommand::Revoke { id, json } => {
            let record = db.revoke_token(id).map_err(|e| anyhow::anyhow!("{e}"))?;
            if *json {
                println!("{}", token_json(&record));
            } else {
                println!("{}", record.id);
            }
        }
    }
    Ok(())
}

/// `active`, `revoked` or `expired`.
fn token_state(t: &TokenRecord) -> &'static str {
    if t.revoked_at.is_some() {
        "revoked"
    } else if t.expires_at.is_some_and(|e| e <= chrono::Utc::now()) {
        "expired"
    } else {
        "active"
    }
}

fn token_json(t: &TokenRecord) -> serde_json::Value {
    serde_json::json!({
        "id": t.id,
        "account": t.account,
        "role": t.role.as_str(),
        "created_at": t.created_at,
        "expires_at": t.expires_at,
        "revoked_at": t.revoked_at,
        "state": token_state(t),
    })
}
