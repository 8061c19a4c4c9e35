//! The message decoder (`decode_message`), with and without the route
//! dictionary. Invariant: a decoded message that re-encodes decodes back to
//! itself (ids, routes — compressed or not —, bodies).

use bytes::{Bytes, BytesMut};
use shaddock_protocol::message::put_varint;
use shaddock_protocol::{RouteDictionary, decode_message, encode_message};

use super::{Target, json_value, signature, variant};
use crate::rng::Rng;

pub const ROUTES: [&str; 3] = [
    "chat.chatHandler.send",
    "connector.entryHandler.enter",
    "gate.gateHandler.queryEntry",
];
pub const PUSHES: [&str; 3] = ["onChat", "onAdd", "onLeave"];

pub struct Messages {
    dict: RouteDictionary,
}

impl Messages {
    pub fn new() -> Self {
        Messages {
            dict: chat_dictionary(),
        }
    }
}

impl Default for Messages {
    fn default() -> Self {
        Self::new()
    }
}

/// The chat app's dictionary (codes 1..=6).
pub fn chat_dictionary() -> RouteDictionary {
    RouteDictionary::new(ROUTES, PUSHES)
}

/// A message body as the wire carries it: flag, varint id, route, body.
pub fn message_bytes(rng: &mut Rng) -> Vec<u8> {
    let kind = if rng.one_in(12) {
        4 + rng.below(4) as u8
    } else {
        rng.below(4) as u8
    };
    let compressed = rng.one_in(3);
    let mut flag = (kind << 1) | u8::from(compressed);
    if rng.one_in(16) {
        flag |= rng.byte() & 0xF0;
    }
    let mut out = vec![flag];
    if kind == 0 || kind == 2 {
        let mut id = BytesMut::new();
        put_varint(&mut id, rng.interesting_u32());
        out.extend_from_slice(&id);
        if rng.one_in(16) {
            out.extend([0x80, 0x80, 0x80]);
        }
    }
    if kind != 2 {
        if compressed {
            let code = if rng.one_in(4) {
                rng.interesting_u32() as u16
            } else {
                1 + rng.below(7) as u16
            };
            out.extend(code.to_be_bytes());
        } else {
            let route: Vec<u8> = match rng.below(4) {
                0 => rng.some_bytes(300),
                1 => rng.text(40).into_bytes(),
                _ => rng.pick(&ROUTES).as_bytes().to_vec(),
            };
            let declared = if rng.one_in(8) {
                rng.byte()
            } else {
                route.len().min(255) as u8
            };
            out.push(declared);
            out.extend(route);
        }
    }
    if rng.one_in(4) {
        out.extend(rng.some_bytes(64));
    } else {
        out.extend(serde_json::to_vec(&json_value(rng, 3)).unwrap_or_default());
    }
    out
}

impl Target for Messages {
    fn name(&self) -> &'static str {
        "message"
    }

    fn generate(&mut self, rng: &mut Rng) -> Vec<u8> {
        message_bytes(rng)
    }

    fn run(&mut self, input: &[u8]) -> u64 {
        let mut sig = Vec::new();
        for dict in [None, Some(&self.dict)] {
            match decode_message(Bytes::copy_from_slice(input), dict) {
                Ok(msg) => {
                    if let Ok(encoded) = encode_message(&msg, dict) {
                        let again = decode_message(encoded, dict)
                            .unwrap_or_else(|e| panic!("re-encoded {msg:?} does not decode: {e}"));
                        assert_eq!(again, msg, "decode → encode → decode changed the message");
                    }
                    sig.push(format!("{:?}", msg.kind));
                }
                Err(e) => sig.push(variant(&e)),
            }
        }
        signature(sig)
    }
}
