//! Isolation a tenant can stake their data on: each finding of the security review (issue 14)
//! as an attack a hostile tenant or sandboxed process makes, and what must happen instead.
//! Every case also checks that nothing else was touched: the other tenant's files and
//! sandboxes are intact and the daemon still answers. docs/security.md maps each claim of the
//! threat model to the test here that proves it.
//!
//! One module per area, in `tests/security/`.

#![allow(clippy::unwrap_used)]

#[path = "security/connections.rs"]
mod connections;
#[path = "security/deaths.rs"]
mod deaths;
#[path = "security/devices.rs"]
mod devices;
#[path = "security/disk.rs"]
mod disk;
#[path = "security/errors.rs"]
mod errors;
#[path = "security/imports.rs"]
mod imports;
#[path = "security/network.rs"]
mod network;
#[path = "security/requests.rs"]
mod requests;
#[path = "security/tenancy.rs"]
mod tenancy;
#[path = "security/tokens.rs"]
mod tokens;

use cairn_test_support::{Daemon, Via};

/// A daemon listening on TCP too, with image `base` imported by the operator.
pub fn tcp_daemon(args: &[&str]) -> Daemon {
    let d = Daemon::start_opts(
        env!("CARGO_BIN_EXE_cairnd"),
        env!("CARGO_BIN_EXE_cairn"),
        true,
        args,
    );
    d.import_base();
    d
}

/// Asserts the daemon still answers on its unix socket.
pub fn assert_healthy(d: &Daemon) {
    let (code, body) = d.http(Via::Unix, "GET", "/v1/sandboxes", None, None);
    assert_eq!(code, 200, "cairnd should still answer: {body}");
}
