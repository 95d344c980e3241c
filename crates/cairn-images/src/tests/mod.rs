//! Behaviour tests of the whole import: fixtures are built in temporary
//! directories with the tar crate; nothing touches the network.

mod archives;
mod devices;
mod directory;
mod fixtures;
mod security;
mod sparse;
