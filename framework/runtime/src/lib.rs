//! Shaddock: a Pomelo-style distributed game server framework — the runtime
//! every server process of an app links.
//!
//! # Layout
//!
//! Modules are layers. Each one uses only the layers listed above it, never
//! one below (`tests/layering.rs` checks this on every test run), so a
//! reader can stop at any line and understand everything above it:
//!
//! | layer | module | what it holds |
//! |---|---|---|
//! | wire | [`protocol`] | the Pomelo codec (crate `shaddock-protocol`): packages, messages, handshake, route dictionary, the dispatch [`hash`]. Pure: bytes in, values out |
//! | base | [`config`], [`error`], [`logging`] | `servers.json` and friends, the cluster error type, log files |
//! | membership | [`discovery`] | the live server list ([`discovery::Servers`]) and the [`discovery::Discovery`] trait with its backends: a static list, the master's stream |
//! | connection state | [`session`] | one client connection's session: uid, settings, outbound queue; the frontend's [`session::SessionService`] |
//! | client I/O | [`connector`] | accepts WebSockets and runs each connection's state machine (handshake, heartbeats, kick); hands messages to a [`connector::Frontend`] |
//! | dispatch | [`handler`] | route parsing, typed `async fn` handlers, filters and the one [`handler::Pipeline`] (before filters → handler → after filters → error mapping, or forwarding) |
//! | placement | [`router`] | which server of a type handles a key or a session |
//! | cluster | [`cluster`] | gRPC between servers: forwarding, pushes, [`channel`]s, session operations, typed remotes |
//! | app | [`app`] | [`App`]: one server process, wiring every layer above |
//! | process | [`launch`] | an app's `main`: arguments, config, logging, discovery, shutdown |
//!
//! **Where to start reading:** follow one client request —
//! `connector::acceptor` (accept) → `connector::agent` (decode, state
//! machine) → `app` (implements `connector::Frontend`) → `handler::pipeline`
//! (filters, your handler) → `cluster::forward` when the route belongs to
//! another server type → back through the session's outbound queue.
//!
//! The Pomelo wire protocol that the code cites as `§N.M` is described in
//! `docs/protocol.md`.

use std::future::Future;
use std::pin::Pin;

pub use shaddock_protocol as protocol;
pub use shaddock_protocol::hash;

pub mod config;
pub mod error;
pub mod logging;

pub mod discovery;

pub mod session;

pub mod connector;

pub mod handler;

pub mod router;

pub mod cluster;
pub use cluster::channel;

pub mod app;

pub mod launch;

pub use app::{App, AppBuilder};
pub use error::ClusterError;
pub use handler::HandlerError;
pub use session::Session;

/// The gRPC stack apps' remotes are generated for, re-exported so an app
/// does not pin its own versions (the generated code names these paths).
pub use prost;
pub use tonic;
pub use tonic_prost;

/// A boxed, sendable future (keeps the layers' traits object-safe without a
/// macro crate).
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;
