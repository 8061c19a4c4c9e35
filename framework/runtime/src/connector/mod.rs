//! The client-facing side of a frontend server.
//!
//! * [`acceptor`] — the TCP listener: connection limit, TCP_NODELAY, one
//!   agent task per connection, graceful shutdown.
//! * `agent` — one connection: WebSocket upgrade (any path), the §2.3
//!   state machine, heartbeats (§4.4), the outbound queue and kicks.
//!
//! [`ConnectorOptions`] holds every knob; the defaults match chatofpomelo's
//! connector except where noted.
//!
//! The connector knows nothing of handlers or the cluster: it hands every
//! decoded message to a [`Frontend`] (the app implements it) and writes back
//! whatever that returns. That keeps the client I/O testable on its own and
//! the dependency arrow pointing one way.

pub mod acceptor;
mod agent;

pub use crate::session::{Tracker, TrackerGuard};

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;

use crate::config::ServerInfo;
use crate::protocol::RouteDictionary;
use crate::session::{Session, SessionService};

use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

pub use acceptor::Acceptor;

/// What the connector needs from the server it fronts. [`App`](crate::App)
/// implements it; cloning must be cheap (one clone per connection and per
/// request).
pub trait Frontend: Clone + Send + Sync + 'static {
    /// This server's servers.json entry (id, host, clientPort, limits).
    fn server(&self) -> &ServerInfo;

    fn server_id(&self) -> &str {
        &self.server().id
    }

    fn connector_options(&self) -> &ConnectorOptions;

    /// The live sessions of this frontend.
    fn sessions(&self) -> &SessionService;

    /// The route dictionary, when `use_dict` is on.
    fn dictionary(&self) -> Option<&Arc<RouteDictionary>>;

    /// Requests currently running (graceful shutdown waits for them).
    fn inflight(&self) -> &Tracker;

    /// Runs one client message and returns the response body (`None`: send
    /// nothing — a notify, or a route Pomelo drops).
    fn dispatch(
        &self,
        session: Session,
        route: &str,
        body: Bytes,
        is_request: bool,
    ) -> impl Future<Output = Option<Bytes>> + Send;
}

/// Connector settings (Pomelo's `app.set('connectorConfig', ...)`).
#[derive(Debug, Clone)]
pub struct ConnectorOptions {
    /// Heartbeat interval sent in the handshake; `None` disables heartbeats
    /// (no `sys.heartbeat`, no timeout).
    pub heartbeat: Option<Duration>,
    /// Close a connection after this long without a client HEARTBEAT.
    /// `None` = twice the heartbeat (Pomelo's default).
    pub heartbeat_timeout: Option<Duration>,
    /// Compress routes with the route dictionary and send it in the
    /// handshake (`useDict`).
    pub use_dict: bool,
    /// Extra dictionary routes appended after the handler routes (Pomelo's
    /// `config/dictionary.json`), e.g. push routes.
    pub extra_dict_routes: Vec<String>,
    /// Largest inbound WebSocket message / frame; bigger ones close the
    /// connection. Client messages are small; this bounds memory per client.
    pub max_message_size: usize,
    /// Outbound queue bound per connection, in frames. A client that falls
    /// this far behind is closed (with a log line) instead of slowing others.
    pub queue_bound: usize,
    /// Time allowed from TCP accept to the HANDSHAKE_ACK (covers the
    /// WebSocket upgrade too). Protects against idle half-open sockets.
    pub handshake_timeout: Duration,
    /// How long one batch of writes may take before the client is considered
    /// stuck and closed.
    pub write_timeout: Duration,
    /// Timeout of a request forwarded to another server type.
    pub forward_timeout: Duration,
    /// Cap on concurrent connections (servers.json `max-connections`
    /// overrides it when set); further connections are closed on accept.
    pub max_connections: Option<usize>,
    /// Initial WebSocket read buffer per connection. Kept small: an idle
    /// connection should cost a few KB, not tungstenite's default 128 KiB
    /// (measured with the demo frontend, release build, 5000 idle clients:
    /// 4.07 KB of server RSS per connection with 1024, 3.53 KB with 512).
    /// Larger messages still work; the buffer grows for that connection.
    pub ws_read_buffer: usize,
    /// WebSocket write buffer: frames fed in one batch are coalesced up to
    /// this size before a socket write.
    pub ws_write_buffer: usize,
    /// On shutdown: how long in-flight requests may run, then how long kicked
    /// clients get to go away.
    pub shutdown_grace: Duration,
}

impl Default for ConnectorOptions {
    fn default() -> Self {
        Self {
            heartbeat: Some(Duration::from_secs(3)),
            heartbeat_timeout: None,
            use_dict: true,
            extra_dict_routes: Vec::new(),
            max_message_size: 64 * 1024,
            queue_bound: 256,
            handshake_timeout: Duration::from_secs(10),
            write_timeout: Duration::from_secs(10),
            forward_timeout: Duration::from_secs(10),
            max_connections: None,
            ws_read_buffer: 512,
            ws_write_buffer: 8 * 1024,
            shutdown_grace: Duration::from_secs(5),
        }
    }
}

impl ConnectorOptions {
    /// The effective heartbeat timeout (explicit, or 2 × heartbeat).
    pub fn effective_timeout(&self) -> Option<Duration> {
        let hb = Duration::from_secs(self.heartbeat_secs()?);
        Some(self.heartbeat_timeout.unwrap_or(hb * 2))
    }

    /// The heartbeat as sent in the handshake: whole seconds, at least 1
    /// (the protocol field is an integer number of seconds).
    pub fn heartbeat_secs(&self) -> Option<u64> {
        self.heartbeat.map(|h| h.as_secs().max(1))
    }

    /// The tungstenite configuration for client connections.
    pub fn ws_config(&self) -> WebSocketConfig {
        WebSocketConfig::default()
            .read_buffer_size(self.ws_read_buffer)
            .write_buffer_size(self.ws_write_buffer)
            .max_write_buffer_size(
                self.ws_write_buffer.saturating_mul(2).max(256 * 1024) + self.max_message_size,
            )
            .max_message_size(Some(self.max_message_size))
            .max_frame_size(Some(self.max_message_size))
    }
}
