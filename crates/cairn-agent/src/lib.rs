//! The agent inside every Cairn sandbox, and the protocol cairnd speaks with it.
//!
//! The library is the protocol only ([`proto`]), shared by the agent's binary
//! (`src/bin/cairn-agent`: the sandbox's init, which spawns and reaps its processes) and by
//! cairnd's engine. See docs/agent.md.

pub mod proto;
