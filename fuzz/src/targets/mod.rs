//! The fuzz targets: what each feeds its input to, how it generates
//! well-formed-ish inputs, and which invariant it checks beyond "no panic".

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};

use crate::rng::Rng;

pub mod handshake;
pub mod message;
pub mod package;
pub mod protobuf;
pub mod servers_json;
pub mod tcp_framing;
pub mod websocket;

/// One fuzz target.
pub trait Target {
    /// The name used on the command line and for `fuzz/corpus/<name>/`.
    fn name(&self) -> &'static str;
    /// Inputs are cut to this many bytes.
    fn max_len(&self) -> usize {
        4096
    }
    /// A fresh structured input: valid more often than not.
    fn generate(&mut self, rng: &mut Rng) -> Vec<u8>;
    /// Feeds one input to the code under test. Panics on a bug (a panic in
    /// that code, or a broken invariant); returns a signature of the
    /// outcome (which error, which shapes) that the runner uses as cheap
    /// feedback: an input with a new signature joins the working corpus.
    fn run(&mut self, input: &[u8]) -> u64;
}

/// Every target, in the order the runner reports them.
pub fn all() -> Vec<Box<dyn Target>> {
    vec![
        Box::new(package::Packages),
        Box::new(tcp_framing::TcpFraming),
        Box::new(message::Messages::new()),
        Box::new(handshake::Handshakes::new()),
        Box::new(protobuf::Protobuf::new()),
        Box::new(websocket::WebSocketFraming::new()),
        Box::new(servers_json::ServersJson),
    ]
}

/// A target by name.
pub fn by_name(name: &str) -> Option<Box<dyn Target>> {
    all().into_iter().find(|t| t.name() == name)
}

/// Hash of anything, for outcome signatures.
pub fn signature(value: impl Hash) -> u64 {
    let mut h = DefaultHasher::new();
    value.hash(&mut h);
    h.finish()
}

/// The variant name of an error's `Debug` form (`TruncatedBody { .. }` →
/// `TruncatedBody`): a signature that ignores the numbers inside.
pub fn variant(err: &impl std::fmt::Debug) -> String {
    let text = format!("{err:?}");
    text.split([' ', '(', '{'])
        .next()
        .unwrap_or_default()
        .to_owned()
}

/// A random JSON value, nested up to `depth`.
pub fn json_value(rng: &mut Rng, depth: usize) -> serde_json::Value {
    use serde_json::Value;
    match rng.below(if depth == 0 { 6 } else { 8 }) {
        0 => Value::Null,
        1 => Value::Bool(rng.one_in(2)),
        2 => Value::from(rng.interesting_u32()),
        3 => Value::from(-(rng.interesting_u32() as i64)),
        4 => serde_json::Number::from_f64(rng.next_u64() as f64 / 7.0)
            .map(Value::Number)
            .unwrap_or(Value::Null),
        5 => Value::String(rng.text(24)),
        6 => Value::Array(
            (0..rng.below(4))
                .map(|_| json_value(rng, depth - 1))
                .collect(),
        ),
        _ => Value::Object(
            (0..rng.below(4))
                .map(|_| (rng.text(8), json_value(rng, depth - 1)))
                .collect(),
        ),
    }
}
