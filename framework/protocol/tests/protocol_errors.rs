//! Every decode path fails with the `DecodeError` variant that names its cause
//! (and every encode limit with its `EncodeError`).

use bytes::{Bytes, BytesMut};
use shaddock_protocol::handshake::{HandshakeResponse, parse_handshake, parse_kick};
use shaddock_protocol::message::get_varint;
use shaddock_protocol::{
    DecodeError, EncodeError, MAX_BODY_LEN, Message, PackageType, RouteDictionary, decode_message,
    decode_packages, encode_message, encode_package, encode_package_into,
};

fn b(bytes: &'static [u8]) -> Bytes {
    Bytes::from_static(bytes)
}

#[test]
fn package_errors() {
    assert_eq!(decode_packages(b(b"")), Ok(vec![]));
    assert_eq!(
        decode_packages(b(&[3, 0, 0])),
        Err(DecodeError::TruncatedHeader { have: 3 })
    );
    // A whole package followed by a partial header.
    assert_eq!(
        decode_packages(b(&[3, 0, 0, 0, 4])),
        Err(DecodeError::TruncatedHeader { have: 1 })
    );
    for bad in [0u8, 6, 0xFF] {
        let frame = Bytes::from(vec![bad, 0, 0, 0]);
        assert_eq!(
            decode_packages(frame),
            Err(DecodeError::UnknownPackageType(bad))
        );
    }
    assert_eq!(
        decode_packages(b(&[4, 0, 0, 5, 1, 2])),
        Err(DecodeError::TruncatedBody {
            declared: 5,
            available: 2
        })
    );
    assert_eq!(
        decode_packages(b(&[4, 0xFF, 0xFF, 0xFF])),
        Err(DecodeError::TruncatedBody {
            declared: MAX_BODY_LEN,
            available: 0
        })
    );
    // The second package of a frame is checked as strictly as the first.
    assert_eq!(
        decode_packages(b(&[3, 0, 0, 0, 9, 0, 0, 0])),
        Err(DecodeError::UnknownPackageType(9))
    );
}

#[test]
fn message_errors() {
    assert_eq!(decode_message(b(b""), None), Err(DecodeError::EmptyMessage));
    for flag in [0x08u8, 0x0A, 0x0C, 0x0E, 0x09, 0x1F] {
        let data = Bytes::from(vec![flag, 1, 0]);
        assert_eq!(
            decode_message(data, None),
            Err(DecodeError::UnknownMessageType((flag & 0x0E) >> 1)),
            "flag {flag:#04x}"
        );
    }
    // Request/response without an id, or with a cut varint.
    assert_eq!(
        decode_message(b(&[0x00]), None),
        Err(DecodeError::TruncatedId)
    );
    assert_eq!(
        decode_message(b(&[0x04]), None),
        Err(DecodeError::TruncatedId)
    );
    assert_eq!(
        decode_message(b(&[0x04, 0x80, 0x80]), None),
        Err(DecodeError::TruncatedId)
    );
    // Ids past u32.
    assert_eq!(
        decode_message(b(&[0x04, 0xFF, 0xFF, 0xFF, 0xFF, 0x10]), None),
        Err(DecodeError::IdOverflow)
    );
    assert_eq!(
        decode_message(b(&[0x04, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01]), None),
        Err(DecodeError::IdOverflow)
    );
    // A fifth continuation byte is an overflow even when the data ends there.
    assert_eq!(
        get_varint(&[0x80, 0x80, 0x80, 0x80, 0x80]),
        Err(DecodeError::IdOverflow)
    );
    assert_eq!(get_varint(&[]), Err(DecodeError::TruncatedId));

    // Plain route: missing length byte, or fewer bytes than announced.
    assert_eq!(
        decode_message(b(&[0x02]), None),
        Err(DecodeError::TruncatedRoute { need: 1, have: 0 })
    );
    assert_eq!(
        decode_message(b(&[0x00, 0x01, 0x05, b'a', b'b']), None),
        Err(DecodeError::TruncatedRoute { need: 6, have: 3 })
    );
    // Compressed route: code cut short, no dictionary, unknown code.
    assert_eq!(
        decode_message(b(&[0x03, 0x00]), None),
        Err(DecodeError::TruncatedRoute { need: 2, have: 1 })
    );
    assert_eq!(
        decode_message(b(&[0x07, 0x00, 0x02]), None),
        Err(DecodeError::NoDictionary(2))
    );
    let dict = RouteDictionary::new(["a.b.c"], Vec::<String>::new());
    assert_eq!(
        decode_message(b(&[0x01, 0x01, 0x00, 0x02]), Some(&dict)),
        Err(DecodeError::UnknownRouteCode(2))
    );
    assert_eq!(
        decode_message(b(&[0x01, 0x01, 0x00, 0x00]), Some(&dict)),
        Err(DecodeError::UnknownRouteCode(0))
    );
    // Invalid UTF-8 in a route is decoded leniently, never an error.
    let m = decode_message(b(&[0x02, 0x02, 0xFF, b'a', b'{', b'}']), None).unwrap();
    assert_eq!(m.route, "\u{FFFD}a");
    assert_eq!(&m.body[..], b"{}");
}

#[test]
fn handshake_errors() {
    for body in [
        &b""[..],
        b"not json",
        b"[]",
        b"{}",
        br#"{"sys":1}"#,
        br#"{"sys":null}"#,
        br#"{"user":{}}"#,
    ] {
        assert_eq!(
            parse_handshake(body),
            Err(DecodeError::BadHandshake),
            "{}",
            String::from_utf8_lossy(body)
        );
    }
    // Odd field types inside `sys` do not fail the handshake (Pomelo only
    // needs `sys`); they read as absent.
    let req = parse_handshake(br#"{"sys":{"type":5,"version":[1],"dictVersion":7}}"#).unwrap();
    assert_eq!(req.sys.client_type, None);
    assert_eq!(req.sys.version, None);
    assert_eq!(req.sys.dict_version, None);

    assert_eq!(
        HandshakeResponse::parse(b"{}"),
        Err(DecodeError::BadHandshake)
    );
    assert_eq!(
        HandshakeResponse::parse(br#"{"code":"200"}"#),
        Err(DecodeError::BadHandshake)
    );
    // Kick bodies are read leniently: never an error.
    assert_eq!(parse_kick(b"oops"), "oops");
    assert_eq!(parse_kick(br#"{"reason":5}"#), "5");
    assert_eq!(parse_kick(br#"{}"#), "");
}

#[test]
fn encode_limits() {
    let long_route = "r".repeat(256);
    assert_eq!(
        encode_message(&Message::push(long_route.clone(), Bytes::new()), None),
        Err(EncodeError::RouteTooLong(256))
    );
    assert!(encode_message(&Message::push("r".repeat(255), Bytes::new()), None).is_ok());
    // A long route that the dictionary compresses is fine.
    let dict = RouteDictionary::new(Vec::<String>::new(), [long_route.clone()]);
    let encoded = encode_message(&Message::push(long_route, Bytes::new()), Some(&dict)).unwrap();
    assert_eq!(&encoded[..], &[0x07, 0x00, 0x01]);

    let too_big = vec![0u8; MAX_BODY_LEN + 1];
    assert_eq!(
        encode_package(PackageType::Data, &too_big),
        Err(EncodeError::BodyTooLong(MAX_BODY_LEN + 1))
    );
    let mut dst = BytesMut::new();
    assert!(encode_package_into(&mut dst, PackageType::Data, &too_big).is_err());
    assert!(dst.is_empty(), "nothing written on error");
    let max = vec![0u8; MAX_BODY_LEN];
    let frame = encode_package(PackageType::Data, &max).unwrap();
    assert_eq!(&frame[..4], &[4, 0xFF, 0xFF, 0xFF]);
    assert_eq!(decode_packages(frame).unwrap()[0].body.len(), MAX_BODY_LEN);
}
