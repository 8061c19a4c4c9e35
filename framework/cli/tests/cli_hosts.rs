//! Two hosts, one etcd: the chat app spread over "host A" (127.0.0.2: the
//! gate, connector-server-1, chat-server-1) and "host B" (127.0.0.3:
//! connector-server-2, chat-server-2), each host with its own supervisor
//! (`shaddock start -D --host …`), membership through a real etcd on
//! loopback (Debian's etcd-server, installed by the test if missing).
//!
//! 1. a server whose etcd is unreachable says so and exits non-zero;
//! 2. the gate sends users to connectors on both hosts; users of both
//!    hosts chat in two rooms, one on each host's chat server; `list` on
//!    either host shows the whole cluster and who supervises what; a
//!    `restart` of a host-B server asked from host A reaches it;
//! 3. every process of host B is killed (supervisor included): its
//!    servers leave every router within the lease TTL, host A's users keep
//!    chatting in both rooms (the room of chat-server-2 moves), and a
//!    newcomer's member list holds nobody of host B;
//! 4. host B comes back and rejoins: its connector gets users again;
//! 5. etcd is killed: everyone keeps chatting with the last list; etcd
//!    comes back: the servers re-register and follow changes again (a
//!    stop of chat-server-2 moves its room, seen from the clients);
//! 6. a chat server is added to servers.json on host B and `reload` is
//!    asked from host A: host B's supervisor starts it.
//!
//! The times (start → every router, host death → every router) are
//! printed (`--nocapture`) and recorded in docs/deployment.md.

mod cli_support;

use std::process::Command;
use std::time::{Duration, Instant};

use cli_support::chat::{chat, game_server, query_entry};
use cli_support::*;
use serde_json::{Value, json};
use shaddock::discovery::etcd::{EtcdClient, Registration};
use shaddock_client::{Client, ClientOptions};
use shaddock_testkit::etcd::Etcd;
use shaddock_testkit::eventually_async;

const HOST_A: &str = "127.0.0.2";
const HOST_B: &str = "127.0.0.3";
const TTL_SECS: u64 = 3;

/// Kills what the test started on both hosts, whatever happened.
struct Hosts<'a> {
    app: &'a TestApp,
}

impl Drop for Hosts<'_> {
    fn drop(&mut self) {
        for host in [HOST_B, HOST_A] {
            let _ = Command::new(shaddock())
                .args(["kill", "--timeout", "10", "-H", host, "-d"])
                .arg(self.app.path())
                .output();
            // A supervisor that did not answer: its recorded pids.
            let _ = Command::new(shaddock())
                .args(["kill", "--force", "-H", host, "-d"])
                .arg(self.app.path())
                .output();
        }
    }
}

fn write_config(app: &TestApp, etcd: &str) -> Value {
    let p = || free_port();
    let servers = json!({"development": {
        "gate": [{"id": "gate-server-1", "host": HOST_A, "clientPort": p(), "frontend": true}],
        "connector": [
            {"id": "connector-server-1", "host": HOST_A, "port": p(), "clientPort": p(), "frontend": true},
            {"id": "connector-server-2", "host": HOST_B, "port": p(), "clientPort": p(), "frontend": true}
        ],
        "chat": [
            {"id": "chat-server-1", "host": HOST_A, "port": p()},
            {"id": "chat-server-2", "host": HOST_B, "port": p()}
        ]
    }});
    std::fs::write(app.path().join("config/servers.json"), servers.to_string()).unwrap();
    let master = json!({"development": {
        "id": "master-server-1", "host": HOST_A, "port": app.master_port,
        "etcd": {"endpoints": [etcd], "prefix": "/test-chat", "ttl": TTL_SECS}
    }});
    std::fs::write(app.path().join("config/master.json"), master.to_string()).unwrap();
    servers
}

fn start_host(app: &TestApp, host: &str) {
    let bin = game_server();
    let out = app.cli(&[
        "start",
        "-D",
        "--no-build",
        "--no-web",
        "--server-bin",
        bin.to_str().unwrap(),
        "--stop-timeout",
        "5",
        "--timeout",
        "60",
        "--host",
        host,
    ]);
    assert_eq!(code(&out), 0, "start --host {host}: {}", stderr(&out));
}

fn list_from(app: &TestApp, host: &str) -> Value {
    let out = app.cli(&["list", "--json", "-H", host]);
    assert!(out.status.success(), "list -H {host}: {}", stderr(&out));
    serde_json::from_slice(&out.stdout).unwrap()
}

/// A user in a room, and the onChat messages it heard.
struct User {
    name: String,
    client: Client,
}

async fn login(gate: &str, name: &str, rid: &str) -> (User, Vec<String>, String) {
    let (host, port) = query_entry(gate, name).await.unwrap();
    let client = Client::connect(&format!("ws://{host}:{port}"), ClientOptions::default())
        .await
        .unwrap();
    let resp: Value = client
        .request(
            "connector.entryHandler.enter",
            &json!({"username": name, "rid": rid}),
        )
        .await
        .unwrap();
    let members = resp["users"]
        .as_array()
        .unwrap_or_else(|| panic!("enter {name}: {resp}"))
        .iter()
        .map(|u| u.as_str().unwrap().to_string())
        .collect();
    (
        User {
            name: name.into(),
            client,
        },
        members,
        host,
    )
}

/// `sender` says `msg` to its room; every listener hears it.
async fn all_hear(sender: &User, listeners: &[&User], msg: &str) -> Result<(), String> {
    chat(&sender.client, &sender.client, msg)
        .await
        .map_err(|e| format!("{} → own room: {e}", sender.name))?;
    for l in listeners.iter().filter(|l| l.name != sender.name) {
        wait_for(l, msg)
            .await
            .map_err(|e| format!("{}: {e}", l.name))?;
    }
    Ok(())
}

async fn wait_for(user: &User, msg: &str) -> Result<(), String> {
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        let push = user
            .client
            .next_push_timeout(Duration::from_secs(5))
            .await
            .map_err(|e| e.to_string())?;
        if push.route == "onChat" && push.json::<Value>().unwrap()["msg"] == msg {
            return Ok(());
        }
    }
    Err(format!("never heard {msg:?}"))
}

/// The registrations in etcd, by id.
async fn registered(etcd: &str) -> Vec<String> {
    let Ok(client) = EtcdClient::connect(&[etcd.to_string()]).await else {
        return Vec::new();
    };
    let Ok((entries, _)) = client.get_prefix("/test-chat/servers/").await else {
        return Vec::new();
    };
    let mut ids: Vec<String> = entries
        .iter()
        .filter_map(|e| Registration::from_bytes(&e.value).ok())
        .map(|r| r.server.id)
        .collect();
    ids.sort();
    ids
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hosts_through_etcd_survive_losing_a_host_and_etcd() {
    let mut etcd = Etcd::start();
    let endpoint = etcd.endpoint();
    let app = TestApp::new(&[]);
    let cfg = write_config(&app, &endpoint);
    let _hosts = Hosts { app: &app };

    // 1. etcd unreachable at start: a clear error and a non-zero exit.
    let dead = format!("127.0.0.1:{}", free_port());
    let out = Command::new(game_server())
        .args(["--server-id", "chat-server-1", "--log-dir"])
        .arg(app.path().join("logs"))
        .current_dir(app.path())
        .env("SHADDOCK_ETCD_ENDPOINTS", &dead)
        .env_remove("SHADDOCK_MASTER")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "a server without etcd must fail");
    assert!(
        err.contains("cannot reach etcd") && err.contains(&dead),
        "{err}"
    );

    // 2. Both hosts up; the whole cluster in `list` from either host.
    let began = Instant::now();
    start_host(&app, HOST_A);
    start_host(&app, HOST_B);
    eprintln!("both hosts up in {} ms", began.elapsed().as_millis());
    for host in [HOST_A, HOST_B] {
        let list = list_from(&app, host);
        for (id, sup) in [
            ("gate-server-1", HOST_A),
            ("connector-server-1", HOST_A),
            ("chat-server-1", HOST_A),
            ("connector-server-2", HOST_B),
            ("chat-server-2", HOST_B),
        ] {
            let s = server_in(&list, id);
            assert_eq!(s["state"], "running", "{id} from {host}: {s}");
            assert_eq!(s["supervisor"], sup, "{id} from {host}: {s}");
        }
    }

    let gate = format!(
        "ws://{HOST_A}:{}",
        cfg["development"]["gate"][0]["clientPort"]
    );
    let chats = [
        shaddock_testkit::server("chat-server-1", "chat", Some(1), None),
        shaddock_testkit::server("chat-server-2", "chat", Some(1), None),
    ];
    let room_on = |owner: usize| {
        (0..200)
            .map(|i| format!("room{i}"))
            .find(|r| shaddock::router::RendezvousRouter::owner(r, &chats) == Some(owner))
            .unwrap()
    };
    let (room1, room2) = (room_on(0), room_on(1));
    // Names the gate sends to each host's connector.
    let mut on_a = Vec::new();
    let mut on_b = Vec::new();
    for i in 0..40 {
        let name = format!("user{i}");
        let (host, _) = query_entry(&gate, &name).await.unwrap();
        if host == HOST_A && on_a.len() < 4 {
            on_a.push(name);
        } else if host == HOST_B && on_b.len() < 4 {
            on_b.push(name);
        }
    }
    assert_eq!(
        (on_a.len(), on_b.len()),
        (4, 4),
        "the gate uses both hosts' connectors"
    );
    let mut users_a = Vec::new();
    let mut users_b = Vec::new();
    for (i, name) in on_a.iter().enumerate() {
        let rid = if i % 2 == 0 { &room1 } else { &room2 };
        users_a.push((login(&gate, name, rid).await.0, rid.clone()));
    }
    for (i, name) in on_b.iter().enumerate() {
        let rid = if i % 2 == 0 { &room1 } else { &room2 };
        users_b.push((login(&gate, name, rid).await.0, rid.clone()));
    }
    let in_room = |users: &[(User, String)], rid: &str| -> Vec<usize> {
        users
            .iter()
            .enumerate()
            .filter(|(_, (_, r))| r == rid)
            .map(|(i, _)| i)
            .collect()
    };
    for rid in [&room1, &room2] {
        let a = in_room(&users_a, rid);
        let b = in_room(&users_b, rid);
        let listeners: Vec<&User> = a
            .iter()
            .map(|&i| &users_a[i].0)
            .chain(b.iter().map(|&i| &users_b[i].0))
            .collect();
        if let Err(e) = all_hear(&users_a[a[0]].0, &listeners, &format!("a→{rid}")).await {
            dump_logs(&app);
            panic!("{e}; rooms {room1} {room2}; A {on_a:?} B {on_b:?}");
        }
        all_hear(&users_b[b[0]].0, &listeners, &format!("b→{rid}"))
            .await
            .unwrap();
    }

    // A restart of a host-B server asked from host A reaches host B.
    let before = server_in(&list_from(&app, HOST_A), "chat-server-2")["pid"].clone();
    let out = app.cli(&["restart", "chat-server-2", "-H", HOST_A, "--timeout", "30"]);
    assert_eq!(code(&out), 0, "restart through host A: {}", stderr(&out));
    let after = server_in(&list_from(&app, HOST_B), "chat-server-2");
    assert_ne!(after["pid"], before, "chat-server-2 was restarted: {after}");
    assert_eq!(after["state"], "running");
    // Its room is whole again (rebuilt from the frontends).
    let a = in_room(&users_a, &room2);
    let b = in_room(&users_b, &room2);
    let listeners: Vec<&User> = a
        .iter()
        .map(|&i| &users_a[i].0)
        .chain(b.iter().map(|&i| &users_b[i].0))
        .collect();
    eventually_async("room 2 to work after the restart", Duration::from_secs(10), || {
        let sender = &users_a[a[0]].0;
        let listeners = listeners.clone();
        async move { all_hear(sender, &listeners, &format!("after-restart {}", now_ms())).await }
    })
    .await;

    // 3. Host B lost: its supervisor and every server it ran, kill -9.
    let list_b = list_from(&app, HOST_B);
    let mut pids_b: Vec<u32> = list_b["servers"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["supervisor"] == HOST_B)
        .map(|s| s["pid"].as_u64().unwrap() as u32)
        .collect();
    pids_b.push(list_b["master"]["pid"].as_u64().unwrap() as u32);
    // `kill --force -H`: SIGKILL of every pid host B's supervisor recorded,
    // the supervisor's own included, without asking it.
    let killed = Instant::now();
    let out = app.cli(&["kill", "--force", "-H", HOST_B]);
    assert_eq!(code(&out), 0, "kill --force -H {HOST_B}: {}", stderr(&out));
    wait_gone(&pids_b, Duration::from_secs(5));
    let expected_a = ["chat-server-1", "connector-server-1", "gate-server-1"];
    wait_registered(
        &endpoint,
        "host B's servers to leave etcd",
        Duration::from_secs(TTL_SECS * 3),
        |ids| ids == expected_a,
    )
    .await;
    let dropped = killed.elapsed();
    eprintln!(
        "host B killed → its servers gone from etcd (every watcher) in {} ms (TTL {TTL_SECS} s)",
        dropped.as_millis()
    );
    assert!(dropped < Duration::from_secs(TTL_SECS + 2), "{dropped:?}");
    // Host A's users keep chatting in both rooms (room 2 moved to chat-server-1).
    for rid in [&room1, &room2] {
        let a = in_room(&users_a, rid);
        let listeners: Vec<&User> = a.iter().map(|&i| &users_a[i].0).collect();
        eventually_async(
            &format!("{rid} to work on host A alone"),
            Duration::from_secs(10),
            || {
                let sender = &users_a[a[0]].0;
                let listeners = listeners.clone();
                async move { all_hear(sender, &listeners, &format!("alone {}", now_ms())).await }
            },
        )
        .await;
    }
    eprintln!(
        "host B killed → both rooms work on host A {} ms later",
        killed.elapsed().as_millis()
    );
    // A newcomer (the gate sends it to host A now) sees no ghost of host B.
    let (newcomer, members, host) = login(&gate, "newcomer", &room2).await;
    assert_eq!(host, HOST_A);
    let mut expected: Vec<String> = in_room(&users_a, &room2)
        .iter()
        .map(|&i| users_a[i].0.name.clone())
        .chain(["newcomer".to_string()])
        .collect();
    let mut members = members;
    expected.sort();
    members.sort();
    assert_eq!(members, expected, "room 2's members after host B died");
    let list = list_from(&app, HOST_A);
    assert!(
        list["servers"]
            .as_array()
            .unwrap()
            .iter()
            .all(|s| s["supervisor"] != HOST_B),
        "host B gone from list: {list}"
    );
    drop(users_b);

    // 4. Host B comes back and rejoins.
    let back = Instant::now();
    start_host(&app, HOST_B);
    wait_registered(
        &endpoint,
        "host B's servers in etcd again",
        Duration::from_secs(10),
        |ids| ids.len() == 5,
    )
    .await;
    eprintln!(
        "host B restarted → registered in {} ms",
        back.elapsed().as_millis()
    );
    let b_name = on_b[0].clone();
    let (user_b, _, host) = login(&gate, &b_name, &room2).await;
    assert_eq!(host, HOST_B, "the gate uses host B's connector again");
    let a = in_room(&users_a, &room2);
    let mut listeners: Vec<&User> = a.iter().map(|&i| &users_a[i].0).collect();
    listeners.push(&newcomer);
    eventually_async(
        "host B's user to chat with host A's",
        Duration::from_secs(10),
        || {
            let listeners = listeners.clone();
            let user_b = &user_b;
            async move { all_hear(user_b, &listeners, &format!("back {}", now_ms())).await }
        },
    )
    .await;

    // 5. etcd lost: chat goes on with the last list.
    etcd.kill();
    listeners.push(&user_b);
    // Longer than the TTL: the leases run out while etcd is away.
    for i in 0..4 {
        all_hear(&users_a[a[0]].0, &listeners, &format!("no etcd {i}"))
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(1000)).await;
    }
    // etcd back: every server registered again, and changes are followed.
    etcd.restart();
    wait_registered(
        &endpoint,
        "every server registered after etcd returned",
        Duration::from_secs(20),
        |ids| ids.len() == 5,
    )
    .await;
    let out = app.cli(&["stop", "chat-server-2", "-H", HOST_A, "--timeout", "30"]);
    assert_eq!(code(&out), 0, "stop through host A: {}", stderr(&out));
    wait_registered(
        &endpoint,
        "chat-server-2 to leave etcd",
        Duration::from_secs(10),
        |ids| ids.len() == 4 && !ids.iter().any(|id| id == "chat-server-2"),
    )
    .await;
    eventually_async(
        "room 2 to work after etcd came back and chat-server-2 stopped",
        Duration::from_secs(10),
        || {
            let listeners = listeners.clone();
            let sender = &users_a[a[0]].0;
            async move { all_hear(sender, &listeners, &format!("followed {}", now_ms())).await }
        },
    )
    .await;
    let (_late, members, _) = login(&gate, "late", &room2).await;
    assert!(
        members.contains(&b_name) && members.contains(&"newcomer".to_string()),
        "{members:?}"
    );
    assert!(
        !members.contains(&on_b[1]),
        "no ghost of host B's first run: {members:?}"
    );

    // 6. servers.json edited (a chat server added on host B), `reload`
    // asked from host A: host B's supervisor starts it, host A's does not.
    app.edit_servers_json(|dev| {
        dev["chat"].as_array_mut().unwrap().push(json!(
            {"id": "chat-server-3", "host": HOST_B, "port": free_port()}
        ));
    });
    let out = app.cli(&["reload", "-H", HOST_A, "--timeout", "30"]);
    assert_eq!(code(&out), 0, "reload through host A: {}", stderr(&out));
    let s = server_in(&list_from(&app, HOST_A), "chat-server-3");
    assert_eq!(
        (&s["state"], &s["supervisor"]),
        (&json!("running"), &json!(HOST_B)),
        "{s}"
    );
    wait_registered(
        &endpoint,
        "chat-server-3 in etcd",
        Duration::from_secs(10),
        |ids| ids.iter().any(|id| id == "chat-server-3"),
    )
    .await;
    eventually_async(
        "room 2 to work with chat-server-3 in the cluster",
        Duration::from_secs(10),
        || {
            let listeners = listeners.clone();
            let sender = &users_a[a[0]].0;
            async move { all_hear(sender, &listeners, &format!("grown {}", now_ms())).await }
        },
    )
    .await;
}

/// The last lines of every server's log, for a failure report.
fn dump_logs(app: &TestApp) {
    for entry in std::fs::read_dir(app.path().join("logs"))
        .unwrap()
        .flatten()
    {
        let path = entry.path();
        if path.is_file() {
            let text = std::fs::read_to_string(&path).unwrap_or_default();
            let lines: Vec<&str> = text.lines().collect();
            eprintln!("==== {}", path.display());
            for l in &lines[lines.len().saturating_sub(25)..] {
                eprintln!("{l}");
            }
        }
    }
}

/// Waits until the ids registered in etcd satisfy `ok`.
async fn wait_registered(
    endpoint: &str,
    what: &str,
    within: Duration,
    ok: impl Fn(&[String]) -> bool,
) {
    let ok = &ok;
    eventually_async(what, within, || async move {
        let ids = registered(endpoint).await;
        if ok(&ids) {
            Ok(())
        } else {
            Err(format!("{ids:?}"))
        }
    })
    .await;
}

fn now_ms() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis()
}
