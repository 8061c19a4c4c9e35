//! Cluster RPC end to end: two connectors and two chat backends in one
//! process, each with its own real gRPC server and WebSocket listener on a
//! free loopback port, driven by the Rust Pomelo client.

mod support;

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use shaddock::cluster::{ClusterError, ClusterOptions, RemoteSessionOps, SessionSnapshot};
use shaddock::connector::DuplicateLogin;
use shaddock_client::{CloseReason, Push};
use shaddock_testkit::eventually_async;
use support::cluster_harness::echo::{SayRequest, echo_client::EchoClient};
use support::cluster_harness::{
    CHATS, CONNECTORS, NOTES, SESSION_EVENTS, TestCluster, chat_for_room,
};

const QUIET: Duration = Duration::from_millis(300);
const WAIT: Duration = Duration::from_secs(5);

async fn push_of(client: &shaddock_client::Client, route: &str) -> Value {
    let push: Push = client.next_push_timeout(WAIT).await.expect("a push");
    assert_eq!(push.route, route, "unexpected push {push:?}");
    push.json().expect("JSON push body")
}

async fn assert_no_push(client: &shaddock_client::Client) {
    if let Ok(p) = client.next_push_timeout(QUIET).await {
        panic!(
            "unexpected extra push {:?} {}",
            p.route,
            String::from_utf8_lossy(&p.body)
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forwarded_request_reaches_the_routed_backend_with_the_session() {
    let cluster = TestCluster::start().await;
    for room in ["room1", "lobby", "hello", "中文"] {
        let (client, users) = cluster.enter(1, &format!("bob-{room}"), room).await;
        assert_eq!(users, vec![format!("bob-{room}")]);
        let who: Value = client
            .request("chat.room.whoami", &json!({}))
            .await
            .unwrap();
        assert_eq!(who["server"], chat_for_room(room), "room {room}");
        assert_eq!(who["uid"], format!("bob-{room}"));
        assert_eq!(who["frontend"], CONNECTORS[1]);
        assert_eq!(
            who["room"], room,
            "settings pushed by the frontend travel with the request"
        );
        assert_eq!(who["local"], false);
        client.close().await;
    }
    // No uid, no room: the key is "" → index 0 (§6.2).
    let client = cluster.client(0).await;
    let who: Value = client
        .request("chat.room.whoami", &json!({}))
        .await
        .unwrap();
    assert_eq!(who["server"], CHATS[0]);
    assert_eq!(who["uid"], Value::Null);
    // A route of an unknown server type is a 500, not a hang.
    let resp: Value = client
        .request("nope.room.whoami", &json!({}))
        .await
        .unwrap();
    assert_eq!(resp, json!({"code": 500}));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backend_binds_pushes_settings_and_kicks_through_the_frontend() {
    let cluster = TestCluster::start().await;
    let client = cluster.client(0).await;
    let frontend = &cluster.connectors[0].app;

    let resp: Value = client
        .request("chat.room.bind", &json!({"uid": "alice"}))
        .await
        .unwrap();
    assert_eq!(resp, json!({"uid": "alice"}));
    let sessions = frontend.sessions().by_uid("alice");
    assert_eq!(sessions.len(), 1, "the frontend session is bound");
    let sid = sessions[0].id();

    // Binding another uid is refused by the frontend → 500 for the client.
    let resp: Value = client
        .request("chat.room.bind", &json!({"uid": "mallory"}))
        .await
        .unwrap();
    assert_eq!(resp["code"], 500);
    assert!(frontend.sessions().by_uid("mallory").is_empty());

    let resp: Value = client
        .request(
            "chat.room.settings",
            &json!({"key": "level", "value": {"n": 7}}),
        )
        .await
        .unwrap();
    assert_eq!(resp, json!({}));
    let snap = frontend.sessions().snapshot(sid).unwrap();
    assert_eq!(snap.settings["level"], json!({"n": 7}));
    // …and the next forwarded request carries it.
    let who: Value = client
        .request("chat.room.whoami", &json!({}))
        .await
        .unwrap();
    assert_eq!(who["uid"], "alice");

    let _ = client
        .request::<_, Value>("chat.room.kick", &json!({"reason": "bye"}))
        .await;
    let reason = client
        .closed_within(WAIT)
        .await
        .expect("the client is kicked");
    assert_eq!(reason, CloseReason::Kicked("bye".into()));

    // Errors name what failed.
    let ops = cluster.chats[0].cluster.session_ops();
    let err = ops.bind(CONNECTORS[0], 999_999, "x").await.unwrap_err();
    assert!(
        matches!(err, ClusterError::NoSuchSession { ref frontend, sid: 999_999 } if frontend == CONNECTORS[0]),
        "{err}"
    );
    let err = ops.kick_by_sid(CHATS[1], 1, "x").await.unwrap_err();
    assert!(err.to_string().contains("not a frontend"), "{err}");
    let err = ops.kick_by_uid("nowhere", "x", "y").await.unwrap_err();
    assert!(matches!(err, ClusterError::UnknownServer(_)), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kick_by_uid_from_a_backend_reaches_the_user_on_another_connector() {
    let cluster = TestCluster::start().await;
    let (alice, _) = cluster.enter(0, "alice", "room1").await;
    let (bob, _) = cluster.enter(1, "bob", "room1").await;
    // Bob's request runs on a chat server, which kicks alice without
    // knowing that connector 0 holds her.
    let resp: Value = bob
        .request("chat.room.kick_uid", &json!({"uid": "alice"}))
        .await
        .unwrap();
    assert_eq!(resp, json!({"unreachable": []}));
    assert_eq!(
        alice.closed_within(WAIT).await,
        Some(CloseReason::Kicked("kicked by uid".into()))
    );
    assert!(bob.is_open(), "only alice is kicked");
    // A uid nobody holds: every frontend answers, nothing happens.
    let resp: Value = bob
        .request("chat.room.kick_uid", &json!({"uid": "nobody"}))
        .await
        .unwrap();
    assert_eq!(resp, json!({"unreachable": []}));
    assert!(bob.is_open());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backends_that_subscribed_hear_of_session_binds_and_closes() {
    let cluster = TestCluster::start().await;
    let (evan, _) = cluster.enter(1, "evan", "room9").await;
    // Each chat server hears of the bind, whichever one runs evan's room.
    let seen = |needle: String| {
        let events = SESSION_EVENTS.lock().unwrap().clone();
        CHATS.iter().all(|chat| {
            events
                .iter()
                .any(|e| e.starts_with(&format!("{chat} {needle}")))
        })
    };
    let bound = format!("Bound evan {}", CONNECTORS[1]);
    eventually_async("every chat server to hear evan's bind", WAIT, || {
        let ok = seen(bound.clone());
        async move { ok }
    })
    .await;
    evan.close().await;
    let closed = format!("Closed evan {} client closed", CONNECTORS[1]);
    eventually_async("every chat server to hear evan's close", WAIT, || {
        let ok = seen(closed.clone());
        async move { ok }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn channel_push_reaches_members_on_two_frontends_exactly_once() {
    let cluster = TestCluster::start().await;
    let room = "room1";
    let (a, users) = cluster.enter(0, "a", room).await;
    assert_eq!(users, ["a"]);
    let (c, users) = cluster.enter(1, "c", room).await;
    assert_eq!(users, ["a", "c"]);
    assert_eq!(push_of(&a, "onAdd").await, json!({"user": "c"}));
    let (b, users) = cluster.enter(0, "b", room).await;
    // Grouped by frontend (first-join order), then join order.
    assert_eq!(users, ["a", "b", "c"]);
    assert_eq!(push_of(&a, "onAdd").await, json!({"user": "b"}));
    assert_eq!(push_of(&c, "onAdd").await, json!({"user": "b"}));

    let resp: Value = b
        .request("chat.room.send", &json!({"content": "hi"}))
        .await
        .unwrap();
    assert_eq!(resp, json!({"failed": []}));
    for client in [&a, &b, &c] {
        let body = push_of(client, "onChat").await;
        assert_eq!(body["from"], "b");
        assert_eq!(body["content"], "hi");
        assert_eq!(body["server"], chat_for_room(room));
    }
    for client in [&a, &b, &c] {
        assert_no_push(client).await;
    }

    // Many pushes in flight at once arrive in the order they were made.
    let resp: Value = c
        .request("chat.room.burst", &json!({"n": 200}))
        .await
        .unwrap();
    assert_eq!(resp, json!({}));
    for client in [&a, &b, &c] {
        for seq in 0..200 {
            assert_eq!(push_of(client, "onSeq").await, json!({ "seq": seq }));
        }
    }

    // Push by uids: only the targets, once; an unknown uid is reported.
    let resp: Value = a
        .request(
            "chat.room.whisper",
            &json!({"targets": ["c", "b", "ghost"], "content": "psst"}),
        )
        .await
        .unwrap();
    assert_eq!(resp, json!({"failed": ["ghost"]}));
    assert_eq!(
        push_of(&b, "onWhisper").await,
        json!({"from": "a", "content": "psst"})
    );
    assert_eq!(
        push_of(&c, "onWhisper").await,
        json!({"from": "a", "content": "psst"})
    );
    for client in [&a, &b, &c] {
        assert_no_push(client).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn closing_a_session_runs_its_closed_listener_and_the_room_hears_it() {
    let cluster = TestCluster::start().await;
    let (a, _) = cluster.enter(0, "a", "lobby").await;
    let (c, _) = cluster.enter(1, "c", "lobby").await;
    assert_eq!(push_of(&a, "onAdd").await, json!({"user": "c"}));
    a.close().await;
    assert_eq!(push_of(&c, "onLeave").await, json!({"user": "a"}));
    let chat = cluster
        .chats
        .iter()
        .find(|n| n.app.server_id() == chat_for_room("lobby"))
        .unwrap();
    let channel = chat.app.channels().get("lobby", false).unwrap();
    assert_eq!(channel.members_list(), ["c"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broadcast_reaches_every_session_of_every_frontend() {
    let cluster = TestCluster::start().await;
    let (a, _) = cluster.enter(0, "a", "r1").await;
    let (b, _) = cluster.enter(1, "b", "r2").await;
    let anon = cluster.client(1).await;
    // One round trip: the server has processed the handshake ACK, so the
    // session is working and takes pushes.
    let _: Value = anon.request("chat.room.whoami", &json!({})).await.unwrap();

    let resp: Value = a
        .request(
            "chat.room.broadcast",
            &json!({"content": "all", "binded_only": false}),
        )
        .await
        .unwrap();
    assert_eq!(resp, json!({"failed": []}));
    for client in [&a, &b, &anon] {
        assert_eq!(
            push_of(client, "onBroadcast").await,
            json!({"content": "all"})
        );
    }
    let _: Value = a
        .request(
            "chat.room.broadcast",
            &json!({"content": "bound", "binded_only": true}),
        )
        .await
        .unwrap();
    for client in [&a, &b] {
        assert_eq!(
            push_of(client, "onBroadcast").await,
            json!({"content": "bound"})
        );
    }
    assert_no_push(&anon).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forward_to_a_down_backend_fails_fast_and_recovers_after_restart() {
    let options = ClusterOptions {
        forward_timeout: Duration::from_secs(2),
        ..ClusterOptions::default()
    };
    let mut cluster = TestCluster::start_with(options).await;
    let room = "room1";
    let backend = chat_for_room(room);
    let (client, _) = cluster.enter(0, "a", room).await;
    let who: Value = client
        .request("chat.room.whoami", &json!({}))
        .await
        .unwrap();
    assert_eq!(who["server"], backend);

    cluster.chat(backend).stop_rpc().await;
    // The error names the server and why.
    let forwarder = cluster.connectors[0].cluster.forwarder().clone();
    let err = forwarder
        .forward_to(
            backend,
            "chat.room.whoami",
            &SessionSnapshot::default(),
            bytes::Bytes::from_static(b"{}"),
            true,
        )
        .await
        .unwrap_err();
    assert!(
        matches!(err, ClusterError::Unreachable { ref server, .. } if server == backend),
        "{err}"
    );
    assert!(err.to_string().contains(backend), "{err}");
    for _ in 0..3 {
        let started = Instant::now();
        let resp: Value = client
            .request("chat.room.whoami", &json!({}))
            .await
            .unwrap();
        assert_eq!(resp, json!({"code": 500}));
        assert!(
            started.elapsed() < Duration::from_secs(3),
            "took {:?}",
            started.elapsed()
        );
    }

    cluster.chat(backend).restart_rpc().await;
    eventually_async("the backend to answer after its restart", WAIT, || async {
        let resp: Value = client
            .request("chat.room.whoami", &json!({}))
            .await
            .unwrap();
        if resp["server"] == backend {
            Ok(())
        } else {
            Err(format!("backend not reachable after restart: {resp}"))
        }
    })
    .await;
    // The pooled channel of user remotes redialed too.
    let rpc = cluster.connectors[0].app.rpc();
    let reply = rpc
        .call(
            backend,
            EchoClient::new(rpc.channel_by_id(backend).unwrap()).say(SayRequest {
                text: "back".into(),
                delay_ms: 0,
            }),
        )
        .await
        .unwrap();
    assert_eq!(reply.server_id, backend);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_backend_handler_times_out_with_500() {
    let options = ClusterOptions {
        forward_timeout: Duration::from_millis(300),
        ..ClusterOptions::default()
    };
    let cluster = TestCluster::start_with(options).await;
    let client = cluster.client(0).await;
    let started = Instant::now();
    let resp: Value = client
        .request("chat.room.sleep", &json!({"ms": 2000}))
        .await
        .unwrap();
    assert_eq!(resp, json!({"code": 500}));
    assert!(
        started.elapsed() < Duration::from_millis(1500),
        "took {:?}",
        started.elapsed()
    );
    // A panicking handler is a 500 too, and takes nothing down.
    let resp: Value = client.request("chat.room.panic", &json!({})).await.unwrap();
    assert_eq!(resp, json!({"code": 500}));
    // The stream survives a timeout and a panic: the next request works.
    let resp: Value = client
        .request("chat.room.sleep", &json!({"ms": 0}))
        .await
        .unwrap();
    assert_eq!(resp["server"], CHATS[0]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn user_remote_by_key_by_id_and_timeout() {
    let options = ClusterOptions {
        rpc_timeout: Duration::from_millis(300),
        ..ClusterOptions::default()
    };
    let cluster = TestCluster::start_with(options).await;
    let rpc = cluster.connectors[0].app.rpc();

    for key in ["room1", "lobby", "中文", ""] {
        let (server, channel) = rpc.channel_by_key("chat", key).unwrap();
        assert_eq!(server, chat_for_room(key));
        let reply = rpc
            .call(
                &server,
                EchoClient::new(channel).say(SayRequest {
                    text: key.into(),
                    delay_ms: 0,
                }),
            )
            .await
            .unwrap();
        assert_eq!(
            (reply.text.as_str(), reply.server_id.as_str()),
            (key, chat_for_room(key))
        );
    }
    for id in CHATS {
        let reply = rpc
            .call(
                id,
                EchoClient::new(rpc.channel_by_id(id).unwrap()).say(SayRequest {
                    text: "x".into(),
                    delay_ms: 0,
                }),
            )
            .await
            .unwrap();
        assert_eq!(reply.server_id, id);
    }

    let err = rpc
        .call(
            CHATS[1],
            EchoClient::new(rpc.channel_by_id(CHATS[1]).unwrap()).say(SayRequest {
                text: "slow".into(),
                delay_ms: 2000,
            }),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(err, ClusterError::Timeout { ref server, millis: 300 } if server == CHATS[1]),
        "{err}"
    );
    assert!(err.to_string().contains("timed out after 300 ms"), "{err}");

    // A remote a server type does not serve is a clear error, not a hang.
    let err = rpc
        .call(
            CONNECTORS[1],
            EchoClient::new(rpc.channel_by_id(CONNECTORS[1]).unwrap()).say(SayRequest::default()),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, ClusterError::Remote { .. }), "{err}");
    assert!(matches!(
        rpc.channel_by_id("nope"),
        Err(ClusterError::UnknownServer(_))
    ));
    assert!(matches!(
        rpc.channel_by_key("nope", "k"),
        Err(ClusterError::NoServerOfType(_))
    ));
}

/// A client's notify to a backend route is a notify on the backend too: the
/// backend runs it as one, and sends nothing back over the cluster stream
/// (no response built, routed to the frontend and dropped there, §5.4).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forwarded_notify_is_a_notify_on_the_backend_and_nothing_comes_back() {
    use shaddock::cluster::proto::{self, cluster_client::ClusterClient};
    let mut cluster = TestCluster::start().await;
    let room = "room1";
    let backend = chat_for_room(room);
    let (client, _) = cluster.enter(0, "a", room).await;
    let runs = |server: &str| {
        NOTES
            .lock()
            .unwrap()
            .iter()
            .filter(|(s, _)| s == server)
            .map(|(_, is_request)| *is_request)
            .collect::<Vec<bool>>()
    };
    let before = runs(backend).len();
    client
        .notify("chat.room.note", &json!({"n": 1}))
        .await
        .unwrap();
    eventually_async("the notify to run on its backend", WAIT, || async {
        match runs(backend).len() - before {
            0 => Err("not yet".to_string()),
            _ => Ok(()),
        }
    })
    .await;
    assert_eq!(
        runs(backend)[before..],
        [false],
        "the backend ran the client's notify as a request"
    );
    assert_no_push(&client).await;

    // The backend's side of the stream: a notify gets no answer at all;
    // the request sent after it gets the only one.
    let port = cluster.chat(backend).rpc_port;
    let mut rpc = ClusterClient::connect(format!("http://127.0.0.1:{port}"))
        .await
        .expect("connect to the chat server's RPC port");
    let session = proto::SessionSnapshot {
        sid: 1,
        frontend_id: CONNECTORS[0].into(),
        uid: Some("a".into()),
        settings_json: Default::default(),
    };
    let message = |id: u64, route: &str, is_request: bool| proto::ForwardRequest {
        id,
        route: route.into(),
        body: bytes::Bytes::from_static(b"{}"),
        session: Some(session.clone()),
        is_request,
        ..Default::default()
    };
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    tx.send(message(0, "chat.room.note", false)).await.unwrap();
    let mut answers = rpc
        .forward(shaddock::tonic::codegen::tokio_stream::wrappers::ReceiverStream::new(rx))
        .await
        .expect("open the Forward stream")
        .into_inner();
    let ran = before + 2;
    eventually_async("the raw notify to run", WAIT, || async {
        match runs(backend).len() >= ran {
            true => Ok(()),
            false => Err("not yet".to_string()),
        }
    })
    .await;
    tx.send(message(7, "chat.room.whoami", true)).await.unwrap();
    let first = tokio::time::timeout(WAIT, answers.message())
        .await
        .expect("an answer in time")
        .expect("the stream works")
        .expect("an answer");
    assert_eq!(first.id, 7, "the backend answered the notify: {first:?}");
    assert!(first.has_body);
    let more = tokio::time::timeout(QUIET, answers.message()).await;
    assert!(more.is_err(), "a second answer came: {more:?}");
}

/// The uid directory (`AppBuilder::uid_directory`): the same uid entering
/// through the other connector — another room, so no room could notice —
/// is refused while the first session lives, and welcome once it is gone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_uid_directory_refuses_a_second_login_through_another_connector() {
    let cluster = TestCluster::start_with_directory(DuplicateLogin::Refuse).await;
    let (alice, _) = cluster.enter(0, "alice", "room-a").await;
    let second = cluster.client(1).await;
    let resp: Value = second
        .request(
            "connector.entry.enter",
            &json!({"uid": "alice", "room": "room-b"}),
        )
        .await
        .unwrap();
    assert_eq!(resp["code"], 500, "refused: {resp}");
    assert!(
        cluster.connectors[1]
            .app
            .sessions()
            .by_uid("alice")
            .is_empty(),
        "the bind on {} was undone",
        CONNECTORS[1]
    );
    assert!(alice.is_open(), "the first session keeps going");
    // A bind asked by a backend is claimed too.
    let resp: Value = second
        .request("chat.room.bind", &json!({"uid": "alice"}))
        .await
        .unwrap();
    assert_eq!(resp["code"], 500, "refused from the backend too: {resp}");
    // Gone: the uid is free again (the release reaches the owner).
    alice.close().await;
    eventually_async("alice's uid to be free", WAIT, || async {
        let resp: Value = second
            .request("chat.room.bind", &json!({"uid": "alice"}))
            .await
            .unwrap();
        resp["uid"] == "alice"
    })
    .await;
}

/// With `duplicate-login: kick` the newcomer wins and the session on the
/// other connector is kicked with the reason; only one session of the uid
/// is left in the cluster.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_uid_directory_kicks_the_older_session_on_another_connector() {
    let cluster = TestCluster::start_with_directory(DuplicateLogin::Kick).await;
    let (first, _) = cluster.enter(0, "carol", "room-c").await;
    let (second, _) = cluster.enter(1, "carol", "room-d").await;
    assert_eq!(
        first.closed_within(WAIT).await,
        Some(CloseReason::Kicked(
            shaddock::cluster::directory::KICK_DUPLICATE.into()
        ))
    );
    assert!(second.is_open());
    let holders: usize = cluster
        .connectors
        .iter()
        .map(|c| c.app.sessions().by_uid("carol").len())
        .sum();
    assert_eq!(holders, 1, "one session of carol in the cluster");
}
