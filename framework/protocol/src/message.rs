//! Message layer (§3): the body of a DATA package.
//!
//! ```text
//! flag:u8 | [id: varint, REQUEST/RESPONSE] | [route, REQUEST/NOTIFY/PUSH] | body
//! ```
//! The route is either a length-prefixed UTF-8 string or, when the flag's
//! bit 0 is set, a 2-byte big-endian code from the [`RouteDictionary`].

use bytes::{BufMut, Bytes, BytesMut};

use super::{DecodeError, EncodeError, RouteDictionary};

const FLAG_COMPRESSED_ROUTE: u8 = 0x01;
const TYPE_MASK: u8 = 0x0E;
const MAX_ROUTE_LEN: usize = 255;

/// The four message types of pomelo-protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum MessageType {
    Request = 0,
    Notify = 1,
    Response = 2,
    Push = 3,
}

impl MessageType {
    fn has_id(self) -> bool {
        matches!(self, Self::Request | Self::Response)
    }
    fn has_route(self) -> bool {
        !matches!(self, Self::Response)
    }
}

/// One decoded message. `route` is always the full route string: a
/// compressed route is resolved through the dictionary while decoding, so
/// nothing above this layer needs to know about route codes. A RESPONSE has
/// an empty route (the wire carries none).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    pub kind: MessageType,
    pub id: u32,
    pub route: String,
    pub body: Bytes,
}

impl Message {
    pub fn request(id: u32, route: impl Into<String>, body: impl Into<Bytes>) -> Self {
        Self {
            kind: MessageType::Request,
            id,
            route: route.into(),
            body: body.into(),
        }
    }
    pub fn notify(route: impl Into<String>, body: impl Into<Bytes>) -> Self {
        Self {
            kind: MessageType::Notify,
            id: 0,
            route: route.into(),
            body: body.into(),
        }
    }
    pub fn response(id: u32, body: impl Into<Bytes>) -> Self {
        Self {
            kind: MessageType::Response,
            id,
            route: String::new(),
            body: body.into(),
        }
    }
    pub fn push(route: impl Into<String>, body: impl Into<Bytes>) -> Self {
        Self {
            kind: MessageType::Push,
            id: 0,
            route: route.into(),
            body: body.into(),
        }
    }
}

/// Appends the message encoding of `msg` to `dst`. The route is compressed
/// when `dict` is given and knows it (never for RESPONSE, which has no route).
pub fn encode_message_into(
    dst: &mut BytesMut,
    msg: &Message,
    dict: Option<&RouteDictionary>,
) -> Result<(), EncodeError> {
    let code = if msg.kind.has_route() {
        dict.and_then(|d| d.code(&msg.route))
    } else {
        None
    };
    if msg.kind.has_route() && code.is_none() && msg.route.len() > MAX_ROUTE_LEN {
        return Err(EncodeError::RouteTooLong(msg.route.len()));
    }
    dst.reserve(1 + 5 + 1 + msg.route.len() + msg.body.len());
    let flag = ((msg.kind as u8) << 1) | u8::from(code.is_some());
    dst.put_u8(flag);
    if msg.kind.has_id() {
        put_varint(dst, msg.id);
    }
    if msg.kind.has_route() {
        match code {
            Some(code) => dst.put_u16(code),
            None => {
                dst.put_u8(msg.route.len() as u8);
                dst.put_slice(msg.route.as_bytes());
            }
        }
    }
    dst.put_slice(&msg.body);
    Ok(())
}

/// Encodes `msg` into a fresh buffer (see [`encode_message_into`]).
pub fn encode_message(msg: &Message, dict: Option<&RouteDictionary>) -> Result<Bytes, EncodeError> {
    let mut dst = BytesMut::new();
    encode_message_into(&mut dst, msg, dict)?;
    Ok(dst.freeze())
}

/// Decodes the body of a DATA package. `dict` resolves compressed routes; a
/// compressed route without a dictionary, or with an unknown code, is an
/// error (Pomelo drops such messages without a reply, §5.2). Route bytes that
/// are not valid UTF-8 are decoded leniently, as Node does.
pub fn decode_message(data: Bytes, dict: Option<&RouteDictionary>) -> Result<Message, DecodeError> {
    let flag = *data.first().ok_or(DecodeError::EmptyMessage)?;
    let type_bits = (flag & TYPE_MASK) >> 1;
    let kind = match type_bits {
        0 => MessageType::Request,
        1 => MessageType::Notify,
        2 => MessageType::Response,
        3 => MessageType::Push,
        other => return Err(DecodeError::UnknownMessageType(other)),
    };
    let mut pos = 1;
    let id = if kind.has_id() {
        let (id, used) = get_varint(&data[pos..])?;
        pos += used;
        id
    } else {
        0
    };
    let route = if !kind.has_route() {
        String::new()
    } else if flag & FLAG_COMPRESSED_ROUTE != 0 {
        let rest = &data[pos..];
        if rest.len() < 2 {
            return Err(DecodeError::TruncatedRoute {
                need: 2,
                have: rest.len(),
            });
        }
        let code = u16::from_be_bytes([rest[0], rest[1]]);
        pos += 2;
        let dict = dict.ok_or(DecodeError::NoDictionary(code))?;
        dict.route(code)
            .ok_or(DecodeError::UnknownRouteCode(code))?
            .to_owned()
    } else {
        let rest = &data[pos..];
        let len = *rest
            .first()
            .ok_or(DecodeError::TruncatedRoute { need: 1, have: 0 })? as usize;
        if rest.len() < 1 + len {
            return Err(DecodeError::TruncatedRoute {
                need: 1 + len,
                have: rest.len(),
            });
        }
        pos += 1 + len;
        String::from_utf8_lossy(&rest[1..1 + len]).into_owned()
    };
    Ok(Message {
        kind,
        id,
        route,
        body: data.slice(pos..),
    })
}

/// Base-128 varint, least-significant group first (§3.3).
pub fn put_varint(dst: &mut BytesMut, value: u32) {
    crate::protobuf::wire::put_varint(dst, u64::from(value));
}

/// Reads a varint; returns the value and the number of bytes used.
pub fn get_varint(src: &[u8]) -> Result<(u32, usize), DecodeError> {
    let mut value: u64 = 0;
    for (i, &b) in src.iter().enumerate() {
        value |= u64::from(b & 0x7F) << (7 * i);
        if b & 0x80 == 0 {
            return u32::try_from(value)
                .map(|v| (v, i + 1))
                .map_err(|_| DecodeError::IdOverflow);
        }
        // A fifth byte that still announces a continuation can only lead to
        // an id past u32: say so now rather than "truncated" when the data
        // happens to end here.
        if i == 4 {
            return Err(DecodeError::IdOverflow);
        }
    }
    Err(DecodeError::TruncatedId)
}
