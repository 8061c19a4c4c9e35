//! `connector.entryHandler`: logs a user into a room.

use shaddock::app::App;
use shaddock::cluster::SessionSnapshot;
use shaddock::connector::DuplicateLogin;
use shaddock::handler::HandlerError;
use shaddock::session::Session;
use shared::{EnterRequest, EnterResponse};

use crate::proto::{AddRequest, KickRequest, rpc};

/// `connector.entryHandler.enter {username, rid}` → `{users: [names in the room]}`.
/// Binds uid `username*rid`, keeps `rid` in the session (the `chat` router
/// reads it) and joins the room on its chat server. A name or room that
/// breaks [`shared::check_name`] → `{code: 400, message}` (before anything
/// is bound or created); a name already in that room on this connector →
/// `{code: 500, error: true}`. Through another connector, the room's chat
/// server (which knows where each member is) applies `duplicate-login`
/// (connector.json): `refuse` answers the same, `kick` kicks the other
/// session and this one takes its place, quietly for the room.
pub async fn enter(
    app: App,
    session: Session,
    msg: EnterRequest,
) -> Result<EnterResponse, HandlerError> {
    if let Err(message) = shared::check_name("Name", &msg.username)
        .and_then(|()| shared::check_name("Room", &msg.rid))
    {
        tracing::info!(sid = session.id(), %message, "enter refused");
        return Ok(EnterResponse::invalid(message));
    }
    let rid = msg.rid;
    let uid = shared::uid(&msg.username, &rid);
    if !app.sessions().by_uid(&uid).is_empty() || session.bind(&uid).await.is_err() {
        return Ok(EnterResponse::duplicate());
    }
    session.set("rid", &rid);
    session.push_settings(&["rid"]).await?;
    // The frontend records the room before joining it: if the room's chat
    // server restarts or the room moves, its new owner rebuilds the room
    // from these records.
    session.register_key("chat", &rid)?;
    // Tracked close work: a graceful stop of this connector waits for the
    // leave call, so nobody stays in a room as a ghost.
    let on_close = app.clone();
    session.on_closed_async(move |session, _reason| user_left(on_close, session))?;
    // Pomelo: app.rpc.chat.chatRemote.add(session, uid, serverId, rid, true, cb)
    let req = AddRequest {
        uid: uid.clone(),
        frontend_id: app.server_id().into(),
        rid: rid.clone(),
        create: true,
        kick_old: app.connector_options().duplicate_login == DuplicateLogin::Kick,
        resume_window_ms: session.resume_window_ms(),
    };
    match rpc::ChatRemote::by_key(&app, &rid).add(req).await {
        Ok(reply) => Ok(EnterResponse::Users { users: reply.users }),
        Err(e) => {
            tracing::warn!(%uid, %rid, error = %e, "chatRemote.add failed");
            session.unregister_key("chat")?;
            // Not in the room: free the uid (the close then has nothing to
            // leave, and a retry can bind it again).
            session.unbind().await?;
            Ok(EnterResponse::duplicate())
        }
    }
}

/// A session rebuilt here after its connector was lost (session resume):
/// it is in its room already (the chat server held it), but its `closed`
/// listener is code, not state — put back the one `enter` adds.
pub fn session_restored(app: App, session: Session) {
    if let Err(e) = session.on_closed_async(move |session, _reason| user_left(app, session)) {
        tracing::warn!(sid = session.id(), error = %e, "restored session closed before its listener was added");
    }
}

/// On disconnect the user leaves its room (the others get `onLeave`).
async fn user_left(app: App, session: SessionSnapshot) {
    let (Some(uid), Some(rid)) = (session.uid, session.settings.get("rid")) else {
        return;
    };
    let rid = rid.as_str().unwrap_or_default();
    // Pomelo: app.rpc.chat.chatRemote.kick(session, uid, serverId, rid, cb)
    let req = KickRequest {
        uid: uid.clone(),
        frontend_id: app.server_id().into(),
        rid: rid.into(),
    };
    if let Err(e) = rpc::ChatRemote::by_key(&app, rid).kick(req).await {
        tracing::warn!(%uid, %rid, error = %e, "chatRemote.kick failed");
    }
}
