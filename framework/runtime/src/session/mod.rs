//! Sessions: one per client connection on a frontend (§6.3).
//!
//! * `live` — the frontend's own record of a connection ([`LiveSession`]):
//!   sid, uid, settings, closed listeners and the bounded outbound queue the
//!   connection's agent drains.
//! * `wire` — a plain-TCP client socket that the push fan-out writes to
//!   directly while nothing waits on it (no agent wake-up per push).
//! * `service` — [`SessionService`]: the frontend's index of live sessions
//!   (by sid, by uid), kicks and pushes that encode a package once and share
//!   its `Bytes` across every receiver.
//! * `remote` — the session as other servers see it: a [`SessionSnapshot`]
//!   and the [`RemoteSessionOps`] port the cluster implements.
//! * `handle` — [`Session`], what handlers get: a live session on a
//!   frontend, or a snapshot plus [`RemoteSessionOps`] on a backend.
//!   Handlers are written once and run on either side.
//! * `resume` — [`Resume`]: sessions of dropped connections kept for a
//!   window, given back to a client that reconnects with its token.

mod handle;
pub(crate) mod live;
mod remote;
mod resume;
mod service;
mod tracker;
pub(crate) mod wire;

pub use handle::Session;
pub use live::{ClosedListener, LiveSession, PushError};
pub use remote::{RemoteSessionOps, SessionSnapshot};
pub(crate) use resume::{Parked, ResumeConn};
pub use resume::{Resume, TOKEN_ROUTE, TokenClaims, TokenState};
pub use service::{BindHook, SessionService, UidRegistry};
pub use tracker::{Tracker, TrackerGuard};

use crate::error::ClusterError;

/// Why a session operation failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum SessionError {
    #[error(
        "session {sid} is already bound to uid `{bound}`; unbind it before binding `{requested}`"
    )]
    AlreadyBound {
        sid: u64,
        bound: String,
        requested: String,
    },
    #[error("session {sid} is not bound to uid `{uid}`")]
    NotBound { sid: u64, uid: String },
    #[error("session {0} does not exist (the client has disconnected)")]
    NoSuchSession(u64),
    #[error("`{0}` is only available on the frontend that holds the connection")]
    FrontendOnly(&'static str),
    /// The uid directory refused the bind (another frontend holds the uid
    /// and `duplicate-login` is `refuse`), or could not be asked.
    #[error("{0}")]
    Duplicate(String),
    #[error("cluster call failed: {0}")]
    Cluster(#[from] ClusterError),
}

/// Recovers the data of a poisoned std mutex: every critical section in this
/// module is a few field assignments that cannot leave data half-written, so
/// a panic elsewhere must not take the session layer down with it.
pub(crate) fn lock<T>(m: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}
