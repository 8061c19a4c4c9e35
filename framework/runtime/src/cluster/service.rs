//! The server side of the cluster protocol: what a server does when another
//! server forwards a request, pushes, or operates on one of its sessions.
//!
//! The transport does not know the app's types: it talks to a [`LocalNode`]
//! (the app implements it: `App::handle`, the frontend `SessionService`).
//! That keeps this file testable on its own and the app free of gRPC.

use std::sync::Arc;
use std::time::Duration;

use std::panic::AssertUnwindSafe;

use bytes::Bytes;
use futures_util::FutureExt;
use serde_json::{Map, Value};
use tokio::sync::{Semaphore, mpsc};
use tokio_util::sync::CancellationToken;
use tonic::codegen::tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming};
use tracing::Instrument;

use super::proto::{self, SessionOpKind, cluster_server::Cluster};
use super::{BoxFuture, SessionSnapshot};

/// Forwarded requests one stream may run at once; more wait (backpressure
/// on the sender's bounded queue) instead of spawning without bound.
pub const MAX_IN_FLIGHT_PER_STREAM: usize = 4096;
/// A forwarded handler still running after this is abandoned with an error
/// (the frontend has long given up on it).
pub const HANDLER_DEADLINE: Duration = Duration::from_secs(60);
/// Bound of each stream's outgoing answer queue.
const ANSWER_QUEUE: usize = 1024;
/// Most pushes applied as one batch (bounds the latency a batch adds to
/// its first push, and the frames one client gets in one write).
const PUSH_BATCH: usize = 64;

/// A session operation requested by a backend.
#[derive(Debug, Clone, PartialEq)]
pub enum SessionOp {
    Bind {
        sid: u64,
        uid: String,
    },
    Unbind {
        sid: u64,
        uid: String,
    },
    PushSettings {
        sid: u64,
        settings: Map<String, Value>,
    },
    KickBySid {
        sid: u64,
        reason: String,
    },
    KickByUid {
        uid: String,
        reason: String,
    },
}

/// Why a session operation failed on the frontend.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SessionOpError {
    #[error("no session {0} on this server")]
    NoSuchSession(u64),
    #[error("{0}")]
    Rejected(String),
    #[error("this server is not a frontend and holds no sessions")]
    NotFrontend,
}

/// What a server offers to its peers (the app implements this).
pub trait LocalNode: Send + Sync + 'static {
    /// Id of this server (for logs).
    fn server_id(&self) -> &str;

    /// Runs a forwarded client message (filters + handler) with a session
    /// rebuilt from `session`; returns the JSON response (§5.5 applied) or
    /// `None` when there is nothing to send.
    fn handle(
        &self,
        session: SessionSnapshot,
        route: String,
        body: Bytes,
        is_request: bool,
    ) -> BoxFuture<'static, Option<Bytes>>;

    /// Pushes to the sessions of `uids`; returns the uids without a session.
    fn push_to_uids(
        &self,
        route: &str,
        body: Bytes,
        uids: &[String],
    ) -> Result<Vec<String>, SessionOpError>;

    /// Pushes to every (bound) session of this frontend.
    fn broadcast(&self, route: &str, body: Bytes, binded_only: bool) -> Result<(), SessionOpError>;

    /// Applies, in order, pushes that arrived together on one stream and
    /// returns each one's failed uids. A frontend overrides it to write each
    /// client's frames of the whole batch together — one system call per
    /// client instead of one per push — which is what keeps a busy frontend
    /// from falling further behind: the busier it is, the bigger the batches.
    fn push_batch(&self, batch: &[proto::PushRequest]) -> Vec<Result<Vec<String>, SessionOpError>> {
        batch
            .iter()
            .map(|m| {
                if m.broadcast {
                    self.broadcast(&m.route, m.body.clone(), m.binded_only)
                        .map(|()| Vec::new())
                } else {
                    self.push_to_uids(&m.route, m.body.clone(), &m.uids)
                }
            })
            .collect()
    }

    /// Applies a backend's session operation.
    fn session_op(&self, op: SessionOp) -> BoxFuture<'_, Result<(), SessionOpError>>;

    /// Frontend: the `(key, uid, resume window ms)` registrations of this
    /// frontend's sessions for `server_type` whose key `owner_id` owns among
    /// `candidates` (the caller's list of that type, in order). The window
    /// is 0 for a session whose client did not ask for resume.
    fn members(
        &self,
        server_type: &str,
        owner_id: &str,
        candidates: &[String],
    ) -> Result<Vec<(String, String, u32)>, SessionOpError> {
        let _ = (server_type, owner_id, candidates);
        Err(SessionOpError::NotFrontend)
    }

    /// Backend: frontend `frontend_id` (re)started; pull its members again.
    fn resync(&self, frontend_id: String) -> BoxFuture<'static, ()> {
        let _ = frontend_id;
        Box::pin(async {})
    }

    /// Backend: a frontend's session was bound or closed
    /// ([`session_events`](super::session_events)).
    fn session_event(&self, event: super::session_events::SessionEvent) {
        let _ = event;
    }

    /// Backend: a resumed session asks for the member its frontend's loss
    /// left held ([`ShardKeeper::reattach`](super::shard::ShardKeeper::reattach)).
    fn reattach(&self, req: proto::ReattachRequest) -> BoxFuture<'static, proto::ReattachReply> {
        let _ = req;
        Box::pin(async {
            proto::ReattachReply {
                reattached: false,
                reason: "this server keeps no sharded channels".into(),
                flushed: 0,
            }
        })
    }

    /// Owner in the uid directory: a frontend bound `req.uid`
    /// ([`UidDirectory::claim`](super::directory::UidDirectory::claim)).
    fn claim_uid(
        &self,
        req: proto::ClaimUidRequest,
    ) -> BoxFuture<'static, Result<proto::ClaimUidReply, SessionOpError>> {
        let _ = req;
        Box::pin(async {
            Err(SessionOpError::Rejected(
                "this server keeps no uid directory".into(),
            ))
        })
    }

    /// Owner in the uid directory: a session of `req.uid` closed.
    fn release_uid(&self, req: proto::ReleaseUidRequest) {
        let _ = req;
    }

    /// Which process answers under this server's id: its start time.
    fn incarnation(&self) -> u64 {
        crate::discovery::incarnation()
    }
}

/// The tonic service: wraps a [`LocalNode`].
pub struct ClusterService {
    node: Arc<dyn LocalNode>,
    /// Cancelled on shutdown: ends every open stream, so peers see the end
    /// at once (and reopen elsewhere or later) and graceful shutdown does
    /// not wait forever on streams that never finish by themselves.
    stop: CancellationToken,
}

impl ClusterService {
    pub fn new(node: Arc<dyn LocalNode>, stop: CancellationToken) -> Self {
        ClusterService { node, stop }
    }

    /// The generated tonic server, ready for `Routes::add_service`.
    pub fn into_server(self) -> proto::cluster_server::ClusterServer<Self> {
        proto::cluster_server::ClusterServer::new(self)
            .max_decoding_message_size(super::MAX_RPC_MESSAGE)
            .max_encoding_message_size(super::MAX_RPC_MESSAGE)
    }
}

type AnswerStream<T> = ReceiverStream<Result<T, Status>>;

#[tonic::async_trait]
impl Cluster for ClusterService {
    type ForwardStream = AnswerStream<proto::ForwardResponse>;
    type PushStream = AnswerStream<proto::PushAck>;

    async fn forward(
        &self,
        request: Request<Streaming<proto::ForwardRequest>>,
    ) -> Result<Response<Self::ForwardStream>, Status> {
        let mut inbound = request.into_inner();
        let (tx, rx) = mpsc::channel(ANSWER_QUEUE);
        let node = self.node.clone();
        let stop = self.stop.clone();
        tokio::spawn(async move {
            let limit = Arc::new(Semaphore::new(MAX_IN_FLIGHT_PER_STREAM));
            while let Some(Ok(Some(msg))) = stop.run_until_cancelled(inbound.message()).await {
                let Ok(permit) = limit.clone().acquire_owned().await else {
                    break;
                };
                let (node, tx) = (node.clone(), tx.clone());
                tokio::spawn(async move {
                    // A notify is answered with nothing at all (§5.4).
                    if let Some(answer) = run_forwarded(node, msg).await {
                        let _ = tx.send(Ok(answer)).await;
                    }
                    drop(permit);
                });
            }
        });
        Ok(Response::new(ReceiverStream::new(rx)))
    }

    async fn push(
        &self,
        request: Request<Streaming<proto::PushRequest>>,
    ) -> Result<Response<Self::PushStream>, Status> {
        let mut inbound = request.into_inner();
        let (tx, rx) = mpsc::channel(ANSWER_QUEUE);
        let node = self.node.clone();
        let stop = self.stop.clone();
        // Applied in arrival order, inline: a push only writes or queues
        // bytes on sessions, and order between pushes is what clients
        // observe. Pushes already received when one is taken are applied
        // with it as one batch (see `LocalNode::push_batch`).
        tokio::spawn(async move {
            let mut batch = Vec::new();
            let mut open = true;
            while open {
                match stop.run_until_cancelled(inbound.message()).await {
                    Some(Ok(Some(msg))) => batch.push(msg),
                    _ => break,
                }
                while batch.len() < PUSH_BATCH {
                    match inbound.message().now_or_never() {
                        Some(Ok(Some(msg))) => batch.push(msg),
                        None => break,
                        Some(_) => {
                            open = false;
                            break;
                        }
                    }
                }
                let results = node.push_batch(&batch);
                for (msg, result) in batch.drain(..).zip(results) {
                    let failed_uids = result.unwrap_or_else(|e| {
                        // Not fatal for the stream: other pushes on it are fine.
                        tracing::warn!(server = node.server_id(), route = %msg.route, error = %e, "push refused");
                        msg.uids
                    });
                    let ack = proto::PushAck {
                        id: msg.id,
                        failed_uids,
                    };
                    if tx.send(Ok(ack)).await.is_err() {
                        return;
                    }
                }
            }
        });
        Ok(Response::new(ReceiverStream::new(rx)))
    }

    async fn session_op(
        &self,
        request: Request<proto::SessionOpRequest>,
    ) -> Result<Response<proto::SessionOpResponse>, Status> {
        let req = request.into_inner();
        let op = decode_op(req)?;
        match self.node.session_op(op).await {
            Ok(()) => Ok(Response::new(proto::SessionOpResponse {})),
            Err(e @ SessionOpError::NoSuchSession(_)) => Err(Status::not_found(e.to_string())),
            Err(e @ SessionOpError::Rejected(_)) => Err(Status::failed_precondition(e.to_string())),
            Err(e @ SessionOpError::NotFrontend) => Err(Status::unimplemented(e.to_string())),
        }
    }

    async fn members(
        &self,
        request: Request<proto::MembersRequest>,
    ) -> Result<Response<proto::MembersReply>, Status> {
        let req = request.into_inner();
        match self
            .node
            .members(&req.server_type, &req.owner_id, &req.candidates)
        {
            Ok(entries) => Ok(Response::new(proto::MembersReply {
                entries: entries
                    .into_iter()
                    .map(|(key, uid, resume_window_ms)| proto::MemberEntry {
                        key,
                        uid,
                        resume_window_ms,
                    })
                    .collect(),
            })),
            Err(e @ SessionOpError::NotFrontend) => Err(Status::unimplemented(e.to_string())),
            Err(e) => Err(Status::failed_precondition(e.to_string())),
        }
    }

    async fn resync(
        &self,
        request: Request<proto::ResyncRequest>,
    ) -> Result<Response<proto::ResyncReply>, Status> {
        self.node.resync(request.into_inner().frontend_id).await;
        Ok(Response::new(proto::ResyncReply {}))
    }

    async fn session_event(
        &self,
        request: Request<proto::SessionEventRequest>,
    ) -> Result<Response<proto::SessionEventReply>, Status> {
        let event = super::session_events::SessionEvent::from_proto(request.into_inner())
            .ok_or_else(|| Status::invalid_argument("unknown session event kind"))?;
        self.node.session_event(event);
        Ok(Response::new(proto::SessionEventReply {}))
    }

    async fn reattach(
        &self,
        request: Request<proto::ReattachRequest>,
    ) -> Result<Response<proto::ReattachReply>, Status> {
        Ok(Response::new(
            self.node.reattach(request.into_inner()).await,
        ))
    }

    async fn claim_uid(
        &self,
        request: Request<proto::ClaimUidRequest>,
    ) -> Result<Response<proto::ClaimUidReply>, Status> {
        match self.node.claim_uid(request.into_inner()).await {
            Ok(reply) => Ok(Response::new(reply)),
            Err(e) => Err(Status::failed_precondition(e.to_string())),
        }
    }

    async fn release_uid(
        &self,
        request: Request<proto::ReleaseUidRequest>,
    ) -> Result<Response<proto::ReleaseUidReply>, Status> {
        self.node.release_uid(request.into_inner());
        Ok(Response::new(proto::ReleaseUidReply {}))
    }

    async fn incarnation(
        &self,
        _request: Request<proto::IncarnationRequest>,
    ) -> Result<Response<proto::IncarnationReply>, Status> {
        Ok(Response::new(proto::IncarnationReply {
            incarnation: self.node.incarnation(),
        }))
    }
}

fn decode_op(req: proto::SessionOpRequest) -> Result<SessionOp, Status> {
    let kind = SessionOpKind::try_from(req.kind)
        .map_err(|_| Status::invalid_argument(format!("unknown session op kind {}", req.kind)))?;
    Ok(match kind {
        SessionOpKind::Bind => SessionOp::Bind {
            sid: req.sid,
            uid: req.uid,
        },
        SessionOpKind::Unbind => SessionOp::Unbind {
            sid: req.sid,
            uid: req.uid,
        },
        SessionOpKind::PushSettings => {
            let settings = serde_json::from_slice(&req.settings_json).map_err(|e| {
                Status::invalid_argument(format!("settings are not a JSON object: {e}"))
            })?;
            SessionOp::PushSettings {
                sid: req.sid,
                settings,
            }
        }
        SessionOpKind::KickBySid => SessionOp::KickBySid {
            sid: req.sid,
            reason: req.reason,
        },
        SessionOpKind::KickByUid => SessionOp::KickByUid {
            uid: req.uid,
            reason: req.reason,
        },
        SessionOpKind::Unspecified => {
            return Err(Status::invalid_argument("session op kind is unspecified"));
        }
    })
}

/// Runs one forwarded message; a panicking handler becomes an error answer
/// (→ `{"code":500}` for the client) instead of a silent drop. A notify
/// gets no answer (`None`); its failures are only logged here.
async fn run_forwarded(
    node: Arc<dyn LocalNode>,
    msg: proto::ForwardRequest,
) -> Option<proto::ForwardResponse> {
    let is_request = msg.is_request;
    let answer = run_forwarded_message(node, msg).await;
    if is_request {
        return Some(answer);
    }
    if !answer.error.is_empty() {
        tracing::warn!(error = %answer.error, "forwarded notify failed");
    }
    None
}

async fn run_forwarded_message(
    node: Arc<dyn LocalNode>,
    msg: proto::ForwardRequest,
) -> proto::ForwardResponse {
    let id = msg.id;
    let failed = |error: String| proto::ForwardResponse {
        id,
        body: Bytes::new(),
        error,
        has_body: false,
    };
    let session = match msg.session.map(SessionSnapshot::try_from) {
        Some(Ok(s)) => s,
        Some(Err(e)) => return failed(e),
        None => return failed("forwarded request carries no session".into()),
    };
    let span = tracing::info_span!(
        "forwarded",
        server = node.server_id(),
        frontend = %session.frontend_id,
        sid = session.sid,
        uid = session.uid.as_deref(),
        route = %msg.route,
        trace_id = tracing::field::Empty,
    );
    // The frontend's trace goes on here (a new one without a valid
    // traceparent: an older frontend, or a hand-made call).
    let trace = crate::trace::begin_from(&span, Some(&msg.traceparent));
    let task = node.handle(session, msg.route, msg.body, msg.is_request);
    let task = crate::trace::scope_logged(trace, "forwarded request handled", task);
    let guarded = AssertUnwindSafe(task.instrument(span)).catch_unwind();
    match tokio::time::timeout(HANDLER_DEADLINE, guarded).await {
        Ok(Ok(Some(body))) => proto::ForwardResponse {
            id,
            body,
            error: String::new(),
            has_body: true,
        },
        Ok(Ok(None)) => proto::ForwardResponse {
            id,
            body: Bytes::new(),
            error: String::new(),
            has_body: false,
        },
        Ok(Err(_panic)) => failed("the handler panicked (see this server's log)".into()),
        Err(_) => failed(format!("handler still running after {HANDLER_DEADLINE:?}")),
    }
}
