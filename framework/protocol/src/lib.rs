//! The Pomelo client protocol as a pure codec: bytes in, values out, no I/O.
//!
//! Two layers, exactly as pomelo-protocol 0.1.6 lays them out (see
//! `docs/protocol.md` §2–§5):
//!
//! * [`package`] — the outer framing: a type byte and a 24-bit big-endian body
//!   length. A WebSocket frame may hold several packages back to back.
//! * [`message`] — the body of a DATA package: flag byte, varint id, route
//!   (plain or compressed through the [`dictionary`]) and an opaque body.
//!
//! [`handshake`] builds and parses the JSON bodies of HANDSHAKE and KICK
//! packages; [`protobuf`] encodes and decodes message bodies with Pomelo's
//! protobuf schemas (pomelo-protobuf), for the routes that have one. Nothing in here touches a socket, so every function can be
//! property-tested and fuzzed; no input makes any of them panic.
//!
//! The one exception is opt-in: with the `io` feature, `transport` carries
//! packages over a WebSocket or a raw TCP stream (§1) behind one
//! `Stream` + `Sink` of package bytes, so the server's agent and the Rust
//! client share it. Its framing is the pure [`split_package`].

pub mod dictionary;
pub mod handshake;
pub mod hash;
pub mod message;
pub mod package;
pub mod protobuf;
#[cfg(feature = "io")]
pub mod transport;

use bytes::{BufMut, Bytes, BytesMut};

pub use dictionary::RouteDictionary;
pub use message::{Message, MessageType, decode_message, encode_message, encode_message_into};
pub use package::{
    HANDSHAKE_ACK, HEARTBEAT, MAX_BODY_LEN, Package, PackageType, decode_packages, encode_package,
    encode_package_into, split_package,
};
pub use protobuf::{ProtobufError, Protos};

/// Body of Pomelo's generic error response (§5.5): what a client gets for
/// an unknown route, a failed handler or an unreachable backend.
pub const CODE_500: &[u8] = br#"{"code":500}"#;

/// Why a byte sequence could not be decoded. Each variant says what was wrong
/// and where, so a log line is enough to understand a misbehaving client.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("package header truncated: need 4 bytes, have {have}")]
    TruncatedHeader { have: usize },
    #[error("unknown package type {0} (expected 1..=5)")]
    UnknownPackageType(u8),
    #[error("package body truncated: header says {declared} bytes, {available} available")]
    TruncatedBody { declared: usize, available: usize },
    #[error("empty message: a DATA package needs at least the flag byte")]
    EmptyMessage,
    #[error("unknown message type {0} in flag byte (expected 0..=3)")]
    UnknownMessageType(u8),
    #[error("message id varint is truncated")]
    TruncatedId,
    #[error("message id varint is longer than 5 bytes or overflows u32")]
    IdOverflow,
    #[error("route truncated: need {need} bytes, have {have}")]
    TruncatedRoute { need: usize, have: usize },
    #[error("compressed route code {0} but the connection has no route dictionary")]
    NoDictionary(u16),
    #[error("compressed route code {0} is not in the route dictionary")]
    UnknownRouteCode(u16),
    #[error("package of {declared} bytes is over the limit of {limit} bytes")]
    PackageTooLarge { declared: usize, limit: usize },
    #[error("handshake body is not a JSON object with a `sys` field")]
    BadHandshake,
}

/// Why a value could not be encoded (the wire format has hard limits).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EncodeError {
    #[error("package body of {0} bytes exceeds the 24-bit limit of 16777215")]
    BodyTooLong(usize),
    #[error("route of {0} bytes exceeds the 255-byte limit of an uncompressed route")]
    RouteTooLong(usize),
}

/// Encodes `msg` as one complete DATA package (header + message) in a single
/// buffer, ready to be shared between receivers: a push to a thousand
/// clients is encoded once and every connection writes the same bytes.
pub fn encode_data_frame(
    msg: &Message,
    dict: Option<&RouteDictionary>,
) -> Result<Bytes, EncodeError> {
    let mut buf = BytesMut::with_capacity(4 + 8 + msg.route.len() + msg.body.len());
    buf.put_slice(&[PackageType::Data as u8, 0, 0, 0]);
    encode_message_into(&mut buf, msg, dict)?;
    let len = buf.len() - 4;
    if len > MAX_BODY_LEN {
        return Err(EncodeError::BodyTooLong(len));
    }
    buf[1..4].copy_from_slice(&(len as u32).to_be_bytes()[1..]);
    Ok(buf.freeze())
}
