//! `shaddock init` end to end: scaffold an app into a temp folder, build it
//! (`shaddock start -D --debug` runs cargo), start it, chat through gate →
//! connector → room with the Rust client, add a connector at run time and
//! see the gate hand users to it, kill -9 the room server and chat again
//! after the master restarted it, `list`, `stop`, and check that no process
//! is left. Pinus users were burned by scaffolds that no longer compiled:
//! this runs on every CI run.
//!
//! `cli_guide.rs` follows the generated README's guide on a fresh app.

mod cli_support;

use std::time::{Duration, Instant};

use cli_support::scaffold::*;
use cli_support::*;
use serde_json::{Value, json};
use shaddock_client::Client;
use shaddock_testkit::{eventually, eventually_async};

const WAIT: Duration = Duration::from_secs(10);

async fn say_and_hear(client: &Client, content: &str) -> Value {
    let resp: Value = client
        .request("room.roomHandler.say", &json!({"content": content}))
        .await
        .expect("say");
    assert_eq!(resp["code"], 200, "{resp}");
    loop {
        let push = client.next_push_timeout(WAIT).await.expect("onChat push");
        if push.route == "onChat" {
            let body: Value = push.json().unwrap();
            if body["content"] == content {
                return body;
            }
        }
    }
}

#[test]
fn init_builds_starts_chats_adds_restarts_and_stops() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("scaffold-e2e");

    // --- init ---
    let printed = init_app(&dir);
    for f in [
        "Cargo.toml",
        ".gitignore",
        "README.md",
        "config/servers.json",
        "config/master.json",
        "config/adminUser.json",
        "proto/room.proto",
        "logs",
        "shared/src/lib.rs",
        "game-server/src/main.rs",
        "game-server/src/servers/gate/handler/gate_handler.rs",
        "game-server/src/servers/connector/handler/entry_handler.rs",
        "game-server/src/servers/room/handler/room_handler.rs",
        "game-server/src/servers/room/remote/room_remote.rs",
        "web-server/public/index.html",
        "web-server/public/js/room.js",
        "web-server/public/js/pomelo-client.js",
        "web-server/src/main.rs",
    ] {
        assert!(dir.join(f).exists(), "{f} missing");
    }
    // A fresh password, printed once, stored only as a hash.
    let creds: Value = serde_json::from_str(
        &std::fs::read_to_string(dir.join("config/.admin-credentials")).unwrap(),
    )
    .unwrap();
    let password = creds["password"].as_str().unwrap();
    assert!(password.len() >= 20);
    assert!(printed.contains(password));
    let users = std::fs::read_to_string(dir.join("config/adminUser.json")).unwrap();
    assert!(!users.contains(password));
    assert!(users.contains("$argon2id$"));
    let private_and_ignored = |file: &str| {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.join(file))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "{file}");
        let ignored = std::fs::read_to_string(dir.join(".gitignore")).unwrap();
        assert!(
            ignored.contains(&format!("/{file}")),
            "{file} not git-ignored"
        );
    };
    private_and_ignored("config/.admin-credentials");
    // A development cluster secret, private and never committed.
    let secret =
        shaddock::config::ClusterSecret::load_with(&dir.join("config"), "development", None)
            .unwrap()
            .expect("init writes config/cluster.json");
    assert!(
        !printed.contains(secret.expose()),
        "the secret is not printed"
    );
    private_and_ignored("config/cluster.json");
    // A second init into the same folder is refused.
    let again = std::process::Command::new(shaddock())
        .arg("init")
        .arg(&dir)
        .output()
        .unwrap();
    assert_eq!(code(&again), 1);

    // The generated code is formatted as `cargo fmt` wants it.
    assert_rustfmt_clean(&dir);

    prepare_for_test(&dir);

    // --- build + start -D ---
    let started = Instant::now();
    let app = Running::start(&dir);
    assert!(
        app.start_stdout
            .contains("cargo build -p scaffold-e2e-game-server -p scaffold-e2e-web-server")
    );
    eprintln!("build + start took {:?}", started.elapsed());

    let list = app.list();
    let servers = list["servers"].as_array().unwrap();
    let ids: Vec<&str> = servers.iter().map(|s| s["id"].as_str().unwrap()).collect();
    assert_eq!(
        ids,
        [
            "gate-server-1",
            "connector-server-1",
            "room-server-1",
            "web-server"
        ]
    );
    for s in servers {
        assert_eq!(s["state"], "running", "{s}");
    }
    let gate_port = servers[0]["clientPort"].as_u64().unwrap();
    let gate = format!("ws://127.0.0.1:{gate_port}");
    let c1_port = servers[1]["clientPort"].as_u64().unwrap() as u16;
    // The web server serves the room page and its scripts (ES modules:
    // browsers run them only with a JavaScript content type).
    let web_port = servers[3]["clientPort"].as_u64().unwrap() as u16;
    let (status, _, page) = http_get(web_port, "/");
    assert_eq!(status, 200, "{page}");
    assert!(page.contains("<h1>scaffold-e2e</h1>"), "{page}");
    assert!(
        page.contains(r#"<script type="module" src="js/room.js"></script>"#),
        "{page}"
    );
    let (status, head, script) = http_get(web_port, "/js/room.js");
    assert_eq!(status, 200, "{head}");
    assert!(head.to_lowercase().contains("javascript"), "{head}");
    for route in [
        "gate.gateHandler.queryEntry",
        "connector.entryHandler.enter",
        "room.roomHandler.say",
    ] {
        assert!(script.contains(route), "room.js does not use {route}");
    }
    assert!(script.contains("from './pomelo-client.js'"));
    let (status, head, client) = http_get(web_port, "/js/pomelo-client.js");
    assert_eq!(status, 200, "{head}");
    assert!(head.to_lowercase().contains("javascript"), "{head}");
    assert!(client.contains("export class PomeloClient"));

    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        // --- chat through gate → connector → room ---
        let (alice, port) = enter(&gate, "alice", "lobby").await;
        assert_eq!(port, c1_port);
        let (bob, _) = enter(&gate, "bob", "lobby").await;
        let add = alice.next_push_timeout(WAIT).await.expect("onAdd");
        assert_eq!(add.route, "onAdd");
        let heard = say_and_hear(&bob, "hello from bob").await;
        assert_eq!(heard["from"], "bob");
        assert_eq!(heard["server"], "room-server-1");
        // Alice, in the same room, hears it too.
        let push = alice
            .next_push_timeout(WAIT)
            .await
            .expect("alice hears bob");
        assert_eq!(push.route, "onChat");

        // The connector reports its connections to the master.
        eventually(
            "connector-server-1 to report 2 connections",
            WAIT,
            || match app.server("connector-server-1")["connections"].as_u64() {
                Some(n) if n >= 2 => Ok(()),
                other => Err(format!("connections: {other:?}")),
            },
        );

        // --- add a connector at run time: the gate sends users to it ---
        let (port2, client_port2) = (free_port(), free_port());
        let out = app.cli(&[
            "add",
            "id=connector-server-2",
            "serverType=connector",
            "host=127.0.0.1",
            &format!("port={port2}"),
            &format!("clientPort={client_port2}"),
            "frontend=true",
        ]);
        assert_eq!(code(&out), 0, "{}", stderr(&out));
        // crc32 spreads uids over both connectors now; find one for the new one.
        let gate_ref = &gate;
        let uid = eventually_async(
            "the gate to send a user to the added connector",
            WAIT,
            || async move {
                for i in 0..50 {
                    let uid = format!("user{i}");
                    if connector_for(gate_ref, &uid).await.1 == client_port2 {
                        return Some(uid);
                    }
                }
                None
            },
        )
        .await;
        let (carol, port) = enter(&gate, &uid, "lobby").await;
        assert_eq!(port, client_port2);
        // The new connector forwards to the room server and gets its pushes.
        let heard = say_and_hear(&carol, "hi from the new connector").await;
        assert_eq!(heard["from"], uid.as_str());

        // Stopping it removes it from the gate's list again.
        assert_eq!(code(&app.cli(&["stop", "connector-server-2"])), 0);
        let uid_ref = &uid;
        eventually_async(
            "the gate to stop handing out the stopped connector",
            WAIT,
            || async move { connector_for(gate_ref, uid_ref).await.1 != client_port2 },
        )
        .await;
        assert_eq!(connector_for(&gate, &uid).await.1, c1_port);

        // --- kill -9 the room server: the master restarts it ---
        let room = app.server("room-server-1");
        let pid = room["pid"].as_u64().unwrap() as i32;
        // SAFETY: kill(2) on the pid the master reported for room-server-1.
        assert_eq!(unsafe { libc::kill(pid, libc::SIGKILL) }, 0);
        let s = eventually(
            "the master to restart room-server-1",
            Duration::from_secs(15),
            || {
                let s = app.server("room-server-1");
                if s["state"] == "running" && s["pid"].as_u64().unwrap() as i32 != pid {
                    Ok(s)
                } else {
                    Err(s.to_string())
                }
            },
        );
        assert_eq!(s["restarts"], 1);
        // Rooms live in memory: users re-enter (as a chat client does on
        // reconnect) and chat again within a few seconds.
        let back = Instant::now();
        let (dave, _) = eventually_async(
            "a user to enter the restarted room",
            Duration::from_secs(15),
            || async move {
                let uid = format!("dave{}", back.elapsed().as_millis());
                tokio::time::timeout(WAIT, enter(gate_ref, &uid, "lobby"))
                    .await
                    .ok()
            },
        )
        .await;
        let heard = say_and_hear(&dave, "after the crash").await;
        assert_eq!(heard["server"], "room-server-1");
        eprintln!("chat works again {:?} after the restart", back.elapsed());
        for c in [&alice, &bob, &carol, &dave] {
            c.close().await;
        }
    });

    // --- list shows the restart; stop leaves nothing behind ---
    let out = app.cli(&["list"]);
    let table = stdout(&out);
    let row = table
        .lines()
        .find(|l| l.starts_with("room-server-1"))
        .unwrap();
    assert!(row.trim_end().ends_with(" 1"), "{row}");
    let list = app.list();
    let servers = list["servers"].as_array().unwrap();
    assert_eq!(servers.len(), 5);
    // connector-server-2 was stopped; every other server runs.
    assert_eq!(servers.iter().filter(|s| s["pid"] == 0).count(), 1);
    app.stop();
    // Every process wrote its own log.
    for id in [
        "gate-server-1",
        "connector-server-1",
        "connector-server-2",
        "room-server-1",
        "web-server",
    ] {
        let log = dir.join(format!("logs/{id}.log"));
        assert!(log.is_file(), "{} missing", log.display());
    }
    let crash = std::fs::read_to_string(dir.join("logs/crash.log")).unwrap();
    assert!(crash.contains("room-server-1"), "{crash}");
}
