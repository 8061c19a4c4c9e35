//! User remotes: typed tonic services between servers.
//!
//! An app defines its remotes in `proto/*.proto` (compiled with
//! `shaddock-build`), serves them per server type with
//! [`AppBuilder::remote_with`](crate::app::AppBuilder::remote_with), and
//! calls them in one line through the caller `shaddock-build` generates:
//!
//! ```text
//! let users = proto::rpc::ChatRemote::by_key(&app, &rid).add(req).await?.users;
//! ```
//!
//! The generated caller is built on [`Rpc`]: pick a server by route key
//! (the type's router) or by id, get the pooled channel, make the call
//! inside [`Rpc::call`] for a timeout and a clear error. Use `Rpc` directly
//! for what the generator does not cover (streaming methods).

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tonic::Code;

use super::auth::ClusterChannel;
use super::pool::Pool;
use super::{ClusterError, SessionSnapshot};
use crate::router::{RouteContext, Routers};

/// Default time a user remote call may take.
pub const DEFAULT_RPC_TIMEOUT: Duration = Duration::from_secs(5);

/// Picks servers and hands out pooled channels for user remotes.
#[derive(Clone)]
pub struct Rpc {
    pool: Arc<Pool>,
    routers: Arc<Routers>,
    timeout: Duration,
}

impl Rpc {
    pub fn new(pool: Arc<Pool>, routers: Arc<Routers>) -> Self {
        Self::with_timeout(pool, routers, DEFAULT_RPC_TIMEOUT)
    }

    pub fn with_timeout(pool: Arc<Pool>, routers: Arc<Routers>, timeout: Duration) -> Self {
        Rpc {
            pool,
            routers,
            timeout,
        }
    }

    /// The timeout [`Rpc::call`] applies.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// Picks a server of `server_type` for `key` with the type's router.
    pub fn pick(&self, server_type: &str, key: &str) -> Result<String, ClusterError> {
        let ctx = RouteContext {
            server_type,
            key,
            session: None,
            route: None,
        };
        self.routers.pick(self.pool.servers(), &ctx)
    }

    /// Picks a server for a session (Pomelo's `routeParam = session`): the
    /// router sees the session and its uid as key.
    pub fn pick_for_session(
        &self,
        server_type: &str,
        session: &SessionSnapshot,
    ) -> Result<String, ClusterError> {
        let ctx = RouteContext {
            server_type,
            key: session.uid.as_deref().unwrap_or(""),
            session: Some(session),
            route: None,
        };
        self.routers.pick(self.pool.servers(), &ctx)
    }

    /// `(server id, channel)` of the server the router picks for `key`.
    pub fn channel_by_key(
        &self,
        server_type: &str,
        key: &str,
    ) -> Result<(String, ClusterChannel), ClusterError> {
        let server = self.pick(server_type, key)?;
        let channel = self.pool.channel(&server)?;
        Ok((server, channel))
    }

    /// The channel of one server (bypasses the router).
    pub fn channel_by_id(&self, server_id: &str) -> Result<ClusterChannel, ClusterError> {
        self.pool.channel(server_id)
    }

    /// Runs a tonic call with this `Rpc`'s timeout.
    pub async fn call<T>(
        &self,
        server: &str,
        fut: impl Future<Output = Result<tonic::Response<T>, tonic::Status>>,
    ) -> Result<T, ClusterError> {
        call_with_timeout(server, self.timeout, fut).await
    }
}

/// Runs a tonic call with a timeout, mapping an elapsed timeout to
/// [`ClusterError::Timeout`] and a status to a [`ClusterError`] naming the
/// server.
pub async fn call_with_timeout<T>(
    server: &str,
    timeout: Duration,
    fut: impl Future<Output = Result<tonic::Response<T>, tonic::Status>>,
) -> Result<T, ClusterError> {
    let started = std::time::Instant::now();
    let result = tokio::time::timeout(timeout, fut).await;
    crate::telemetry::m()
        .calls("remote", server)
        .record(started, matches!(result, Ok(Ok(_))));
    match result {
        Err(_) => Err(ClusterError::Timeout {
            server: server.to_string(),
            millis: timeout.as_millis() as u64,
        }),
        Ok(Ok(resp)) => Ok(resp.into_inner()),
        Ok(Err(status)) => Err(status_error(server, &status)),
    }
}

/// A [`ClusterError`] for a failed tonic call.
pub fn status_error(server: &str, status: &tonic::Status) -> ClusterError {
    match status.code() {
        Code::Unavailable => ClusterError::Unreachable {
            server: server.to_string(),
            reason: status.message().to_string(),
        },
        Code::DeadlineExceeded => ClusterError::Timeout {
            server: server.to_string(),
            millis: 0,
        },
        code => ClusterError::Remote {
            server: server.to_string(),
            reason: format!("{code:?}: {}", status.message()),
        },
    }
}
