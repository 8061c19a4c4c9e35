//! Route dictionary (§5.2): Pomelo's numbering, extras, versions, and the
//! client-side rebuild from a server's handshake.

use bytes::Bytes;
use proptest::prelude::*;
use serde_json::json;
use shaddock_protocol::handshake::HandshakeResponse;
use shaddock_protocol::{Message, RouteDictionary, decode_message, encode_message};

#[test]
fn handler_routes_sort_like_javascript_and_extras_follow_in_order() {
    // JavaScript's default sort compares UTF-16 code units: U+1F600 (D83D DE00)
    // sorts before U+FF61, the reverse of Rust's `str` (code point) order.
    let dict = RouteDictionary::new(
        ["b.h.\u{FF61}", "b.h.\u{1F600}", "a.h.z", "B.h.a"],
        ["onChat", "a.h.z", "onAdd"],
    );
    assert_eq!(dict.route(1), Some("B.h.a"));
    assert_eq!(dict.route(2), Some("a.h.z"));
    assert_eq!(dict.route(3), Some("b.h.\u{1F600}"));
    assert_eq!(dict.route(4), Some("b.h.\u{FF61}"));
    // Extras keep file order; a route already coded is not coded twice.
    assert_eq!(dict.code("onChat"), Some(5));
    assert_eq!(dict.code("onAdd"), Some(6));
    assert_eq!(dict.len(), 6);
    assert_eq!(dict.route(0), None);
    assert_eq!(dict.route(7), None);
    assert_eq!(
        dict.code_to_route()["5"],
        json!("onChat"),
        "codeToRoute keys are decimal strings"
    );
}

#[test]
fn empty_dictionary() {
    let dict = RouteDictionary::new(Vec::<String>::new(), Vec::<String>::new());
    assert!(dict.is_empty());
    assert_eq!(dict.route_to_code(), json!({}));
    // base64(md5("{}")), as Pomelo computes it for an empty dict.
    assert_eq!(dict.version(), "mZFLkyvTelC5g8XnyQrpOw==");
}

#[test]
fn client_keeps_the_servers_codes_even_with_gaps() {
    // A Pomelo server whose dictionary.json repeats a handler route gives
    // that route a new code and leaves a gap; the client must use the
    // server's codes, not renumber them.
    let body = br#"{"code":200,"sys":{"routeToCode":{"a.h.m":3,"b.h.m":2},"useDict":true}}"#;
    let dict = HandshakeResponse::parse(body)
        .unwrap()
        .dictionary()
        .unwrap();
    assert_eq!(dict.code("a.h.m"), Some(3));
    assert_eq!(dict.code("b.h.m"), Some(2));
    assert_eq!(dict.route(1), None);
    assert_eq!(dict.route(3), Some("a.h.m"));
    assert_eq!(dict.len(), 2);
    let encoded = encode_message(&Message::request(1, "a.h.m", &b"{}"[..]), Some(&dict)).unwrap();
    assert_eq!(&encoded[..4], &[0x01, 0x01, 0x00, 0x03]);

    // Non-numeric or out-of-range codes are ignored; the older `dict` field
    // is used when `routeToCode` is absent.
    let body = br#"{"code":200,"sys":{"dict":{"x.y.z":1,"bad":"2","big":70000,"zero":0}}}"#;
    let dict = HandshakeResponse::parse(body)
        .unwrap()
        .dictionary()
        .unwrap();
    assert_eq!(dict.len(), 1);
    assert_eq!(dict.code("x.y.z"), Some(1));
}

#[test]
fn from_codes_last_pairing_wins() {
    let dict = RouteDictionary::from_codes([("a", 1u16), ("b", 1), ("c", 2), ("c", 4)]);
    assert_eq!(dict.code("a"), None, "code 1 was reassigned to b");
    assert_eq!(dict.route(1), Some("b"));
    assert_eq!(dict.route(2), None, "c moved to 4");
    assert_eq!(dict.code("c"), Some(4));
    assert_eq!(dict.len(), 2);
}

proptest! {
    #[test]
    fn from_codes_of_a_dense_dictionary_is_the_same_dictionary(
        handlers in prop::collection::vec("[a-z]{1,6}\\.[a-z]{1,6}\\.[a-z]{1,6}", 0..20),
        extras in prop::collection::vec("on[A-Z][a-z]{0,8}", 0..5),
    ) {
        let dict = RouteDictionary::new(handlers, extras);
        let pairs: Vec<(String, u16)> = dict
            .route_to_code()
            .as_object()
            .unwrap()
            .iter()
            .map(|(r, c)| (r.clone(), c.as_u64().unwrap() as u16))
            .collect();
        let rebuilt = RouteDictionary::from_codes(pairs);
        prop_assert_eq!(rebuilt.version(), dict.version());
        prop_assert_eq!(&rebuilt, &dict);
        // Every route round-trips compressed through either copy.
        for (route, code) in dict.route_to_code().as_object().unwrap() {
            let msg = Message::push(route.clone(), Bytes::from_static(b"{}"));
            let encoded = encode_message(&msg, Some(&dict)).unwrap();
            prop_assert_eq!(u64::from(u16::from_be_bytes([encoded[1], encoded[2]])), code.as_u64().unwrap());
            prop_assert_eq!(decode_message(encoded, Some(&rebuilt)).unwrap(), msg);
        }
    }
}
