//! JSON value → protobuf bytes, as pomelo-protobuf's `encoder.js`.
//!
//! * Fields are written in the order of the object's keys (JavaScript's
//!   order), not in tag order; keys the message does not declare are
//!   skipped.
//! * A `null` value counts as absent (serde writes `None` as `null`;
//!   pomelo-protobuf would throw on it).
//! * Every `required` field must be present, at every depth (pomelo-protobuf
//!   returns `null` and Pomelo sends an empty body; here: an error naming
//!   the field).
//! * Repeated scalars: one key, the element *count*, the values; repeated
//!   strings and messages: one key and value per element; an empty array
//!   writes nothing.
//! * Values must fit their type: integers in range, strings for `string`,
//!   objects for messages (pomelo-protobuf truncates `3.7` to 3, parses
//!   `"12"` as a number and throws on a negative `uInt32`).
//!
//! An empty message encodes to no bytes, which is also what Pomelo sends.

use serde_json::{Map, Number, Value};

use super::schema::{Kind, Occurrence, Schema, array_index, js_order};
use super::wire::{put_varint, zigzag};
use super::{MAX_DEPTH, Problem, ProtobufError};

impl Schema {
    /// Encodes `value` (a JSON object) as the message of `route`.
    pub fn encode(&self, route: &str, value: &Value) -> Result<Vec<u8>, ProtobufError> {
        let index = self
            .route(route)
            .ok_or_else(|| ProtobufError::NoSchema(route.to_owned()))?;
        let mut out = Vec::with_capacity(64);
        let object = value
            .as_object()
            .ok_or_else(|| Problem::new(format!("expected a JSON object, got {}", kind_of(value))))
            .map_err(|p| p.into_error(route))?;
        self.encode_message(index, object, &mut out, 0)
            .map_err(|p| p.into_error(route))?;
        Ok(out)
    }

    /// Encodes a JSON body (bytes) as the message of `route`.
    pub fn encode_json(&self, route: &str, json: &[u8]) -> Result<Vec<u8>, ProtobufError> {
        let value: Value = serde_json::from_slice(json).map_err(|e| ProtobufError::NotJson {
            route: route.to_owned(),
            problem: e.to_string(),
        })?;
        self.encode(route, &value)
    }

    fn encode_message(
        &self,
        index: usize,
        object: &Map<String, Value>,
        out: &mut Vec<u8>,
        depth: usize,
    ) -> Result<(), Problem> {
        if depth >= MAX_DEPTH {
            return Err(Problem::new(format!(
                "messages nested deeper than {MAX_DEPTH}"
            )));
        }
        let def = self.message(index);
        for field in &def.fields {
            let present = object.get(&field.name).is_some_and(|v| !v.is_null());
            if field.occurrence == Occurrence::Required && !present {
                return Err(Problem::new("required field is missing").at(&field.name));
            }
        }
        // JavaScript iterates integer-like keys first; any other object
        // keeps its insertion order (no allocation in the common case).
        let ordered;
        let keys: &mut dyn Iterator<Item = &String> =
            if object.keys().any(|k| array_index(k).is_some()) {
                ordered = js_order(object);
                &mut ordered.into_iter()
            } else {
                &mut object.keys()
            };
        for key in keys {
            let Some(field) = def.field(key) else {
                continue;
            };
            let value = &object[key];
            if value.is_null() {
                continue;
            }
            let key = u64::from((field.tag << 3) | field.kind.wire_type());
            let result = match field.occurrence {
                Occurrence::Required | Occurrence::Optional => {
                    put_varint(out, key);
                    self.encode_value(field.kind, value, out, depth)
                }
                Occurrence::Repeated => {
                    let Value::Array(items) = value else {
                        return Err(Problem::new(format!(
                            "expected an array, got {}",
                            kind_of(value)
                        ))
                        .at(&field.name));
                    };
                    self.encode_repeated(field.kind, key, items, out, depth)
                }
            };
            result.map_err(|p| p.at(&field.name))?;
        }
        Ok(())
    }

    fn encode_repeated(
        &self,
        kind: Kind,
        key: u64,
        items: &[Value],
        out: &mut Vec<u8>,
        depth: usize,
    ) -> Result<(), Problem> {
        if items.is_empty() {
            return Ok(());
        }
        if kind.is_packed() {
            put_varint(out, key);
            put_varint(out, items.len() as u64);
        }
        for (i, item) in items.iter().enumerate() {
            if !kind.is_packed() {
                put_varint(out, key);
            }
            self.encode_value(kind, item, out, depth)
                .map_err(|p| p.at(format!("[{i}]")))?;
        }
        Ok(())
    }

    fn encode_value(
        &self,
        kind: Kind,
        value: &Value,
        out: &mut Vec<u8>,
        depth: usize,
    ) -> Result<(), Problem> {
        match kind {
            Kind::UInt32 => {
                let n = integer(value, "uInt32", 0, i64::from(u32::MAX))?;
                put_varint(out, n as u64);
            }
            Kind::SInt32 => {
                let n = integer(
                    value,
                    "sInt32/int32",
                    i64::from(i32::MIN),
                    i64::from(i32::MAX),
                )?;
                put_varint(out, zigzag(n as i32));
            }
            Kind::Float => {
                // JavaScript's writeFloatLE: round to the nearest single,
                // out of range → ±Infinity (so does `as f32`).
                out.extend_from_slice(&(number(value, "float")? as f32).to_le_bytes());
            }
            Kind::Double => out.extend_from_slice(&number(value, "double")?.to_le_bytes()),
            Kind::String => {
                let Value::String(s) = value else {
                    return Err(Problem::new(format!(
                        "expected a string, got {}",
                        kind_of(value)
                    )));
                };
                put_varint(out, s.len() as u64);
                out.extend_from_slice(s.as_bytes());
            }
            Kind::Message(index) => {
                let Value::Object(object) = value else {
                    return Err(Problem::new(format!(
                        "expected an object (a message), got {}",
                        kind_of(value)
                    )));
                };
                let mut inner = Vec::new();
                self.encode_message(index, object, &mut inner, depth + 1)?;
                put_varint(out, inner.len() as u64);
                out.extend_from_slice(&inner);
            }
        }
        Ok(())
    }
}

/// A JSON number as f64 (`float`, `double`).
fn number(value: &Value, type_name: &str) -> Result<f64, Problem> {
    value.as_f64().ok_or_else(|| {
        Problem::new(format!(
            "expected a number ({type_name}), got {}",
            kind_of(value)
        ))
    })
}

/// A whole JSON number in `min..=max` (JavaScript has one number type, so
/// `3.0` counts as 3).
fn integer(value: &Value, type_name: &str, min: i64, max: i64) -> Result<i64, Problem> {
    let whole = match value {
        Value::Number(n) => whole(n),
        _ => None,
    };
    whole.filter(|n| (min..=max).contains(n)).ok_or_else(|| {
        Problem::new(format!(
            "expected a whole number in {min}..={max} ({type_name}), got {}",
            kind_of(value)
        ))
    })
}

fn whole(n: &Number) -> Option<i64> {
    if let Some(i) = n.as_i64() {
        return Some(i);
    }
    let f = n.as_f64()?;
    (f.fract() == 0.0 && f.abs() < 9.3e18).then_some(f as i64)
}

/// A short description of a value for error messages.
fn kind_of(value: &Value) -> String {
    match value {
        Value::Null => "null".into(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::String(s) if s.len() <= 40 => format!("the string {s:?}"),
        Value::String(_) => "a string".into(),
        Value::Array(_) => "an array".into(),
        Value::Object(_) => "an object".into(),
    }
}
