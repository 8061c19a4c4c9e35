//! The cluster-wide uid directory: which frontend holds which uid, so that
//! a second login of a uid on another frontend meets one policy everywhere
//! (Pomelo #579, #745: without it the uid is bound twice and every push to
//! it arrives twice).
//!
//! Opt-in per app (`AppBuilder::uid_directory("chat")`): the servers of
//! that type own the uids, each uid on the server its router picks for the
//! uid as key — the same placement as sharded channels, over the same
//! server list (static, the master's, or etcd's), so no consensus of our
//! own. The frontends stay the source of truth, as for rooms:
//!
//! * **Claim** on bind: after a frontend binds a session locally it asks
//!   the uid's owner ([`UidDirectory::claim`]). Nobody else holds it →
//!   granted and recorded. Another frontend holds it → the owner first
//!   checks that holder still has it (it pulls the holder's bound uids: a
//!   lost release, a crashed frontend must not lock a user out), then
//!   applies the *claiming* frontend's `duplicate-login`: `refuse` (the
//!   bind is undone and the handler gets [`SessionError::Duplicate`]) or
//!   `kick` (recorded at the new frontend, then the old sessions are
//!   kicked by uid with [`KICK_DUPLICATE`]).
//! * **Release** when a bound session closes or unbinds (best effort; the
//!   owner removes the entry only if it still names that session).
//! * **Rebuild by pulling** ([`UidDirectory::reconcile_all`]) on start and
//!   whenever the list changes the owners or the frontends: every frontend
//!   reports the bound uids this owner owns (the `Members` call, key space
//!   `<type>@uid`); entries of frontends that left are dropped.
//!
//! Two sessions of one uid on the *same* frontend are that frontend's
//! business (the app decides, as in Pomelo); the directory records one.
//!
//! [`SessionError::Duplicate`]: crate::session::SessionError::Duplicate

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::future::join_all;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::auth::ClusterChannel;
use super::pool::Pool;
use super::proto::{self, cluster_client::ClusterClient};
use super::shard::{owner_of, pull_members};
use crate::discovery::{ServerList, Servers};
use crate::router::Routers;

/// KICK reason of a session whose uid logged in on another frontend
/// (`duplicate-login: kick`).
pub const KICK_DUPLICATE: &str = "logged in elsewhere";

/// How long a frontend waits for the owner's answer to a claim.
/// Longer than the owner's check of an older holder (a pull, bounded by
/// `PULL_TIMEOUT`), so a claim the owner grants is not given up on.
pub const CLAIM_TIMEOUT: Duration = Duration::from_secs(3);

/// The key space of the directory of `server_type` in `Members` calls.
pub fn key_space(server_type: &str) -> String {
    format!("{server_type}@uid")
}

/// The directory's server type of a `Members` key space, if it is one.
pub fn directory_type(key_space: &str) -> Option<&str> {
    key_space.strip_suffix("@uid")
}

/// Who holds a uid.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Holder {
    frontend: String,
    sid: u64,
}

/// The owner side: the uids this server owns and who holds each.
#[derive(Clone)]
pub struct UidDirectory {
    inner: Arc<Inner>,
}

struct Inner {
    me: String,
    server_type: String,
    servers: Servers,
    pool: Arc<Pool>,
    routers: Arc<Routers>,
    entries: Mutex<HashMap<String, Holder>>,
    /// One reconciliation at a time.
    running: tokio::sync::Mutex<()>,
}

impl UidDirectory {
    pub fn new(
        me: &str,
        server_type: &str,
        servers: Servers,
        pool: Arc<Pool>,
        routers: Arc<Routers>,
    ) -> Self {
        UidDirectory {
            inner: Arc::new(Inner {
                me: me.to_owned(),
                server_type: server_type.to_owned(),
                servers,
                pool,
                routers,
                entries: Mutex::default(),
                running: tokio::sync::Mutex::new(()),
            }),
        }
    }

    fn entries(&self) -> std::sync::MutexGuard<'_, HashMap<String, Holder>> {
        self.inner.entries.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// How many uids this server records.
    pub fn len(&self) -> usize {
        self.entries().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The frontend recorded for `uid`.
    pub fn holder(&self, uid: &str) -> Option<String> {
        self.entries().get(uid).map(|h| h.frontend.clone())
    }

    /// A frontend bound `req.uid`: grants or refuses it (see the module doc).
    pub async fn claim(&self, req: proto::ClaimUidRequest) -> proto::ClaimUidReply {
        let new = Holder {
            frontend: req.frontend_id.clone(),
            sid: req.sid,
        };
        let old = {
            let mut entries = self.entries();
            match entries.get(&req.uid) {
                Some(h) if h.frontend != new.frontend => h.clone(),
                _ => {
                    entries.insert(req.uid.clone(), new);
                    return granted("");
                }
            }
        };
        // Another frontend holds it: still? (A missed release or a crashed
        // frontend must not lock the user out.)
        let still = match self.pull(&old.frontend).await {
            Ok(uids) => uids.contains(&req.uid),
            Err(_) => false,
        };
        {
            let mut entries = self.entries();
            // Re-read: a release or another claim may have run meanwhile.
            let current = entries.get(&req.uid).cloned();
            if !still || current.as_ref() != Some(&old) {
                if let Some(h) = current.filter(|h| *h != old && h.frontend != req.frontend_id) {
                    // A third frontend took it meanwhile: refuse this one
                    // now (rare, and safe: the user retries).
                    return refused(&h.frontend);
                }
                entries.insert(req.uid.clone(), new);
                return granted("");
            }
            if !req.kick_old {
                tracing::info!(server = %self.inner.me, uid = %req.uid, holder = %old.frontend,
                    frontend = %req.frontend_id, "second login refused (duplicate-login: refuse)");
                return refused(&old.frontend);
            }
            entries.insert(req.uid.clone(), new);
        }
        tracing::info!(server = %self.inner.me, uid = %req.uid, old = %old.frontend,
            frontend = %req.frontend_id, "second login: the older session is kicked (duplicate-login: kick)");
        // Answered at once; the kick follows (a slow older frontend must
        // not make the claimant give up on a grant already recorded).
        let (dir, old_frontend, uid) = (self.clone(), old.frontend.clone(), req.uid.clone());
        tokio::spawn(async move { dir.kick(&old_frontend, &uid).await });
        granted(&old.frontend)
    }

    /// The session `req` names closed: forgets the uid if it is still
    /// recorded for that session.
    pub fn release(&self, req: &proto::ReleaseUidRequest) {
        let mut entries = self.entries();
        let mine = entries.get(&req.uid).is_some_and(|h| {
            h.frontend == req.frontend_id && (h.sid == req.sid || req.sid == 0 || h.sid == 0)
        });
        if mine {
            entries.remove(&req.uid);
        }
    }

    async fn kick(&self, frontend: &str, uid: &str) {
        let Ok(channel) = self.inner.pool.channel(frontend) else {
            return;
        };
        let req = proto::SessionOpRequest {
            kind: proto::SessionOpKind::KickByUid as i32,
            uid: uid.to_owned(),
            reason: KICK_DUPLICATE.to_owned(),
            ..Default::default()
        };
        let mut client = ClusterClient::new(channel);
        let call = client.session_op(req);
        match tokio::time::timeout(CLAIM_TIMEOUT, call).await {
            Ok(Ok(_)) => {}
            Ok(Err(status)) => {
                tracing::warn!(%frontend, %uid, error = %status.message(), "kicking the older session failed")
            }
            Err(_) => tracing::warn!(%frontend, %uid, "kicking the older session timed out"),
        }
    }

    /// The uids `frontend` has bound that this server owns.
    async fn pull(&self, frontend: &str) -> Result<Vec<String>, String> {
        let list = self.inner.servers.snapshot();
        let owners: Vec<String> = list
            .of_type(&self.inner.server_type)
            .iter()
            .map(|s| s.id.clone())
            .collect();
        let req = proto::MembersRequest {
            server_type: key_space(&self.inner.server_type),
            owner_id: self.inner.me.clone(),
            candidates: owners,
        };
        let entries = pull_members(&self.inner.pool, frontend, req).await?;
        Ok(entries.into_iter().map(|e| e.uid).collect())
    }

    /// Rebuilds the entries from the frontends: each one that answers
    /// replaces its own; those out of the list are dropped; one that does
    /// not answer keeps what it had.
    pub async fn reconcile_all(&self) {
        let _one = self.inner.running.lock().await;
        let list = self.inner.servers.snapshot();
        let frontends = list.cluster_frontends();
        let pulls = join_all(frontends.iter().map(|f| self.pull(f))).await;
        let mut entries = self.entries();
        entries.retain(|_, h| frontends.contains(&h.frontend));
        for (frontend, pulled) in frontends.iter().zip(pulls) {
            let Ok(uids) = pulled else { continue };
            entries.retain(|uid, h| h.frontend != *frontend || uids.contains(uid));
            for uid in uids {
                // A uid two frontends report (a race, or a policy that let
                // both in): the first recorded stays.
                entries.entry(uid).or_insert(Holder {
                    frontend: frontend.clone(),
                    sid: 0,
                });
            }
        }
        tracing::debug!(server = %self.inner.me, uids = entries.len(), "uid directory rebuilt");
    }

    /// Rebuilds now, then whenever the list changes, until `stop`.
    pub fn start(&self, stop: CancellationToken) -> JoinHandle<()> {
        let dir = self.clone();
        tokio::spawn(async move {
            let mut changes = dir.inner.servers.changes();
            let shape = |l: &ServerList| {
                l.all()
                    .iter()
                    .filter(|s| s.server_type == dir.inner.server_type || s.frontend)
                    .map(|s| s.id.clone())
                    .collect::<Vec<_>>()
            };
            let mut last = shape(&dir.inner.servers.snapshot());
            dir.reconcile_all().await;
            loop {
                tokio::select! {
                    _ = stop.cancelled() => return,
                    r = changes.changed() => if r.is_err() { return },
                }
                let now = shape(&dir.inner.servers.snapshot());
                if now != last {
                    last = now;
                    dir.reconcile_all().await;
                }
            }
        })
    }

    /// Whether this server owns `uid` under the current list.
    pub fn owns(&self, uid: &str) -> bool {
        owner_in(
            &self.inner.servers.snapshot(),
            &self.inner.routers,
            &self.inner.server_type,
            uid,
        )
        .is_some_and(|id| id == self.inner.me)
    }
}

fn granted(holder: &str) -> proto::ClaimUidReply {
    proto::ClaimUidReply {
        granted: true,
        holder: holder.to_owned(),
    }
}

fn refused(holder: &str) -> proto::ClaimUidReply {
    proto::ClaimUidReply {
        granted: false,
        holder: holder.to_owned(),
    }
}

/// The id of the server of `server_type` that owns `uid` in `list`.
pub fn owner_in(
    list: &ServerList,
    routers: &Routers,
    server_type: &str,
    uid: &str,
) -> Option<String> {
    let candidates = list.of_type(server_type);
    owner_of(routers, server_type, uid, candidates).map(|i| candidates[i].id.clone())
}

/// The frontend side: claims and releases against the owners.
#[derive(Clone)]
pub struct UidClaims {
    server_type: String,
    frontend: String,
    kick_old: bool,
    servers: Servers,
    pool: Arc<Pool>,
    routers: Arc<Routers>,
}

impl UidClaims {
    pub fn new(
        server_type: &str,
        frontend: &str,
        kick_old: bool,
        servers: Servers,
        pool: Arc<Pool>,
        routers: Arc<Routers>,
    ) -> Self {
        UidClaims {
            server_type: server_type.to_owned(),
            frontend: frontend.to_owned(),
            kick_old,
            servers,
            pool,
            routers,
        }
    }

    fn client_for(&self, uid: &str) -> Result<(String, ClusterClient<ClusterChannel>), String> {
        let owner = owner_in(
            &self.servers.snapshot(),
            &self.routers,
            &self.server_type,
            uid,
        )
        .ok_or_else(|| {
            format!(
                "no {} server is up to keep the uid directory",
                self.server_type
            )
        })?;
        let channel = self.pool.channel(&owner).map_err(|e| e.to_string())?;
        Ok((owner, ClusterClient::new(channel)))
    }

    /// Asks the owner of `uid` for it; `Err` says why the bind must be
    /// undone (another frontend holds the uid, or no owner answered).
    pub async fn claim(&self, sid: u64, uid: &str, allow_kick: bool) -> Result<(), String> {
        let (owner, mut client) = self.client_for(uid)?;
        let req = proto::ClaimUidRequest {
            uid: uid.to_owned(),
            frontend_id: self.frontend.clone(),
            sid,
            kick_old: self.kick_old && allow_kick,
        };
        match tokio::time::timeout(CLAIM_TIMEOUT, client.claim_uid(req)).await {
            Ok(Ok(reply)) => {
                let reply = reply.into_inner();
                if reply.granted {
                    Ok(())
                } else {
                    Err(format!(
                        "`{uid}` is logged in on {} (duplicate-login: refuse)",
                        reply.holder
                    ))
                }
            }
            Ok(Err(status)) => Err(format!(
                "the uid directory ({owner}) failed: {}",
                status.message()
            )),
            Err(_) => Err(format!(
                "the uid directory ({owner}) did not answer within {CLAIM_TIMEOUT:?}"
            )),
        }
    }

    /// Tells the owner of `uid` that session `sid` no longer holds it
    /// (spawned; best effort: a lost release is found at the next claim).
    pub fn release(&self, sid: u64, uid: &str) {
        let Ok((_, mut client)) = self.client_for(uid) else {
            return;
        };
        let req = proto::ReleaseUidRequest {
            uid: uid.to_owned(),
            frontend_id: self.frontend.clone(),
            sid,
        };
        tokio::spawn(async move {
            let _ = tokio::time::timeout(CLAIM_TIMEOUT, client.release_uid(req)).await;
        });
    }
}

impl crate::session::UidRegistry for UidClaims {
    fn claim<'a>(
        &'a self,
        sid: u64,
        uid: &'a str,
        allow_kick: bool,
    ) -> crate::BoxFuture<'a, Result<(), String>> {
        Box::pin(UidClaims::claim(self, sid, uid, allow_kick))
    }

    fn release(&self, sid: u64, uid: &str) {
        UidClaims::release(self, sid, uid)
    }
}
