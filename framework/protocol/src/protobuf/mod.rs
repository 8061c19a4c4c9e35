//! Protobuf bodies as pomelo-protobuf 0.4.0 (Pomelo 2.2.7) writes them
//! (`docs/protocol.md` §5.3): bytes in, JSON values out, no I/O.
//!
//! Pomelo describes bodies in two JSON files, `serverProtos.json` (what the
//! server sends: pushes by push route, responses by request route) and
//! `clientProtos.json` (what clients send), in its own format:
//!
//! ```text
//! {"onChat": {"required string msg": 1, "optional uInt32 n": 2,
//!             "message User": {"required string name": 1},
//!             "repeated User users": 3}}
//! ```
//!
//! * [`Schema`] — one such file, parsed ([`schema`]), encoding a
//!   `serde_json::Value` ([`encode`]) and decoding bytes ([`decode`]) exactly
//!   like the npm package: fields in the order of the object's keys, packed
//!   repeated scalars with an element *count*, zigzag for `sInt32` *and*
//!   `int32`, little-endian `float`/`double`, nested messages by length.
//! * [`Protos`] — both files and their version, as the handshake announces
//!   them (`sys.protos`).
//!
//! Where pomelo-protobuf would crash, write garbage or silently drop a body,
//! this codec returns an error that says which field and why; golden
//! vectors recorded from the npm package
//! (`tests/fixtures/protobuf/vectors.json`, made by `gen.js` there) pin
//! every byte of what it does accept.

pub mod decode;
pub mod encode;
mod protos;
pub mod schema;
pub(crate) mod wire;

pub use protos::Protos;
pub use schema::{Schema, SchemaError};

/// Why a body could not be encoded or decoded with a schema. The message
/// names the route and the field path (`users[2].name`), so one log line is
/// enough to find the mismatch.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProtobufError {
    #[error("no protobuf schema for route `{0}`")]
    NoSchema(String),
    #[error("route `{route}`: {path}: {problem}")]
    Value {
        route: String,
        path: String,
        problem: String,
    },
    #[error("route `{route}`: body is not JSON: {problem}")]
    NotJson { route: String, problem: String },
}

/// A problem found deep inside a message; the field path is collected on
/// the way out (only when something failed, so the happy path pays nothing).
#[derive(Debug)]
pub(crate) struct Problem {
    /// Innermost segment first.
    path: Vec<String>,
    problem: String,
}

impl Problem {
    pub(crate) fn new(problem: impl Into<String>) -> Self {
        Problem {
            path: Vec::new(),
            problem: problem.into(),
        }
    }

    /// Adds the enclosing segment (`name` or `[3]`).
    pub(crate) fn at(mut self, segment: impl Into<String>) -> Self {
        self.path.push(segment.into());
        self
    }

    pub(crate) fn into_error(self, route: &str) -> ProtobufError {
        let mut path = String::new();
        for segment in self.path.iter().rev() {
            if !path.is_empty() && !segment.starts_with('[') {
                path.push('.');
            }
            path.push_str(segment);
        }
        if path.is_empty() {
            path.push_str("(message)");
        }
        ProtobufError::Value {
            route: route.to_owned(),
            path,
            problem: self.problem,
        }
    }
}

/// Nesting bound for encode and decode: a recursive message type and a
/// crafted body must not recurse until the stack overflows.
pub(crate) const MAX_DEPTH: usize = 64;
