//! Bad input from clients: each case gets the behaviour the spec gives
//! (ignored or closed), never a crash or a hang, and a well-behaved client
//! on the same server keeps working throughout.
//!
//! Decisions (see `connector/agent.rs`): unknown package types (including a
//! client KICK), truncated packages and random bytes close the connection;
//! packages that are valid but out of place for the state (DATA or
//! HEARTBEAT before the handshake, a second HANDSHAKE) are ignored; a text
//! frame is parsed as packages like Node's `ws` does; an undecodable DATA
//! message is dropped and the connection stays.

mod frontend_common;

use std::time::Duration;

use bytes::Bytes;
use frontend_common::*;
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use shaddock::connector::ConnectorOptions;
use shaddock::protocol::{
    HANDSHAKE_ACK, HEARTBEAT, Message, PackageType, encode_message, encode_package,
};
use shaddock_client::Client;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message as Ws;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream, connect_async};

type Raw = WebSocketStream<MaybeTlsStream<TcpStream>>;

const HANDSHAKE: &[u8] =
    br#"{"sys":{"type":"js-websocket","version":"0.0.1","rsa":{},"protoVersion":0}}"#;

async fn raw_connect(url: &str) -> Raw {
    connect_async(url).await.expect("websocket connects").0
}

/// The next binary frame, or `None` when the server closed the connection.
/// Panics on a text frame (the server must only send binary frames).
async fn next_frame(ws: &mut Raw, within: Duration) -> Option<Bytes> {
    loop {
        match tokio::time::timeout(within, ws.next()).await {
            Err(_) => panic!("no frame and no close within {within:?}"),
            Ok(None) | Ok(Some(Err(_))) | Ok(Some(Ok(Ws::Close(_)))) => return None,
            Ok(Some(Ok(Ws::Binary(b)))) => return Some(b),
            Ok(Some(Ok(Ws::Text(t)))) => panic!("server sent a text frame: {t}"),
            Ok(Some(Ok(_))) => continue,
        }
    }
}

/// Asserts the server closes the connection (without sending anything but
/// possibly a close frame).
async fn assert_closed(ws: &mut Raw) {
    let frame = next_frame(ws, Duration::from_secs(3)).await;
    assert!(frame.is_none(), "expected close, got {frame:?}");
}

/// Asserts nothing arrives for a while and the socket stays open.
async fn assert_silent(ws: &mut Raw) {
    match tokio::time::timeout(Duration::from_millis(400), ws.next()).await {
        Err(_) => {}
        Ok(other) => panic!("expected silence, got {other:?}"),
    }
}

async fn send(ws: &mut Raw, bytes: &[u8]) {
    ws.send(Ws::Binary(Bytes::copy_from_slice(bytes)))
        .await
        .expect("send");
}

async fn handshake(ws: &mut Raw) -> Bytes {
    send(
        ws,
        &encode_package(PackageType::Handshake, HANDSHAKE).unwrap(),
    )
    .await;
    let reply = next_frame(ws, Duration::from_secs(3))
        .await
        .expect("handshake reply");
    assert_eq!(reply[0], 1, "a HANDSHAKE package");
    send(ws, &HANDSHAKE_ACK).await;
    reply
}

fn request(id: u32, route: &str, body: &str) -> Bytes {
    let msg = encode_message(&Message::request(id, route, body.to_owned()), None).unwrap();
    encode_package(PackageType::Data, &msg).unwrap()
}

async fn witness_ok(witness: &Client, n: u64) {
    let r: Value = witness
        .request("connector.testHandler.echo", &json!({"n": n}))
        .await
        .expect("the well-behaved client keeps working");
    assert_eq!(r, json!({"n": n}));
}

#[tokio::test]
async fn bad_packages_close_only_the_offending_connection() {
    let server = start().await;
    let witness = connect(&server.url).await;
    witness_ok(&witness, 0).await;

    // Wrong package types: 9 (undefined), 0, and KICK (server-only).
    for bad in [
        &[9u8, 0, 0, 0][..],
        &[0, 0, 0, 0],
        &[5, 0, 0, 2, b'{', b'}'],
    ] {
        let mut ws = raw_connect(&server.url).await;
        send(&mut ws, bad).await;
        assert_closed(&mut ws).await;
        witness_ok(&witness, 1).await;
    }
    // Also in WORKING state.
    let mut ws = raw_connect(&server.url).await;
    handshake(&mut ws).await;
    send(&mut ws, &[7, 0, 0, 0]).await;
    // The server's first heartbeat may arrive before the close.
    let mut closed = false;
    for _ in 0..3 {
        match next_frame(&mut ws, Duration::from_secs(3)).await {
            None => {
                closed = true;
                break;
            }
            Some(f) => assert_eq!(&f[..], &HEARTBEAT),
        }
    }
    assert!(closed);
    witness_ok(&witness, 2).await;

    // Truncated packages: a short header, a body shorter than declared.
    for bad in [&[4u8, 0][..], &[1, 0, 0, 50, b'{']] {
        let mut ws = raw_connect(&server.url).await;
        send(&mut ws, bad).await;
        assert_closed(&mut ws).await;
        witness_ok(&witness, 3).await;
    }

    // Random bytes (a fixed pseudo-random sequence, so failures reproduce).
    let mut x: u32 = 0x1234_5678;
    let random: Vec<u8> = (0..200)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            (x >> 24) as u8
        })
        .collect();
    for chunk in [&random[..], &random[1..], &random[7..64]] {
        let mut ws = raw_connect(&server.url).await;
        send(&mut ws, chunk).await;
        assert_closed(&mut ws).await;
        witness_ok(&witness, 4).await;
    }

    // A text frame is parsed as packages: "hello" starts with type 0x68.
    let mut ws = raw_connect(&server.url).await;
    ws.send(Ws::Text("hello".into())).await.unwrap();
    assert_closed(&mut ws).await;
    witness_ok(&witness, 5).await;

    // An oversized message (> 64 KiB) closes the connection.
    let mut ws = raw_connect(&server.url).await;
    handshake(&mut ws).await;
    let big = "x".repeat(70 * 1024);
    let _ = ws
        .send(Ws::Binary(request(1, "connector.testHandler.echo", &big)))
        .await;
    let mut closed = false;
    for _ in 0..3 {
        if next_frame(&mut ws, Duration::from_secs(3)).await.is_none() {
            closed = true;
            break;
        }
    }
    assert!(closed, "oversized message closes the connection");
    witness_ok(&witness, 6).await;

    // Bad handshake JSON → {"code":500}, then closed.
    let mut ws = raw_connect(&server.url).await;
    send(
        &mut ws,
        &encode_package(PackageType::Handshake, b"{nope").unwrap(),
    )
    .await;
    let reply = next_frame(&mut ws, Duration::from_secs(3))
        .await
        .expect("error reply");
    assert_eq!(
        &reply[..],
        &encode_package(PackageType::Handshake, br#"{"code":500}"#).unwrap()[..]
    );
    assert_closed(&mut ws).await;
    witness_ok(&witness, 7).await;
    assert_eq!(server.app.sessions().count(), 1, "only the witness is left");
    server.shutdown().await;
}

#[tokio::test]
async fn out_of_state_packages_are_ignored() {
    let server = start().await;
    let witness = connect(&server.url).await;
    let mut ws = raw_connect(&server.url).await;

    // DATA, HEARTBEAT and ACK before the handshake: ignored, no reply.
    send(&mut ws, &request(1, "connector.testHandler.echo", "1")).await;
    send(&mut ws, &HEARTBEAT).await;
    send(&mut ws, &HANDSHAKE_ACK).await;
    assert_silent(&mut ws).await;
    witness_ok(&witness, 1).await;

    // The handshake still works afterwards; the reply is binary and
    // followed right after the ACK by one HEARTBEAT (§4.4).
    send(
        &mut ws,
        &encode_package(PackageType::Handshake, HANDSHAKE).unwrap(),
    )
    .await;
    let reply = next_frame(&mut ws, Duration::from_secs(3)).await.unwrap();
    let json: Value = serde_json::from_slice(&reply[4..]).unwrap();
    assert_eq!(json["code"], 200);
    assert_eq!(json["sys"]["heartbeat"], 1);
    // DATA while waiting for the ACK: ignored.
    send(&mut ws, &request(2, "connector.testHandler.echo", "2")).await;
    assert_silent(&mut ws).await;
    send(&mut ws, &HANDSHAKE_ACK).await;
    assert_eq!(
        &next_frame(&mut ws, Duration::from_secs(3)).await.unwrap()[..],
        &HEARTBEAT
    );
    // A second HANDSHAKE in WORKING: ignored.
    send(
        &mut ws,
        &encode_package(PackageType::Handshake, HANDSHAKE).unwrap(),
    )
    .await;
    assert_silent(&mut ws).await;

    // A client heartbeat is answered at once.
    send(&mut ws, &HEARTBEAT).await;
    assert_eq!(
        &next_frame(&mut ws, Duration::from_secs(3)).await.unwrap()[..],
        &HEARTBEAT
    );

    // Undecodable DATA (unknown message type, unknown route code, truncated
    // route) is dropped; the connection stays.
    for body in [
        &[0x0Eu8, 1][..],
        &[0x01, 1, 0x7F, 0x7F, b'{', b'}'],
        &[0x00, 1, 40, b'c'],
    ] {
        send(&mut ws, &encode_package(PackageType::Data, body).unwrap()).await;
    }
    assert_silent(&mut ws).await;
    witness_ok(&witness, 2).await;

    // Several packages in one frame are accepted (a superset of Pomelo):
    // a heartbeat and a request.
    let mut frame = HEARTBEAT.to_vec();
    frame.extend_from_slice(&request(3, "connector.testHandler.echo", r#"{"x":3}"#));
    send(&mut ws, &frame).await;
    let mut got_response = false;
    for _ in 0..2 {
        let f = next_frame(&mut ws, Duration::from_secs(3)).await.unwrap();
        if f[0] == 4 {
            // RESPONSE: flag 0x04, id 3, no route, body.
            assert_eq!(&f[4..], b"\x04\x03{\"x\":3}");
            got_response = true;
        } else {
            assert_eq!(&f[..], &HEARTBEAT);
        }
    }
    assert!(got_response);
    witness_ok(&witness, 3).await;
    server.shutdown().await;
}

#[tokio::test]
async fn minimal_handshake_reply_matches_the_test_vector() {
    // §11.4: heartbeat 3 s, no dictionary → {"code":200,"sys":{"heartbeat":3}}.
    let opts = ConnectorOptions {
        heartbeat: Some(Duration::from_secs(3)),
        use_dict: false,
        ..ConnectorOptions::default()
    };
    let server = start_with(opts, test_app).await;
    let mut ws = raw_connect(&format!("ws://127.0.0.1:{}/any/path?x=1", server.port)).await;
    let reply = handshake(&mut ws).await;
    let mut expected = vec![0x01, 0x00, 0x00, 0x22];
    expected.extend_from_slice(br#"{"code":200,"sys":{"heartbeat":3}}"#);
    assert_eq!(&reply[..], &expected[..]);
    assert_eq!(
        &next_frame(&mut ws, Duration::from_secs(3)).await.unwrap()[..],
        &HEARTBEAT
    );
    // Without a dictionary a compressed route is dropped, a plain one works
    // (§11.6 request bytes).
    send(
        &mut ws,
        &[
            0x04, 0, 0, 0x0B, 0x01, 0x01, 0x00, 0x02, b'{', b'"', b'a', b'"', b':', b'1', b'}',
        ],
    )
    .await;
    assert_silent(&mut ws).await;
    send(
        &mut ws,
        &request(1, "connector.testHandler.echo", r#"{"a":1}"#),
    )
    .await;
    let resp = next_frame(&mut ws, Duration::from_secs(3)).await.unwrap();
    assert_eq!(&resp[..], b"\x04\x00\x00\x09\x04\x01{\"a\":1}");
    server.shutdown().await;
}

#[tokio::test]
async fn no_heartbeat_option_means_no_heartbeats_and_no_timeout() {
    let opts = ConnectorOptions {
        heartbeat: None,
        ..fast_options()
    };
    let server = start_with(opts, test_app).await;
    let mut ws = raw_connect(&server.url).await;
    let reply = handshake(&mut ws).await;
    let json: Value = serde_json::from_slice(&reply[4..]).unwrap();
    assert!(json["sys"].get("heartbeat").is_none());
    // No heartbeat after the ACK, none in answer to ours, no timeout.
    send(&mut ws, &HEARTBEAT).await;
    assert_silent(&mut ws).await;
    // deliberate: idle past two 1 s heartbeat periods to show nothing times out.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    send(&mut ws, &request(1, "connector.testHandler.echo", "5")).await;
    let resp = next_frame(&mut ws, Duration::from_secs(3)).await.unwrap();
    assert_eq!(&resp[4..], b"\x04\x015");
    server.shutdown().await;
}

#[tokio::test]
async fn handshake_timeout_closes_idle_sockets() {
    let opts = ConnectorOptions {
        handshake_timeout: Duration::from_millis(500),
        ..fast_options()
    };
    let server = start_with(opts, test_app).await;
    // A WebSocket that never handshakes.
    let mut ws = raw_connect(&server.url).await;
    assert_closed(&mut ws).await;
    // A TCP socket that never upgrades.
    let mut tcp = TcpStream::connect(("127.0.0.1", server.port))
        .await
        .unwrap();
    let mut buf = [0u8; 16];
    let n = tokio::time::timeout(
        Duration::from_secs(3),
        tokio::io::AsyncReadExt::read(&mut tcp, &mut buf),
    )
    .await
    .expect("server closes the idle socket")
    .unwrap_or(0);
    assert_eq!(n, 0);
    sessions_closed(&server).await;
    server.shutdown().await;
}

#[tokio::test]
async fn slow_reader_is_closed_without_blocking_others() {
    let opts = ConnectorOptions {
        queue_bound: 8,
        ..fast_options()
    };
    slow_reader_is_closed(opts, 32 * 1024).await;
}

/// The byte bound alone (the frame bound out of reach): 4 KiB pushes to a
/// client that stopped reading fill its socket buffers, then 64 KiB of
/// queue, and the connection is closed.
#[tokio::test]
async fn slow_reader_over_the_byte_bound_is_closed() {
    let opts = ConnectorOptions {
        queue_bound: 100_000,
        queue_bytes: 64 * 1024,
        ..fast_options()
    };
    slow_reader_is_closed(opts, 4 * 1024).await;
}

/// A raw client that handshakes, binds, and then never reads gets pushes
/// of `size` bytes until its queue overflows: the push reports it failed,
/// the connection is closed (after a best-effort KICK, which a client that
/// does not read may never see), and a well-behaved client is not held up.
async fn slow_reader_is_closed(opts: ConnectorOptions, size: usize) {
    let server = start_with(opts, test_app).await;
    let witness = connect(&server.url).await;
    let r: Value = witness
        .request("connector.entryHandler.enter", &json!({"uid": "w"}))
        .await
        .unwrap();
    assert_eq!(r["code"], 200);
    let mut slow = raw_connect(&server.url).await;
    handshake(&mut slow).await;
    send(
        &mut slow,
        &request(1, "connector.entryHandler.enter", r#"{"uid":"slow"}"#),
    )
    .await;
    eventually_async(
        "the slow client to bind",
        Duration::from_secs(3),
        || async { !server.app.sessions().by_uid("slow").is_empty() },
    )
    .await;
    // Pushes fill the socket buffers (several MB on loopback), then the
    // queue overflows.
    let body = Bytes::from(format!("\"{}\"", "y".repeat(size)));
    let mut pushed = 0usize;
    let mut slow_failed = false;
    while pushed < 64 * 1024 * 1024 {
        let failed = server
            .app
            .sessions()
            .push_to_uids("onBig", body.clone(), &["slow"]);
        if !failed.is_empty() {
            slow_failed = true;
            break;
        }
        pushed += body.len();
        tokio::task::yield_now().await;
    }
    assert!(slow_failed, "the slow client's queue overflowed");
    eventually_async(
        "the slow client to be closed",
        Duration::from_secs(3),
        || async { server.app.sessions().by_uid("slow").is_empty() },
    )
    .await;
    witness_ok(&witness, 9).await;
    // What the socket held arrives, then the close: nothing hangs.
    let mut frames = 0;
    while next_frame(&mut slow, Duration::from_secs(3))
        .await
        .is_some()
    {
        frames += 1;
    }
    assert!(frames > 0, "the pushes the socket took were delivered");
    server.shutdown().await;
}
