//! The chat's own limits, on real `game-server` processes with the real Rust
//! Pomelo client:
//!
//! * names and rooms are checked on the server (the page's rules, but a
//!   client may skip the page): `*`, other characters, empty or too long →
//!   `{"code":400,"message":..}`, nothing bound, the connector keeps serving;
//! * a room is destroyed when its last member leaves, whether it
//!   disconnects or its connector dies; the chat server logs the number of
//!   rooms it still holds, which must drop to 0.

mod support;

use shared::{EnterResponse, PUSH_ADD, TARGET_ALL};
use support::Topo;
use support::chat::{WAIT, connect, enter};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_names_and_rooms_are_refused_with_a_reason() {
    let cluster = support::start(Topo::new(1, 1)).await;
    let long = "x".repeat(21);
    let cases = [
        ("bob*room1", "room1", "Name may only contain"),
        ("*", "room1", "Name may only contain"),
        ("bob", "a*b", "Room may only contain"),
        ("bo b", "room1", "Name may only contain"),
        ("<script>", "room1", "Name may only contain"),
        ("", "room1", "Name is required."),
        ("bob", "", "Room is required."),
        (
            long.as_str(),
            "room1",
            "Name must be at most 20 characters.",
        ),
        ("bob", long.as_str(), "Room must be at most 20 characters."),
    ];
    // Straight to the connector: the gate refuses an empty uid itself.
    let connector = cluster.server("connector-server-1");
    let url = format!("ws://127.0.0.1:{}", connector.client_port.unwrap());
    for (i, (name, rid, why)) in cases.into_iter().enumerate() {
        let client = connect(&url).await;
        let resp = client
            .request(
                shared::ROUTE_ENTER,
                &shared::EnterRequest {
                    username: name.into(),
                    rid: rid.into(),
                },
            )
            .await
            .expect("enter answered");
        match resp {
            EnterResponse::Invalid { code, message } => {
                assert_eq!(code, 400, "{name:?}/{rid:?}");
                assert!(message.starts_with(why), "{name:?}/{rid:?}: {message}");
            }
            other => panic!("{name:?} in {rid:?} should be refused, got {other:?}"),
        }
        // Nothing was bound: the same connection may still log in properly.
        let fine = format!("fine_{i}");
        let again = client
            .request(
                shared::ROUTE_ENTER,
                &shared::EnterRequest {
                    username: fine.clone(),
                    rid: format!("中文room{i}"),
                },
            )
            .await
            .expect("enter answered");
        let EnterResponse::Users { users } = again else {
            panic!("a valid name after a refused one: {again:?}");
        };
        assert_eq!(users, [fine]);
        client.close().await;
    }
    // The longest valid name and room, and Chinese ones, are accepted.
    let max = "y".repeat(20);
    let (_u, users) = enter(&cluster, &max, &max).await;
    assert_eq!(users, [max]);
    let (_v, users) = enter(&cluster, "聊天", "聊天室").await;
    assert_eq!(users, ["聊天"]);
    for s in cluster.of_type("connector") {
        let log = cluster.log(&s.id);
        assert!(!log.contains("panicked"), "{} panicked:\n{log}", s.id);
    }
}

/// The chat server's "room destroyed" line for `rid` says it now holds no
/// room at all.
async fn wait_room_destroyed(cluster: &support::ProcCluster, chat: &str, rid: &str) {
    let needle = format!("rid={rid} ");
    assert!(
        cluster
            .wait_log_line(chat, &["room destroyed", &needle, "rooms=0"], WAIT)
            .await,
        "room {rid} should be destroyed on {chat} with no room left; its log:\n{}",
        cluster.log(chat)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_room_is_destroyed_when_its_last_member_leaves() {
    let cluster = support::start(Topo::new(1, 1)).await;
    let chat = "chat-server-1";
    let (amy, _) = enter(&cluster, "amy", "lobby").await;
    let (bob, users) = enter(&cluster, "bob", "lobby").await;
    assert_eq!(users, ["amy", "bob"]);
    assert_eq!(amy.expect_push(PUSH_ADD).await["user"], "bob");

    // One left: the room stays, the other still chats.
    amy.client.close().await;
    assert_eq!(bob.expect_push(shared::PUSH_LEAVE).await["user"], "amy");
    assert_eq!(
        bob.send("still here", TARGET_ALL).await,
        serde_json::json!({})
    );
    assert!(!cluster.log(chat).contains("room destroyed"));

    // The last one left: the room is gone.
    bob.client.close().await;
    wait_room_destroyed(&cluster, chat, "lobby").await;

    // The same id again is a new, empty room.
    let (cid, users) = enter(&cluster, "cid", "lobby").await;
    assert_eq!(users, ["cid"]);
    assert_eq!(cid.send("hello", TARGET_ALL).await, serde_json::json!({}));
    cid.client.close().await;
    wait_room_count(&cluster, chat, 2).await;
}

/// Waits for the `n`th "room destroyed … rooms=0" line.
async fn wait_room_count(cluster: &support::ProcCluster, chat: &str, n: usize) {
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        let log = cluster.log(chat);
        let count = log
            .lines()
            .filter(|l| l.contains("room destroyed") && l.contains("rooms=0"))
            .count();
        if count >= n {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "expected {n} rooms destroyed on {chat}, saw {count}:\n{log}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_room_whose_members_were_lost_with_their_connector_is_destroyed() {
    let mut cluster = support::start(Topo::new(1, 1)).await;
    let chat = "chat-server-1";
    let (_amy, _) = enter(&cluster, "amy", "attic").await;
    let (_bob, _) = enter(&cluster, "bob", "attic").await;
    // The connector dies without a word to the chat server (no leave call)
    // and comes back empty: reconciliation finds both members gone.
    cluster.kill("connector-server-1");
    cluster.restart("connector-server-1").await;
    wait_room_destroyed(&cluster, chat, "attic").await;
    let log = cluster.log(chat);
    assert!(
        log.contains("member lost with its connector"),
        "the member-lost path ran:\n{log}"
    );
}
