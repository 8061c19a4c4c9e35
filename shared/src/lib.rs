//! Messages of the chat app (chatofpomelo), shared by the server
//! (`game-server`) and every Rust client (tests, bots, the load robot), so
//! both sides agree on field names at compile time. Field names and JSON
//! shapes are exactly chatofpomelo's (§7.3, §7.4 of the protocol notes), so
//! Pomelo's own clients work unchanged.

use serde::{Deserialize, Serialize};

#[cfg(test)]
mod typescript;

/// Route of the gate's only handler.
pub const ROUTE_QUERY_ENTRY: &str = "gate.gateHandler.queryEntry";
/// Route of the connector's login handler.
pub const ROUTE_ENTER: &str = "connector.entryHandler.enter";
/// Route of the chat server's send handler.
pub const ROUTE_SEND: &str = "chat.chatHandler.send";
/// Push: a chat message.
pub const PUSH_CHAT: &str = "onChat";
/// Push: a user joined the room.
pub const PUSH_ADD: &str = "onAdd";
/// Push: a user left the room.
pub const PUSH_LEAVE: &str = "onLeave";
/// Push: a message from the operators (`shaddock broadcast`), shown as a
/// system line.
pub const PUSH_SYSTEM: &str = "onSystem";
/// `target` value that addresses the whole room.
pub const TARGET_ALL: &str = "*";
/// KICK reason of a session replaced by a login of the same name through
/// another connector (`duplicate-login: kick`).
pub const KICK_ELSEWHERE: &str = "logged in elsewhere";

/// `gate.gateHandler.queryEntry` request.
#[cfg_attr(test, derive(ts_rs::TS))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueryEntryRequest {
    #[serde(default)]
    pub uid: String,
}

/// `gate.gateHandler.queryEntry` response: `{"code":200,"host":..,"port":..}`
/// or `{"code":500}`.
#[cfg_attr(test, derive(ts_rs::TS))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueryEntryResponse {
    pub code: u16,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
}

/// `connector.entryHandler.enter` request.
#[cfg_attr(test, derive(ts_rs::TS))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EnterRequest {
    pub username: String,
    pub rid: String,
}

/// `connector.entryHandler.enter` response: `{"users":[..]}` on success,
/// `{"code":400,"message":".."}` when the name or room breaks the
/// [`check_name`] rules, `{"code":500,"error":true}` when the name is taken
/// in that room.
#[cfg_attr(test, derive(ts_rs::TS))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum EnterResponse {
    Users { users: Vec<String> },
    Invalid { code: u16, message: String },
    Error { code: u16, error: bool },
}

impl EnterResponse {
    /// The answer to a name or room that [`check_name`] refuses.
    pub fn invalid(message: impl Into<String>) -> Self {
        Self::Invalid {
            code: 400,
            message: message.into(),
        }
    }

    /// The duplicate-login answer chatofpomelo gives.
    pub fn duplicate() -> Self {
        Self::Error {
            code: 500,
            error: true,
        }
    }
}

/// `chat.chatHandler.send` request. The server trusts only `content` and
/// `target`; room and sender come from the session.
#[cfg_attr(test, derive(ts_rs::TS))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SendRequest {
    #[serde(default)]
    pub rid: String,
    pub content: String,
    #[serde(default)]
    pub from: String,
    pub target: String,
}

/// `chat.chatHandler.send` response: `{}` on success, `{"code":500,"error":true}`
/// when the room or the target does not exist.
#[cfg_attr(test, derive(ts_rs::TS))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum SendResponse {
    Error { code: u16, error: bool },
    Ok {},
}

/// `onChat` push body.
#[cfg_attr(test, derive(ts_rs::TS))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OnChat {
    pub msg: String,
    pub from: String,
    pub target: String,
}

/// `onSystem` push body.
#[cfg_attr(test, derive(ts_rs::TS))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OnSystem {
    pub msg: String,
}

/// `onAdd` / `onLeave` push body: `{"route":"onAdd","user":"bob"}`. The
/// `route` key is an artefact of Pomelo's legacy `pushMessage(msg)` form that
/// chatofpomelo's clients see, so we keep it.
#[cfg_attr(test, derive(ts_rs::TS))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserEvent {
    pub route: String,
    pub user: String,
}

impl UserEvent {
    pub fn added(user: impl Into<String>) -> Self {
        Self {
            route: PUSH_ADD.into(),
            user: user.into(),
        }
    }
    pub fn left(user: impl Into<String>) -> Self {
        Self {
            route: PUSH_LEAVE.into(),
            user: user.into(),
        }
    }
}

/// Longest user name or room id, in characters (the page's input limit).
pub const NAME_MAX_CHARS: usize = 20;

/// Checks a user name or room id against the rules the browser page applies
/// (`web-server/public/js/chat.js`, `NAME_PATTERN`): 1 to
/// [`NAME_MAX_CHARS`] characters, each an ASCII letter or digit, `_`, or a
/// CJK ideograph U+4E00..=U+9FA5. The server checks again because any
/// client can skip the page: a `*` would forge another user's uid
/// (`name*rid`), and unbounded room ids would each cost the chat server a
/// room. `Err` is a sentence for the user, starting with `label`.
pub fn check_name(label: &str, value: &str) -> Result<(), String> {
    let chars = value.chars().count();
    if chars == 0 {
        return Err(format!("{label} is required."));
    }
    if chars > NAME_MAX_CHARS {
        return Err(format!(
            "{label} must be at most {NAME_MAX_CHARS} characters."
        ));
    }
    let allowed =
        |c: char| c.is_ascii_alphanumeric() || c == '_' || ('\u{4e00}'..='\u{9fa5}').contains(&c);
    if !value.chars().all(allowed) {
        return Err(format!(
            "{label} may only contain letters, digits, _ and Chinese characters."
        ));
    }
    Ok(())
}

/// The uid chatofpomelo binds: `name*rid` (one name per room).
pub fn uid(name: &str, rid: &str) -> String {
    format!("{name}*{rid}")
}

/// The display name part of a uid.
pub fn name_of(uid: &str) -> &str {
    uid.split('*').next().unwrap_or(uid)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_shapes_match_chatofpomelo() {
        let dup = serde_json::to_string(&EnterResponse::duplicate()).unwrap();
        assert_eq!(dup, r#"{"code":500,"error":true}"#);
        let ok = serde_json::to_string(&EnterResponse::Users {
            users: vec!["amy".into(), "bob".into()],
        })
        .unwrap();
        assert_eq!(ok, r#"{"users":["amy","bob"]}"#);
        assert_eq!(serde_json::to_string(&SendResponse::Ok {}).unwrap(), "{}");
        assert_eq!(
            serde_json::to_string(&UserEvent::added("bob")).unwrap(),
            r#"{"route":"onAdd","user":"bob"}"#
        );
        let parsed: EnterResponse = serde_json::from_str(r#"{"code":500,"error":true}"#).unwrap();
        assert_eq!(parsed, EnterResponse::duplicate());
        let parsed: SendResponse = serde_json::from_str("{}").unwrap();
        assert_eq!(parsed, SendResponse::Ok {});
    }

    #[test]
    fn names_follow_the_page_rules() {
        for ok in [
            "bob",
            "a",
            "A_9",
            "中文",
            "x2345678901234567890",
            "聊天室_1",
        ] {
            assert_eq!(check_name("Name", ok), Ok(()), "{ok:?}");
        }
        let refused = [
            ("", "Name is required."),
            (
                "x23456789012345678901",
                "Name must be at most 20 characters.",
            ),
            ("bob*room1", "Name may only contain"),
            ("*", "Name may only contain"),
            ("a b", "Name may only contain"),
            ("é", "Name may only contain"),
            ("a\u{0}", "Name may only contain"),
            ("😀", "Name may only contain"),
        ];
        for (bad, why) in refused {
            let err = check_name("Name", bad).unwrap_err();
            assert!(err.starts_with(why), "{bad:?}: {err}");
        }
        // Twenty CJK characters are fine (the page counts characters too).
        assert_eq!(check_name("Room", &"中".repeat(20)), Ok(()));
        assert!(check_name("Room", &"中".repeat(21)).is_err());
        let invalid = serde_json::to_string(&EnterResponse::invalid("Name is required.")).unwrap();
        assert_eq!(invalid, r#"{"code":400,"message":"Name is required."}"#);
        let parsed: EnterResponse = serde_json::from_str(&invalid).unwrap();
        assert_eq!(parsed, EnterResponse::invalid("Name is required."));
    }

    #[test]
    fn uid_round_trip() {
        assert_eq!(uid("bob", "room1"), "bob*room1");
        assert_eq!(name_of("bob*room1"), "bob");
        assert_eq!(name_of("plain"), "plain");
    }
}
