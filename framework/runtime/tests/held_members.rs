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
        let (pool, server, uid) = (pool.clone(), server.to_string(), uid.to_string());
        async move { reattach_rpc(&pool, &server, room, &uid).await }
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

/// The `Reattach` call a resumed session's frontend makes: `uid` in `key`
/// on `owner`, from connector 1 to connector 2.
async fn reattach_rpc(
    pool: &shaddock::cluster::Pool,
    owner: &str,
    key: &str,
    uid: &str,
) -> shaddock::cluster::proto::ReattachReply {
    let mut client = ClusterClient::new(pool.channel(owner).unwrap());
    client
        .reattach(ReattachRequest {
            server_type: "chat".into(),
            key: key.into(),
            uid: uid.into(),
            from_frontend: CONNECTORS[0].into(),
            to_frontend: CONNECTORS[1].into(),
        })
        .await
        .unwrap()
        .into_inner()
}

/// alice bound on connector `at`, each of `rooms` registered there, and
/// added to `rooms` on their owner with a resume window (the chat's join
/// passes the window; here it is direct).
async fn resumable_alice(
    cluster: &TestCluster,
    at: usize,
    rooms: &[&str],
) -> (
    shaddock_client::Client,
    Vec<std::sync::Arc<shaddock::cluster::Channel>>,
) {
    let alice = cluster.client(at).await;
    let _: Value = alice
        .request("chat.room.bind", &json!({"uid": "alice"}))
        .await
        .unwrap();
    let mut channels = Vec::new();
    let sessions = cluster.connectors[at].app.sessions();
    let sid = sessions.by_uid("alice")[0].id();
    for room in rooms {
        // The frontend records the key, as the chat's `enter` does: a
        // probe hands a held member back only to a frontend that lists it.
        sessions.register_key(sid, "chat", room, "alice").unwrap();
        let owner = cluster
            .chats
            .iter()
            .find(|n| n.app.server_id() == chat_for_room(room))
            .unwrap();
        let (channel, added) = owner.app.channels().add_member_with(
            room,
            "alice",
            CONNECTORS[at],
            Some(Duration::from_secs(30)),
        );
        assert!(added);
        channels.push(channel);
    }
    (alice, channels)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frontend_that_answers_again_gets_its_held_member_back() {
    let mut cluster = TestCluster::start_sharded().await;
    let (alice, channels) = resumable_alice(&cluster, 0, &["lobby"]).await;
    let lobby = &channels[0];
    cluster.connectors[0].stop_rpc().await;
    let report = lobby.push("onChat", &json!({"n": 1})).await.unwrap();
    assert!(report.failed.is_empty());
    assert!(lobby.is_held("alice"));
    // Connector 1 was only unreachable for a moment: its session is still
    // there. The owner's probe hands the held push over and makes alice
    // live again, without any Reattach call.
    cluster.connectors[0].restart_rpc().await;
    assert_eq!(push_of(&alice, "onChat").await["n"], 1);
    shaddock_testkit::eventually_async("alice live again", WAIT, || async {
        !lobby.is_held("alice")
    })
    .await;
    assert_eq!(lobby.members_at(CONNECTORS[0]), ["alice"]);
    lobby.push("onChat", &json!({"n": 2})).await.unwrap();
    assert_eq!(push_of(&alice, "onChat").await["n"], 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn held_pushes_and_new_ones_arrive_in_order_over_concurrent_reattaches() {
    let mut cluster = TestCluster::start_sharded().await;
    let lobby_owner = chat_for_room("lobby");
    let other = (0..)
        .map(|i| format!("room-{i}"))
        .find(|r| chat_for_room(r) == lobby_owner)
        .unwrap();
    let (_alice, channels) = resumable_alice(&cluster, 0, &["lobby", &other]).await;
    let (lobby, hall) = (channels[0].clone(), channels[1].clone());
    cluster.connectors[0].stop_rpc().await;
    // Held pushes from both channels share one buffer, in push order.
    for n in 0..20 {
        let channel = if n % 2 == 0 { &lobby } else { &hall };
        let report = channel.push("onChat", &json!({ "n": n })).await.unwrap();
        assert!(report.failed.is_empty(), "{n}: {report:?}");
    }
    assert!(lobby.is_held("alice") && hall.is_held("alice"));

    let resumed = cluster.client(1).await;
    let _: Value = resumed
        .request("chat.room.bind", &json!({"uid": "alice"}))
        .await
        .unwrap();
    let pool = cluster.connectors[1].cluster.pool().clone();
    let reattach = |key: String| {
        let pool = pool.clone();
        async move { reattach_rpc(&pool, lobby_owner, &key, "alice").await }
    };
    // Both rooms reattach at once while the lobby keeps pushing: nothing
    // new may overtake a held push.
    let pushing = async {
        for n in 20..60 {
            lobby.push("onChat", &json!({ "n": n })).await.unwrap();
            tokio::task::yield_now().await;
        }
    };
    let (a, b, ()) = tokio::join!(reattach("lobby".into()), reattach(other.clone()), pushing);
    assert!(a.reattached && b.reattached, "{a:?} {b:?}");
    assert!(a.flushed + b.flushed >= 20, "{a:?} {b:?}");
    let mut got = Vec::new();
    for _ in 0..60 {
        got.push(push_of(&resumed, "onChat").await["n"].as_u64().unwrap());
    }
    assert_eq!(got, (0..60).collect::<Vec<_>>());
    assert_eq!(lobby.member("alice").as_deref(), Some(CONNECTORS[1]));
    assert_eq!(hall.member("alice").as_deref(), Some(CONNECTORS[1]));
    assert!(!lobby.is_held("alice") && !hall.is_held("alice"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_window_a_pull_brings_decides_who_is_held_when_a_frontend_leaves() {
    let cluster = TestCluster::start_sharded().await;
    let room = "lobby";
    let owner = cluster
        .chats
        .iter()
        .find(|n| n.app.server_id() == chat_for_room(room))
        .unwrap();
    let keeper = owner.app.shard_keeper().expect("a sharded chat server");
    // alice's client asked for resume, carol's did not; both registered
    // the room on connector 1.
    let alice = shaddock_client::Client::connect(
        &cluster.connectors[0].ws_url(),
        shaddock_client::ClientOptions {
            resumable: true,
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let carol = cluster.client(0).await;
    for (client, uid) in [(&alice, "alice"), (&carol, "carol")] {
        let _: Value = client
            .request(
                "connector.entry.register",
                &json!({"uid": uid, "room": room}),
            )
            .await
            .unwrap();
    }
    keeper.reconcile_frontend(CONNECTORS[0]).await;
    let channel = owner
        .app
        .channels()
        .get(room, false)
        .expect("rebuilt by the pull");
    // The frontend lists its sessions in no particular order.
    let mut at = channel.members_at(CONNECTORS[0]);
    at.sort();
    assert_eq!(at, ["alice", "carol"]);

    // Connector 1 leaves the owner's list: carol is removed, alice held.
    let servers = owner.cluster.servers();
    let rest: Vec<_> = servers
        .snapshot()
        .all()
        .iter()
        .filter(|s| s.id != CONNECTORS[0])
        .cloned()
        .collect();
    servers.replace(rest);
    keeper.reconcile_all().await;
    assert!(channel.member("carol").is_none(), "no window: removed");
    assert!(channel.is_held("alice"), "a window came with the pull");
    assert_eq!(channel.members_list(), ["alice"]);
    assert!(channel.frontends().is_empty());

    channel.push("onChat", &json!({"n": 1})).await.unwrap();
    let resumed = cluster.client(1).await;
    let _: Value = resumed
        .request("chat.room.bind", &json!({"uid": "alice"}))
        .await
        .unwrap();
    let reply = keeper
        .reattach(ReattachRequest {
            server_type: "chat".into(),
            key: room.into(),
            uid: "alice".into(),
            from_frontend: CONNECTORS[0].into(),
            to_frontend: CONNECTORS[1].into(),
        })
        .await;
    assert!(reply.reattached && reply.flushed == 1, "{reply:?}");
    assert_eq!(push_of(&resumed, "onChat").await["n"], 1);
    assert_eq!(channel.members_at(CONNECTORS[1]), ["alice"]);
}
