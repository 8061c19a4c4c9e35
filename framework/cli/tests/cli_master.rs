//! The master and the `shaddock` CLI with real processes: the master is
//! started with `shaddock start -D` and supervises `agent_server` example
//! processes (one per server of a generated servers.json) on free loopback
//! ports. Every check goes through the CLI or the real gRPC API.

mod cli_support;

use std::time::Duration;

use cli_support::*;
use shaddock_testkit::eventually;

#[test]
fn start_list_stop_leaves_no_process() {
    let mut app = TestApp::new(&[
        Srv::frontend("connector-1", "connector"),
        Srv::backend("chat-1", "chat"),
        Srv::backend("chat-2", "chat"),
    ]);
    let out = app.start_daemon(&[]);
    assert_eq!(code(&out), 0, "start -D failed: {}", stderr(&out));
    assert!(stdout(&out).contains("all 3 servers are up"));

    let out = app.cli(&["list"]);
    assert_eq!(code(&out), 0);
    let table = stdout(&out);
    for header in [
        "id",
        "type",
        "pid",
        "host",
        "port",
        "clientPort",
        "state",
        "uptime",
        "conns",
        "RSS",
        "CPU",
    ] {
        assert!(table.contains(header), "missing column {header}:\n{table}");
    }
    let list = app.list();
    let servers = list["servers"].as_array().unwrap();
    assert_eq!(servers.len(), 3);
    for s in servers {
        assert_eq!(s["state"], "running", "{s}");
        assert!(s["pid"].as_u64().unwrap() > 0);
        assert!(s["rssBytes"].as_u64().unwrap() > 0, "{s}");
        assert_eq!(s["agentConnected"], true, "{s}");
    }
    // Every server got the full membership list from the master.
    let port = servers[1]["port"].as_u64().unwrap() as u16;
    assert_eq!(members_seen_by(port), ["connector-1", "chat-1", "chat-2"]);

    // Connections reported by the agent show up in list.
    let client_port = servers[0]["clientPort"].as_u64().unwrap() as u16;
    let _c1 = std::net::TcpStream::connect(("127.0.0.1", client_port)).unwrap();
    let _c2 = std::net::TcpStream::connect(("127.0.0.1", client_port)).unwrap();
    app.wait_server("connector-1", "2 connections", |s| s["connections"] == 2);

    let pids = app.all_pids();
    assert_eq!(pids.len(), 4);
    let out = app.cli(&["stop"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    wait_gone(&pids, Duration::from_secs(10));
    // Graceful: each server saw its stop and said so in the master's log.
    let log = std::fs::read_to_string(app.path().join("logs/master.log")).unwrap();
    for id in ["connector-1", "chat-1", "chat-2"] {
        assert!(
            log.lines()
                .any(|l| l.starts_with(&format!("[{id}")) && l.ends_with("graceful stop")),
            "{id} did not stop gracefully:\n{log}"
        );
    }
    // And the CLI now says no master runs (exit code 3).
    assert_eq!(code(&app.cli(&["list"])), 3);
}

#[test]
fn admin_api_refuses_missing_and_wrong_credentials() {
    let mut app = TestApp::new(&[Srv::backend("chat-1", "chat")]);
    assert_eq!(code(&app.start_daemon(&[])), 0);
    let port = app.master_port.to_string();
    let pass = app.password.clone();

    // No credentials at all: move the credentials file away.
    let creds = app.path().join("config/.admin-credentials");
    let moved = app.path().join("creds.bak");
    std::fs::rename(&creds, &moved).unwrap();
    let out = app.cli(&["list"]);
    assert_eq!(code(&out), 4, "no credentials must exit 4");
    assert!(stderr(&out).contains("no admin credentials"));
    // A user name and an empty / wrong password.
    let out = app.cli(&["list", "-u", "admin", "-p", "admin"]);
    assert_eq!(code(&out), 4);
    assert!(
        stderr(&out).contains("wrong admin user name or password"),
        "{}",
        stderr(&out)
    );
    assert_eq!(code(&app.cli(&["list", "-u", "root", "-p", &pass])), 4);
    // Right credentials on the command line work; so does the environment.
    assert_eq!(
        code(&app.cli(&["list", "-u", "admin", "-p", &pass, "-P", &port])),
        0
    );
    let out = std::process::Command::new(shaddock())
        .args(["list", "-d"])
        .arg(app.path())
        .env("SHADDOCK_ADMIN_USER", "admin")
        .env("SHADDOCK_ADMIN_PASSWORD", &pass)
        .output()
        .unwrap();
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    std::fs::rename(&moved, &creds).unwrap();

    // The raw gRPC API refuses a call without metadata too (not only the CLI).
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        use shaddock_cli::master::proto::admin_client::AdminClient;
        let mut c = AdminClient::connect(format!("http://127.0.0.1:{}", app.master_port))
            .await
            .unwrap();
        let err = c
            .list(shaddock_cli::master::proto::ListRequest { local_only: false })
            .await
            .unwrap_err();
        assert_eq!(err.code(), tonic::Code::Unauthenticated);
        let err = c
            .shutdown(shaddock_cli::master::proto::ShutdownRequest {})
            .await
            .unwrap_err();
        assert_eq!(err.code(), tonic::Code::Unauthenticated);

        // The membership stream wants the per-run token.
        use shaddock_cli::master::proto::membership_client::MembershipClient;
        use shaddock_cli::master::proto::{AgentMessage, Hello, agent_message::Kind};
        let mut m = MembershipClient::connect(format!("http://127.0.0.1:{}", app.master_port))
            .await
            .unwrap();
        let hello = AgentMessage {
            kind: Some(Kind::Hello(Hello {
                server_id: "chat-1".into(),
                token: "guessed".into(),
                pid: std::process::id(),
            })),
        };
        let err = m
            .join(futures_util::stream::iter(vec![hello]))
            .await
            .unwrap_err();
        assert_eq!(err.code(), tonic::Code::Unauthenticated);
    });
    // Still running after all that.
    assert_eq!(app.server("chat-1")["state"], "running");
}

#[test]
fn crashed_server_is_restarted_and_counted() {
    let mut app = TestApp::new(&[
        Srv::backend("chat-1", "chat"),
        Srv::backend("chat-2", "chat"),
    ]);
    assert_eq!(code(&app.start_daemon(&[])), 0);
    let before = app.server("chat-1");
    let pid = before["pid"].as_u64().unwrap() as i32;
    // SAFETY: kill(2) on the pid the master reported for chat-1.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGKILL) }, 0);
    let after = app.wait_server("chat-1", "restart", |s| {
        s["state"] == "running" && s["pid"].as_u64().unwrap() as i32 != pid && s["pid"] != 0
    });
    assert_eq!(after["restarts"], 1, "{after}");
    // The other server was left alone.
    assert_eq!(app.server("chat-2")["restarts"], 0);
    // It is back in service: its port answers with the membership list.
    let port = after["port"].as_u64().unwrap() as u16;
    wait_members(port, &["chat-1", "chat-2"]);
    let crash_log = std::fs::read_to_string(app.path().join("logs/crash.log")).unwrap();
    assert!(
        crash_log.contains(&format!("chat-1 pid={pid} was killed by signal 9")),
        "{crash_log}"
    );
    let out = app.cli(&["list"]);
    let row = stdout(&out)
        .lines()
        .find(|l| l.starts_with("chat-1"))
        .unwrap()
        .to_string();
    assert!(row.trim_end().ends_with('1'), "restart count column: {row}");
}

#[test]
fn added_server_is_pushed_to_every_server() {
    let mut app = TestApp::new(&[
        Srv::frontend("connector-1", "connector"),
        Srv::backend("chat-1", "chat"),
    ]);
    assert_eq!(code(&app.start_daemon(&[])), 0);
    let chat_port = app.server("chat-1")["port"].as_u64().unwrap() as u16;
    assert_eq!(members_seen_by(chat_port), ["connector-1", "chat-1"]);

    let port = free_port().to_string();
    let client_port = free_port().to_string();
    let out = app.cli(&[
        "add",
        "id=connector-2",
        "serverType=connector",
        "host=127.0.0.1",
        &format!("port={port}"),
        &format!("clientPort={client_port}"),
        "frontend=true",
    ]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let added = app.server("connector-2");
    assert_eq!(added["state"], "running");
    assert_eq!(
        added["clientPort"].as_u64().unwrap().to_string(),
        client_port
    );
    // Every other server learnt it, and so did the new one.
    wait_members(chat_port, &["connector-1", "chat-1", "connector-2"]);
    assert_eq!(
        members_seen_by(port.parse().unwrap()),
        ["connector-1", "chat-1", "connector-2"]
    );
    // Duplicates and bad pairs are refused with a clear message.
    let out = app.cli(&[
        "add",
        "id=connector-2",
        "serverType=connector",
        "host=127.0.0.1",
        "port=1",
    ]);
    assert_eq!(code(&out), 1);
    assert!(stderr(&out).contains("already exists"), "{}", stderr(&out));
    let out = app.cli(&["add", "id=x", "serverType=chat"]);
    assert_eq!(code(&out), 2);

    // Stopping a server removes it from everybody's list.
    assert_eq!(code(&app.cli(&["stop", "connector-2"])), 0);
    assert_eq!(app.server("connector-2")["state"], "stopped");
    wait_members(chat_port, &["connector-1", "chat-1"]);
}

#[test]
fn server_that_cannot_start_is_reported_not_retried() {
    // chat-2's port is taken by someone else; chat-3 has a bad config.
    let mut chat2 = Srv::backend("chat-2", "chat");
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    chat2.port = Some(taken.local_addr().unwrap().port());
    let mut chat3 = Srv::backend("chat-3", "chat");
    chat3.extra = r#""args":["--fail"]"#;
    let mut app = TestApp::new(&[Srv::backend("chat-1", "chat"), chat2, chat3]);
    let out = app.start_daemon(&[]);
    assert_eq!(code(&out), 5, "start -D must exit 5 when servers fail");
    let err = stderr(&out);
    assert!(err.contains("server(s) failed to start"), "{err}");
    // The reasons are printed under the table.
    let table = stdout(&out);
    assert!(
        table.contains("chat-2: port ") && table.contains("is not available"),
        "{table}"
    );
    let s3 = app.wait_server("chat-3", "failed", |s| s["state"] == "failed");
    let reason = s3["lastError"].as_str().unwrap();
    assert!(
        reason.contains("exited 3 times right after starting"),
        "{reason}"
    );
    assert!(reason.contains("bad configuration for chat-3"), "{reason}");
    assert_eq!(s3["pid"], 0);
    // deliberate: time for a retry, to show it does not come any more.
    std::thread::sleep(Duration::from_secs(2));
    let s3 = app.server("chat-3");
    assert_eq!(s3["state"], "failed");
    assert_eq!(s3["restarts"], 2, "two restarts, then it gave up: {s3}");
    assert_eq!(app.server("chat-1")["state"], "running");
    // Failed servers are not members.
    let port = app.server("chat-1")["port"].as_u64().unwrap() as u16;
    assert_eq!(members_seen_by(port), ["chat-1"]);
    drop(taken);
}

#[test]
fn stop_kill_restart_by_id_and_type() {
    let mut app = TestApp::new(&[
        Srv::frontend("connector-1", "connector"),
        Srv::backend("chat-1", "chat"),
        Srv::backend("chat-2", "chat"),
    ]);
    assert_eq!(code(&app.start_daemon(&[])), 0);
    let c1 = app.server("chat-1")["pid"].as_u64().unwrap() as u32;
    let c2 = app.server("chat-2")["pid"].as_u64().unwrap() as u32;
    let conn = app.server("connector-1")["pid"].as_u64().unwrap() as u32;

    // restart -t chat: both chat servers get new pids, the connector not.
    let out = app.cli(&["restart", "-t", "chat"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    wait_gone(&[c1, c2], Duration::from_secs(5));
    let n1 = app.server("chat-1")["pid"].as_u64().unwrap() as u32;
    assert!(n1 != c1 && n1 != 0);
    assert_eq!(
        app.server("connector-1")["pid"].as_u64().unwrap() as u32,
        conn
    );

    // kill one id: SIGKILL, not restarted (it was asked for).
    let out = app.cli(&["kill", "chat-1"]);
    assert_eq!(code(&out), 0);
    wait_gone(&[n1], Duration::from_secs(5));
    // deliberate: time for a restart that must not happen.
    std::thread::sleep(Duration::from_millis(1200));
    let s = app.server("chat-1");
    assert_eq!(s["state"], "stopped", "{s}");
    let log = std::fs::read_to_string(app.path().join("logs/master.log")).unwrap();
    let stops = log
        .lines()
        .filter(|l| l.contains("chat-1") && l.contains("graceful stop"))
        .count();
    assert_eq!(
        stops, 1,
        "only the restart was graceful, the kill was not:\n{log}"
    );

    // Unknown ids are errors.
    let out = app.cli(&["stop", "nope"]);
    assert_eq!(code(&out), 1);
    assert!(stderr(&out).contains("unknown server id `nope`"));

    // start -i joins the running master and starts chat-1 again.
    let out = app.cli(&[
        "start",
        "-i",
        "chat-1",
        "--no-build",
        "--server-bin",
        agent_server().to_str().unwrap(),
    ]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(app.server("chat-1")["state"], "running");

    // kill with no id: every server and the master.
    let pids = app.all_pids();
    let out = app.cli(&["kill"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    wait_gone(&pids, Duration::from_secs(10));
}

#[test]
fn foreground_start_stops_everything_on_ctrl_c() {
    let app = TestApp::new(&[
        Srv::frontend("connector-1", "connector"),
        Srv::backend("chat-1", "chat"),
    ]);
    let mut child = KillOnDrop(
        std::process::Command::new(shaddock())
            .args(["start", "--no-build", "--server-bin"])
            .arg(agent_server())
            .arg("-d")
            .arg(app.path())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let pids = eventually("the servers to come up", Duration::from_secs(20), || {
        let out = app.cli(&["list", "--json"]);
        if code(&out) != 0 {
            return Err(stderr(&out));
        }
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        let servers = v["servers"].as_array().unwrap();
        if servers.iter().all(|s| s["state"] == "running") {
            Ok(app.all_pids())
        } else {
            Err(format!("{servers:?}"))
        }
    });
    // SAFETY: SIGINT to the child we spawned (what Ctrl-C sends).
    assert_eq!(unsafe { libc::kill(child.0.id() as i32, libc::SIGINT) }, 0);
    let status = eventually(
        "the master to exit after Ctrl-C",
        Duration::from_secs(15),
        || child.0.try_wait().unwrap(),
    );
    assert!(status.success(), "{status:?}");
    let mut out = String::new();
    use std::io::Read;
    child
        .0
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut out)
        .unwrap();
    // The merged stream: every server's lines prefixed with its id.
    assert!(out.contains("[chat-1     ] chat-1 listening"), "{out}");
    assert!(out.contains("graceful stop"), "{out}");
    assert!(out.contains("[master] all servers are up"), "{out}");
    assert!(out.contains("all servers stopped"), "{out}");
    wait_gone(&pids, Duration::from_secs(5));
}

#[test]
fn kill_force_works_without_the_master_and_spares_foreign_pids() {
    let mut app = TestApp::new(&[
        Srv::frontend("connector-1", "connector"),
        Srv::backend("chat-1", "chat"),
    ]);
    assert_eq!(code(&app.start_daemon(&[])), 0);
    let pids = app.all_pids();
    let master = *pids.last().unwrap();
    // A hung master: it no longer answers.
    // SAFETY: SIGSTOP to the master pid `list` reported.
    assert_eq!(unsafe { libc::kill(master as i32, libc::SIGSTOP) }, 0);
    let out = app.cli(&["kill", "--force"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let text = stdout(&out);
    for what in ["connector-1", "chat-1", "master"] {
        assert!(text.contains(what), "{what} not killed: {text}");
    }
    wait_gone(&pids, Duration::from_secs(10));

    // A pid file naming someone else's process: nothing is killed.
    let mut foreign = std::process::Command::new("sleep")
        .arg("30")
        .spawn()
        .unwrap();
    let pid = foreign.id();
    std::fs::write(
        app.path().join("logs/master.pids.json"),
        format!(r#"{{"master": {pid}, "servers": {{"chat-1": {pid}}}}}"#),
    )
    .unwrap();
    let out = app.cli(&["kill", "--force"]);
    assert_eq!(code(&out), 0);
    assert!(stdout(&out).contains("skipped chat-1"), "{}", stdout(&out));
    // deliberate: time for a kill that must not happen.
    std::thread::sleep(Duration::from_millis(200));
    assert!(
        foreign.try_wait().unwrap().is_none(),
        "a foreign process was killed"
    );
    foreign.kill().unwrap();
    let _ = foreign.wait();
}

#[test]
fn start_by_type_then_join_the_running_master() {
    let mut app = TestApp::new(&[
        Srv::frontend("connector-1", "connector"),
        Srv::backend("chat-1", "chat"),
        Srv::backend("chat-2", "chat"),
    ]);
    // Only the chat servers: the connector is known but stopped.
    let out = app.start_daemon(&["-t", "chat"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(app.server("chat-1")["state"], "running");
    assert_eq!(app.server("chat-2")["state"], "running");
    let conn = app.server("connector-1");
    assert_eq!(conn["state"], "stopped");
    assert_eq!(conn["pid"], 0);
    // A second `start -t connector` joins the running master.
    let out = app.cli(&[
        "start",
        "-t",
        "connector",
        "--no-build",
        "--server-bin",
        agent_server().to_str().unwrap(),
    ]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert!(stdout(&out).contains("a master runs at"));
    assert_eq!(app.server("connector-1")["state"], "running");
    // A plain `start` while a master runs is refused (one master per app).
    let out = app.cli(&[
        "start",
        "--no-build",
        "--server-bin",
        agent_server().to_str().unwrap(),
    ]);
    assert_eq!(code(&out), 1);
    assert!(stderr(&out).contains("a master already runs"));
    let pids = app.all_pids();
    assert_eq!(code(&app.cli(&["stop"])), 0);
    wait_gone(&pids, Duration::from_secs(10));
}

#[test]
fn without_auto_restart_a_crash_is_reported_and_restart_brings_it_back() {
    let mut app = TestApp::new(&[Srv::backend("chat-1", "chat")]);
    assert_eq!(code(&app.start_daemon(&["--auto-restart", "false"])), 0);
    let pid = app.server("chat-1")["pid"].as_u64().unwrap() as i32;
    // SAFETY: kill(2) on the pid the master reported for chat-1.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGKILL) }, 0);
    let s = app.wait_server("chat-1", "failed", |s| s["state"] == "failed");
    assert_eq!(s["pid"], 0);
    assert_eq!(s["restarts"], 0);
    assert!(
        s["lastError"]
            .as_str()
            .unwrap()
            .contains("was killed by signal 9"),
        "{s}"
    );
    // `list` prints the reason under the table.
    let table = stdout(&app.cli(&["list"]));
    assert!(table.contains("chat-1: was killed by signal 9"), "{table}");
    // `restart` starts a failed server again.
    let out = app.cli(&["restart", "chat-1"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let s = app.server("chat-1");
    assert_eq!(s["state"], "running");
    assert_eq!(s["lastError"], "");
}

#[test]
fn stop_of_a_backend_leaves_the_list_first_and_reload_applies_servers_json() {
    let mut app = TestApp::new(&[
        Srv::frontend("connector-1", "connector"),
        Srv::backend("chat-1", "chat"),
        Srv::backend("chat-2", "chat"),
        Srv::backend("chat-3", "chat"),
    ]);
    assert_eq!(code(&app.start_daemon(&[])), 0);
    let connector = app.server("connector-1")["port"].as_u64().unwrap() as u16;
    let port9 = free_port().to_string();
    let pair = format!("port={port9}");
    let out = app.cli(&[
        "add",
        "id=chat-9",
        "serverType=chat",
        "host=127.0.0.1",
        &pair,
    ]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));

    // A planned stop of a backend: out of everybody's list while it still
    // runs (its peers take over), stopped only after the hand-off delay.
    let pid2 = app.server("chat-2")["pid"].as_u64().unwrap() as u32;
    let mut stop = std::process::Command::new(shaddock())
        .args(["stop", "chat-2", "-d"])
        .arg(app.path())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while members_seen_by(connector).contains(&"chat-2".to_string()) {
        assert!(std::time::Instant::now() < deadline, "chat-2 never left");
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(!gone(pid2), "chat-2 was stopped before it left the list");
    assert!(stop.wait().unwrap().success());
    wait_gone(&[pid2], Duration::from_secs(5));
    let log = std::fs::read_to_string(app.path().join("logs/master.log")).unwrap();
    let left = log
        .find("chat-2 left the server list")
        .expect("hand-off line");
    assert!(left < log.find("chat-2 stopped").unwrap(), "{log}");

    // servers.json: chat-1 moves to another port, chat-3 goes, chat-4 comes;
    // chat-2 (stopped) stays stopped, chat-9 (added at run time) is kept.
    let pid1 = app.server("chat-1")["pid"].as_u64().unwrap();
    let pid3 = app.server("chat-3")["pid"].as_u64().unwrap() as u32;
    let (new1, port4) = (free_port(), free_port());
    app.edit_servers_json(|env| {
        let chats = env["chat"].as_array_mut().unwrap();
        chats.retain(|s| s["id"] != "chat-3");
        chats[0]["port"] = new1.into();
        chats.push(serde_json::json!({"id": "chat-4", "host": "127.0.0.1", "port": port4}));
    });
    let out = app.cli(&["reload"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let text = stdout(&out);
    for line in [
        "started: chat-4",
        "stopped: chat-3",
        "restarted: chat-1",
        "kept (added at run time, not in servers.json): chat-9",
    ] {
        assert!(text.contains(line), "no `{line}` in {text}");
    }
    wait_gone(&[pid3], Duration::from_secs(5));
    let list = app.list();
    assert!(
        list["servers"]
            .as_array()
            .unwrap()
            .iter()
            .all(|s| s["id"] != "chat-3"),
        "{list}"
    );
    let chat1 = app.server("chat-1");
    assert_eq!(chat1["state"], "running");
    assert_eq!(chat1["port"].as_u64().unwrap(), u64::from(new1));
    assert_ne!(chat1["pid"].as_u64().unwrap(), pid1);
    assert_eq!(app.server("chat-2")["state"], "stopped");
    assert_eq!(app.server("chat-4")["state"], "running");
    assert_eq!(app.server("chat-9")["state"], "running");
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        let seen = members_seen_by(connector);
        // servers.json order, then run-time additions.
        if seen == ["connector-1", "chat-1", "chat-4", "chat-9"] {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "connector-1 sees {seen:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }

    // Nothing changed: nothing to do.
    let out = app.cli(&["reload"]);
    assert_eq!(code(&out), 0);
    assert!(stdout(&out).contains("nothing to do"), "{}", stdout(&out));
    // A broken servers.json changes nothing (exit 1).
    std::fs::write(app.path().join("config/servers.json"), "{not json").unwrap();
    let out = app.cli(&["reload"]);
    assert_eq!(code(&out), 1);
    assert!(
        stderr(&out).contains("nothing was changed"),
        "{}",
        stderr(&out)
    );
    assert_eq!(app.server("chat-4")["state"], "running");

    let pids = app.all_pids();
    assert_eq!(code(&app.cli(&["stop"])), 0);
    wait_gone(&pids, Duration::from_secs(10));
}
