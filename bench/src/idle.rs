//! The idle scenario: C connections that handshake and then only answer
//! heartbeats, held for a while. What it measures is the server's memory per
//! connection: (RSS with all connections open − RSS before) / C, and
//! whether every connection survives the hold (no disconnects).
//!
//! One process may hold only as many sockets as its open-files limit, so
//! 100 000 connections take several robots (`bench/scripts/connections_100k.sh`):
//! each spreads its connections over several connectors (`--connector a,b,…`)
//! and source addresses (`--source-addrs`), says when it is connected
//! (`--ready-file`) and starts its hold when the coordinator says so
//! (`--go-file`), so all of them hold over the same window.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};
use shaddock_client::Client;
use tokio::task::JoinSet;
use tokio::time::Instant;

use crate::args::IdleArgs;
use crate::login::{Pacer, client_options, close_all, options_for, query_entry};
use crate::procs::{self, Proc};
use crate::report::{IdleReport, Report};

pub async fn run(
    args: &IdleArgs,
    procs: &[Proc],
    mut notes: Vec<String>,
) -> anyhow::Result<Report> {
    let c = &args.common;
    let robot_start = procs::self_cpu_seconds();
    let opts = client_options(Duration::from_secs_f64(c.timeout));
    if procs.is_empty() {
        notes.push("no server processes given (--pids, --pid-match, --topology): RSS per connection not measured".into());
    }
    let before = procs::sample(procs);

    let bar = bar(c.quiet, args.clients as u64, "connect");
    let start = Instant::now();
    let pacer = Arc::new(Pacer::new(c.connect_concurrency, c.connect_rate));
    let mut set = JoinSet::new();
    for i in 0..args.clients {
        let opts = options_for(&opts, &c.source_addrs, i);
        let (pacer, bar) = (pacer.clone(), bar.clone());
        let gate = c.gate.clone();
        let direct =
            (!args.connector.is_empty()).then(|| args.connector[i % args.connector.len()].clone());
        set.spawn(async move {
            let _permit = pacer.turn().await;
            let r = async {
                let url = match direct {
                    Some(u) => u,
                    None => query_entry(&gate, &format!("idle{i}"), &opts).await?,
                };
                Client::connect(&url, opts.clone())
                    .await
                    .map_err(|e| anyhow::anyhow!("{url}: {e}"))
            }
            .await;
            bar.inc(1);
            r
        });
    }
    let mut clients = Vec::with_capacity(args.clients);
    let mut errors = Vec::new();
    while let Some(r) = set.join_next().await {
        match r {
            Ok(Ok(client)) => clients.push(Arc::new(client)),
            Ok(Err(e)) => errors.push(e.to_string()),
            Err(e) => errors.push(format!("connect task failed: {e}")),
        }
    }
    bar.finish_and_clear();
    let connect_s = start.elapsed().as_secs_f64();
    if let Some(first) = errors.first() {
        notes.push(format!(
            "{} of {} connects failed; first: {first}",
            errors.len(),
            args.clients
        ));
    }

    tokio::time::sleep(Duration::from_secs_f64(args.settle)).await;
    let connected = procs::sample(procs);
    if let Some(path) = &args.ready_file {
        let line = serde_json::json!({
            "pid": std::process::id(),
            "connected": clients.len(),
            "connect_errors": errors.len(),
            "connect_s": connect_s,
        });
        write_atomically(path, &format!("{line}\n"))
            .map_err(|e| anyhow::anyhow!("cannot write the ready file {}: {e}", path.display()))?;
    }
    if let Some(go) = &args.go_file {
        let limit = Duration::from_secs_f64(args.go_timeout);
        if !wait_for_file(go, limit).await {
            anyhow::bail!(
                "{} did not appear within {limit:?}: the coordinator is gone? ({} connections closed)",
                go.display(),
                clients.len()
            );
        }
    }
    let robot_hold_start = procs::self_cpu_seconds();

    let hold = Duration::from_secs_f64(args.hold);
    let bar = bar_ms(c.quiet, hold.as_millis() as u64, "hold");
    let hold_start = Instant::now();
    let mut tick = tokio::time::interval(Duration::from_millis(500));
    let mut down = 0;
    while hold_start.elapsed() < hold {
        tick.tick().await;
        down = clients.iter().filter(|c| !c.is_open()).count();
        bar.set_position(hold_start.elapsed().as_millis() as u64);
        bar.set_message(format!(
            "{} open, {down} disconnected",
            clients.len() - down
        ));
    }
    bar.finish_and_clear();
    let end = procs::sample(procs);
    let robot_end = procs::self_cpu_seconds();
    if let Some(reason) = clients.iter().find_map(|c| c.close_reason()) {
        notes.push(format!("first disconnect: {reason:?}"));
    }

    let n = clients.len().max(1) as f64;
    let hold_s = hold_start.elapsed().as_secs_f64();
    let report = IdleReport {
        target: if args.connector.is_empty() {
            format!("{} (gate-assigned connectors)", c.gate)
        } else {
            args.connector.join(",")
        },
        source_addrs: c.source_addrs.iter().map(|a| a.to_string()).collect(),
        connected: clients.len() as u64,
        connect_errors: errors.len() as u64,
        connect_s,
        hold_s,
        disconnects: down as u64,
        rss_before_kb: before.rss_kb,
        rss_connected_kb: connected.rss_kb,
        rss_end_kb: end.rss_kb,
        rss_per_conn_kb: (connected.rss_kb as f64 - before.rss_kb as f64) / n,
        rss_per_conn_end_kb: (end.rss_kb as f64 - before.rss_kb as f64) / n,
        server_cpu_s: end.cpu_s - before.cpu_s,
        robot_rss_kb: procs::rss_kb(std::process::id()).unwrap_or(0),
        robot_cpu_s: robot_end - robot_start,
        robot_cores_hold: (robot_end - robot_hold_start) / hold_s.max(1e-3),
    };

    close_all(clients).await;

    Ok(Report {
        bench: "shaddock-bench",
        scenario: "idle",
        label: c.label.clone(),
        gate: c.gate.clone(),
        clients: args.clients,
        rooms: 0,
        processes: procs.to_vec(),
        login_errors: report.connect_errors,
        login_s: connect_s,
        steps: Vec::new(),
        best: None,
        idle: Some(report),
        storm: None,
        machine: Default::default(),
        notes,
    })
}

/// Writes a hidden temporary file next to `path` and renames it, so a
/// coordinator polling for `path` never reads it half written.
fn write_atomically(path: &Path, text: &str) -> std::io::Result<()> {
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("ready");
    let tmp = path.with_file_name(format!(".{name}.tmp"));
    std::fs::write(&tmp, text)?;
    std::fs::rename(&tmp, path)
}

/// Polls for `path` every 100 ms; false when `limit` passed first.
async fn wait_for_file(path: &Path, limit: Duration) -> bool {
    let end = Instant::now() + limit;
    while Instant::now() < end {
        if path.exists() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    path.exists()
}

fn bar(quiet: bool, len: u64, prefix: &str) -> ProgressBar {
    let bar = if quiet {
        ProgressBar::hidden()
    } else {
        ProgressBar::new(len)
    };
    bar.set_style(
        ProgressStyle::with_template("{prefix:>12} [{bar:30}] {pos}/{len} {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    bar.set_prefix(prefix.to_owned());
    bar
}

fn bar_ms(quiet: bool, len: u64, prefix: &str) -> ProgressBar {
    let bar = bar(quiet, len, prefix);
    bar.set_style(
        ProgressStyle::with_template("{prefix:>12} [{bar:30}] {percent:>3}% {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    bar
}
