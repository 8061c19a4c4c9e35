//! The app as a cluster peer: [`LocalNode`] implemented over [`App`].
//!
//! Forwarded requests run through `App::handle` with a backend [`Session`]
//! rebuilt from the snapshot (its `bind`/`push_settings`/`kick` go back to
//! the owning frontend through `ops`); pushes and session operations go to
//! the frontend's `SessionService`.

use std::sync::Arc;

use bytes::Bytes;

use super::App;
use crate::BoxFuture;
use crate::cluster::shard::{SETTLE_LIMIT, candidate_infos, owner_of};
use crate::cluster::{LocalNode, SessionOp, SessionOpError, proto};
use crate::session::{RemoteSessionOps, Session, SessionError, SessionService, SessionSnapshot};

/// An [`App`] serving its cluster peers.
pub(super) struct AppNode {
    app: App,
    ops: Arc<dyn RemoteSessionOps>,
}

impl AppNode {
    pub(super) fn new(app: App, ops: Arc<dyn RemoteSessionOps>) -> Self {
        AppNode { app, ops }
    }

    fn frontend_only(&self) -> Result<(), SessionOpError> {
        if self.app.server().frontend {
            Ok(())
        } else {
            Err(SessionOpError::NotFrontend)
        }
    }
}

impl LocalNode for AppNode {
    fn server_id(&self) -> &str {
        self.app.server_id()
    }

    fn handle(
        &self,
        session: SessionSnapshot,
        route: String,
        body: Bytes,
        is_request: bool,
    ) -> BoxFuture<'static, Option<Bytes>> {
        let app = self.app.clone();
        let session = Session::remote(session, self.ops.clone());
        Box::pin(async move {
            // A room being rebuilt here (restart, membership change) is
            // not whole yet: wait for it rather than serve half of it.
            if let Some(keeper) = app.shard_keeper()
                && !keeper.settled(SETTLE_LIMIT).await
            {
                tracing::warn!(
                    route,
                    "sharded state still rebuilding after {SETTLE_LIMIT:?}; serving anyway"
                );
            }
            app.handle(session, &route, body, is_request).await
        })
    }

    fn push_to_uids(
        &self,
        route: &str,
        body: Bytes,
        uids: &[String],
    ) -> Result<Vec<String>, SessionOpError> {
        self.frontend_only()?;
        Ok(self.app.sessions().push_to_uids(route, body, uids))
    }

    fn broadcast(&self, route: &str, body: Bytes, binded_only: bool) -> Result<(), SessionOpError> {
        self.frontend_only()?;
        self.app.sessions().broadcast(route, body, binded_only);
        Ok(())
    }

    fn push_batch(
        &self,
        batch: &[crate::cluster::proto::PushRequest],
    ) -> Vec<Result<Vec<String>, SessionOpError>> {
        if let Err(e) = self.frontend_only() {
            return batch.iter().map(|_| Err(e.clone())).collect();
        }
        let sessions = self.app.sessions();
        if let [one] = batch {
            // Alone: written at once, from here.
            return vec![Ok(if one.broadcast {
                sessions.broadcast(&one.route, one.body.clone(), one.binded_only);
                Vec::new()
            } else {
                sessions.push_to_uids(&one.route, one.body.clone(), &one.uids)
            })];
        }
        let mut touched = Vec::new();
        let results = batch
            .iter()
            .map(|m| {
                Ok(if m.broadcast {
                    sessions.broadcast(&m.route, m.body.clone(), m.binded_only);
                    Vec::new()
                } else {
                    sessions.push_to_uids_deferred(&m.route, m.body.clone(), &m.uids, &mut touched)
                })
            })
            .collect();
        SessionService::flush_deferred(&mut touched);
        results
    }

    fn members(
        &self,
        server_type: &str,
        owner_id: &str,
        candidates: &[String],
    ) -> Result<Vec<(String, String, u32)>, SessionOpError> {
        self.frontend_only()?;
        let list = self.app.cluster().servers().snapshot();
        // The uid directory's pull: the bound uids the caller owns.
        if let Some(dir_type) = crate::cluster::directory::directory_type(server_type) {
            let infos = candidate_infos(&list, dir_type, candidates);
            let routers = self.app.cluster().routers();
            return Ok(self
                .app
                .sessions()
                .bound_uids()
                .into_iter()
                .filter(|uid| {
                    owner_of(routers, dir_type, uid, &infos)
                        .is_some_and(|i| infos[i].id == owner_id)
                })
                .map(|uid| (uid.clone(), uid, 0))
                .collect());
        }
        let infos = candidate_infos(&list, server_type, candidates);
        let routers = self.app.cluster().routers();
        Ok(self
            .app
            .sessions()
            .keys_with_resume(server_type)
            .into_iter()
            .filter(|(key, _, _)| {
                owner_of(routers, server_type, key, &infos).is_some_and(|i| infos[i].id == owner_id)
            })
            .collect())
    }

    fn session_event(&self, event: crate::cluster::session_events::SessionEvent) {
        if let Some(hook) = &self.app.inner.session_event {
            hook(self.app.clone(), event);
        }
    }

    fn resync(&self, frontend_id: String) -> BoxFuture<'static, ()> {
        let keeper = self.app.shard_keeper().cloned();
        Box::pin(async move {
            if let Some(keeper) = keeper {
                keeper.reconcile_frontend(&frontend_id).await;
            }
        })
    }

    fn claim_uid(
        &self,
        req: crate::cluster::proto::ClaimUidRequest,
    ) -> BoxFuture<'static, Result<crate::cluster::proto::ClaimUidReply, SessionOpError>> {
        let dir = self.app.inner.directory.clone();
        Box::pin(async move {
            match dir {
                Some(dir) => Ok(dir.claim(req).await),
                None => Err(SessionOpError::Rejected(
                    "this server keeps no uid directory (AppBuilder::uid_directory names another type)".into(),
                )),
            }
        })
    }

    fn reattach(&self, req: proto::ReattachRequest) -> BoxFuture<'static, proto::ReattachReply> {
        let keeper = self.app.shard_keeper().cloned();
        Box::pin(async move {
            match keeper {
                Some(keeper) => keeper.reattach(req).await,
                None => proto::ReattachReply {
                    reattached: false,
                    reason: "this server keeps no sharded channels".into(),
                    flushed: 0,
                },
            }
        })
    }

    fn release_uid(&self, req: crate::cluster::proto::ReleaseUidRequest) {
        if let Some(dir) = &self.app.inner.directory {
            dir.release(&req);
        }
    }

    fn session_op(&self, op: SessionOp) -> BoxFuture<'_, Result<(), SessionOpError>> {
        Box::pin(async move {
            self.frontend_only()?;
            let sessions = self.app.sessions();
            let result = match op {
                SessionOp::Bind { sid, uid } => sessions.bind_claimed(sid, &uid, true).await,
                SessionOp::Unbind { sid, uid } => sessions.unbind(sid, &uid),
                SessionOp::PushSettings { sid, settings } => sessions.set_settings(sid, settings),
                SessionOp::KickBySid { sid, reason } => {
                    if sessions.kick_by_sid(sid, &reason) {
                        Ok(())
                    } else {
                        Err(SessionError::NoSuchSession(sid))
                    }
                }
                SessionOp::KickByUid { uid, reason } => {
                    sessions.kick_by_uid(&uid, &reason);
                    Ok(())
                }
            };
            result.map_err(|e| match e {
                SessionError::NoSuchSession(sid) => SessionOpError::NoSuchSession(sid),
                other => SessionOpError::Rejected(other.to_string()),
            })
        })
    }
}
