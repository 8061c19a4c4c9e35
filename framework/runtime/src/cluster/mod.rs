//! Cluster RPC: how frontends and backends talk (gRPC over tonic).
//!
//! The cluster implements the ports the layers below it declare:
//! [`Forwarder`] (the handler pipeline's way to another server type) and
//! [`RemoteSessionOps`] (a backend session's `bind` / `push_settings` /
//! `kick`, back to the frontend that owns the connection), both re-exported
//! here with [`SessionSnapshot`] and [`ClusterError`].
//!
//! The transport (gRPC, `framework/runtime/proto/cluster.proto`):
//!
//! * [`auth`] — the cluster secret on every call, checked by every server.
//! * [`trace_context`] — the request's W3C trace context on unary calls.
//! * [`pool`] — one lazily connected tonic channel per server id (redials).
//! * `mux` — request/response over one long-lived bidi stream per peer.
//! * [`forward`] — [`ClusterForwarder`], the gRPC [`Forwarder`].
//! * [`push`] — [`PushClient`], backend → frontend pushes.
//! * [`session_remote`] — [`ClusterSessionOps`], the gRPC [`RemoteSessionOps`].
//! * [`service`] — the server side, over a [`LocalNode`] (the app implements it).
//! * [`channel`] — [`ChannelService`]: named groups of users a backend pushes to.
//! * [`server`] — [`RpcServer`] (cluster service + the app's typed remotes).
//! * [`rpc`] — [`Rpc`]: user remotes by route key or server id, with timeouts.
//! * [`shard`] — [`ShardKeeper`]: key-owned channels rebuilt on their owner
//!   after a crash or a membership change.
//! * [`session_events`] — frontends tell subscribed backends of session
//!   binds and closes.
//! * [`runtime`] — [`Cluster`] / [`ClusterBuilder`]: all of the above for one app.

/// Largest cluster message (a forwarded body, a push with its uid list).
/// Peers are authenticated ([`auth`]), but a bound keeps one bug from
/// exhausting memory.
pub const MAX_RPC_MESSAGE: usize = 64 << 20;

pub mod auth;
pub mod channel;
pub mod directory;
pub mod forward;
mod mux;
pub mod pool;
pub mod proto;
pub mod push;
pub mod rpc;
pub mod runtime;
pub mod server;
pub mod service;
pub mod session_events;
pub mod session_remote;
pub mod shard;
pub mod tls;
pub mod trace_context;

pub use auth::{ClusterChannel, ClusterKey, KeyCheck};
pub use channel::{Channel, ChannelService};
pub use forward::ClusterForwarder;
pub use pool::Pool;
pub use push::PushClient;
pub use rpc::{Rpc, call_with_timeout};
pub use runtime::{Cluster, ClusterBuilder, ClusterOptions};
pub use server::{RemoteService, RpcServer};
pub use service::{LocalNode, SessionOp, SessionOpError};
pub use session_remote::ClusterSessionOps;
pub use shard::ShardKeeper;

pub use crate::BoxFuture;
pub use crate::discovery::Servers;
pub use crate::error::ClusterError;
pub use crate::handler::Forwarder;
pub use crate::session::{RemoteSessionOps, SessionSnapshot};
