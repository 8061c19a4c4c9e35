//! Request/response over one long-lived bidirectional gRPC stream.
//!
//! Forwarded requests and pushes are the cluster's hot traffic. A unary
//! call per message costs an HTTP/2 stream each (~10k/s sequential); one
//! stream per peer carrying messages tagged with request ids goes ~100×
//! faster. This module is that multiplexer, shared by `forward` and `push`:
//!
//! * per server: one stream, opened on first use, fed from a **bounded**
//!   queue (callers wait for room, within their timeout);
//! * a pending map `id → oneshot` resolves callers as answers arrive, in
//!   any order;
//! * every call has a timeout ([`ClusterError::Timeout`]);
//! * when the stream fails, every pending caller gets the error at once and
//!   the next call opens a new stream (the pooled channel redials).
//!
//! The pending map's lock is never held across an `.await`.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, oneshot};
use tonic::codegen::tokio_stream::wrappers::ReceiverStream;
use tonic::{Status, Streaming};

use super::auth::ClusterChannel;
use super::{BoxFuture, ClusterError, pool::Pool};

/// After a failed dial, calls fail fast for this long before the next dial.
pub(crate) const REDIAL_AFTER: Duration = Duration::from_millis(200);

/// Messages that carry a request id.
pub(crate) trait Tagged: Send + 'static {
    fn id(&self) -> u64;
    fn set_id(&mut self, id: u64);
}

/// Opens the stream on a channel: `client.forward(requests)`.
pub(crate) type OpenFn<Req, Resp> = Arc<
    dyn Fn(
            ClusterChannel,
            ReceiverStream<Req>,
        ) -> BoxFuture<'static, Result<Streaming<Resp>, Status>>
        + Send
        + Sync,
>;

type Pending<Resp> = HashMap<u64, oneshot::Sender<Result<Resp, ClusterError>>>;

struct PendingState<Resp> {
    map: Pending<Resp>,
    /// Set (under the lock) when the stream has ended: late registrations
    /// must not wait for an answer that cannot come.
    closed: bool,
    /// When the stream could not even be opened (server down): when, and
    /// why. Calls within [`REDIAL_AFTER`] fail at once with that reason
    /// instead of dialing again, so an outage does not become a dial storm.
    open_failed: Option<(Instant, String)>,
    /// Why the stream ended.
    ended: Option<String>,
}

struct Stream<Req, Resp> {
    tx: mpsc::Sender<Req>,
    pending: Arc<Mutex<PendingState<Resp>>>,
}

impl<Req, Resp> Stream<Req, Resp> {
    fn is_closed(&self) -> bool {
        self.tx.is_closed()
            || self
                .pending
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .closed
    }
}

/// Streams to many servers of one kind (forward or push).
pub(crate) struct Mux<Req, Resp> {
    kind: &'static str,
    pool: Arc<Pool>,
    open: OpenFn<Req, Resp>,
    queue: usize,
    next_id: AtomicU64,
    streams: Mutex<HashMap<String, Arc<Stream<Req, Resp>>>>,
}

impl<Req: Tagged, Resp: Tagged> Mux<Req, Resp> {
    pub(crate) fn new(
        kind: &'static str,
        pool: Arc<Pool>,
        queue: usize,
        open: OpenFn<Req, Resp>,
    ) -> Self {
        Mux {
            kind,
            pool,
            open,
            queue: queue.max(1),
            next_id: AtomicU64::new(1),
            streams: Mutex::new(HashMap::new()),
        }
    }

    pub(crate) fn pool(&self) -> &Arc<Pool> {
        &self.pool
    }

    /// Sends `req` to `server` and waits for its answer, at most `timeout`.
    pub(crate) async fn call(
        &self,
        server: &str,
        mut req: Req,
        timeout: Duration,
    ) -> Result<Resp, ClusterError> {
        let stream = self.stream(server)?;
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        req.set_id(id);
        let (done_tx, done_rx) = oneshot::channel();
        {
            let mut pending = stream.pending.lock().unwrap_or_else(|p| p.into_inner());
            if pending.closed {
                let why = pending.ended.clone().unwrap_or_default();
                return Err(ClusterError::Unreachable {
                    server: server.to_string(),
                    reason: format!("{} stream closed: {why}", self.kind),
                });
            }
            pending.map.insert(id, done_tx);
        }
        let pending = stream.pending.clone();
        let forget = move || {
            pending
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .map
                .remove(&id);
        };
        let work = async {
            if stream.tx.send(req).await.is_err() {
                return Err(ClusterError::Unreachable {
                    server: server.to_string(),
                    reason: format!("{} stream closed", self.kind),
                });
            }
            match done_rx.await {
                Ok(result) => result,
                Err(_) => Err(ClusterError::Unreachable {
                    server: server.to_string(),
                    reason: format!("{} stream dropped", self.kind),
                }),
            }
        };
        match tokio::time::timeout(timeout, work).await {
            Ok(Ok(resp)) => Ok(resp),
            Ok(Err(e)) => {
                forget();
                Err(e)
            }
            Err(_) => {
                forget();
                Err(ClusterError::Timeout {
                    server: server.to_string(),
                    millis: timeout.as_millis() as u64,
                })
            }
        }
    }

    /// Sends `req` to `server` without waiting for an answer (a forwarded
    /// notify: the peer sends none). Tagged 0, an id no call uses. Waits at
    /// most `timeout` for room in the stream's queue.
    pub(crate) async fn send(
        &self,
        server: &str,
        mut req: Req,
        timeout: Duration,
    ) -> Result<(), ClusterError> {
        let stream = self.stream(server)?;
        req.set_id(0);
        match tokio::time::timeout(timeout, stream.tx.send(req)).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(_)) => Err(ClusterError::Unreachable {
                server: server.to_string(),
                reason: format!("{} stream closed", self.kind),
            }),
            Err(_) => Err(ClusterError::Timeout {
                server: server.to_string(),
                millis: timeout.as_millis() as u64,
            }),
        }
    }

    /// The live stream to `server`, opening a new one if there is none or
    /// the last one failed.
    fn stream(&self, server: &str) -> Result<Arc<Stream<Req, Resp>>, ClusterError> {
        let mut streams = self.streams.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(s) = streams.get(server) {
            if !s.is_closed() {
                return Ok(s.clone());
            }
            let state = s.pending.lock().unwrap_or_else(|p| p.into_inner());
            if let Some((at, reason)) = &state.open_failed
                && at.elapsed() < REDIAL_AFTER
            {
                return Err(ClusterError::Unreachable {
                    server: server.to_string(),
                    reason: format!("{reason} (next dial in at most {REDIAL_AFTER:?})"),
                });
            }
        }
        let channel = self.pool.channel(server)?;
        let (tx, rx) = mpsc::channel(self.queue);
        let pending = Arc::new(Mutex::new(PendingState {
            map: HashMap::new(),
            closed: false,
            open_failed: None,
            ended: None,
        }));
        let stream = Arc::new(Stream {
            tx,
            pending: pending.clone(),
        });
        streams.insert(server.to_string(), stream.clone());
        drop(streams);
        let open = (self.open)(channel, ReceiverStream::new(rx));
        tokio::spawn(drive(self.kind, server.to_string(), open, pending));
        Ok(stream)
    }
}

/// Reads answers until the stream ends, then fails whatever is pending.
async fn drive<Resp: Tagged>(
    kind: &'static str,
    server: String,
    open: BoxFuture<'static, Result<Streaming<Resp>, Status>>,
    pending: Arc<Mutex<PendingState<Resp>>>,
) {
    let mut open_failed = false;
    let reason = match open.await {
        Err(status) => {
            open_failed = true;
            describe(&status)
        }
        Ok(mut answers) => loop {
            match answers.message().await {
                Ok(Some(resp)) => {
                    let waiter = pending
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .map
                        .remove(&resp.id());
                    // A missing waiter timed out already; drop the answer.
                    if let Some(waiter) = waiter {
                        let _ = waiter.send(Ok(resp));
                    }
                }
                Ok(None) => break "the server closed the stream".to_string(),
                Err(status) => break describe(&status),
            }
        },
    };
    let failed: Vec<_> = {
        let mut state = pending.lock().unwrap_or_else(|p| p.into_inner());
        state.closed = true;
        state.ended = Some(reason.clone());
        if open_failed {
            state.open_failed = Some((Instant::now(), reason.clone()));
        }
        state.map.drain().map(|(_, tx)| tx).collect()
    };
    tracing::warn!(server = %server, kind, pending = failed.len(), %reason, "cluster stream ended; the next call reopens it");
    for waiter in failed {
        let _ = waiter.send(Err(ClusterError::Unreachable {
            server: server.clone(),
            reason: reason.clone(),
        }));
    }
}

/// A status with its error chain, for logs and [`ClusterError`] reasons.
fn describe(status: &Status) -> String {
    use std::error::Error;
    let mut msg = format!("{:?}: {}", status.code(), status.message());
    let mut source = status.source();
    // Error chains repeat themselves ("tcp connect error: … tcp connect
    // error"); keep each distinct message once.
    while let Some(s) = source {
        let text = s.to_string();
        if !msg.contains(&text) {
            msg.push_str(": ");
            msg.push_str(&text);
        }
        source = s.source();
    }
    msg
}
