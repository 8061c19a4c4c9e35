//! `connector.entryHandler`: logs a user into a room.

use shaddock::app::App;
use shaddock::cluster::{ClusterError, SessionSnapshot};
use shaddock::handler::HandlerError;
use shaddock::session::Session;
use shared::{EnterRequest, EnterResponse};

use crate::proto::room_remote_client::RoomRemoteClient;
use crate::proto::{JoinRequest, LeaveRequest};

/// `connector.entryHandler.enter {uid, rid}` → `{code: 200, users}`.
/// Binds the session to `uid`, keeps `rid` in the session (the `room`
/// router reads it) and joins the room on its room server.
pub async fn enter(
    app: App,
    session: Session,
    req: EnterRequest,
) -> Result<EnterResponse, HandlerError> {
    if req.uid.is_empty() || !app.sessions().by_uid(&req.uid).is_empty() {
        return Ok(EnterResponse {
            code: 500,
            users: Vec::new(),
            error: Some(format!("`{}` is empty or already logged in", req.uid)),
        });
    }
    session.bind(&req.uid).await?;
    session.set("rid", &req.rid);
    session.push_settings(&["rid"]).await?;
    let on_close = app.clone();
    session.on_closed(move |snapshot, _reason| {
        tokio::spawn(leave(on_close, snapshot));
    })?;
    let (server, channel) = app.rpc().channel_by_key("room", &req.rid)?;
    let join = JoinRequest {
        uid: req.uid,
        rid: req.rid,
        frontend_id: app.server_id().to_string(),
    };
    let reply = app
        .rpc()
        .call(&server, RoomRemoteClient::new(channel).join(join))
        .await?;
    Ok(EnterResponse {
        code: 200,
        users: reply.users,
        error: None,
    })
}

/// When the connection closes, the user leaves its room.
async fn leave(app: App, session: SessionSnapshot) {
    let (Some(uid), Some(rid)) = (session.uid, session.settings.get("rid")) else {
        return;
    };
    let rid = rid.as_str().unwrap_or_default().to_string();
    let result: Result<(), ClusterError> = async {
        let (server, channel) = app.rpc().channel_by_key("room", &rid)?;
        let req = LeaveRequest {
            uid: uid.clone(),
            rid: rid.clone(),
            frontend_id: app.server_id().to_string(),
        };
        app.rpc()
            .call(&server, RoomRemoteClient::new(channel).leave(req))
            .await?;
        Ok(())
    }
    .await;
    if let Err(e) = result {
        tracing::warn!(%uid, %rid, error = %e, "leaving the room failed");
    }
}
