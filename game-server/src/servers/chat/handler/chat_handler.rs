//! `chat.chatHandler`: messages within a room.

use shaddock::app::App;
use shaddock::handler::HandlerError;
use shaddock::session::Session;
use shared::{OnChat, PUSH_CHAT, SendRequest, SendResponse, TARGET_ALL};

/// `chat.chatHandler.send {content, target}` → `{}`. Pushes `onChat` to the
/// whole room (`target` `*`, sender included) or to one member; an unknown
/// room or target → `{code: 500, error: true}`. Room and sender come from
/// the session, not from the message.
pub async fn send(
    app: App,
    session: Session,
    msg: SendRequest,
) -> Result<SendResponse, HandlerError> {
    let fail = SendResponse::Error {
        code: 500,
        error: true,
    };
    let rid: String = session.get("rid").unwrap_or_default();
    let uid = session.uid().unwrap_or_default();
    let Some(channel) = app.channels().get(&rid, false) else {
        return Ok(fail);
    };
    let push = OnChat {
        msg: msg.content,
        from: shared::name_of(&uid).to_string(),
        target: msg.target,
    };
    if push.target == TARGET_ALL {
        channel.push(PUSH_CHAT, &push).await?;
    } else {
        let target = shared::uid(&push.target, &rid);
        let Some(frontend) = channel.member(&target) else {
            return Ok(fail);
        };
        app.channels()
            .push_by_uids(PUSH_CHAT, &push, &[(target, frontend)])
            .await?;
    }
    Ok(SendResponse::Ok {})
}
