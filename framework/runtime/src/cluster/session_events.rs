//! Session bind and close events for backends (Pitaya #382).
//!
//! A backend sees a session only through the requests forwarded to it, so
//! it cannot learn that a user logged in or went away (Pomelo's backends
//! rely on the app's own remote calls from the frontend, as chatofpomelo's
//! leave). Here a backend type may subscribe: every frontend then tells
//! every server of that type, after the fact, when one of its sessions is
//! bound to a uid and when a bound session closes (a session parked for
//! resume closes only when its window ends).
//!
//! Events of one frontend go out in order from one task, through a
//! bounded queue ([`QUEUE`]): a frontend flooded with logins drops events
//! (logged) rather than grow memory. Delivery is best effort: a backend
//! that is down misses them, each call is bounded by [`CALL_TIMEOUT`].

use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::future::join_all;
use tokio::sync::mpsc;

use super::pool::Pool;
use super::proto::{self, SessionEventKind, cluster_client::ClusterClient};

/// Events waiting to be sent, per frontend.
pub const QUEUE: usize = 4096;
/// How long one backend may take to take one event.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(2);

/// What happened to a session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventKind {
    /// The session was bound to the uid.
    Bound,
    /// The bound session ended.
    Closed,
}

/// One session event, as a subscribed backend receives it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionEvent {
    pub kind: EventKind,
    pub uid: String,
    pub frontend_id: String,
    pub sid: u64,
    /// Why a closed session ended (empty for `Bound`).
    pub reason: String,
}

impl SessionEvent {
    pub(crate) fn from_proto(req: proto::SessionEventRequest) -> Option<Self> {
        let kind = match SessionEventKind::try_from(req.kind).ok()? {
            SessionEventKind::Bound => EventKind::Bound,
            SessionEventKind::Closed => EventKind::Closed,
            SessionEventKind::Unspecified => return None,
        };
        Some(SessionEvent {
            kind,
            uid: req.uid,
            frontend_id: req.frontend_id,
            sid: req.sid,
            reason: req.reason,
        })
    }

    fn to_proto(&self) -> proto::SessionEventRequest {
        let kind = match self.kind {
            EventKind::Bound => SessionEventKind::Bound,
            EventKind::Closed => SessionEventKind::Closed,
        };
        proto::SessionEventRequest {
            kind: kind as i32,
            uid: self.uid.clone(),
            frontend_id: self.frontend_id.clone(),
            sid: self.sid,
            reason: self.reason.clone(),
        }
    }
}

/// A frontend's sender of session events to the subscribed server types.
/// Cheap to clone.
#[derive(Clone)]
pub struct SessionEvents {
    queue: mpsc::Sender<SessionEvent>,
    /// The sending task's work, taken when the first event comes (an app
    /// may be built outside the runtime; events are emitted inside it).
    pending: Arc<Mutex<Option<Sender>>>,
}

/// What the sending task needs.
struct Sender {
    rx: mpsc::Receiver<SessionEvent>,
    pool: Arc<Pool>,
    types: Vec<String>,
}

impl SessionEvents {
    /// Events go, in order, to every server of `types` in the current list
    /// of `pool`.
    pub fn new(pool: Arc<Pool>, types: Vec<String>) -> Self {
        let (queue, rx) = mpsc::channel::<SessionEvent>(QUEUE);
        let pending = Arc::new(Mutex::new(Some(Sender { rx, pool, types })));
        SessionEvents { queue, pending }
    }

    /// Queues `event` (dropped, logged, when the queue is full).
    pub fn emit(&self, event: SessionEvent) {
        let sender = self
            .pending
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        if let Some(sender) = sender {
            tokio::spawn(sender.run());
        }
        if let Err(e) = self.queue.try_send(event) {
            tracing::warn!(error = %e, "session event dropped: the queue to the backends is full");
        }
    }
}

impl Sender {
    async fn run(mut self) {
        while let Some(event) = self.rx.recv().await {
            let targets: Vec<String> = (self.types.iter())
                .flat_map(|t| self.pool.servers().by_type(t))
                .map(|s| s.id)
                .collect();
            let req = event.to_proto();
            join_all(targets.iter().map(|id| send(&self.pool, id, req.clone()))).await;
        }
    }
}

/// Sends one event to server `id`, bounded by [`CALL_TIMEOUT`].
async fn send(pool: &Pool, id: &str, req: proto::SessionEventRequest) {
    let Ok(channel) = pool.channel(id) else {
        return;
    };
    let mut client = ClusterClient::new(channel);
    match tokio::time::timeout(CALL_TIMEOUT, client.session_event(req)).await {
        Ok(Ok(_)) => {}
        Ok(Err(status)) => {
            tracing::debug!(server = %id, error = %status.message(), "session event not taken")
        }
        Err(_) => tracing::debug!(server = %id, "session event: no answer in time"),
    }
}
