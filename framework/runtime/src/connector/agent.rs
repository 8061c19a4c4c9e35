//! One client connection: the §2.3 state machine in a single task.
//!
//! The task owns the WebSocket and `select!`s over three things: the next
//! inbound frame, the session's outbound queue, and the one deadline that
//! matters in the current state (handshake deadline before WORKING, the
//! heartbeat timeout after). Requests run in their own tasks so a slow
//! handler never stalls reading or heartbeats; their responses come back
//! through the same bounded queue as pushes.
//!
//! Decisions where the spec leaves room (documented in the tests too):
//! * a frame that does not split into whole packages (truncated header or
//!   body) or holds an unknown package type closes the connection — framing
//!   is broken and nothing after it can be trusted (Pomelo disconnects on
//!   unknown types; on truncation it would read zero-padded garbage);
//! * a text frame is parsed as packages, exactly like Node's `ws` does;
//! * a DATA package that does not decode as a message is dropped with a log
//!   line, the connection stays (Pomelo drops it too).

use std::net::SocketAddr;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use bytes::Bytes;
use futures_util::{FutureExt, SinkExt, StreamExt};
use tokio::net::TcpStream;
use tokio::time::{Instant, sleep_until, timeout};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message as WsMessage;
use tracing::{Instrument, debug, error, info_span, trace, warn};

use super::{ConnectorOptions, Frontend, TrackerGuard};
use crate::protocol::handshake::{self, CODE_FAIL, HandshakeReply};
use crate::protocol::{CODE_500, encode_data_frame};
use crate::protocol::{
    HEARTBEAT, Message, MessageType, PackageType, decode_message, decode_packages, encode_package,
};
use crate::session::live::{CloseRequest, STATE_INITED, STATE_WAIT_ACK, STATE_WORKING};
use crate::session::{LiveSession, Session};

type Ws = WebSocketStream<TcpStream>;

/// Why an agent stopped; becomes the `closed` listeners' reason.
struct Exit(String);

impl Exit {
    fn new(reason: impl Into<String>) -> Self {
        Self(reason.into())
    }
}

/// Serves one accepted TCP connection until it closes.
pub(crate) async fn serve<F: Frontend>(
    app: F,
    tcp: TcpStream,
    peer: SocketAddr,
    conn: TrackerGuard,
) {
    let live = app.sessions().create();
    let span = info_span!("conn", server = %app.server_id(), sid = live.sid(), %peer);
    async move {
        let opts = app.connector_options();
        let deadline = Instant::now() + opts.handshake_timeout;
        // Boxed: the upgrade future is big and only lives for the handshake.
        let upgrade = Box::pin(tokio_tungstenite::accept_async_with_config(
            tcp,
            Some(opts.ws_config()),
        ));
        let reason = match tokio::time::timeout_at(deadline, upgrade).await {
            Ok(Ok(ws)) => {
                debug!("websocket open");
                let mut agent = Agent {
                    app: app.clone(),
                    live: live.clone(),
                    ws,
                    state: STATE_INITED,
                    handshake_deadline: deadline,
                    heartbeat_deadline: None,
                };
                let Exit(reason) = agent.run().await;
                // Best effort: the peer may already be gone.
                let _ = Box::pin(timeout(Duration::from_millis(200), agent.ws.close(None))).await;
                reason
            }
            Ok(Err(e)) => format!("websocket upgrade failed: {e}"),
            Err(_) => "websocket upgrade timed out".to_owned(),
        };
        app.sessions().remove(live.sid());
        debug!(%reason, "connection closed");
        live.finish(&reason);
        drop(conn);
    }
    .instrument(span)
    .await
}

struct Agent<F: Frontend> {
    app: F,
    live: Arc<LiveSession>,
    ws: Ws,
    state: u8,
    handshake_deadline: Instant,
    heartbeat_deadline: Option<Instant>,
}

impl<F: Frontend> Agent<F> {
    fn opts(&self) -> &ConnectorOptions {
        self.app.connector_options()
    }

    async fn run(&mut self) -> Exit {
        let mut batch: Vec<Bytes> = Vec::new();
        // One timer for the connection's life, moved only when the deadline
        // changes (each heartbeat). A fresh `sleep_until` per loop turn would
        // register and cancel a timer-wheel entry for every push written.
        let timer = sleep_until(self.handshake_deadline);
        tokio::pin!(timer);
        let mut armed = self.handshake_deadline;
        loop {
            let deadline = if self.state == STATE_WORKING {
                self.heartbeat_deadline
            } else {
                Some(self.handshake_deadline)
            };
            if let Some(d) = deadline.filter(|d| *d != armed) {
                timer.as_mut().reset(d);
                armed = d;
            }
            // Not `biased`: a flood of pushes must not starve reading (and
            // with it the client's heartbeats).
            tokio::select! {
                _ = self.live.wait_outbound() => {
                    let close = self.live.drain(&mut batch);
                    // Boxed (here and below): these sub-futures are large and
                    // short-lived; keeping them out of the idle state machine
                    // keeps an idle connection's task small.
                    if let Err(exit) = Box::pin(self.write_batch(&mut batch)).await {
                        return exit;
                    }
                    if batch.capacity() > 64 {
                        // A burst grew it; an idle connection keeps little.
                        batch = Vec::new();
                    }
                    match close {
                        None => {}
                        Some(CloseRequest::Overflow) => {
                            return Exit::new("outbound queue overflow (client too slow)");
                        }
                        Some(CloseRequest::Kick(reason)) => {
                            if self.state == STATE_WORKING {
                                let kick = encode_package(PackageType::Kick, &handshake::kick_body(&reason));
                                if let Ok(kick) = kick {
                                    let _ = Box::pin(self.write_one(kick)).await;
                                }
                            }
                            debug!(%reason, "kicked");
                            return Exit::new(format!("kick: {reason}"));
                        }
                    }
                }
                _ = &mut timer, if deadline.is_some() => {
                    return if self.state == STATE_WORKING {
                        debug!("heartbeat timeout");
                        Exit::new("heartbeat timeout")
                    } else {
                        debug!("handshake timeout");
                        Exit::new("handshake timeout")
                    };
                }
                frame = self.ws.next() => {
                    let data = match frame {
                        None => return Exit::new("client closed"),
                        Some(Err(e)) => return Exit::new(format!("websocket error: {e}")),
                        Some(Ok(WsMessage::Binary(data))) => data,
                        // Node's `ws` hands a text frame's bytes to the same
                        // package decoder; so do we (§1).
                        Some(Ok(WsMessage::Text(text))) => Bytes::from(text),
                        Some(Ok(WsMessage::Close(_))) => return Exit::new("client closed"),
                        Some(Ok(_)) => continue, // ping/pong: tungstenite answers pings
                    };
                    if let Err(exit) = Box::pin(self.on_frame(data)).await {
                        return exit;
                    }
                }
            }
        }
    }

    /// Feeds every queued frame, then flushes once (one or a few socket
    /// writes for a whole burst of pushes).
    async fn write_batch(&mut self, batch: &mut Vec<Bytes>) -> Result<(), Exit> {
        if batch.is_empty() {
            return Ok(());
        }
        let limit = self.opts().write_timeout;
        let live = &self.live;
        let ws = &mut self.ws;
        let write = async {
            for frame in batch.drain(..) {
                ws.feed(WsMessage::Binary(frame)).await?;
            }
            ws.flush().await
        };
        tokio::pin!(write);
        // Fast path: a client that keeps reading leaves room in its socket
        // buffer, so the batch goes out in this one poll. Only a write that
        // has to wait pays for a timer and the overflow watch below.
        let first = std::future::poll_fn(|cx| Poll::Ready(write.as_mut().poll(cx))).await;
        if let Poll::Ready(result) = first {
            return result.map_err(|e| Exit::new(format!("write failed: {e}")));
        }
        let write = timeout(limit, write);
        tokio::pin!(write);
        // Frames queued while we write wake the branch below; remember that
        // so the wake-up is handed back to the main loop, not lost.
        let mut woke = false;
        loop {
            tokio::select! {
                result = &mut write => {
                    if woke {
                        live.rewake();
                    }
                    return match result {
                        Ok(Ok(())) => Ok(()),
                        Ok(Err(e)) => Err(Exit::new(format!("write failed: {e}"))),
                        Err(_) => {
                            warn!(?limit, "client did not read for too long; closing");
                            Err(Exit::new("write timeout"))
                        }
                    };
                }
                // A write blocked on a client that stopped reading must not
                // keep its overflowing queue alive: abandon it and close.
                _ = live.wait_outbound() => {
                    woke = true;
                    if live.overflowed() {
                        return Err(Exit::new("outbound queue overflow (client too slow)"));
                    }
                }
            }
        }
    }

    async fn write_one(&mut self, frame: Bytes) -> Result<(), Exit> {
        let limit = self.opts().write_timeout;
        match timeout(limit, self.ws.send(WsMessage::Binary(frame))).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(Exit::new(format!("write failed: {e}"))),
            Err(_) => Err(Exit::new("write timeout")),
        }
    }

    async fn on_frame(&mut self, data: Bytes) -> Result<(), Exit> {
        let packages = match decode_packages(data) {
            Ok(p) => p,
            Err(e) => {
                warn!(error = %e, "undecodable frame from client; closing");
                return Err(Exit::new(format!("bad package: {e}")));
            }
        };
        for package in packages {
            match (self.state, package.kind) {
                (STATE_INITED, PackageType::Handshake) => self.on_handshake(&package.body).await?,
                (STATE_WAIT_ACK, PackageType::HandshakeAck) => {
                    self.state = STATE_WORKING;
                    self.live.set_state(STATE_WORKING);
                    debug!("handshake acknowledged");
                    self.on_heartbeat().await?;
                }
                (STATE_WORKING, PackageType::Heartbeat) => self.on_heartbeat().await?,
                (STATE_WORKING, PackageType::Data) => self.on_data(package.body),
                (_, PackageType::Kick) => {
                    warn!("client sent a KICK package (server-only type); closing");
                    return Err(Exit::new("client sent a KICK package"));
                }
                (state, kind) => trace!(state, ?kind, "package ignored in this state"),
            }
        }
        Ok(())
    }

    async fn on_handshake(&mut self, body: &[u8]) -> Result<(), Exit> {
        let request = match handshake::parse_handshake(body) {
            Ok(r) => r,
            Err(e) => {
                debug!(error = %e, "bad handshake; answering 500 and closing");
                if let Ok(reply) = encode_package(
                    PackageType::Handshake,
                    &handshake::handshake_error(CODE_FAIL),
                ) {
                    let _ = self.write_one(reply).await;
                }
                return Err(Exit::new("bad handshake"));
            }
        };
        let opts = self.opts();
        let reply = HandshakeReply {
            heartbeat_secs: opts.heartbeat_secs(),
            dict: self.app.dictionary().map(|d| d.as_ref()),
            client_dict_version: request.sys.dict_version.as_deref(),
            user: None,
        };
        let frame = encode_package(PackageType::Handshake, &reply.to_json())
            .map_err(|e| Exit::new(format!("handshake reply too large: {e}")))?;
        self.write_one(frame).await?;
        self.state = STATE_WAIT_ACK;
        self.live.set_state(STATE_WAIT_ACK);
        debug!(client = ?request.sys.client_type, "handshake answered");
        Ok(())
    }

    /// §4.4: answer at once and re-arm the timeout. Only HEARTBEAT (and the
    /// ACK) resets the timer; DATA does not.
    async fn on_heartbeat(&mut self) -> Result<(), Exit> {
        let Some(timeout) = self.opts().effective_timeout() else {
            return Ok(());
        };
        self.write_one(Bytes::from_static(&HEARTBEAT)).await?;
        self.heartbeat_deadline = Some(Instant::now() + timeout);
        Ok(())
    }

    fn on_data(&mut self, body: Bytes) {
        let msg = match decode_message(body, self.app.dictionary().map(|d| d.as_ref())) {
            Ok(m) => m,
            Err(e) => {
                warn!(error = %e, "undecodable message dropped");
                return;
            }
        };
        if !matches!(msg.kind, MessageType::Request | MessageType::Notify) {
            warn!(kind = ?msg.kind, "client sent a server-only message type; dropped");
            return;
        }
        spawn_request(self.app.clone(), self.live.clone(), msg);
    }
}

/// Runs one request/notify in its own task and queues the response.
fn spawn_request<F: Frontend>(app: F, live: Arc<LiveSession>, msg: Message) {
    let guard = app.inflight().enter();
    let span = info_span!("request", route = %msg.route, id = msg.id);
    tokio::spawn(
        async move {
            let is_request = msg.kind == MessageType::Request;
            let session = Session::local(live.clone(), app.sessions().clone());
            // A panicking handler or filter must not leave the client
            // waiting: answer it like any failed handler.
            let dispatch = app.dispatch(session, &msg.route, msg.body, is_request);
            let response = match AssertUnwindSafe(dispatch).catch_unwind().await {
                Ok(response) => response,
                Err(_) => {
                    error!("handler panicked; answering 500");
                    is_request.then(|| Bytes::from_static(CODE_500))
                }
            };
            if let (true, Some(body)) = (is_request, response) {
                match encode_data_frame(&Message::response(msg.id, body), None) {
                    Ok(frame) => {
                        if let Err(e) = live.send(frame) {
                            debug!(error = %e, "response not delivered");
                        }
                    }
                    Err(e) => warn!(error = %e, "response not sent: cannot encode it"),
                }
            }
            drop(guard);
        }
        .instrument(span),
    );
}
