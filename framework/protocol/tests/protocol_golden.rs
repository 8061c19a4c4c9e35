//! Golden tests: every test vector of §11 of `docs/protocol.md`.
//!
//! The bytes live in `tests/fixtures/*.hex` (hex with `#` comments; `|` and
//! whitespace are ignored), copied from the spec, so a codec change that
//! breaks wire compatibility fails here. Each vector is checked both ways:
//! `decode(golden) == value` and `encode(value) == golden`.

mod common;

use bytes::{Bytes, BytesMut};
use serde_json::json;
use shaddock_protocol::handshake::{
    HandshakeReply, HandshakeRequest, HandshakeResponse, handshake_error, kick_body,
    parse_handshake, parse_kick,
};
use shaddock_protocol::hash::{crc32_pomelo, dispatch_index};
use shaddock_protocol::message::{get_varint, put_varint};
use shaddock_protocol::{
    DecodeError, HANDSHAKE_ACK, HEARTBEAT, Message, MessageType, Package, PackageType,
    RouteDictionary, decode_message, decode_packages, encode_message, encode_message_into,
    encode_package, encode_package_into,
};

/// The chatofpomelo dictionary (§7.2): three handler routes, no extras.
fn chat_dict() -> RouteDictionary {
    RouteDictionary::new(
        [
            "gate.gateHandler.queryEntry",
            "connector.entryHandler.enter",
            "chat.chatHandler.send",
        ],
        Vec::<String>::new(),
    )
}

/// The frame holds exactly one package of `kind`; returns its body.
fn single_package(frame: &Bytes, kind: PackageType) -> Bytes {
    let packages = decode_packages(frame.clone()).expect("golden frame decodes");
    assert_eq!(packages.len(), 1, "one package in the frame");
    assert_eq!(packages[0].kind, kind);
    packages[0].body.clone()
}

/// A DATA frame: decode(golden) == msg and encode(msg) == golden.
fn check_data(golden: &Bytes, msg: &Message, dict: Option<&RouteDictionary>) {
    let body = single_package(golden, PackageType::Data);
    assert_eq!(&decode_message(body.clone(), dict).expect("decodes"), msg);
    let encoded = encode_message(msg, dict).expect("encodes");
    assert_eq!(encoded, body, "message bytes");
    assert_eq!(
        encode_package(PackageType::Data, &encoded).unwrap(),
        *golden,
        "package bytes"
    );
}

#[test]
fn v11_01_heartbeat() {
    let golden = fixture!("11_01_heartbeat");
    assert_eq!(
        decode_packages(golden.clone()).unwrap(),
        vec![Package {
            kind: PackageType::Heartbeat,
            body: Bytes::new()
        }]
    );
    assert_eq!(encode_package(PackageType::Heartbeat, &[]).unwrap(), golden);
    assert_eq!(&HEARTBEAT[..], &golden[..]);
}

#[test]
fn v11_02_handshake_ack() {
    let golden = fixture!("11_02_handshake_ack");
    assert!(single_package(&golden, PackageType::HandshakeAck).is_empty());
    assert_eq!(
        encode_package(PackageType::HandshakeAck, &[]).unwrap(),
        golden
    );
    assert_eq!(&HANDSHAKE_ACK[..], &golden[..]);
}

#[test]
fn v11_03_client_handshake() {
    let golden = fixture!("11_03_client_handshake");
    let body = single_package(&golden, PackageType::Handshake);
    assert_eq!(body.len(), 75);
    let req = parse_handshake(&body).expect("browser handshake parses");
    assert_eq!(req.sys.client_type.as_deref(), Some("js-websocket"));
    assert_eq!(req.sys.version.as_deref(), Some("0.0.1"));
    assert_eq!(req.sys.rsa, Some(json!({})));
    assert_eq!(req.sys.proto_version, Some(json!(0)));
    assert_eq!(req.sys.dict_version, None);
    assert_eq!(req.user, None);
    // Encoding the parsed request gives the browser's bytes back (field order
    // of HandshakeSys = the browser's key order).
    let text = serde_json::to_vec::<HandshakeRequest>(&req).unwrap();
    assert_eq!(
        encode_package(PackageType::Handshake, &text).unwrap(),
        golden
    );
}

#[test]
fn v11_04_minimal_handshake_reply() {
    let golden = fixture!("11_04_handshake_reply_minimal");
    let body = single_package(&golden, PackageType::Handshake);
    let reply = HandshakeReply {
        heartbeat_secs: Some(3),
        ..Default::default()
    };
    assert_eq!(reply.to_json(), body.to_vec());
    let parsed = HandshakeResponse::parse(&body).unwrap();
    assert_eq!(parsed.code, 200);
    assert_eq!(parsed.sys.heartbeat, Some(3));
    assert!(parsed.dictionary().is_none());
    assert_eq!(
        encode_package(PackageType::Handshake, &reply.to_json()).unwrap(),
        golden
    );
}

#[test]
fn v11_05_handshake_rejection() {
    let golden = fixture!("11_05_handshake_rejection");
    let body = single_package(&golden, PackageType::Handshake);
    assert_eq!(handshake_error(501), body.to_vec());
    assert_eq!(HandshakeResponse::parse(&body).unwrap().code, 501);
    assert_eq!(
        encode_package(PackageType::Handshake, &handshake_error(501)).unwrap(),
        golden
    );
}

#[test]
fn v11_06_request_uncompressed() {
    let golden = fixture!("11_06_request_uncompressed");
    let msg = Message::request(1, "connector.entryHandler.enter", &b"{\"a\":1}"[..]);
    check_data(&golden, &msg, None);
    // A dictionary that does not know the route leaves it uncompressed.
    let other = RouteDictionary::new(["x.y.z"], Vec::<String>::new());
    check_data(&golden, &msg, Some(&other));
}

#[test]
fn v11_07_request_compressed() {
    let golden = fixture!("11_07_request_compressed");
    let dict = chat_dict();
    assert_eq!(dict.code("connector.entryHandler.enter"), Some(2));
    let msg = Message::request(1, "connector.entryHandler.enter", &b"{\"a\":1}"[..]);
    check_data(&golden, &msg, Some(&dict));
    // Without a dictionary the compressed route cannot be resolved (Pomelo
    // drops such a message without a reply).
    let body = single_package(&golden, PackageType::Data);
    assert_eq!(
        decode_message(body, None),
        Err(DecodeError::NoDictionary(2))
    );
}

#[test]
fn v11_08_response_id_300() {
    let golden = fixture!("11_08_response_id300");
    let msg = Message::response(300, &b"{\"code\":200}"[..]);
    check_data(&golden, &msg, None);
    // Responses never carry a route, dictionary or not.
    check_data(&golden, &msg, Some(&chat_dict()));
}

#[test]
fn v11_09_push_json() {
    let golden = fixture!("11_09_push_json");
    let msg = Message::push("onChat", &br#"{"msg":"hi","from":"bob","target":"*"}"#[..]);
    check_data(&golden, &msg, None);
    // onChat is not in the chat dictionary: still sent uncompressed.
    check_data(&golden, &msg, Some(&chat_dict()));
}

#[test]
fn v11_10_push_protobuf_body_is_opaque() {
    // Shaddock does not do protobuf; the message layer carries the bytes as is.
    let golden = fixture!("11_10_push_protobuf");
    let body: &'static [u8] = &[
        0x0A, 0x02, b'h', b'i', 0x12, 0x03, b'b', b'o', b'b', 0x1A, 0x01, b'*',
    ];
    check_data(&golden, &Message::push("onChat", body), None);
}

#[test]
fn v11_11_notify() {
    let golden = fixture!("11_11_notify");
    let msg = Message::notify("chat.chatHandler.send", &b"{}"[..]);
    check_data(&golden, &msg, None);
}

#[test]
fn v11_12_kick() {
    let golden = fixture!("11_12_kick");
    let body = single_package(&golden, PackageType::Kick);
    assert_eq!(parse_kick(&body), "kick");
    assert_eq!(kick_body("kick"), body.to_vec());
    assert_eq!(
        encode_package(PackageType::Kick, &kick_body("kick")).unwrap(),
        golden
    );
}

#[test]
fn v11_13_two_pushes_in_one_frame() {
    let golden = fixture!("11_13_batched_pushes");
    let expected = [
        Message::push("onAdd", &br#"{"route":"onAdd","user":"bob"}"#[..]),
        Message::push("onLeave", &br#"{"route":"onLeave","user":"amy"}"#[..]),
    ];
    let packages = decode_packages(golden.clone()).unwrap();
    assert_eq!(packages.len(), 2);
    for (package, msg) in packages.iter().zip(&expected) {
        assert_eq!(package.kind, PackageType::Data);
        assert_eq!(&decode_message(package.body.clone(), None).unwrap(), msg);
    }
    let mut frame = BytesMut::new();
    for msg in &expected {
        let mut body = BytesMut::new();
        encode_message_into(&mut body, msg, None).unwrap();
        encode_package_into(&mut frame, PackageType::Data, &body).unwrap();
    }
    assert_eq!(frame.freeze(), golden);
}

#[test]
fn v11_14_chatofpomelo_exchanges() {
    let dict = chat_dict();
    check_data(
        &fixture!("11_14a_gate_request"),
        &Message::request(1, "gate.gateHandler.queryEntry", &br#"{"uid":"bob"}"#[..]),
        None,
    );
    check_data(
        &fixture!("11_14b_gate_response"),
        &Message::response(1, &br#"{"code":200,"host":"127.0.0.1","port":3052}"#[..]),
        None,
    );
    check_data(
        &fixture!("11_14c_enter_response"),
        &Message::response(2, &br#"{"users":["amy","bob"]}"#[..]),
        None,
    );
    check_data(
        &fixture!("11_14d_duplicate_login"),
        &Message::response(2, &br#"{"code":500,"error":true}"#[..]),
        None,
    );
    check_data(
        &fixture!("11_14e_error_response"),
        &Message::response(2, &br#"{"code":500}"#[..]),
        None,
    );
    check_data(
        &fixture!("11_14f_chat_send"),
        &Message::request(
            3,
            "chat.chatHandler.send",
            &br#"{"rid":"room1","content":"hi","from":"bob","target":"*"}"#[..],
        ),
        Some(&dict),
    );
    check_data(
        &fixture!("11_14g_chat_send_response"),
        &Message::response(3, &b"{}"[..]),
        Some(&dict),
    );
}

#[test]
fn v11_15_chat_dictionary_and_connector_handshake_reply() {
    // Our server does not do protobuf, so the reply has neither `protos` nor
    // `useProto`; the dictionary part is byte for byte Pomelo's.
    let dict = chat_dict();
    assert_eq!(dict.len(), 3);
    assert_eq!(dict.code("chat.chatHandler.send"), Some(1));
    assert_eq!(dict.code("connector.entryHandler.enter"), Some(2));
    assert_eq!(dict.code("gate.gateHandler.queryEntry"), Some(3));
    assert_eq!(dict.route(3), Some("gate.gateHandler.queryEntry"));
    assert_eq!(dict.version(), "s2r1qfKDrbhWCkA6uf+PTA==");

    let golden = fixture!("11_15_connector_handshake_reply");
    let body = single_package(&golden, PackageType::Handshake);
    assert_eq!(body.len(), 410);
    let reply = HandshakeReply {
        heartbeat_secs: Some(3),
        dict: Some(&dict),
        client_dict_version: None,
        user: None,
        ..Default::default()
    };
    assert_eq!(
        String::from_utf8(reply.to_json()).unwrap(),
        String::from_utf8(body.to_vec()).unwrap()
    );
    assert_eq!(
        encode_package(PackageType::Handshake, &reply.to_json()).unwrap(),
        golden
    );

    // The client side reads the same dictionary back.
    let parsed = HandshakeResponse::parse(&body).unwrap();
    assert_eq!(parsed.code, 200);
    assert_eq!(parsed.sys.heartbeat, Some(3));
    assert_eq!(parsed.sys.use_dict, Some(true));
    assert_eq!(
        parsed.sys.dict_version.as_deref(),
        Some("s2r1qfKDrbhWCkA6uf+PTA==")
    );
    assert_eq!(parsed.dictionary(), Some(dict.clone()));

    // A client that already has this dictionary gets only `useDict`.
    let cached = HandshakeReply {
        heartbeat_secs: Some(3),
        dict: Some(&dict),
        client_dict_version: Some("s2r1qfKDrbhWCkA6uf+PTA=="),
        user: None,
        ..Default::default()
    };
    assert_eq!(
        cached.to_json(),
        br#"{"code":200,"sys":{"heartbeat":3,"useDict":true}}"#.to_vec()
    );

    // The gate (no heartbeat, no dictionary, no protobuf) replies `{"code":200,"sys":{}}`.
    let gate = fixture!("11_15_gate_handshake_reply");
    assert_eq!(
        encode_package(PackageType::Handshake, &HandshakeReply::default().to_json()).unwrap(),
        gate
    );
}

#[test]
fn v11_16_varints() {
    let table: [(u32, &[u8]); 9] = [
        (0, &[0x00]),
        (127, &[0x7F]),
        (128, &[0x80, 0x01]),
        (255, &[0xFF, 0x01]),
        (300, &[0xAC, 0x02]),
        (16383, &[0xFF, 0x7F]),
        (16384, &[0x80, 0x80, 0x01]),
        (2097152, &[0x80, 0x80, 0x80, 0x01]),
        (268435456, &[0x80, 0x80, 0x80, 0x80, 0x01]),
    ];
    for (id, bytes) in table {
        let mut buf = BytesMut::new();
        put_varint(&mut buf, id);
        assert_eq!(&buf[..], bytes, "encode {id}");
        assert_eq!(get_varint(bytes), Ok((id, bytes.len())), "decode {id}");
        // Trailing bytes are not part of the varint.
        let mut longer = bytes.to_vec();
        longer.extend_from_slice(b"{}");
        assert_eq!(get_varint(&longer), Ok((id, bytes.len())));
        // And inside a REQUEST message.
        let msg = Message::request(id, "a.b.c", &b"{}"[..]);
        let encoded = encode_message(&msg, None).unwrap();
        assert_eq!(&encoded[1..1 + bytes.len()], bytes);
        assert_eq!(decode_message(encoded, None).unwrap(), msg);
    }
    // §3.3 examples.
    let mut buf = BytesMut::new();
    put_varint(&mut buf, 1);
    assert_eq!(&buf[..], &[0x01]);
    // The largest id (u32::MAX) takes 5 bytes.
    let mut buf = BytesMut::new();
    put_varint(&mut buf, u32::MAX);
    assert_eq!(&buf[..], &[0xFF, 0xFF, 0xFF, 0xFF, 0x0F]);
    assert_eq!(get_varint(&buf), Ok((u32::MAX, 5)));
}

#[test]
fn v11_17_dispatch_hashes() {
    let table: [(&str, i32, usize); 7] = [
        ("hello", 907060870, 1),
        ("alice", 663665735, 2),
        ("bob", -171200192, 2),
        ("room1", -462210518, 2),
        ("lobby", -857451017, 2),
        ("中文", 305094291, 0),
        ("", 0, 0),
    ];
    for (key, crc, index) in table {
        assert_eq!(crc32_pomelo(key), crc, "crc32 of {key:?}");
        assert_eq!(dispatch_index(key, 3), Some(index), "index of {key:?}");
    }
    assert_eq!(crc32_pomelo("hello") as u32, 0x3610A686);
    assert_eq!(crc32_pomelo("bob") as u32, 0xF5CBB140);
    // "中文" hashes the low bytes of its UTF-16 units: 2D 87.
    assert_eq!(crc32_pomelo("中文") as u32, crc32fast::hash(&[0x2D, 0x87]));
    assert_eq!(dispatch_index("bob", 0), None);
    // Outside the BMP each surrogate counts: U+1F600 = D83D DE00 → bytes 3D 00.
    assert_eq!(
        crc32_pomelo("\u{1F600}") as u32,
        crc32fast::hash(&[0x3D, 0x00])
    );
}

#[test]
fn message_types_have_the_spec_flag_bytes() {
    // §3.2: flag bytes 00/01, 02/03, 04, 06/07.
    let dict = chat_dict();
    let cases = [
        (Message::request(1, "chat.chatHandler.send", &b""[..]), 0x01),
        (Message::request(1, "x.y.z", &b""[..]), 0x00),
        (Message::notify("chat.chatHandler.send", &b""[..]), 0x03),
        (Message::notify("x.y.z", &b""[..]), 0x02),
        (Message::response(1, &b""[..]), 0x04),
        (Message::push("chat.chatHandler.send", &b""[..]), 0x07),
        (Message::push("onChat", &b""[..]), 0x06),
    ];
    for (msg, flag) in cases {
        let encoded = encode_message(&msg, Some(&dict)).unwrap();
        assert_eq!(encoded[0], flag, "{:?}", msg.kind);
        assert_eq!(decode_message(encoded, Some(&dict)).unwrap(), msg);
    }
    // The gzip bit (0x10) is ignored on input.
    let decoded = decode_message(Bytes::from_static(&[0x14, 0x05, b'{', b'}']), None).unwrap();
    assert_eq!(decoded.kind, MessageType::Response);
    assert_eq!(decoded.id, 5);
}
