//! Protobuf bodies (§5.3) against the real chat app: the app's config has
//! `serverProtos.json` / `clientProtos.json` for the chat's routes
//! (`tests/fixtures/protobuf/`), and `connector.json` keeps
//! `connector-server-2` on JSON (`"use-protobuf": false`, Pomelo's
//! `useProtobuf`). A client on connector 1 speaks protobuf, a client on
//! connector 2 JSON, and they chat in one room; the handshake carries the
//! protos only to a client whose cached version differs; a body that does
//! not decode is dropped and logged, and the connection goes on.

mod support;

use std::time::Duration;

use serde_json::{Value, json};
use shaddock_client::{Client, ClientError, ClientOptions};
use shared::{
    EnterRequest, EnterResponse, PUSH_ADD, PUSH_CHAT, PUSH_LEAVE, QueryEntryRequest,
    QueryEntryResponse, ROUTE_ENTER, ROUTE_QUERY_ENTRY, ROUTE_SEND, SendRequest, TARGET_ALL,
};
use support::Topo;
use support::chat::{User, WAIT, name_on_connector, options};

const SERVER_PROTOS: &str = include_str!("fixtures/protobuf/serverProtos.json");
const CLIENT_PROTOS: &str = include_str!("fixtures/protobuf/clientProtos.json");
const CONNECTOR_JSON: &str = r#"{"development": {"connector-server-2": {"use-protobuf": false}}}"#;

async fn start() -> support::ProcCluster {
    let mut last = String::new();
    for _ in 0..3 {
        match support::ProcCluster::try_start_with(
            support::bin().as_ref(),
            Topo::new(2, 1).servers(),
            &[],
            &[
                ("serverProtos.json", SERVER_PROTOS),
                ("clientProtos.json", CLIENT_PROTOS),
                ("connector.json", CONNECTOR_JSON),
            ],
        )
        .await
        {
            Ok(c) => return c,
            Err(e) if e.contains("cannot listen") || e.contains("in use") => last = e,
            Err(e) => panic!("cluster did not start: {e}"),
        }
    }
    panic!("cluster did not start (ports kept colliding): {last}");
}

/// Gate, then connector, with one set of options (and so one protos
/// cache), as a Pomelo client does.
async fn login(cluster: &support::ProcCluster, opts: &ClientOptions, name: &str) -> User {
    let gate_port = cluster.of_type("gate")[0].client_port.unwrap();
    let gate = Client::connect(&format!("tcp://127.0.0.1:{gate_port}"), opts.clone())
        .await
        .expect("gate");
    let entry: QueryEntryResponse = gate
        .request(ROUTE_QUERY_ENTRY, &QueryEntryRequest { uid: name.into() })
        .await
        .expect("queryEntry");
    gate.close().await;
    let port = entry.port.expect("a connector");
    let client = Client::connect(&format!("tcp://127.0.0.1:{port}"), opts.clone())
        .await
        .expect("connector");
    let resp: EnterResponse = client
        .request(
            ROUTE_ENTER,
            &EnterRequest {
                username: name.into(),
                rid: "room1".into(),
            },
        )
        .await
        .expect("enter answered");
    assert!(
        matches!(&resp, EnterResponse::Users { users } if users.contains(&name.to_string())),
        "{name}: {resp:?}"
    );
    User {
        name: name.into(),
        rid: "room1".into(),
        client,
        port,
    }
}

async fn both_hear(users: [&User; 2], from: &str, msg: &str) {
    for u in users {
        let body: Value = u.expect_push(PUSH_CHAT).await;
        assert_eq!(
            body,
            json!({"msg": msg, "from": from, "target": TARGET_ALL}),
            "{}",
            u.name
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_protobuf_client_chats_with_a_json_client() {
    let cluster = start().await;
    let (pb_name, json_name) = (name_on_connector("pb", 0, 2), name_on_connector("js", 1, 2));
    let pb_opts = options();
    let pb = login(&cluster, &pb_opts, &pb_name).await;
    // The gate sent the protos; the connector, asked with their version,
    // left them out and said it uses them: the client took the cached ones.
    let cached = pb_opts.protos.get().expect("protos cached from the gate");
    assert_eq!(pb.client.handshake().sys.use_proto, Some(true));
    assert!(pb.client.handshake().sys.protos.is_none());
    assert_eq!(
        pb.client.protos().map(|p| p.version()),
        Some(cached.version())
    );

    let json_opts = options();
    let js = login(&cluster, &json_opts, &json_name).await;
    assert_ne!(pb.port, js.port);
    assert!(js.client.protos().is_none(), "connector 2 is on JSON");
    assert!(js.client.handshake().sys.use_proto.is_none());

    assert_eq!(pb.expect_push(PUSH_ADD).await["user"], json!(json_name));
    assert_eq!(pb.send("hello in protobuf", TARGET_ALL).await, json!({}));
    both_hear([&pb, &js], &pb_name, "hello in protobuf").await;
    assert_eq!(js.send("hello in JSON", TARGET_ALL).await, json!({}));
    both_hear([&pb, &js], &json_name, "hello in JSON").await;

    // On the wire it is protobuf: a body encoded by hand with the client
    // schema is understood, and the response is the server schema's
    // encoding of `{}` — no bytes at all (JSON would be `{}`).
    let req = serde_json::to_value(SendRequest {
        rid: "room1".into(),
        content: "by hand".into(),
        from: pb_name.clone(),
        target: TARGET_ALL.into(),
    })
    .unwrap();
    let wire = cached.client.encode(ROUTE_SEND, &req).unwrap();
    assert!(!wire.starts_with(b"{"));
    let raw = pb.client.request_raw(ROUTE_SEND, wire).await.unwrap();
    assert!(raw.is_empty(), "protobuf `{{}}` is empty, got {raw:?}");
    both_hear([&pb, &js], &pb_name, "by hand").await;
    // The JSON client's bodies are JSON text on the wire, both ways (the
    // sender is the session's user, whatever `from` says).
    let raw = js
        .client
        .request_raw(ROUTE_SEND, serde_json::to_vec(&req).unwrap())
        .await;
    assert_eq!(raw.unwrap(), "{}".as_bytes());
    both_hear([&pb, &js], &json_name, "by hand").await;

    // A protobuf body that does not decode: no answer, a log line that
    // says why, and the connection carries on.
    let bad = pb
        .client
        .request_raw_timeout(
            ROUTE_SEND,
            vec![0x0a, 0x7f, 0x61],
            Duration::from_millis(800),
        )
        .await;
    assert!(matches!(bad, Err(ClientError::Timeout { .. })), "{bad:?}");
    assert!(
        cluster
            .wait_log_line(
                "connector-server-1",
                &["undecodable protobuf body dropped", "chat.chatHandler.send"],
                WAIT
            )
            .await,
        "the connector logs the bad body: {}",
        cluster.log("connector-server-1")
    );
    assert!(pb.client.is_open());
    assert_eq!(pb.send("still here", TARGET_ALL).await, json!({}));
    both_hear([&pb, &js], &pb_name, "still here").await;
    pb.expect_silence().await;
    js.expect_silence().await;

    // The protobuf user leaves: the JSON user hears it as from anyone.
    pb.client.close().await;
    assert_eq!(js.expect_push(PUSH_LEAVE).await["user"], json!(pb_name));
}

/// `sys.protos` goes to a client without them or with another version,
/// never to one that has this version (Pomelo's rule); `useProto` always.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_handshake_sends_the_protos_only_when_the_client_version_differs() {
    let cluster = start().await;
    let port = cluster.server("connector-server-1").client_port.unwrap();
    let url = format!("ws://127.0.0.1:{port}");
    // One protos cache for every connection below, as one Pomelo client.
    let base = options();
    let with_version = |v: Value| {
        let mut o = base.clone();
        o.handshake_sys.insert("protoVersion".into(), v);
        o
    };
    let first = Client::connect(&url, base.clone()).await.unwrap();
    let sys = &first.handshake().sys;
    assert_eq!(sys.use_proto, Some(true));
    let announced = sys.protos.clone().expect("protos for a first connection");
    let version = announced["version"].as_str().unwrap().to_owned();
    assert_eq!(
        announced["server"]["onChat"]["__tags"],
        json!({"1": "msg", "2": "from", "3": "target"})
    );
    for (sent, expect_protos) in [
        (json!("an old version"), true),
        (json!(null), true),
        (json!(version.clone()), false),
    ] {
        let c = Client::connect(&url, with_version(sent.clone()))
            .await
            .unwrap();
        let sys = &c.handshake().sys;
        assert_eq!(sys.use_proto, Some(true), "{sent}");
        assert_eq!(sys.protos.is_some(), expect_protos, "sent {sent}");
        if let Some(p) = &sys.protos {
            assert_eq!(p, &announced);
        }
    }
    // The JSON frontend says nothing about protos.
    let port2 = cluster.server("connector-server-2").client_port.unwrap();
    let json_client = Client::connect(&format!("ws://127.0.0.1:{port2}"), with_version(json!(0)))
        .await
        .unwrap();
    assert!(json_client.handshake().sys.protos.is_none());
    assert!(json_client.handshake().sys.use_proto.is_none());
}

/// The proto files and the shared Rust types (one source for the server,
/// the Rust client and the generated TypeScript) must not drift: every
/// route's body, in each shape the server or a client sends, survives an
/// encode and a decode with the proto files unchanged — but for the two
/// fields pomelo-protobuf cannot carry, named here on purpose.
#[test]
fn the_proto_files_carry_every_field_of_the_shared_types() {
    use shaddock::protocol::Protos;
    use shared::{OnChat, SendResponse, UserEvent};

    let server: Value = serde_json::from_str(SERVER_PROTOS).unwrap();
    let client: Value = serde_json::from_str(CLIENT_PROTOS).unwrap();
    let protos = Protos::from_sources(Some(&server), Some(&client)).unwrap();
    fn json(v: impl serde::Serialize) -> Value {
        serde_json::to_value(v).unwrap()
    }

    // (route, body, sent by the server?, fields the protos leave out)
    let cases: Vec<(&str, Value, bool, &[&str])> = vec![
        (
            ROUTE_ENTER,
            json(EnterRequest {
                username: "amy".into(),
                rid: "lobby".into(),
            }),
            false,
            &[],
        ),
        (
            ROUTE_SEND,
            json(SendRequest {
                rid: "lobby".into(),
                content: "hi".into(),
                from: "amy".into(),
                target: TARGET_ALL.into(),
            }),
            false,
            &[],
        ),
        (
            ROUTE_ENTER,
            json(EnterResponse::Users {
                users: vec!["amy".into(), "bob".into()],
            }),
            true,
            &[],
        ),
        (
            ROUTE_ENTER,
            json(EnterResponse::invalid("bad name")),
            true,
            &[],
        ),
        // `error: true` is chatofpomelo's; pomelo-protobuf has no bool.
        (
            ROUTE_ENTER,
            json(EnterResponse::duplicate()),
            true,
            &["error"],
        ),
        (ROUTE_SEND, json(SendResponse::Ok {}), true, &[]),
        (
            ROUTE_SEND,
            json(SendResponse::Error {
                code: 500,
                error: true,
            }),
            true,
            &["error"],
        ),
        (
            PUSH_CHAT,
            json(OnChat {
                msg: "hi".into(),
                from: "amy".into(),
                target: TARGET_ALL.into(),
            }),
            true,
            &[],
        ),
        // `route` in onAdd/onLeave is an artefact of Pomelo's legacy
        // `pushMessage(msg)` that only JSON clients see.
        (PUSH_ADD, json(UserEvent::added("bob")), true, &["route"]),
        (PUSH_LEAVE, json(UserEvent::left("bob")), true, &["route"]),
    ];
    for (route, body, from_server, left_out) in cases {
        let bytes = bytes::Bytes::from(body.to_string());
        let back = if from_server {
            let wire = protos
                .server_body_from_json(route, bytes)
                .unwrap_or_else(|e| panic!("{route} {body}: {e}"));
            protos.server_body_to_json(route, wire).unwrap()
        } else {
            let wire = protos
                .client_body_from_json(route, bytes)
                .unwrap_or_else(|e| panic!("{route} {body}: {e}"));
            protos.client_body_to_json(route, wire).unwrap()
        };
        let back: Value = serde_json::from_slice(&back).unwrap();
        let mut want = body.clone();
        for field in left_out {
            assert!(
                want.as_object_mut().unwrap().remove(*field).is_some(),
                "{route}: `{field}` is not in {body} any more: drop it from this list"
            );
        }
        assert_eq!(
            back, want,
            "{route}: the proto files drop or change a field of {body}"
        );
    }
}
