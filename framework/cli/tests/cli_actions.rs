//! Operators' admin actions on the chat app under a master (`start -D`,
//! real processes, real WebSocket clients): `shaddock broadcast` (every
//! user, then one room), `kick`, `close-room` and `drain`, each seen by the
//! clients it concerns and by no other, and each recorded in the master's
//! log with the admin user who ran it.

mod cli_support;

use std::time::Duration;

use cli_support::chat::*;
use cli_support::*;
use serde_json::Value;
use shaddock_client::{Client, CloseReason, Push};
use shaddock_testkit::eventually;
use tokio::sync::mpsc::Receiver;

/// The next `onSystem` text a client received, within `WAIT`.
async fn system_line(rx: &mut Receiver<Push>) -> String {
    let push = tokio::time::timeout(WAIT, rx.recv())
        .await
        .expect("an onSystem push within the wait")
        .expect("the connection is open");
    push.json::<Value>().unwrap()["msg"]
        .as_str()
        .unwrap()
        .to_string()
}

/// A user name the gate sends to the connector on `port`.
async fn name_on(gate: &str, port: u16, prefix: &str) -> String {
    for i in 0..200 {
        let name = format!("{prefix}{i}");
        if query_entry(gate, &name).await.unwrap().1 == port {
            return name;
        }
    }
    panic!("no name of {prefix}* goes to port {port}");
}

fn ok(out: &std::process::Output) -> String {
    assert_eq!(code(out), 0, "{}", stderr(out));
    stdout(out)
}

#[test]
fn admin_actions_reach_the_right_users_and_are_logged() {
    let mut servers = chat_servers(&["connector-server-1", "connector-server-2"]);
    let metrics = free_port();
    servers[1].extra = Box::leak(format!(r#""metricsPort":{metrics}"#).into_boxed_str());
    assert_eq!(servers[1].id, "connector-server-1");
    let (app, gate, rid) = start_chat_servers(servers);
    let port_of = |id: &str| app.server(id)["clientPort"].as_u64().unwrap() as u16;
    let (c1, c2) = (port_of("connector-server-1"), port_of("connector-server-2"));
    let other = format!("{rid}x");

    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        // alice (connector 1) and bob (connector 2) in `rid`; carol and
        // erin in `other`.
        let alice_name = name_on(&gate, c1, "alice").await;
        let bob_name = name_on(&gate, c2, "bob").await;
        let alice = enter(&gate, &alice_name, &rid).await.unwrap();
        let bob = enter(&gate, &bob_name, &rid).await.unwrap();
        let carol = enter(&gate, "carol", &other).await.unwrap();
        let erin = enter(&gate, "erin", &other).await.unwrap();
        let mut sys: Vec<Receiver<Push>> = [&alice, &bob, &carol, &erin]
            .iter()
            .map(|c| c.subscribe("onSystem"))
            .collect();

        // Broadcast to one room: only its members hear it.
        let out = app.cli(&["broadcast", "-r", &rid, "room notice"]);
        assert!(
            ok(&out).contains("chat-server-1"),
            "the room's chat server answered"
        );
        assert_eq!(system_line(&mut sys[0]).await, "room notice");
        assert_eq!(system_line(&mut sys[1]).await, "room notice");
        // Broadcast to everyone: carol's and erin's first system line is
        // this one (the room notice was queued before the CLI returned).
        ok(&app.cli(&["broadcast", "maintenance at noon"]));
        for rx in &mut sys {
            assert_eq!(system_line(rx).await, "maintenance at noon");
        }
        // No room of that name, no user of that name: a clear failure.
        let out = app.cli(&["broadcast", "-r", "nosuchroom", "hello"]);
        assert_ne!(code(&out), 0);
        assert!(
            stderr(&out).contains("no room `nosuchroom`"),
            "{}",
            stderr(&out)
        );
        let out = app.cli(&["kick", "nobody*nowhere"]);
        assert_ne!(code(&out), 0);
        assert!(
            stderr(&out).contains("no connected user"),
            "{}",
            stderr(&out)
        );

        // Kick bob: he gets the reason; alice does not, and keeps chatting.
        let bob_uid = format!("{bob_name}*{rid}");
        ok(&app.cli(&["kick", &bob_uid, "--reason", "spamming"]));
        assert_eq!(
            bob.closed_within(WAIT).await,
            Some(CloseReason::Kicked("spamming".into()))
        );
        assert!(alice.is_open());
        let dave = enter(&gate, "dave", &rid).await.unwrap();
        chat(&alice, &dave, "still here").await.unwrap();

        // Close `other`: carol and erin are told why and the room is gone;
        // a newcomer finds it empty.
        let out = app.cli(&["close-room", &other, "--reason", "end of event"]);
        assert!(
            ok(&out).contains(r#""kicked":2"#),
            "both members were kicked"
        );
        for member in [&carol, &erin] {
            assert_eq!(
                member.closed_within(WAIT).await,
                Some(CloseReason::Kicked("room closed: end of event".into()))
            );
        }
        let frank = enter_users(&gate, "frank", &other).await;
        assert_eq!(
            frank.1,
            vec!["frank".to_string()],
            "a newcomer finds an empty room"
        );

        // Drain connector 1: /readyz says so, the gate sends every new user
        // to connector 2, a direct connection is refused, and alice (on
        // connector 1) keeps chatting with dave.
        ok(&app.cli(&["drain", "connector-server-1"]));
        let (status, _, body) = cli_support::scaffold::http_get(metrics, "/readyz");
        assert_eq!((status, body.as_str()), (503, "draining\n"));
        eventually_gate_skips(&gate, c1).await;
        for i in 0..20 {
            let (_, port) = query_entry(&gate, &format!("new{i}")).await.unwrap();
            assert_eq!(
                port, c2,
                "new{i} is sent to the connector that is not drained"
            );
        }
        let refused = Client::connect(&format!("ws://127.0.0.1:{c1}"), Default::default()).await;
        assert!(
            refused.is_err(),
            "a drained connector takes no new connection"
        );
        chat(&alice, &dave, "after the drain").await.unwrap();
        chat(&dave, &alice, "both ways").await.unwrap();
        let out = app.cli(&["drain", "chat-server-1"]);
        assert_ne!(code(&out), 0, "a backend cannot be drained");
        for c in [alice, dave, frank.0] {
            c.close().await;
        }
    });

    // Every action is in the master's log, with the user who ran it.
    let log = eventually("the actions in the master's log", WAIT, || {
        let log = std::fs::read_to_string(app.path().join("logs/master.log")).unwrap();
        if log.contains("[master] drain") {
            Ok(log)
        } else {
            Err(log)
        }
    });
    for action in ["broadcast", "kick", "close-room", "drain"] {
        assert!(
            log.lines()
                .any(|l| l.contains(&format!("[master] {action} ")) && l.contains(" by admin: ")),
            "{action} by admin in the master's log:\n{log}"
        );
    }
}

/// Enters `rid` as `name`; the client and the member list it was given.
async fn enter_users(gate: &str, name: &str, rid: &str) -> (Client, Vec<String>) {
    let (host, port) = query_entry(gate, name).await.unwrap();
    let c = Client::connect(&format!("ws://{host}:{port}"), Default::default())
        .await
        .unwrap();
    let resp: Value = c
        .request(
            "connector.entryHandler.enter",
            &serde_json::json!({"username": name, "rid": rid}),
        )
        .await
        .unwrap();
    let users = resp["users"]
        .as_array()
        .unwrap_or_else(|| panic!("enter answered {resp}"))
        .iter()
        .map(|u| u.as_str().unwrap().to_string())
        .collect();
    (c, users)
}

/// Waits until the gate learnt of the drain (the master's list reaches it
/// over its membership stream).
async fn eventually_gate_skips(gate: &str, drained: u16) {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let mut hits = 0;
        for i in 0..10 {
            if query_entry(gate, &format!("probe{i}")).await.unwrap().1 == drained {
                hits += 1;
            }
        }
        if hits == 0 {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the gate still sends users to the drained connector"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
