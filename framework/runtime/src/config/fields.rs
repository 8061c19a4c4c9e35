//! Reading typed fields out of a JSON object, with problems phrased for users.
//!
//! Each reader returns `Err(problem)`; the caller wraps it in a
//! [`ConfigError::Invalid`](super::ConfigError::Invalid) that adds file,
//! environment, server and field.

use serde_json::{Map, Value};

/// A short description of a JSON value for error messages.
pub(crate) fn describe(value: &Value) -> String {
    match value {
        Value::Null => "null".into(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => format!("number {n}"),
        Value::String(s) => format!("string {s:?}"),
        Value::Array(_) => "a list".into(),
        Value::Object(_) => "an object".into(),
    }
}

/// A required, non-empty string.
pub(crate) fn string(
    obj: &Map<String, Value>,
    field: &str,
    example: &str,
) -> Result<String, String> {
    match obj.get(field) {
        None | Some(Value::Null) => Err(format!("missing; add e.g. \"{field}\": \"{example}\"")),
        Some(Value::String(s)) if s.trim().is_empty() => Err(format!(
            "must not be empty; set it, e.g. \"{field}\": \"{example}\""
        )),
        Some(Value::String(s)) => Ok(s.clone()),
        Some(other) => Err(format!(
            "expected a string, found {}; write it in quotes, e.g. \"{field}\": \"{example}\"",
            describe(other)
        )),
    }
}

/// An optional TCP port (1..=65535).
pub(crate) fn port(obj: &Map<String, Value>, field: &str) -> Result<Option<u16>, String> {
    match obj.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => match v.as_u64() {
            Some(p @ 1..=65535) => Ok(Some(p as u16)),
            _ => Err(format!(
                "expected a port number 1..=65535, found {}; write a plain number, e.g. \"{field}\": 3050",
                describe(v)
            )),
        },
    }
}

/// An optional boolean. Pomelo configs also write `"true"` / `"false"`
/// strings, which are accepted.
pub(crate) fn boolean(obj: &Map<String, Value>, field: &str) -> Result<Option<bool>, String> {
    match obj.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(*b)),
        Some(Value::String(s)) if s == "true" => Ok(Some(true)),
        Some(Value::String(s)) if s == "false" => Ok(Some(false)),
        Some(other) => Err(format!("expected true or false, found {}", describe(other))),
    }
}

/// An optional positive count.
pub(crate) fn count(obj: &Map<String, Value>, field: &str) -> Result<Option<usize>, String> {
    match obj.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => match v.as_u64().and_then(|n| usize::try_from(n).ok()) {
            Some(n) if n > 0 => Ok(Some(n)),
            _ => Err(format!(
                "expected a positive whole number, found {}; e.g. \"{field}\": 10000",
                describe(v)
            )),
        },
    }
}

/// Extra process arguments: a list of strings, or (as in Pomelo, where
/// `args` is one string of node options) a string split on whitespace.
pub(crate) fn args(obj: &Map<String, Value>, field: &str) -> Result<Vec<String>, String> {
    match obj.get(field) {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::String(s)) => Ok(s.split_whitespace().map(str::to_owned).collect()),
        Some(Value::Array(items)) => items
            .iter()
            .map(|item| match item {
                Value::String(s) => Ok(s.clone()),
                other => Err(format!(
                    "expected a list of strings, found an element that is {}",
                    describe(other)
                )),
            })
            .collect(),
        Some(other) => Err(format!(
            "expected a list of strings (or one string), found {}",
            describe(other)
        )),
    }
}
