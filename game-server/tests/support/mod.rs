//! The framework's multi-process test kit, bound to this crate's binary.

#![allow(dead_code, unused_imports)]

pub mod chat;

use std::process::Command;

pub use shaddock_testkit::{
    ENV, ProcCluster as Cluster, START_TIMEOUT, Topo, free_ports, server, write_servers_json,
};

/// The server binary under test.
pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_game-server")
}

/// A command for one server of the app in `dir` (clean environment).
pub fn command(dir: &std::path::Path, server_id: &str) -> Command {
    shaddock_testkit::command(bin().as_ref(), dir, server_id)
}

/// A running chat cluster of this crate's `game-server` processes.
pub type ProcCluster = Cluster;

/// Starts `topo` with this crate's binary.
pub async fn start(topo: Topo) -> ProcCluster {
    ProcCluster::start(bin(), topo).await
}
