//! `cairn-agent`: the init of every Cairn sandbox. `cairn-agent init` (or no argument as pid 1)
//! runs as init ([`init`]); `cairn-agent serve` is the agent proper ([`conn`]): it dials cairnd
//! at [`cairn_agent::proto::SOCKET_PATH`] (or `$CAIRN_AGENT_SOCKET`) and runs what it asks.
//! `cairn-agent --version` prints its version. See docs/agent.md.

mod conn;
mod init;
mod link;
mod procs;
mod ps;
mod sys;

fn main() {
    let arg = std::env::args().nth(1);
    match arg.as_deref() {
        Some("init") => init::run(),
        Some("serve") => conn::serve(),
        Some("--version") => println!("cairn-agent {}", cairn_agent::proto::VERSION),
        None if std::process::id() == 1 => init::run(),
        _ => {
            eprintln!("usage: cairn-agent init | serve | --version");
            std::process::exit(2);
        }
    }
}
