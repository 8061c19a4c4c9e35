//! `shaddock list` output: an aligned table for people, JSON for scripts.

use crate::master::proto;

const HEADERS: [&str; 14] = [
    "id",
    "type",
    "pid",
    "host",
    "port",
    "clientPort",
    "state",
    "uptime",
    "conns",
    "req/s",
    "p99",
    "RSS",
    "CPU",
    "restarts",
];

/// Appended to the state of an adopted server.
const ADOPTED_MARK: &str = "*";

/// `1h02m`, `3m05s`, `12s`.
pub fn uptime(secs: u64) -> String {
    if secs >= 3600 {
        format!("{}h{:02}m", secs / 3600, secs % 3600 / 60)
    } else if secs >= 60 {
        format!("{}m{:02}s", secs / 60, secs % 60)
    } else {
        format!("{secs}s")
    }
}

fn opt(v: Option<u32>) -> String {
    v.map(|p| p.to_string()).unwrap_or_else(|| "-".into())
}

/// Renders the table (one line per server, then errors of failed servers).
pub fn render(resp: &proto::ListResponse) -> String {
    // Several hosts (etcd): one more column, the host whose supervisor
    // runs each server.
    let mut supervisors: Vec<&str> = resp.servers.iter().map(|s| s.supervisor.as_str()).collect();
    supervisors.sort_unstable();
    supervisors.dedup();
    let multi_host = supervisors.len() > 1 || !resp.unreachable.is_empty();
    let mut headers: Vec<String> = HEADERS.map(String::from).to_vec();
    if multi_host {
        headers.push("supervisor".into());
    }
    let mut rows: Vec<Vec<String>> = Vec::new();
    for s in &resp.servers {
        let running = s.pid != 0;
        let mut row = vec![
            s.id.clone(),
            s.server_type.clone(),
            if running {
                s.pid.to_string()
            } else {
                "-".into()
            },
            s.host.clone(),
            opt(s.port),
            opt(s.client_port),
            if s.adopted && running {
                format!("{}{ADOPTED_MARK}", s.state)
            } else {
                s.state.clone()
            },
            if running {
                uptime(s.uptime_secs)
            } else {
                "-".into()
            },
            s.connections.to_string(),
            match s.requests_per_sec {
                Some(r) if running => format!("{r:.1}"),
                _ => "-".into(),
            },
            match s.p99_ms {
                Some(ms) if running => format!("{ms:.1}ms"),
                _ => "-".into(),
            },
            if running && s.rss_bytes > 0 {
                format!("{:.1}M", s.rss_bytes as f64 / (1024.0 * 1024.0))
            } else {
                "-".into()
            },
            if running {
                format!("{:.1}%", s.cpu_percent)
            } else {
                "-".into()
            },
            s.restarts.to_string(),
        ];
        if multi_host {
            row.push(if s.supervisor.is_empty() {
                "-".into()
            } else {
                s.supervisor.clone()
            });
        }
        rows.push(row);
    }
    let mut widths: Vec<usize> = headers.iter().map(String::len).collect();
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = format!(
        "master {} (pid {}, env {}, up {})\n",
        resp.master_id,
        resp.master_pid,
        resp.env,
        uptime(resp.master_uptime_secs)
    );
    let line = |cells: &[String]| {
        let mut l = String::new();
        for (i, (cell, w)) in cells.iter().zip(&widths).enumerate() {
            let w = *w;
            if i > 0 {
                l.push_str("  ");
            }
            l.push_str(&format!("{cell:<w$}"));
        }
        l.trim_end().to_string() + "\n"
    };
    out.push_str(&line(&headers));
    for row in &rows {
        out.push_str(&line(row));
    }
    if resp.servers.iter().any(|s| s.adopted && s.pid != 0) {
        out.push_str(&format!(
            "{ADOPTED_MARK} adopted from an earlier master: its output is not in this master's \
             stream, see logs/<id>.log\n"
        ));
    }
    for u in &resp.unreachable {
        out.push_str(&format!(
            "not reachable: {u}; its servers are shown as etcd lists them\n"
        ));
    }
    for s in &resp.servers {
        if !s.last_error.is_empty()
            && matches!(s.state.as_str(), "failed" | "restarting" | "unhealthy")
        {
            out.push_str(&format!("{}: {}\n", s.id, s.last_error));
        }
    }
    out
}

/// The list as JSON (field names as in servers.json where they exist).
pub fn to_json(resp: &proto::ListResponse) -> String {
    let servers: Vec<serde_json::Value> = resp
        .servers
        .iter()
        .map(|s| {
            serde_json::json!({
                "id": s.id, "serverType": s.server_type, "pid": s.pid, "host": s.host,
                "port": s.port, "clientPort": s.client_port, "frontend": s.frontend,
                "state": s.state, "uptimeSecs": s.uptime_secs, "connections": s.connections,
                "rssBytes": s.rss_bytes, "cpuPercent": s.cpu_percent, "restarts": s.restarts,
                "lastError": s.last_error, "agentConnected": s.agent_connected,
                "adopted": s.adopted, "supervisor": s.supervisor,
                "metricsAddr": s.metrics_addr, "requestsPerSec": s.requests_per_sec,
                "p99Ms": s.p99_ms,
            })
        })
        .collect();
    serde_json::to_string_pretty(&serde_json::json!({
        "master": {"id": resp.master_id, "pid": resp.master_pid, "env": resp.env,
                   "uptimeSecs": resp.master_uptime_secs},
        "servers": servers,
        "unreachable": resp.unreachable,
    }))
    .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(id: &str, state: &str, pid: u32) -> proto::ServerStatus {
        proto::ServerStatus {
            id: id.into(),
            server_type: "chat".into(),
            pid,
            host: "127.0.0.1".into(),
            port: Some(6050),
            client_port: None,
            state: state.into(),
            uptime_secs: 3725,
            rss_bytes: 3 * 1024 * 1024,
            cpu_percent: 12.345,
            requests_per_sec: Some(12.46),
            p99_ms: Some(2.44),
            restarts: 2,
            last_error: if state == "failed" {
                "port taken".into()
            } else {
                String::new()
            },
            ..Default::default()
        }
    }

    #[test]
    fn uptime_units() {
        assert_eq!(uptime(5), "5s");
        assert_eq!(uptime(65), "1m05s");
        assert_eq!(uptime(3725), "1h02m");
    }

    #[test]
    fn table_aligns_columns_and_reports_failures() {
        let resp = proto::ListResponse {
            master_id: "master-server-1".into(),
            master_pid: 42,
            env: "development".into(),
            master_uptime_secs: 61,
            servers: vec![
                status("chat-server-1", "running", 1234),
                status("chat-server-22", "failed", 0),
            ],
            unreachable: Vec::new(),
        };
        let text = render(&resp);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines[0],
            "master master-server-1 (pid 42, env development, up 1m01s)"
        );
        assert!(
            lines[1].starts_with("id              type  pid "),
            "{}",
            lines[1]
        );
        assert_eq!(
            lines[2],
            "chat-server-1   chat  1234  127.0.0.1  6050  -           running  1h02m   0      12.5   2.4ms  3.0M  12.3%  2"
        );
        // A server without a process shows dashes, not stale numbers.
        assert!(
            lines[3]
                .starts_with("chat-server-22  chat  -     127.0.0.1  6050  -           failed   -")
        );
        assert_eq!(lines[4], "chat-server-22: port taken");
        let mut adopted = resp.clone();
        adopted.servers[0].adopted = true;
        let text = render(&adopted);
        assert!(text.contains("  running*  "), "{text}");
        assert!(text.contains("* adopted from an earlier master"), "{text}");
        let json: serde_json::Value = serde_json::from_str(&to_json(&resp)).unwrap();
        assert_eq!(json["servers"][1]["lastError"], "port taken");
        assert_eq!(json["master"]["pid"], 42);
        assert_eq!(json["servers"][0]["requestsPerSec"], 12.46);
        assert_eq!(json["servers"][0]["p99Ms"], 2.44);
    }
}
