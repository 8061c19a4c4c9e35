//! What clients and servers exchange: routes, request/response bodies and
//! pushes. Shared by the game server and Rust clients (bots, tests).

use serde::{Deserialize, Serialize};

/// Gate: which connector should this user use?
pub const ROUTE_QUERY_ENTRY: &str = "gate.gateHandler.queryEntry";
/// Connector: log in and join a room.
pub const ROUTE_ENTER: &str = "connector.entryHandler.enter";
/// Room: say something to the room.
pub const ROUTE_SAY: &str = "room.roomHandler.say";

/// Push: a message in the room.
pub const PUSH_CHAT: &str = "onChat";
/// Push: someone joined the room.
pub const PUSH_ADD: &str = "onAdd";
/// Push: someone left the room.
pub const PUSH_LEAVE: &str = "onLeave";

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct QueryEntryRequest {
    pub uid: String,
}

/// `{code: 200, host, port}`, or `{code: 500}` when no connector is known.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct QueryEntryResponse {
    pub code: u16,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EnterRequest {
    pub uid: String,
    pub rid: String,
}

/// `{code: 200, users}`; `{code: 500, error}` when the name is taken.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EnterResponse {
    pub code: u16,
    #[serde(default)]
    pub users: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SayRequest {
    pub content: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SayResponse {
    pub code: u16,
}

/// Body of `onChat`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChatPush {
    pub from: String,
    pub content: String,
    /// The room server that pushed it (handy to see routing at work).
    pub server: String,
}

/// Body of `onAdd` / `onLeave`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UserPush {
    pub user: String,
}
