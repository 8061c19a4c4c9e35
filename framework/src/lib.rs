//! Shaddock: a Pomelo-style distributed game server framework.
//!
//! Read the modules in the order a client request travels through them:
//! [`protocol`] (bytes ↔ packages ↔ messages) → `connector` (WebSocket
//! acceptor and per-connection agent) → `session` → `handler` (routing to
//! typed `async fn`s, filters) → `cluster` (forwarding to backend servers
//! over gRPC) → `channel` (pushes back to clients).

pub mod app;
pub mod channel;
pub mod cli;
pub mod client;
pub mod cluster;
pub mod config;
pub mod connector;
pub mod handler;
pub mod hash;
pub mod launch;
pub mod logging;
pub mod master;
pub mod protocol;
pub mod router;
pub mod session;
pub mod testkit;
