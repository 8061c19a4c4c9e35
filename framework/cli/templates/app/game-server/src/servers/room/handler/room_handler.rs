//! `room.roomHandler`: client routes of the room servers. Connectors
//! forward them here, to the room server that owns the sender's room.

use shaddock::app::App;
use shaddock::handler::HandlerError;
use shaddock::session::Session;
use shared::{ChatPush, SayRequest, SayResponse};

/// `room.roomHandler.say {content}` → `{code: 200}`; everyone in the
/// sender's room gets `onChat {from, content, server}`. Room and sender
/// come from the session, not from the message.
pub async fn say(app: App, session: Session, msg: SayRequest) -> Result<SayResponse, HandlerError> {
    let rid: String = session.get("rid").ok_or("enter a room first")?;
    let from = session.uid().ok_or("enter a room first")?;
    let channel = app.channels().get(&rid, false).ok_or("no such room")?;
    let push = ChatPush {
        from,
        content: msg.content,
        server: app.server_id().to_string(),
    };
    channel.push(shared::PUSH_CHAT, &push).await?;
    Ok(SayResponse { code: 200 })
}
