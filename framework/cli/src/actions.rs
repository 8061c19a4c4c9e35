//! `shaddock broadcast`, `close-room`, `drain` and `kick`: operators'
//! admin actions, run by the master's `Act` call on the servers they
//! concern (see `shaddock::app::admin` for who does what).

use serde_json::{Value, json};

use crate::args::{BroadcastArgs, CloseRoomArgs, DrainArgs, KickArgs};
use crate::client::AdminClient;
use crate::exit::CliError;
use crate::master::proto;

pub async fn broadcast(a: BroadcastArgs) -> Result<(), CliError> {
    let mut args = json!({ "message": a.message });
    if let Some(room) = &a.room {
        args["room"] = json!(room);
    }
    let what = match &a.room {
        Some(room) => format!("no room `{room}` on any chat server"),
        None => "no frontend has a connected user".to_string(),
    };
    act(&a.admin, "broadcast", args, Vec::new(), &what).await
}

pub async fn close_room(a: CloseRoomArgs) -> Result<(), CliError> {
    let args = json!({ "room": a.room, "reason": a.reason });
    let what = format!("no room `{}` on any chat server", a.room);
    act(&a.admin, "close-room", args, Vec::new(), &what).await
}

pub async fn drain(a: DrainArgs) -> Result<(), CliError> {
    let what = format!("{} is not a frontend with a client port", a.ids.join(", "));
    act(&a.admin, "drain", json!({}), a.ids, &what).await
}

pub async fn kick(a: KickArgs) -> Result<(), CliError> {
    let args = json!({ "uid": a.uid, "reason": a.reason });
    let what = format!("no connected user `{}`", a.uid);
    act(&a.admin, "kick", args, Vec::new(), &what).await
}

/// Runs `action` and prints what each server did. Nothing applied
/// (`nothing`) is an error: the operator named something that is not there.
async fn act(
    admin: &crate::args::AdminArgs,
    action: &str,
    args: Value,
    ids: Vec<String>,
    nothing: &str,
) -> Result<(), CliError> {
    let mut client = AdminClient::connect(admin).await?;
    let resp = client
        .act(proto::ActRequest {
            action: action.to_string(),
            args_json: args.to_string(),
            ids,
            server_type: String::new(),
            query: false,
        })
        .await?;
    for o in resp.outcomes.iter().filter(|o| o.error.is_empty()) {
        println!("{action}: {} {}", o.id, o.result_json);
    }
    if !resp.errors.is_empty() {
        return Err(CliError::error(format!(
            "{action}: {}",
            resp.errors.join("; ")
        )));
    }
    if resp.outcomes.is_empty() {
        return Err(CliError::error(format!("{action}: {nothing}")));
    }
    Ok(())
}
