//! Observability of the chat app under a master (`start -D`, real
//! processes, real WebSocket clients): every server's `/metrics` counts
//! exactly the traffic of a scripted chat, `/healthz` and `/readyz` answer,
//! the master's startup output is short, and a server frozen with SIGSTOP
//! (alive, answering nothing) is found by its health check, restarted, and
//! serves again. With JSON logs on (`config/log.json`), one request's
//! trace id is in the connector's and the chat server's log lines, and
//! `shaddock list` shows each server's requests/s and p99 from the same
//! figures.

mod cli_support;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use cli_support::chat::*;
use cli_support::*;
use shaddock_testkit::{eventually, eventually_async};

const IDS: [&str; 5] = [
    "gate-server-1",
    "connector-server-1",
    "connector-server-2",
    "chat-server-1",
    "chat-server-2",
];

/// JSON log files, and the per-request debug lines of the frontends and
/// the chat servers (by server type; the gate stays at `info`).
const LOG_JSON: &str = r#"{"development": {"format": "json",
    "servers": {"connector": "info,shaddock=debug", "chat": "info,shaddock=debug"}}}"#;

/// The chat app with a `metricsPort` on every server, and [`LOG_JSON`].
fn start_observed_app() -> (TestApp, String, String, HashMap<String, u16>) {
    let mut ports = HashMap::new();
    let mut servers = chat_servers(&["connector-server-1", "connector-server-2"]);
    for s in &mut servers {
        let port = free_port();
        ports.insert(s.id.clone(), port);
        s.extra = Box::leak(format!(r#""metricsPort":{port}"#).into_boxed_str());
    }
    let (app, gate, rid) = start_chat_servers_with(servers, |dir| {
        std::fs::write(dir.join("config/log.json"), LOG_JSON).unwrap();
    });
    (app, gate, rid, ports)
}

/// `GET path` on 127.0.0.1:port: (status, body), within 3 s.
fn http_get(port: u16, path: &str) -> Result<(u16, String), String> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).map_err(|e| e.to_string())?;
    s.set_read_timeout(Some(Duration::from_secs(3)))
        .map_err(|e| e.to_string())?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n"
    )
    .map_err(|e| e.to_string())?;
    let mut text = String::new();
    s.read_to_string(&mut text).map_err(|e| e.to_string())?;
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| format!("no status line in {text:?}"))?;
    let body = text.split_once("\r\n\r\n").map(|(_, b)| b).unwrap_or("");
    Ok((status, body.to_string()))
}

/// The sum of every sample of `name` whose labels include all of `labels`
/// (`key="value"` pairs), in a Prometheus text scrape.
fn sample(scrape: &str, name: &str, labels: &[&str]) -> f64 {
    scrape
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let (series, value) = l.rsplit_once(' ')?;
            let (metric, rest) = series.split_once('{').unwrap_or((series, ""));
            (metric == name && labels.iter().all(|want| rest.contains(want)))
                .then(|| value.parse::<f64>().ok())
                .flatten()
        })
        .sum()
}

fn scrape(port: u16) -> String {
    let (status, body) = http_get(port, "/metrics").expect("GET /metrics");
    assert_eq!(status, 200, "{body}");
    body
}

#[test]
fn metrics_count_a_scripted_chat_and_health_restarts_a_frozen_server() {
    let (app, gate, rid, ports) = start_observed_app();
    // The master prints its summary from its own readiness poll, which may
    // come a moment after `start -D` saw every server up.
    let started_log = shaddock_testkit::eventually(
        "the master's startup summary",
        std::time::Duration::from_secs(10),
        || {
            let log = std::fs::read_to_string(app.path().join("logs/master.log")).unwrap();
            if log.contains("all servers are up") {
                Ok(log)
            } else {
                Err(log)
            }
        },
    );

    // Startup output: one line per server up and one summary; no line per
    // membership update.
    for id in IDS {
        let up = started_log
            .lines()
            .filter(|l| l.contains(&format!("{id} is up")))
            .count();
        assert_eq!(up, 1, "one 'up' line for {id}:\n{started_log}");
    }
    assert_eq!(
        started_log
            .lines()
            .filter(|l| l.contains("all servers are up: 5 servers"))
            .count(),
        1,
        "one summary line:\n{started_log}"
    );
    for noisy in [
        "server list from",
        "sharded channels reconciled",
        "RPC server listening",
    ] {
        assert!(
            !started_log.contains(noisy),
            "no '{noisy}' line at startup:\n{started_log}"
        );
    }

    // Health: every server is alive and ready.
    for id in IDS {
        let port = ports[id];
        assert_eq!(http_get(port, "/healthz").unwrap(), (200, "ok\n".into()));
        let ready = eventually(&format!("{id} ready"), WAIT, || {
            match http_get(port, "/readyz") {
                Ok((200, body)) => Ok(body),
                other => Err(format!("{other:?}")),
            }
        });
        assert_eq!(ready, "ready\n");
    }

    // The scripted chat: three users in one room, each sends SENDS
    // messages to the room (everyone, the sender too, gets each one).
    const USERS: [&str; 3] = ["alice", "bob", "carol"];
    const SENDS: usize = 4;
    let rt = tokio::runtime::Runtime::new().unwrap();
    let clients = rt.block_on(async {
        let mut clients = Vec::new();
        for u in USERS {
            clients.push(enter(&gate, u, &rid).await.expect("enter"));
        }
        for round in 0..SENDS {
            for (i, sender) in clients.iter().enumerate() {
                let listener = &clients[(i + 1) % clients.len()];
                chat(sender, listener, &format!("m{round}-{i}"))
                    .await
                    .expect("chat");
            }
        }
        clients
    });
    let sends = (USERS.len() * SENDS) as f64;
    let users = USERS.len() as f64;
    // onAdd: the 2nd user's entry reaches 1 member, the 3rd's 2; every
    // send reaches the 3 members.
    let pushes = 1.0 + 2.0 + sends * users;

    let connectors = ["connector-server-1", "connector-server-2"];
    let total = |name: &str, labels: &[&str]| -> f64 {
        connectors
            .iter()
            .map(|id| sample(&scrape(ports[*id]), name, labels))
            .sum()
    };
    // Pushes to the listeners other than the one each chat() waited for may
    // still be on their way: wait for the figure, then compare exactly.
    eventually("the connectors to count every push", WAIT, || {
        match total("shaddock_pushes_total", &[]) {
            n if n == pushes => Ok(()),
            n => Err(format!("pushes counted {n}, expected {pushes}")),
        }
    });
    let send = r#"route="chat.chatHandler.send""#;
    let enter_route = r#"route="connector.entryHandler.enter""#;
    assert_eq!(total("shaddock_requests_total", &[send]), sends);
    assert_eq!(
        total("shaddock_responses_total", &[send, r#"code="200""#]),
        sends
    );
    assert_eq!(total("shaddock_requests_total", &[enter_route]), users);
    assert_eq!(
        total(
            "shaddock_cluster_calls_total",
            &[r#"remote="forward""#, r#"peer="chat-server-1""#]
        ),
        sends
    );
    assert_eq!(
        total("shaddock_handshakes_total", &[r#"result="ok""#]),
        users
    );
    assert_eq!(total("shaddock_connections", &[]), users);
    assert!(total("shaddock_push_bytes_total", &[]) > pushes * 10.0);
    assert_eq!(total("shaddock_outbound_drops_total", &[]), 0.0);

    let gate_scrape = scrape(ports["gate-server-1"]);
    assert_eq!(
        sample(
            &gate_scrape,
            "shaddock_requests_total",
            &[r#"route="gate.gateHandler.queryEntry""#]
        ),
        users
    );
    // (`shaddock_connections_total` also counts the master's TCP probes of
    // the client port; handshakes are clients only.)
    assert_eq!(
        sample(
            &gate_scrape,
            "shaddock_handshakes_total",
            &[r#"result="ok""#]
        ),
        users
    );

    let chat1 = scrape(ports["chat-server-1"]);
    let chat2 = scrape(ports["chat-server-2"]);
    assert_eq!(
        sample(&chat1, "shaddock_handler_seconds_count", &[send]),
        sends,
        "{chat1}"
    );
    assert_eq!(
        sample(&chat2, "shaddock_handler_seconds_count", &[send]),
        0.0
    );
    assert!(
        sample(
            &chat1,
            "shaddock_cluster_calls_total",
            &[r#"remote="push""#]
        ) >= sends
    );
    for s in [&chat1, &chat2, &gate_scrape] {
        assert!(sample(s, "process_resident_memory_bytes", &[]) > 1e6, "{s}");
        assert!(sample(s, "process_cpu_seconds_total", &[]) > 0.0, "{s}");
    }
    check_list_rates(&app);
    check_one_trace(&app, sends as usize);

    // For docs/observability.md: what a scrape looks like.
    eprintln!("---- chat-server-1 /metrics ----\n{chat1}");
    let connector = scrape(ports["connector-server-2"]);
    eprintln!("---- connector-server-2 /metrics ----\n{connector}");

    // A frozen frontend: alive, listening, answering nothing.
    let victim = "connector-server-1";
    let old_pid = app.server(victim)["pid"].as_u64().unwrap() as u32;
    let frozen = Instant::now();
    shaddock_testkit::freeze_pid(old_pid, victim);
    let mut seen = Vec::new();
    let back = eventually(
        "the master to find the frozen server and restart it",
        Duration::from_secs(40),
        || {
            let s = app.server(victim);
            let state = s["state"].as_str().unwrap_or_default().to_string();
            if seen.last() != Some(&state) {
                seen.push(state.clone());
            }
            let pid = s["pid"].as_u64().unwrap_or(0) as u32;
            if state == "running" && pid != 0 && pid != old_pid {
                Ok(s)
            } else {
                Err(s.to_string())
            }
        },
    );
    eprintln!(
        "{victim} restarted {:?} after SIGSTOP; states seen: {seen:?}",
        frozen.elapsed()
    );
    assert!(gone(old_pid), "the frozen process was killed");
    assert_eq!(back["restarts"], 1, "{back}");
    let last_error = back["lastError"].as_str().unwrap_or_default();
    assert!(
        last_error.contains("health check timed out"),
        "lastError says why: {back}"
    );
    let log = std::fs::read_to_string(app.path().join("logs/master.log")).unwrap();
    assert!(
        log.lines()
            .any(|l| l.contains(&format!("{victim} is unhealthy: health check timed out"))),
        "the master says so:\n{log}"
    );

    // The restarted connector serves: users it is handed to chat again.
    let port = back["clientPort"].as_u64().unwrap() as u16;
    rt.block_on(async {
        let mut names = (0..50).map(|i| format!("dave{i}"));
        let mut mine = Vec::new();
        while mine.len() < 2 {
            let name = names.next().expect("two users hashed to the connector");
            if query_entry(&gate, &name).await.expect("gate").1 == port {
                mine.push(name);
            }
        }
        let what = format!("users of {victim} to chat in {rid} again");
        let (gate, rid, mine) = (&gate, &rid, &mine);
        eventually_async(&what, WAIT, || async move {
            let a = enter(gate, &mine[0], rid).await?;
            let b = enter(gate, &mine[1], rid).await?;
            chat(&a, &b, "after the freeze").await
        })
        .await;
        for c in clients {
            c.close().await;
        }
    });
    let (status, _) = http_get(ports[victim], "/readyz").unwrap();
    assert_eq!(status, 200);
}

/// `shaddock list` during the chat: the connectors and chat-server-1
/// served requests since the previous list (the one that started the app),
/// chat-server-2 none.
fn check_list_rates(app: &TestApp) {
    let list = app.list();
    for id in ["connector-server-1", "connector-server-2", "chat-server-1"] {
        let s = server_in(&list, id);
        let rate = s["requestsPerSec"].as_f64().unwrap_or(0.0);
        let p99 = s["p99Ms"].as_f64().unwrap_or(0.0);
        assert!(rate > 0.0 && p99 > 0.0, "{id} shows its traffic: {s}");
    }
    let idle = server_in(&list, "chat-server-2");
    assert_eq!(idle["requestsPerSec"].as_f64(), Some(0.0), "{idle}");
    assert!(idle["p99Ms"].is_null(), "no request, no p99: {idle}");
    // The table: two more columns, figures in the rows.
    let out = app.cli(&["list"]);
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    eprintln!("---- shaddock list ----\n{text}");
    let header = text.lines().nth(1).unwrap_or_default();
    assert!(header.contains("conns  req/s  p99"), "{text}");
    let row = text
        .lines()
        .find(|l| l.starts_with("chat-server-1 "))
        .unwrap_or_default();
    assert!(
        row.contains("ms "),
        "chat-server-1's p99 in the table:\n{text}"
    );
}

/// JSON lines of a server's log file.
fn json_log(app: &TestApp, id: &str) -> Vec<serde_json::Value> {
    let path = app.path().join(format!("logs/{id}.log"));
    let text = std::fs::read_to_string(&path).unwrap_or_default();
    text.lines()
        .map(|l| {
            serde_json::from_str(l).unwrap_or_else(|e| panic!("{id}.log: not JSON ({e}): {l}"))
        })
        .collect()
}

/// The `trace_id` of a log line's spans (innermost first).
fn trace_id(line: &serde_json::Value) -> Option<String> {
    let spans = line["spans"].as_array()?;
    spans
        .iter()
        .rev()
        .find_map(|s| s["trace_id"].as_str().map(String::from))
}

/// Every `chat.chatHandler.send` answered by a connector has a trace id,
/// and chat-server-1 logged handling a request with that same id.
fn check_one_trace(app: &TestApp, sends: usize) {
    let route = "chat.chatHandler.send";
    let answered = |line: &serde_json::Value| {
        line["message"] == "client request answered" && line["span"]["route"] == route
    };
    let (connector_lines, chat_lines) =
        eventually("both ends of every send in the JSON logs", WAIT, || {
            let mut front = json_log(app, "connector-server-1");
            front.extend(json_log(app, "connector-server-2"));
            let front: Vec<_> = front.into_iter().filter(answered).collect();
            let back: Vec<_> = json_log(app, "chat-server-1")
                .into_iter()
                .filter(|l| l["message"] == "forwarded request handled")
                .collect();
            if front.len() >= sends && back.len() >= sends {
                Ok((front, back))
            } else {
                Err(format!(
                    "{} connector lines, {} chat lines",
                    front.len(),
                    back.len()
                ))
            }
        });
    let mut matched = 0;
    for line in &connector_lines {
        let id = trace_id(line).unwrap_or_else(|| panic!("a trace_id on {line}"));
        assert_eq!(id.len(), 32, "a W3C trace id: {id}");
        let on_chat = chat_lines
            .iter()
            .find(|l| trace_id(l).as_deref() == Some(id.as_str()));
        let on_chat = on_chat.unwrap_or_else(|| {
            panic!("chat-server-1 logged no line of trace {id} (connector: {line})")
        });
        assert_eq!(on_chat["span"]["route"], route, "{on_chat}");
        assert_eq!(on_chat["span"]["uid"], line["span"]["uid"], "{on_chat}");
        matched += 1;
        if matched == 1 {
            // For docs/observability.md: one request on two servers.
            eprintln!("---- one traced request ----\n{line}\n{on_chat}");
        }
    }
    assert!(matched >= sends, "{matched} traced sends");
    check_remote_trace(app);
    // Different requests, different traces.
    let mut ids: Vec<String> = connector_lines.iter().filter_map(trace_id).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), connector_lines.len(), "one trace per request");
}

/// A typed remote call continues the trace too (`traceparent` metadata):
/// each user's `enter` on a connector calls `ChatRemote.Add` on
/// chat-server-1, whose `rpc` span has the request's trace id.
fn check_remote_trace(app: &TestApp) {
    let route = "connector.entryHandler.enter";
    let mut front = json_log(app, "connector-server-1");
    front.extend(json_log(app, "connector-server-2"));
    let entered: Vec<String> = front
        .iter()
        .filter(|l| l["message"] == "client request answered" && l["span"]["route"] == route)
        .filter_map(trace_id)
        .collect();
    assert_eq!(entered.len(), 3, "one traced enter per user");
    let remote: Vec<serde_json::Value> = json_log(app, "chat-server-1")
        .into_iter()
        .filter(|l| l["message"] == "rpc handled" && l["span"]["method"] == "/chat.ChatRemote/Add")
        .collect();
    for id in &entered {
        let line = remote
            .iter()
            .find(|l| trace_id(l).as_deref() == Some(id.as_str()))
            .unwrap_or_else(|| panic!("no ChatRemote.Add line of trace {id} on chat-server-1"));
        assert_eq!(line["span"]["server"], "chat-server-1", "{line}");
    }
}
