//! `connector.entryHandler`: logs a user into a room.

use shaddock::app::App;
use shaddock::cluster::SessionSnapshot;
use shaddock::handler::HandlerError;
use shaddock::session::Session;
use shared::{EnterRequest, EnterResponse};

use crate::proto::{self, rpc};

/// `connector.entryHandler.enter {uid, rid}` → `{code: 200, users}`.
/// Binds the session to `uid`, keeps `rid` in the session (the `room`
/// router reads it) and joins the room on its room server. An empty or
/// already logged-in uid → `{code: 500, error}`.
pub async fn enter(
    app: App,
    session: Session,
    msg: EnterRequest,
) -> Result<EnterResponse, HandlerError> {
    if msg.uid.is_empty() || !app.sessions().by_uid(&msg.uid).is_empty() {
        return Ok(EnterResponse {
            code: 500,
            users: Vec::new(),
            error: Some(format!("`{}` is empty or already logged in", msg.uid)),
        });
    }
    session.bind(&msg.uid).await?;
    session.set("rid", &msg.rid);
    session.push_settings(&["rid"]).await?;
    let on_close = app.clone();
    session.on_closed(move |session, _reason| {
        tokio::spawn(user_left(on_close, session));
    })?;
    // Pomelo: app.rpc.room.roomRemote.join(session, uid, serverId, rid, cb)
    let req = proto::JoinRequest {
        uid: msg.uid,
        rid: msg.rid.clone(),
        frontend_id: app.server_id().to_string(),
    };
    let reply = rpc::RoomRemote::by_key(&app, &msg.rid).join(req).await?;
    Ok(EnterResponse {
        code: 200,
        users: reply.users,
        error: None,
    })
}

/// On disconnect the user leaves its room (the others get `onLeave`).
async fn user_left(app: App, session: SessionSnapshot) {
    let (Some(uid), Some(rid)) = (session.uid, session.settings.get("rid")) else {
        return;
    };
    let rid = rid.as_str().unwrap_or_default();
    // Pomelo: app.rpc.room.roomRemote.leave(session, uid, serverId, rid, cb)
    let req = proto::LeaveRequest {
        uid: uid.clone(),
        rid: rid.to_string(),
        frontend_id: app.server_id().to_string(),
    };
    if let Err(e) = rpc::RoomRemote::by_key(&app, rid).leave(req).await {
        tracing::warn!(%uid, %rid, error = %e, "roomRemote.leave failed");
    }
}
