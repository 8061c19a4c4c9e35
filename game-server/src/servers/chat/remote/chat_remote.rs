//! `chat.chatRemote`: room membership, called by the connectors (routed by
//! room). The server side implements the `ChatRemote` gRPC service; `add`
//! and `kick` below are the calls a connector makes.

use shaddock::app::App;
use shaddock::cluster::ClusterError;
use shared::{UserEvent, name_of};
use tonic::{Request, Response, Status};

use crate::proto::chat_remote_client::ChatRemoteClient;
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
        } = req.into_inner();
        let Some(channel) = self.app.channels().get(&rid, create) else {
            return Ok(Response::new(AddReply { users: Vec::new() }));
        };
        tracing::info!(server = %self.app.server_id(), rid = %rid, uid = %uid, "user joined room");
        if let Err(e) = channel
            .push(shared::PUSH_ADD, &UserEvent::added(name_of(&uid)))
            .await
        {
            tracing::warn!(rid = %rid, error = %e, "onAdd push failed");
        }
        channel.add(&uid, &frontend_id);
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
        if let Some(channel) = self.app.channels().get(&rid, false) {
            channel.leave(&uid, &frontend_id);
            tracing::info!(server = %self.app.server_id(), rid = %rid, uid = %uid, "user left room");
            if let Err(e) = channel
                .push(shared::PUSH_LEAVE, &UserEvent::left(name_of(&uid)))
                .await
            {
                tracing::warn!(rid = %rid, error = %e, "onLeave push failed");
            }
        }
        Ok(Response::new(KickReply {}))
    }
}

/// `app.rpc.chat.chatRemote.add(session, uid, serverId, rid, true)`.
pub async fn add(app: &App, uid: &str, rid: &str) -> Result<Vec<String>, ClusterError> {
    let (server, channel) = app.rpc().channel_by_key("chat", rid)?;
    let req = AddRequest {
        uid: uid.into(),
        frontend_id: app.server_id().into(),
        rid: rid.into(),
        create: true,
    };
    let reply = app
        .rpc()
        .call(&server, ChatRemoteClient::new(channel).add(req))
        .await?;
    Ok(reply.users)
}

/// `app.rpc.chat.chatRemote.kick(session, uid, serverId, rid)`.
pub async fn kick(app: &App, uid: &str, rid: &str) -> Result<(), ClusterError> {
    let (server, channel) = app.rpc().channel_by_key("chat", rid)?;
    let req = KickRequest {
        uid: uid.into(),
        frontend_id: app.server_id().into(),
        rid: rid.into(),
    };
    app.rpc()
        .call(&server, ChatRemoteClient::new(channel).kick(req))
        .await?;
    Ok(())
}
