//! The session as another server sees it: a [`SessionSnapshot`] (Pomelo's
//! `session.export()`) travels with every forwarded request, and a backend
//! changes the real session through [`RemoteSessionOps`] (Pomelo's
//! `sessionRemote`), implemented by the cluster transport.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::BoxFuture;
use crate::error::ClusterError;

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
