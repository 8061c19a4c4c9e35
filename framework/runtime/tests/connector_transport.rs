//! The way in to a real connector over real sockets: TLS (`wss://`, with a
//! certificate renewed while the server runs), the Origin allow-list, and
//! the client address a trusted load balancer gives (PROXY protocol v1,
//! `X-Forwarded-For`) — which the per-address limit then counts.

mod frontend_common;

use std::time::Duration;

use frontend_common::*;
use futures_util::{SinkExt, StreamExt};
use shaddock::connector::ConnectorOptions;
use shaddock::connector::proxy::TrustedProxies;
use shaddock::protocol::{PackageType, decode_packages, encode_package};
use shaddock_client::{Client, ClientOptions};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message as WsMessage;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

#[tokio::test]
async fn wss_clients_chat_and_a_renewed_certificate_is_served_without_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let first = write_cert(dir.path());
    let server = start_with(tls_options(dir.path()), test_app).await;
    let url = format!("wss://127.0.0.1:{}/", server.port);
    let a = Client::connect(&url, tls_client(&first)).await.unwrap();
    let b = Client::connect(&url, tls_client(&first)).await.unwrap();
    enter_as(&a, "a").await;
    enter_as(&b, "b").await;
    push_between(&a, &b, "b", 1).await;

    // Not TLS, or not trusting this certificate: no connection.
    let plain = format!("ws://127.0.0.1:{}/", server.port);
    assert!(
        Client::connect(&plain, ClientOptions::default())
            .await
            .is_err()
    );
    let err = Client::connect(&url, ClientOptions::default())
        .await
        .err()
        .expect("a client that does not trust the certificate must fail");
    assert!(err.to_string().contains("TLS"), "{err}");

    // Renew: new key and certificate in place; the next handshakes get it,
    // the open connections go on.
    let second = write_cert(dir.path());
    eventually_async(
        "a client trusting only the new certificate to connect",
        Duration::from_secs(10),
        || async { Client::connect(&url, tls_client(&second)).await.map(|_| ()) },
    )
    .await;
    assert!(
        Client::connect(&url, tls_client(&first)).await.is_err(),
        "the old one is gone"
    );
    push_between(&a, &b, "b", 2).await;
}

/// A Pomelo session over a raw WebSocket: TCP, `prelude` bytes first (a
/// PROXY header), the upgrade with `headers`, then the Pomelo handshake.
/// `Err` when any step is refused.
async fn raw_session(
    port: u16,
    prelude: &[u8],
    headers: &[(&str, &str)],
) -> Result<tokio_tungstenite::WebSocketStream<TcpStream>, String> {
    let mut tcp = TcpStream::connect(("127.0.0.1", port))
        .await
        .map_err(|e| e.to_string())?;
    tcp.write_all(prelude).await.map_err(|e| e.to_string())?;
    let mut request = format!("ws://127.0.0.1:{port}/")
        .into_client_request()
        .unwrap();
    for (k, v) in headers {
        let name: tokio_tungstenite::tungstenite::http::HeaderName = k.parse().unwrap();
        request.headers_mut().insert(name, v.parse().unwrap());
    }
    let (mut ws, _) = tokio_tungstenite::client_async(request, tcp)
        .await
        .map_err(|e| format!("upgrade: {e}"))?;
    let hello = encode_package(PackageType::Handshake, br#"{"sys":{"type":"raw"}}"#).unwrap();
    ws.send(WsMessage::Binary(hello))
        .await
        .map_err(|e| e.to_string())?;
    match tokio::time::timeout(Duration::from_secs(3), ws.next()).await {
        Ok(Some(Ok(WsMessage::Binary(data)))) => {
            let packages = decode_packages(data).map_err(|e| e.to_string())?;
            if packages.iter().any(|p| p.kind == PackageType::Handshake) {
                Ok(ws)
            } else {
                Err("no handshake reply".into())
            }
        }
        other => Err(format!("closed instead of a handshake reply: {other:?}")),
    }
}

#[tokio::test]
async fn origins_outside_the_allow_list_are_refused() {
    let server = start_with(
        ConnectorOptions {
            allowed_origins: Some(vec!["https://play.example.com".into()]),
            ..fast_options()
        },
        test_app,
    )
    .await;
    let evil = raw_session(server.port, b"", &[("origin", "https://evil.example.com")]).await;
    let err = evil.expect_err("a foreign origin must be refused");
    assert!(err.contains("403"), "{err}");
    assert!(
        raw_session(server.port, b"", &[("origin", "https://play.example.com")])
            .await
            .is_ok()
    );
    // Native clients send no Origin: let in.
    assert!(raw_session(server.port, b"", &[]).await.is_ok());
}

#[tokio::test]
async fn a_trusted_proxy_gives_the_client_address_and_per_address_limits_count_it() {
    // PROXY protocol from a trusted balancer (127.0.0.1 here): every TCP
    // peer is 127.0.0.1, but the limit of one connection per address
    // counts the addresses the headers name.
    let server = start_with(
        ConnectorOptions {
            trusted_proxies: TrustedProxies::parse(&["127.0.0.1".into()]).unwrap(),
            proxy_protocol: true,
            max_connections_per_address: Some(1),
            ..fast_options()
        },
        test_app,
    )
    .await;
    let from = |ip: &str| format!("PROXY TCP4 {ip} 127.0.0.1 40000 {}\r\n", server.port);
    let first = raw_session(server.port, from("203.0.113.7").as_bytes(), &[]).await;
    assert!(first.is_ok(), "{:?}", first.err());
    let again = raw_session(server.port, from("203.0.113.7").as_bytes(), &[]).await;
    assert!(
        again.is_err(),
        "a second connection of 203.0.113.7 must be refused"
    );
    let other = raw_session(server.port, from("203.0.113.8").as_bytes(), &[]).await;
    assert!(
        other.is_ok(),
        "another client address is not limited: {:?}",
        other.err()
    );
    // A trusted proxy that sends no header is not served.
    assert!(raw_session(server.port, b"", &[]).await.is_err());
    drop((first, other));

    // X-Forwarded-For from a trusted HTTP proxy, the same way.
    let server = start_with(
        ConnectorOptions {
            trusted_proxies: TrustedProxies::parse(&["127.0.0.1".into()]).unwrap(),
            max_connections_per_address: Some(1),
            ..fast_options()
        },
        test_app,
    )
    .await;
    let xff = |ip: &'static str| [("x-forwarded-for", ip)];
    let first = raw_session(server.port, b"", &xff("203.0.113.9")).await;
    assert!(first.is_ok(), "{:?}", first.err());
    assert!(
        raw_session(server.port, b"", &xff("203.0.113.9"))
            .await
            .is_err()
    );
    assert!(
        raw_session(server.port, b"", &xff("203.0.113.10"))
            .await
            .is_ok()
    );
    drop(first);

    // From an untrusted peer, a PROXY header is not believed: it is not
    // HTTP, so the upgrade fails; and X-Forwarded-For is ignored (the
    // limit counts 127.0.0.1 itself).
    let server = start_with(
        ConnectorOptions {
            trusted_proxies: TrustedProxies::parse(&["10.0.0.0/8".into()]).unwrap(),
            max_connections_per_address: Some(1),
            ..fast_options()
        },
        test_app,
    )
    .await;
    assert!(
        raw_session(server.port, from("203.0.113.7").as_bytes(), &[])
            .await
            .is_err()
    );
    let first = raw_session(server.port, b"", &xff("203.0.113.11")).await;
    assert!(first.is_ok(), "{:?}", first.err());
    assert!(
        raw_session(server.port, b"", &xff("203.0.113.12"))
            .await
            .is_err(),
        "an untrusted peer's X-Forwarded-For must not lift the per-address limit"
    );
}
