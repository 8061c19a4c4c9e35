//! The error of a call to another server.
//!
//! It lives at the bottom of the crate because several layers meet it: a
//! session's remote operations (`session`), request forwarding (`handler`'s
//! forwarder port), routers and the cluster transport that produces it.

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
