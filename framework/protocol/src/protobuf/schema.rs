//! Pomelo's protos format, parsed (pomelo-protobuf's `parser.js` rules).
//!
//! A file maps each route (and each global `"message Name"`) to a message
//! definition: keys `"<option> <type> <name>": <tag>` with option
//! `required`, `optional` or `repeated`, and nested `"message Name": {…}`.
//! A field's message type is looked up in its own message's nested
//! definitions, then among the file's global `"message Name"` entries —
//! not in enclosing messages: that is how pomelo-protobuf resolves it.
//!
//! pomelo-protobuf skips keys it cannot read (a malformed key, a tag used
//! twice) and only fails at run time on a type it does not know (`bool`,
//! `uInt64`: it writes a key without a value). Here each of those is an
//! error at load time naming the key, so a typo is found when the server
//! starts, not by a client that cannot decode a push. A file Pomelo reads
//! without skipping anything parses to the same definitions, and
//! [`Schema::pomelo_json`] prints them exactly as Pomelo's handshake does.

use std::collections::HashMap;

use serde_json::{Map, Value};

/// Largest tag: pomelo-protobuf computes the key as a signed 32-bit
/// `(tag << 3) | type`, which breaks from 2^28 on.
pub const MAX_TAG: u32 = (1 << 28) - 1;

/// Why a protos file could not be read; says where (`route.field`) and how
/// to fix it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{path}: {problem}")]
pub struct SchemaError {
    pub path: String,
    pub problem: String,
}

fn schema_error(path: &str, problem: impl Into<String>) -> SchemaError {
    SchemaError {
        path: path.to_owned(),
        problem: problem.into(),
    }
}

/// `required`, `optional` or `repeated`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Occurrence {
    Required,
    Optional,
    Repeated,
}

impl Occurrence {
    fn name(self) -> &'static str {
        match self {
            Self::Required => "required",
            Self::Optional => "optional",
            Self::Repeated => "repeated",
        }
    }
}

/// How a field's value is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `uInt32`: varint.
    UInt32,
    /// `sInt32` and `int32`: zigzag, then varint (pomelo-protobuf zigzags
    /// both).
    SInt32,
    /// `float`: 4 bytes little-endian.
    Float,
    /// `double`: 8 bytes little-endian.
    Double,
    /// `string`: varint byte length, UTF-8.
    String,
    /// A message (index into [`Schema`]'s definitions): varint byte
    /// length, then its fields.
    Message(usize),
}

impl Kind {
    /// The protobuf wire type in the key (pomelo-protobuf's `TYPES`).
    pub fn wire_type(self) -> u32 {
        match self {
            Kind::UInt32 | Kind::SInt32 => 0,
            Kind::Double => 1,
            Kind::Float => 5,
            Kind::String | Kind::Message(_) => 2,
        }
    }

    /// Repeated values of this kind are written as one key, an element
    /// count and the values back to back (pomelo-protobuf's "simple types").
    pub fn is_packed(self) -> bool {
        matches!(
            self,
            Kind::UInt32 | Kind::SInt32 | Kind::Float | Kind::Double
        )
    }

    fn primitive(type_name: &str) -> Option<Kind> {
        Some(match type_name {
            "uInt32" => Kind::UInt32,
            "sInt32" | "int32" => Kind::SInt32,
            "float" => Kind::Float,
            "double" => Kind::Double,
            "string" => Kind::String,
            _ => return None,
        })
    }
}

/// One field of a message.
#[derive(Debug, Clone)]
pub struct Field {
    pub name: String,
    pub occurrence: Occurrence,
    /// The type as written in the file (`int32`, `Point`, …).
    pub type_name: String,
    pub kind: Kind,
    pub tag: u32,
}

/// One message definition.
#[derive(Debug, Clone, Default)]
pub struct MessageDef {
    /// In the file's order (JavaScript's key order, see [`js_order`]).
    pub fields: Vec<Field>,
    pub(crate) by_name: HashMap<String, usize>,
    pub(crate) by_tag: HashMap<u32, usize>,
    /// Nested `message Name` definitions, in the file's order.
    pub nested: Vec<(String, usize)>,
}

impl MessageDef {
    pub fn field(&self, name: &str) -> Option<&Field> {
        self.by_name.get(name).map(|&i| &self.fields[i])
    }

    pub fn field_by_tag(&self, tag: u32) -> Option<&Field> {
        self.by_tag.get(&tag).map(|&i| &self.fields[i])
    }
}

/// One protos file (`serverProtos.json` or `clientProtos.json`), parsed.
#[derive(Debug, Clone, Default)]
pub struct Schema {
    /// Every definition, nested ones included.
    pub(crate) messages: Vec<MessageDef>,
    /// Top-level keys (routes and `message Name`) in the file's order.
    roots: Vec<(String, usize)>,
    by_root: HashMap<String, usize>,
}

impl Schema {
    /// Parses a protos file's JSON (Pomelo's source format).
    pub fn parse(source: &Value) -> Result<Schema, SchemaError> {
        let Value::Object(top) = source else {
            return Err(schema_error(
                "(file)",
                "expected a JSON object of routes, e.g. {\"onChat\": {\"required string msg\": 1}}",
            ));
        };
        let mut schema = Schema::default();
        // Field types name messages that may be declared later in the
        // file: read every definition first, resolve types after.
        let mut pending = Vec::new();
        for key in js_order(top) {
            let index = schema.read_message(key, &top[key], &mut pending)?;
            schema.by_root.insert(key.clone(), index);
            schema.roots.push((key.clone(), index));
        }
        for (message, field, path) in pending {
            let def = &schema.messages[message];
            let type_name = &def.fields[field].type_name;
            let kind = match def.nested.iter().find(|(n, _)| n == type_name) {
                Some(&(_, index)) => Kind::Message(index),
                None => match schema.by_root.get(&format!("message {type_name}")) {
                    Some(&index) => Kind::Message(index),
                    None => {
                        return Err(schema_error(
                            &path,
                            format!(
                                "unknown type `{type_name}`: pomelo-protobuf knows uInt32, sInt32, \
                                 int32, float, double, string, a `message {type_name}` declared in \
                                 the same message, or a top-level `message {type_name}`"
                            ),
                        ));
                    }
                },
            };
            schema.messages[message].fields[field].kind = kind;
        }
        Ok(schema)
    }

    /// Reads one message definition (and its nested ones); returns its
    /// index. Fields of message type are queued in `pending` for
    /// resolution.
    fn read_message(
        &mut self,
        path: &str,
        value: &Value,
        pending: &mut Vec<(usize, usize, String)>,
    ) -> Result<usize, SchemaError> {
        let Value::Object(keys) = value else {
            return Err(schema_error(
                path,
                "expected an object of fields, e.g. {\"required string msg\": 1}",
            ));
        };
        let index = self.messages.len();
        self.messages.push(MessageDef::default());
        for key in js_order(keys) {
            let parts: Vec<&str> = key.split(' ').collect();
            let at = format!("{path}.{key}");
            match parts.as_slice() {
                ["message", name] if !name.is_empty() => {
                    if self.messages[index].nested.iter().any(|(n, _)| n == name) {
                        return Err(schema_error(&at, "message declared twice"));
                    }
                    let nested =
                        self.read_message(&format!("{path}.{name}"), &keys[key], pending)?;
                    self.messages[index].nested.push((name.to_string(), nested));
                }
                [option, type_name, name] if !type_name.is_empty() && !name.is_empty() => {
                    let occurrence = match *option {
                        "required" => Occurrence::Required,
                        "optional" => Occurrence::Optional,
                        "repeated" => Occurrence::Repeated,
                        other => {
                            return Err(schema_error(
                                &at,
                                format!("`{other}` is not required, optional or repeated"),
                            ));
                        }
                    };
                    let tag = read_tag(&keys[key]).map_err(|p| schema_error(&at, p))?;
                    let def = &mut self.messages[index];
                    if *name == "__messages" || *name == "__tags" {
                        return Err(schema_error(&at, "this field name is reserved by Pomelo"));
                    }
                    if def.by_name.contains_key(*name) {
                        return Err(schema_error(&at, format!("field `{name}` declared twice")));
                    }
                    if let Some(&other) = def.by_tag.get(&tag) {
                        let other = &def.fields[other].name;
                        return Err(schema_error(
                            &at,
                            format!("tag {tag} is already used by `{other}`"),
                        ));
                    }
                    let kind = Kind::primitive(type_name);
                    let field = def.fields.len();
                    if kind.is_none() {
                        pending.push((index, field, at.clone()));
                    }
                    def.by_name.insert(name.to_string(), field);
                    def.by_tag.insert(tag, field);
                    def.fields.push(Field {
                        name: name.to_string(),
                        occurrence,
                        type_name: type_name.to_string(),
                        // Replaced when the message type is resolved.
                        kind: kind.unwrap_or(Kind::Message(usize::MAX)),
                        tag,
                    });
                }
                _ => {
                    return Err(schema_error(
                        &at,
                        "expected \"<required|optional|repeated> <type> <name>\": <tag> or \
                         \"message <Name>\": {…} (single spaces)",
                    ));
                }
            }
        }
        Ok(index)
    }

    /// The definition of `route` (or of a top-level `message Name`).
    pub fn route(&self, route: &str) -> Option<usize> {
        self.by_root.get(route).copied()
    }

    /// Whether bodies of `route` use protobuf.
    pub fn has_route(&self, route: &str) -> bool {
        self.by_root.contains_key(route)
    }

    pub fn message(&self, index: usize) -> &MessageDef {
        &self.messages[index]
    }

    pub fn is_empty(&self) -> bool {
        self.roots.is_empty()
    }

    /// The parsed form Pomelo sends in the handshake (`protos.server` /
    /// `protos.client`): per message, each field as
    /// `{"option","type","tag"}`, then `__messages` and `__tags`; its JSON
    /// text is byte for byte what Node prints for pomelo-protobuf's parse.
    pub fn pomelo_json(&self) -> Value {
        Value::Object(
            self.roots
                .iter()
                .map(|(key, index)| (key.clone(), self.message_json(*index)))
                .collect(),
        )
    }

    fn message_json(&self, index: usize) -> Value {
        let def = &self.messages[index];
        let mut out = Map::new();
        for f in &def.fields {
            let mut field = Map::new();
            field.insert("option".into(), f.occurrence.name().into());
            field.insert("type".into(), f.type_name.clone().into());
            field.insert("tag".into(), f.tag.into());
            out.insert(f.name.clone(), Value::Object(field));
        }
        let nested = def
            .nested
            .iter()
            .map(|(name, i)| (name.clone(), self.message_json(*i)))
            .collect();
        out.insert("__messages".into(), Value::Object(nested));
        // Integer keys: JavaScript lists them in ascending order.
        let mut tags: Vec<&Field> = def.fields.iter().collect();
        tags.sort_by_key(|f| f.tag);
        let tags = tags
            .into_iter()
            .map(|f| (f.tag.to_string(), Value::from(f.name.clone())))
            .collect();
        out.insert("__tags".into(), Value::Object(tags));
        Value::Object(out)
    }

    /// Rebuilds a schema from its parsed form (what a client receives in
    /// the handshake): each `{"option","type","tag"}` field becomes
    /// `"option type name": tag` again, each `__messages` entry a nested
    /// `message Name`, and the result is parsed as usual.
    pub fn from_pomelo_json(parsed: &Value) -> Result<Schema, SchemaError> {
        let Value::Object(top) = parsed else {
            return Err(schema_error("(protos)", "expected a JSON object of routes"));
        };
        let mut source = Map::new();
        for (key, value) in top {
            source.insert(key.clone(), unparse(key, value)?);
        }
        Schema::parse(&Value::Object(source))
    }
}

/// The source form of one parsed message (see [`Schema::from_pomelo_json`]).
fn unparse(path: &str, parsed: &Value) -> Result<Value, SchemaError> {
    let Value::Object(fields) = parsed else {
        return Err(schema_error(path, "expected an object of fields"));
    };
    let mut source = Map::new();
    for (name, field) in fields {
        match name.as_str() {
            "__tags" => {}
            "__messages" => {
                let Value::Object(nested) = field else {
                    return Err(schema_error(path, "`__messages` is not an object"));
                };
                for (type_name, def) in nested {
                    let inner = unparse(&format!("{path}.{type_name}"), def)?;
                    source.insert(format!("message {type_name}"), inner);
                }
            }
            _ => {
                let get = |key: &str| field.get(key).and_then(Value::as_str);
                let (Some(option), Some(type_name), Some(tag)) =
                    (get("option"), get("type"), field.get("tag"))
                else {
                    return Err(schema_error(
                        &format!("{path}.{name}"),
                        "expected {\"option\", \"type\", \"tag\"}",
                    ));
                };
                source.insert(format!("{option} {type_name} {name}"), tag.clone());
            }
        }
    }
    Ok(Value::Object(source))
}

fn read_tag(value: &Value) -> Result<u32, String> {
    value
        .as_u64()
        .or_else(|| {
            let f = value.as_f64()?;
            (f.fract() == 0.0 && f >= 0.0).then_some(f as u64)
        })
        .and_then(|t| u32::try_from(t).ok())
        .filter(|t| (1..=MAX_TAG).contains(t))
        .ok_or_else(|| format!("the tag must be a whole number in 1..={MAX_TAG}, got {value}"))
}

/// `object`'s keys in JavaScript's order: keys that are array indices
/// (`"0"`, `"17"`) first, ascending, then the others in insertion order.
/// Node reads a protos file with `JSON.parse`, so this is the order in
/// which Pomelo sees (and later prints) its keys.
pub(crate) fn js_order(object: &Map<String, Value>) -> Vec<&String> {
    let mut keys: Vec<&String> = object.keys().collect();
    if keys.iter().any(|k| array_index(k).is_some()) {
        keys.sort_by_key(|k| match array_index(k) {
            Some(i) => (0, i),
            None => (1, 0),
        });
    }
    keys
}

/// The value of a canonical array-index key (`"0"`..`"4294967294"`).
pub(crate) fn array_index(key: &str) -> Option<u32> {
    if key.is_empty() || (key.len() > 1 && key.starts_with('0')) {
        return None;
    }
    if !key.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    key.parse::<u32>().ok().filter(|&i| i != u32::MAX)
}
