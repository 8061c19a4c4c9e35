//! Session resume against the real chat app (protocol.md §13.6): a client
//! whose socket is cut off mid-chat reconnects with its token and gets its
//! session back — same uid and room, every push sent meanwhile, in order —
//! and the room never hears it leave. After the window the leave comes as
//! before. Every server is its own `game-server` process.

mod support;

use std::time::{Duration, Instant};

use serde_json::Value;
use shaddock_client::ClientOptions;
use shared::{EnterResponse, PUSH_ADD, PUSH_CHAT, PUSH_LEAVE, TARGET_ALL};
use support::Topo;
use support::chat::{User, WAIT, enter, enter_on, login_with, name_on_connector, options};

fn resumable() -> ClientOptions {
    ClientOptions {
        resumable: true,
        ..options()
    }
}

/// Logs `name` into `rid` with a client that asks for resume.
async fn enter_resumable(
    cluster: &support::ProcCluster,
    scheme: &str,
    name: &str,
    rid: &str,
) -> User {
    match login_with(cluster, scheme, name, rid, resumable()).await {
        (user, EnterResponse::Users { .. }) => user,
        (_, other) => panic!("{name} could not enter: {other:?}"),
    }
}

/// The id of the connector serving client port `port`.
fn connector_of(cluster: &support::ProcCluster, port: u16) -> String {
    cluster
        .of_type("connector")
        .into_iter()
        .find(|s| s.client_port == Some(port))
        .map(|s| s.id.clone())
        .expect("a connector on that port")
}

/// The next push is `onChat` `msg` from `from`.
async fn hears(user: &User, from: &str, msg: &str) {
    let body: Value = user.expect_push(PUSH_CHAT).await;
    assert_eq!(
        (body["from"].as_str(), body["msg"].as_str()),
        (Some(from), Some(msg)),
        "{} got {body}",
        user.name
    );
}

async fn send_ok(user: &User, msg: &str, target: &str) {
    let reply = user.send(msg, target).await;
    assert!(reply.get("code").is_none(), "{msg} refused: {reply}");
}

async fn cut_off_mid_chat_resumes(scheme: &str) {
    let cluster = support::start(Topo::new(2, 1)).await;
    let (amy, _) = enter(&cluster, "amy", "blip").await;
    let bob = enter_resumable(&cluster, scheme, "bob", "blip").await;
    assert_eq!(amy.expect_push(PUSH_ADD).await["user"], "bob");
    assert!(bob.client.resume_token().is_some(), "a resume token");
    send_ok(&bob, "before", TARGET_ALL).await;
    hears(&amy, "bob", "before").await;
    hears(&bob, "bob", "before").await;

    // The network drops bob's connection: no close handshake.
    let connector = connector_of(&cluster, bob.port);
    bob.client.abort().await;
    assert!(
        cluster
            .wait_log_line(&connector, &["session kept for resume"], WAIT)
            .await,
        "{connector} kept bob's session"
    );
    // The room goes on talking, to all and to bob alone.
    let missed: Vec<String> = (0..5).map(|i| format!("missed {i}")).collect();
    for m in &missed {
        send_ok(&amy, m, TARGET_ALL).await;
        hears(&amy, "amy", m).await;
    }
    send_ok(&amy, "psst", "bob").await;

    let url = format!("{scheme}://127.0.0.1:{}", bob.port);
    assert!(bob.client.resume(&url).await.unwrap(), "session given back");
    for m in &missed {
        hears(&bob, "amy", m).await;
    }
    let whisper: Value = bob.expect_push(PUSH_CHAT).await;
    assert_eq!(
        (whisper["msg"].as_str(), whisper["target"].as_str()),
        (Some("psst"), Some("bob"))
    );
    // Nobody left or joined: amy heard no onLeave / onAdd.
    amy.expect_silence().await;
    // Bob is still bob, in his room: his messages reach it.
    send_ok(&bob, "back", TARGET_ALL).await;
    hears(&amy, "bob", "back").await;
    hears(&bob, "bob", "back").await;
    assert!(
        !cluster.log(&connector).contains("parked session closed"),
        "the parked session was resumed, not closed"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_websocket_client_cut_off_mid_chat_resumes_with_every_missed_push() {
    cut_off_mid_chat_resumes("ws").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_raw_tcp_client_cut_off_mid_chat_resumes_with_every_missed_push() {
    cut_off_mid_chat_resumes("tcp").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_the_window_the_leave_is_announced_and_the_token_is_spent() {
    let window = Duration::from_millis(1500);
    let connector_json = format!(
        r#"{{"{}": {{"connector": {{"resume-window-ms": {}}}}}}}"#,
        support::ENV,
        window.as_millis()
    );
    let cluster = support::ProcCluster::try_start_with(
        support::bin().as_ref(),
        Topo::new(1, 1).servers(),
        &[],
        &[("connector.json", &connector_json)],
    )
    .await
    .expect("cluster up");
    let (amy, _) = enter(&cluster, "amy", "gone").await;
    let bob = enter_resumable(&cluster, "ws", "bob", "gone").await;
    assert_eq!(amy.expect_push(PUSH_ADD).await["user"], "bob");
    let offer = bob
        .client
        .handshake()
        .sys
        .resume
        .clone()
        .expect("resume offered");
    assert_eq!(offer.window_ms, window.as_millis() as u64);
    assert!(!offer.resumed);

    let dropped = Instant::now();
    bob.client.abort().await;
    assert_eq!(amy.expect_push(PUSH_LEAVE).await["user"], "bob");
    let after = dropped.elapsed();
    assert!(
        after >= window - Duration::from_millis(100),
        "the leave waited for the window ({window:?}), came after {after:?}"
    );
    assert!(
        cluster
            .wait_log_line(
                "connector-server-1",
                &["parked session closed", "resume window expired"],
                WAIT
            )
            .await
    );
    // Too late: the token names no session any more; the connection is a
    // new, empty session, and logging in again works.
    let url = format!("ws://127.0.0.1:{}", bob.port);
    assert!(!bob.client.resume(&url).await.unwrap(), "nothing to resume");
    let again = enter_on(&bob.client, "bob", "gone").await;
    assert!(matches!(again, EnterResponse::Users { .. }), "{again:?}");
    assert_eq!(amy.expect_push(PUSH_ADD).await["user"], "bob");
}

/// The pushes kept for a parked session are bounded by its outbound queue:
/// past `max-queued-frames` the resume ends and the session closes as
/// before (the room hears the leave long before the window ends).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_overflowing_parked_session_is_closed_before_its_window() {
    let connector_json = format!(
        r#"{{"{}": {{"connector": {{"resume-window-ms": 30000, "max-queued-frames": 3}}}}}}"#,
        support::ENV
    );
    let cluster = support::ProcCluster::try_start_with(
        support::bin().as_ref(),
        Topo::new(1, 1).servers(),
        &[],
        &[("connector.json", &connector_json)],
    )
    .await
    .expect("cluster up");
    let (amy, _) = enter(&cluster, "amy", "full").await;
    let bob = enter_resumable(&cluster, "ws", "bob", "full").await;
    assert_eq!(amy.expect_push(PUSH_ADD).await["user"], "bob");
    bob.client.abort().await;
    assert!(
        cluster
            .wait_log_line("connector-server-1", &["session kept for resume"], WAIT)
            .await
    );
    let dropped = Instant::now();
    for i in 0..4 {
        send_ok(&amy, &format!("fill {i}"), TARGET_ALL).await;
        hears(&amy, "amy", &format!("fill {i}")).await;
    }
    assert_eq!(amy.expect_push(PUSH_LEAVE).await["user"], "bob");
    assert!(
        dropped.elapsed() < Duration::from_secs(10),
        "closed on overflow, not after the 30 s window"
    );
    assert!(
        cluster
            .wait_log_line(
                "connector-server-1",
                &[
                    "parked session closed",
                    "outbound queue overflow while parked"
                ],
                WAIT
            )
            .await
    );
    let url = format!("ws://127.0.0.1:{}", bob.port);
    assert!(!bob.client.resume(&url).await.unwrap(), "nothing to resume");
}

/// A client that does not ask for resume (every Pomelo client) is closed
/// at once, as before: its reply carries no `sys.resume` and its room hears
/// the leave without waiting for a window.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_does_not_ask_is_not_kept() {
    let cluster = support::start(Topo::new(1, 1)).await;
    let (amy, _) = enter(&cluster, "amy", "plain").await;
    let (bob, _) = enter(&cluster, "bob", "plain").await;
    assert_eq!(amy.expect_push(PUSH_ADD).await["user"], "bob");
    assert!(bob.client.handshake().sys.resume.is_none());
    assert!(bob.client.resume_token().is_none());
    let dropped = Instant::now();
    bob.client.abort().await;
    assert_eq!(amy.expect_push(PUSH_LEAVE).await["user"], "bob");
    assert!(
        dropped.elapsed() < Duration::from_secs(4),
        "no resume window for a client that did not ask ({:?})",
        dropped.elapsed()
    );
}

/// The log lines about resume, for a failure message.
fn resume_lines(log: &str) -> String {
    log.lines()
        .filter(|l| l.contains("resum") || l.contains("restor"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The connector itself crashes (SIGKILL) mid-chat. Its client asked for
/// resume: it reconnects with its token — to the connector once it is back
/// (same id, a new process), or to the other connector while the crashed
/// one stays down — and gets its session back from the token's state. The
/// room's chat server held the member since its pushes to the dead
/// connector failed, kept every push sent meanwhile, and hands them over
/// in order; the room never hears a leave. The restored session still
/// leaves the room when it goes.
async fn connector_killed_resumes(elsewhere: bool) {
    let mut cluster = support::start(Topo::new(2, 1)).await;
    let amy_name = name_on_connector("amy", 0, 2);
    let bob_name = name_on_connector("bob", 1, 2);
    let (amy, _) = enter(&cluster, &amy_name, "crash").await;
    let bob = enter_resumable(&cluster, "ws", &bob_name, "crash").await;
    assert_eq!(amy.expect_push(PUSH_ADD).await["user"], bob_name.as_str());
    send_ok(&bob, "before", TARGET_ALL).await;
    hears(&amy, &bob_name, "before").await;
    hears(&bob, &bob_name, "before").await;
    let (bob_at, amy_at) = (
        connector_of(&cluster, bob.port),
        connector_of(&cluster, amy.port),
    );
    assert_ne!(bob_at, amy_at, "amy and bob on different connectors");

    cluster.kill(&bob_at);
    bob.client.abort().await;
    // The room goes on talking, to all and to bob alone.
    let missed: Vec<String> = (0..5).map(|i| format!("missed {i}")).collect();
    for m in &missed {
        send_ok(&amy, m, TARGET_ALL).await;
        hears(&amy, &amy_name, m).await;
    }
    send_ok(&amy, "psst", &bob_name).await;

    let port = if elsewhere {
        amy.port
    } else {
        cluster.restart(&bob_at).await;
        bob.port
    };
    let url = format!("ws://127.0.0.1:{port}");
    let restored_on = connector_of(&cluster, port);
    let resumed = bob.client.resume(&url).await.unwrap();
    if !resumed {
        // The log is written by a background thread.
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert!(
        resumed,
        "session restored from the token after {bob_at} was killed; {restored_on} said:\n{}",
        resume_lines(&cluster.log(&restored_on))
    );
    for m in &missed {
        hears(&bob, &amy_name, m).await;
    }
    let whisper: Value = bob.expect_push(PUSH_CHAT).await;
    assert_eq!(
        (whisper["msg"].as_str(), whisper["target"].as_str()),
        (Some("psst"), Some(bob_name.as_str()))
    );
    // Nobody left or joined.
    amy.expect_silence().await;
    // Bob is still bob, in his room (the `rid` setting came back: the chat
    // router finds his room's server).
    send_ok(&bob, "back", TARGET_ALL).await;
    hears(&amy, &bob_name, "back").await;
    hears(&bob, &bob_name, "back").await;
    assert!(
        cluster
            .wait_log_line(
                &restored_on,
                &["session restored from a lost frontend", &bob_name],
                WAIT
            )
            .await,
        "{restored_on} logged the restore"
    );
    // A fresh token came with the restored session, for the next drop.
    let token = bob.client.resume_token().expect("a token");
    assert!(!token.is_empty());

    // The restored session's `closed` listener came back: when bob goes,
    // the room hears it.
    bob.client.close().await;
    assert_eq!(amy.expect_push(PUSH_LEAVE).await["user"], bob_name.as_str());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_of_a_killed_connector_resumes_on_its_restart_with_every_missed_push() {
    connector_killed_resumes(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_of_a_killed_connector_resumes_on_another_connector_with_every_missed_push() {
    connector_killed_resumes(true).await;
}

/// A token is not a way to steal a session that is alive: resuming on
/// another connector while the token's own connector still holds the
/// session (parked) is refused, and the parked session still comes back
/// where it is.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_of_a_live_connector_does_not_resume_elsewhere() {
    let cluster = support::start(Topo::new(2, 1)).await;
    let amy_name = name_on_connector("amy", 0, 2);
    let bob_name = name_on_connector("bob", 1, 2);
    let (amy, _) = enter(&cluster, &amy_name, "alive").await;
    let bob = enter_resumable(&cluster, "ws", &bob_name, "alive").await;
    assert_eq!(amy.expect_push(PUSH_ADD).await["user"], bob_name.as_str());
    let bob_at = connector_of(&cluster, bob.port);
    bob.client.abort().await;
    assert!(
        cluster
            .wait_log_line(&bob_at, &["session kept for resume"], WAIT)
            .await
    );
    let token = bob.client.resume_token().expect("a token");
    let elsewhere = format!("ws://127.0.0.1:{}", amy.port);
    assert!(
        !bob.client.resume(&elsewhere).await.unwrap(),
        "refused: {bob_at} is up and holds the session"
    );
    // Back to where the session waits, with the token it had.
    let home = format!("ws://127.0.0.1:{}", bob.port);
    bob.client.set_resume_token(token);
    assert!(bob.client.resume(&home).await.unwrap(), "resumed at home");
    amy.expect_silence().await;
}
