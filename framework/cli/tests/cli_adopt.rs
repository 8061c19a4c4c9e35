//! The master is not on the data path: `kill -9` of the master leaves every
//! server serving (a connected chat client keeps chatting), and the next
//! `shaddock start` adopts the running servers from `logs/master.pids.json`
//! — same pids, no second copies — supervises them (a crash is restarted),
//! and `list`, `restart`, `kill` and `stop` work on them. Records of a pid
//! that was reused, or of a master that still runs, are not trusted.

mod cli_support;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use cli_support::chat::*;
use cli_support::*;
use shaddock_cli::master::procinfo;
use shaddock_cli::master::records::{Records, ServerRecord};

/// Every live process a master of this app started: server id → pids
/// (found by their environment, so second copies would show up).
fn app_processes(master_port: u16) -> BTreeMap<String, Vec<u32>> {
    let master = format!("SHADDOCK_MASTER=127.0.0.1:{master_port}");
    let mut found: BTreeMap<String, Vec<u32>> = BTreeMap::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Some(pid) = entry.file_name().to_str().and_then(|n| n.parse().ok()) else {
            continue;
        };
        let Some(env) = procinfo::environ(pid) else {
            continue;
        };
        if gone(pid) || !env.contains(&master) {
            continue;
        }
        if let Some(id) = env
            .iter()
            .find_map(|v| v.strip_prefix("SHADDOCK_SERVER_ID="))
        {
            found.entry(id.to_string()).or_default().push(pid);
        }
    }
    found
}

/// The chat repository's web server, built if needed.
fn web_server() -> PathBuf {
    built(
        shaddock().parent().unwrap().join("web-server"),
        &["-p", "web-server"],
        &["web-server/src", "web-server/Cargo.toml"],
    )
}

/// Server id → pid, as `list` shows them.
fn server_pids(app: &TestApp) -> BTreeMap<String, u32> {
    app.list()["servers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["id"].as_str().unwrap().to_string(),
                s["pid"].as_u64().unwrap() as u32,
            )
        })
        .collect()
}

fn master_pid(app: &TestApp) -> u32 {
    app.list()["master"]["pid"].as_u64().unwrap() as u32
}

fn sigkill(pid: u32) {
    // SAFETY: kill(2) on a pid the master reported for this test's app.
    assert_eq!(unsafe { libc::kill(pid as i32, libc::SIGKILL) }, 0);
}

/// The next master adopts exactly the servers that run: same pids, one
/// process per server, all `running` and marked adopted; their membership
/// streams rejoin (the token was kept).
fn assert_adopted(app: &TestApp, before: &BTreeMap<String, u32>) {
    assert_eq!(server_pids(app), *before);
    let one_each: BTreeMap<String, Vec<u32>> = before
        .iter()
        .map(|(id, p)| (id.clone(), vec![*p]))
        .collect();
    assert_eq!(app_processes(app.master_port), one_each);
    for id in before.keys() {
        let s = app.server(id);
        assert_eq!(s["state"], "running", "{s}");
        assert_eq!(s["adopted"], true, "{s}");
    }
    let t = Instant::now();
    // The web server is not a cluster member: it has no membership stream.
    for id in before.keys().filter(|id| *id != "web-server") {
        app.wait_server(id, "its membership stream", |s| s["agentConnected"] == true);
    }
    eprintln!(
        "membership streams rejoined {:?} after adoption",
        t.elapsed()
    );
    let table = stdout(&app.cli(&["list"]));
    assert!(table.contains("running*"), "{table}");
    assert!(table.contains("adopted from an earlier master"), "{table}");
}

/// Kills the master (SIGKILL), checks every server still runs, and
/// returns the pids they run under.
fn kill_master(app: &TestApp) -> BTreeMap<String, u32> {
    let before = server_pids(app);
    let master = master_pid(app);
    sigkill(master);
    wait_gone(&[master], Duration::from_secs(5));
    // deliberate: give a server that would die with its master time to do so.
    std::thread::sleep(Duration::from_millis(300));
    for (id, pid) in &before {
        assert!(!gone(*pid), "{id} (pid {pid}) died with the master");
    }
    // No master answers any more.
    assert_eq!(code(&app.cli(&["list"])), 3);
    before
}

/// `start -D` again; returns how long the adoption took.
fn restart_master(app: &mut TestApp, bin: &Path, extra: &[&str]) -> Duration {
    let t = Instant::now();
    let out = app.start_daemon_with(bin, extra);
    let took = t.elapsed();
    assert_eq!(code(&out), 0, "second start -D failed: {}", stderr(&out));
    assert!(stdout(&out).contains(", adopted)"), "{}", stdout(&out));
    let log = std::fs::read_to_string(app.path().join("logs/master.log")).unwrap();
    let line = log
        .lines()
        .rev()
        .find(|l| l.contains("running server(s) of an earlier master"));
    eprintln!("start -D with adoption took {took:?}: {line:?}");
    took
}

#[test]
fn chat_keeps_working_without_the_master_and_the_next_master_adopts_the_servers() {
    let bin = game_server();
    let (mut app, gate, rid) = start_chat_app(&["connector-server-1"]);
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (alice, bob) = rt.block_on(async {
        let alice = enter(&gate, "alice", &rid).await.expect("alice enters");
        let bob = enter(&gate, "bob", &rid).await.expect("bob enters");
        chat(&alice, &bob, "before").await.expect("chat before");
        (alice, bob)
    });

    let before = kill_master(&app);
    // The master is not on the data path: connected users chat, new users
    // get a connector from the gate and join the room.
    let t = Instant::now();
    rt.block_on(async {
        chat(&alice, &bob, "no master")
            .await
            .expect("chat without a master");
        let carol = enter(&gate, "carol", &rid).await.expect("carol enters");
        chat(&carol, &alice, "carol too")
            .await
            .expect("carol chats");
        carol.close().await;
    });
    eprintln!("chatted without a master in {:?}", t.elapsed());

    restart_master(&mut app, &bin, &["--no-web"]);
    assert_adopted(&app, &before);
    // chat-server-1 logged carol's join while its stderr pipe to the dead
    // master was closed, and kept serving: the line is in its log file.
    let log = std::fs::read_to_string(app.path().join("logs/chat-server-1.log")).unwrap();
    assert!(
        log.lines()
            .any(|l| l.contains("user joined room") && l.contains("carol")),
        "{log}"
    );
    rt.block_on(async {
        chat(&bob, &alice, "adopted")
            .await
            .expect("chat after the adoption")
    });

    // A crash of an adopted server is noticed and it is restarted (as an
    // own child of the new master).
    let chat1 = before["chat-server-1"];
    sigkill(chat1);
    let killed = Instant::now();
    let s = app.wait_server("chat-server-1", "its restart", |s| {
        s["state"] == "running" && s["pid"] != 0 && s["pid"].as_u64().unwrap() as u32 != chat1
    });
    eprintln!(
        "adopted chat-server-1 killed: running again {:?} later",
        killed.elapsed()
    );
    assert_eq!(s["restarts"], 1, "{s}");
    assert_eq!(s["adopted"], false, "{s}");
    let crash_log = std::fs::read_to_string(app.path().join("logs/crash.log")).unwrap();
    assert!(
        crash_log.contains(&format!("chat-server-1 pid={chat1} exited")),
        "{crash_log}"
    );
    rt.block_on(async {
        alice.close().await;
        bob.close().await;
    });

    // `stop` leaves nothing: adopted servers, the restarted one, the master.
    let pids = app.all_pids();
    assert_eq!(pids.len(), 5);
    let out = app.cli(&["stop"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    wait_gone(&pids, Duration::from_secs(15));
    assert!(app_processes(app.master_port).is_empty());
    assert!(!app.path().join("logs/master.pids.json").exists());
}

#[test]
fn adopted_servers_answer_restart_kill_and_stop_and_added_servers_are_adopted_too() {
    let mut app = TestApp::new(&[
        Srv::frontend("connector-1", "connector"),
        Srv::backend("chat-1", "chat"),
        Srv::backend("chat-2", "chat"),
    ]);
    // The web server is started by the master too, on a free port.
    std::fs::write(
        app.path().join("config/master.json"),
        format!(
            r#"{{"development":{{"id":"master-server-1","host":"127.0.0.1","port":{},
                "web":{{"host":"127.0.0.1","port":{}}}}}}}"#,
            app.master_port,
            free_port()
        ),
    )
    .unwrap();
    let web = web_server();
    let web_args = ["--web-bin", web.to_str().unwrap()];
    let out = app.start_daemon(&web_args);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    // A server added at run time is in no servers.json: only the records
    // tell the next master about it.
    let port = format!("port={}", free_port());
    let out = app.cli(&[
        "add",
        "id=chat-3",
        "serverType=chat",
        "host=127.0.0.1",
        &port,
    ]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let mode = std::fs::metadata(app.path().join("logs/master.pids.json"))
        .unwrap()
        .permissions();
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(mode.mode() & 0o777, 0o600, "the records hold the token");

    let before = kill_master(&app);
    assert_eq!(before.len(), 5, "{before:?}");
    let agent = agent_server();
    let took = restart_master(&mut app, &agent, &web_args);
    assert!(took < Duration::from_secs(10), "{took:?}");
    assert_adopted(&app, &before);
    let chat1_port = app.server("chat-1")["port"].as_u64().unwrap() as u16;
    assert_eq!(
        members_seen_by(chat1_port),
        ["connector-1", "chat-1", "chat-2", "chat-3"]
    );

    // restart: a graceful stop of the adopted process, then an own child.
    let out = app.cli(&["restart", "chat-1"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    wait_gone(&[before["chat-1"]], Duration::from_secs(5));
    let s = app.server("chat-1");
    assert_eq!(s["state"], "running", "{s}");
    assert_eq!(s["adopted"], false, "{s}");
    // kill: SIGKILL, not restarted.
    let out = app.cli(&["kill", "chat-2"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    wait_gone(&[before["chat-2"]], Duration::from_secs(5));
    // deliberate: time for a restart that must not happen.
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(app.server("chat-2")["state"], "stopped");

    let pids = app.all_pids();
    let out = app.cli(&["stop"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    wait_gone(&pids, Duration::from_secs(10));
    assert!(app_processes(app.master_port).is_empty());
}

#[test]
fn records_of_a_reused_pid_or_of_a_live_master_are_not_trusted() {
    let mut app = TestApp::new(&[
        Srv::backend("chat-1", "chat"),
        Srv::backend("chat-2", "chat"),
    ]);
    let addr = format!("127.0.0.1:{}", app.master_port);
    // A process that looks like chat-1 of this app (its environment says
    // so) but is recorded with another start time: the recorded chat-1
    // died and its pid went to this one. And a plain process recorded with
    // its right start time as chat-2: not a server of this app.
    let mut lookalike = KillOnDrop(
        Command::new("sleep")
            .arg("60")
            .env("SHADDOCK_SERVER_ID", "chat-1")
            .env("SHADDOCK_MASTER", &addr)
            .spawn()
            .unwrap(),
    );
    let mut other = KillOnDrop(Command::new("sleep").arg("60").spawn().unwrap());
    let lookalike_pid = lookalike.0.id();
    let other_pid = other.0.id();
    let lookalike_start = procinfo::start_time(lookalike_pid).unwrap();
    let mut dead = Command::new("true").spawn().unwrap();
    let dead_pid = dead.id();
    dead.wait().unwrap();
    let info = |id: &str| -> shaddock::config::ServerInfo {
        serde_json::from_value(serde_json::json!({
            "id": id, "serverType": "chat", "host": "127.0.0.1", "port": free_port(),
        }))
        .unwrap()
    };
    let mut records = Records {
        master: dead_pid,
        master_start: Some(1),
        addr: addr.clone(),
        env: "development".into(),
        token: "recorded-token".into(),
        servers: vec![
            ServerRecord {
                id: "chat-1".into(),
                pid: lookalike_pid,
                start: Some(lookalike_start + 1),
                info: Some(info("chat-1")),
                restarts: 0,
                up: true,
            },
            ServerRecord {
                id: "chat-2".into(),
                pid: other_pid,
                start: procinfo::start_time(other_pid),
                info: Some(info("chat-2")),
                restarts: 0,
                up: true,
            },
        ],
    };
    let logs = app.path().join("logs");
    std::fs::create_dir_all(&logs).unwrap();
    records.write(&logs).unwrap();

    let out = app.start_daemon(&[]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    for (id, spared) in [("chat-1", lookalike_pid), ("chat-2", other_pid)] {
        let s = app.server(id);
        assert_eq!(s["adopted"], false, "{s}");
        assert_ne!(s["pid"].as_u64().unwrap() as u32, spared, "{s}");
    }
    let pids = app.all_pids();
    assert_eq!(code(&app.cli(&["stop"])), 0);
    wait_gone(&pids, Duration::from_secs(10));
    assert!(
        lookalike.0.try_wait().unwrap().is_none(),
        "a foreign pid was signalled"
    );
    assert!(
        other.0.try_wait().unwrap().is_none(),
        "a foreign pid was signalled"
    );

    // Records whose master still runs (same pid, same start time): a new
    // master refuses to start rather than run a second copy of everything.
    records.master = lookalike_pid;
    records.master_start = Some(lookalike_start);
    records.servers.clear();
    records.write(&logs).unwrap();
    let out = app.start_daemon(&[]);
    assert_eq!(code(&out), 1, "{}", stdout(&out));
    assert!(
        stderr(&out).contains("a master of this app is still running"),
        "{}",
        stderr(&out)
    );
    assert!(lookalike.0.try_wait().unwrap().is_none());
}
