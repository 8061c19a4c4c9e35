//! Frontend → backend request forwarding over one stream per backend.
//!
//! The connector calls [`Forwarder::forward`] for every route whose server
//! type is not its own. [`ClusterForwarder`] picks the backend with that
//! type's router (Pomelo default: crc32 of the uid), sends the request with
//! its session snapshot on the backend's long-lived `Forward` stream and
//! waits for the response, at most the configured timeout.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tonic::codegen::tokio_stream::wrappers::ReceiverStream;
use tracing::Instrument;

use super::mux::{Mux, OpenFn, Tagged};
use super::pool::Pool;
use super::proto::{self, cluster_client::ClusterClient};
use super::{BoxFuture, ClusterError, Forwarder, SessionSnapshot};
use crate::router::{RouteContext, Routers};

/// Default time a forwarded request may take, end to end.
pub const DEFAULT_FORWARD_TIMEOUT: Duration = Duration::from_secs(5);
/// Default bound of each backend's send queue.
pub const DEFAULT_QUEUE: usize = 4096;

impl Tagged for proto::ForwardRequest {
    fn id(&self) -> u64 {
        self.id
    }
    fn set_id(&mut self, id: u64) {
        self.id = id;
    }
}

impl Tagged for proto::ForwardResponse {
    fn id(&self) -> u64 {
        self.id
    }
    fn set_id(&mut self, id: u64) {
        self.id = id;
    }
}

impl From<&SessionSnapshot> for proto::SessionSnapshot {
    fn from(s: &SessionSnapshot) -> Self {
        proto::SessionSnapshot {
            sid: s.sid,
            frontend_id: s.frontend_id.clone(),
            uid: s.uid.clone(),
            settings_json: if s.settings.is_empty() {
                Bytes::new()
            } else {
                serde_json::to_vec(&s.settings)
                    .map(Bytes::from)
                    .unwrap_or_default()
            },
        }
    }
}

impl TryFrom<proto::SessionSnapshot> for SessionSnapshot {
    type Error = String;
    fn try_from(s: proto::SessionSnapshot) -> Result<Self, String> {
        let settings = if s.settings_json.is_empty() {
            serde_json::Map::new()
        } else {
            serde_json::from_slice(&s.settings_json)
                .map_err(|e| format!("session settings are not a JSON object: {e}"))?
        };
        Ok(SessionSnapshot {
            sid: s.sid,
            frontend_id: s.frontend_id,
            uid: s.uid,
            settings,
        })
    }
}

/// The gRPC [`Forwarder`]: router + one stream per backend server.
pub struct ClusterForwarder {
    routers: Arc<Routers>,
    mux: Mux<proto::ForwardRequest, proto::ForwardResponse>,
    timeout: Duration,
}

impl ClusterForwarder {
    pub fn new(pool: Arc<Pool>, routers: Arc<Routers>) -> Self {
        Self::with_options(pool, routers, DEFAULT_FORWARD_TIMEOUT, DEFAULT_QUEUE)
    }

    /// `timeout`: per request, end to end; `queue`: bound of each backend's
    /// send queue.
    pub fn with_options(
        pool: Arc<Pool>,
        routers: Arc<Routers>,
        timeout: Duration,
        queue: usize,
    ) -> Self {
        let open: OpenFn<proto::ForwardRequest, proto::ForwardResponse> =
            Arc::new(|channel, requests: ReceiverStream<proto::ForwardRequest>| {
                Box::pin(async move {
                    let mut client = ClusterClient::new(channel)
                        .max_decoding_message_size(super::MAX_RPC_MESSAGE)
                        .max_encoding_message_size(super::MAX_RPC_MESSAGE);
                    client.forward(requests).await.map(|r| r.into_inner())
                })
            });
        ClusterForwarder {
            routers,
            mux: Mux::new("forward", pool, queue, open),
            timeout,
        }
    }

    /// Sends a request to one backend by id (bypasses the router).
    pub async fn forward_to(
        &self,
        server_id: &str,
        route: &str,
        session: &SessionSnapshot,
        body: Bytes,
        is_request: bool,
    ) -> Result<Option<Bytes>, ClusterError> {
        let req = proto::ForwardRequest {
            id: 0,
            route: route.to_string(),
            body,
            session: Some(session.into()),
            is_request,
            // The request's trace continues on the backend.
            traceparent: crate::trace::current()
                .map(|t| t.traceparent())
                .unwrap_or_default(),
        };
        let started = std::time::Instant::now();
        if !is_request {
            // The backend answers no notify (see `cluster::service`).
            let sent = self.mux.send(server_id, req, self.timeout).await;
            crate::telemetry::m()
                .calls("forward", server_id)
                .record(started, sent.is_ok());
            sent?;
            return Ok(None);
        }
        let resp = self.mux.call(server_id, req, self.timeout).await;
        crate::telemetry::m()
            .calls("forward", server_id)
            .record(started, resp.as_ref().is_ok_and(|r| r.error.is_empty()));
        let resp = resp?;
        if !resp.error.is_empty() {
            return Err(ClusterError::Remote {
                server: server_id.to_string(),
                reason: resp.error,
            });
        }
        Ok(resp.has_body.then_some(resp.body))
    }

    /// Picks the backend for a forwarded request with the type's router.
    pub fn pick(
        &self,
        server_type: &str,
        route: &str,
        session: &SessionSnapshot,
    ) -> Result<String, ClusterError> {
        let ctx = RouteContext {
            server_type,
            key: session.uid.as_deref().unwrap_or(""),
            session: Some(session),
            route: Some(route),
        };
        self.routers.pick(self.mux.pool().servers(), &ctx)
    }
}

impl Forwarder for ClusterForwarder {
    /// An empty body means the backend sent no response (e.g. a notify).
    fn forward(
        &self,
        server_type: &str,
        route: &str,
        session: SessionSnapshot,
        body: Bytes,
    ) -> BoxFuture<'_, Result<Bytes, ClusterError>> {
        let picked = self.pick(server_type, route, &session);
        let route = route.to_string();
        Box::pin(async move {
            let server = picked?;
            let span = tracing::debug_span!("forward", server = %server, sid = session.sid, route = %route);
            self.forward_to(&server, &route, &session, body, true)
                .instrument(span)
                .await
                .map(Option::unwrap_or_default)
        })
    }

    /// Sent without waiting for the backend: it answers no notify.
    fn notify(
        &self,
        server_type: &str,
        route: &str,
        session: SessionSnapshot,
        body: Bytes,
    ) -> BoxFuture<'_, Result<(), ClusterError>> {
        let picked = self.pick(server_type, route, &session);
        let route = route.to_string();
        Box::pin(async move {
            self.forward_to(&picked?, &route, &session, body, false)
                .await
                .map(drop)
        })
    }
}
