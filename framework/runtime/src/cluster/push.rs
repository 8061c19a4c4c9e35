//! Backend → frontend pushes over one stream per frontend.
//!
//! A channel push groups receivers by frontend and sends **one** message per
//! frontend, carrying the uids and the body serialized once (shared
//! `Bytes`). The frontend encodes the client packet once and queues the same
//! bytes to every session. Pushes on one stream are applied in order, so two
//! pushes from a backend reach a client in the order they were sent.
//!
//! Every push is acknowledged with the uids that had no session, so callers
//! can await delivery to the frontend (with a timeout) and log failures.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tonic::codegen::tokio_stream::wrappers::ReceiverStream;

use super::ClusterError;
use super::mux::{Mux, OpenFn, Tagged};
use super::pool::Pool;
use super::proto::{self, cluster_client::ClusterClient};

/// Default time a push may take to be acknowledged by the frontend.
pub const DEFAULT_PUSH_TIMEOUT: Duration = Duration::from_secs(5);

impl Tagged for proto::PushRequest {
    fn id(&self) -> u64 {
        self.id
    }
    fn set_id(&mut self, id: u64) {
        self.id = id;
    }
}

impl Tagged for proto::PushAck {
    fn id(&self) -> u64 {
        self.id
    }
    fn set_id(&mut self, id: u64) {
        self.id = id;
    }
}

/// Push client: one stream per frontend server.
pub struct PushClient {
    mux: Mux<proto::PushRequest, proto::PushAck>,
    timeout: Duration,
}

impl PushClient {
    pub fn new(pool: Arc<Pool>) -> Self {
        Self::with_options(pool, DEFAULT_PUSH_TIMEOUT, super::forward::DEFAULT_QUEUE)
    }

    pub fn with_options(pool: Arc<Pool>, timeout: Duration, queue: usize) -> Self {
        let open: OpenFn<proto::PushRequest, proto::PushAck> =
            Arc::new(|channel, requests: ReceiverStream<proto::PushRequest>| {
                Box::pin(async move {
                    let mut client = ClusterClient::new(channel)
                        .max_decoding_message_size(super::MAX_RPC_MESSAGE)
                        .max_encoding_message_size(super::MAX_RPC_MESSAGE);
                    client.push(requests).await.map(|r| r.into_inner())
                })
            });
        PushClient {
            mux: Mux::new("push", pool, queue, open),
            timeout,
        }
    }

    /// The pool (and through it the server list) this client uses.
    pub fn pool(&self) -> &Arc<Pool> {
        self.mux.pool()
    }

    /// Pushes `route`/`body` to the sessions of `uids` on `frontend_id`.
    /// Returns the uids that have no session there.
    pub async fn push_to_uids(
        &self,
        frontend_id: &str,
        route: &str,
        body: Bytes,
        uids: Vec<String>,
    ) -> Result<Vec<String>, ClusterError> {
        let req = proto::PushRequest {
            id: 0,
            route: route.to_string(),
            body,
            uids,
            broadcast: false,
            binded_only: false,
        };
        let started = std::time::Instant::now();
        let ack = self.mux.call(frontend_id, req, self.timeout).await;
        crate::telemetry::m()
            .calls("push", frontend_id)
            .record(started, ack.is_ok());
        Ok(ack?.failed_uids)
    }

    /// Pushes to every session (or every bound session) of `frontend_id`.
    pub async fn broadcast(
        &self,
        frontend_id: &str,
        route: &str,
        body: Bytes,
        binded_only: bool,
    ) -> Result<(), ClusterError> {
        let req = proto::PushRequest {
            id: 0,
            route: route.to_string(),
            body,
            uids: Vec::new(),
            broadcast: true,
            binded_only,
        };
        let started = std::time::Instant::now();
        let ack = self.mux.call(frontend_id, req, self.timeout).await;
        crate::telemetry::m()
            .calls("broadcast", frontend_id)
            .record(started, ack.is_ok());
        ack.map(|_| ())
    }
}
