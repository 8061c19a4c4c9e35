//! Pomelo's native clients' transport against the real chat app: a client
//! speaking raw TCP (the Rust client with `tcp://`, as the Unity, cocos2d-x
//! and libpomelo2 clients do) logs in through the gate and chats with a
//! WebSocket client in the same room, each on another connector. Every
//! server is its own `game-server` process; gate and connectors serve both
//! transports on their one client port.

mod support;

use serde_json::{Value, json};
use shared::{EnterResponse, PUSH_ADD, PUSH_CHAT, PUSH_LEAVE, TARGET_ALL};
use support::Topo;
use support::chat::{User, login_over, name_on_connector};

async fn enter_over(
    cluster: &support::ProcCluster,
    scheme: &str,
    name: &str,
    rid: &str,
) -> (User, Vec<String>) {
    match login_over(cluster, scheme, name, rid).await {
        (user, EnterResponse::Users { users }) => (user, users),
        (_, other) => panic!("{name} could not enter over {scheme}: {other:?}"),
    }
}

/// Both get `msg` from `from`, once.
async fn both_hear(users: [&User; 2], from: &str, msg: &str) {
    for u in users {
        let body: Value = u.expect_push(PUSH_CHAT).await;
        assert_eq!(
            (&body["from"], &body["msg"], &body["target"]),
            (&json!(from), &json!(msg), &json!(TARGET_ALL)),
            "{} got {body}",
            u.name
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_raw_tcp_client_logs_in_through_the_gate_and_chats_with_a_websocket_client() {
    let cluster = support::start(Topo::new(2, 1)).await;
    let (t, w) = (
        name_on_connector("tcp", 0, 2),
        name_on_connector("ws", 1, 2),
    );
    let (tcp, users) = enter_over(&cluster, "tcp", &t, "room1").await;
    assert_eq!(users, vec![t.clone()]);
    let (ws, users) = enter_over(&cluster, "ws", &w, "room1").await;
    assert_eq!(users.len(), 2, "{users:?}");
    assert_ne!(
        tcp.port, ws.port,
        "the two should be on different connectors"
    );
    assert_eq!(tcp.expect_push(PUSH_ADD).await["user"], json!(w));

    assert_eq!(tcp.send("hello from tcp", TARGET_ALL).await, json!({}));
    both_hear([&tcp, &ws], &t, "hello from tcp").await;
    assert_eq!(ws.send("hello from ws", TARGET_ALL).await, json!({}));
    both_hear([&tcp, &ws], &w, "hello from ws").await;
    tcp.expect_silence().await;
    ws.expect_silence().await;

    // The TCP user leaves: the room hears it as from any other client.
    tcp.client.close().await;
    assert_eq!(ws.expect_push(PUSH_LEAVE).await["user"], json!(t));
}
