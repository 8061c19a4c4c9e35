//! The chat's admin actions (`shaddock broadcast`, `close-room`, and
//! `rooms` for the dashboard). Rooms are chat concepts, so they live here;
//! the framework passes the operator's command to every server
//! (`shaddock::app::admin`) and only the servers a command concerns act:
//! the connectors for "every user", the chat server holding the room for a
//! room.

use serde_json::{Value, json};
use shaddock::app::App;
use shaddock::app::admin::ActionResult;
use shaddock::cluster::ClusterSessionOps;
use shaddock::session::RemoteSessionOps;
use shared::{OnSystem, PUSH_SYSTEM};

/// Longest system message (a page line, not a document).
const MAX_MESSAGE: usize = 1000;

fn text<'a>(args: &'a Value, key: &str) -> Option<&'a str> {
    args.get(key)
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
}

/// `broadcast {message, room?}`: `onSystem {msg}` to every bound user of
/// each connector, or to the members of `room` from its chat server.
pub async fn broadcast(app: App, args: Value) -> ActionResult {
    let message = text(&args, "message").ok_or("broadcast needs {\"message\": \"...\"}")?;
    if message.chars().count() > MAX_MESSAGE {
        return Err(format!(
            "the message is longer than {MAX_MESSAGE} characters"
        ));
    }
    let body = OnSystem {
        msg: message.to_string(),
    };
    match text(&args, "room") {
        None if app.server_type() == "connector" => {
            let bytes = serde_json::to_vec(&body).map_err(|e| e.to_string())?;
            let delivered = app.sessions().broadcast(PUSH_SYSTEM, bytes.into(), true);
            Ok(Some(json!({ "delivered": delivered })))
        }
        Some(room) if app.server_type() == "chat" => {
            let Some(channel) = app.channels().get(room, false) else {
                return Ok(None);
            };
            channel
                .push(PUSH_SYSTEM, &body)
                .await
                .map_err(|e| format!("push to room `{room}` failed: {e}"))?;
            Ok(Some(
                json!({ "room": room, "delivered": channel.user_amount() }),
            ))
        }
        _ => Ok(None),
    }
}

/// `close-room {room, reason?}` on the chat server holding it: the room is
/// destroyed, then each member is kicked with `room closed: <reason>` (its
/// page shows it). Destroyed first, so a leave racing the kicks finds no
/// room to announce to, and a newcomer starts an empty one.
pub async fn close_room(app: App, args: Value) -> ActionResult {
    let room = text(&args, "room").ok_or("close-room needs {\"room\": \"...\"}")?;
    let reason = text(&args, "reason").unwrap_or("closed by an administrator");
    if app.server_type() != "chat" {
        return Ok(None);
    }
    let Some(channel) = app.channels().get(room, false) else {
        return Ok(None);
    };
    app.channels().destroy(room);
    let ops = ClusterSessionOps::new(app.cluster().pool().clone());
    let why = format!("room closed: {reason}");
    let mut kicked = 0;
    let mut failed = Vec::new();
    for frontend in channel.frontends() {
        for uid in channel.members_at(&frontend) {
            match ops.kick_by_uid(&frontend, &uid, &why).await {
                Ok(()) => kicked += 1,
                Err(e) => failed.push(format!("{uid} on {frontend}: {e}")),
            }
        }
    }
    tracing::info!(server = %app.server_id(), %room, kicked, ?failed, "room closed by an administrator");
    if !failed.is_empty() {
        return Err(format!(
            "room `{room}` closed, but some members could not be kicked: {}",
            failed.join("; ")
        ));
    }
    Ok(Some(json!({ "room": room, "kicked": kicked })))
}

/// `rooms {}` on a chat server: its rooms and their member counts (the
/// dashboard's "rooms per chat server").
pub async fn rooms(app: App, _args: Value) -> ActionResult {
    if app.server_type() != "chat" {
        return Ok(None);
    }
    let mut rooms: Vec<(String, usize)> = app
        .channels()
        .all()
        .iter()
        .map(|c| (c.name().to_string(), c.user_amount()))
        .collect();
    rooms.sort();
    let rooms: Vec<Value> = rooms
        .into_iter()
        .map(|(room, members)| json!({ "room": room, "members": members }))
        .collect();
    Ok(Some(json!({ "rooms": rooms })))
}
