//! The chat app as a Pomelo user runs it: every server its own OS process
//! (`game-server --env development --server-id <id>`) on loopback, driven by
//! the real Rust Pomelo client through gate → connector → chat.
//!
//! Every scenario runs on two topologies generated into servers.json —
//! 1 connector + 1 chat server and 3 + 3 — with the same binary and the
//! same test code: editing servers.json is all it takes to scale.

mod support;

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use shaddock::cluster::forward::DEFAULT_FORWARD_TIMEOUT;
use shaddock::hash::dispatch_index;
use shared::{EnterResponse, PUSH_ADD, PUSH_CHAT, PUSH_LEAVE, TARGET_ALL};
use support::Topo;
use support::chat::{
    WAIT, chat_of_room, connect, enter, login, name_on_connector, query_entry, room_on_chat,
};

/// Runs each scenario on 1 + 1 and on 3 + 3.
macro_rules! on_both_topologies {
    ($($name:ident),* $(,)?) => {
        mod one_plus_one {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                super::$name(super::Topo::new(1, 1)).await
            })*
        }
        mod three_plus_three {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                super::$name(super::Topo::new(3, 3)).await
            })*
        }
    };
}

on_both_topologies!(
    gate_sends_each_user_to_the_connector_of_its_uid_hash,
    frontends_announce_chatofpomelo_options,
    rooms_live_on_the_chat_server_of_their_room_hash,
    a_room_spanning_connectors_delivers_every_message_once_to_every_member,
    private_messages_reach_only_their_target,
    joining_and_disconnecting_push_on_add_and_on_leave,
    duplicate_login_is_refused_and_the_first_session_keeps_chatting,
    a_request_whose_chat_server_is_down_gets_500_within_the_rpc_timeout,
);

/// Users land on `connectors[|crc32(uid)| mod n]` (servers.json order), and
/// the gate answers `{"code":500}` without a uid.
async fn gate_sends_each_user_to_the_connector_of_its_uid_hash(topo: Topo) {
    let cluster = support::start(topo).await;
    let connectors = cluster.of_type("connector");
    let n = connectors.len();
    // §11.17 with three connectors: hello → 2nd, alice/bob → 3rd, 中文 → 1st.
    let table: &[(&str, usize)] = &[("hello", 1), ("alice", 2), ("bob", 2), ("中文", 0)];
    for &(uid, index_of_three) in table {
        let entry = query_entry(&cluster, uid).await;
        let want = if n == 3 { index_of_three } else { 0 };
        assert_eq!(entry.code, 200);
        assert_eq!(entry.host.as_deref(), Some("127.0.0.1"));
        assert_eq!(entry.port, connectors[want].client_port, "uid {uid}");
    }
    let mut seen = vec![0; n];
    for k in 0..12 {
        let name = format!("user{k}");
        let (user, users) = enter(&cluster, &name, "lobby").await;
        let index = dispatch_index(&name, n).unwrap();
        assert_eq!(Some(user.port), connectors[index].client_port, "{name}");
        assert!(users.contains(&name));
        seen[index] += 1;
    }
    assert!(
        seen.iter().all(|&c| c > 0),
        "every connector got users: {seen:?}"
    );

    let gate = connect(&cluster.gate_url()).await;
    for body in [json!({}), json!({"uid": ""}), json!({"uid": 5})] {
        let resp: Value = gate
            .request(shared::ROUTE_QUERY_ENTRY, &body)
            .await
            .unwrap();
        assert_eq!(resp, json!({"code": 500}), "request {body}");
    }
}

/// §7.2: connectors have heartbeat 3 s and the route dictionary with
/// chatofpomelo's codes; the gate has neither.
async fn frontends_announce_chatofpomelo_options(topo: Topo) {
    let cluster = support::start(topo).await;
    let gate = connect(&cluster.gate_url()).await;
    let sys = &gate.handshake().sys;
    assert_eq!(sys.heartbeat, None, "the gate has no heartbeat");
    assert!(
        sys.dict.is_none() && gate.dictionary().is_none(),
        "the gate sends no dict"
    );
    for c in cluster.of_type("connector") {
        let client = connect(&format!("ws://127.0.0.1:{}", c.client_port.unwrap())).await;
        let sys = &client.handshake().sys;
        assert_eq!(sys.heartbeat, Some(3), "{}", c.id);
        assert_eq!(sys.use_dict, Some(true));
        let dict = client.dictionary().expect("a route dictionary");
        assert_eq!(dict.code(shared::ROUTE_SEND), Some(1));
        assert_eq!(dict.code(shared::ROUTE_ENTER), Some(2));
        assert_eq!(dict.code(shared::ROUTE_QUERY_ENTRY), Some(3));
        assert_eq!(dict.len(), 3);
    }
}

/// Each room's `chatRemote.add` runs on the chat server rendezvous hashing
/// picks for its id (the chat servers' own logs say so, and no other chat
/// server saw the room), and `send` is forwarded there too (it finds the
/// room's channel).
async fn rooms_live_on_the_chat_server_of_their_room_hash(topo: Topo) {
    let cluster = support::start(topo).await;
    let chats: Vec<String> = cluster
        .of_type("chat")
        .iter()
        .map(|s| s.id.clone())
        .collect();
    let n = chats.len();
    let mut rooms: Vec<(String, usize)> = ["room1", "lobby", "中文"]
        .iter()
        .map(|rid| (rid.to_string(), chat_of_room(rid, n)))
        .collect();
    for i in 0..n {
        rooms.push((room_on_chat("room_", i, n), i));
    }
    let mut users = Vec::new();
    for (k, (rid, index)) in rooms.iter().enumerate() {
        let (user, _) = enter(&cluster, &format!("u{k}"), rid).await;
        let home = &chats[*index];
        let needle = format!("rid={rid} ");
        assert!(
            cluster
                .wait_log_line(home, &["user joined room", &needle], WAIT)
                .await,
            "room {rid} should have joined on {home}; its log:\n{}",
            cluster.log(home)
        );
        assert_eq!(
            user.send("hi", TARGET_ALL).await,
            json!({}),
            "send reaches room {rid}"
        );
        assert_eq!(user.expect_push(PUSH_CHAT).await["msg"], "hi");
        users.push(user);
    }
    for (rid, index) in &rooms {
        let needle = format!("rid={rid} ");
        for (i, other) in chats.iter().enumerate().filter(|(i, _)| i != index) {
            let stray = cluster
                .log(other)
                .lines()
                .any(|l| l.contains("user joined room") && l.contains(&needle));
            assert!(!stray, "room {rid} also joined on chat server #{i} {other}");
        }
    }
}

/// Members on different connectors (one per connector on 3 + 3) each get
/// every room message exactly once, the sender included.
async fn a_room_spanning_connectors_delivers_every_message_once_to_every_member(topo: Topo) {
    let cluster = support::start(topo).await;
    let n = topo.connectors;
    let rid = "room1";
    let names: Vec<String> = (0..3)
        .map(|i| name_on_connector(&format!("m{i}_"), i % n, n))
        .collect();
    let mut members = Vec::new();
    for (i, name) in names.iter().enumerate() {
        let (user, users) = enter(&cluster, name, rid).await;
        assert_eq!(users, names[..=i], "members listed in join order");
        for earlier in &members {
            let earlier: &support::chat::User = earlier;
            assert_eq!(earlier.expect_push(PUSH_ADD).await["user"], name.as_str());
        }
        members.push(user);
    }
    let ports: std::collections::BTreeSet<u16> = members.iter().map(|m| m.port).collect();
    assert_eq!(ports.len(), n.min(3), "members sit on {n} connectors");

    for (i, m) in members.iter().enumerate() {
        for j in 0..2 {
            assert_eq!(m.send(&format!("msg {i}.{j}"), TARGET_ALL).await, json!({}));
        }
    }
    let mut want: Vec<(String, String)> = Vec::new();
    for (i, m) in members.iter().enumerate() {
        for j in 0..2 {
            want.push((m.name.clone(), format!("msg {i}.{j}")));
        }
    }
    want.sort();
    for m in &members {
        let mut got = Vec::new();
        for _ in 0..want.len() {
            let body = m.expect_push(PUSH_CHAT).await;
            assert_eq!(body["target"], TARGET_ALL);
            got.push((
                body["from"].as_str().unwrap().to_string(),
                body["msg"].as_str().unwrap().to_string(),
            ));
        }
        got.sort();
        assert_eq!(got, want, "{} got every message once", m.name);
    }
    for m in &members {
        m.expect_silence().await;
    }
}

/// A private message is pushed to its target only (not even echoed to the
/// sender); an unknown target is `{"code":500,"error":true}`.
async fn private_messages_reach_only_their_target(topo: Topo) {
    let cluster = support::start(topo).await;
    let n = topo.connectors;
    let rid = "lobby";
    let (a, _) = enter(&cluster, &name_on_connector("a", 0, n), rid).await;
    let (b, _) = enter(&cluster, &name_on_connector("b", 1 % n, n), rid).await;
    let (c, _) = enter(&cluster, &name_on_connector("c", 2 % n, n), rid).await;
    a.expect_push(PUSH_ADD).await;
    a.expect_push(PUSH_ADD).await;
    b.expect_push(PUSH_ADD).await;

    let raw = a
        .client
        .request_raw(
            shared::ROUTE_SEND,
            serde_json::to_vec(&json!({"content": "psst", "target": c.name})).unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(&raw[..], b"{}", "the response is exactly {{}}");
    let body = c.expect_push(PUSH_CHAT).await;
    assert_eq!(
        body,
        json!({"msg": "psst", "from": a.name, "target": c.name})
    );
    for u in [&a, &b, &c] {
        u.expect_silence().await;
    }
    // Same name in another room is another user.
    let (elsewhere, _) = enter(&cluster, &b.name, "elsewhere").await;
    assert_eq!(a.send("to b", &b.name).await, json!({}));
    assert_eq!(b.expect_push(PUSH_CHAT).await["msg"], "to b");
    elsewhere.expect_silence().await;

    assert_eq!(
        a.send("?", "nobody").await,
        json!({"code": 500, "error": true})
    );
    for u in [&a, &b, &c] {
        u.expect_silence().await;
    }
}

/// `onAdd` goes to the members already there, `onLeave` to those left when
/// a member disconnects (§7.4 bodies); the leaver is out of the room.
async fn joining_and_disconnecting_push_on_add_and_on_leave(topo: Topo) {
    let cluster = support::start(topo).await;
    let n = topo.connectors;
    let rid = "hello";
    let (amy, users) = enter(&cluster, &name_on_connector("amy", 0, n), rid).await;
    assert_eq!(users, [amy.name.as_str()]);
    let (bob, users) = enter(&cluster, &name_on_connector("bob", n - 1, n), rid).await;
    assert_eq!(users, [amy.name.clone(), bob.name.clone()]);
    let add = amy.client.next_push_timeout(WAIT).await.unwrap();
    assert_eq!(add.route, PUSH_ADD);
    let add: Value = add.json().unwrap();
    assert_eq!(add, json!({"route": "onAdd", "user": bob.name}));
    bob.expect_silence().await;

    bob.client.close().await;
    let leave = amy.expect_push(PUSH_LEAVE).await;
    assert_eq!(leave, json!({"route": "onLeave", "user": bob.name}));
    let (cat, users) = enter(&cluster, "cat", rid).await;
    assert_eq!(users, [amy.name.clone(), "cat".into()], "bob left the room");
    assert_eq!(amy.expect_push(PUSH_ADD).await["user"], "cat");
    // A dropped connection (no clean close) leaves the room too.
    drop(cat);
    assert_eq!(amy.expect_push(PUSH_LEAVE).await["user"], "cat");
}

/// The same name in the same room on its connector → `{"code":500,"error":true}`;
/// the first session and the room are unaffected.
async fn duplicate_login_is_refused_and_the_first_session_keeps_chatting(topo: Topo) {
    let cluster = support::start(topo).await;
    let (first, _) = enter(&cluster, "bob", "room1").await;
    let (other, _) = enter(&cluster, "amy", "room1").await;
    first.expect_push(PUSH_ADD).await;

    let (dup, resp) = login(&cluster, "bob", "room1").await;
    assert_eq!(resp, EnterResponse::duplicate());
    assert_eq!(
        dup.port, first.port,
        "the gate sends a name to one connector"
    );
    let raw = dup
        .client
        .request_raw(
            shared::ROUTE_ENTER,
            &br#"{"username":"bob","rid":"room1"}"#[..],
        )
        .await
        .unwrap();
    assert_eq!(&raw[..], br#"{"code":500,"error":true}"#);
    assert!(dup.client.is_open(), "the socket stays open");
    for u in [&first, &other] {
        u.expect_silence().await;
    }
    // The refused session is not in the room: a send from it finds no room.
    assert_eq!(
        dup.send("x", TARGET_ALL).await,
        json!({"code": 500, "error": true})
    );
    assert_eq!(first.send("still here", TARGET_ALL).await, json!({}));
    for u in [&first, &other] {
        assert_eq!(u.expect_push(PUSH_CHAT).await["msg"], "still here");
    }
    dup.expect_silence().await;
    // Another room is fine with the same name.
    let (_, users) = enter(&cluster, "bob", "room2").await;
    assert_eq!(users, ["bob"]);
}

/// Sends `chat.chatHandler.send` and asserts the answer is `{"code":500}`
/// (never a hang: `limit` bounds the wait); returns how long it took.
async fn send_expecting_500(
    client: &shaddock_client::Client,
    body: &[u8],
    limit: Duration,
) -> Duration {
    let started = Instant::now();
    let raw = client
        .request_raw_timeout(shared::ROUTE_SEND, body.to_vec(), limit)
        .await
        .expect("an answer, not a hang");
    assert_eq!(
        serde_json::from_slice::<Value>(&raw).unwrap(),
        json!({"code": 500})
    );
    started.elapsed()
}

/// A chat server that hangs (SIGSTOP) or crashed (SIGKILL): requests routed
/// to it answer `{"code":500}` within the RPC timeout — never a hang; rooms
/// on other chat servers keep working, and so does the connector.
async fn a_request_whose_chat_server_is_down_gets_500_within_the_rpc_timeout(topo: Topo) {
    let mut cluster = support::start(topo).await;
    let n = topo.chats;
    let chats: Vec<String> = cluster
        .of_type("chat")
        .iter()
        .map(|s| s.id.clone())
        .collect();
    let doomed_room = room_on_chat("doomed_", 0, n);
    let (victim, _) = enter(&cluster, "victim", &doomed_room).await;
    let mut survivors = Vec::new();
    for i in 1..n {
        survivors.push(
            enter(&cluster, &format!("s{i}"), &room_on_chat("alive_", i, n))
                .await
                .0,
        );
    }
    let timeout = DEFAULT_FORWARD_TIMEOUT;
    let slack = Duration::from_secs(3);
    let body = serde_json::to_vec(&json!({"content": "hello?", "target": "*"})).unwrap();

    // Hung: the request waits for the RPC timeout, then gets 500.
    cluster.freeze(&chats[0]);
    let took = send_expecting_500(&victim.client, &body, (timeout + slack) * 2).await;
    assert!(
        took >= timeout - Duration::from_millis(100) && took < timeout + slack,
        "hung backend answered in {took:?}"
    );
    println!("send to a hung chat server answered 500 in {took:?} (RPC timeout {timeout:?})");
    for s in &survivors {
        assert_eq!(s.send("while hung", TARGET_ALL).await, json!({}));
        assert_eq!(s.expect_push(PUSH_CHAT).await["msg"], "while hung");
    }

    // Crashed: refused at once.
    cluster.kill(&chats[0]);
    let took = send_expecting_500(&victim.client, &body, (timeout + slack) * 2).await;
    assert!(
        took < timeout + slack,
        "crashed backend answered in {took:?}"
    );
    println!("send to a crashed chat server answered 500 in {took:?}");

    // enter's chatRemote.add fails → chatofpomelo's {"code":500,"error":true}.
    let started = Instant::now();
    let (_late, resp) = login(&cluster, "late", &doomed_room).await;
    assert_eq!(resp, EnterResponse::duplicate());
    assert!(started.elapsed() < timeout + slack);

    for s in &survivors {
        assert_eq!(s.send("fine", TARGET_ALL).await, json!({}));
        assert_eq!(s.expect_push(PUSH_CHAT).await["msg"], "fine");
    }
    // The victim's connector still serves it.
    assert!(victim.client.is_open());
    let entry = query_entry(&cluster, "victim").await;
    assert_eq!(entry.port, Some(victim.port));
}
