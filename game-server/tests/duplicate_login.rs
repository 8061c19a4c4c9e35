//! The same name logging into the same room through two connectors
//! (bypassing the gate, which would send both to one connector): the
//! room's chat server knows which connector holds each member, and applies
//! `duplicate-login` from connector.json — `refuse` the newcomer, or `kick`
//! the older session (a kick by uid from the backend reaching a user on
//! another connector). Either way every push arrives once (Pomelo #579,
//! #745). Real `game-server` processes.

mod support;

use serde_json::Value;
use shaddock_client::CloseReason;
use shared::{EnterResponse, PUSH_ADD, PUSH_CHAT, TARGET_ALL};
use support::Topo;
use support::chat::{User, WAIT, enter, enter_on, options};

/// A cluster of 1 gate, 2 connectors, 1 chat server with `policy`.
async fn cluster_with(policy: &str) -> support::ProcCluster {
    let connector_json = format!(
        r#"{{"{}": {{"connector": {{"duplicate-login": "{policy}"}}}}}}"#,
        support::ENV
    );
    support::ProcCluster::try_start_with(
        support::bin().as_ref(),
        Topo::new(2, 1).servers(),
        &[],
        &[("connector.json", &connector_json)],
    )
    .await
    .expect("cluster up")
}

/// Logs `name` into `rid` straight through connector `id`.
async fn login_at(
    cluster: &support::ProcCluster,
    id: &str,
    name: &str,
    rid: &str,
) -> (User, EnterResponse) {
    let port = cluster.server(id).client_port.unwrap();
    support::chat::login_at("ws://127.0.0.1", port, name, rid, options()).await
}

/// A cluster with `policy`, amy in room `dup` (through the gate) and bob
/// in it through connector-server-1.
async fn amy_and_bob_on_connector_1(policy: &str) -> (support::ProcCluster, User, User) {
    let cluster = cluster_with(policy).await;
    let (amy, _) = enter(&cluster, "amy", "dup").await;
    let (bob, resp) = login_at(&cluster, "connector-server-1", "bob", "dup").await;
    assert!(matches!(resp, EnterResponse::Users { .. }), "{resp:?}");
    assert_eq!(amy.expect_push(PUSH_ADD).await["user"], "bob");
    (cluster, amy, bob)
}

/// `from` says `msg` to the room; `hearers` each get it exactly once.
async fn said_once(from: &User, msg: &str, hearers: &[&User]) {
    let reply = from.send(msg, TARGET_ALL).await;
    assert!(reply.get("code").is_none(), "{msg} refused: {reply}");
    for u in hearers {
        let body: Value = u.expect_push(PUSH_CHAT).await;
        assert_eq!(body["msg"], msg, "{} got {body}", u.name);
        u.expect_silence().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refuse_keeps_the_first_session_and_refuses_the_second_connector() {
    let (cluster, amy, bob) = amy_and_bob_on_connector_1("refuse").await;

    let (bob2, resp) = login_at(&cluster, "connector-server-2", "bob", "dup").await;
    assert_eq!(
        resp,
        EnterResponse::duplicate(),
        "the second login is refused"
    );
    assert!(bob.client.is_open(), "the first session stays");
    amy.expect_silence().await;
    // Pushes reach bob once, on his first connection; the refused one
    // gets nothing.
    said_once(&amy, "one", &[&amy, &bob]).await;
    bob2.expect_silence().await;
    // The refused connection may try again once the first leaves.
    bob.client.close().await;
    assert_eq!(amy.expect_push(shared::PUSH_LEAVE).await["user"], "bob");
    let again = enter_on(&bob2.client, "bob", "dup").await;
    assert!(matches!(again, EnterResponse::Users { .. }), "{again:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kick_replaces_the_session_on_the_other_connector_and_pushes_arrive_once() {
    let (cluster, amy, bob) = amy_and_bob_on_connector_1("kick").await;

    let (bob2, resp) = login_at(&cluster, "connector-server-2", "bob", "dup").await;
    match resp {
        EnterResponse::Users { users } => {
            assert_eq!(users.iter().filter(|u| *u == "bob").count(), 1, "{users:?}")
        }
        other => panic!("the second login was refused: {other:?}"),
    }
    // The backend's kick by uid reached the first session on the other
    // connector.
    assert_eq!(
        bob.client.closed_within(WAIT).await,
        Some(CloseReason::Kicked(shared::KICK_ELSEWHERE.into()))
    );
    // The room saw bob move, not leave and join.
    amy.expect_silence().await;
    said_once(&amy, "two", &[&amy, &bob2]).await;
    said_once(&bob2, "three", &[&amy, &bob2]).await;
}
