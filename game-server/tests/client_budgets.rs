//! Per-client budgets set in `config/connector.json`, on the chat app's real
//! processes (docs/security.md): an idle socket on the gate (no heartbeats)
//! is KICKed, a client flooding the connector gets 429s and then a KICK,
//! while two users on the same connector keep chatting with full delivery.

mod support;

use std::time::Duration;

use serde_json::{Value, json};
use shaddock_client::CloseReason;
use shared::{PUSH_ADD, PUSH_CHAT, TARGET_ALL};
use support::Topo;
use support::chat::{WAIT, connect, enter};

const BUDGETS: &str = r#"{"development": {
    "gate": {"idle-timeout-ms": 800},
    "connector": {"requests-per-second": 1, "burst": 10, "kick-after-refusals": 20}
}}"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connector_json_budgets_hold_on_real_servers() {
    let cluster = support::ProcCluster::try_start_with(
        support::bin().as_ref(),
        Topo::new(1, 1).servers(),
        &[],
        &[(shaddock::config::CONNECTOR_FILE, BUDGETS)],
    )
    .await
    .expect("cluster up");

    // The gate closes a socket that says nothing, with a KICK saying why.
    let idle = connect(&cluster.gate_url()).await;
    assert_eq!(
        idle.closed_within(WAIT).await,
        Some(CloseReason::Kicked("idle timeout".into()))
    );

    let (alice, _) = enter(&cluster, "alice", "room").await;
    let (bob, _) = enter(&cluster, "bob", "room").await;
    assert_eq!(alice.expect_push(PUSH_ADD).await["user"], "bob");
    let (mallory, _) = enter(&cluster, "mallory", "elsewhere").await;

    // Mallory sends as fast as she can: the burst passes, then 429s...
    let mut codes = Vec::new();
    for i in 0..14 {
        let r = mallory.send(&format!("spam {i}"), TARGET_ALL).await;
        codes.push(r.get("code").and_then(Value::as_u64));
    }
    assert!(
        codes.contains(&Some(429)),
        "past the burst of 10, requests are refused: {codes:?}"
    );
    // ...and a flood gets her kicked.
    for i in 0..40 {
        let _ = mallory.client.notify(shared::ROUTE_SEND, &json!({
            "rid": "elsewhere", "content": format!("flood {i}"), "from": "mallory", "target": TARGET_ALL
        })).await;
    }
    assert_eq!(
        mallory.client.closed_within(WAIT).await,
        Some(CloseReason::Kicked(
            shaddock::connector::budget::KICK_RATE.into()
        ))
    );

    // Alice and Bob, paced under the budget, lose nothing.
    for i in 0..6 {
        let from = if i % 2 == 0 { &alice } else { &bob };
        assert_eq!(from.send(&format!("m{i}"), TARGET_ALL).await, json!({}));
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for u in [&alice, &bob] {
        for i in 0..6 {
            assert_eq!(u.expect_push(PUSH_CHAT).await["msg"], format!("m{i}"));
        }
        assert!(u.client.is_open());
    }
}
