//! JSON bodies of HANDSHAKE (§4.1, §4.2) and KICK (§4.5) packages.
//!
//! Replies are built with insertion-ordered JSON objects so they are byte
//! for byte what Pomelo sends (clients only read fields, but golden tests and
//! side-by-side captures are easier when the bytes agree).

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::{DecodeError, Protos, RouteDictionary};

/// Handshake succeeded.
pub const CODE_OK: u16 = 200;
/// Malformed handshake, or the app's handshake hook refused it.
pub const CODE_FAIL: u16 = 500;
/// The app's client check refused the client's type/version ("old client").
pub const CODE_OLD_CLIENT: u16 = 501;

/// What a client sends in its HANDSHAKE package.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct HandshakeRequest {
    pub sys: HandshakeSys,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<Value>,
}

/// The `sys` object of a client handshake. Every field is optional: clients
/// in the wild send different subsets. String fields of another JSON type
/// (e.g. `"version": 1`) read as `None` instead of failing the handshake:
/// Pomelo only requires `sys` to be present and passes the raw values on.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct HandshakeSys {
    #[serde(
        default,
        rename = "type",
        deserialize_with = "lenient_string",
        skip_serializing_if = "Option::is_none"
    )]
    pub client_type: Option<String>,
    #[serde(
        default,
        deserialize_with = "lenient_string",
        skip_serializing_if = "Option::is_none"
    )]
    pub version: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rsa: Option<Value>,
    #[serde(
        default,
        rename = "protoVersion",
        skip_serializing_if = "Option::is_none"
    )]
    pub proto_version: Option<Value>,
    #[serde(
        default,
        rename = "dictVersion",
        deserialize_with = "lenient_string",
        skip_serializing_if = "Option::is_none"
    )]
    pub dict_version: Option<String>,
    /// Shaddock's session resume (not Pomelo's): `true` asks for a resume
    /// token, a token string asks for that session back (protocol.md §13.6).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resume: Option<Value>,
}

/// A string field that tolerates other JSON types (they become `None`).
fn lenient_string<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    Ok(match Value::deserialize(d)? {
        Value::String(s) => Some(s),
        _ => None,
    })
}

/// Parses a client handshake body. Pomelo answers `{"code":500}` to a body
/// that is not JSON or has no `sys` object; so does the caller on `Err`.
pub fn parse_handshake(body: &[u8]) -> Result<HandshakeRequest, DecodeError> {
    let value: Value = serde_json::from_slice(body).map_err(|_| DecodeError::BadHandshake)?;
    match value.get("sys") {
        Some(Value::Object(_)) => {
            serde_json::from_value(value).map_err(|_| DecodeError::BadHandshake)
        }
        _ => Err(DecodeError::BadHandshake),
    }
}

/// Options that shape a successful handshake reply.
#[derive(Debug, Clone, Default)]
pub struct HandshakeReply<'a> {
    /// Heartbeat interval in seconds; `None` disables heartbeats.
    pub heartbeat_secs: Option<u64>,
    /// The route dictionary, when the server uses one.
    pub dict: Option<&'a RouteDictionary>,
    /// The client's `sys.dictVersion`: the dictionary is left out when it
    /// matches (the client has it cached).
    pub client_dict_version: Option<&'a str>,
    /// The protobuf schemas, when the server has any: `useProto` is set
    /// and `protos` is sent unless the client already has this version.
    pub protos: Option<&'a Protos>,
    /// The client's `sys.protoVersion`.
    pub client_proto_version: Option<&'a Value>,
    /// Custom `user` data from the app's handshake hook.
    pub user: Option<Value>,
    /// Session resume's `sys.resume` (`{"token","windowMs","resumed"}`),
    /// only for a client that asked (protocol.md §13.6).
    pub resume: Option<Value>,
}

impl HandshakeReply<'_> {
    /// The JSON text of a `{"code":200,"sys":{...}}` reply.
    pub fn to_json(&self) -> Vec<u8> {
        let mut sys = Map::new();
        if let Some(h) = self.heartbeat_secs {
            sys.insert("heartbeat".into(), Value::from(h));
        }
        if let Some(dict) = self.dict {
            if self.client_dict_version != Some(dict.version()) {
                let r2c = dict.route_to_code();
                sys.insert("dict".into(), r2c.clone());
                sys.insert("routeToCode".into(), r2c);
                sys.insert("codeToRoute".into(), dict.code_to_route());
                sys.insert("dictVersion".into(), Value::from(dict.version()));
            }
            sys.insert("useDict".into(), Value::Bool(true));
        }
        if let Some(protos) = self.protos {
            if protos.client_needs(self.client_proto_version) {
                sys.insert("protos".into(), protos.announcement().clone());
            }
            sys.insert("useProto".into(), Value::Bool(true));
        }
        if let Some(resume) = &self.resume {
            sys.insert("resume".into(), resume.clone());
        }
        let mut root = Map::new();
        root.insert("code".into(), Value::from(CODE_OK));
        root.insert("sys".into(), Value::Object(sys));
        if let Some(user) = &self.user {
            root.insert("user".into(), user.clone());
        }
        serde_json::to_vec(&Value::Object(root)).unwrap_or_default()
    }
}

/// The JSON text of an error reply, e.g. `{"code":500}`.
pub fn handshake_error(code: u16) -> Vec<u8> {
    format!("{{\"code\":{code}}}").into_bytes()
}

/// What a client reads from a server's handshake reply.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
pub struct HandshakeResponse {
    pub code: u16,
    #[serde(default)]
    pub sys: ServerSys,
    #[serde(default)]
    pub user: Option<Value>,
}

/// The `sys` object of a server handshake reply.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
pub struct ServerSys {
    #[serde(default)]
    pub heartbeat: Option<u64>,
    #[serde(default, rename = "routeToCode")]
    pub route_to_code: Option<Map<String, Value>>,
    #[serde(default, rename = "dict")]
    pub dict: Option<Map<String, Value>>,
    #[serde(default, rename = "dictVersion")]
    pub dict_version: Option<String>,
    #[serde(default, rename = "useDict")]
    pub use_dict: Option<bool>,
    /// `{"server","client","version"}`: the protobuf schemas (§5.3), sent
    /// when the client's `protoVersion` differs.
    #[serde(default)]
    pub protos: Option<Value>,
    /// The server encodes bodies with protobuf where a schema exists (the
    /// client uses its cached protos when `protos` was left out).
    #[serde(default, rename = "useProto")]
    pub use_proto: Option<bool>,
    /// Session resume (protocol.md §13.6), when the client asked for it.
    #[serde(default)]
    pub resume: Option<ResumeOffer>,
}

/// The server's `sys.resume`: the token to reconnect with, how long the
/// server keeps a dropped session, and whether this handshake resumed one.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
pub struct ResumeOffer {
    pub token: String,
    #[serde(rename = "windowMs")]
    pub window_ms: u64,
    #[serde(default)]
    pub resumed: bool,
}

impl HandshakeResponse {
    pub fn parse(body: &[u8]) -> Result<Self, DecodeError> {
        serde_json::from_slice(body).map_err(|_| DecodeError::BadHandshake)
    }

    /// Rebuilds the route dictionary the server sent, if any. Codes come
    /// from the server exactly (not re-numbered), so a client follows
    /// whatever numbering the server chose, gaps included. Entries whose
    /// code is not a number in 1..=65535 are ignored.
    pub fn dictionary(&self) -> Option<RouteDictionary> {
        let map = self.sys.route_to_code.as_ref().or(self.sys.dict.as_ref())?;
        Some(RouteDictionary::from_codes(map.iter().filter_map(
            |(route, code)| {
                let code = u16::try_from(code.as_u64()?).ok()?;
                Some((route.clone(), code))
            },
        )))
    }
}

/// The JSON body of a KICK package: `{"reason":"..."}`.
pub fn kick_body(reason: &str) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({ "reason": reason })).unwrap_or_default()
}

/// Reads the reason out of a KICK body (lenient: a missing or non-string
/// reason yields the raw text).
pub fn parse_kick(body: &[u8]) -> String {
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(m)) => match m.get("reason") {
            Some(Value::String(s)) => s.clone(),
            Some(other) => other.to_string(),
            None => String::new(),
        },
        _ => String::from_utf8_lossy(body).into_owned(),
    }
}
