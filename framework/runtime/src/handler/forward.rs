//! The pipeline's port for routes of another server type: a frontend hands
//! such a request to a [`Forwarder`] (the cluster transport implements it)
//! and gets the backend's response body back.

use bytes::Bytes;

use crate::BoxFuture;
use crate::error::ClusterError;
use crate::session::SessionSnapshot;

/// Frontend → backend request forwarding (implemented by the cluster
/// transport; the connector only sees this trait).
pub trait Forwarder: Send + Sync + 'static {
    /// Runs the request `route` on a server of `server_type` chosen by that
    /// type's router and returns the response body (JSON, §5.5 error
    /// mapping already applied by the backend).
    fn forward(
        &self,
        server_type: &str,
        route: &str,
        session: SessionSnapshot,
        body: Bytes,
    ) -> BoxFuture<'_, Result<Bytes, ClusterError>>;

    /// Runs the notify `route` there: a notify on the backend too (§5.4),
    /// so no response is built, sent back or dropped. Resolves once the
    /// notify is on its way (an error: it could not be sent).
    fn notify(
        &self,
        server_type: &str,
        route: &str,
        session: SessionSnapshot,
        body: Bytes,
    ) -> BoxFuture<'_, Result<(), ClusterError>>;
}
