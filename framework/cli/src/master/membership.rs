//! The `Membership` service: one bidirectional stream per server process.
//!
//! Why a stream the *server* opens (and not the master calling servers):
//! the master learns a server is alive the moment it says hello, learns it
//! is gone the moment the stream breaks, and can push the full server list
//! on every change without knowing how to reach each server. Every update
//! carries the *whole* list plus a version, so a server that missed one
//! simply applies the next; there is no delta to get wrong.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use futures_util::Stream;
use tokio::sync::mpsc;
use tonic::{Request, Response, Status, Streaming};

use super::actions::Dispatcher;
use super::proto;
use super::proto::agent_message::Kind as AgentKind;
use super::proto::master_message::Kind as MasterKind;
use super::supervisor::{AgentLink, Supervisor};

/// Outgoing messages queued per server stream (list updates are full
/// snapshots, so a slow server only ever needs the latest few).
const OUT_QUEUE: usize = 16;

pub struct MembershipService {
    supervisor: Supervisor,
    token: String,
    next_conn: AtomicU64,
    /// Where servers' answers to admin actions go.
    actions: Arc<Dispatcher>,
}

impl MembershipService {
    pub fn new(supervisor: Supervisor, token: String) -> Self {
        MembershipService {
            supervisor,
            token,
            next_conn: AtomicU64::new(1),
            actions: Arc::default(),
        }
    }

    /// Delivers servers' replies to the admin actions of `actions`.
    pub fn with_actions(mut self, actions: Arc<Dispatcher>) -> Self {
        self.actions = actions;
        self
    }
}

type OutStream = Pin<Box<dyn Stream<Item = Result<proto::MasterMessage, Status>> + Send>>;

#[tonic::async_trait]
impl proto::membership_server::Membership for MembershipService {
    type JoinStream = OutStream;

    async fn join(
        &self,
        request: Request<Streaming<proto::AgentMessage>>,
    ) -> Result<Response<Self::JoinStream>, Status> {
        let mut incoming = request.into_inner();
        let first = tokio::time::timeout(std::time::Duration::from_secs(5), incoming.message())
            .await
            .map_err(|_| Status::deadline_exceeded("no hello within 5 s"))??;
        let hello = match first.and_then(|m| m.kind) {
            Some(AgentKind::Hello(h)) => h,
            _ => {
                return Err(Status::invalid_argument(
                    "the first message must be a hello",
                ));
            }
        };
        if !constant_time_eq(hello.token.as_bytes(), self.token.as_bytes()) {
            return Err(Status::unauthenticated(
                "wrong master token (was this server started by this master?)",
            ));
        }
        let conn_id = self.next_conn.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = mpsc::channel(OUT_QUEUE);
        let id = hello.server_id.clone();
        self.supervisor
            .agent_connected(
                &id,
                AgentLink {
                    conn_id,
                    tx: tx.clone(),
                },
                hello.pid,
            )
            .map_err(Status::not_found)?;
        tracing::debug!(server = %id, pid = hello.pid, "server agent connected");

        // Server list updates: the current list at once, then every change.
        let mut members = self.supervisor.membership();
        let list_tx = tx.clone();
        let lists = tokio::spawn(async move {
            loop {
                let list: Arc<proto::ServerList> = members.borrow_and_update().clone();
                let msg = proto::MasterMessage {
                    kind: Some(MasterKind::Servers((*list).clone())),
                };
                if list_tx.send(msg).await.is_err() {
                    return;
                }
                if members.changed().await.is_err() {
                    return;
                }
            }
        });

        // Stats and disconnect detection.
        let supervisor = self.supervisor.clone();
        let actions = Arc::clone(&self.actions);
        tokio::spawn(async move {
            loop {
                match incoming.message().await {
                    Ok(Some(proto::AgentMessage {
                        kind: Some(AgentKind::Stats(stats)),
                    })) => supervisor.agent_stats(&id, stats.connections),
                    Ok(Some(proto::AgentMessage {
                        kind: Some(AgentKind::ActionReply(reply)),
                    })) => actions.complete(reply),
                    Ok(Some(_)) => {}
                    Ok(None) | Err(_) => break,
                }
            }
            lists.abort();
            supervisor.agent_disconnected(&id, conn_id);
            tracing::info!(server = %id, "server agent disconnected");
        });
        drop(tx);

        let out = futures_util::stream::unfold(rx, |mut rx| async move {
            rx.recv().await.map(|m| (Ok(m), rx))
        });
        Ok(Response::new(Box::pin(out)))
    }
}

/// Compares secrets without an early exit on the first differing byte.
pub(crate) fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}
