//! The `room` servers: `room.roomHandler.say` (a client route the
//! connectors forward here) and the `RoomRemote` service (called by the
//! connectors over gRPC).

use shaddock::app::App;
use shaddock::config::ServerInfo;
use shaddock::handler::HandlerError;
use shaddock::router::RouteContext;
use shaddock::session::Session;
use shaddock::tonic::{self, Request, Response, Status};
use shared::{ChatPush, SayRequest, SayResponse, UserPush};

use crate::proto::room_remote_server;
use crate::proto::{JoinReply, JoinRequest, LeaveReply, LeaveRequest};

/// The router of `room`: a room lives on server `|crc32(rid)| mod n`.
/// Client requests carry the room in the session's `rid`; remote calls
/// pass it as the key.
pub fn by_room(ctx: &RouteContext<'_>, servers: &[ServerInfo]) -> Result<usize, String> {
    let rid = match ctx.session {
        Some(_) => ctx.session_setting("rid").unwrap_or_default(),
        None => ctx.key,
    };
    shaddock::hash::dispatch_index(rid, servers.len()).ok_or_else(|| "no room server".into())
}

/// `room.roomHandler.say {content}` → `{code: 200}`; everyone in the
/// sender's room gets `onChat {from, content, server}`.
pub async fn say(app: App, session: Session, req: SayRequest) -> Result<SayResponse, HandlerError> {
    let rid: String = session.get("rid").ok_or("enter a room first")?;
    let from = session.uid().ok_or("enter a room first")?;
    let channel = app.channels().get(&rid, false).ok_or("no such room")?;
    let push = ChatPush {
        from,
        content: req.content,
        server: app.server_id().to_string(),
    };
    channel.push(shared::PUSH_CHAT, &push).await?;
    Ok(SayResponse { code: 200 })
}

/// The `RoomRemote` service of `proto/room.proto`.
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
    async fn join(&self, req: Request<JoinRequest>) -> Result<Response<JoinReply>, Status> {
        let JoinRequest {
            uid,
            rid,
            frontend_id,
        } = req.into_inner();
        let channel = self.app.channels().create(&rid);
        // The others hear about the newcomer first, then it joins.
        if let Err(e) = channel
            .push(shared::PUSH_ADD, &UserPush { user: uid.clone() })
            .await
        {
            tracing::warn!(%rid, error = %e, "onAdd push failed");
        }
        channel.add(&uid, &frontend_id);
        tracing::info!(%rid, %uid, "joined");
        Ok(Response::new(JoinReply {
            users: channel.members_list(),
        }))
    }

    async fn leave(&self, req: Request<LeaveRequest>) -> Result<Response<LeaveReply>, Status> {
        let LeaveRequest {
            uid,
            rid,
            frontend_id,
        } = req.into_inner();
        if let Some(channel) = self.app.channels().get(&rid, false) {
            channel.leave(&uid, &frontend_id);
            if let Err(e) = channel
                .push(shared::PUSH_LEAVE, &UserPush { user: uid.clone() })
                .await
            {
                tracing::warn!(%rid, error = %e, "onLeave push failed");
            }
        }
        Ok(Response::new(LeaveReply {}))
    }
}
