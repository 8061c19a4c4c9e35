//! Discovery: how a server learns which other servers exist.
//!
//! Routers, the gate, pools and channels all read one live list,
//! [`Servers`]. Something has to keep it true while servers come and go;
//! that something is a [`Discovery`] backend, chosen by the launcher and
//! handed to the app (as Pitaya's `ServiceDiscovery`):
//!
//! * [`StaticDiscovery`] — the list of `servers.json`, nothing more. A
//!   server started by hand or by a script needs no master.
//! * [`master::MasterDiscovery`] — the stream of the master that started the
//!   process (`shaddock start`): it pushes the live list whenever a server
//!   is added, stopped or restarts, and can ask this server to stop.
//! * [`etcd::EtcdDiscovery`] — etcd (leases and a prefix watch), for
//!   clusters on several hosts; chosen by `config/master.json`'s `etcd`
//!   section.
//!
//! The trait is shaped for a registry with leases and watches:
//! [`Discovery::start`] registers this server and
//! resolves only once it is registered (so a server whose registry is
//! unreachable fails its start instead of running alone); the task it
//! returns keeps the registration alive and turns the registry's events
//! into [`Change`]s on the list until [`DiscoveryContext::stop`] fires, then
//! deregisters. A registry that loses this server's own registration (an
//! expired lease) re-registers from that task; the list keeps serving the
//! last known members meanwhile.

pub mod etcd;
pub mod master;
mod servers;

use std::sync::Arc;

use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

pub use servers::{ServerList, Servers};

/// This process's incarnation: its start, in µs since the Unix epoch (read
/// once). A restarted server keeps its id but gets a new incarnation, which
/// is how a session resume token of a crashed process is told from one of
/// the live process (the cluster's `Incarnation` call).
pub fn incarnation() -> u64 {
    static AT: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    *AT.get_or_init(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_micros() as u64)
            .unwrap_or(1)
    })
}

use crate::BoxFuture;
use crate::config::ServerInfo;

/// One membership change, as a registry reports it.
#[derive(Debug, Clone, PartialEq)]
pub enum Change {
    /// The complete list (a first sync, or a backend that only knows whole
    /// lists, like the master's stream).
    Reset(Vec<ServerInfo>),
    /// A server registered, or changed its entry (a restarted server with a
    /// new address or generation is a `Put` too).
    Put(ServerInfo),
    /// A server left: it deregistered, or its lease expired.
    Delete(String),
}

/// What a discovery backend gets from the server it runs in.
#[derive(Clone)]
pub struct DiscoveryContext {
    /// This server's entry (what it registers).
    pub me: ServerInfo,
    /// The live list to keep up to date ([`Servers::apply`]).
    pub servers: Servers,
    /// Cancelled when the server stops: stop following and deregister.
    pub stop: CancellationToken,
    /// Cancel it to ask the server to stop gracefully (the master's stop
    /// command does).
    pub request_stop: CancellationToken,
    /// The server's current client connection count (reported by backends
    /// that show load, such as the master's `shaddock list`).
    pub load: Arc<dyn Fn() -> u64 + Send + Sync>,
    /// Runs an operator's admin action on this server (`shaddock
    /// broadcast`, `kick`, `drain`, …) for a backend that carries them: the
    /// master's stream does. See [`crate::app::admin`].
    pub actions: ActionRunner,
}

/// What an admin action did on one server.
#[derive(Debug, Clone, PartialEq)]
pub enum ActionOutcome {
    /// This server has no such action, or it does not apply here (a room
    /// held by another chat server): not an error.
    NotHere,
    /// Done; what it did (e.g. `{"delivered": 3}`).
    Done(serde_json::Value),
    /// It applied here and failed.
    Failed(String),
}

/// Runs the admin action `name` with its JSON arguments; with `query`,
/// only if it is a read-only query.
pub type ActionRunner =
    Arc<dyn Fn(String, serde_json::Value, bool) -> BoxFuture<'static, ActionOutcome> + Send + Sync>;

/// A runner that knows no action (servers without an app, tests).
pub fn no_actions() -> ActionRunner {
    Arc::new(|_, _, _| Box::pin(async { ActionOutcome::NotHere }))
}

impl DiscoveryContext {
    /// A context for `me` over `servers`, with fresh tokens and no load.
    pub fn new(me: ServerInfo, servers: Servers) -> Self {
        DiscoveryContext {
            me,
            servers,
            stop: CancellationToken::new(),
            request_stop: CancellationToken::new(),
            load: Arc::new(|| 0),
            actions: no_actions(),
        }
    }
}

/// Why a server could not join its cluster.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{backend} discovery: {reason}")]
pub struct DiscoveryError {
    pub backend: String,
    pub reason: String,
}

/// A membership backend. See the module docs for the contract.
pub trait Discovery: Send + Sync + 'static {
    /// A short name for logs and errors (`static`, `master`, …).
    fn name(&self) -> &str;

    /// Registers `ctx.me` and starts following membership. Resolves once
    /// registered; the returned task runs until `ctx.stop` is cancelled.
    fn start(&self, ctx: DiscoveryContext)
    -> BoxFuture<'_, Result<JoinHandle<()>, DiscoveryError>>;
}

/// The list of `servers.json`, as loaded: no registration, no changes.
#[derive(Debug, Clone, Copy, Default)]
pub struct StaticDiscovery;

impl Discovery for StaticDiscovery {
    fn name(&self) -> &str {
        "static"
    }

    fn start(
        &self,
        ctx: DiscoveryContext,
    ) -> BoxFuture<'_, Result<JoinHandle<()>, DiscoveryError>> {
        Box::pin(async move { Ok(tokio::spawn(async move { ctx.stop.cancelled().await })) })
    }
}
