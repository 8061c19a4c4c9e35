//! `chat.chatRemote`: room membership, called by the connectors (routed by
//! room). This is the server side of the `ChatRemote` gRPC service; callers
//! use the generated `crate::proto::rpc::ChatRemote`, e.g.
//! `rpc::ChatRemote::by_key(&app, &rid).add(req).await?`.

use std::sync::Arc;

use shaddock::app::App;
use shaddock::channel::Channel;
use shaddock::session::RemoteSessionOps;
use shaddock::tonic::{self, Request, Response, Status};
use shared::{UserEvent, name_of};

use crate::proto::{AddReply, AddRequest, KickReply, KickRequest, chat_remote_server};

pub struct ChatRemote {
    app: App,
}

impl ChatRemote {
    pub fn new(app: &App) -> Self {
        ChatRemote { app: app.clone() }
    }
}

#[tonic::async_trait]
impl chat_remote_server::ChatRemote for ChatRemote {
    /// Joins `uid` to room `rid`: the members already there get `onAdd`
    /// first; returns every member's name, the newcomer included.
    async fn add(&self, req: Request<AddRequest>) -> Result<Response<AddReply>, Status> {
        let AddRequest {
            uid,
            frontend_id,
            rid,
            create,
            kick_old,
            resume_window_ms,
        } = req.into_inner();
        // The connector routed with a list older than ours: the room lives
        // elsewhere now. Refuse (the client may retry) rather than start a
        // stray copy of the room here.
        if !self.app.channels().owns(&rid) {
            return Err(Status::unavailable(format!(
                "room `{rid}` is not on {} any more; retry",
                self.app.server_id()
            )));
        }
        if !create && self.app.channels().get(&rid, false).is_none() {
            return Ok(Response::new(AddReply { users: Vec::new() }));
        }
        // A member held since its connector was lost logs in afresh
        // instead of resuming: it takes its place back quietly (the room
        // never saw it leave), without the pushes held for the old session.
        let resume = (resume_window_ms > 0)
            .then(|| std::time::Duration::from_millis(u64::from(resume_window_ms)));
        if let Some(channel) = self.app.channels().get(&rid, false)
            && channel.is_held(&uid)
            && channel.take_over(&uid, &frontend_id)
        {
            tracing::info!(rid = %rid, uid = %uid, "held member logged in again; it takes its place back");
            let users = channel
                .members_list()
                .iter()
                .map(|u| name_of(u).to_string())
                .collect();
            return Ok(Response::new(AddReply { users }));
        }
        // This server is the room's directory of uids: a uid is a member
        // through one connector, so its pushes go out once.
        let moved = match self
            .app
            .channels()
            .get(&rid, false)
            .and_then(|c| c.member(&uid))
        {
            Some(old) if old != frontend_id && !kick_old => {
                tracing::info!(rid = %rid, uid = %uid, held_by = %old, "second login refused (duplicate-login: refuse)");
                return Err(Status::already_exists(format!(
                    "`{uid}` is in room `{rid}` through {old}"
                )));
            }
            Some(old) if old != frontend_id => Some(old),
            _ => None,
        };
        // Moved before the older session is kicked: its leave call, which
        // may come back before the kick's answer, then finds the member at
        // the new connector and announces nothing.
        if let (Some(old), Some(channel)) = (&moved, self.app.channels().get(&rid, false)) {
            channel.leave(&uid, old);
        }
        // Joined in one step with the room's creation: a room is destroyed
        // when its last member leaves, and a join racing that leave must not
        // land in the destroyed room.
        let (channel, _) = self
            .app
            .channels()
            .add_member_with(&rid, &uid, &frontend_id, resume);
        tracing::info!(server = %self.app.server_id(), rid = %rid, uid = %uid, moved = moved.is_some(), "user joined room");
        if let Some(old) = &moved {
            self.kick_older(&rid, &uid, old).await;
        }
        // Everyone but the newcomer (a member that moved never left).
        if moved.is_none()
            && let Err(e) = channel
                .push_except(shared::PUSH_ADD, &UserEvent::added(name_of(&uid)), &uid)
                .await
        {
            tracing::warn!(rid = %rid, error = %e, "onAdd push failed");
        }
        let users = channel
            .members_list()
            .iter()
            .map(|u| name_of(u).to_string())
            .collect();
        Ok(Response::new(AddReply { users }))
    }

    /// Removes `uid` from room `rid`; the members left get `onLeave`.
    async fn kick(&self, req: Request<KickRequest>) -> Result<Response<KickReply>, Status> {
        let KickRequest {
            uid,
            frontend_id,
            rid,
        } = req.into_inner();
        // Only a member recorded at that connector leaves: one that moved
        // to another connector (duplicate-login: kick) stays.
        if let Some(channel) = self.app.channels().get(&rid, false)
            && channel.leave(&uid, &frontend_id)
        {
            tracing::info!(server = %self.app.server_id(), rid = %rid, uid = %uid, "user left room");
            announce_leave(&self.app, &channel, &uid).await;
        }
        Ok(Response::new(KickReply {}))
    }
}

impl ChatRemote {
    /// `duplicate-login: kick`: kicks `uid`'s older session on connector
    /// `old` (the member already moved to the new connector).
    async fn kick_older(&self, rid: &str, uid: &str, old: &str) {
        let ops = self.app.cluster().session_ops();
        if let Err(e) = ops.kick_by_uid(old, uid, shared::KICK_ELSEWHERE).await {
            tracing::warn!(rid = %rid, uid = %uid, old = %old, error = %e, "kicking the older session failed");
        }
        tracing::info!(rid = %rid, uid = %uid, old = %old, "second login: older session kicked (duplicate-login: kick)");
    }
}

/// After `uid` left `channel` (a leave, a kick, a disconnect or a lost
/// connector: all come here): the members left get `onLeave`, and a room
/// nobody is in any more is destroyed, so that ever new room ids do not
/// grow this server's memory for ever.
async fn announce_leave(app: &App, channel: &Channel, uid: &str) {
    let rid = channel.name();
    if app.channels().destroy_if_empty(rid) {
        let rooms = app.channels().count();
        tracing::info!(server = %app.server_id(), rid = %rid, rooms, "room destroyed: its last member left");
        return;
    }
    if let Err(e) = channel
        .push(shared::PUSH_LEAVE, &UserEvent::left(name_of(uid)))
        .await
    {
        tracing::warn!(rid = %rid, error = %e, "onLeave push failed");
    }
}

/// A member whose connector no longer has it (the connector crashed or left
/// the cluster): the room's others get `onLeave`, as if it had left.
pub fn member_lost(app: App, channel: Arc<Channel>, uid: String) {
    tokio::spawn(async move {
        tracing::info!(rid = %channel.name(), uid = %uid, "member lost with its connector");
        announce_leave(&app, &channel, &uid).await;
    });
}
