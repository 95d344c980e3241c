//! `cairn-agent`: the init of every Cairn sandbox. `cairn-agent init` (or no argument as pid 1)
//! runs as init ([`init`]); `cairn-agent serve` is the agent proper ([`conn`]): it dials cairnd
//! at [`cairn_agent::proto::SOCKET_PATH`] (or `$CAIRN_AGENT_SOCKET`) and runs what it asks.
//! `cairn-agent --version` prints its version. See docs/agent.md.

mod conn;
mod files;
mod identity;
mod init;
mod link;
mod procs;
mod ps;
mod secrets;
mod sys;
mod wipe;

/// Every freed block is zeroed: secrets do not linger in the agent's memory (see `wipe`).
#[global_allocator]
static ALLOC: wipe::Wiping = wipe::Wiping;

fn main() {
    let arg = std::env::args().nth(1);
    match arg.as_deref() {
        // Only as pid 1: init ends by signalling every process it can reach (kill -1), which
        // outside a sandbox's own pid namespace would be every process of the host's user.
        Some("init") if std::process::id() == 1 => init::run(),
        Some("init") => {
            eprintln!(
                "cairn-agent: init runs only as a sandbox's pid 1 (this is pid {})",
                std::process::id()
            );
            std::process::exit(2);
        }
        Some("serve") => conn::serve(),
        Some("--version") => println!("cairn-agent {}", cairn_agent::proto::VERSION),
        None if std::process::id() == 1 => init::run(),
        _ => {
            eprintln!("usage: cairn-agent init | serve | --version");
            std::process::exit(2);
        }
    }
}
