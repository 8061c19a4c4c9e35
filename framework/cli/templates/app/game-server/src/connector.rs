//! `connector.entryHandler`: logs a user into a room.

use shaddock::app::App;
use shaddock::cluster::SessionSnapshot;
use shaddock::handler::HandlerError;
use shaddock::session::Session;
use shared::{EnterRequest, EnterResponse};

use crate::proto::{JoinRequest, LeaveRequest, rpc};

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
    // The room server that owns `rid` (the `room` router), with the
    // framework's RPC timeout: Pomelo's `app.rpc.room.roomRemote.join(...)`.
    let join = JoinRequest {
        uid: req.uid,
        rid: req.rid,
        frontend_id: app.server_id().to_string(),
    };
    let reply = rpc::RoomRemote::by_key(&app, &join.rid).join(join).await?;
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
    let rid = rid.as_str().unwrap_or_default();
    let req = LeaveRequest {
        uid: uid.clone(),
        rid: rid.to_string(),
        frontend_id: app.server_id().to_string(),
    };
    if let Err(e) = rpc::RoomRemote::by_key(&app, rid).leave(req).await {
        tracing::warn!(%uid, %rid, error = %e, "leaving the room failed");
    }
}
