//! `flood`: what the per-client budgets buy (issue 12).
//!
//! A witness pair chats in one room at a steady rate (`--witness-rate`
//! messages/s, one listener measuring send → push latency), first alone
//! (`--seconds`), then while `--flooders` clients hammer the connectors with
//! as many concurrent requests as they can (`--burst` in flight each, far
//! over the budget). The connectors answer what is over a client's budget
//! with code 429 and KICK a client that keeps at it; a kicked flooder logs
//! in again and goes on. Reported: requests refused per second, kicks, and
//! the witness's p50/p99 alone and under the flood, with their ratio (the
//! target: p99 within 2× of the unflooded value).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use futures_util::future::join_all;
use serde_json::{Value, json};
use shaddock_client::{Client, CloseReason};

use crate::args::FloodArgs;
use crate::hist::Histogram;
use crate::login;

fn now_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or(0)
}

/// Sends `rate` messages/s from `a` to the room for `secs`; `b` records the
/// latency of each push into a fresh histogram.
async fn witness_phase(a: &Client, b: &Arc<Client>, rate: f64, secs: f64) -> Histogram {
    let hist = Arc::new(Histogram::default());
    let stop = Arc::new(AtomicBool::new(false));
    let listener = {
        let (b, hist, stop) = (b.clone(), hist.clone(), stop.clone());
        tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                let Ok(push) = b.next_push_timeout(Duration::from_millis(200)).await else {
                    continue;
                };
                if push.route != "onChat" {
                    continue;
                }
                if let Some(sent) = push
                    .json::<Value>()
                    .ok()
                    .and_then(|v| v["msg"].as_str().and_then(|m| m.parse::<u64>().ok()))
                {
                    hist.record(now_us().saturating_sub(sent));
                }
            }
        })
    };
    let every = Duration::from_secs_f64(1.0 / rate);
    let end = Instant::now() + Duration::from_secs_f64(secs);
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    while Instant::now() < end {
        tick.tick().await;
        let body = json!({"rid": "", "content": now_us().to_string(), "from": "", "target": "*"});
        let _ = a.request::<_, Value>(shared::ROUTE_SEND, &body).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.store(true, Ordering::Relaxed);
    let _ = listener.await;
    Arc::try_unwrap(hist).unwrap_or_default()
}

#[derive(Default)]
struct FloodCounts {
    sent: AtomicU64,
    refused: AtomicU64,
    answered: AtomicU64,
    kicked: AtomicU64,
    failed: AtomicU64,
    logins: AtomicU64,
}

/// One flooder: log in, fire `burst` concurrent sends again and again until
/// kicked, log in again, until `stop`.
async fn flooder(
    i: usize,
    gate: String,
    burst: usize,
    opts: shaddock_client::ClientOptions,
    counts: Arc<FloodCounts>,
    stop: Arc<AtomicBool>,
) {
    let mut round = 0;
    while !stop.load(Ordering::Relaxed) {
        round += 1;
        let name = format!("flood{i}x{round}");
        let Ok((client, _)) = login::login(&gate, &name, "floodroom", &opts).await else {
            counts.failed.fetch_add(1, Ordering::Relaxed);
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        };
        counts.logins.fetch_add(1, Ordering::Relaxed);
        while !stop.load(Ordering::Relaxed) && client.is_open() {
            let body = json!({"rid": "", "content": "x", "from": "", "target": "*"});
            let batch = (0..burst).map(|_| client.request::<_, Value>(shared::ROUTE_SEND, &body));
            counts.sent.fetch_add(burst as u64, Ordering::Relaxed);
            for r in join_all(batch).await {
                match r {
                    Ok(v) if v["code"] == 429 => counts.refused.fetch_add(1, Ordering::Relaxed),
                    Ok(_) => counts.answered.fetch_add(1, Ordering::Relaxed),
                    Err(_) => counts.failed.fetch_add(1, Ordering::Relaxed),
                };
            }
        }
        if matches!(client.close_reason(), Some(CloseReason::Kicked(_))) {
            counts.kicked.fetch_add(1, Ordering::Relaxed);
        }
        client.close().await;
    }
}

fn ms(us: u64) -> f64 {
    us as f64 / 1000.0
}

pub async fn run(a: &FloodArgs) -> anyhow::Result<Value> {
    let opts = login::client_options(Duration::from_secs_f64(a.common.timeout));
    let tag = now_us() % 1_000_000;
    let (wa, _) = login::login(&a.common.gate, &format!("witnessa{tag}"), "witness", &opts).await?;
    let (wb, _) = login::login(&a.common.gate, &format!("witnessb{tag}"), "witness", &opts).await?;
    eprintln!("flood: witness alone for {} s", a.seconds);
    let alone = witness_phase(&wa, &wb, a.witness_rate, a.seconds).await;

    let counts = Arc::new(FloodCounts::default());
    let stop = Arc::new(AtomicBool::new(false));
    let flooders: Vec<_> = (0..a.flooders)
        .map(|i| {
            tokio::spawn(flooder(
                i,
                a.common.gate.clone(),
                a.burst,
                opts.clone(),
                counts.clone(),
                stop.clone(),
            ))
        })
        .collect();
    // Let the flood build up before measuring.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let refused_before = counts.refused.load(Ordering::Relaxed);
    let sent_before = counts.sent.load(Ordering::Relaxed);
    let kicked_before = counts.kicked.load(Ordering::Relaxed);
    eprintln!(
        "flood: witness under a flood of {} clients for {} s",
        a.flooders, a.seconds
    );
    let began = Instant::now();
    let flooded = witness_phase(&wa, &wb, a.witness_rate, a.seconds).await;
    let elapsed = began.elapsed().as_secs_f64();
    let refused = counts.refused.load(Ordering::Relaxed) - refused_before;
    let sent = counts.sent.load(Ordering::Relaxed) - sent_before;
    let kicked = counts.kicked.load(Ordering::Relaxed) - kicked_before;
    stop.store(true, Ordering::Relaxed);
    for f in flooders {
        let _ = tokio::time::timeout(Duration::from_secs(10), f).await;
    }
    let p99_alone = alone.quantile(0.99);
    let p99_flood = flooded.quantile(0.99);
    let report = json!({
        "scenario": "flood",
        "label": a.common.label,
        "flooders": a.flooders,
        "burst": a.burst,
        "witness_rate": a.witness_rate,
        "seconds": a.seconds,
        "witness_alone": {"count": alone.count(), "p50_ms": ms(alone.quantile(0.5)), "p99_ms": ms(p99_alone)},
        "witness_flooded": {"count": flooded.count(), "p50_ms": ms(flooded.quantile(0.5)), "p99_ms": ms(p99_flood)},
        "p99_ratio": if p99_alone > 0 { p99_flood as f64 / p99_alone as f64 } else { 0.0 },
        "flood_requests_per_s": sent as f64 / elapsed,
        "refused_per_s": refused as f64 / elapsed,
        "kicks": kicked,
        "flooder_logins": counts.logins.load(Ordering::Relaxed),
        "answered_total": counts.answered.load(Ordering::Relaxed),
        "failed_total": counts.failed.load(Ordering::Relaxed),
    });
    println!(
        "witness p50/p99 alone {:.2}/{:.2} ms, under flood {:.2}/{:.2} ms (p99 ×{:.2}); \
         flood {:.0} req/s, refused {:.0}/s, {} kicks",
        ms(alone.quantile(0.5)),
        ms(p99_alone),
        ms(flooded.quantile(0.5)),
        ms(p99_flood),
        report["p99_ratio"].as_f64().unwrap_or(0.0),
        report["flood_requests_per_s"].as_f64().unwrap_or(0.0),
        report["refused_per_s"].as_f64().unwrap_or(0.0),
        kicked
    );
    println!("{report}");
    Ok(report)
}
