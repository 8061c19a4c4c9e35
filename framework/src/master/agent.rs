//! The server side of the master protocol.
//!
//! A server process started by the master finds `SHADDOCK_MASTER`
//! (`host:port`), `SHADDOCK_MASTER_TOKEN` and `SHADDOCK_SERVER_ID` in its
//! environment. [`Agent::from_env`] then opens the membership stream: it says
//! hello, reports its connection count every [`STATS_EVERY`], applies every
//! server list the master pushes, and turns the master's stop command into
//! [`shutdown_signal`] resolving. It reconnects if the master restarts.
//!
//! A server started by hand (no `SHADDOCK_MASTER`) runs standalone:
//! `from_env` returns `None` and [`shutdown_signal`] still covers Ctrl-C
//! and SIGTERM.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, LazyLock};
use std::time::Duration;

use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::proto;
use super::proto::agent_message::Kind as AgentKind;
use super::proto::master_message::Kind as MasterKind;
use super::proto::membership_client::MembershipClient;
use crate::app::App;
use crate::config::ServerInfo;

/// How often a server reports its stats to the master.
pub const STATS_EVERY: Duration = Duration::from_secs(1);

/// Whether [`attach`] already connected this process.
static ATTACHED: AtomicBool = AtomicBool::new(false);

/// Process-wide "the master asked us to stop" flag.
static STOP: LazyLock<CancellationToken> = LazyLock::new(CancellationToken::new);

/// Asks this process to shut down (what the master's stop command does).
pub fn request_stop() {
    STOP.cancel();
}

/// Resolves when this process should shut down gracefully: Ctrl-C, SIGTERM
/// (what `shaddock stop` sends) or the master's stop command. Pass it to the
/// App's run/shutdown path.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let term = async {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => tracing::info!("Ctrl-C received, shutting down"),
        _ = term => tracing::info!("SIGTERM received, shutting down"),
        _ = STOP.cancelled() => tracing::info!("the master asked this server to stop"),
    }
}

/// Where the master is, as passed by the master in the environment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentEnv {
    pub master: String,
    pub token: String,
    pub server_id: String,
}

impl AgentEnv {
    /// `None` when the process was not started by a master.
    pub fn from_env() -> Option<Self> {
        let master = std::env::var("SHADDOCK_MASTER").ok()?;
        Some(AgentEnv {
            master,
            token: std::env::var("SHADDOCK_MASTER_TOKEN").unwrap_or_default(),
            server_id: std::env::var("SHADDOCK_SERVER_ID").unwrap_or_default(),
        })
    }
}

/// This server's entry as the master passed it (`SHADDOCK_SERVER_INFO`),
/// if it is the entry of `server_id`. A server added at run time with
/// `shaddock add` is in no servers.json: this is where it finds its ports.
pub fn server_info_from_env(server_id: &str) -> Option<ServerInfo> {
    let text = std::env::var("SHADDOCK_SERVER_INFO").ok()?;
    let info: ServerInfo = serde_json::from_str(&text).ok()?;
    (info.id == server_id).then_some(info)
}

/// A running agent. Dropping it stops the connection to the master.
pub struct Agent {
    servers: watch::Receiver<Option<Arc<Vec<ServerInfo>>>>,
    connections: Arc<AtomicU64>,
    task: JoinHandle<()>,
}

impl Drop for Agent {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Agent {
    /// Starts the agent if the master started this process. `server_id`
    /// overrides `SHADDOCK_SERVER_ID` (use the id the server really runs as).
    pub fn from_env(server_id: &str) -> Option<Agent> {
        let mut env = AgentEnv::from_env()?;
        if !server_id.is_empty() {
            env.server_id = server_id.to_string();
        }
        Some(Agent::start(env))
    }

    /// Starts the connection loop in the background (needs a tokio runtime).
    pub fn start(env: AgentEnv) -> Agent {
        let (tx, rx) = watch::channel(None);
        let connections = Arc::new(AtomicU64::new(0));
        let task = tokio::spawn(run(env, tx, connections.clone()));
        Agent {
            servers: rx,
            connections,
            task,
        }
    }

    /// The server lists pushed by the master (`None` until the first one).
    pub fn servers(&self) -> watch::Receiver<Option<Arc<Vec<ServerInfo>>>> {
        self.servers.clone()
    }

    /// Calls `apply` with every server list the master pushes (for example
    /// `move |list| servers.replace(list)` on the cluster's server list).
    pub fn follow(&self, apply: impl Fn(Vec<ServerInfo>) + Send + 'static) -> JoinHandle<()> {
        let mut rx = self.servers.clone();
        tokio::spawn(async move {
            loop {
                let list = rx.borrow_and_update().clone();
                if let Some(list) = list {
                    apply((*list).clone());
                }
                if rx.changed().await.is_err() {
                    return;
                }
            }
        })
    }

    /// The gauge the server keeps up to date with its client connection
    /// count; reported to the master (shown by `shaddock list`).
    pub fn connections(&self) -> Arc<AtomicU64> {
        self.connections.clone()
    }

    /// Sets the connection count reported to the master.
    pub fn set_connections(&self, n: u64) {
        self.connections.store(n, Ordering::Relaxed);
    }
}

/// Connects `app` to the master that started this process, if any:
/// every server list the master pushes replaces the cluster's server list
/// (so routers and the gate see added and removed servers), and the
/// frontend's session count is reported as its connection count.
///
/// Returns `None` for a server started by hand. Keep the returned agent
/// alive while the app runs (dropping it disconnects from the master).
///
/// Only the first call in a process attaches (both [`App::run`] and
/// `launch` call it; one membership stream per process is enough).
pub fn attach(app: &App) -> Option<Agent> {
    AgentEnv::from_env()?;
    if ATTACHED.swap(true, Ordering::SeqCst) {
        return None;
    }
    let agent = Agent::from_env(app.server_id())?;
    let servers = app.cluster().servers().clone();
    let me = app.server_id().to_string();
    agent.follow(move |list| {
        // The master lists servers once they are up. Until this server is
        // itself in the list (it just started), keep servers.json's list
        // rather than a partial one.
        if !list.iter().any(|s| s.id == me) {
            return;
        }
        // Keep what servers.json says about a server the master also lists
        // (max-connections, args, ...): the master only sends addresses.
        let current = servers.snapshot();
        let merged = list
            .into_iter()
            .map(|entry| match current.get(&entry.id) {
                Some(known)
                    if known.host == entry.host
                        && known.port == entry.port
                        && known.client_port == entry.client_port
                        && known.server_type == entry.server_type =>
                {
                    known.clone()
                }
                _ => entry,
            })
            .collect();
        servers.replace(merged);
    });
    let gauge = agent.connections();
    let sessions = app.sessions().clone();
    let mut lists = agent.servers();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(STATS_EVERY);
        loop {
            tokio::select! {
                _ = tick.tick() => gauge.store(sessions.count() as u64, Ordering::Relaxed),
                // Ends with the agent (its list sender is dropped).
                r = lists.changed() => if r.is_err() { return },
            }
        }
    });
    Some(agent)
}

/// Why one connection attempt ended.
enum Ended {
    /// The master went away; try again.
    Retry(String),
    /// The master refused us (wrong token, unknown id); retrying won't help.
    Refused(String),
    /// Asked to stop.
    Stop,
}

async fn run(
    env: AgentEnv,
    lists: watch::Sender<Option<Arc<Vec<ServerInfo>>>>,
    connections: Arc<AtomicU64>,
) {
    let mut delay = Duration::from_millis(200);
    loop {
        match connect_once(&env, &lists, &connections).await {
            Ended::Stop => return,
            Ended::Refused(why) => {
                tracing::error!(server = %env.server_id, "the master at {} refused this server: {why}", env.master);
                return;
            }
            Ended::Retry(why) => {
                tracing::debug!(server = %env.server_id, "master connection lost: {why}; retrying in {delay:?}");
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(delay) => {}
            _ = STOP.cancelled() => return,
        }
        delay = (delay * 2).min(Duration::from_secs(5));
    }
}

async fn connect_once(
    env: &AgentEnv,
    lists: &watch::Sender<Option<Arc<Vec<ServerInfo>>>>,
    connections: &Arc<AtomicU64>,
) -> Ended {
    let uri = format!("http://{}", env.master);
    let connect = tokio::time::timeout(Duration::from_secs(3), MembershipClient::connect(uri));
    let mut client = match connect.await {
        Ok(Ok(c)) => c,
        Ok(Err(e)) => return Ended::Retry(e.to_string()),
        Err(_) => return Ended::Retry("connect timed out".into()),
    };
    let (tx, rx) = mpsc::channel::<proto::AgentMessage>(8);
    let hello = proto::AgentMessage {
        kind: Some(AgentKind::Hello(proto::Hello {
            server_id: env.server_id.clone(),
            token: env.token.clone(),
            pid: std::process::id(),
        })),
    };
    if tx.send(hello).await.is_err() {
        return Ended::Retry("queue closed".into());
    }
    let outbound =
        futures_util::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|m| (m, rx)) });
    let mut inbound = match client.join(outbound).await {
        Ok(resp) => resp.into_inner(),
        Err(status) => {
            return match status.code() {
                tonic::Code::Unauthenticated
                | tonic::Code::NotFound
                | tonic::Code::InvalidArgument => Ended::Refused(status.message().to_string()),
                _ => Ended::Retry(status.to_string()),
            };
        }
    };
    tracing::info!(server = %env.server_id, master = %env.master, "connected to the master");
    let stats_conns = connections.clone();
    let stats = tokio::spawn(async move {
        let mut tick = tokio::time::interval(STATS_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let msg = proto::AgentMessage {
                kind: Some(AgentKind::Stats(proto::Stats {
                    connections: stats_conns.load(Ordering::Relaxed),
                })),
            };
            if tx.send(msg).await.is_err() {
                return;
            }
        }
    });
    let ended = loop {
        let msg = tokio::select! {
            m = inbound.message() => m,
            _ = STOP.cancelled() => break Ended::Stop,
        };
        match msg {
            Ok(Some(proto::MasterMessage {
                kind: Some(MasterKind::Servers(list)),
            })) => {
                let servers = from_entries(list.servers);
                tracing::info!(
                    server = %env.server_id,
                    version = list.version,
                    count = servers.len(),
                    "server list from the master"
                );
                lists.send_replace(Some(Arc::new(servers)));
            }
            Ok(Some(proto::MasterMessage {
                kind: Some(MasterKind::Stop(stop)),
            })) => {
                tracing::info!(server = %env.server_id, reason = %stop.reason, "stop command from the master");
                request_stop();
                break Ended::Stop;
            }
            Ok(Some(_)) => {}
            Ok(None) => break Ended::Retry("the master closed the stream".into()),
            Err(status) => break Ended::Retry(status.to_string()),
        }
    };
    stats.abort();
    ended
}

/// Membership entries → the config type every layer uses (entries with an
/// out-of-range port are dropped rather than trusted).
pub fn from_entries(entries: Vec<proto::ServerEntry>) -> Vec<ServerInfo> {
    entries
        .into_iter()
        .filter_map(|e| {
            let port = e.port.map(u16::try_from).transpose().ok()?;
            let client_port = e.client_port.map(u16::try_from).transpose().ok()?;
            Some(ServerInfo {
                id: e.id,
                server_type: e.server_type,
                host: e.host,
                port,
                client_port,
                frontend: e.frontend,
                max_connections: None,
                auto_restart: None,
                args: Vec::new(),
            })
        })
        .collect()
}
