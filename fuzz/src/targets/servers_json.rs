//! `servers.json` parsing and validation (`Topology::from_json_str`, what
//! every server and the master run at start and on reload). Invariant: a
//! topology that parses round-trips through `to_servers_json`, as its doc
//! promises.

use serde_json::{Map, Value};
use shaddock::config::{SERVER_FIELDS, Topology};

use super::{Target, json_value, signature, variant};
use crate::rng::Rng;

pub struct ServersJson;

const ENV: &str = "development";

/// One valid entry of type `ty` (the `k`th server of the file).
fn valid_entry(rng: &mut Rng, ty: &str, k: usize) -> Map<String, Value> {
    let mut e = Map::new();
    e.insert("id".into(), Value::from(format!("{ty}-server-{k}")));
    let host = *rng.pick(&["127.0.0.1", "localhost", "::1", "10.0.0.7", "chat.example"]);
    e.insert("host".into(), Value::from(host));
    if ty != "gate" {
        e.insert("port".into(), Value::from(4000 + k));
    }
    if ty == "gate" || ty == "connector" || rng.one_in(6) {
        e.insert("clientPort".into(), Value::from(3000 + k));
        e.insert("frontend".into(), Value::Bool(true));
    }
    if rng.one_in(4) {
        e.insert(
            "max-connections".into(),
            Value::from(1 + rng.below(100_000)),
        );
    }
    if rng.one_in(4) {
        e.insert("auto-restart".into(), Value::Bool(rng.one_in(2)));
    }
    if rng.one_in(4) {
        let args = (0..rng.below(3))
            .map(|_| Value::from(rng.text(8)))
            .collect();
        e.insert("args".into(), Value::Array(args));
    }
    e
}

/// The fields a fault may touch: every field servers.json knows, and one
/// it does not.
fn fault_field(rng: &mut Rng) -> &'static str {
    match rng.below(SERVER_FIELDS.len() + 2) {
        0 => "id",
        1 => "extra",
        i => SERVER_FIELDS[i - 2],
    }
}

/// A value at the edge of what `field` accepts, or of another JSON type.
fn odd_value(rng: &mut Rng, field: &str) -> Value {
    match (field, rng.below(3)) {
        ("port" | "clientPort" | "max-connections", 0) => {
            Value::from(*rng.pick(&[0i64, -1, 65535, 65536, 1 << 40]))
        }
        ("id" | "host", 0) => {
            Value::from(*rng.pick(&["", " ", "a/b", "x y", "web-server", "中文"]))
        }
        ("args", 0) => Value::from(rng.text(12)),
        _ => json_value(rng, 2),
    }
}

/// A servers.json text: valid half of the time, otherwise with one to
/// three faults (a field of an odd value or type, a missing field, a
/// duplicate id or port, a list that is not a list, unknown fields).
fn servers_json(rng: &mut Rng) -> Vec<u8> {
    let mut k = 0;
    let mut types = Map::new();
    for ty in ["gate", "connector", "chat", "weird type"] {
        if rng.one_in(4) {
            continue;
        }
        let list: Vec<Value> = (0..rng.below(4))
            .map(|_| {
                k += 1;
                Value::Object(valid_entry(rng, ty, k))
            })
            .collect();
        types.insert(ty.into(), Value::Array(list));
    }
    if !rng.one_in(2) {
        for _ in 0..1 + rng.below(3) {
            fault(rng, &mut types);
        }
    }
    let mut root = Map::new();
    root.insert(ENV.into(), Value::Object(types));
    if rng.one_in(4) {
        root.insert("production".into(), json_value(rng, 2));
    }
    serde_json::to_vec_pretty(&Value::Object(root)).unwrap_or_default()
}

fn fault(rng: &mut Rng, types: &mut Map<String, Value>) {
    let names: Vec<String> = types.keys().cloned().collect();
    if names.is_empty() || rng.one_in(10) {
        types.insert(rng.text(6), json_value(rng, 2));
        return;
    }
    let ty = rng.pick(&names).clone();
    let Some(Value::Array(list)) = types.get_mut(&ty) else {
        return;
    };
    if list.is_empty() || rng.one_in(10) {
        types.insert(ty, json_value(rng, 1));
        return;
    }
    let i = rng.below(list.len());
    let copy = list[rng.below(list.len())].clone();
    let Value::Object(entry) = &mut list[i] else {
        return;
    };
    let field = fault_field(rng);
    match rng.below(4) {
        0 => {
            entry.remove(field);
        }
        // Another entry's id or ports: duplicates.
        1 => {
            if let Some(v) = copy.get(field) {
                entry.insert(field.into(), v.clone());
            }
        }
        _ => {
            entry.insert(field.into(), odd_value(rng, field));
        }
    }
}

impl Target for ServersJson {
    fn name(&self) -> &'static str {
        "servers_json"
    }

    fn generate(&mut self, rng: &mut Rng) -> Vec<u8> {
        servers_json(rng)
    }

    fn run(&mut self, input: &[u8]) -> u64 {
        let text = String::from_utf8_lossy(input);
        match Topology::from_json_str(&text, ENV, "fuzz/servers.json") {
            Ok(topology) => {
                let again = topology.to_servers_json().to_string();
                let back = Topology::from_json_str(&again, ENV, "round trip").unwrap_or_else(|e| {
                    panic!("to_servers_json gave an invalid file: {e}\n{again}")
                });
                assert_eq!(
                    back, topology,
                    "servers.json round trip changed the topology"
                );
                signature(("ok", topology.servers.len().min(5)))
            }
            // The message without its numbers and names: which rule failed.
            Err(e) => signature((
                "err",
                variant(&e),
                e.to_string()
                    .split('"')
                    .step_by(2)
                    .collect::<String>()
                    .replace(|c: char| c.is_ascii_digit(), ""),
            )),
        }
    }
}
