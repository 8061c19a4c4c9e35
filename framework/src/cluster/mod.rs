//! Cluster RPC: how frontends and backends talk (gRPC over tonic).
//!
//! This file starts with the *contract* between the client-facing side
//! (`connector`, `session`, `handler`) and the cluster transport, so both can
//! be built and tested independently:
//!
//! * [`Forwarder`] — a frontend hands a request for another server type to
//!   the cluster and gets the JSON response body back.
//! * [`RemoteSessionOps`] — a backend session's `bind` / `push_settings` /
//!   `kick` go back to the frontend that owns the connection.
//! * [`SessionSnapshot`] — what travels with a forwarded request (Pomelo's
//!   `session.export()`).
//!
//! The transport below it (gRPC, `framework/proto/cluster.proto`):
//!
//! * [`servers`] — the live server list ([`Servers`]), replaceable at run time.
//! * [`pool`] — one lazily connected tonic channel per server id (redials).
//! * `mux` — request/response over one long-lived bidi stream per peer.
//! * [`forward`] — [`ClusterForwarder`], the gRPC [`Forwarder`].
//! * [`push`] — [`PushClient`], backend → frontend pushes.
//! * [`session_remote`] — [`ClusterSessionOps`], the gRPC [`RemoteSessionOps`].
//! * [`service`] / [`node`] — the server side, over a [`LocalNode`] (the app).
//! * [`server`] — [`RpcServer`] (cluster service + user [`Remotes`]).
//! * [`rpc`] — [`Rpc`]: user remotes by route key or server id, with timeouts.
//! * [`runtime`] — [`Cluster`] / [`ClusterBuilder`]: all of the above for one app.

use std::future::Future;
use std::pin::Pin;

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// A boxed, sendable future (keeps the traits object-safe without a macro crate).
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// A frontend session as seen by a backend: Pomelo's `session.export()`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SessionSnapshot {
    /// Session id, unique within its frontend.
    pub sid: u64,
    /// Id of the frontend server that holds the connection.
    pub frontend_id: String,
    /// Bound user id, if any.
    pub uid: Option<String>,
    /// Settings pushed to the frontend session (JSON values).
    pub settings: Map<String, Value>,
}

/// Why a cluster call failed. Every variant names the server or type involved
/// so the log line tells the operator what to look at.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ClusterError {
    #[error("no server of type `{0}` is known (check config/servers.json)")]
    NoServerOfType(String),
    #[error("unknown server id `{0}`")]
    UnknownServer(String),
    #[error("server `{0}` has no `port`, so it hosts no RPC server")]
    NoRpcPort(String),
    #[error("router for type `{server_type}` failed: {reason}")]
    Route { server_type: String, reason: String },
    #[error("server `{server}` is unreachable: {reason}")]
    Unreachable { server: String, reason: String },
    #[error("call to `{server}` timed out after {millis} ms")]
    Timeout { server: String, millis: u64 },
    #[error("call to `{server}` failed: {reason}")]
    Remote { server: String, reason: String },
    #[error("session {sid} is not on frontend `{frontend}`")]
    NoSuchSession { frontend: String, sid: u64 },
}

/// Frontend → backend request forwarding (implemented by the cluster
/// transport; the connector only sees this trait).
pub trait Forwarder: Send + Sync + 'static {
    /// Runs `route` on a server of `server_type` chosen by that type's router
    /// and returns the response body (JSON, §5.5 error mapping already
    /// applied by the backend). For a notify the returned body is ignored.
    fn forward(
        &self,
        server_type: &str,
        route: &str,
        session: SessionSnapshot,
        body: Bytes,
    ) -> BoxFuture<'_, Result<Bytes, ClusterError>>;
}

/// Backend → owning frontend session operations (Pomelo's `sessionRemote`).
pub trait RemoteSessionOps: Send + Sync + 'static {
    fn bind(
        &self,
        frontend_id: &str,
        sid: u64,
        uid: &str,
    ) -> BoxFuture<'_, Result<(), ClusterError>>;
    fn unbind(
        &self,
        frontend_id: &str,
        sid: u64,
        uid: &str,
    ) -> BoxFuture<'_, Result<(), ClusterError>>;
    /// Copies `settings` into the frontend session (Pomelo's `session.push`).
    fn push_settings(
        &self,
        frontend_id: &str,
        sid: u64,
        settings: Map<String, Value>,
    ) -> BoxFuture<'_, Result<(), ClusterError>>;
    fn kick_by_sid(
        &self,
        frontend_id: &str,
        sid: u64,
        reason: &str,
    ) -> BoxFuture<'_, Result<(), ClusterError>>;
    fn kick_by_uid(
        &self,
        frontend_id: &str,
        uid: &str,
        reason: &str,
    ) -> BoxFuture<'_, Result<(), ClusterError>>;
}

/// Largest cluster message (a forwarded body, a push with its uid list).
/// Peers are trusted, but a bound keeps one bug from exhausting memory.
pub const MAX_RPC_MESSAGE: usize = 64 << 20;

pub mod forward;
mod mux;
pub mod node;
pub mod pool;
pub mod proto;
pub mod push;
pub mod rpc;
pub mod runtime;
pub mod server;
pub mod servers;
pub mod service;
pub mod session_remote;

pub use forward::ClusterForwarder;
pub use pool::Pool;
pub use push::PushClient;
pub use rpc::{Rpc, call_with_timeout};
pub use runtime::{Cluster, ClusterBuilder, ClusterOptions};
pub use server::{RemoteService, Remotes, RpcServer};
pub use servers::Servers;
pub use service::{LocalNode, SessionOp, SessionOpError};
pub use session_remote::ClusterSessionOps;
