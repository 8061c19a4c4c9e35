//! The chat scenario: C clients in R rooms, each sending r messages/s to its
//! room (`target: "*"`), so every message becomes one push per room member.
//!
//! Each message's `content` is `step|sender|seq|sent_us` (`sent_us` counts
//! from the robot's start on one monotonic clock), so every receiver knows
//! the push latency, the step it belongs to and whether it came in order,
//! without any shared state but a few atomics and lock-free histograms.
//!
//! Sends are open-loop: each client ticks at its rate (phases spread evenly
//! over the period) and fires the request without waiting for the previous
//! answer, so a slow server shows up as latency, not as a lower offered
//! load. A step ends with a drain: no more sends, wait (bounded) until the
//! pushes expected have arrived and every request was answered.

use std::borrow::Cow;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};
use serde::Deserialize;
use shaddock_client::{Client, ClientError, Push};
use shared::SendRequest;
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio::time::Instant;

use crate::args::ChatArgs;
use crate::hist::Histogram;
use crate::login::{Pacer, client_options, close_all, login, options_for};
use crate::procs::{self, Proc};
use crate::report::{Report, StepReport};

/// Counters of one step.
#[derive(Default)]
struct Step {
    sends: AtomicU64,
    skipped: AtomicU64,
    errors: AtomicU64,
    timeouts: AtomicU64,
    expected: AtomicU64,
    delivered: AtomicU64,
    reordered: AtomicU64,
    push: Histogram,
    req: Histogram,
}

/// State shared by every task of the run.
struct Run {
    epoch: Instant,
    steps: Vec<Step>,
    inflight: AtomicUsize,
    disconnects: AtomicU64,
    foreign: AtomicU64,
    stop: AtomicBool,
}

impl Run {
    fn now_us(&self) -> u64 {
        self.epoch.elapsed().as_micros() as u64
    }
}

/// What the senders do next.
#[derive(Debug, Clone, Copy)]
struct Plan {
    step: usize,
    rate: f64,
    start: Instant,
    end: Instant,
}

/// One logged-in client.
struct Member {
    client: Arc<Client>,
    index: usize,
    name: String,
    rid: String,
    room: usize,
}

pub async fn run(args: &ChatArgs, procs: &[Proc], mut notes: Vec<String>) -> Report {
    let c = &args.common;
    let timeout = Duration::from_secs_f64(c.timeout);
    let opts = client_options(timeout);
    let rooms = args.rooms.max(1);
    let tag = format!(
        "{:x}",
        (std::process::id() as u64) << 16
            ^ (std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_millis() as u64)
                .unwrap_or(0)
                & 0xffff_ffff)
    );

    // ---- login ----
    let bar = bar(c.quiet, args.clients as u64, "login");
    let login_start = Instant::now();
    let pacer = Arc::new(Pacer::new(c.connect_concurrency, c.connect_rate));
    let mut set = JoinSet::new();
    for i in 0..args.clients {
        let opts = options_for(&opts, &c.source_addrs, i);
        let (pacer, gate, bar) = (pacer.clone(), c.gate.clone(), bar.clone());
        let room = i % rooms;
        let rid = format!("b{tag}r{room}");
        let name = format!("u{i}");
        set.spawn(async move {
            let mut last = None;
            for attempt in 0..2 {
                if attempt > 0 {
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
                let _permit = pacer.turn().await;
                let overall = timeout * 3;
                match tokio::time::timeout(overall, login(&gate, &name, &rid, &opts)).await {
                    Ok(Ok((client, _))) => {
                        bar.inc(1);
                        return Ok(Member {
                            client,
                            index: i,
                            name,
                            rid,
                            room,
                        });
                    }
                    Ok(Err(e)) => last = Some(e.to_string()),
                    Err(_) => last = Some(format!("login took more than {overall:?}")),
                }
            }
            bar.inc(1);
            Err(format!("client {i}: {}", last.unwrap_or_default()))
        });
    }
    let mut members = Vec::with_capacity(args.clients);
    let mut login_errors = Vec::new();
    while let Some(r) = set.join_next().await {
        match r {
            Ok(Ok(m)) => members.push(m),
            Ok(Err(e)) => login_errors.push(e),
            Err(e) => login_errors.push(format!("login task failed: {e}")),
        }
    }
    bar.finish_and_clear();
    let login_s = login_start.elapsed().as_secs_f64();
    if let Some(first) = login_errors.first() {
        notes.push(format!(
            "{} of {} logins failed; first: {first}",
            login_errors.len(),
            args.clients
        ));
    }
    members.sort_by_key(|m| m.index);
    let mut room_sizes = vec![0u64; rooms];
    for m in &members {
        room_sizes[m.room] += 1;
    }

    // ---- plan the steps ----
    let mut rates: Vec<(f64, bool)> = Vec::new(); // (rate, measured)
    let first_rate = if args.ramp {
        args.rates.first().copied().unwrap_or(args.rate)
    } else {
        args.rate
    };
    if args.warmup > 0.0 {
        rates.push((first_rate, false));
    }
    if args.ramp {
        rates.extend(args.rates.iter().map(|r| (*r, true)));
    } else {
        rates.push((args.rate, true));
    }
    let run = Arc::new(Run {
        epoch: Instant::now(),
        steps: rates.iter().map(|_| Step::default()).collect(),
        inflight: AtomicUsize::new(0),
        disconnects: AtomicU64::new(0),
        foreign: AtomicU64::new(0),
        stop: AtomicBool::new(false),
    });

    // ---- receivers and senders ----
    let per_room = args.clients.div_ceil(rooms);
    let (plan_tx, plan_rx) = watch::channel::<Option<Plan>>(None);
    let mut tasks = JoinSet::new();
    for m in &members {
        on_chat(&m.client, run.clone(), rooms, per_room);
        tasks.spawn(watch_client(m.client.clone(), run.clone()));
        tasks.spawn(send(
            m.client.clone(),
            SenderInfo {
                index: m.index,
                clients: args.clients,
                name: m.name.clone(),
                rid: m.rid.clone(),
                room_size: room_sizes[m.room],
                max_inflight: args.max_inflight,
                timeout,
            },
            run.clone(),
            plan_rx.clone(),
        ));
    }
    drop(plan_rx);

    // ---- steps ----
    let mut steps = Vec::new();
    let mut best: Option<StepReport> = None;
    let mut failures = 0;
    for (k, (rate, measured)) in rates.iter().copied().enumerate() {
        let duration = if measured { args.duration } else { args.warmup };
        let before = procs::sample(procs);
        let robot_before = procs::self_cpu_seconds();
        let start = Instant::now() + Duration::from_millis(50);
        let end = start + Duration::from_secs_f64(duration);
        let _ = plan_tx.send(Some(Plan {
            step: k,
            rate,
            start,
            end,
        }));
        let label = if measured {
            format!("rate {rate}/s")
        } else {
            "warmup".to_owned()
        };
        watch_step(&run, k, &label, start, end, c.quiet).await;
        let drain_start = Instant::now();
        let drain_end = drain_start + Duration::from_secs_f64(args.drain);
        let s = &run.steps[k];
        while Instant::now() < drain_end
            && (s.delivered.load(Ordering::Relaxed) < s.expected.load(Ordering::Relaxed)
                || run.inflight.load(Ordering::Relaxed) > 0)
        {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let drain_s = drain_start.elapsed().as_secs_f64();
        let after = procs::sample(procs);
        let robot_cpu = procs::self_cpu_seconds() - robot_before;
        if !measured {
            continue;
        }
        let report = step_report(
            s,
            rate,
            duration,
            drain_s,
            &before,
            &after,
            robot_cpu,
            run.disconnects.load(Ordering::Relaxed),
            args,
        );
        let pass = report.pass;
        steps.push(report.clone());
        if pass {
            failures = 0;
            if best
                .as_ref()
                .is_none_or(|b| b.pushes_per_s < report.pushes_per_s)
            {
                best = Some(report);
            }
        } else {
            failures += 1;
            if args.ramp && failures >= args.ramp_failures {
                break;
            }
        }
        if members.is_empty() {
            break;
        }
    }
    let _ = plan_tx.send(None);
    run.stop.store(true, Ordering::Relaxed);
    let foreign = run.foreign.load(Ordering::Relaxed);
    if foreign > 0 {
        notes.push(format!("{foreign} onChat pushes not sent by this run"));
    }
    if procs.is_empty() {
        notes.push("no server processes given (--pids, --pid-match, --topology): server CPU and RSS not measured".into());
    }

    // ---- shut down ----
    tasks.abort_all();
    while tasks.join_next().await.is_some() {}
    close_all(members.into_iter().map(|m| m.client).collect()).await;

    Report {
        bench: "shaddock-bench",
        scenario: "chat",
        label: c.label.clone(),
        gate: c.gate.clone(),
        clients: args.clients,
        rooms,
        processes: procs.to_vec(),
        login_errors: login_errors.len() as u64,
        login_s,
        steps,
        best: if args.ramp { best } else { None },
        idle: None,
        storm: None,
        machine: Default::default(),
        notes,
    }
}

#[allow(clippy::too_many_arguments)]
fn step_report(
    s: &Step,
    rate: f64,
    duration: f64,
    drain_s: f64,
    before: &procs::Sample,
    after: &procs::Sample,
    robot_cpu_s: f64,
    disconnects: u64,
    args: &ChatArgs,
) -> StepReport {
    let expected = s.expected.load(Ordering::Relaxed);
    let delivered = s.delivered.load(Ordering::Relaxed);
    let delivery = if expected == 0 {
        0.0
    } else {
        delivered as f64 / expected as f64
    };
    let ms = |us: u64| us as f64 / 1000.0;
    let server_cpu_s = (after.cpu_s - before.cpu_s).max(0.0);
    let wall = duration + drain_s;
    let push_p99_ms = ms(s.push.quantile(0.99));
    StepReport {
        rate,
        duration_s: duration,
        drain_s,
        sends: s.sends.load(Ordering::Relaxed),
        sends_skipped: s.skipped.load(Ordering::Relaxed),
        send_errors: s.errors.load(Ordering::Relaxed),
        send_timeouts: s.timeouts.load(Ordering::Relaxed),
        pushes_expected: expected,
        pushes_delivered: delivered,
        delivery,
        pushes_per_s: delivered as f64 / duration,
        pushes_reordered: s.reordered.load(Ordering::Relaxed),
        push_p50_ms: ms(s.push.quantile(0.50)),
        push_p90_ms: ms(s.push.quantile(0.90)),
        push_p99_ms,
        push_max_ms: ms(s.push.max()),
        req_p50_ms: ms(s.req.quantile(0.50)),
        req_p99_ms: ms(s.req.quantile(0.99)),
        req_max_ms: ms(s.req.max()),
        disconnects,
        server_cpu_s,
        server_cpu_us_per_push: if delivered == 0 {
            0.0
        } else {
            server_cpu_s * 1e6 / delivered as f64
        },
        server_cores: server_cpu_s / wall,
        robot_cpu_s,
        robot_cores: robot_cpu_s / wall,
        server_rss_kb: after.rss_kb,
        server_cpu_by_process: procs::cpu_delta_by_process(before, after),
        loadavg_1m: procs::loadavg()[0],
        pass: expected > 0
            && delivery >= args.min_delivery
            && push_p99_ms <= args.max_p99_ms
            && disconnects == 0,
    }
}

/// Shows the step's progress until `end`.
async fn watch_step(run: &Run, k: usize, label: &str, start: Instant, end: Instant, quiet: bool) {
    let total = (end - start).as_millis() as u64;
    let bar = bar(quiet, total.max(1), label);
    let s = &run.steps[k];
    let mut last = (Instant::now(), s.delivered.load(Ordering::Relaxed));
    let mut tick = tokio::time::interval(Duration::from_millis(250));
    loop {
        tick.tick().await;
        let now = Instant::now();
        if now >= end {
            break;
        }
        let d = s.delivered.load(Ordering::Relaxed);
        let pps = (d - last.1) as f64 / (now - last.0).as_secs_f64().max(1e-3);
        last = (now, d);
        bar.set_position(now.saturating_duration_since(start).as_millis() as u64);
        bar.set_message(format!(
            "{pps:>8.0} pushes/s  p99 {:>7.2} ms  delivered {d}/{}",
            s.push.quantile(0.99) as f64 / 1000.0,
            s.expected.load(Ordering::Relaxed)
        ));
    }
    bar.finish_and_clear();
}

fn bar(quiet: bool, len: u64, prefix: &str) -> ProgressBar {
    if quiet {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(len);
    bar.set_style(
        ProgressStyle::with_template("{prefix:>12} [{bar:30}] {percent:>3}% {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    bar.set_prefix(prefix.to_owned());
    bar
}

#[derive(Deserialize)]
struct ChatBody<'a> {
    #[serde(borrow)]
    msg: Cow<'a, str>,
}

/// `step|sender|seq|sent_us`
fn parse_content(msg: &str) -> Option<(usize, usize, u32, u64)> {
    let mut it = msg.split('|');
    let step = it.next()?.parse().ok()?;
    let sender = it.next()?.parse().ok()?;
    let seq = it.next()?.parse().ok()?;
    let sent = it.next()?.parse().ok()?;
    Some((step, sender, seq, sent))
}

/// One client's receiving side. Every `onChat` is counted and timed by a
/// callback on the client's connection task ([`Client::on_push`]): one task
/// wake per push, so the robot stays light next to the servers it measures.
fn on_chat(client: &Client, run: Arc<Run>, rooms: usize, per_room: usize) {
    let last_seq = std::sync::Mutex::new(vec![0u32; per_room + 1]);
    client.on_push(shared::PUSH_CHAT, move |push: Push| {
        let now = run.now_us();
        let parsed = serde_json::from_slice::<ChatBody>(&push.body)
            .ok()
            .and_then(|b| parse_content(&b.msg));
        let Some((step, sender, seq, sent)) = parsed else {
            run.foreign.fetch_add(1, Ordering::Relaxed);
            return;
        };
        let Some(s) = run.steps.get(step) else {
            run.foreign.fetch_add(1, Ordering::Relaxed);
            return;
        };
        s.delivered.fetch_add(1, Ordering::Relaxed);
        s.push.record(now.saturating_sub(sent));
        let mut last_seq = last_seq.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(last) = last_seq.get_mut(sender / rooms) {
            if seq <= *last {
                s.reordered.fetch_add(1, Ordering::Relaxed);
            } else {
                *last = seq;
            }
        }
    });
}

/// Drains the other pushes (onAdd/onLeave) and notices a disconnect.
async fn watch_client(client: Arc<Client>, run: Arc<Run>) {
    let closed = client.closed();
    tokio::pin!(closed);
    loop {
        tokio::select! {
            other = client.next_push() => {
                if other.is_none() {
                    break;
                }
            }
            _ = &mut closed => {
                if !run.stop.load(Ordering::Relaxed) {
                    run.disconnects.fetch_add(1, Ordering::Relaxed);
                }
                break;
            }
        }
    }
}

struct SenderInfo {
    index: usize,
    clients: usize,
    name: String,
    rid: String,
    room_size: u64,
    max_inflight: usize,
    timeout: Duration,
}

/// One client's sending side: follows the plans until told to stop.
async fn send(
    client: Arc<Client>,
    me: SenderInfo,
    run: Arc<Run>,
    mut plans: watch::Receiver<Option<Plan>>,
) {
    let inflight = Arc::new(AtomicUsize::new(0));
    let mut seq = 0u32;
    while plans.changed().await.is_ok() {
        let Some(plan) = *plans.borrow_and_update() else {
            return;
        };
        if plan.rate <= 0.0 {
            continue;
        }
        let period = Duration::from_secs_f64(1.0 / plan.rate);
        let mut next = plan.start + period.mul_f64(me.index as f64 / me.clients.max(1) as f64);
        let step = &run.steps[plan.step];
        while next < plan.end {
            tokio::time::sleep_until(next).await;
            let now = Instant::now();
            // Far behind (the robot was starved): do not burst to catch up.
            if now > next + Duration::from_secs(1) {
                next = now;
            }
            next += period;
            if inflight.load(Ordering::Relaxed) >= me.max_inflight {
                step.skipped.fetch_add(1, Ordering::Relaxed);
                continue;
            }
            seq += 1;
            let content = format!("{}|{}|{}|{}", plan.step, me.index, seq, run.now_us());
            let body = match serde_json::to_vec(&SendRequest {
                rid: me.rid.clone(),
                content,
                from: me.name.clone(),
                target: shared::TARGET_ALL.to_owned(),
            }) {
                Ok(b) => b,
                Err(_) => continue,
            };
            step.sends.fetch_add(1, Ordering::Relaxed);
            step.expected.fetch_add(me.room_size, Ordering::Relaxed);
            inflight.fetch_add(1, Ordering::Relaxed);
            run.inflight.fetch_add(1, Ordering::Relaxed);
            let (client, run, inflight, k, timeout) = (
                client.clone(),
                run.clone(),
                inflight.clone(),
                plan.step,
                me.timeout,
            );
            tokio::spawn(async move {
                let t0 = Instant::now();
                let r = client
                    .request_raw_timeout(shared::ROUTE_SEND, body, timeout)
                    .await;
                let s = &run.steps[k];
                match r {
                    Ok(resp) => {
                        s.req.record(t0.elapsed().as_micros() as u64);
                        if is_error(&resp) {
                            s.errors.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                    Err(ClientError::Timeout { .. }) => {
                        s.timeouts.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(_) => {
                        s.errors.fetch_add(1, Ordering::Relaxed);
                    }
                }
                inflight.fetch_sub(1, Ordering::Relaxed);
                run.inflight.fetch_sub(1, Ordering::Relaxed);
            });
        }
    }
}

/// `{"code":500,...}`: the server refused the send.
fn is_error(resp: &[u8]) -> bool {
    #[derive(Deserialize)]
    struct Code {
        #[serde(default)]
        code: Option<u32>,
    }
    serde_json::from_slice::<Code>(resp)
        .map(|c| c.code.is_some_and(|c| c != 200))
        .unwrap_or(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_round_trip() {
        assert_eq!(parse_content("3|17|42|123456"), Some((3, 17, 42, 123456)));
        assert_eq!(parse_content("hello"), None);
        assert_eq!(parse_content("1|2|x|4"), None);
    }

    #[test]
    fn send_responses() {
        assert!(!is_error(b"{}"));
        assert!(is_error(br#"{"code":500,"error":true}"#));
        assert!(is_error(b"not json"));
    }
}
