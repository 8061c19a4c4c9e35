//! Admin actions sent to servers over their membership streams, and the
//! replies matched back to the operator's call.
//!
//! Why the membership stream and not a cluster call with the cluster
//! secret: the master already holds an authenticated stream to every
//! server it runs (the hello carried the per-run token), it needs no
//! address, TLS client or secret for each server, and a server behind a
//! NAT that can reach the master is reachable this way too. The stream is
//! bidirectional, so every command carries an id and the server's
//! `ActionReply` carries it back.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::sync::oneshot;

use super::proto;
use super::proto::master_message::Kind as MasterKind;
use super::supervisor::AgentLink;

/// How long the master waits for a server's reply: the server's own limit
/// plus the round trip.
pub const REPLY_WAIT: Duration =
    Duration::from_secs(shaddock::discovery::master::ACTION_LIMIT.as_secs() + 2);

/// Actions in flight, by id. Bounded by the admin calls in flight (each
/// waits at most [`REPLY_WAIT`] and removes its own entries).
#[derive(Default)]
pub struct Dispatcher {
    next: AtomicU64,
    pending: Mutex<HashMap<u64, oneshot::Sender<proto::ActionReply>>>,
}

/// One server's answer.
pub enum Answer {
    /// The action does not concern this server.
    NotHere,
    Done(String),
    Failed(String),
}

impl Dispatcher {
    fn pending(
        &self,
    ) -> std::sync::MutexGuard<'_, HashMap<u64, oneshot::Sender<proto::ActionReply>>> {
        self.pending.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A server's reply arrived on its stream.
    pub fn complete(&self, reply: proto::ActionReply) {
        if let Some(waiter) = self.pending().remove(&reply.id) {
            let _ = waiter.send(reply);
        }
    }

    /// Sends `name(args_json)` to every server of `links` at once and
    /// collects their answers (a server silent for [`REPLY_WAIT`] fails).
    pub async fn run(
        &self,
        links: Vec<(String, AgentLink)>,
        name: &str,
        args_json: &str,
        query: bool,
    ) -> Vec<(String, Answer)> {
        let calls = links.into_iter().map(|(id, link)| async move {
            let answer = self.ask(&link, name, args_json, query).await;
            (id, answer)
        });
        futures_util::future::join_all(calls).await
    }

    async fn ask(&self, link: &AgentLink, name: &str, args_json: &str, query: bool) -> Answer {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        self.pending().insert(id, tx);
        let msg = proto::MasterMessage {
            kind: Some(MasterKind::Action(proto::ActionCommand {
                id,
                name: name.to_string(),
                args_json: args_json.to_string(),
                query,
            })),
        };
        let answer = match tokio::time::timeout(REPLY_WAIT, async {
            link.tx
                .send(msg)
                .await
                .map_err(|_| "its membership stream closed".to_string())?;
            rx.await
                .map_err(|_| "its membership stream closed".to_string())
        })
        .await
        {
            Err(_) => Answer::Failed(format!("no answer within {REPLY_WAIT:?}")),
            Ok(Err(e)) => Answer::Failed(e),
            Ok(Ok(reply)) if !reply.handled => Answer::NotHere,
            Ok(Ok(reply)) if !reply.error.is_empty() => Answer::Failed(reply.error),
            Ok(Ok(reply)) => Answer::Done(reply.result_json),
        };
        self.pending().remove(&id);
        answer
    }
}
