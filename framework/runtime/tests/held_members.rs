//! Resume after a connector crash, backend half: the owner of a sharded
//! channel holds a member whose connector cannot be reached, keeps its
//! pushes, and hands them over on `Reattach` to the session's new
//! connector — real servers on loopback, real gRPC, a real client.

mod support;

use std::time::Duration;

use serde_json::{Value, json};
use shaddock::cluster::proto::{ReattachRequest, cluster_client::ClusterClient};
use shaddock_client::Push;
use support::cluster_harness::{CHATS, CONNECTORS, TestCluster, chat_for_room};

const WAIT: Duration = Duration::from_secs(5);

async fn push_of(client: &shaddock_client::Client, route: &str) -> Value {
    let push: Push = client.next_push_timeout(WAIT).await.expect("a push");
    assert_eq!(push.route, route, "unexpected push {push:?}");
    push.json().expect("JSON push body")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_held_member_gets_its_pushes_on_the_connector_it_resumed_on() {
    let mut cluster = TestCluster::start_sharded().await;
    let room = "lobby";
    let owner_id = chat_for_room(room);
    let other_id = CHATS.iter().find(|c| **c != owner_id).unwrap();
    let owner = cluster
        .chats
        .iter()
        .find(|n| n.app.server_id() == owner_id)
        .unwrap();
    let channels = owner.app.channels().clone();

    // bob (connector 2) is in the room; alice joined through connector 1
    // with a resume window.
    let (bob, _) = cluster.enter(1, "bob", room).await;
    let alice = cluster.client(0).await;
    let _: Value = alice
        .request("chat.room.bind", &json!({"uid": "alice"}))
        .await
        .unwrap();
    let (channel, added) =
        channels.add_member_with(room, "alice", CONNECTORS[0], Some(Duration::from_secs(30)));
    assert!(added);

    // Connector 1 stops answering: the push to it fails, alice is held
    // and the push kept for her, not reported failed.
    cluster.connectors[0].stop_rpc().await;
    let sent: Value = bob
        .request("chat.room.send", &json!({"content": "while you were away"}))
        .await
        .unwrap();
    assert_eq!(sent["failed"], json!([]), "alice is held, not failed");
    assert_eq!(
        push_of(&bob, "onChat").await["content"],
        "while you were away"
    );
    assert!(channel.is_held("alice"));
    assert_eq!(channel.members_list(), ["bob", "alice"]);
    assert!(channel.members_at(CONNECTORS[0]).is_empty());

    // alice's session is rebuilt on connector 2 (the lead's half; here a
    // plain bind), which asks the room's owner for the member.
    let resumed = cluster.client(1).await;
    let _: Value = resumed
        .request("chat.room.bind", &json!({"uid": "alice"}))
        .await
        .unwrap();
    let pool = cluster.connectors[1].cluster.pool().clone();
    let reattach = |server: &str, uid: &str| {
        let pool = pool.clone();
        let (server, uid) = (server.to_string(), uid.to_string());
        async move {
            let mut client = ClusterClient::new(pool.channel(&server).unwrap());
            client
                .reattach(ReattachRequest {
                    server_type: "chat".into(),
                    key: room.into(),
                    uid,
                    from_frontend: CONNECTORS[0].into(),
                    to_frontend: CONNECTORS[1].into(),
                })
                .await
                .unwrap()
                .into_inner()
        }
    };
    let refused = reattach(other_id, "alice").await;
    assert!(!refused.reattached);
    assert_eq!(
        refused.reason,
        format!("{other_id} is not the owner of {room}")
    );
    let refused = reattach(owner_id, "carol").await;
    assert!(!refused.reattached);
    assert_eq!(refused.reason, format!("no member carol in {room}"));

    let reply = reattach(owner_id, "alice").await;
    assert!(reply.reattached, "{}", reply.reason);
    assert_eq!(reply.flushed, 1);
    assert_eq!(
        push_of(&resumed, "onChat").await["content"],
        "while you were away",
        "the held push reaches the resumed session"
    );
    assert!(!channel.is_held("alice"));
    assert_eq!(channel.member("alice").as_deref(), Some(CONNECTORS[1]));
    assert_eq!(channels.held_count(), 0);

    // Live again: new pushes go straight to the new connector.
    let _: Value = bob
        .request("chat.room.send", &json!({"content": "welcome back"}))
        .await
        .unwrap();
    assert_eq!(push_of(&resumed, "onChat").await["content"], "welcome back");
    assert_eq!(push_of(&bob, "onChat").await["content"], "welcome back");
    // A retry is answered, with nothing left to send.
    let again = reattach(owner_id, "alice").await;
    assert!(again.reattached && again.flushed == 0, "{again:?}");
}
