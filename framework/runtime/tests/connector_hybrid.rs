//! Pomelo's hybrid connector on a real frontend over real sockets: raw TCP
//! and WebSocket on the same client port (plain and under TLS), a frontend
//! serving one transport only, and the handshake hooks (`checkClient`, the
//! `user` payload).

mod frontend_common;

use std::time::Duration;

use frontend_common::*;
use serde_json::{Value, json};
use shaddock::app::App;
use shaddock::config::ConnectorLimits;
use shaddock::connector::{CheckClient, ConnectorOptions, Transports};
use shaddock::handler::HandlerError;
use shaddock::session::Session;
use shaddock_client::{Client, ClientError, ClientOptions, CloseReason};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const WAIT: Duration = Duration::from_secs(5);

async fn handshake_user(_app: App, session: Session, _req: Value) -> Result<Value, HandlerError> {
    Ok(json!({ "user": session.handshake_user() }))
}

fn with_user_route(b: shaddock::app::AppBuilder) -> shaddock::app::AppBuilder {
    test_app(b).handler("connector.testHandler.user", handshake_user)
}

fn tcp_url(server: &TestServer) -> String {
    format!("tcp://127.0.0.1:{}", server.port)
}

#[tokio::test]
async fn raw_tcp_and_websocket_clients_share_the_port() {
    let server = start().await;
    let ws = connect(&server.url).await;
    let tcp = connect(&tcp_url(&server)).await;
    // Same handshake: heartbeat and dictionary.
    assert_eq!(tcp.handshake().sys.heartbeat, Some(1));
    assert_eq!(tcp.dictionary(), ws.dictionary());
    enter_as(&ws, "w").await;
    enter_as(&tcp, "t").await;
    push_between(&ws, &tcp, "t", 1).await;
    push_between(&tcp, &ws, "w", 2).await;
    // A notify over TCP runs (its handler pushes back), and heartbeats keep
    // both alive past the 2 s heartbeat timeout.
    tcp.notify("connector.testHandler.note", &json!({"n": 3}))
        .await
        .unwrap();
    let note = tcp.next_push_timeout(WAIT).await.unwrap();
    assert_eq!(
        (note.route.as_str(), note.json::<Value>().unwrap()),
        ("onNote", json!({"n": 3}))
    );
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert!(tcp.is_open() && ws.is_open());
    push_between(&ws, &tcp, "t", 4).await;
    // A kick reaches a TCP client with its reason.
    assert_eq!(server.app.sessions().kick_by_uid("t", "bye"), 1);
    assert_eq!(
        tcp.closed_within(WAIT).await,
        Some(CloseReason::Kicked("bye".into()))
    );
    assert!(ws.is_open());
}

#[tokio::test]
async fn an_oversized_tcp_package_is_kicked_with_the_limit() {
    let options = ConnectorOptions {
        max_message_size: 1024,
        ..fast_options()
    };
    let server = start_with(options, test_app).await;
    let tcp = connect(&tcp_url(&server)).await;
    let fine: Value = tcp
        .request("connector.testHandler.echo", &json!({"s": "x".repeat(900)}))
        .await
        .unwrap();
    assert_eq!(fine["s"].as_str().map(str::len), Some(900));
    tcp.notify(
        "connector.testHandler.note",
        &json!({"s": "x".repeat(2000)}),
    )
    .await
    .unwrap();
    assert_eq!(
        tcp.closed_within(WAIT).await,
        Some(CloseReason::Kicked(
            "message too large (limit 1024 bytes)".into()
        ))
    );
}

#[tokio::test]
async fn tcp_over_tls_and_wss_share_a_tls_port() {
    let dir = tempfile::tempdir().unwrap();
    let pem = write_cert(dir.path());
    let server = start_with(tls_options(dir.path()), test_app).await;
    let port = server.port;
    let wss = Client::connect(&format!("wss://127.0.0.1:{port}/"), tls_client(&pem))
        .await
        .unwrap();
    let tcp = Client::connect(&format!("tcp+tls://127.0.0.1:{port}"), tls_client(&pem))
        .await
        .unwrap();
    enter_as(&wss, "w").await;
    enter_as(&tcp, "t").await;
    push_between(&wss, &tcp, "t", 1).await;
    push_between(&tcp, &wss, "w", 2).await;
    // Raw TCP without TLS on a TLS port: no connection.
    let plain = Client::connect(&format!("tcp://127.0.0.1:{port}"), short_connect()).await;
    assert!(plain.is_err(), "a plain TCP client got in");
}

fn short_connect() -> ClientOptions {
    ClientOptions {
        connect_timeout: Duration::from_secs(2),
        ..ClientOptions::default()
    }
}

#[tokio::test]
async fn a_frontend_serving_one_transport_refuses_the_other() {
    for (served, refused) in [("ws", "tcp"), ("tcp", "ws")] {
        let options = ConnectorOptions {
            transports: Transports::parse(&[served.to_string()]).unwrap(),
            ..fast_options()
        };
        let server = start_with(options, test_app).await;
        let url = |scheme: &str| match scheme {
            "ws" => server.url.clone(),
            _ => tcp_url(&server),
        };
        let ok = connect(&url(served)).await;
        enter_as(&ok, "ok").await;
        let no = Client::connect(&url(refused), short_connect()).await;
        assert!(
            matches!(no, Err(ClientError::Connect { .. })),
            "{refused} on a {served}-only frontend: {:?}",
            no.err()
        );
        // A raw socket sees the close (EOF), not an answer.
        if refused == "tcp" {
            let mut raw = TcpStream::connect(("127.0.0.1", server.port))
                .await
                .unwrap();
            raw.write_all(&client_handshake()).await.unwrap();
            let mut buf = [0u8; 64];
            let n = tokio::time::timeout(WAIT, raw.read(&mut buf)).await;
            assert!(matches!(n, Ok(Ok(0)) | Ok(Err(_))), "{n:?}");
        }
        assert_eq!(server.app.sessions().count(), 1);
        server.shutdown().await;
    }
    // connector.json's field.
    let limits = |names: &[&str]| ConnectorLimits {
        transports: Some(names.iter().map(|n| n.to_string()).collect()),
        ..ConnectorLimits::default()
    };
    let dir = std::path::Path::new(".");
    let ws_only = ConnectorOptions::default()
        .with_transport(&limits(&["ws"]), dir)
        .unwrap();
    assert_eq!(
        ws_only.transports,
        Transports {
            ws: true,
            tcp: false
        }
    );
    let both = ConnectorOptions::default();
    assert_eq!(
        both.transports,
        Transports {
            ws: true,
            tcp: true
        }
    );
    for bad in [&["udp"][..], &[][..]] {
        let e = ConnectorOptions::default()
            .with_transport(&limits(bad), dir)
            .unwrap_err();
        assert!(e.contains("transports"), "{e}");
    }
}

/// §11.3: the browser client's first handshake (type js-websocket, 0.0.1).
fn client_handshake() -> Vec<u8> {
    let body = br#"{"sys":{"type":"js-websocket","version":"0.0.1","rsa":{},"protoVersion":0}}"#;
    let mut frame = vec![1, 0, 0, body.len() as u8];
    frame.extend_from_slice(body);
    frame
}

#[tokio::test]
async fn check_client_refusal_answers_501_and_closes() {
    let options = ConnectorOptions {
        check_client: Some(CheckClient::new(|client_type, version| {
            !(client_type == Some("js-websocket") && version == Some("0.0.1"))
        })),
        ..fast_options()
    };
    let server = start_with(options, test_app).await;
    // Over raw TCP, byte for byte: §11.5, then the close.
    let mut raw = TcpStream::connect(("127.0.0.1", server.port))
        .await
        .unwrap();
    raw.write_all(&client_handshake()).await.unwrap();
    let mut got = Vec::new();
    let read = tokio::time::timeout(WAIT, raw.read_to_end(&mut got)).await;
    assert!(read.is_ok(), "the connection was not closed");
    let rejection = b"\x01\x00\x00\x0c{\"code\":501}";
    assert_eq!(got, rejection, "{}", String::from_utf8_lossy(&got));
    // The Rust client, over both transports: refused as that old client,
    // let in as itself.
    let old = ClientOptions {
        handshake_sys: json!({"type": "js-websocket", "version": "0.0.1"})
            .as_object()
            .unwrap()
            .clone(),
        ..ClientOptions::default()
    };
    for url in [server.url.clone(), tcp_url(&server)] {
        let refused = Client::connect(&url, old.clone()).await;
        assert!(
            matches!(refused, Err(ClientError::Handshake(501))),
            "{url}: {:?}",
            refused.err()
        );
        let ok = connect(&url).await;
        enter_as(&ok, "ok").await;
        ok.close().await;
    }
    sessions_closed(&server).await;
}

#[tokio::test]
async fn the_handshake_user_reaches_a_handler() {
    let server = start_with(fast_options(), with_user_route).await;
    let user = json!({"token": "abc", "device": {"os": "ios"}});
    for url in [server.url.clone(), tcp_url(&server)] {
        let options = ClientOptions {
            handshake_user: Some(user.clone()),
            ..ClientOptions::default()
        };
        let client = Client::connect(&url, options).await.unwrap();
        let r: Value = client
            .request("connector.testHandler.user", &json!({}))
            .await
            .unwrap();
        assert_eq!(r, json!({ "user": user }), "{url}");
        let plain = connect(&url).await;
        let r: Value = plain
            .request("connector.testHandler.user", &json!({}))
            .await
            .unwrap();
        assert_eq!(r, json!({ "user": null }), "{url}");
    }
}
