//! The login storm: C users log in at once — gate `queryEntry`, connector,
//! `enter` into room i mod R — with up to `--concurrency` logins in flight
//! and no other pacing, the way players arrive after a server restart.
//!
//! Measured: time from the first connect until every login is done, logins
//! per second, each login's latency (the whole chain), failed logins by
//! step and kind (no retries: a storm that needs retries failed), the
//! servers' CPU and RSS over the storm, the robot's own CPU, and then
//! whether the logged-in users stay connected for `--hold` seconds.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use shaddock_client::Client;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio::time::Instant;

use crate::args::StormArgs;
use crate::hist::Histogram;
use crate::login::{client_options, close_all, login, options_for};
use crate::procs::{self, Proc};
use crate::report::{Report, StormReport};

pub async fn run(args: &StormArgs, procs: &[Proc], mut notes: Vec<String>) -> Report {
    let c = &args.common;
    let timeout = Duration::from_secs_f64(c.timeout);
    let opts = client_options(timeout);
    let rooms = args.rooms.max(1);
    // Names unique per run: a user still logged in from an earlier run (its
    // session not yet gone) must not turn this run's `enter` into a kick.
    let tag = format!("{:x}", run_tag());
    if procs.is_empty() {
        notes.push(
            "no server processes given (--pids, --pid-match, --topology): server CPU not measured"
                .into(),
        );
    }

    let latency = Arc::new(Histogram::default());
    let slots = Arc::new(Semaphore::new(args.concurrency.max(1)));
    let before = procs::sample(procs);
    let robot_before = procs::self_cpu_seconds();
    let start = Instant::now();
    let mut set = JoinSet::new();
    for i in 0..args.clients {
        let opts = options_for(&opts, &c.source_addrs, i);
        let (slots, latency, gate) = (slots.clone(), latency.clone(), c.gate.clone());
        let name = format!("s{tag}u{i}");
        let rid = format!("s{tag}r{}", i % rooms);
        set.spawn(async move {
            let _slot = slots.acquire_owned().await.expect("never closed");
            let t0 = Instant::now();
            // The client's connect and request timeouts bound each step; this
            // bounds the chain (4 steps).
            let overall = timeout * 4;
            let r = match tokio::time::timeout(overall, login(&gate, &name, &rid, &opts)).await {
                Ok(Ok((client, _))) => {
                    latency.record(t0.elapsed().as_micros() as u64);
                    Ok(client)
                }
                Ok(Err(e)) => Err((e.kind(), e.to_string())),
                Err(_) => Err((
                    "login timeout".to_owned(),
                    format!("the login took more than {overall:?}"),
                )),
            };
            (r, Instant::now())
        });
    }
    let mut clients: Vec<Arc<Client>> = Vec::with_capacity(args.clients);
    let mut errors_by_kind: BTreeMap<String, u64> = BTreeMap::new();
    let mut first_error = None;
    let mut last_done = start;
    while let Some(joined) = set.join_next().await {
        match joined {
            Ok((Ok(client), done)) => {
                last_done = last_done.max(done);
                clients.push(client);
            }
            Ok((Err((kind, text)), done)) => {
                last_done = last_done.max(done);
                *errors_by_kind.entry(kind).or_default() += 1;
                first_error.get_or_insert(text);
            }
            Err(e) => {
                *errors_by_kind.entry("robot task".into()).or_default() += 1;
                first_error.get_or_insert(format!("login task failed: {e}"));
            }
        }
    }
    let total_s = (last_done - start).as_secs_f64();
    let after = procs::sample(procs);
    let robot_cpu_s = procs::self_cpu_seconds() - robot_before;
    let wall = start.elapsed().as_secs_f64().max(1e-3);

    let hold = Duration::from_secs_f64(args.hold);
    tokio::time::sleep(hold).await;
    let disconnects = clients.iter().filter(|c| !c.is_open()).count() as u64;
    if let Some(reason) = clients.iter().find_map(|c| c.close_reason()) {
        notes.push(format!("first disconnect after login: {reason:?}"));
    }

    let errors: u64 = errors_by_kind.values().sum();
    let logged_in = clients.len() as u64;
    let ms = |us: u64| us as f64 / 1000.0;
    let server_cpu_s = (after.cpu_s - before.cpu_s).max(0.0);
    let report = StormReport {
        users: args.clients as u64,
        logged_in,
        errors,
        errors_by_kind,
        first_error,
        concurrency: args.concurrency,
        total_s,
        logins_per_s: logged_in as f64 / total_s.max(1e-3),
        login_p50_ms: ms(latency.quantile(0.50)),
        login_p90_ms: ms(latency.quantile(0.90)),
        login_p99_ms: ms(latency.quantile(0.99)),
        login_max_ms: ms(latency.max()),
        server_cpu_s,
        server_cores: server_cpu_s / wall,
        server_cpu_ms_per_login: if logged_in == 0 {
            0.0
        } else {
            server_cpu_s * 1000.0 / logged_in as f64
        },
        server_cpu_by_process: procs::cpu_delta_by_process(&before, &after),
        server_rss_before_kb: before.rss_kb,
        server_rss_after_kb: after.rss_kb,
        robot_cpu_s,
        robot_cores: robot_cpu_s / wall,
        disconnects,
        hold_s: hold.as_secs_f64(),
        max_seconds: args.max_seconds,
        pass: logged_in == args.clients as u64
            && errors == 0
            && disconnects == 0
            && total_s <= args.max_seconds,
    };

    close_all(clients).await;

    Report {
        bench: "shaddock-bench",
        scenario: "storm",
        label: c.label.clone(),
        gate: c.gate.clone(),
        clients: args.clients,
        rooms,
        processes: procs.to_vec(),
        login_errors: report.errors,
        login_s: report.total_s,
        steps: Vec::new(),
        best: None,
        idle: None,
        storm: Some(report),
        machine: Default::default(),
        notes,
    }
}

/// A number that differs between runs (pid and clock).
fn run_tag() -> u64 {
    let ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0);
    (u64::from(std::process::id()) << 20) ^ (ms & 0xf_ffff_ffff)
}
