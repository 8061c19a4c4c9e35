//! `room.roomRemote`: room membership, called by the connectors (routed by
//! room). This is the server side of the `RoomRemote` service of
//! `proto/room.proto`; callers use the generated `crate::proto::rpc::RoomRemote`,
//! e.g. `rpc::RoomRemote::by_key(&app, &rid).join(req).await?`.

use shaddock::app::App;
use shaddock::tonic::{self, Request, Response, Status};
use shared::UserPush;

use crate::proto::{self, room_remote_server};

pub struct RoomRemote {
    app: App,
}

impl RoomRemote {
    pub fn new(app: &App) -> Self {
        RoomRemote { app: app.clone() }
    }
}

#[tonic::async_trait]
impl room_remote_server::RoomRemote for RoomRemote {
    /// Joins `uid` to room `rid`: the members already there get `onAdd`
    /// first; returns every member, the newcomer included.
    async fn join(
        &self,
        req: Request<proto::JoinRequest>,
    ) -> Result<Response<proto::JoinReply>, Status> {
        let proto::JoinRequest {
            uid,
            rid,
            frontend_id,
        } = req.into_inner();
        let channel = self.app.channels().create(&rid);
        if let Err(e) = channel
            .push(shared::PUSH_ADD, &UserPush { user: uid.clone() })
            .await
        {
            tracing::warn!(%rid, error = %e, "onAdd push failed");
        }
        channel.add(&uid, &frontend_id);
        tracing::info!(server = %self.app.server_id(), %rid, %uid, "user joined room");
        Ok(Response::new(proto::JoinReply {
            users: channel.members_list(),
        }))
    }

    /// Removes `uid` from room `rid`; the members left get `onLeave`.
    async fn leave(
        &self,
        req: Request<proto::LeaveRequest>,
    ) -> Result<Response<proto::LeaveReply>, Status> {
        let proto::LeaveRequest {
            uid,
            rid,
            frontend_id,
        } = req.into_inner();
        if let Some(channel) = self.app.channels().get(&rid, false) {
            channel.leave(&uid, &frontend_id);
            tracing::info!(server = %self.app.server_id(), %rid, %uid, "user left room");
            if let Err(e) = channel
                .push(shared::PUSH_LEAVE, &UserPush { user: uid.clone() })
                .await
            {
                tracing::warn!(%rid, error = %e, "onLeave push failed");
            }
        }
        Ok(Response::new(proto::LeaveReply {}))
    }
}
