//! Protobuf bytes → JSON value, as pomelo-protobuf's `decoder.js`.
//!
//! * Each field is found by its tag; the wire type in the key is not
//!   checked (pomelo-protobuf ignores it too and trusts the schema).
//! * A field given twice keeps its first position and its last value; a
//!   repeated field given in several runs is appended to.
//! * Numbers come out as JavaScript has them: a whole `float`/`double` is
//!   an integer (`3`, not `3.0`), a non-finite one `null` (what
//!   `JSON.stringify` prints).
//! * Strings are decoded leniently (invalid UTF-8 → U+FFFD), as Node does.
//!
//! Where pomelo-protobuf throws or reads garbage — an unknown tag, a value
//! or nested message running past its end, a varint over 32 bits for a
//! 32-bit type — this returns an error saying where.

use serde_json::{Map, Value};

use super::schema::{Kind, Occurrence, Schema};
use super::wire::{Reader, unzigzag};
use super::{MAX_DEPTH, Problem, ProtobufError};

impl Schema {
    /// Decodes `bytes` as the message of `route`.
    pub fn decode(&self, route: &str, bytes: &[u8]) -> Result<Value, ProtobufError> {
        let index = self
            .route(route)
            .ok_or_else(|| ProtobufError::NoSchema(route.to_owned()))?;
        let mut reader = Reader { bytes, pos: 0 };
        self.decode_message(index, &mut reader, bytes.len(), 0)
            .map(Value::Object)
            .map_err(|p| p.into_error(route))
    }

    /// Decodes `bytes` as the message of `route` into JSON text.
    pub fn decode_json(&self, route: &str, bytes: &[u8]) -> Result<Vec<u8>, ProtobufError> {
        let value = self.decode(route, bytes)?;
        Ok(serde_json::to_vec(&value).unwrap_or_default())
    }

    fn decode_message(
        &self,
        index: usize,
        reader: &mut Reader<'_>,
        end: usize,
        depth: usize,
    ) -> Result<Map<String, Value>, Problem> {
        if depth >= MAX_DEPTH {
            return Err(Problem::new(format!(
                "messages nested deeper than {MAX_DEPTH}"
            )));
        }
        let def = self.message(index);
        let mut out = Map::new();
        while reader.pos < end {
            let at = reader.pos;
            let key = reader.varint32(end)?;
            let tag = key >> 3;
            let Some(field) = def.field_by_tag(tag) else {
                return Err(Problem::new(format!(
                    "unknown tag {tag} at byte {at} (the schema has no such field)"
                )));
            };
            let kind = field.kind;
            match field.occurrence {
                Occurrence::Required | Occurrence::Optional => {
                    let value = self
                        .decode_value(kind, reader, end, depth)
                        .map_err(|p| p.at(&field.name))?;
                    out.insert(field.name.clone(), value);
                }
                Occurrence::Repeated => {
                    let slot = out
                        .entry(field.name.clone())
                        .or_insert_with(|| Value::Array(Vec::new()));
                    let Value::Array(items) = slot else {
                        unreachable!("a repeated field only ever holds an array");
                    };
                    let run = if kind.is_packed() {
                        reader.varint32(end).map_err(|p| p.at(&field.name))?
                    } else {
                        1
                    };
                    // No allocation by the announced count: it comes from
                    // the client and is checked element by element.
                    for _ in 0..run {
                        let i = items.len();
                        let value = self
                            .decode_value(kind, reader, end, depth)
                            .map_err(|p| p.at(format!("[{i}]")).at(&field.name))?;
                        items.push(value);
                    }
                }
            }
        }
        Ok(out)
    }

    fn decode_value(
        &self,
        kind: Kind,
        reader: &mut Reader<'_>,
        end: usize,
        depth: usize,
    ) -> Result<Value, Problem> {
        Ok(match kind {
            Kind::UInt32 => Value::from(reader.varint32(end)?),
            Kind::SInt32 => Value::from(unzigzag(reader.varint32(end)?)),
            Kind::Float => {
                let b = reader.take(4, end)?;
                js_number(f64::from(f32::from_le_bytes([b[0], b[1], b[2], b[3]])))
            }
            Kind::Double => {
                let b = reader.take(8, end)?;
                let mut raw = [0u8; 8];
                raw.copy_from_slice(b);
                js_number(f64::from_le_bytes(raw))
            }
            Kind::String => {
                let len = reader.varint32(end)? as usize;
                Value::from(String::from_utf8_lossy(reader.take(len, end)?).into_owned())
            }
            Kind::Message(index) => {
                let len = reader.varint32(end)? as usize;
                let start = reader.pos;
                let stop = start.checked_add(len).filter(|&s| s <= end).ok_or_else(|| {
                    Problem::new(format!(
                        "nested message of {len} bytes at byte {start} runs past the end ({end})"
                    ))
                })?;
                Value::Object(self.decode_message(index, reader, stop, depth + 1)?)
            }
        })
    }
}

/// Largest integer a double holds exactly, like every one below it
/// (JavaScript's `Number.MAX_SAFE_INTEGER` + 1).
const SAFE_INTEGER: f64 = 9_007_199_254_740_992.0;

/// A JavaScript number as JSON: whole values JavaScript prints as plain
/// digits (safe integers) as integers, larger ones as the double they are
/// (the same number; JavaScript would print it with padding zeros, an
/// integer type would invent digits), non-finite ones as `null`.
fn js_number(f: f64) -> Value {
    if !f.is_finite() {
        return Value::Null;
    }
    if f.fract() == 0.0 && f.abs() <= SAFE_INTEGER {
        return Value::from(f as i64);
    }
    Value::from(f)
}
