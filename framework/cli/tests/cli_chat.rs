//! The chat app (`game-server`, chatofpomelo) under the master: start it
//! with `shaddock start -D` on a generated servers.json (free ports), chat,
//! `kill -9` the chat server of a room, and check that the master restarts
//! it, that users can chat in that room again within a few seconds and that
//! `list` shows the restart count. Then `stop` leaves no process behind.

mod cli_support;

use std::process::Command;
use std::time::{Duration, Instant};

use cli_support::chat::*;
use cli_support::*;
use shaddock_testkit::{eventually, eventually_async};

/// The connections `list` reports for all connectors together.
fn connections(app: &TestApp) -> u64 {
    app.list()["servers"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["serverType"] == "connector")
        .map(|s| s["connections"].as_u64().unwrap())
        .sum()
}

#[test]
fn chat_server_killed_is_restarted_and_its_rooms_work_again() {
    let (app, gate, rid) = start_chat_app(&["connector-server-1", "connector-server-2"]);

    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let alice = enter(&gate, "alice", &rid).await.expect("alice enters");
        let bob = enter(&gate, "bob", &rid).await.expect("bob enters");
        chat(&alice, &bob, "before")
            .await
            .expect("chat before the crash");
        // Connections are reported per connector.
        eventually_async("both connections to be reported", WAIT, || async {
            match connections(&app) {
                2 => Ok(()),
                conns => Err(format!("connections reported: {conns}")),
            }
        })
        .await;

        let pid = app.server("chat-server-1")["pid"].as_u64().unwrap() as i32;
        // SAFETY: kill(2) on the pid the master reported for chat-server-1.
        assert_eq!(unsafe { libc::kill(pid, libc::SIGKILL) }, 0);
        let killed = Instant::now();
        // Within a few seconds the room works again: users re-enter (room
        // state lived in the killed process) and chat.
        let mut attempt = 0;
        let what = format!("room {rid} to work again after the kill");
        let (gate, rid) = (&gate, &rid);
        eventually_async(&what, Duration::from_secs(10), || {
            attempt += 1;
            let (carol, dave) = (format!("carol{attempt}"), format!("dave{attempt}"));
            async move {
                let carol = enter(gate, &carol, rid).await?;
                let dave = enter(gate, &dave, rid).await?;
                chat(&carol, &dave, "after").await
            }
        })
        .await;
        eprintln!(
            "room {rid} chats again {:?} after kill -9",
            killed.elapsed()
        );
        alice.close().await;
        bob.close().await;
    });

    // The room can work again a moment before the master's next check
    // marks the restarted server running.
    let s = eventually("the master to mark chat-server-1 running", WAIT, || {
        let s = app.server("chat-server-1");
        if s["state"] == "running" {
            Ok(s)
        } else {
            Err(s.to_string())
        }
    });
    assert_eq!(s["restarts"], 1, "{s}");
    assert_ne!(s["pid"].as_u64().unwrap() as i32, 0);
    let table = stdout(&app.cli(&["list"]));
    let row = table
        .lines()
        .find(|l| l.starts_with("chat-server-1"))
        .unwrap();
    assert!(row.trim_end().ends_with(" 1"), "{row}");

    // `stop` is graceful: a connected user is kicked with a reason.
    let pids = app.all_pids();
    assert_eq!(pids.len(), 6);
    rt.block_on(async {
        let erin = enter(&gate, "erin", &rid).await.expect("erin enters");
        let stop = tokio::task::spawn_blocking({
            let dir = app.path().to_path_buf();
            move || {
                Command::new(shaddock())
                    .args(["stop", "-d"])
                    .arg(dir)
                    .status()
                    .unwrap()
            }
        });
        let reason = erin.closed_within(Duration::from_secs(15)).await;
        assert_eq!(
            reason,
            Some(shaddock_client::CloseReason::Kicked(
                "server shutdown".into()
            ))
        );
        assert!(stop.await.unwrap().success());
    });
    wait_gone(&pids, Duration::from_secs(15));
}
