//! Package layer (§2): `type:u8 | length:u24 BE | body`.

use bytes::{BufMut, Bytes, BytesMut};

use super::{DecodeError, EncodeError};

/// Largest body a package can carry: the length field is 24 bits.
pub const MAX_BODY_LEN: usize = 0xFF_FFFF;

/// A HEARTBEAT package; identical in both directions.
pub const HEARTBEAT: [u8; 4] = [3, 0, 0, 0];
/// The client's HANDSHAKE_ACK package.
pub const HANDSHAKE_ACK: [u8; 4] = [2, 0, 0, 0];

/// The five package types of pomelo-protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum PackageType {
    Handshake = 1,
    HandshakeAck = 2,
    Heartbeat = 3,
    Data = 4,
    Kick = 5,
}

impl TryFrom<u8> for PackageType {
    type Error = DecodeError;
    fn try_from(b: u8) -> Result<Self, DecodeError> {
        Ok(match b {
            1 => Self::Handshake,
            2 => Self::HandshakeAck,
            3 => Self::Heartbeat,
            4 => Self::Data,
            5 => Self::Kick,
            other => return Err(DecodeError::UnknownPackageType(other)),
        })
    }
}

/// One decoded package. `body` shares the frame's allocation (no copy).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Package {
    pub kind: PackageType,
    pub body: Bytes,
}

/// Appends one package to `dst`.
pub fn encode_package_into(
    dst: &mut BytesMut,
    kind: PackageType,
    body: &[u8],
) -> Result<(), EncodeError> {
    if body.len() > MAX_BODY_LEN {
        return Err(EncodeError::BodyTooLong(body.len()));
    }
    dst.reserve(4 + body.len());
    dst.put_u8(kind as u8);
    let len = body.len() as u32;
    dst.put_slice(&len.to_be_bytes()[1..]);
    dst.put_slice(body);
    Ok(())
}

/// Encodes one package into a fresh buffer.
pub fn encode_package(kind: PackageType, body: &[u8]) -> Result<Bytes, EncodeError> {
    let mut dst = BytesMut::with_capacity(4 + body.len());
    encode_package_into(&mut dst, kind, body)?;
    Ok(dst.freeze())
}

/// Decodes every package in one frame.
///
/// A frame must consist of whole packages: a trailing partial header or body
/// is an error (over WebSocket a frame is the unit of delivery, so a partial
/// package can only come from a broken client). An empty frame yields no
/// packages.
pub fn decode_packages(frame: Bytes) -> Result<Vec<Package>, DecodeError> {
    let mut out = Vec::with_capacity(1);
    let mut pos = 0;
    while pos < frame.len() {
        let rest = &frame[pos..];
        if rest.len() < 4 {
            return Err(DecodeError::TruncatedHeader { have: rest.len() });
        }
        let kind = PackageType::try_from(rest[0])?;
        let declared = u32::from_be_bytes([0, rest[1], rest[2], rest[3]]) as usize;
        let available = rest.len() - 4;
        if declared > available {
            return Err(DecodeError::TruncatedBody {
                declared,
                available,
            });
        }
        let body = frame.slice(pos + 4..pos + 4 + declared);
        out.push(Package { kind, body });
        pos += 4 + declared;
    }
    Ok(out)
}

/// Raw TCP framing (§1): takes the next whole package (header and body,
/// ready for [`decode_packages`] or to be written as is) off the front of a
/// stream's read buffer, without copying.
///
/// `Ok(None)`: not a whole package yet, read more (a truncated header or
/// body). A body longer than `max_body` is refused as soon as its header
/// arrives, so a client cannot make the server buffer 16 MiB by announcing
/// it; so is an unknown type byte (Pomelo closes the socket there too).
pub fn split_package(buf: &mut BytesMut, max_body: usize) -> Result<Option<Bytes>, DecodeError> {
    let Some(&kind) = buf.first() else {
        return Ok(None);
    };
    PackageType::try_from(kind)?;
    if buf.len() < 4 {
        return Ok(None);
    }
    let declared = u32::from_be_bytes([0, buf[1], buf[2], buf[3]]) as usize;
    if declared > max_body {
        return Err(DecodeError::PackageTooLarge {
            declared,
            limit: max_body,
        });
    }
    if buf.len() < 4 + declared {
        buf.reserve(4 + declared - buf.len());
        return Ok(None);
    }
    Ok(Some(buf.split_to(4 + declared).freeze()))
}
