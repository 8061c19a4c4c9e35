//! The chat app (`game-server`, chatofpomelo) under the master: start it
//! with `shaddock start -D` on a generated servers.json (free ports), chat,
//! `kill -9` the chat server of a room, and check that the master restarts
//! it, that users can chat in that room again within a few seconds and that
//! `list` shows the restart count. Then `stop` leaves no process behind.

mod cli_support;

use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use cli_support::*;
use serde_json::{Value, json};
use shaddock_client::{Client, ClientOptions};
use shaddock_testkit::eventually_async;

const WAIT: Duration = Duration::from_secs(10);

/// `target/<profile>/game-server`, built if needed (`cargo test -p
/// shaddock` alone does not build other packages' binaries).
fn game_server() -> PathBuf {
    static PATH: OnceLock<PathBuf> = OnceLock::new();
    PATH.get_or_init(|| {
        built(
            shaddock().parent().unwrap().join("game-server"),
            &["-p", "game-server"],
            &[
                "game-server/src",
                "game-server/Cargo.toml",
                "shared/src",
                "proto",
            ],
        )
    })
    .clone()
}

async fn enter(gate: &str, username: &str, rid: &str) -> Result<Client, String> {
    let g = Client::connect(gate, ClientOptions::default())
        .await
        .map_err(|e| format!("gate: {e}"))?;
    let entry: Value = g
        .request("gate.gateHandler.queryEntry", &json!({"uid": username}))
        .await
        .map_err(|e| format!("queryEntry: {e}"))?;
    g.close().await;
    if entry["code"] != 200 {
        return Err(format!("queryEntry answered {entry}"));
    }
    let url = format!("ws://{}:{}", entry["host"].as_str().unwrap(), entry["port"]);
    let c = Client::connect(&url, ClientOptions::default())
        .await
        .map_err(|e| format!("connector: {e}"))?;
    let resp: Value = c
        .request(
            "connector.entryHandler.enter",
            &json!({"username": username, "rid": rid}),
        )
        .await
        .map_err(|e| format!("enter: {e}"))?;
    if resp["users"].as_array().is_none() {
        return Err(format!("enter answered {resp}"));
    }
    Ok(c)
}

/// Sends to the whole room and waits until `listener` hears it.
async fn chat(sender: &Client, listener: &Client, content: &str) -> Result<(), String> {
    let resp: Value = sender
        .request(
            "chat.chatHandler.send",
            &json!({"rid": "", "content": content, "from": "", "target": "*"}),
        )
        .await
        .map_err(|e| e.to_string())?;
    if resp.get("code").is_some() {
        return Err(format!("send answered {resp}"));
    }
    let heard = async {
        loop {
            let push = listener
                .next_push_timeout(WAIT)
                .await
                .map_err(|e| e.to_string())?;
            if push.route == "onChat" && push.json::<Value>().unwrap()["msg"] == content {
                return Ok(());
            }
        }
    };
    tokio::time::timeout(WAIT, heard)
        .await
        .unwrap_or_else(|_| Err("onChat never arrived".into()))
}

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
    let bin = game_server();
    let mut app = TestApp::new(&[
        Srv {
            client_port: Some(free_port()),
            port: None,
            ..Srv::frontend("gate-server-1", "gate")
        },
        Srv::frontend("connector-server-1", "connector"),
        Srv::frontend("connector-server-2", "connector"),
        Srv::backend("chat-server-1", "chat"),
        Srv::backend("chat-server-2", "chat"),
    ]);
    let out = app.start_daemon_with(&bin, &["--no-web"]);
    assert_eq!(code(&out), 0, "start -D failed: {}", stderr(&out));
    let gate = format!(
        "ws://127.0.0.1:{}",
        app.server("gate-server-1")["clientPort"].as_u64().unwrap()
    );
    // A room that lives on chat-server-1 (rooms are routed by crc32(rid)).
    let rid = (0..100)
        .map(|i| format!("room{i}"))
        .find(|r| shaddock::hash::dispatch_index(r, 2) == Some(0))
        .unwrap();

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

    let s = app.server("chat-server-1");
    assert_eq!(s["state"], "running");
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
