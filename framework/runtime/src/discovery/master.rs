//! Discovery through the master that started this process.
//!
//! A server started by `shaddock start` finds `SHADDOCK_MASTER`
//! (`host:port`), `SHADDOCK_MASTER_TOKEN` and `SHADDOCK_SERVER_ID` in its
//! environment. [`MasterDiscovery`] then opens the membership stream
//! (`framework/runtime/proto/membership.proto`): it says hello, reports its
//! connection count every [`STATS_EVERY`], applies every server list the
//! master pushes (with its drained frontends), turns the master's stop
//! command into a graceful stop (it cancels
//! [`DiscoveryContext::request_stop`]) and runs operators' admin actions
//! ([`DiscoveryContext::actions`]), answering each on the same stream. It reconnects if the
//! master restarts; meanwhile the server keeps serving with the last list.
//!
//! A server started by hand (no `SHADDOCK_MASTER`) uses
//! [`StaticDiscovery`](super::StaticDiscovery) instead.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use self::proto::agent_message::Kind as AgentKind;
use self::proto::master_message::Kind as MasterKind;
use self::proto::membership_client::MembershipClient;
use super::{ActionOutcome, Change, Discovery, DiscoveryContext, DiscoveryError};
use crate::BoxFuture;
use crate::config::ServerInfo;

/// Generated types of `proto/membership.proto` (the master serves it).
#[allow(clippy::all, missing_docs)]
pub mod proto {
    tonic::include_proto!("shaddock.membership");
}

/// How often a server reports its stats to the master.
pub const STATS_EVERY: Duration = Duration::from_secs(1);

/// How long one admin action may run here before the master is told it
/// failed (the master waits a little longer for the reply).
pub const ACTION_LIMIT: Duration = Duration::from_secs(5);

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

/// Membership from the master's stream.
#[derive(Debug, Clone)]
pub struct MasterDiscovery {
    env: AgentEnv,
    /// Whether the master's lists are the membership (false when another
    /// backend, etcd, is: the stream then only carries commands and stats).
    apply_lists: bool,
}

impl MasterDiscovery {
    /// The master's discovery if the master started this process. `server_id`
    /// overrides `SHADDOCK_SERVER_ID` (use the id the server really runs as).
    pub fn from_env(server_id: &str) -> Option<Self> {
        let mut env = AgentEnv::from_env()?;
        if !server_id.is_empty() {
            env.server_id = server_id.to_string();
        }
        Some(MasterDiscovery {
            env,
            apply_lists: true,
        })
    }

    pub fn new(env: AgentEnv) -> Self {
        MasterDiscovery {
            env,
            apply_lists: true,
        }
    }

    /// The stream for the master's stop command and `list` figures only;
    /// its server lists are ignored (etcd is the membership).
    pub fn commands_only(self) -> Self {
        MasterDiscovery {
            apply_lists: false,
            ..self
        }
    }
}

impl Discovery for MasterDiscovery {
    fn name(&self) -> &str {
        "master"
    }

    /// The master is a supervisor, not a registry that must be up before a
    /// server may serve: the connection loop starts at once and retries in
    /// the background, so a master restart never stops a server.
    fn start(
        &self,
        ctx: DiscoveryContext,
    ) -> BoxFuture<'_, Result<JoinHandle<()>, DiscoveryError>> {
        let env = self.env.clone();
        let apply_lists = self.apply_lists;
        Box::pin(async move { Ok(tokio::spawn(run(env, apply_lists, ctx))) })
    }
}

/// A list pushed by the master, merged into what this server knows.
///
/// The master lists servers once they are up: until this server is itself
/// in the list (it just started), keep servers.json's list rather than a
/// partial one. What servers.json says about a server the master also lists
/// (max-connections, args, …) is kept: the master only sends addresses.
fn apply_master_list(ctx: &DiscoveryContext, list: Vec<ServerInfo>) {
    if !list.iter().any(|s| s.id == ctx.me.id) {
        return;
    }
    let current = ctx.servers.snapshot();
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
    ctx.servers.apply(Change::Reset(merged));
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

async fn run(env: AgentEnv, apply_lists: bool, ctx: DiscoveryContext) {
    let mut delay = Duration::from_millis(200);
    loop {
        match connect_once(&env, apply_lists, &ctx).await {
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
            _ = ctx.stop.cancelled() => return,
        }
        delay = (delay * 2).min(Duration::from_secs(5));
    }
}

async fn connect_once(env: &AgentEnv, apply_lists: bool, ctx: &DiscoveryContext) -> Ended {
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
    let load = Arc::clone(&ctx.load);
    let replies = tx.clone();
    let stats = tokio::spawn(async move {
        let mut tick = tokio::time::interval(STATS_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let msg = proto::AgentMessage {
                kind: Some(AgentKind::Stats(proto::Stats {
                    connections: load(),
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
            _ = ctx.stop.cancelled() => break Ended::Stop,
        };
        match msg {
            Ok(Some(proto::MasterMessage {
                kind: Some(MasterKind::Servers(list)),
            })) if !apply_lists => ctx.servers.set_draining(list.draining),
            Ok(Some(proto::MasterMessage {
                kind: Some(MasterKind::Servers(list)),
            })) => {
                ctx.servers.set_draining(list.draining);
                let servers = from_entries(list.servers);
                tracing::debug!(
                    server = %env.server_id,
                    version = list.version,
                    count = servers.len(),
                    "server list from the master"
                );
                apply_master_list(ctx, servers);
            }
            Ok(Some(proto::MasterMessage {
                kind: Some(MasterKind::Stop(stop)),
            })) => {
                tracing::info!(server = %env.server_id, reason = %stop.reason, "stop command from the master");
                ctx.request_stop.cancel();
                break Ended::Stop;
            }
            Ok(Some(proto::MasterMessage {
                kind: Some(MasterKind::Action(command)),
            })) => {
                tokio::spawn(run_action(ctx.clone(), command, replies.clone()));
            }
            Ok(Some(_)) => {}
            Ok(None) => break Ended::Retry("the master closed the stream".into()),
            Err(status) => break Ended::Retry(status.to_string()),
        }
    };
    stats.abort();
    ended
}

/// Runs one admin action (bounded by [`ACTION_LIMIT`]) and sends the reply.
/// Bad arguments are the action's failure, never this server's.
async fn run_action(
    ctx: DiscoveryContext,
    command: proto::ActionCommand,
    replies: mpsc::Sender<proto::AgentMessage>,
) {
    let args = if command.args_json.is_empty() {
        Ok(serde_json::Value::Object(Default::default()))
    } else {
        serde_json::from_str(&command.args_json)
    };
    let outcome = match args {
        Err(e) => ActionOutcome::Failed(format!("the action's arguments are not JSON: {e}")),
        Ok(args) => {
            let run = (ctx.actions)(command.name.clone(), args, command.query);
            match tokio::time::timeout(ACTION_LIMIT, run).await {
                Ok(outcome) => outcome,
                Err(_) => ActionOutcome::Failed(format!(
                    "`{}` did not finish within {ACTION_LIMIT:?}",
                    command.name
                )),
            }
        }
    };
    if outcome == ActionOutcome::NotHere {
        tracing::debug!(server = %ctx.me.id, action = %command.name, "admin action does not apply here");
    } else if command.query {
        // A dashboard polls its queries: not a line every 2 s.
        tracing::debug!(server = %ctx.me.id, query = %command.name, outcome = ?outcome, "admin query from the master");
    } else {
        tracing::info!(server = %ctx.me.id, action = %command.name, outcome = ?outcome, "admin action from the master");
    }
    let mut reply = proto::ActionReply {
        id: command.id,
        ..Default::default()
    };
    match outcome {
        ActionOutcome::NotHere => {}
        ActionOutcome::Done(result) => {
            reply.handled = true;
            reply.result_json = result.to_string();
        }
        ActionOutcome::Failed(error) => {
            reply.handled = true;
            reply.error = error;
        }
    }
    let msg = proto::AgentMessage {
        kind: Some(AgentKind::ActionReply(reply)),
    };
    // The master waits with a timeout: a stream gone meanwhile is its news.
    let _ = replies.send(msg).await;
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
                client_host: None,
                bind_host: None,
                client_bind_host: None,
                metrics_port: None,
                client_port,
                frontend: e.frontend,
                max_connections: None,
                auto_restart: None,
                args: Vec::new(),
            })
        })
        .collect()
}
