//! The client-facing side of a frontend server.
//!
//! * [`acceptor`] — the TCP listener: connection limit, TCP_NODELAY, one
//!   agent task per connection, graceful shutdown.
//! * `agent` — one connection: WebSocket upgrade (any path), the §2.3
//!   state machine, heartbeats (§4.4), the outbound queue and kicks.
//! * [`budget`] — per-client budgets: requests per second and in flight,
//!   connections per address (see `docs/security.md` for each outcome).
//! * [`proxy`] — the real client address behind a load balancer (PROXY
//!   protocol, `X-Forwarded-For`), believed from trusted proxies only.
//! * [`tls`] — `wss://`: rustls with the certificate reloaded when its
//!   files change.
//!
//! * `sniff` — WebSocket and raw TCP on the same port (Pomelo's hybrid
//!   connector): the first byte tells them apart.
//! * `bodies` — protobuf bodies (§5.3) for the routes the app's protos
//!   name: client bodies to JSON, responses and pushes from JSON.
//!
//! One connection's way in: accept (connection caps) → PROXY header (from
//! a trusted proxy) → TLS → first byte: raw TCP (packages framed by their
//! header), or the WebSocket upgrade (Origin allow-list, `X-Forwarded-For`)
//! → the agent's state machine, the same for both transports.
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
mod bodies;
pub mod budget;
pub mod proxy;
mod sniff;
pub mod tls;

pub use crate::session::{Tracker, TrackerGuard};

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;

use crate::config::{ConnectorLimits, ServerInfo};
use crate::protocol::{Protos, RouteDictionary};
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

    /// An operator drained this frontend (`shaddock drain`): it takes no
    /// new connection and keeps the ones it has.
    fn draining(&self) -> bool {
        false
    }

    /// The route dictionary, when `use_dict` is on.
    fn dictionary(&self) -> Option<&Arc<RouteDictionary>>;

    /// Requests currently running (graceful shutdown waits for them).
    fn inflight(&self) -> &Tracker;

    /// Session resume after a crash: rebuilds here the session `claims`
    /// (a token of another frontend, or of a previous run of this one)
    /// describe, once that frontend is known lost, with its members back
    /// from their owners (`app/restore.rs`). `Err` says why not; the client
    /// then starts a new session.
    fn restore_session(
        &self,
        claims: crate::session::TokenClaims,
    ) -> impl Future<Output = Result<Arc<crate::session::LiveSession>, String>> + Send {
        let _ = claims;
        async { Err("this frontend does not restore sessions of other frontends".to_owned()) }
    }

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
    /// Largest inbound WebSocket message / frame, or raw TCP package body;
    /// bigger ones close the connection (KICK first). Client messages are small; this bounds memory per client.
    pub max_message_size: usize,
    /// Outbound queue bound per connection, in frames. A client that falls
    /// this far behind is KICKed (`"outbound queue overflow …"`) and closed
    /// instead of slowing others.
    pub queue_bound: usize,
    /// Outbound queue bound per connection, in bytes (same outcome as
    /// `queue_bound`): a few large pushes cost as much as many small ones.
    pub queue_bytes: usize,
    /// Requests and notifies one client may have running at once; beyond
    /// it a request is answered [`budget::REFUSED_INFLIGHT`], a notify is
    /// dropped.
    pub max_inflight: usize,
    /// Token bucket per client: `(messages per second, burst)`; beyond it a
    /// request is answered [`budget::REFUSED_RATE`], a notify is dropped.
    /// `None`: no rate limit.
    pub rate_limit: Option<(u32, u32)>,
    /// Refusals (rate or in flight) within [`budget::ABUSE_WINDOW`] after
    /// which the client is KICKed (`"rate limit exceeded"`) and closed.
    pub kick_after_refusals: u32,
    /// Close a connection (KICK `"idle timeout"` first) after this long
    /// without any package from the client — heartbeats count. The only
    /// timeout of a frontend without heartbeats (the gate). `None`: never.
    pub idle_timeout: Option<Duration>,
    /// Open connections allowed from one remote IP address; further ones
    /// are closed on accept (logged). `None`: no cap.
    pub max_connections_per_address: Option<usize>,
    /// New connections one remote IP address may open per second, with a
    /// burst: `(per second, burst)`; further ones are closed on accept
    /// (logged, rate-limited). Holds a client that is kicked for abuse and
    /// logs in again at once to this rate. `None` (the default): no limit —
    /// a NAT, a load balancer without `trusted-proxies`, or a load robot
    /// puts many players behind one address.
    pub connect_rate_per_address: Option<(u32, u32)>,
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
    /// `None`: no cap.
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
    /// TLS on the client port (`wss://`); `None`: plain `ws://`.
    pub tls: Option<tls::Tls>,
    /// Browser origins allowed to open a WebSocket (`Origin` header, e.g.
    /// `https://play.example.com`); others get HTTP 403. A client that sends
    /// no `Origin` (native clients, the Rust client) is let in: the check is
    /// against other web pages using a player's browser. `None`: any origin.
    pub allowed_origins: Option<Vec<String>>,
    /// Load balancers whose PROXY header and `X-Forwarded-For` give the
    /// client's address (see [`proxy`]).
    pub trusted_proxies: proxy::TrustedProxies,
    /// Trusted proxies send a PROXY protocol header (v1 or v2) first.
    pub proxy_protocol: bool,
    /// Which transports the client port serves (default both: WebSocket and
    /// raw TCP, told apart by the first byte). A connection of another one
    /// is closed with a log line.
    pub transports: Transports,
    /// Pomelo's `checkClient(type, version)`: called with the handshake's
    /// `sys.type` and `sys.version`; `false` answers `{"code":501}` and
    /// closes the connection. `None`: every client is let in.
    pub check_client: Option<CheckClient>,
    /// Write window (`write-window-ms` in connector.json): when set, pushes
    /// and responses are queued and each connection writes what it has once
    /// per window (one system call for many pushes: less CPU, up to this
    /// much more latency), like Pomelo's buffered connector. `None` (the
    /// default): written at once, from the fan-out itself on plain TCP
    /// (`session::wire`).
    pub write_window: Option<Duration>,
    /// Protobuf bodies (`config/serverProtos.json`, `clientProtos.json`,
    /// loaded by the launcher): announced in the handshake, used for the
    /// routes they name. `None`: JSON everywhere.
    pub protos: Option<Arc<Protos>>,
    /// Session resume (`session/resume.rs`, protocol.md §13.6): how long
    /// the session of a dropped connection is kept for its client to come
    /// back with its token; pushes meanwhile wait in its outbound queue
    /// (`queue_bound` / `queue_bytes`). Only clients that ask for resume in
    /// their handshake are kept. Zero: off.
    pub resume_window: Duration,
    /// What the app should do with a login of a uid another frontend holds
    /// (`connector.json` `duplicate-login`). The framework does not decide
    /// it alone: the app's directory of uids (the chat's room owners) reads
    /// it; see `docs/scaling.md`.
    pub duplicate_login: DuplicateLogin,
}

/// A second login of a uid held elsewhere (Pomelo #579, #745: without a
/// rule the uid is bound twice and its pushes arrive twice).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum DuplicateLogin {
    /// The new login is refused; the first session keeps going.
    #[default]
    Refuse,
    /// The old session is kicked; the new one takes its place.
    Kick,
}

impl DuplicateLogin {
    /// From `connector.json`'s `"duplicate-login": "refuse" | "kick"`.
    pub fn parse(name: &str) -> Result<Self, String> {
        match name {
            "refuse" => Ok(DuplicateLogin::Refuse),
            "kick" => Ok(DuplicateLogin::Kick),
            other => Err(format!(
                "unknown duplicate-login policy `{other}` (expected \"refuse\" or \"kick\")"
            )),
        }
    }
}

/// The transports a frontend serves on its client port.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Transports {
    /// WebSocket (`ws://`, `wss://` with TLS).
    pub ws: bool,
    /// Raw TCP (Pomelo's native clients; TLS under it when configured).
    pub tcp: bool,
}

impl Default for Transports {
    fn default() -> Self {
        Transports {
            ws: true,
            tcp: true,
        }
    }
}

impl Transports {
    /// From `connector.json`'s `"transports": ["ws", "tcp"]`.
    pub fn parse(names: &[String]) -> Result<Self, String> {
        let mut t = Transports {
            ws: false,
            tcp: false,
        };
        for name in names {
            match name.as_str() {
                "ws" => t.ws = true,
                "tcp" => t.tcp = true,
                other => {
                    return Err(format!(
                        "unknown transport `{other}` (expected \"ws\" and/or \"tcp\")"
                    ));
                }
            }
        }
        if !(t.ws || t.tcp) {
            return Err("no transport: list \"ws\", \"tcp\" or both".into());
        }
        Ok(t)
    }

    pub(crate) fn allows(&self, kind: sniff::Kind) -> bool {
        match kind {
            sniff::Kind::WebSocket => self.ws,
            sniff::Kind::Tcp => self.tcp,
        }
    }

    pub(crate) fn name(&self, kind: sniff::Kind) -> &'static str {
        match kind {
            sniff::Kind::WebSocket => "ws",
            sniff::Kind::Tcp => "tcp",
        }
    }

    /// The served transports' names.
    pub fn names(&self) -> Vec<&'static str> {
        [(self.ws, "ws"), (self.tcp, "tcp")]
            .into_iter()
            .filter_map(|(on, name)| on.then_some(name))
            .collect()
    }
}

/// The `checkClient` hook (see [`ConnectorOptions::check_client`]).
#[derive(Clone)]
pub struct CheckClient(Arc<ClientCheck>);

/// `(client_type, version) -> allowed`.
type ClientCheck = dyn Fn(Option<&str>, Option<&str>) -> bool + Send + Sync;

impl CheckClient {
    /// `check(client_type, version)`: `true` lets the client in.
    pub fn new(check: impl Fn(Option<&str>, Option<&str>) -> bool + Send + Sync + 'static) -> Self {
        CheckClient(Arc::new(check))
    }

    /// Whether a client of `client_type` and `version` may connect.
    pub fn allows(&self, client_type: Option<&str>, version: Option<&str>) -> bool {
        (self.0)(client_type, version)
    }
}

impl std::fmt::Debug for CheckClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CheckClient(..)")
    }
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
            queue_bytes: 1 << 20,
            max_inflight: 32,
            rate_limit: Some((50, 100)),
            kick_after_refusals: 100,
            idle_timeout: Some(Duration::from_secs(60)),
            max_connections_per_address: Some(256),
            connect_rate_per_address: None,
            handshake_timeout: Duration::from_secs(10),
            write_timeout: Duration::from_secs(10),
            forward_timeout: Duration::from_secs(10),
            max_connections: Some(20_000),
            ws_read_buffer: 512,
            ws_write_buffer: 8 * 1024,
            shutdown_grace: Duration::from_secs(5),
            tls: None,
            allowed_origins: None,
            trusted_proxies: proxy::TrustedProxies::default(),
            proxy_protocol: false,
            transports: Transports::default(),
            check_client: None,
            write_window: None,
            protos: None,
            resume_window: Duration::from_secs(5),
            duplicate_login: DuplicateLogin::Refuse,
        }
    }
}

impl ConnectorOptions {
    /// These options with the transport fields of `connector.json`: TLS
    /// (files relative to `config_dir`, loaded now: a bad file fails the
    /// start with the reason), allowed origins, trusted proxies.
    pub fn with_transport(
        mut self,
        limits: &ConnectorLimits,
        config_dir: &std::path::Path,
    ) -> Result<Self, String> {
        match (&limits.tls_cert, &limits.tls_key) {
            (Some(cert), Some(key)) => {
                let files = tls::TlsFiles {
                    cert: config_dir.join(cert),
                    key: config_dir.join(key),
                };
                self.tls = Some(tls::Tls::load(files)?);
            }
            (None, None) => {}
            _ => {
                return Err(
                    "connector.json: `tls-cert` and `tls-key` go together (PEM files, relative to \
                     the config folder)"
                        .into(),
                );
            }
        }
        if let Some(origins) = &limits.allowed_origins {
            self.allowed_origins = Some(origins.clone());
        }
        if let Some(proxies) = &limits.trusted_proxies {
            self.trusted_proxies = proxy::TrustedProxies::parse(proxies)
                .map_err(|e| format!("connector.json `trusted-proxies`: {e}"))?;
        }
        if let Some(on) = limits.proxy_protocol {
            self.proxy_protocol = on;
        }
        if let Some(names) = &limits.transports {
            self.transports = Transports::parse(names)
                .map_err(|e| format!("connector.json `transports`: {e}"))?;
        }
        if let Some(policy) = &limits.duplicate_login {
            self.duplicate_login = DuplicateLogin::parse(policy)
                .map_err(|e| format!("connector.json `duplicate-login`: {e}"))?;
        }
        if self.proxy_protocol && self.trusted_proxies.is_empty() {
            return Err(
                "connector.json: `proxy-protocol` needs `trusted-proxies` (the load \
                        balancers' addresses): a PROXY header is believed from them only"
                    .into(),
            );
        }
        Ok(self)
    }

    /// These options with the fields `limits` sets (from
    /// `config/connector.json`); `0` turns an optional limit off.
    pub fn with_limits(mut self, limits: &ConnectorLimits) -> Self {
        let off_at_zero = |v: usize| (v > 0).then_some(v);
        let l = limits;
        if let Some(v) = l.max_inflight {
            self.max_inflight = v.max(1);
        }
        match (l.requests_per_second, l.burst) {
            (Some(0), _) => self.rate_limit = None,
            (Some(rate), burst) => {
                let burst = burst.or(self.rate_limit.map(|(_, b)| b)).unwrap_or(rate);
                self.rate_limit = Some((rate, burst.max(1)));
            }
            (None, Some(burst)) => {
                self.rate_limit = self.rate_limit.map(|(rate, _)| (rate, burst.max(1)));
            }
            (None, None) => {}
        }
        if let Some(v) = l.kick_after_refusals {
            self.kick_after_refusals = v.max(1);
        }
        if let Some(v) = l.max_queued_frames {
            self.queue_bound = v.max(1);
        }
        if let Some(v) = l.max_queued_bytes {
            self.queue_bytes = v.max(1);
        }
        if let Some(v) = l.max_message_size {
            self.max_message_size = v.max(16);
        }
        if let Some(ms) = l.resume_window_ms {
            self.resume_window = Duration::from_millis(ms);
        }
        if let Some(ms) = l.idle_timeout_ms {
            self.idle_timeout = (ms > 0).then(|| Duration::from_millis(ms));
        }
        if let Some(v) = l.max_connections {
            self.max_connections = off_at_zero(v);
        }
        match (
            l.connects_per_second_per_address,
            l.connect_burst_per_address,
        ) {
            (Some(0), _) => self.connect_rate_per_address = None,
            (Some(rate), burst) => {
                self.connect_rate_per_address = Some((rate, burst.unwrap_or(rate * 2).max(1)));
            }
            (None, Some(burst)) => {
                self.connect_rate_per_address = self
                    .connect_rate_per_address
                    .map(|(rate, _)| (rate, burst.max(1)));
            }
            (None, None) => {}
        }
        if let Some(v) = l.max_connections_per_address {
            self.max_connections_per_address = off_at_zero(v);
        }
        if let Some(ms) = l.write_window_ms {
            self.write_window = (ms > 0).then(|| Duration::from_millis(ms));
        }
        if let Some(secs) = l.heartbeat_secs {
            self.heartbeat = (secs > 0).then(|| Duration::from_secs(secs));
            self.heartbeat_timeout = None;
        }
        self
    }

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

#[cfg(test)]
mod tests {
    use super::*;

    /// `connector.json`'s heartbeat and write window reach the options,
    /// `0` turning each off; absent fields leave the code's values.
    #[test]
    fn heartbeat_and_write_window_from_connector_json() {
        let code = ConnectorOptions {
            heartbeat: Some(Duration::from_secs(3)),
            heartbeat_timeout: Some(Duration::from_secs(5)),
            ..Default::default()
        };
        let untouched = code.clone().with_limits(&ConnectorLimits::default());
        assert_eq!(untouched.heartbeat, Some(Duration::from_secs(3)));
        assert_eq!(untouched.write_window, None);
        let set = code.clone().with_limits(&ConnectorLimits {
            heartbeat_secs: Some(20),
            write_window_ms: Some(10),
            ..Default::default()
        });
        assert_eq!(set.heartbeat, Some(Duration::from_secs(20)));
        assert_eq!(set.effective_timeout(), Some(Duration::from_secs(40)));
        assert_eq!(set.write_window, Some(Duration::from_millis(10)));
        let off = code.with_limits(&ConnectorLimits {
            heartbeat_secs: Some(0),
            write_window_ms: Some(0),
            ..Default::default()
        });
        assert_eq!((off.heartbeat, off.write_window), (None, None));
        assert_eq!(off.effective_timeout(), None);
    }
}
