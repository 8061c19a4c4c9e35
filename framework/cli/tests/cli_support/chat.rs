//! The chat app (`game-server`, chatofpomelo) seen from a client: build
//! it, enter a room through gate → connector, chat and wait for the push.

use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use shaddock_client::{Client, ClientOptions};

use super::{Srv, TestApp, built, code, free_port, shaddock, stderr};

pub const WAIT: Duration = Duration::from_secs(10);

/// `target/<profile>/game-server`, built if needed (`cargo test -p
/// shaddock` alone does not build other packages' binaries).
pub fn game_server() -> PathBuf {
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

/// Asks the gate which connector `uid` should use: its host and client port.
pub async fn query_entry(gate: &str, uid: &str) -> Result<(String, u16), String> {
    let g = Client::connect(gate, ClientOptions::default())
        .await
        .map_err(|e| format!("gate: {e}"))?;
    let entry: Value = g
        .request("gate.gateHandler.queryEntry", &json!({"uid": uid}))
        .await
        .map_err(|e| format!("queryEntry: {e}"))?;
    g.close().await;
    if entry["code"] != 200 {
        return Err(format!("queryEntry answered {entry}"));
    }
    let host = entry["host"].as_str().unwrap_or_default().to_string();
    Ok((host, entry["port"].as_u64().unwrap_or(0) as u16))
}

pub async fn enter(gate: &str, username: &str, rid: &str) -> Result<Client, String> {
    let (host, port) = query_entry(gate, username).await?;
    let url = format!("ws://{host}:{port}");
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
pub async fn chat(sender: &Client, listener: &Client, content: &str) -> Result<(), String> {
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
    let deadline = Instant::now() + WAIT;
    while Instant::now() < deadline {
        let push = listener
            .next_push_timeout(WAIT)
            .await
            .map_err(|e| e.to_string())?;
        if push.route == "onChat" && push.json::<Value>().unwrap()["msg"] == content {
            return Ok(());
        }
    }
    Err("onChat never arrived".into())
}

/// The chat app under a master (`start -D`): a gate, `connectors`, and
/// chat-server-1 and chat-server-2. Returns the app, the gate's URL and a
/// room that lives on chat-server-1 (rooms are placed by rendezvous hashing
/// over the chat servers' ids).
pub fn start_chat_app(connectors: &[&str]) -> (TestApp, String, String) {
    start_chat_servers(chat_servers(connectors))
}

/// The servers of [`start_chat_app`], to change before starting them.
pub fn chat_servers(connectors: &[&str]) -> Vec<Srv> {
    let mut servers = vec![Srv {
        client_port: Some(free_port()),
        port: None,
        ..Srv::frontend("gate-server-1", "gate")
    }];
    servers.extend(connectors.iter().map(|id| Srv::frontend(id, "connector")));
    servers.push(Srv::backend("chat-server-1", "chat"));
    servers.push(Srv::backend("chat-server-2", "chat"));
    servers
}

/// [`start_chat_app`] with the given servers.
pub fn start_chat_servers(servers: Vec<Srv>) -> (TestApp, String, String) {
    start_chat_servers_with(servers, |_| {})
}

/// [`start_chat_servers`], after `prepare` has seen the app folder (to add
/// config files).
pub fn start_chat_servers_with(
    servers: Vec<Srv>,
    prepare: impl FnOnce(&std::path::Path),
) -> (TestApp, String, String) {
    let mut app = TestApp::new(&servers);
    prepare(app.path());
    let out = app.start_daemon_with(&game_server(), &["--no-web"]);
    assert_eq!(code(&out), 0, "start -D failed: {}", stderr(&out));
    let gate = format!(
        "ws://127.0.0.1:{}",
        app.server("gate-server-1")["clientPort"].as_u64().unwrap()
    );
    let chats = [
        shaddock_testkit::server("chat-server-1", "chat", Some(1), None),
        shaddock_testkit::server("chat-server-2", "chat", Some(1), None),
    ];
    let rid = (0..100)
        .map(|i| format!("room{i}"))
        .find(|r| shaddock::router::RendezvousRouter::owner(r, &chats) == Some(0))
        .unwrap();
    (app, gate, rid)
}
