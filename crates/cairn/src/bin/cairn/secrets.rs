//! `--secret NAME=VALUE` and `--secret NAME` (the value of `$NAME` in this environment, so
//! that it stays out of the shell's history and `ps`).

use anyhow::Result;

use cairn_types::Secrets;

use crate::client::CliError;

/// The secrets `--secret` flags give.
pub fn from_args(args: &[String]) -> Result<Secrets> {
    let mut out = Secrets::default();
    for arg in args {
        let (name, value) = match arg.split_once('=') {
            Some((name, value)) => (name.to_string(), value.to_string()),
            None => {
                let value = std::env::var_os(arg).ok_or_else(|| {
                    CliError::invalid(format!(
                        "--secret {arg}: ${arg} is not set in your environment (export it, or give --secret {arg}=VALUE)"
                    ))
                })?;
                let value = value.into_string().map_err(|_| {
                    CliError::invalid(format!("--secret {arg}: ${arg} is not valid UTF-8"))
                })?;
                (arg.clone(), value)
            }
        };
        cairn_types::validate_secret_name(&name).map_err(CliError::invalid)?;
        out.0.insert(name, value);
    }
    Ok(out)
}
