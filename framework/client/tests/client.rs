//! The Rust client against a scripted peer: a real WebSocket server on
//! loopback (raw tokio-tungstenite) that sends exact bytes, so the client's
//! side of §4 and §5 is checked independently of our own server.

use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use shaddock_client::{Client, ClientError, ClientOptions, CloseReason};
use shaddock_protocol::{HANDSHAKE_ACK, HEARTBEAT, PackageType, decode_packages, encode_package};
use tokio::net::{TcpListener, TcpStream};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message as Ws;

type Peer = WebSocketStream<TcpStream>;

/// Accepts one WebSocket connection, reads the client's HANDSHAKE and
/// answers with `reply` (JSON text).
async fn scripted(reply: &'static str) -> (String, tokio::task::JoinHandle<(Peer, Value)>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("ws://{}/", listener.local_addr().unwrap());
    let task = tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.unwrap();
        let mut ws = tokio_tungstenite::accept_async(tcp).await.unwrap();
        let frame = next_binary(&mut ws).await;
        let packages = decode_packages(frame).unwrap();
        assert_eq!(packages[0].kind, PackageType::Handshake);
        let handshake: Value = serde_json::from_slice(&packages[0].body).unwrap();
        let reply = encode_package(PackageType::Handshake, reply.as_bytes()).unwrap();
        ws.send(Ws::Binary(reply)).await.unwrap();
        (ws, handshake)
    });
    (url, task)
}

async fn next_binary(ws: &mut Peer) -> Bytes {
    loop {
        match tokio::time::timeout(Duration::from_secs(5), ws.next()).await {
            Ok(Some(Ok(Ws::Binary(b)))) => return b,
            Ok(Some(Ok(Ws::Text(t)))) => panic!("client sent a text frame: {t}"),
            Ok(Some(Ok(_))) => continue,
            other => panic!("expected a binary frame, got {other:?}"),
        }
    }
}

#[tokio::test]
async fn handshake_ack_dictionary_batched_pushes_and_requests() {
    let (url, peer) = scripted(
        r#"{"code":200,"sys":{"heartbeat":30,"dict":{"chat.chatHandler.send":1,"onAdd":5},"routeToCode":{"chat.chatHandler.send":1,"onAdd":5},"codeToRoute":{"1":"chat.chatHandler.send","5":"onAdd"},"dictVersion":"x","useDict":true}}"#,
    )
    .await;
    let options = ClientOptions {
        handshake_user: Some(json!({"token": "t"})),
        ..ClientOptions::default()
    };
    let client = Client::connect(&url, options).await.unwrap();
    let (mut ws, handshake) = peer.await.unwrap();
    assert_eq!(handshake["user"], json!({"token": "t"}));
    assert!(handshake["sys"]["type"].is_string());
    assert_eq!(&next_binary(&mut ws).await[..], &HANDSHAKE_ACK);
    // Dictionary kept with the server's codes (gaps included).
    assert_eq!(client.dictionary().unwrap().code("onAdd"), Some(5));

    // A request on a dictionary route goes out compressed (§11.7 layout).
    let req = tokio::spawn(async move {
        let r: Value = client
            .request("chat.chatHandler.send", &json!({"a": 1}))
            .await
            .unwrap();
        (client, r)
    });
    let frame = next_binary(&mut ws).await;
    assert_eq!(&frame[..], b"\x04\x00\x00\x0B\x01\x01\x00\x01{\"a\":1}");
    // Two pushes in one frame (compressed onAdd, plain onLeave), then the
    // response, all batched the way Pomelo's buffer scheduler does.
    let mut batch = Vec::new();
    batch.extend_from_slice(b"\x04\x00\x00\x0C\x07\x00\x05{\"u\":\"b\"}");
    batch.extend_from_slice(b"\x04\x00\x00\x10\x06\x07onLeave{\"u\":1}");
    batch.extend_from_slice(b"\x04\x00\x00\x04\x04\x01{}");
    ws.send(Ws::Binary(Bytes::from(batch))).await.unwrap();
    let (client, resp) = req.await.unwrap();
    assert_eq!(resp, json!({}));
    let p1 = client
        .next_push_timeout(Duration::from_secs(2))
        .await
        .unwrap();
    assert_eq!(
        (p1.route.as_str(), &p1.body[..]),
        ("onAdd", &b"{\"u\":\"b\"}"[..])
    );
    let p2 = client
        .next_push_timeout(Duration::from_secs(2))
        .await
        .unwrap();
    assert_eq!(
        (p2.route.as_str(), &p2.body[..]),
        ("onLeave", &b"{\"u\":1}"[..])
    );

    // A notify on a plain route (§11.11 layout).
    client.notify("area.h.m", &json!({})).await.unwrap();
    assert_eq!(
        &next_binary(&mut ws).await[..],
        b"\x04\x00\x00\x0C\x02\x08area.h.m{}"
    );

    // A KICK is reported with its reason.
    let kick = encode_package(PackageType::Kick, br#"{"reason":"maintenance"}"#).unwrap();
    ws.send(Ws::Binary(kick)).await.unwrap();
    assert_eq!(
        client.closed_within(Duration::from_secs(3)).await,
        Some(CloseReason::Kicked("maintenance".into()))
    );
    let err = client
        .request_raw("chat.chatHandler.send", "{}")
        .await
        .unwrap_err();
    assert!(
        matches!(err, ClientError::Closed(CloseReason::Kicked(_))),
        "{err}"
    );
}

#[tokio::test]
async fn refused_handshake_is_an_error() {
    let (url, _peer) = scripted(r#"{"code":501}"#).await;
    let err = Client::connect(&url, ClientOptions::default())
        .await
        .err()
        .unwrap();
    assert!(matches!(err, ClientError::Handshake(501)), "{err}");
}

#[tokio::test]
async fn client_answers_heartbeats_after_the_interval_and_times_out_on_silence() {
    let (url, peer) = scripted(r#"{"code":200,"sys":{"heartbeat":1}}"#).await;
    let client = Client::connect(&url, ClientOptions::default())
        .await
        .unwrap();
    let (mut ws, _) = peer.await.unwrap();
    assert_eq!(&next_binary(&mut ws).await[..], &HANDSHAKE_ACK);
    // The client never starts heartbeats on its own.
    assert!(
        tokio::time::timeout(Duration::from_millis(1300), ws.next())
            .await
            .is_err(),
        "no heartbeat before the server's"
    );
    ws.send(Ws::Binary(Bytes::from_static(&HEARTBEAT)))
        .await
        .unwrap();
    let start = Instant::now();
    assert_eq!(&next_binary(&mut ws).await[..], &HEARTBEAT);
    let waited = start.elapsed();
    assert!(
        waited >= Duration::from_millis(900) && waited < Duration::from_millis(2500),
        "heartbeat sent after the 1 s interval, not {waited:?}"
    );
    // Now the server goes silent: the client gives up after 2 × interval.
    let reason = client.closed_within(Duration::from_secs(4)).await;
    let total = start.elapsed();
    assert_eq!(reason, Some(CloseReason::HeartbeatTimeout));
    assert!(
        total >= Duration::from_millis(2900),
        "closed too early: {total:?}"
    );
}

#[tokio::test]
async fn connect_errors_are_clear() {
    // A port nobody listens on.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    let err = Client::connect(&format!("ws://127.0.0.1:{port}"), ClientOptions::default())
        .await
        .err()
        .unwrap();
    assert!(err.to_string().contains(&port.to_string()), "{err}");
    // A server that accepts TCP but never answers the handshake.
    let silent = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("ws://{}", silent.local_addr().unwrap());
    let err = Client::connect(
        &url,
        ClientOptions {
            connect_timeout: Duration::from_millis(300),
            ..ClientOptions::default()
        },
    )
    .await
    .err()
    .unwrap();
    assert!(matches!(err, ClientError::ConnectTimeout(_)), "{err}");
}

#[tokio::test]
async fn on_push_calls_back_for_its_route_only_in_order() {
    let (url, peer) = scripted(r#"{"code":200,"sys":{}}"#).await;
    let client = Client::connect(&url, ClientOptions::default())
        .await
        .unwrap();
    let (mut ws, _) = peer.await.unwrap();
    assert_eq!(&next_binary(&mut ws).await[..], &HANDSHAKE_ACK);
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    client.on_push("onChat", move |p| {
        let _ = tx.send((p.route, p.body));
    });
    // onChat ×2 and an onAdd in one frame: the callback gets both onChat in
    // order; onAdd still goes to next_push.
    let mut batch = Vec::new();
    batch.extend_from_slice(b"\x04\x00\x00\x0B\x06\x06onChat\"1\"");
    batch.extend_from_slice(b"\x04\x00\x00\x0A\x06\x05onAdd\"x\"");
    batch.extend_from_slice(b"\x04\x00\x00\x0B\x06\x06onChat\"2\"");
    ws.send(Ws::Binary(Bytes::from(batch))).await.unwrap();
    for want in ["\"1\"", "\"2\""] {
        let (route, body) = tokio::time::timeout(Duration::from_secs(2), rx.recv())
            .await
            .unwrap()
            .unwrap();
        assert_eq!((route.as_str(), &body[..]), ("onChat", want.as_bytes()));
    }
    let other = client
        .next_push_timeout(Duration::from_secs(2))
        .await
        .unwrap();
    assert_eq!(
        (other.route.as_str(), &other.body[..]),
        ("onAdd", &b"\"x\""[..])
    );
    assert!(rx.try_recv().is_err());
    // A later subscription to the route replaces the callback.
    let mut sub = client.subscribe("onChat");
    ws.send(Ws::Binary(Bytes::from_static(
        b"\x04\x00\x00\x0B\x06\x06onChat\"3\"",
    )))
    .await
    .unwrap();
    let p = tokio::time::timeout(Duration::from_secs(2), sub.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(&p.body[..], b"\"3\"");
    assert!(rx.try_recv().is_err());
}

#[tokio::test]
async fn connects_from_the_given_local_address() {
    // Any 127.0.0.x is a loopback address on Linux: the robot spreads its
    // connections over several of them (docs/benchmarks.md).
    let (url, peer) = scripted(r#"{"code":200,"sys":{}}"#).await;
    let local: std::net::IpAddr = "127.0.0.7".parse().unwrap();
    let options = ClientOptions {
        local_addr: Some(local),
        ..ClientOptions::default()
    };
    let client = Client::connect(&url, options).await.unwrap();
    let (ws, _) = peer.await.unwrap();
    assert_eq!(ws.get_ref().peer_addr().unwrap().ip(), local);
    assert!(client.is_open());
    // A v6 source cannot reach a v4-only peer: a clear error, not a hang.
    let err = Client::connect(
        "ws://127.0.0.1:9/",
        ClientOptions {
            local_addr: Some("::1".parse().unwrap()),
            ..ClientOptions::default()
        },
    )
    .await
    .err()
    .unwrap();
    assert!(err.to_string().contains("family"), "{err}");
}
