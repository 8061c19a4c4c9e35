//! Key-owned state that survives crashes and rescaling: sharded channels.
//!
//! A backend type can be declared *sharded* (the chat's `chat` servers are:
//! a room lives on the server its router picks for the room id). Its
//! channels are then state *owned by key*, and this module keeps every
//! key's state on its current owner, complete:
//!
//! * **The frontends are the source of truth.** A session that joins a key
//!   registers it on its frontend (`Session::register_key`, before the join
//!   call). Frontends hold the connections, so they know who is really
//!   there; a backend only caches it.
//! * **The owner rebuilds by pulling** ([`ShardKeeper::reconcile_all`]): on
//!   start (a restarted backend starts empty), and whenever the server list
//!   changes the set of its type's servers or of the frontends, the backend
//!   asks every frontend for the registrations it owns — computed with *the
//!   backend's* list, which it sends along, so both sides agree on
//!   ownership whatever list the frontend has — and makes each frontend's
//!   members exactly that. Missing members are added quietly (for the room
//!   they never left); members a frontend no longer has, and members of
//!   frontends that left the list, are removed and reported to the app
//!   (chat: `onLeave`) — no ghosts.
//! * **The old owner drops** the channels it no longer owns, quietly: their
//!   members are being rebuilt on the new owner.
//! * **A restarted frontend** asks every owner to pull from it
//!   (`Resync`), which drops what its previous incarnation registered.
//! * **Requests wait for the rebuild**: while a reconciliation runs,
//!   forwarded requests to this backend wait (bounded by
//!   [`SETTLE_LIMIT`]) instead of reaching a half-built room.
//!
//! This is the Orleans / Akka-sharding idea (state placed by key, rebuilt
//! on the new owner when membership changes) with the frontends as the
//! durable record instead of a database: chat rooms are soft state. The
//! design and its limits are in `docs/scaling.md`.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

use futures_util::future::join_all;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::channel::{Channel, ChannelService};
use super::pool::Pool;
use super::proto::{self, cluster_client::ClusterClient};
use crate::config::ServerInfo;
use crate::discovery::{ServerList, Servers};
use crate::router::{RouteContext, Routers};

/// How long a forwarded request waits for a reconciliation in progress.
pub const SETTLE_LIMIT: Duration = Duration::from_secs(2);

/// How long one frontend may take to answer a pull.
pub const PULL_TIMEOUT: Duration = Duration::from_secs(1);

/// The index of the owner of `key` among `candidates` by `server_type`'s
/// router, as every server computes it.
pub fn owner_of(
    routers: &Routers,
    server_type: &str,
    key: &str,
    candidates: &[ServerInfo],
) -> Option<usize> {
    if candidates.is_empty() {
        return None;
    }
    let ctx = RouteContext {
        server_type,
        key,
        session: None,
        route: None,
    };
    routers
        .get(server_type)
        .route(&ctx, candidates)
        .ok()
        .filter(|&i| i < candidates.len())
}

/// `candidates` (server ids in the caller's order) as entries a router can
/// rank: this process's entry for an id it knows, else a bare one (routers
/// rank by id and position).
pub fn candidate_infos(servers: &ServerList, server_type: &str, ids: &[String]) -> Vec<ServerInfo> {
    ids.iter()
        .map(|id| {
            servers.get(id).cloned().unwrap_or_else(|| ServerInfo {
                id: id.clone(),
                server_type: server_type.to_string(),
                host: String::new(),
                port: None,
                client_port: None,
                frontend: false,
                max_connections: None,
                auto_restart: None,
                args: Vec::new(),
                client_host: None,
                bind_host: None,
                client_bind_host: None,
                metrics_port: None,
            })
        })
        .collect()
}

/// Keeps this backend's sharded channels equal to what the frontends say.
#[derive(Clone)]
pub struct ShardKeeper {
    inner: Arc<Inner>,
}

struct Inner {
    me: ServerInfo,
    servers: Servers,
    pool: Arc<Pool>,
    routers: Arc<Routers>,
    channels: Arc<ChannelService>,
    /// `true` while no reconciliation runs.
    settled: watch::Sender<bool>,
    /// One reconciliation at a time.
    running: tokio::sync::Mutex<()>,
}

/// What a reconciliation depends on: this type's servers (ownership) and
/// the frontends (whose members exist). A frontend without a cluster port
/// (a gate) can hold no members: nobody could push to them.
fn shape(list: &ServerList, server_type: &str) -> (Vec<String>, BTreeSet<String>) {
    let owners = list
        .of_type(server_type)
        .iter()
        .map(|s| s.id.clone())
        .collect();
    let frontends = list.cluster_frontends().into_iter().collect();
    (owners, frontends)
}

impl ShardKeeper {
    /// Makes `channels` sharded by `me.server_type`'s router over `servers`.
    pub fn new(
        me: ServerInfo,
        servers: Servers,
        pool: Arc<Pool>,
        routers: Arc<Routers>,
        channels: Arc<ChannelService>,
    ) -> Self {
        let keeper = ShardKeeper {
            inner: Arc::new(Inner {
                me,
                servers,
                pool,
                routers,
                channels,
                settled: watch::Sender::new(true),
                running: tokio::sync::Mutex::new(()),
            }),
        };
        let check = keeper.clone();
        keeper
            .inner
            .channels
            .set_owner_check(Arc::new(move |key| check.owns(key)));
        keeper.inner.channels.set_server_id(&keeper.inner.me.id);
        let confirm = keeper.clone();
        keeper
            .inner
            .channels
            .set_held_confirm(Arc::new(move |frontend, key, uid| {
                let keeper = confirm.clone();
                Box::pin(async move { keeper.lists(&frontend, &key, &uid).await })
            }));
        keeper
    }

    /// Whether this server owns `key` under the current list.
    pub fn owns(&self, key: &str) -> bool {
        let list = self.inner.servers.snapshot();
        let candidates = list.of_type(&self.inner.me.server_type);
        owner_of(
            &self.inner.routers,
            &self.inner.me.server_type,
            key,
            candidates,
        )
        .is_some_and(|i| candidates[i].id == self.inner.me.id)
    }

    /// Waits (at most `limit`) until no reconciliation runs; `false` on
    /// timeout.
    pub async fn settled(&self, limit: Duration) -> bool {
        // Every forwarded request asks: answer the common case without a
        // subscription or a timer.
        if *self.inner.settled.borrow() {
            return true;
        }
        let mut rx = self.inner.settled.subscribe();
        tokio::time::timeout(limit, rx.wait_for(|s| *s))
            .await
            .is_ok_and(|r| r.is_ok())
    }

    /// Reconciles now, then again whenever the list changes this type's
    /// servers or the frontends, until `stop`.
    pub fn start(&self, stop: CancellationToken) -> JoinHandle<()> {
        let keeper = self.clone();
        tokio::spawn(async move {
            let mut changes = keeper.inner.servers.changes();
            let mut last = shape(
                &keeper.inner.servers.snapshot(),
                &keeper.inner.me.server_type,
            );
            keeper.reconcile_all().await;
            loop {
                tokio::select! {
                    _ = stop.cancelled() => return,
                    r = changes.changed() => if r.is_err() { return },
                }
                let now = shape(
                    &keeper.inner.servers.snapshot(),
                    &keeper.inner.me.server_type,
                );
                if now != last {
                    last = now;
                    keeper.reconcile_all().await;
                }
            }
        })
    }

    /// Drops channels this server no longer owns, removes members of
    /// frontends that left, and pulls every frontend's members.
    pub async fn reconcile_all(&self) {
        let _one = self.inner.running.lock().await;
        self.inner.settled.send_replace(false);
        let started = std::time::Instant::now();
        let list = self.inner.servers.snapshot();
        let (owners, frontends) = shape(&list, &self.inner.me.server_type);
        let channels = &self.inner.channels;
        let dropped = channels.drop_unowned();
        let frontends: Vec<String> = frontends.into_iter().collect();
        let mut lost = channels.remove_frontends_except(&frontends);
        let pulls = frontends.iter().map(|f| self.pull(f, &owners));
        let mut failed = 0;
        let mut relisted = Vec::new();
        for (frontend, result) in frontends.iter().zip(join_all(pulls).await) {
            match result {
                Ok(wanted) => {
                    let replaced = channels.replace_frontend_members(frontend, &wanted);
                    lost.extend(replaced.lost);
                    relisted.extend(replaced.relisted.into_iter().map(|r| (frontend.clone(), r)));
                }
                Err(e) => {
                    failed += 1;
                    tracing::debug!(server = %self.inner.me.id, %frontend, error = %e, "member pull failed; keeping what we had");
                }
            }
        }
        let removed = lost.len();
        channels.report_lost(lost);
        let m = crate::telemetry::m();
        m.handoffs.increment(1);
        m.handoff_channels.increment(channels.all().len() as u64);
        self.inner.settled.send_replace(true);
        self.reattach_relisted(relisted).await;
        // A start of the cluster changes the list once per server that comes
        // up; a reconcile that found nothing to do is not worth a line then.
        let eventful = !dropped.is_empty() || removed > 0 || !channels.all().is_empty();
        if !eventful {
            tracing::debug!(server = %self.inner.me.id, owners = owners.len(), frontends = frontends.len(),
                "sharded channels reconciled (nothing to rebuild)");
            return;
        }
        tracing::info!(
            server = %self.inner.me.id,
            owners = owners.len(),
            frontends = frontends.len(),
            unreachable = failed,
            channels = channels.all().len(),
            dropped = dropped.len(),
            removed,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "sharded channels reconciled"
        );
    }

    /// Pulls one frontend's members again (it restarted).
    pub async fn reconcile_frontend(&self, frontend: &str) {
        let _one = self.inner.running.lock().await;
        let list = self.inner.servers.snapshot();
        if list.get(frontend).is_none() {
            // Its announcement outran the membership update (etcd's watch,
            // the master's list): the reconciliation that update triggers
            // pulls from it.
            tracing::debug!(server = %self.inner.me.id, %frontend, "resync from a frontend not listed yet; it is pulled when it joins the list");
            return;
        }
        self.inner.settled.send_replace(false);
        let (owners, _) = shape(&list, &self.inner.me.server_type);
        match self.pull(frontend, &owners).await {
            Ok(wanted) => {
                let replaced = self
                    .inner
                    .channels
                    .replace_frontend_members(frontend, &wanted);
                tracing::info!(server = %self.inner.me.id, %frontend, removed = replaced.lost.len(), "frontend resynced");
                self.inner.channels.report_lost(replaced.lost);
                self.inner.settled.send_replace(true);
                let relisted = replaced.relisted.into_iter();
                self.reattach_relisted(relisted.map(|r| (frontend.to_string(), r)).collect())
                    .await;
                return;
            }
            Err(e) => {
                tracing::warn!(server = %self.inner.me.id, %frontend, error = %e, "frontend resync failed")
            }
        }
        self.inner.settled.send_replace(true);
    }

    /// Held members that their frontend lists again (the session is back
    /// there): sends them their held pushes and makes them live there.
    async fn reattach_relisted(&self, relisted: Vec<(String, (Arc<Channel>, String))>) {
        for (frontend, (channel, uid)) in relisted {
            match channel.reattach(&uid, &frontend, &frontend).await {
                Ok(flushed) => {
                    tracing::info!(server = %self.inner.me.id, channel = %channel.name(), uid = %uid, %frontend, flushed,
                        "held member listed again by its frontend: reattached")
                }
                Err(reason) => {
                    tracing::info!(server = %self.inner.me.id, channel = %channel.name(), uid = %uid, %frontend, %reason,
                        "held member listed again by its frontend, not reattached yet")
                }
            }
        }
    }

    /// A resumed session of `req.uid`, last at `req.from_frontend`, is now
    /// at `req.to_frontend`: moves its member of channel `req.key` there,
    /// first sending it every push held for it, in order (see
    /// [`Channel::reattach`]). Waits for a running reconciliation first.
    pub async fn reattach(&self, req: proto::ReattachRequest) -> proto::ReattachReply {
        let refuse = |reason: String| proto::ReattachReply {
            reattached: false,
            reason,
            flushed: 0,
        };
        let me = &self.inner.me;
        if !req.server_type.is_empty() && req.server_type != me.server_type {
            return refuse(format!(
                "{} is a {} server, not {}",
                me.id, me.server_type, req.server_type
            ));
        }
        if !self.settled(SETTLE_LIMIT).await {
            tracing::warn!(server = %me.id, key = %req.key, "reattach: sharded state still rebuilding after {SETTLE_LIMIT:?}; answering anyway");
        }
        if !self.owns(&req.key) {
            return refuse(format!("{} is not the owner of {}", me.id, req.key));
        }
        let Some(channel) = self.inner.channels.get(&req.key, false) else {
            return refuse(format!("no member {} in {}", req.uid, req.key));
        };
        // A member not held but still recorded at `from` (this server has
        // not noticed a loss yet) moves only if `from` does not list it: a
        // stale token must not take a live session's place.
        let (from, to) = (&req.from_frontend, &req.to_frontend);
        if from != to
            && !channel.is_held(&req.uid)
            && channel.member(&req.uid).as_deref() == Some(from.as_str())
            && self.lists(from, &req.key, &req.uid).await
        {
            return refuse(format!(
                "{} is live in {} through {from}: nothing to resume",
                req.uid, req.key
            ));
        }
        match channel
            .reattach(&req.uid, &req.from_frontend, &req.to_frontend)
            .await
        {
            Ok(flushed) => {
                tracing::info!(server = %me.id, channel = %req.key, uid = %req.uid, from = %req.from_frontend,
                    to = %req.to_frontend, flushed, "member reattached");
                proto::ReattachReply {
                    reattached: true,
                    reason: String::new(),
                    flushed: flushed as u32,
                }
            }
            Err(reason) => {
                tracing::info!(server = %me.id, channel = %req.key, uid = %req.uid, from = %req.from_frontend,
                    to = %req.to_frontend, %reason, "reattach refused");
                refuse(reason)
            }
        }
    }

    /// Whether `frontend` answers a pull listing `uid` in `key`.
    async fn lists(&self, frontend: &str, key: &str, uid: &str) -> bool {
        let owners = self.owner_ids();
        self.pull(frontend, &owners).await.is_ok_and(|m| {
            m.get(key)
                .is_some_and(|uids| uids.iter().any(|(u, _)| u == uid))
        })
    }

    /// This type's servers in list order (the candidates of a pull).
    fn owner_ids(&self) -> Vec<String> {
        self.inner
            .servers
            .snapshot()
            .of_type(&self.inner.me.server_type)
            .iter()
            .map(|s| s.id.clone())
            .collect()
    }

    /// Asks `frontend` for the `key → uids` this server owns among `owners`.
    async fn pull(
        &self,
        frontend: &str,
        owners: &[String],
    ) -> Result<HashMap<String, Vec<(String, Option<Duration>)>>, String> {
        let req = proto::MembersRequest {
            server_type: self.inner.me.server_type.clone(),
            owner_id: self.inner.me.id.clone(),
            candidates: owners.to_vec(),
        };
        let entries = pull_members(&self.inner.pool, frontend, req).await?;
        let mut wanted: HashMap<String, Vec<(String, Option<Duration>)>> = HashMap::new();
        for e in entries {
            let window = (e.resume_window_ms > 0)
                .then(|| Duration::from_millis(u64::from(e.resume_window_ms)));
            wanted.entry(e.key).or_default().push((e.uid, window));
        }
        Ok(wanted)
    }
}

/// One `Members` call to `frontend`, bounded by [`PULL_TIMEOUT`]; `Err`
/// says why it gave nothing (sharded channels and the uid directory both
/// rebuild from these answers).
pub async fn pull_members(
    pool: &Pool,
    frontend: &str,
    req: proto::MembersRequest,
) -> Result<Vec<proto::MemberEntry>, String> {
    let channel = pool.channel(frontend).map_err(|e| e.to_string())?;
    let mut client = ClusterClient::new(channel);
    let call = client.members(req);
    match tokio::time::timeout(PULL_TIMEOUT, call).await {
        Err(_) => Err(format!("no answer within {PULL_TIMEOUT:?}")),
        Ok(Err(status)) => Err(status.message().to_string()),
        Ok(Ok(reply)) => Ok(reply.into_inner().entries),
    }
}

/// How long a restarted frontend keeps announcing its restart to owners
/// it learns about from a later server list (see [`announce_restart`]).
pub const ANNOUNCE_FOLLOW_UP: Duration = Duration::from_secs(10);

/// Frontend side of a restart: asks every server of `server_type` to pull
/// this frontend's members again, so whatever a previous incarnation of it
/// registered is dropped (those users are gone) before new clients come.
///
/// The list at start may be servers.json's, which does not name owners
/// added at run time (`shaddock add`): the master's list arrives a moment
/// later. So, for [`ANNOUNCE_FOLLOW_UP`] after the first announcement (or
/// until `stop`), every owner that appears in a later list is asked too.
/// A pull only replaces this frontend's members with what it really has,
/// so asking twice, or after clients arrived, loses nothing.
pub async fn announce_restart(
    pool: &Arc<Pool>,
    server_type: &str,
    frontend_id: &str,
    stop: CancellationToken,
) {
    // Subscribed first: a list that arrives during the first round is a
    // change the follow-up sees.
    let mut changes = pool.servers().changes();
    let mut announced = BTreeSet::new();
    announce_to_new(pool, server_type, frontend_id, &mut announced).await;
    let (pool, server_type, frontend_id) = (
        pool.clone(),
        server_type.to_string(),
        frontend_id.to_string(),
    );
    tokio::spawn(async move {
        let deadline = tokio::time::Instant::now() + ANNOUNCE_FOLLOW_UP;
        loop {
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tokio::time::sleep_until(deadline) => return,
                r = changes.changed() => if r.is_err() { return },
            }
            announce_to_new(&pool, &server_type, &frontend_id, &mut announced).await;
        }
    });
}

/// Sends `Resync` to the owners of `server_type` not in `announced` yet.
async fn announce_to_new(
    pool: &Pool,
    server_type: &str,
    frontend_id: &str,
    announced: &mut BTreeSet<String>,
) {
    let owners: Vec<ServerInfo> = pool
        .servers()
        .by_type(server_type)
        .into_iter()
        .filter(|o| !announced.contains(&o.id))
        .collect();
    let calls = owners.iter().map(|owner| async move {
        let Ok(channel) = pool.channel(&owner.id) else {
            return false;
        };
        let req = proto::ResyncRequest {
            frontend_id: frontend_id.to_string(),
        };
        let mut client = ClusterClient::new(channel);
        let call = client.resync(req);
        match tokio::time::timeout(PULL_TIMEOUT * 2, call).await {
            Ok(Ok(_)) => true,
            Ok(Err(status)) => {
                tracing::debug!(owner = %owner.id, error = %status.message(), "resync request failed");
                false
            }
            Err(_) => false,
        }
    });
    for (owner, ok) in owners.iter().zip(join_all(calls).await) {
        // An owner that did not answer is down: it pulls from every
        // frontend when it starts again. Only answered ones are done.
        if ok {
            announced.insert(owner.id.clone());
        }
    }
}
