//! One client connection: the §2.3 state machine in a single task.
//!
//! The task owns the connection — a WebSocket or raw TCP on the same port
//! ([`sniff`](super::sniff)), both behind one `Stream` + `Sink` of package
//! bytes, so everything below is the same for both — and `select!`s over
//! three things: the next inbound frame (a WebSocket message, or one
//! package off raw TCP), the session's outbound queue, and the one deadline that
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
//!
//! Budgets (see [`budget`](super::budget) and `docs/security.md`): each DATA
//! message passes the connection's [`RequestBudget`] first; the connection
//! is closed after this long without any package (`idle_timeout`, the gate's
//! only timeout); and every close the client did not ask for — an
//! overflowing outbound queue, a stuck write, a frame over the size limit,
//! abuse of the rate limit, idleness — is preceded by a KICK saying why
//! (best effort, within [`KICK_WRITE`]: the client may not be reading).

use std::net::{IpAddr, SocketAddr};
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use bytes::Bytes;
use futures_util::{FutureExt, SinkExt, StreamExt};
use tokio::net::TcpStream;
use tokio::time::{Instant, sleep_until, timeout};
use tokio_tungstenite::tungstenite::handshake::server::{
    ErrorResponse, Request as UpgradeRequest, Response as UpgradeResponse,
};
use tokio_tungstenite::tungstenite::http::StatusCode;
use tokio_util::either::Either;
use tracing::{Instrument, debug, error, info_span, trace, warn};

use super::bodies;
use super::budget::{
    AddressCounts, AddressGuard, InFlight, KICK_RATE, Refusal, RequestBudget, Verdict,
};
use super::proxy::{self, ProxyHeader};
use super::sniff::{Kind, Rewind, sniff};
use super::{ConnectorOptions, Frontend, TrackerGuard};
use crate::protocol::CODE_500;
use crate::protocol::handshake::{self, CODE_FAIL, CODE_OLD_CLIENT, HandshakeReply};
use crate::protocol::transport::{PackageTransport, TransportError};
use crate::protocol::{
    HEARTBEAT, Message, MessageType, PackageType, decode_message, decode_packages, encode_package,
};
use crate::session::live::{CloseRequest, STATE_INITED, STATE_WAIT_ACK, STATE_WORKING};
use crate::session::wire::{SharedTcp, Wire};
use crate::session::{LiveSession, Parked, ResumeConn, Session};

/// Plain TCP (shared with the push fan-out through its [`Wire`]), or TLS
/// over it (`wss://`, `tcp+tls`), with the sniffed first bytes given back.
///
/// The TLS stream is boxed: it is large (the TLS session's state and
/// buffers), and inline it would make every plain connection's task as
/// big — an idle connection's memory is a benchmark target.
type ClientStream = Rewind<Either<SharedTcp, Box<tokio_rustls::server::TlsStream<TcpStream>>>>;
/// The client's packages, over a WebSocket or raw TCP.
type Transport = PackageTransport<ClientStream>;

/// How long a KICK before an unrequested close may take to write: a client
/// that is not reading must not hold the connection open for long.
const KICK_WRITE: Duration = Duration::from_millis(500);

/// KICK reason when the outbound queue overflows (frames or bytes).
pub const OVERFLOW: &str = "outbound queue overflow: the client reads too slowly";
/// KICK reason when a write stays blocked for `write_timeout`.
pub const WRITE_STUCK: &str = "write timeout: the client stopped reading";
/// KICK reason (followed by the limit) for a frame over `max_message_size`.
pub const TOO_LARGE: &str = "message too large";
/// KICK reason after `idle_timeout` without a package.
pub const IDLE: &str = "idle timeout";

/// Why an agent stopped; becomes the `closed` listeners' reason.
struct Exit(String, Dropped);

/// Whether the connection *dropped* (transport error, raw TCP EOF,
/// heartbeat timeout) rather than being ended on purpose (a kick, a
/// WebSocket close frame, a protocol violation): a dropped session may be
/// kept for resume (`session/resume.rs`).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Dropped {
    No,
    Yes,
}

impl Exit {
    fn new(reason: impl Into<String>) -> Self {
        Self(reason.into(), Dropped::No)
    }

    /// An exit the client may resume from.
    fn dropped(reason: impl Into<String>) -> Self {
        Self(reason.into(), Dropped::Yes)
    }
}

/// Serves one accepted TCP connection until it closes.
///
/// `address` is the per-address count of the peer, taken on accept —
/// except for a trusted proxy, whose clients are counted here by their
/// real address once the PROXY header or `X-Forwarded-For` gave it.
pub(crate) async fn serve<F: Frontend>(
    app: F,
    tcp: TcpStream,
    peer: SocketAddr,
    conn: (TrackerGuard, Option<AddressGuard>),
    addresses: AddressCounts,
) {
    let live = app.sessions().create();
    let span = info_span!(
        "conn",
        server = %app.server_id(),
        sid = live.sid(),
        %peer,
        client = tracing::field::Empty
    );
    async move {
        let opts = app.connector_options();
        let deadline = Instant::now() + opts.handshake_timeout;
        let (tracker, mut address) = conn;
        let trusted = opts.trusted_proxies.trusts(peer.ip());
        // The session to close at the end: this connection's, the one it
        // resumed, or none when it is kept for resume.
        let mut closing = Some(live.clone());
        // Boxed: the opening (PROXY header, TLS, upgrade) is over before
        // the connection idles, and its state must not stay in the task.
        let reason = match Box::pin(open(opts, tcp, trusted, deadline)).await {
            Ok((conn, client, wire)) => {
                let mut conn = conn;
                let mut refused = None;
                if trusted {
                    let ip = client.unwrap_or(peer.ip());
                    tracing::Span::current().record("client", tracing::field::display(ip));
                    let rate_ok =
                        addresses.admit_connect(ip, opts.connect_rate_per_address, Instant::now());
                    match addresses
                        .enter(ip, opts.max_connections_per_address)
                        .filter(|_| rate_ok)
                    {
                        Some(guard) => address = Some(guard),
                        None => {
                            warn!(client = %ip, max = ?opts.max_connections_per_address,
                                  rate = ?opts.connect_rate_per_address,
                                  "max-connections-per-address or connects-per-second-per-address \
                                   reached (client behind a proxy); closing");
                            refused = Some("max-connections-per-address reached".to_owned());
                        }
                    }
                }
                match refused {
                    Some(reason) => {
                        let _ = Box::pin(timeout(Duration::from_millis(200), conn.close())).await;
                        reason
                    }
                    None => {
                        debug!(transport = conn.name(), "connection open");
                        if let Some(wire) = &wire {
                            live.attach_wire(wire, opts.write_window.is_some());
                        }
                        let now = Instant::now();
                        let mut agent = Agent {
                            app: app.clone(),
                            live: live.clone(),
                            conn,
                            state: STATE_INITED,
                            handshake_deadline: deadline,
                            heartbeat_deadline: None,
                            idle_deadline: None,
                            last_inbound: now,
                            wire,
                            flush_at: None,
                            budget: RequestBudget::new(
                                opts.rate_limit,
                                opts.max_inflight,
                                opts.kick_after_refusals,
                                now,
                            ),
                            resume: ResumeConn::default(),
                        };
                        let Exit(reason, dropped) = agent.run().await;
                        // Nothing from the fan-out after the close frame.
                        agent.live.close_wire();
                        // Best effort: the peer may already be gone.
                        let _ =
                            Box::pin(timeout(Duration::from_millis(200), agent.conn.close())).await;
                        let dropped = dropped == Dropped::Yes;
                        let kept = agent
                            .resume
                            .end(app.sessions(), &agent.live, dropped, &reason);
                        closing = (!kept).then(|| agent.live.clone());
                        reason
                    }
                }
            }
            Err(reason) => reason,
        };
        debug!(%reason, "connection closed");
        if let Some(live) = closing {
            app.sessions().remove(live.sid());
            live.finish(&reason);
        }
        drop((tracker, address));
    }
    .instrument(span)
    .await
}

/// The way in, up to an open connection: the PROXY header (from a trusted
/// proxy, when on), TLS (when configured), then the first bytes tell the
/// transport ([`sniff`]): raw TCP is ready at once; a WebSocket goes
/// through the upgrade with its Origin check and `X-Forwarded-For`. A
/// transport the frontend does not serve (`transports`) is closed, logged.
/// Returns the client address the proxy gave, if any, and the plain-TCP
/// socket's [`Wire`]. Everything within the handshake deadline.
async fn open(
    opts: &ConnectorOptions,
    mut tcp: TcpStream,
    trusted: bool,
    deadline: Instant,
) -> Result<(Transport, Option<IpAddr>, Option<Arc<Wire>>), String> {
    let mut client = None;
    if trusted && opts.proxy_protocol {
        let left = deadline.saturating_duration_since(Instant::now());
        match proxy::read_header(&mut tcp, left).await? {
            ProxyHeader::Client(addr) => client = Some(addr.ip()),
            ProxyHeader::Local => {}
        }
    }
    let mut wire = None;
    let stream = match &opts.tls {
        Some(tls) => {
            let tls_stream = tokio::time::timeout_at(deadline, tls.accept(tcp))
                .await
                .map_err(|_| "TLS handshake timed out".to_owned())?
                .map_err(|e| format!("TLS handshake failed: {e}"))?;
            Either::Right(Box::new(tls_stream))
        }
        None => {
            let shared = Wire::new(tcp);
            wire = Some(shared.clone());
            Either::Left(SharedTcp::new(shared, opts.queue_bytes))
        }
    };
    let (kind, stream) = sniff(stream, deadline).await?;
    if let Some(wire) = &wire {
        wire.set_websocket(kind == Kind::WebSocket);
    }
    if !opts.transports.allows(kind) {
        let (name, served) = (opts.transports.name(kind), opts.transports.names());
        warn!(
            transport = name,
            served = ?served,
            "a client of a transport this frontend does not serve (connector.json \
             `transports`); closing"
        );
        return Err(format!("transport {name} not served here"));
    }
    if kind == Kind::Tcp {
        let conn = PackageTransport::tcp(stream, opts.max_message_size, opts.ws_read_buffer);
        return Ok((conn, client, wire));
    }
    let forwarded: std::sync::Mutex<Option<IpAddr>> = std::sync::Mutex::new(None);
    // The error type is tungstenite's (an HTTP response), not ours to shrink.
    #[allow(clippy::result_large_err)]
    let check = |req: &UpgradeRequest, resp: UpgradeResponse| {
        let header = |name: &str| req.headers().get(name).and_then(|v| v.to_str().ok());
        if let (Some(allowed), Some(origin)) = (&opts.allowed_origins, header("origin"))
            && !allowed.iter().any(|a| a.eq_ignore_ascii_case(origin))
        {
            warn!(
                origin,
                "WebSocket upgrade from an origin not in allowed-origins; refused (403)"
            );
            let mut refusal = ErrorResponse::new(Some(format!(
                "origin {origin} is not allowed to connect here"
            )));
            *refusal.status_mut() = StatusCode::FORBIDDEN;
            return Err(refusal);
        }
        if trusted && let Some(xff) = header("x-forwarded-for") {
            *forwarded.lock().unwrap_or_else(|p| p.into_inner()) =
                opts.trusted_proxies.client_from_forwarded_for(xff);
        }
        Ok(resp)
    };
    // Boxed: the upgrade future is big and only lives for the handshake.
    let upgrade = Box::pin(tokio_tungstenite::accept_hdr_async_with_config(
        stream,
        check,
        Some(opts.ws_config()),
    ));
    let ws = match tokio::time::timeout_at(deadline, upgrade).await {
        Ok(Ok(ws)) => ws,
        Ok(Err(e)) => return Err(format!("websocket upgrade failed: {e}")),
        Err(_) => return Err("websocket upgrade timed out".to_owned()),
    };
    let forwarded = *forwarded.lock().unwrap_or_else(|p| p.into_inner());
    Ok((PackageTransport::WebSocket(ws), client.or(forwarded), wire))
}

struct Agent<F: Frontend> {
    app: F,
    live: Arc<LiveSession>,
    conn: Transport,
    state: u8,
    handshake_deadline: Instant,
    heartbeat_deadline: Option<Instant>,
    /// When to check for idleness next (WORKING only). Not moved per
    /// frame: when it passes, the agent looks at `last_inbound` and either
    /// closes or re-arms it, so an active client costs no timer resets.
    idle_deadline: Option<Instant>,
    /// When the last package arrived.
    last_inbound: Instant,
    /// The plain-TCP socket the fan-out also writes to; what it could not
    /// write waits there for [`write_batch`](Self::write_batch).
    wire: Option<Arc<Wire>>,
    /// With a write window: when to write what is queued.
    flush_at: Option<Instant>,
    budget: RequestBudget,
    /// Session resume: the token it was given, a session it claimed.
    resume: ResumeConn,
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
                [self.heartbeat_deadline, self.idle_deadline, self.flush_at]
                    .into_iter()
                    .flatten()
                    .min()
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
                    if let Some(window) = self.opts().write_window
                        && close.is_none()
                    {
                        // The first frame of a window: write it and the
                        // ones after it together when the window ends.
                        self.flush_at.get_or_insert_with(|| Instant::now() + window);
                        continue;
                    }
                    // Boxed (here and below): these sub-futures are large and
                    // short-lived; keeping them out of the idle state machine
                    // keeps an idle connection's task small.
                    match Box::pin(self.write_batch(&mut batch)).await {
                        Ok(()) => {}
                        Err(Stuck::Overflow) => return Box::pin(self.kick(OVERFLOW)).await,
                        Err(Stuck::Timeout) => return Box::pin(self.kick(WRITE_STUCK)).await,
                        Err(Stuck::Failed(exit)) => return exit,
                    }
                    if batch.capacity() > 64 {
                        // A burst grew it; an idle connection keeps little.
                        batch = Vec::new();
                    }
                    match close {
                        None => {}
                        Some(CloseRequest::Overflow) => {
                            return Box::pin(self.kick(OVERFLOW)).await;
                        }
                        Some(CloseRequest::Kick(reason)) => {
                            debug!(%reason, "kicked");
                            return Box::pin(self.kick(&reason)).await;
                        }
                    }
                }
                _ = &mut timer, if deadline.is_some() => {
                    if self.state != STATE_WORKING {
                        debug!("handshake timeout");
                        return Exit::new("handshake timeout");
                    }
                    let now = Instant::now();
                    if self.flush_at.is_some_and(|f| f <= now) {
                        self.flush_at = None;
                        self.live.drain(&mut batch);
                        match Box::pin(self.write_batch(&mut batch)).await {
                            Ok(()) => {}
                            Err(Stuck::Overflow) => return Box::pin(self.kick(OVERFLOW)).await,
                            Err(Stuck::Timeout) => return Box::pin(self.kick(WRITE_STUCK)).await,
                            Err(Stuck::Failed(exit)) => return exit,
                        }
                    }
                    if self.heartbeat_deadline.is_some_and(|h| h <= now) {
                        // A starved process can wake with the timer and the
                        // client's heartbeat both ready: read what is already
                        // there before calling the client dead.
                        if let Some(frame) = self.conn.next().now_or_never() {
                            if let Err(exit) = Box::pin(self.on_next(frame)).await {
                                return exit;
                            }
                            continue;
                        }
                        debug!("heartbeat timeout");
                        return Exit::dropped("heartbeat timeout");
                    }
                    if let Some(idle) = self.opts().idle_timeout {
                        let due = self.last_inbound + idle;
                        if due <= now {
                            debug!(?idle, "idle timeout");
                            return Box::pin(self.kick(IDLE)).await;
                        }
                        self.idle_deadline = Some(due);
                    }
                }
                // A WebSocket message, or one package off raw TCP.
                frame = self.conn.next() => {
                    if let Err(exit) = Box::pin(self.on_next(frame)).await {
                        return exit;
                    }
                }
            }
        }
    }

    /// One item off the transport: a frame of packages, the end, or an
    /// error.
    async fn on_next(&mut self, frame: Option<Result<Bytes, TransportError>>) -> Result<(), Exit> {
        self.last_inbound = Instant::now();
        let data = match frame {
            // Raw TCP has no close handshake: its EOF may be a network
            // drop. A WebSocket ends with a close frame.
            None if self.conn.name() == "tcp" => return Err(Exit::dropped("client closed")),
            None => return Err(Exit::new("client closed")),
            Some(Err(TransportError::TooLarge(e))) => {
                let limit = self.opts().max_message_size;
                warn!(error = %e, limit, "client frame over the size limit; kicking");
                let reason = format!("{TOO_LARGE} (limit {limit} bytes)");
                return Err(Box::pin(self.kick(&reason)).await);
            }
            Some(Err(e)) => {
                return Err(Exit::dropped(format!("{} error: {e}", self.conn.name())));
            }
            Some(Ok(data)) => data,
        };
        Box::pin(self.on_frame(data)).await
    }

    /// Feeds every queued frame, then flushes once (one or a few socket
    /// writes for a whole burst of pushes).
    async fn write_batch(&mut self, batch: &mut Vec<Bytes>) -> Result<(), Stuck> {
        if batch.is_empty() && !self.wire.as_ref().is_some_and(|w| w.has_pending()) {
            return Ok(());
        }
        let limit = self.opts().write_timeout;
        let live = &self.live;
        let conn = &mut self.conn;
        let write = async {
            for frame in batch.drain(..) {
                conn.feed(frame).await?;
            }
            conn.flush().await
        };
        tokio::pin!(write);
        // Fast path: a client that keeps reading leaves room in its socket
        // buffer, so the batch goes out in this one poll. Only a write that
        // has to wait pays for a timer and the overflow watch below.
        let first = std::future::poll_fn(|cx| Poll::Ready(write.as_mut().poll(cx))).await;
        if let Poll::Ready(result) = first {
            return result.map_err(|e| Stuck::Failed(Exit::dropped(format!("write failed: {e}"))));
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
                        Ok(Err(e)) => Err(Stuck::Failed(Exit::dropped(format!("write failed: {e}")))),
                        Err(_) => {
                            warn!(?limit, "client did not read for too long; kicking");
                            Err(Stuck::Timeout)
                        }
                    };
                }
                // A write blocked on a client that stopped reading must not
                // keep its overflowing queue alive: abandon it and close.
                _ = live.wait_outbound() => {
                    woke = true;
                    if live.overflowed() {
                        return Err(Stuck::Overflow);
                    }
                }
            }
        }
    }

    /// Sends KICK `{"reason": reason}` (in WORKING, within [`KICK_WRITE`])
    /// and returns the exit that closes the connection.
    async fn kick(&mut self, reason: &str) -> Exit {
        crate::telemetry::m().kick(reason);
        self.live.close_wire();
        if self.state == STATE_WORKING
            && let Ok(kick) = encode_package(PackageType::Kick, &handshake::kick_body(reason))
        {
            let _ = timeout(KICK_WRITE, self.conn.send(kick)).await;
        }
        Exit::new(format!("kick: {reason}"))
    }

    /// Writes one frame of the agent's own (handshake reply, heartbeat).
    /// On plain TCP it goes straight to the [`Wire`], framed there like a
    /// push: tungstenite's write buffer is then never allocated for an
    /// idle connection.
    async fn write_one(&mut self, frame: Bytes) -> Result<(), Exit> {
        let limit = self.opts().write_timeout;
        if let Some(wire) = &self.wire {
            if let Err(e) = wire.write_own(&frame) {
                return Err(Exit::new(format!("write failed: {e}")));
            }
            return match timeout(limit, self.conn.flush()).await {
                Ok(Ok(())) => Ok(()),
                Ok(Err(e)) => Err(Exit::new(format!("write failed: {e}"))),
                Err(_) => Err(Exit::new("write timeout")),
            };
        }
        match timeout(limit, self.conn.send(frame)).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(Exit::dropped(format!("write failed: {e}"))),
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
                    if let Some(resumed) = self.resume.take_claimed() {
                        self.adopt(resumed);
                    }
                    self.state = STATE_WORKING;
                    self.live.set_state(STATE_WORKING);
                    self.idle_deadline = self.opts().idle_timeout.map(|i| self.last_inbound + i);
                    debug!("handshake acknowledged");
                    self.on_heartbeat().await?;
                }
                (STATE_WORKING, PackageType::Heartbeat) => self.on_heartbeat().await?,
                (STATE_WORKING, PackageType::Data) => self.on_data(package.body).await?,
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
                return Err(self.refuse_handshake(CODE_FAIL, "bad handshake").await);
            }
        };
        // A handle of its own: the options stay borrowed while the resume
        // state (`self.resume`) changes.
        let app = self.app.clone();
        let opts = app.connector_options();
        // Pomelo's `checkClient(type, version)`: false → 501, then close.
        if let Some(check) = &opts.check_client
            && !check.allows(
                request.sys.client_type.as_deref(),
                request.sys.version.as_deref(),
            )
        {
            debug!(client = ?request.sys.client_type, version = ?request.sys.version,
                   "checkClient refused the client; answering 501 and closing");
            let exit = self.refuse_handshake(CODE_OLD_CLIENT, "client refused by checkClient");
            return Err(exit.await);
        }
        if let Some(user) = request.user {
            self.live.set_handshake_user(user);
        }
        let restored = match request
            .sys
            .resume
            .as_ref()
            .and_then(serde_json::Value::as_str)
        {
            Some(token) => self.restore_foreign(token).await,
            None => None,
        };
        let resume = (self.resume).handshake(
            app.sessions(),
            request.sys.resume.as_ref(),
            &self.live,
            restored,
        );
        let reply = HandshakeReply {
            heartbeat_secs: opts.heartbeat_secs(),
            dict: app.dictionary().map(|d| d.as_ref()),
            client_dict_version: request.sys.dict_version.as_deref(),
            protos: opts.protos.as_deref(),
            client_proto_version: request.sys.proto_version.as_ref(),
            user: None,
            resume,
        };
        let frame = encode_package(PackageType::Handshake, &reply.to_json())
            .map_err(|e| Exit::new(format!("handshake reply too large: {e}")))?;
        self.write_one(frame).await?;
        self.state = STATE_WAIT_ACK;
        self.live.set_state(STATE_WAIT_ACK);
        crate::telemetry::m().handshakes_ok.increment(1);
        debug!(client = ?request.sys.client_type, "handshake answered");
        Ok(())
    }

    /// A resume token of another frontend, or of a previous run of this
    /// one: the app rebuilds that session here if its frontend is lost
    /// (`app/restore.rs`). `None`: not such a token, or no restore (logged).
    async fn restore_foreign(&self, token: &str) -> Option<Parked> {
        let resume = self
            .app
            .sessions()
            .resume()
            .filter(|r| !r.window().is_zero())?;
        let claims = resume.verify(token).ok()?;
        if resume.is_local(&claims) {
            return None;
        }
        let window = resume.window();
        let from = claims.frontend_id.clone();
        match self.app.restore_session(claims).await {
            Ok(live) => {
                let nonce = live.resume_nonce()?;
                Some(Parked::restored(live, nonce, window))
            }
            Err(why) => {
                tracing::info!(%from, %why, "resume from a lost frontend refused; a new session starts");
                None
            }
        }
    }

    /// Session resume: this connection takes over the parked session its
    /// handshake claimed (its own fresh one is dropped unseen) and writes
    /// the pushes queued while it was parked.
    fn adopt(&mut self, resumed: Arc<LiveSession>) {
        let fresh = std::mem::replace(&mut self.live, resumed);
        self.app.sessions().remove(fresh.sid());
        fresh.finish("replaced by the session it resumed");
        debug!(resumed_sid = self.live.sid(), "session resumed");
        self.live.rewake();
    }

    /// §4.2: the error reply `{"code":<code>}`, then the close.
    async fn refuse_handshake(&mut self, code: u16, reason: &str) -> Exit {
        if let Ok(reply) = encode_package(PackageType::Handshake, &handshake::handshake_error(code))
        {
            let _ = self.write_one(reply).await;
        }
        crate::telemetry::m().handshakes_failed.increment(1);
        Exit::new(reason)
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

    /// Runs one DATA message if the client's budget allows it; refuses it
    /// (an error response to a request, nothing for a notify) if not; KICKs
    /// a client that keeps going past its budget.
    async fn on_data(&mut self, body: Bytes) -> Result<(), Exit> {
        let mut msg = match decode_message(body, self.app.dictionary().map(|d| d.as_ref())) {
            Ok(m) => m,
            Err(e) => {
                warn!(error = %e, "undecodable message dropped");
                return Ok(());
            }
        };
        if !matches!(msg.kind, MessageType::Request | MessageType::Notify) {
            warn!(kind = ?msg.kind, "client sent a server-only message type; dropped");
            return Ok(());
        }
        let protos = self.opts().protos.as_deref();
        let Some(body) = bodies::client_body(protos, &msg.route, std::mem::take(&mut msg.body))
        else {
            return Ok(());
        };
        msg.body = body;
        match self.budget.admit(self.last_inbound) {
            (Verdict::Run, slot) => {
                spawn_request(self.app.clone(), self.live.clone(), msg, slot);
            }
            (Verdict::Refuse(refusal), _) => {
                trace!(?refusal, route = %msg.route, "message refused: over budget");
                let m = crate::telemetry::m();
                match refusal {
                    Refusal::Rate => m.refused_rate.increment(1),
                    Refusal::InFlight => m.refused_inflight.increment(1),
                }
                if msg.kind == MessageType::Request {
                    let body = Bytes::from_static(refusal.body());
                    let protos = self.opts().protos.as_deref();
                    if let Some(frame) = bodies::response_frame(protos, msg.id, &msg.route, body) {
                        let _ = self.live.send(frame);
                    }
                }
            }
            (Verdict::Kick, _) => {
                let opts = self.opts();
                warn!(
                    rate = ?opts.rate_limit,
                    max_inflight = opts.max_inflight,
                    refusals = opts.kick_after_refusals,
                    "client kept exceeding its request budget; kicking"
                );
                return Err(Box::pin(self.kick(KICK_RATE)).await);
            }
        }
        Ok(())
    }
}

/// Why a batch write did not complete.
enum Stuck {
    /// The queue overflowed while the write was blocked.
    Overflow,
    /// The write took longer than `write_timeout`.
    Timeout,
    /// The socket failed.
    Failed(Exit),
}

/// Runs one request/notify in its own task and queues the response.
fn spawn_request<F: Frontend>(
    app: F,
    live: Arc<LiveSession>,
    msg: Message,
    slot: Option<InFlight>,
) {
    let guard = app.inflight().enter();
    // Under the connection's span (server, sid): the route, the uid once
    // bound, and the trace every server of this request logs.
    let span = info_span!(
        "request",
        route = %msg.route,
        id = msg.id,
        uid = live.uid().as_deref(),
        trace_id = tracing::field::Empty
    );
    let trace = crate::trace::begin(&span, None);
    tokio::spawn(crate::trace::scope(
        trace,
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
                let protos = app.connector_options().protos.as_deref();
                if let Some(frame) = bodies::response_frame(protos, msg.id, &msg.route, body)
                    && let Err(e) = live.send(frame)
                {
                    debug!(error = %e, "response not delivered");
                }
            }
            drop(guard);
            drop(slot);
        }
        .instrument(span),
    ));
}
