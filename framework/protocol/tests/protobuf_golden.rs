//! The protobuf codec against golden vectors produced by the npm
//! `pomelo-protobuf` package (0.4.0, Pomelo 2.2.7's).
//!
//! `tests/fixtures/protobuf/` holds the two schemas (Pomelo's
//! `serverProtos.json` / `clientProtos.json` format), `gen.js` and what it
//! recorded, `vectors.json`: the parsed schemas as the handshake prints
//! them, their version, and for each message the bytes pomelo-protobuf
//! writes and the JSON it decodes them to. Every vector is checked both
//! ways here. When node is installed, [`the_recorded_vectors_are_what_pomelo_protobuf_produces`]
//! also re-runs `gen.js --check` against the real package (installing the
//! pinned version with `npm ci` when missing), so the recording cannot go
//! stale; without node it says so and checks the recording only.

use std::path::{Path, PathBuf};
use std::process::Command;

use bytes::BytesMut;
use serde_json::{Value, json};
use shaddock_protocol::Protos;
use shaddock_protocol::handshake::{HandshakeReply, HandshakeResponse};
use shaddock_protocol::message::put_varint;
use shaddock_protocol::protobuf::{ProtobufError, Schema};

fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/protobuf")
}

fn read_json(name: &str) -> Value {
    let text = std::fs::read_to_string(dir().join(name)).unwrap();
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{name}: {e}"))
}

fn protos() -> Protos {
    Protos::from_sources(
        Some(&read_json("serverProtos.json")),
        Some(&read_json("clientProtos.json")),
    )
    .expect("the fixture schemas parse")
}

fn vectors() -> Value {
    read_json("vectors.json")
}

fn side<'a>(protos: &'a Protos, case: &Value) -> &'a Schema {
    match case["side"].as_str() {
        Some("server") => &protos.server,
        Some("client") => &protos.client,
        other => panic!("bad side {other:?}"),
    }
}

fn hex(text: &str) -> Vec<u8> {
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).unwrap())
        .collect()
}

fn to_hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[test]
fn the_parsed_schemas_and_their_version_print_as_pomelo_prints_them() {
    let protos = protos();
    let v = vectors();
    assert_eq!(
        serde_json::to_string(&protos.server.pomelo_json()).unwrap(),
        v["protos"]["server"].as_str().unwrap()
    );
    assert_eq!(
        serde_json::to_string(&protos.client.pomelo_json()).unwrap(),
        v["protos"]["client"].as_str().unwrap()
    );
    assert_eq!(protos.version(), v["protos"]["version"].as_str().unwrap());
}

#[test]
fn every_encode_vector_encodes_to_pomelo_bytes_and_decodes_back_to_pomelo_json() {
    let protos = protos();
    let v = vectors();
    let cases = v["encode"].as_array().unwrap();
    assert!(cases.len() >= 20, "the vectors cover every case");
    for case in cases {
        let name = case["name"].as_str().unwrap();
        let route = case["route"].as_str().unwrap();
        let schema = side(&protos, case);
        let bytes = schema
            .encode(route, &case["message"])
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(to_hex(&bytes), case["hex"].as_str().unwrap(), "{name}");
        check_decoded(schema, case, &bytes);
    }
}

/// `bytes` decode to the case's `decoded` JSON text — text, not values:
/// key order and number formatting count too.
fn check_decoded(schema: &Schema, case: &Value, bytes: &[u8]) {
    let name = case["name"].as_str().unwrap();
    let decoded = schema
        .decode(case["route"].as_str().unwrap(), bytes)
        .unwrap_or_else(|e| panic!("{name}: {e}"));
    assert_eq!(
        serde_json::to_string(&decoded).unwrap(),
        case["decoded"].as_str().unwrap(),
        "{name}"
    );
}

#[test]
fn every_decode_vector_decodes_to_pomelo_json() {
    let protos = protos();
    for case in vectors()["decode"].as_array().unwrap() {
        check_decoded(
            side(&protos, case),
            case,
            &hex(case["hex"].as_str().unwrap()),
        );
    }
}

/// pomelo-protobuf returns `null` for these (Pomelo then sends an empty
/// body): ours says which required field is missing, and encodes the empty
/// message to the same empty body.
#[test]
fn what_pomelo_protobuf_refuses_is_an_error_naming_the_field() {
    let protos = protos();
    let mut errors = Vec::new();
    for case in vectors()["null"].as_array().unwrap() {
        let route = case["route"].as_str().unwrap();
        match side(&protos, case).encode(route, &case["message"]) {
            Ok(bytes) => {
                assert_eq!(route, "test.empty", "{}", case["name"]);
                assert!(bytes.is_empty());
            }
            Err(e) => errors.push(e.to_string()),
        }
    }
    assert_eq!(
        errors,
        [
            "route `test.scalars`: count: required field is missing",
            "route `test.nested`: origin.y: required field is missing",
            "route `test.users`: users[1].name: required field is missing",
        ]
    );
}

#[test]
fn values_that_do_not_fit_the_schema_are_errors_that_say_why() {
    let s = protos().server;
    let err = |route: &str, v: Value| s.encode(route, &v).unwrap_err().to_string();
    assert_eq!(
        err("test.scalars", json!({"count": -1, "delta": 0})),
        "route `test.scalars`: count: expected a whole number in 0..=4294967295 (uInt32), got -1"
    );
    assert!(err("test.scalars", json!({"count": 4294967296u64, "delta": 0})).contains("count"));
    assert!(err("test.scalars", json!({"count": 1.5, "delta": 0})).contains("got 1.5"));
    assert!(err("test.scalars", json!({"count": 1, "delta": 2147483648u64})).contains("delta"));
    assert!(err("test.scalars", json!({"count": "1", "delta": 0})).contains("got the string"));
    assert!(err("test.scalars", json!({"count": 1, "delta": 0, "name": 5})).contains("name"));
    assert!(
        err(
            "test.scalars",
            json!({"count": 1, "delta": 0, "ratio": true})
        )
        .contains("ratio")
    );
    assert_eq!(
        err("test.repeated", json!({"ids": 3})),
        "route `test.repeated`: ids: expected an array, got 3"
    );
    assert_eq!(
        err("test.repeated", json!({"names": ["a", 1]})),
        "route `test.repeated`: names[1]: expected a string, got 1"
    );
    assert_eq!(
        err("test.nested", json!({"origin": [1, 2]})),
        "route `test.nested`: origin: expected an object (a message), got an array"
    );
    assert_eq!(
        err(
            "test.nested",
            json!({"origin": {"x": 0, "y": 0}, "path": {"steps": [{"dx": -4}]}})
        ),
        "route `test.nested`: path.steps[0].dx: expected a whole number in 0..=4294967295 (uInt32), got -4"
    );
    assert!(err("test.scalars", json!([1, 2])).contains("expected a JSON object"));
    assert_eq!(
        s.encode("no.such.route", &json!({})),
        Err(ProtobufError::NoSchema("no.such.route".into()))
    );
    // JavaScript has one number type: 3.0 is 3; null is absent.
    assert_eq!(
        s.encode(
            "test.scalars",
            &json!({"count": 3.0, "delta": 0, "name": null})
        )
        .unwrap(),
        s.encode("test.scalars", &json!({"count": 3, "delta": 0}))
            .unwrap()
    );
    assert_eq!(
        s.encode("test.scalars", &json!({"count": null, "delta": 0}))
            .unwrap_err()
            .to_string(),
        "route `test.scalars`: count: required field is missing"
    );
}

#[test]
fn bytes_that_do_not_fit_the_schema_are_errors_not_garbage() {
    let s = protos().server;
    let err = |route: &str, bytes: &[u8]| s.decode(route, bytes).unwrap_err().to_string();
    assert!(
        err("test.scalars", &[0x08]).contains("truncated"),
        "varint cut"
    );
    assert!(err("test.scalars", &[0x38, 0x01]).contains("unknown tag 7"));
    assert!(
        err("test.scalars", &[0x32, 0x05, b'a']).contains("name"),
        "string cut"
    );
    assert!(
        err("test.scalars", &[0x25, 0, 0]).contains("ratio"),
        "float cut"
    );
    assert!(err("test.scalars", &[0x29, 0, 0, 0, 0]).contains("score"));
    assert!(
        err("test.scalars", &[0x08, 0x80, 0x80, 0x80, 0x80, 0x10]).contains("32 bits"),
        "uInt32 over 32 bits"
    );
    assert!(
        err(
            "test.scalars",
            &[
                0x08, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff
            ]
        )
        .contains("varint")
    );
    // A nested message that claims more bytes than its parent holds.
    assert!(err("test.nested", &[0x0a, 0x09, 0x08, 0x02]).contains("runs past the end"));
    // A field inside a nested message may not straddle its end.
    assert!(err("test.nested", &[0x0a, 0x02, 0x08, 0x80, 0x01]).contains("origin"));
    // A packed run announcing more elements than there are bytes.
    assert!(err("test.repeated", &[0x08, 0xff, 0xff, 0x03, 0x01]).contains("ids[1]"));
    assert_eq!(s.decode("test.empty", &[]).unwrap(), json!({}));
    assert!(matches!(
        s.decode("nope", &[]),
        Err(ProtobufError::NoSchema(_))
    ));
}

#[test]
fn a_recursive_message_type_is_bounded_in_depth() {
    let schema = Schema::parse(&json!({
        "message Node": {"optional Node next": 1, "optional uInt32 v": 2},
        "list": {"optional Node head": 1}
    }))
    .unwrap();
    let mut value = json!({"v": 1});
    for _ in 0..10 {
        value = json!({"next": value});
    }
    let bytes = schema.encode("list", &json!({"head": value})).unwrap();
    assert_eq!(
        schema.decode("list", &bytes).unwrap()["head"]["next"]["next"]["next"]["next"]["next"]["next"]
            ["next"]["next"]["next"]["next"]["v"],
        json!(1)
    );
    // 200 levels of `0a <len>` nesting: refused, not a stack overflow.
    let mut deep = BytesMut::from(&[0x08, 0x01][..]);
    for _ in 0..200 {
        let mut outer = BytesMut::from(&[0x0a][..]);
        put_varint(&mut outer, deep.len() as u32);
        outer.extend_from_slice(&deep);
        deep = outer;
    }
    let err = schema.decode("list", &deep).unwrap_err().to_string();
    assert!(err.contains("nested deeper than"), "{err}");
}

#[test]
fn schema_mistakes_are_load_errors_that_name_the_key() {
    let err = |v: Value| Schema::parse(&v).unwrap_err().to_string();
    assert!(err(json!({"r": {"required bool on": 1}})).contains("unknown type `bool`"));
    assert!(err(json!({"r": {"required uInt64 n": 1}})).contains("r.required uInt64 n"));
    assert!(
        err(json!({"r": {"required string a": 1, "optional string b": 1}}))
            .contains("tag 1 is already used by `a`")
    );
    assert!(
        err(json!({"r": {"required string a": 1, "optional uInt32 a": 2}}))
            .contains("declared twice")
    );
    assert!(err(json!({"r": {"needed string a": 1}})).contains("`needed`"));
    assert!(err(json!({"r": {"required  string a": 1}})).contains("single spaces"));
    assert!(err(json!({"r": {"required string a": 0}})).contains("tag must be"));
    assert!(err(json!({"r": {"required string a": "1"}})).contains("tag must be"));
    assert!(err(json!({"r": {"required string a": 268435456}})).contains("tag must be"));
    assert!(err(json!({"r": 3})).contains("expected an object"));
    assert!(err(json!([])).contains("expected a JSON object"));
    // A type is looked up in its own message, then globally — not in the
    // enclosing message (pomelo-protobuf's rule).
    assert!(
        err(json!({"r": {
            "message Outer": {"required uInt32 n": 1},
            "message Mid": {"required Outer o": 1},
            "optional Mid m": 1
        }}))
        .contains("unknown type `Outer`")
    );
}

#[test]
fn a_client_rebuilds_the_same_protos_from_the_handshake() {
    let protos = protos();
    let reply = HandshakeReply {
        protos: Some(&protos),
        ..Default::default()
    };
    let parsed = HandshakeResponse::parse(&reply.to_json()).unwrap();
    assert_eq!(parsed.sys.use_proto, Some(true));
    let rebuilt = Protos::from_handshake(parsed.sys.protos.as_ref().unwrap()).unwrap();
    assert_eq!(rebuilt.version(), protos.version());
    assert_eq!(rebuilt.announcement(), protos.announcement());
    for case in vectors()["encode"].as_array().unwrap() {
        let route = case["route"].as_str().unwrap();
        let ours = side(&protos, case).encode(route, &case["message"]).unwrap();
        let theirs = side(&rebuilt, case)
            .encode(route, &case["message"])
            .unwrap();
        assert_eq!(ours, theirs, "{}", case["name"]);
    }
}

/// `sys.protos` is sent when the client's `protoVersion` is missing, 0, a
/// number or another string; `useProto` always (§4.2, Pomelo's handshake).
#[test]
fn the_handshake_carries_protos_only_when_the_client_version_differs() {
    let protos = protos();
    let version = Value::from(protos.version());
    for (client, sent) in [
        (None, true),
        (Some(json!(0)), true),
        (Some(json!("")), true),
        (Some(json!("old")), true),
        (Some(json!(1)), true),
        (Some(version.clone()), false),
    ] {
        let reply = HandshakeReply {
            heartbeat_secs: Some(3),
            protos: Some(&protos),
            client_proto_version: client.as_ref(),
            ..Default::default()
        };
        let body: Value = serde_json::from_slice(&reply.to_json()).unwrap();
        assert_eq!(body["sys"]["useProto"], json!(true));
        assert_eq!(
            body["sys"].get("protos").is_some(),
            sent,
            "client sent {client:?}"
        );
        if sent {
            assert_eq!(&body["sys"]["protos"], protos.announcement());
            assert_eq!(
                serde_json::to_string(&body["sys"]["protos"]).unwrap(),
                format!(
                    r#"{{"server":{},"client":{},"version":"{}"}}"#,
                    vectors()["protos"]["server"].as_str().unwrap(),
                    vectors()["protos"]["client"].as_str().unwrap(),
                    protos.version()
                )
            );
        }
    }
}

/// §11.15: chatofpomelo-websocket's connector reply on a first connection
/// (heartbeat, dictionary and the `onChat` protos), all 729 bytes.
#[test]
fn v11_15_the_chatofpomelo_websocket_reply_with_protos() {
    let dict = shaddock_protocol::RouteDictionary::new(
        [
            "gate.gateHandler.queryEntry",
            "connector.entryHandler.enter",
            "chat.chatHandler.send",
        ],
        Vec::<String>::new(),
    );
    let server = json!({"onChat": {
        "required string msg": 1, "required string from": 2, "required string target": 3
    }});
    let protos = Protos::from_sources(Some(&server), None).unwrap();
    let reply = HandshakeReply {
        heartbeat_secs: Some(3),
        dict: Some(&dict),
        protos: Some(&protos),
        ..Default::default()
    };
    let text = String::from_utf8(reply.to_json()).unwrap();
    assert_eq!(
        text,
        concat!(
            r#"{"code":200,"sys":{"heartbeat":3,"dict":{"chat.chatHandler.send":1,"connector.entryHandler.enter":2,"gate.gateHandler.queryEntry":3},"#,
            r#""routeToCode":{"chat.chatHandler.send":1,"connector.entryHandler.enter":2,"gate.gateHandler.queryEntry":3},"#,
            r#""codeToRoute":{"1":"chat.chatHandler.send","2":"connector.entryHandler.enter","3":"gate.gateHandler.queryEntry"},"#,
            r#""dictVersion":"s2r1qfKDrbhWCkA6uf+PTA==","useDict":true,"protos":{"server":{"onChat":{"msg":{"option":"required","type":"string","tag":1},"#,
            r#""from":{"option":"required","type":"string","tag":2},"target":{"option":"required","type":"string","tag":3},"__messages":{},"#,
            r#""__tags":{"1":"msg","2":"from","3":"target"}}},"client":{},"version":"2zWPnSlRsRxjqgcU215Uxg=="},"useProto":true}}"#
        )
    );
    assert_eq!(text.len(), 729);
}

/// Re-runs the generator against the real package: the recorded vectors
/// must be exactly what pomelo-protobuf produces.
#[test]
fn the_recorded_vectors_are_what_pomelo_protobuf_produces() {
    if Command::new("node").arg("--version").output().is_err() {
        eprintln!(
            "SKIPPED the pomelo-protobuf cross-check: node is not installed (the recorded \
             vectors were checked above)"
        );
        return;
    }
    let dir = dir();
    if !dir.join("node_modules/pomelo-protobuf").is_dir() {
        let installed = Command::new("npm")
            .args(["ci", "--no-audit", "--no-fund"])
            .current_dir(&dir)
            .output();
        match installed {
            Ok(out) if out.status.success() => {}
            Ok(out) => {
                eprintln!(
                    "SKIPPED the pomelo-protobuf cross-check: `npm ci` in {} failed: {}",
                    dir.display(),
                    String::from_utf8_lossy(&out.stderr)
                );
                return;
            }
            Err(e) => {
                eprintln!("SKIPPED the pomelo-protobuf cross-check: npm not runnable: {e}");
                return;
            }
        }
    }
    let out = Command::new("node")
        .args(["gen.js", "--check"])
        .current_dir(&dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "gen.js --check failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
