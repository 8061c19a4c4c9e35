//! `shaddock list`'s `req/s` and `p99` columns, from each server's
//! `/metrics` (see [`scrape`](super::scrape)), read when `list` is asked.
//!
//! Like the CPU column, they cover the time **since the previous `list`**
//! (a dashboard polling every 2 s sees the last 2 s), or the life of the
//! process for the first one. The figure is the one that measures what a
//! client waits for on that server: on a frontend `shaddock_request_seconds`
//! (client message → response, forwarding included), on a backend
//! `shaddock_handler_seconds` (filters + handler). A server without
//! `metricsPort`, or whose scrape fails within [`SCRAPE_TIMEOUT`], shows
//! `-`.
//!
//! Cost: nothing while nobody lists; one `GET /metrics` per server per
//! `list`, all at once.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Instant;

use super::proto::ServerStatus;
use super::scrape::{Histogram, SCRAPE_TIMEOUT, get_metrics, histogram};

/// A window shorter than this is widened to the reading before (two lists
/// in a row, or a dashboard and a person, still see the last second's
/// traffic rather than a few milliseconds of it).
const MIN_WINDOW_SECS: f64 = 1.0;

/// The last two readings of each server.
#[derive(Default)]
pub struct Rates {
    last: Mutex<HashMap<String, Seen>>,
}

/// Readings of one process (a new pid starts over).
struct Seen {
    pid: u32,
    /// The reading before `newer`, kept for a window that would be too short.
    older: Option<Reading>,
    newer: Reading,
}

#[derive(Clone)]
struct Reading {
    at: Instant,
    figures: Histogram,
}

impl Rates {
    /// Sets `requests_per_sec` and `p99_ms` of every running row that has
    /// a metrics address.
    pub async fn fill(&self, rows: &mut [ServerStatus]) {
        let scrapes = rows
            .iter()
            .enumerate()
            .filter(|(_, s)| s.pid != 0 && !s.metrics_addr.is_empty())
            .map(|(i, s)| {
                let (addr, frontend) = (s.metrics_addr.clone(), s.frontend);
                async move {
                    let text = tokio::time::timeout(SCRAPE_TIMEOUT, get_metrics(&addr)).await;
                    let name = if frontend {
                        "shaddock_request_seconds"
                    } else {
                        "shaddock_handler_seconds"
                    };
                    (
                        i,
                        text.ok().and_then(Result::ok).map(|t| histogram(&t, name)),
                    )
                }
            });
        let results = futures_util::future::join_all(scrapes).await;
        let now = Instant::now();
        let mut last = self.last.lock().unwrap_or_else(|p| p.into_inner());
        for (i, figures) in results {
            let row = &mut rows[i];
            let Some(figures) = figures else { continue };
            let reading = Reading { at: now, figures };
            let seen = last.get_mut(&row.id).filter(|seen| seen.pid == row.pid);
            let (window, secs) = match seen {
                Some(seen) => {
                    let age = now.duration_since(seen.newer.at).as_secs_f64();
                    match &seen.older {
                        // Too short a window: from the reading before.
                        Some(older) if age < MIN_WINDOW_SECS => {
                            let base = older.clone();
                            seen.newer = reading.clone();
                            (
                                reading.figures.since(&base.figures),
                                now.duration_since(base.at).as_secs_f64(),
                            )
                        }
                        // None before it: the process's life so far.
                        None if age < MIN_WINDOW_SECS => (reading.figures, life(row)),
                        _ => {
                            let base = std::mem::replace(&mut seen.newer, reading.clone());
                            let window = (
                                reading.figures.since(&base.figures),
                                now.duration_since(base.at).as_secs_f64(),
                            );
                            seen.older = Some(base);
                            window
                        }
                    }
                }
                None => {
                    last.insert(
                        row.id.clone(),
                        Seen {
                            pid: row.pid,
                            older: None,
                            newer: reading.clone(),
                        },
                    );
                    (reading.figures, life(row))
                }
            };
            row.requests_per_sec = Some(if secs > 0.0 { window.count / secs } else { 0.0 });
            row.p99_ms = window.quantile(0.99).map(|s| s * 1000.0);
        }
    }
}

/// Seconds the process has lived, for a first reading: `uptime_secs` is
/// whole seconds, so a process younger than [`MIN_WINDOW_SECS`] counts as
/// that old (its rate is then per second over its first second, not a
/// division by zero).
fn life(row: &ServerStatus) -> f64 {
    (row.uptime_secs as f64).max(MIN_WINDOW_SECS)
}
