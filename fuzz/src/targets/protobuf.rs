//! The protobuf codec (`Schema::decode` / `encode`) with the golden
//! vectors' schemas (`framework/protocol/tests/fixtures/protobuf/`).
//! Input: one byte choosing the route, then the body a client or server
//! would send. Invariant: whatever decodes re-encodes (when it has every
//! required field) to bytes that decode to the same value.

use serde_json::{Map, Value};
use shaddock_protocol::protobuf::Schema;

use super::{Target, json_value, signature, variant};
use crate::rng::Rng;

/// `(client side?, route)`: the routes of the fixture schemas.
pub const ROUTES: [(bool, &str); 10] = [
    (false, "test.scalars"),
    (false, "test.repeated"),
    (false, "test.nested"),
    (false, "test.users"),
    (false, "test.tagOrder"),
    (false, "test.empty"),
    (false, "onChat"),
    (false, "message User"),
    (true, "test.request"),
    (true, "chat.chatHandler.send"),
];

pub struct Protobuf {
    server: Schema,
    client: Schema,
}

impl Protobuf {
    pub fn new() -> Self {
        let parse = |text: &str| {
            let value: Value = serde_json::from_str(text).expect("fixture schema is JSON");
            Schema::parse(&value).expect("fixture schema parses")
        };
        Protobuf {
            server: parse(include_str!(
                "../../../framework/protocol/tests/fixtures/protobuf/serverProtos.json"
            )),
            client: parse(include_str!(
                "../../../framework/protocol/tests/fixtures/protobuf/clientProtos.json"
            )),
        }
    }

    fn schema(&self, client: bool) -> &Schema {
        if client { &self.client } else { &self.server }
    }
}

impl Default for Protobuf {
    fn default() -> Self {
        Self::new()
    }
}

/// `value` without what the encoder leaves out: `null`s (a non-finite
/// float decodes to `null`) and empty arrays (a packed run of 0 elements
/// decodes to `[]`, as in pomelo-protobuf, and an empty array writes
/// nothing).
fn without_nulls(value: &Value) -> Value {
    let omitted = |v: &Value| v.is_null() || v.as_array().is_some_and(Vec::is_empty);
    match value {
        Value::Object(m) => Value::Object(
            m.iter()
                .filter(|(_, v)| !omitted(v))
                .map(|(k, v)| (k.clone(), without_nulls(v)))
                .collect::<Map<_, _>>(),
        ),
        Value::Array(items) => Value::Array(items.iter().map(without_nulls).collect()),
        other => other.clone(),
    }
}

impl Target for Protobuf {
    fn name(&self) -> &'static str {
        "protobuf"
    }

    /// A route, then usually the encoding of a random object whose keys
    /// are the schema's field names (so many of them encode), else random
    /// bytes.
    fn generate(&mut self, rng: &mut Rng) -> Vec<u8> {
        let choice = rng.below(ROUTES.len());
        let (client, route) = ROUTES[choice];
        let mut out = vec![choice as u8];
        let names = [
            "count", "delta", "level", "ratio", "score", "name", "farTag", "ids", "deltas",
            "levels", "ratios", "scores", "names", "origin", "points", "path", "owner", "x", "y",
            "steps", "dx", "note", "label", "users", "total", "tags", "rid", "content", "mood",
            "seen", "msg", "from", "target",
        ];
        for _ in 0..8 {
            let object: Map<String, Value> = (0..rng.below(8))
                .map(|_| (rng.pick(&names).to_string(), json_value(rng, 3)))
                .collect();
            if let Ok(bytes) = self.schema(client).encode(route, &Value::Object(object)) {
                out.extend(bytes);
                return out;
            }
        }
        out.extend(rng.some_bytes(64));
        out
    }

    fn run(&mut self, input: &[u8]) -> u64 {
        let Some((&choice, body)) = input.split_first() else {
            return 0;
        };
        let (client, route) = ROUTES[usize::from(choice) % ROUTES.len()];
        let schema = self.schema(client);
        match schema.decode(route, body) {
            Ok(value) => {
                let value = without_nulls(&value);
                if let Ok(again) = schema.encode(route, &value) {
                    let back = schema
                        .decode(route, &again)
                        .expect("a re-encoded message decodes");
                    assert_eq!(
                        without_nulls(&back),
                        value,
                        "decode ∘ encode changed {route}"
                    );
                }
                signature(("ok", route, value.as_object().map(Map::len)))
            }
            Err(e) => signature(("err", route, variant(&e))),
        }
    }
}
