//! The handshake parsers: the server's `parse_handshake` (a client's
//! HANDSHAKE body), and what clients parse (`HandshakeResponse`, its
//! dictionary, `parse_kick`). Invariant: a handshake that parses gets a
//! reply that is valid JSON.

use shaddock_protocol::RouteDictionary;
use shaddock_protocol::handshake::{
    HandshakeReply, HandshakeResponse, parse_handshake, parse_kick,
};

use super::{Target, json_value, signature, variant};
use crate::rng::Rng;

pub struct Handshakes {
    dict: RouteDictionary,
}

impl Handshakes {
    pub fn new() -> Self {
        Handshakes {
            dict: super::message::chat_dictionary(),
        }
    }
}

impl Default for Handshakes {
    fn default() -> Self {
        Self::new()
    }
}

/// A handshake body: usually `{"sys": {...}, "user": ...}` with fields of
/// the right or a wrong JSON type; sometimes a server reply or deep nesting.
pub fn handshake_json(rng: &mut Rng) -> Vec<u8> {
    use serde_json::{Map, Value};
    if rng.one_in(20) {
        let depth = rng.below(300);
        let mut deep = "[".repeat(depth);
        deep.push_str(&"]".repeat(depth));
        return format!(r#"{{"sys":{{"rsa":{deep}}}}}"#).into_bytes();
    }
    let mut sys = Map::new();
    let fields = [
        "type",
        "version",
        "rsa",
        "protoVersion",
        "dictVersion",
        "heartbeat",
        "dict",
        "routeToCode",
        "useDict",
    ];
    for field in fields {
        if rng.one_in(2) {
            let value = match (field, rng.below(3)) {
                ("type", 0) => Value::from("js-websocket"),
                ("version", 0) => Value::from("0.0.1"),
                ("dict" | "routeToCode", 0) => {
                    serde_json::json!({"chat.chatHandler.send": rng.interesting_u32(), "x": "y"})
                }
                _ => json_value(rng, 3),
            };
            sys.insert(field.into(), value);
        }
    }
    let mut root = Map::new();
    if !rng.one_in(10) {
        root.insert("sys".into(), Value::Object(sys));
    }
    if rng.one_in(3) {
        root.insert("user".into(), json_value(rng, 3));
    }
    if rng.one_in(4) {
        root.insert("code".into(), json_value(rng, 0));
    }
    if rng.one_in(6) {
        root.insert("reason".into(), json_value(rng, 1));
    }
    serde_json::to_vec(&Value::Object(root)).unwrap_or_default()
}

impl Target for Handshakes {
    fn name(&self) -> &'static str {
        "handshake"
    }

    fn generate(&mut self, rng: &mut Rng) -> Vec<u8> {
        handshake_json(rng)
    }

    fn run(&mut self, input: &[u8]) -> u64 {
        let server = match parse_handshake(input) {
            Ok(request) => {
                let reply = HandshakeReply {
                    heartbeat_secs: Some(3),
                    dict: Some(&self.dict),
                    client_dict_version: request.sys.dict_version.as_deref(),
                    user: request.user.clone(),
                    ..Default::default()
                };
                let json = reply.to_json();
                serde_json::from_slice::<serde_json::Value>(&json)
                    .expect("the handshake reply is JSON");
                format!("ok {}", request.sys.dict_version.is_some())
            }
            Err(e) => variant(&e),
        };
        let client = match HandshakeResponse::parse(input) {
            Ok(r) => format!("ok {}", r.dictionary().map(|d| d.len().min(3)).unwrap_or(9)),
            Err(e) => variant(&e),
        };
        let kick = parse_kick(input).len().min(8);
        signature((server, client, kick))
    }
}
