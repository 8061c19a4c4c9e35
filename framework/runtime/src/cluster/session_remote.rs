//! Backend → owning frontend session operations (Pomelo's `sessionRemote`).
//!
//! These are rare (a bind per login, a kick), and the caller wants a clear
//! per-call answer, so each is one unary `SessionOp` call with a timeout.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{Map, Value};
use tonic::Code;

use super::pool::Pool;
use super::proto::{self, SessionOpKind, cluster_client::ClusterClient};
use super::{BoxFuture, ClusterError, RemoteSessionOps};

/// Default time a session operation may take.
pub const DEFAULT_SESSION_OP_TIMEOUT: Duration = Duration::from_secs(5);

/// [`RemoteSessionOps`] over gRPC.
#[derive(Clone)]
pub struct ClusterSessionOps {
    pool: Arc<Pool>,
    timeout: Duration,
}

impl ClusterSessionOps {
    pub fn new(pool: Arc<Pool>) -> Self {
        Self::with_timeout(pool, DEFAULT_SESSION_OP_TIMEOUT)
    }

    pub fn with_timeout(pool: Arc<Pool>, timeout: Duration) -> Self {
        ClusterSessionOps { pool, timeout }
    }

    async fn call(
        &self,
        frontend_id: &str,
        req: proto::SessionOpRequest,
    ) -> Result<(), ClusterError> {
        let channel = self.pool.channel(frontend_id)?;
        let sid = req.sid;
        let mut client = ClusterClient::new(channel);
        let result = tokio::time::timeout(self.timeout, client.session_op(req)).await;
        match result {
            Err(_) => Err(ClusterError::Timeout {
                server: frontend_id.to_string(),
                millis: self.timeout.as_millis() as u64,
            }),
            Ok(Ok(_)) => Ok(()),
            Ok(Err(status)) => Err(status_to_error(frontend_id, sid, &status)),
        }
    }
}

impl ClusterSessionOps {
    /// Kicks every session bound to `uid` on every frontend of the
    /// cluster, wherever the caller is and without knowing where the user
    /// is (a parked session too: `session/resume.rs`). Returns the
    /// frontends that could not be asked (down, or not answering within the
    /// timeout); the error of each is logged.
    pub async fn kick_uid_everywhere(&self, uid: &str, reason: &str) -> Vec<String> {
        let list = self.pool.servers().snapshot();
        // A frontend without a cluster port (a gate) cannot be asked; it
        // binds no uids either.
        let frontends = list.cluster_frontends();
        let calls = frontends.iter().map(|f| async move {
            let result = self.kick_by_uid(f, uid, reason).await;
            if let Err(e) = &result {
                tracing::warn!(frontend = %f, %uid, error = %e, "kick by uid not delivered to this frontend");
            }
            result.is_err().then(|| f.clone())
        });
        futures_util::future::join_all(calls)
            .await
            .into_iter()
            .flatten()
            .collect()
    }
}

/// Maps a `SessionOp` status to the error a backend handler sees.
fn status_to_error(frontend_id: &str, sid: u64, status: &tonic::Status) -> ClusterError {
    match status.code() {
        Code::NotFound if sid != 0 => ClusterError::NoSuchSession {
            frontend: frontend_id.to_string(),
            sid,
        },
        Code::Unavailable => ClusterError::Unreachable {
            server: frontend_id.to_string(),
            reason: status.message().to_string(),
        },
        _ => ClusterError::Remote {
            server: frontend_id.to_string(),
            reason: status.message().to_string(),
        },
    }
}

fn op(kind: SessionOpKind, sid: u64, uid: &str) -> proto::SessionOpRequest {
    proto::SessionOpRequest {
        kind: kind as i32,
        sid,
        uid: uid.to_string(),
        ..Default::default()
    }
}

impl RemoteSessionOps for ClusterSessionOps {
    fn bind(
        &self,
        frontend_id: &str,
        sid: u64,
        uid: &str,
    ) -> BoxFuture<'_, Result<(), ClusterError>> {
        let (f, req) = (frontend_id.to_string(), op(SessionOpKind::Bind, sid, uid));
        Box::pin(async move { self.call(&f, req).await })
    }

    fn unbind(
        &self,
        frontend_id: &str,
        sid: u64,
        uid: &str,
    ) -> BoxFuture<'_, Result<(), ClusterError>> {
        let (f, req) = (frontend_id.to_string(), op(SessionOpKind::Unbind, sid, uid));
        Box::pin(async move { self.call(&f, req).await })
    }

    fn push_settings(
        &self,
        frontend_id: &str,
        sid: u64,
        settings: Map<String, Value>,
    ) -> BoxFuture<'_, Result<(), ClusterError>> {
        let f = frontend_id.to_string();
        let mut req = op(SessionOpKind::PushSettings, sid, "");
        req.settings_json = serde_json::to_vec(&settings).unwrap_or_default().into();
        Box::pin(async move { self.call(&f, req).await })
    }

    fn kick_by_sid(
        &self,
        frontend_id: &str,
        sid: u64,
        reason: &str,
    ) -> BoxFuture<'_, Result<(), ClusterError>> {
        let f = frontend_id.to_string();
        let mut req = op(SessionOpKind::KickBySid, sid, "");
        req.reason = reason.to_string();
        Box::pin(async move { self.call(&f, req).await })
    }

    fn kick_by_uid(
        &self,
        frontend_id: &str,
        uid: &str,
        reason: &str,
    ) -> BoxFuture<'_, Result<(), ClusterError>> {
        let f = frontend_id.to_string();
        let mut req = op(SessionOpKind::KickByUid, 0, uid);
        req.reason = reason.to_string();
        Box::pin(async move { self.call(&f, req).await })
    }
}
