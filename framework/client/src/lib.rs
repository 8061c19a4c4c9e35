//! A Rust Pomelo client: for tests, bots and the load robot.
//!
//! One task per connection owns the connection (WebSocket or raw TCP); the [`Client`] handle
//! encodes messages itself (with the server's route dictionary) and hands
//! finished frames to that task over a bounded channel, so a request costs
//! one encode, one channel send and one oneshot. The task follows the
//! browser client's rules (§4.4): it never starts heartbeats on its own,
//! answers each server HEARTBEAT after the interval, and closes when the
//! server stays silent for twice the interval.
//!
//! When the server's handshake announces protobuf schemas (`sys.protos`,
//! §5.3), [`Client::request`], [`Client::notify`] and the pushes speak
//! protobuf on the routes they name and JSON elsewhere; the caller only
//! ever sees JSON. The protos are cached by version in
//! [`ClientOptions::protos`] for the next connection.
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use serde_json::{Value, json};
//! use shaddock_client::{Client, ClientOptions};
//! let client = Client::connect("ws://127.0.0.1:3014", ClientOptions::default()).await?;
//! let entry: Value = client.request("gate.gateHandler.queryEntry", &json!({"uid": "bob"})).await?;
//! # let _ = entry;
//! # Ok(())
//! # }
//! ```

mod protos;
mod task;

pub use protos::ProtoCache;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot, watch};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_util::either::Either;

use shaddock_protocol::encode_data_frame;
use shaddock_protocol::handshake::{CODE_OK, HandshakeResponse};
use shaddock_protocol::transport::PackageTransport;
use shaddock_protocol::{
    EncodeError, HANDSHAKE_ACK, Message, PackageType, ProtobufError, Protos, RouteDictionary,
    decode_packages, encode_package,
};

/// Client settings.
#[derive(Debug, Clone)]
pub struct ClientOptions {
    /// TCP connect + WebSocket upgrade + Pomelo handshake.
    pub connect_timeout: Duration,
    /// Default time to wait for a response.
    pub request_timeout: Duration,
    /// `user` object of the handshake.
    pub handshake_user: Option<Value>,
    /// Extra `sys` fields of the handshake (merged over `type`/`version`).
    pub handshake_sys: Map<String, Value>,
    /// Pushes buffered for [`Client::next_push`] (and per subscription);
    /// when full, further pushes are dropped with a warning rather than
    /// stalling heartbeats and responses.
    pub push_capacity: usize,
    /// Answer server heartbeats. Turning this off simulates a dead client
    /// (tests use it to watch the server's timeout).
    pub send_heartbeats: bool,
    /// Largest message accepted from the server.
    pub max_message_size: usize,
    /// TLS for `wss://` URLs: which certificates to trust. `None`: the
    /// public web's roots (webpki-roots). See [`tls_trusting`] for a
    /// private CA or a self-signed test certificate.
    pub tls: Option<Arc<rustls::ClientConfig>>,
    /// Protobuf schemas received from servers, by version (clones of these
    /// options share it). Sent as `sys.protoVersion` in the handshake.
    pub protos: ProtoCache,
    /// Local (source) address to bind before connecting; `None` lets the
    /// kernel choose. A load robot spreads its connections over several
    /// addresses (127.0.0.x on loopback) because each source address has
    /// only the ephemeral port range (~28 000 ports) to offer and servers
    /// may cap connections per address (docs/benchmarks.md).
    pub local_addr: Option<std::net::IpAddr>,
    /// Ask the server for session resume (`sys.resume: true`): it then
    /// keeps this client's session for a while when the connection drops,
    /// and [`Client::resume`] gets it back (protocol.md §13.6).
    pub resumable: bool,
}

impl Default for ClientOptions {
    fn default() -> Self {
        Self {
            connect_timeout: Duration::from_secs(5),
            request_timeout: Duration::from_secs(5),
            handshake_user: None,
            handshake_sys: Map::new(),
            push_capacity: 1024,
            send_heartbeats: true,
            max_message_size: 16 << 20,
            tls: None,
            protos: ProtoCache::default(),
            local_addr: None,
            resumable: false,
        }
    }
}

/// A server push.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Push {
    pub route: String,
    /// The body as JSON text: decoded from protobuf when the server's
    /// protos name the route.
    pub body: Bytes,
}

impl Push {
    /// The body as JSON.
    pub fn json<T: DeserializeOwned>(&self) -> Result<T, serde_json::Error> {
        serde_json::from_slice(&self.body)
    }
}

/// Why the connection ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CloseReason {
    /// The server sent KICK with this reason.
    Kicked(String),
    /// The server closed the connection without a KICK.
    ServerClosed,
    /// No package from the server within twice the heartbeat interval.
    HeartbeatTimeout,
    /// [`Client::close`] was called or the client was dropped.
    Closed,
    /// A transport or protocol error.
    Error(String),
}

/// Why a client call failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ClientError {
    #[error("cannot connect to {url}: {reason}")]
    Connect { url: String, reason: String },
    #[error("connecting to {0} timed out")]
    ConnectTimeout(String),
    #[error("handshake refused with code {0}")]
    Handshake(u16),
    #[error("no response to `{route}` within {after:?}")]
    Timeout { route: String, after: Duration },
    #[error("no push within {0:?}")]
    PushTimeout(Duration),
    #[error("connection closed: {0:?}")]
    Closed(CloseReason),
    #[error("cannot encode the message: {0}")]
    Encode(#[from] EncodeError),
    #[error("JSON error: {0}")]
    Json(String),
    #[error("protobuf body: {0}")]
    Protobuf(#[from] ProtobufError),
}

impl From<serde_json::Error> for ClientError {
    fn from(e: serde_json::Error) -> Self {
        Self::Json(e.to_string())
    }
}

pub(crate) enum Command {
    Frame(Bytes),
    Close,
    /// Drop the connection without a close handshake (a network loss).
    Abort,
}

/// Where the pushes of one route go.
#[derive(Clone)]
pub(crate) enum PushRoute {
    /// Queued for a [`Client::subscribe`] receiver.
    Queue(mpsc::Sender<Push>),
    /// Handed to a [`Client::on_push`] callback on the connection task.
    Call(PushHandler),
}

/// A push callback (see [`Client::on_push`]).
pub type PushHandler = Arc<dyn Fn(Push) + Send + Sync>;

pub(crate) type PushRoutes = Mutex<HashMap<String, PushRoute>>;

/// State shared between the handle and the connection task.
pub(crate) struct Shared {
    pub(crate) pending: Mutex<HashMap<u32, oneshot::Sender<Bytes>>>,
    pub(crate) dict: Option<RouteDictionary>,
    /// The server's protobuf schemas, when it uses protobuf.
    pub(crate) protos: Option<Arc<Protos>>,
    pub(crate) subscriptions: PushRoutes,
    pub(crate) pushes: mpsc::Sender<Push>,
    pub(crate) closed: watch::Sender<Option<CloseReason>>,
    /// The latest session resume token the server gave.
    pub(crate) resume_token: Mutex<Option<String>>,
}

pub(crate) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// A connected, handshaken client. Dropping it closes the connection.
pub struct Client {
    shared: Arc<Shared>,
    /// To the current connection's task (replaced by [`Client::resume`]).
    commands: Mutex<mpsc::Sender<Command>>,
    pushes: tokio::sync::Mutex<mpsc::Receiver<Push>>,
    next_id: AtomicU32,
    handshake: HandshakeResponse,
    options: ClientOptions,
}

impl Client {
    /// Connects to `url` — `ws://host:port[/path]`, `wss://…`, or raw TCP
    /// `tcp://host:port`, `tcp+tls://host:port` (the transport of Pomelo's
    /// native clients; same API) — performs the handshake and the ACK, and
    /// starts the connection task.
    pub async fn connect(url: &str, options: ClientOptions) -> Result<Self, ClientError> {
        let resume = options.resumable.then_some(Value::Bool(true));
        let (ws, handshake) = open_within(url, &options, resume).await?;
        let protos = options
            .protos
            .after_handshake(&handshake)
            .map_err(|reason| ClientError::Connect {
                url: url.to_owned(),
                reason,
            })?;
        let (push_tx, push_rx) = mpsc::channel(options.push_capacity.max(1));
        let shared = Arc::new(Shared {
            pending: Mutex::default(),
            dict: handshake.dictionary(),
            protos,
            subscriptions: Mutex::default(),
            pushes: push_tx,
            closed: watch::channel(None).0,
            resume_token: Mutex::new(handshake.sys.resume.as_ref().map(|r| r.token.clone())),
        });
        let commands = start_task(ws, &shared, &handshake, &options);
        Ok(Self {
            shared,
            commands: Mutex::new(commands),
            pushes: tokio::sync::Mutex::new(push_rx),
            // Continue after 0 like the browser client: first id is 1.
            next_id: AtomicU32::new(1),
            handshake,
            options,
        })
    }

    /// The session resume token the server gave (when
    /// [`ClientOptions::resumable`] is on and the server offers resume).
    pub fn resume_token(&self) -> Option<String> {
        lock(&self.shared.resume_token).clone()
    }

    /// Sets the token [`resume`](Self::resume) sends: one kept from an
    /// earlier connection (or an earlier run of the client app).
    pub fn set_resume_token(&self, token: String) {
        *lock(&self.shared.resume_token) = Some(token);
    }

    /// Drops the connection without a close handshake, as a network loss
    /// would (tests use it; the server may keep the session for resume).
    pub async fn abort(&self) {
        let _ = self.commands().send(Command::Abort).await;
        let _ = self.closed_within(Duration::from_secs(2)).await;
    }

    /// Reconnects to `url` (the same connector, or another of the cluster)
    /// with the resume token and continues on the new connection: same
    /// handle, pushes, subscriptions and request ids. `Ok(true)`: the
    /// server gave the session back (same uid and state; the pushes sent
    /// meanwhile follow in order). `Ok(false)`: it had no session for the
    /// token any more (the window passed) — the connection is a new, empty
    /// session, so log in again. A connection still open is dropped first.
    pub async fn resume(&self, url: &str) -> Result<bool, ClientError> {
        let token = self.resume_token().ok_or_else(|| ClientError::Connect {
            url: url.to_owned(),
            reason: "no resume token: connect with ClientOptions::resumable against a \
                     frontend with session resume on"
                .into(),
        })?;
        if self.is_open() {
            self.abort().await;
        }
        let (ws, handshake) = open_within(url, &self.options, Some(Value::String(token))).await?;
        let offer = handshake.sys.resume.clone();
        *lock(&self.shared.resume_token) = offer.as_ref().map(|r| r.token.clone());
        self.shared.closed.send_replace(None);
        let commands = start_task(ws, &self.shared, &handshake, &self.options);
        *lock(&self.commands) = commands;
        Ok(offer.is_some_and(|r| r.resumed))
    }

    fn commands(&self) -> mpsc::Sender<Command> {
        lock(&self.commands).clone()
    }

    /// The server's handshake reply.
    pub fn handshake(&self) -> &HandshakeResponse {
        &self.handshake
    }

    /// The route dictionary the server sent, if any.
    pub fn dictionary(&self) -> Option<&RouteDictionary> {
        self.shared.dict.as_ref()
    }

    /// The protobuf schemas in use on this connection, if the server uses
    /// protobuf.
    pub fn protos(&self) -> Option<&Arc<Protos>> {
        self.shared.protos.as_ref()
    }

    /// Sends a request with a JSON body and decodes the JSON response
    /// (protobuf on the wire when the server's protos name the route).
    pub async fn request<Req, Resp>(&self, route: &str, req: &Req) -> Result<Resp, ClientError>
    where
        Req: Serialize + ?Sized,
        Resp: DeserializeOwned,
    {
        let body = self.outgoing(route, serde_json::to_vec(req)?)?;
        let mut resp = self.request_raw(route, body).await?;
        if let Some(protos) = self.protos() {
            resp = protos.server_body_to_json(route, resp)?;
        }
        Ok(serde_json::from_slice(&resp)?)
    }

    /// A JSON body as the wire carries it on `route`.
    fn outgoing(&self, route: &str, json: Vec<u8>) -> Result<Bytes, ClientError> {
        match self.protos() {
            Some(protos) => Ok(protos.client_body_from_json(route, json.into())?),
            None => Ok(json.into()),
        }
    }

    /// Sends a request and returns the raw response body, waiting at most
    /// the configured request timeout. The body goes out as given and
    /// comes back as the wire carries it (no protobuf conversion).
    pub async fn request_raw(
        &self,
        route: &str,
        body: impl Into<Bytes>,
    ) -> Result<Bytes, ClientError> {
        self.request_raw_timeout(route, body, self.options.request_timeout)
            .await
    }

    /// [`request_raw`](Self::request_raw) with an explicit timeout.
    pub async fn request_raw_timeout(
        &self,
        route: &str,
        body: impl Into<Bytes>,
        after: Duration,
    ) -> Result<Bytes, ClientError> {
        let mut id = self.next_id.fetch_add(1, Ordering::Relaxed);
        if id == 0 {
            id = self.next_id.fetch_add(1, Ordering::Relaxed);
        }
        let frame = encode_data_frame(&Message::request(id, route, body), self.dictionary())?;
        let (tx, rx) = oneshot::channel();
        lock(&self.shared.pending).insert(id, tx);
        // Removes the pending entry if this future is dropped or times out.
        let _pending = PendingGuard {
            shared: &self.shared,
            id,
        };
        let deadline = tokio::time::Instant::now() + after;
        let timeout = || ClientError::Timeout {
            route: route.to_owned(),
            after,
        };
        match tokio::time::timeout_at(deadline, self.commands().send(Command::Frame(frame))).await {
            Ok(Ok(())) => {}
            Ok(Err(_)) => return Err(ClientError::Closed(self.close_reason_or_closed())),
            Err(_) => return Err(timeout()),
        }
        match tokio::time::timeout_at(deadline, rx).await {
            Ok(Ok(body)) => Ok(body),
            Ok(Err(_)) => Err(ClientError::Closed(self.close_reason_or_closed())),
            Err(_) => Err(timeout()),
        }
    }

    /// Sends a notify (no response) with a JSON body.
    pub async fn notify<Req: Serialize + ?Sized>(
        &self,
        route: &str,
        req: &Req,
    ) -> Result<(), ClientError> {
        let body = self.outgoing(route, serde_json::to_vec(req)?)?;
        self.notify_raw(route, body).await
    }

    /// Sends a notify with a raw body (as given: no protobuf conversion).
    pub async fn notify_raw(&self, route: &str, body: impl Into<Bytes>) -> Result<(), ClientError> {
        let frame = encode_data_frame(&Message::notify(route, body), self.dictionary())?;
        self.send_frame(frame).await
    }

    /// Sends pre-encoded bytes as one binary frame (tests use it to send
    /// packages the client would never build).
    pub async fn send_frame(&self, frame: Bytes) -> Result<(), ClientError> {
        match tokio::time::timeout(
            self.options.request_timeout,
            self.commands().send(Command::Frame(frame)),
        )
        .await
        {
            Ok(Ok(())) => Ok(()),
            Ok(Err(_)) => Err(ClientError::Closed(self.close_reason_or_closed())),
            Err(_) => Err(ClientError::Timeout {
                route: "<frame>".into(),
                after: self.options.request_timeout,
            }),
        }
    }

    /// The next push not taken by a route subscription; `None` once the
    /// connection is closed and the buffer is drained.
    pub async fn next_push(&self) -> Option<Push> {
        self.pushes.lock().await.recv().await
    }

    /// [`next_push`](Self::next_push) with a timeout.
    pub async fn next_push_timeout(&self, after: Duration) -> Result<Push, ClientError> {
        match tokio::time::timeout(after, self.next_push()).await {
            Ok(Some(p)) => Ok(p),
            Ok(None) => Err(ClientError::Closed(self.close_reason_or_closed())),
            Err(_) => Err(ClientError::PushTimeout(after)),
        }
    }

    /// Routes pushes of `route` to the returned receiver (instead of
    /// [`next_push`](Self::next_push)). A second subscription to the same
    /// route replaces the first.
    pub fn subscribe(&self, route: &str) -> mpsc::Receiver<Push> {
        let (tx, rx) = mpsc::channel(self.options.push_capacity.max(1));
        lock(&self.shared.subscriptions).insert(route.to_owned(), PushRoute::Queue(tx));
        rx
    }

    /// Calls `handler` for every push of `route`, on the connection task as
    /// the push is decoded, instead of queueing it (replaces a
    /// subscription to the same route). No channel and no second task wake
    /// per push: the load robot uses it so that measuring pushes costs
    /// little CPU next to the server it measures. The handler must be quick
    /// and must never block: reading and heartbeats wait while it runs.
    pub fn on_push(&self, route: &str, handler: impl Fn(Push) + Send + Sync + 'static) {
        lock(&self.shared.subscriptions)
            .insert(route.to_owned(), PushRoute::Call(Arc::new(handler)));
    }

    /// Why the connection ended, once it has.
    pub fn close_reason(&self) -> Option<CloseReason> {
        self.shared.closed.borrow().clone()
    }

    fn close_reason_or_closed(&self) -> CloseReason {
        self.close_reason().unwrap_or(CloseReason::Closed)
    }

    /// Whether the connection is still open.
    pub fn is_open(&self) -> bool {
        self.close_reason().is_none()
    }

    /// Waits until the connection ends and returns why.
    pub async fn closed(&self) -> CloseReason {
        let mut rx = self.shared.closed.subscribe();
        match rx.wait_for(Option::is_some).await {
            Ok(reason) => reason.clone().unwrap_or(CloseReason::Closed),
            Err(_) => CloseReason::Closed,
        }
    }

    /// [`closed`](Self::closed) with a timeout; `None` if still open.
    pub async fn closed_within(&self, after: Duration) -> Option<CloseReason> {
        tokio::time::timeout(after, self.closed()).await.ok()
    }

    /// Closes the connection and waits (briefly) for the task to finish.
    pub async fn close(&self) {
        let _ = self.commands().send(Command::Close).await;
        let _ = self.closed_within(Duration::from_secs(2)).await;
    }
}

struct PendingGuard<'a> {
    shared: &'a Shared,
    id: u32,
}

impl Drop for PendingGuard<'_> {
    fn drop(&mut self) {
        lock(&self.shared.pending).remove(&self.id);
    }
}

/// Plain TCP (`ws://`, `tcp://`) or TLS over it (`wss://`, `tcp+tls://`).
pub(crate) type Stream = Either<TcpStream, tokio_rustls::client::TlsStream<TcpStream>>;
/// The connection: packages over a WebSocket or raw TCP.
pub(crate) type Conn = PackageTransport<Stream>;

/// A TLS setup that trusts the PEM certificates in `pem` (a private CA, or
/// the server's own self-signed certificate) for `wss://` URLs.
pub fn tls_trusting(pem: &[u8]) -> Result<Arc<rustls::ClientConfig>, ClientError> {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;
    let bad = |reason: String| ClientError::Connect {
        url: String::new(),
        reason,
    };
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(pem) {
        let cert = cert.map_err(|e| bad(format!("not a PEM certificate: {e}")))?;
        roots
            .add(cert)
            .map_err(|e| bad(format!("unusable certificate: {e}")))?;
    }
    Ok(Arc::new(client_config(roots)))
}

fn client_config(roots: rustls::RootCertStore) -> rustls::ClientConfig {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("ring supports the default TLS versions")
        .with_root_certificates(roots)
        .with_no_client_auth()
}

/// The public web's roots, for `wss://` without [`ClientOptions::tls`].
fn default_tls() -> Arc<rustls::ClientConfig> {
    static CONFIG: std::sync::OnceLock<Arc<rustls::ClientConfig>> = std::sync::OnceLock::new();
    CONFIG
        .get_or_init(|| {
            let roots = rustls::RootCertStore {
                roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
            };
            Arc::new(client_config(roots))
        })
        .clone()
}

/// The URL's transport, host and port: `ws://`, `wss://` (WebSocket),
/// `tcp://`, `tcp+tls://` (raw TCP, Pomelo's native clients' transport).
fn raw_tcp_target(url: &str) -> Option<Result<(bool, String, u16), String>> {
    let (secure, rest) = if let Some(rest) = url.strip_prefix("tcp://") {
        (false, rest)
    } else {
        (true, url.strip_prefix("tcp+tls://")?)
    };
    let authority = rest.split('/').next().unwrap_or_default();
    let parsed = authority
        .rsplit_once(':')
        .and_then(|(host, port)| Some((host, port.parse::<u16>().ok()?)))
        .filter(|(host, _)| !host.is_empty())
        .map(|(host, port)| {
            let host = host.trim_matches(|c| c == '[' || c == ']').to_owned();
            (secure, host, port)
        })
        .ok_or_else(|| format!("expected tcp://host:port or tcp+tls://host:port, got {url}"));
    Some(parsed)
}

/// TCP connect, then TLS when `secure`.
async fn connect_stream(
    host: &str,
    port: u16,
    secure: bool,
    options: &ClientOptions,
) -> Result<Stream, String> {
    let tcp = match options.local_addr {
        None => TcpStream::connect((host, port))
            .await
            .map_err(|e| e.to_string())?,
        Some(local) => connect_from(local, host, port).await?,
    };
    let _ = tcp.set_nodelay(true);
    if !secure {
        return Ok(Either::Left(tcp));
    }
    let config = options.tls.clone().unwrap_or_else(default_tls);
    let name = rustls::pki_types::ServerName::try_from(host.to_owned())
        .map_err(|e| format!("bad TLS server name {host}: {e}"))?;
    let tls = tokio_rustls::TlsConnector::from(config)
        .connect(name, tcp)
        .await
        .map_err(|e| format!("TLS handshake failed: {e}"))?;
    Ok(Either::Right(tls))
}

/// TCP connect from the given local address: the first address of `host`
/// in the same family as `local` (a v4 source cannot reach a v6 peer).
async fn connect_from(local: std::net::IpAddr, host: &str, port: u16) -> Result<TcpStream, String> {
    let peer = tokio::net::lookup_host((host, port))
        .await
        .map_err(|e| format!("cannot resolve {host}: {e}"))?
        .find(|a| a.is_ipv4() == local.is_ipv4())
        .ok_or_else(|| {
            format!("{host} has no address of the family of the local address {local}")
        })?;
    let socket = if local.is_ipv4() {
        tokio::net::TcpSocket::new_v4()
    } else {
        tokio::net::TcpSocket::new_v6()
    }
    .map_err(|e| e.to_string())?;
    socket
        .bind(std::net::SocketAddr::new(local, 0))
        .map_err(|e| format!("cannot bind the local address {local}: {e}"))?;
    socket.connect(peer).await.map_err(|e| e.to_string())
}

/// Connects over the URL's transport: raw TCP (`tcp://`, `tcp+tls://`) or
/// TCP connect and WebSocket upgrade (`ws://`, `wss://`).
async fn connect_transport(url: &str, options: &ClientOptions) -> Result<Conn, String> {
    if let Some(target) = raw_tcp_target(url) {
        let (secure, host, port) = target?;
        let stream = connect_stream(&host, port, secure, options).await?;
        return Ok(PackageTransport::tcp(
            stream,
            options.max_message_size,
            4096,
        ));
    }
    let request = url.into_client_request().map_err(|e| e.to_string())?;
    let host = request
        .uri()
        .host()
        .ok_or_else(|| "URL has no host".to_owned())?
        .trim_matches(|c| c == '[' || c == ']')
        .to_owned();
    let secure = request.uri().scheme_str() == Some("wss");
    let port = request
        .uri()
        .port_u16()
        .unwrap_or(if secure { 443 } else { 80 });
    let stream = connect_stream(&host, port, secure, options).await?;
    let config = WebSocketConfig::default()
        .read_buffer_size(4096)
        .write_buffer_size(4096)
        .max_message_size(Some(options.max_message_size))
        .max_frame_size(Some(options.max_message_size));
    let (ws, _) = tokio_tungstenite::client_async_with_config(request, stream, Some(config))
        .await
        .map_err(|e| e.to_string())?;
    Ok(PackageTransport::WebSocket(ws))
}

/// [`open`] within the connect timeout.
async fn open_within(
    url: &str,
    options: &ClientOptions,
    resume: Option<Value>,
) -> Result<(Conn, HandshakeResponse), ClientError> {
    tokio::time::timeout(options.connect_timeout, open(url, options, resume))
        .await
        .map_err(|_| ClientError::ConnectTimeout(url.to_owned()))?
}

/// Starts the task of a handshaken connection; returns its command queue.
fn start_task(
    ws: Conn,
    shared: &Arc<Shared>,
    handshake: &HandshakeResponse,
    options: &ClientOptions,
) -> mpsc::Sender<Command> {
    let (commands, command_rx) = mpsc::channel(256);
    let heartbeat = handshake.sys.heartbeat.map(Duration::from_secs);
    tokio::spawn(task::run(
        ws,
        shared.clone(),
        command_rx,
        heartbeat,
        options.send_heartbeats,
    ));
    commands
}

/// Connects, then HANDSHAKE (with `sys.resume` when given) and ACK.
async fn open(
    url: &str,
    options: &ClientOptions,
    resume: Option<Value>,
) -> Result<(Conn, HandshakeResponse), ClientError> {
    let connect_err = |reason: String| ClientError::Connect {
        url: url.to_owned(),
        reason,
    };
    let mut conn = connect_transport(url, options).await.map_err(connect_err)?;

    let mut sys = Map::new();
    sys.insert("type".into(), Value::from("shaddock-rust"));
    sys.insert("version".into(), Value::from(env!("CARGO_PKG_VERSION")));
    sys.insert("rsa".into(), Value::Object(Map::new()));
    sys.insert("protoVersion".into(), options.protos.version());
    for (k, v) in &options.handshake_sys {
        sys.insert(k.clone(), v.clone());
    }
    if let Some(resume) = resume {
        sys.insert("resume".into(), resume);
    }
    let mut root = Map::new();
    root.insert("sys".into(), Value::Object(sys));
    if let Some(user) = &options.handshake_user {
        root.insert("user".into(), user.clone());
    }
    let body = serde_json::to_vec(&Value::Object(root))?;
    let frame = encode_package(PackageType::Handshake, &body)?;
    conn.send(frame)
        .await
        .map_err(|e| connect_err(e.to_string()))?;

    let reply = loop {
        let data = match conn.next().await {
            None => return Err(connect_err("closed during the handshake".into())),
            Some(Ok(d)) => d,
            Some(Err(e)) => return Err(connect_err(e.to_string())),
        };
        let packages = decode_packages(data).map_err(|e| connect_err(e.to_string()))?;
        if let Some(p) = packages
            .into_iter()
            .find(|p| p.kind == PackageType::Handshake)
        {
            break HandshakeResponse::parse(&p.body).map_err(|e| connect_err(e.to_string()))?;
        }
    };
    if reply.code != CODE_OK {
        return Err(ClientError::Handshake(reply.code));
    }
    conn.send(Bytes::from_static(&HANDSHAKE_ACK))
        .await
        .map_err(|e| connect_err(e.to_string()))?;
    Ok((conn, reply))
}
