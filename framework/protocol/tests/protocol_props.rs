//! Property tests of the Pomelo codec: round trips for every layer, and no
//! input (random or truncated) can make a decoder panic.

use bytes::{Bytes, BytesMut};
use proptest::prelude::*;
use shaddock_protocol::handshake::{HandshakeResponse, parse_handshake, parse_kick};
use shaddock_protocol::hash::{crc32_pomelo, dispatch_index};
use shaddock_protocol::message::{get_varint, put_varint};
use shaddock_protocol::{
    Message, MessageType, Package, PackageType, RouteDictionary, decode_message, decode_packages,
    encode_message, encode_package_into,
};

fn package_type() -> impl Strategy<Value = PackageType> {
    prop_oneof![
        Just(PackageType::Handshake),
        Just(PackageType::HandshakeAck),
        Just(PackageType::Heartbeat),
        Just(PackageType::Data),
        Just(PackageType::Kick),
    ]
}

fn package() -> impl Strategy<Value = Package> {
    (package_type(), prop::collection::vec(any::<u8>(), 0..300)).prop_map(|(kind, body)| Package {
        kind,
        body: Bytes::from(body),
    })
}

/// Routes of 0..=255 UTF-8 bytes (the uncompressed limit), ASCII and not.
fn route() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-zA-Z]{1,12}\\.[a-zA-Z]{1,12}\\.[a-zA-Z]{1,12}",
        "\\PC{0,60}",
        "[a-z]{0,255}",
    ]
    .prop_filter("route fits in 255 bytes", |r| r.len() <= 255)
}

fn message() -> impl Strategy<Value = Message> {
    let body = prop::collection::vec(any::<u8>(), 0..200);
    prop_oneof![
        (any::<u32>(), route(), body.clone()).prop_map(|(id, r, b)| Message::request(id, r, b)),
        (route(), body.clone()).prop_map(|(r, b)| Message::notify(r, b)),
        (any::<u32>(), body.clone()).prop_map(|(id, b)| Message::response(id, b)),
        (route(), body).prop_map(|(r, b)| Message::push(r, b)),
    ]
}

fn encode_frame(packages: &[Package]) -> Bytes {
    let mut frame = BytesMut::new();
    for p in packages {
        encode_package_into(&mut frame, p.kind, &p.body).unwrap();
    }
    frame.freeze()
}

proptest! {
    #[test]
    fn one_package_round_trips(p in package()) {
        let frame = encode_frame(std::slice::from_ref(&p));
        prop_assert_eq!(frame.len(), 4 + p.body.len());
        prop_assert_eq!(decode_packages(frame).unwrap(), vec![p]);
    }

    #[test]
    fn several_packages_per_frame_round_trip(ps in prop::collection::vec(package(), 0..8)) {
        let frame = encode_frame(&ps);
        prop_assert_eq!(decode_packages(frame).unwrap(), ps);
    }

    #[test]
    fn messages_round_trip_without_dictionary(msg in message()) {
        let encoded = encode_message(&msg, None).unwrap();
        prop_assert_eq!(decode_message(encoded, None).unwrap(), msg);
    }

    #[test]
    fn messages_round_trip_with_dictionary(
        msg in message(),
        extra in prop::collection::vec(route(), 0..5),
        route_in_dict in any::<bool>(),
    ) {
        // Put the message's own route into the dictionary half of the time,
        // so both compressed and plain routes are exercised.
        let mut handler_routes = vec!["chat.chatHandler.send".to_string()];
        if route_in_dict && msg.kind != MessageType::Response {
            handler_routes.push(msg.route.clone());
        }
        let dict = RouteDictionary::new(handler_routes, extra);
        let encoded = encode_message(&msg, Some(&dict)).unwrap();
        let compressed = encoded[0] & 0x01 != 0;
        prop_assert_eq!(compressed, msg.kind != MessageType::Response && dict.code(&msg.route).is_some());
        prop_assert_eq!(decode_message(encoded, Some(&dict)).unwrap(), msg);
    }

    #[test]
    fn messages_inside_packages_round_trip(msgs in prop::collection::vec(message(), 1..5)) {
        let packages: Vec<Package> = msgs
            .iter()
            .map(|m| Package { kind: PackageType::Data, body: encode_message(m, None).unwrap() })
            .collect();
        let decoded = decode_packages(encode_frame(&packages)).unwrap();
        let back: Vec<Message> = decoded
            .into_iter()
            .map(|p| decode_message(p.body, None).unwrap())
            .collect();
        prop_assert_eq!(back, msgs);
    }

    #[test]
    fn varints_round_trip(id in any::<u32>(), tail in prop::collection::vec(any::<u8>(), 0..4)) {
        let mut buf = BytesMut::new();
        put_varint(&mut buf, id);
        let len = buf.len();
        prop_assert!((1..=5).contains(&len));
        buf.extend_from_slice(&tail);
        prop_assert_eq!(get_varint(&buf), Ok((id, len)));
    }

    #[test]
    fn pomelo_hash_is_crc32_of_utf16_low_bytes(key in "\\PC{0,200}", n in 1usize..50) {
        // Reference: one byte per UTF-16 code unit, its low 8 bits (crc 0.2.0),
        // over keys long enough to cross the hasher's internal 64-byte chunks.
        let low: Vec<u8> = key.encode_utf16().map(|u| u as u8).collect();
        let crc = crc32fast::hash(&low) as i32;
        prop_assert_eq!(crc32_pomelo(&key), crc);
        let index = dispatch_index(&key, n).unwrap();
        prop_assert_eq!(index as u64, i64::from(crc).unsigned_abs() % n as u64);
        prop_assert!(index < n);
    }

    #[test]
    fn arbitrary_bytes_never_panic(data in prop::collection::vec(any::<u8>(), 0..64)) {
        let bytes = Bytes::from(data);
        let dict = RouteDictionary::new(["a.b.c", "chat.chatHandler.send"], ["onChat"]);
        let _ = decode_packages(bytes.clone());
        let _ = decode_message(bytes.clone(), None);
        let _ = decode_message(bytes.clone(), Some(&dict));
        let _ = get_varint(&bytes);
        let _ = parse_handshake(&bytes);
        let _ = HandshakeResponse::parse(&bytes);
        let _ = parse_kick(&bytes);
    }

    #[test]
    fn arbitrary_package_shaped_frames_never_panic(
        kind in any::<u8>(),
        len in prop_oneof![0u32..80, any::<u32>()],
        body in prop::collection::vec(any::<u8>(), 0..64),
    ) {
        // A plausible header followed by a body that may or may not match it.
        let mut frame = vec![kind];
        frame.extend_from_slice(&len.to_be_bytes()[1..]);
        frame.extend_from_slice(&body);
        let frame_len = frame.len();
        if let Ok(ps) = decode_packages(Bytes::from(frame)) {
            // Whatever decodes accounts for every byte of the frame.
            let used: usize = ps.iter().map(|p| 4 + p.body.len()).sum();
            prop_assert_eq!(used, frame_len);
            prop_assert!((1..=5).contains(&kind));
        }
    }

    #[test]
    fn json_handshake_and_kick_bodies_never_panic(
        text in "\\{(\"(sys|user|type|version|rsa|protoVersion|dictVersion|reason|code)\":(\\{\\}|\\[\\]|null|true|1|-1|\"x\"|1e400),?){0,6}\\}"
    ) {
        let _ = parse_handshake(text.as_bytes());
        let _ = HandshakeResponse::parse(text.as_bytes());
        let _ = parse_kick(text.as_bytes());
        if let Ok(r) = HandshakeResponse::parse(text.as_bytes()) {
            let _ = r.dictionary();
        }
    }

    #[test]
    fn truncated_frames_are_errors(ps in prop::collection::vec(package(), 1..5), cut in any::<prop::sample::Index>()) {
        let frame = encode_frame(&ps);
        // Cut strictly inside the frame: at least one package is incomplete.
        let at = cut.index(frame.len());
        let truncated = frame.slice(..at);
        let whole: Vec<usize> = ps
            .iter()
            .scan(0, |end, p| { *end += 4 + p.body.len(); Some(*end) })
            .collect();
        let result = decode_packages(truncated);
        if at == 0 || whole.contains(&at) {
            // A cut on a package boundary leaves whole packages only.
            let n = whole.iter().filter(|&&e| e <= at).count();
            prop_assert_eq!(result.unwrap(), ps[..n].to_vec());
        } else {
            prop_assert!(result.is_err());
        }
    }

    #[test]
    fn truncated_messages_never_panic(msg in message(), cut in any::<prop::sample::Index>()) {
        let dict = RouteDictionary::new([msg.route.clone()], Vec::<String>::new());
        for d in [None, Some(&dict)] {
            let encoded = encode_message(&msg, d).unwrap();
            let at = cut.index(encoded.len() + 1);
            // The body has no length prefix, so a cut inside it is a shorter
            // valid message; a cut in the header part must be an error.
            let header_len = encoded.len() - msg.body.len();
            match decode_message(encoded.slice(..at), d) {
                Ok(m) => {
                    prop_assert!(at >= header_len);
                    prop_assert_eq!(&m.body[..], &msg.body[..at - header_len]);
                }
                Err(_) => prop_assert!(at < header_len),
            }
        }
    }
}
