//! Per-server rates for the dashboard, from each server's `/metrics`
//! (servers.json `metricsPort`): requests/s, pushes/s and the p99 of the
//! requests between two scrapes.
//!
//! The web server computes the rates itself, from the counters of two
//! successive scrapes, so the dashboard needs nothing from the master but
//! its list; it is not on the data path (it only reads the endpoints).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A scrape that takes longer is skipped (that server shows no rates).
const SCRAPE_TIMEOUT: Duration = Duration::from_secs(2);
/// A larger answer is not a metrics page of ours.
const MAX_SCRAPE: u64 = 8 << 20;

/// The figures of one scrape that the dashboard turns into rates.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Figures {
    /// Client requests (frontends), or handler runs (backends: forwarded
    /// requests).
    pub requests: f64,
    /// Push messages queued to clients.
    pub pushes: f64,
    /// Cumulative request latency buckets `(le seconds, count)`, ascending.
    pub buckets: Vec<(f64, f64)>,
}

/// What the dashboard shows for one server.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct Rates {
    pub requests_total: f64,
    pub pushes_total: f64,
    pub requests_per_sec: f64,
    pub pushes_per_sec: f64,
    /// p99 of the requests since the previous scrape, in milliseconds
    /// (`None`: no request in between).
    pub p99_ms: Option<f64>,
}

/// The sum of the samples of `name` in a Prometheus text page, by the
/// value of `label` (`None`: all summed under "").
fn samples<'a>(text: &'a str, name: &str) -> impl Iterator<Item = (&'a str, f64)> {
    let name = name.to_string();
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(move |l| {
            let (series, value) = l.rsplit_once(' ')?;
            let (metric, labels) = match series.split_once('{') {
                Some((m, rest)) => (m, rest.trim_end_matches('}')),
                None => (series, ""),
            };
            (metric == name).then(|| Some((labels, value.parse::<f64>().ok()?)))?
        })
}

fn label<'a>(labels: &'a str, key: &str) -> Option<&'a str> {
    let start = labels.find(&format!("{key}=\""))? + key.len() + 2;
    let end = labels[start..].find('"')?;
    Some(&labels[start..start + end])
}

/// Reads [`Figures`] from a scrape.
pub fn parse(text: &str) -> Figures {
    let sum = |name: &str| samples(text, name).map(|(_, v)| v).sum::<f64>();
    let client_requests = sum("shaddock_requests_total");
    let (requests, histogram) = if client_requests > 0.0 {
        (client_requests, "shaddock_request_seconds_bucket")
    } else {
        (
            sum("shaddock_handler_seconds_count"),
            "shaddock_handler_seconds_bucket",
        )
    };
    let mut by_le: Vec<(f64, f64)> = Vec::new();
    for (labels, v) in samples(text, histogram) {
        let le = match label(labels, "le") {
            Some("+Inf") => f64::INFINITY,
            Some(le) => match le.parse() {
                Ok(le) => le,
                Err(_) => continue,
            },
            None => continue,
        };
        match by_le.iter_mut().find(|(l, _)| *l == le) {
            Some((_, c)) => *c += v,
            None => by_le.push((le, v)),
        }
    }
    by_le.sort_by(|a, b| a.0.total_cmp(&b.0));
    Figures {
        requests,
        pushes: sum("shaddock_pushes_total"),
        buckets: by_le,
    }
}

/// The upper bound of the bucket holding the 99th percentile of the
/// observations between `before` and `now` (cumulative buckets).
fn p99(before: &[(f64, f64)], now: &[(f64, f64)]) -> Option<f64> {
    let delta: Vec<(f64, f64)> = now
        .iter()
        .map(|(le, c)| {
            let old = before
                .iter()
                .find(|(l, _)| l == le)
                .map(|(_, c)| *c)
                .unwrap_or(0.0);
            (*le, c - old)
        })
        .collect();
    let total = delta.last()?.1;
    if total <= 0.0 {
        return None;
    }
    let le = delta.iter().find(|(_, c)| *c >= total * 0.99)?.0;
    // Above the largest finite bucket: say the largest bound.
    let le = if le.is_finite() {
        le
    } else {
        delta
            .iter()
            .rev()
            .map(|(l, _)| *l)
            .find(|l| l.is_finite())?
    };
    Some(le * 1000.0)
}

/// The previous scrape of every server, to compute rates.
#[derive(Default)]
pub struct Scraper {
    last: Mutex<HashMap<String, (Instant, Figures)>>,
}

impl Scraper {
    /// Scrapes `addr` (`host:port`) for server `id`; its rates since the
    /// previous scrape (zero on the first).
    pub async fn rates(&self, id: &str, addr: &str) -> Result<Rates, String> {
        let text = get_metrics(addr).await?;
        let now = parse(&text);
        let at = Instant::now();
        let mut last = self.last.lock().unwrap_or_else(|p| p.into_inner());
        let mut rates = Rates {
            requests_total: now.requests,
            pushes_total: now.pushes,
            ..Rates::default()
        };
        if let Some((then, before)) = last.get(id) {
            let secs = at.duration_since(*then).as_secs_f64();
            if secs > 0.0 {
                rates.requests_per_sec = ((now.requests - before.requests) / secs).max(0.0);
                rates.pushes_per_sec = ((now.pushes - before.pushes) / secs).max(0.0);
            }
            rates.p99_ms = p99(&before.buckets, &now.buckets);
        }
        last.insert(id.to_string(), (at, now));
        Ok(rates)
    }
}

/// `GET /metrics` from `addr`, bounded in time and size. A plain HTTP/1.1
/// exchange: the endpoint is ours and on the cluster's network, and no
/// HTTP client crate is in the tree.
async fn get_metrics(addr: &str) -> Result<String, String> {
    let fetch = async {
        let mut s = tokio::net::TcpStream::connect(addr)
            .await
            .map_err(|e| e.to_string())?;
        s.write_all(b"GET /metrics HTTP/1.1\r\nHost: shaddock\r\nConnection: close\r\n\r\n")
            .await
            .map_err(|e| e.to_string())?;
        let mut buf = Vec::new();
        s.take(MAX_SCRAPE)
            .read_to_end(&mut buf)
            .await
            .map_err(|e| e.to_string())?;
        Ok::<_, String>(buf)
    };
    let buf = tokio::time::timeout(SCRAPE_TIMEOUT, fetch)
        .await
        .map_err(|_| format!("GET http://{addr}/metrics timed out"))?
        .map_err(|e| format!("GET http://{addr}/metrics: {e}"))?;
    let text = String::from_utf8_lossy(&buf);
    let (head, body) = text
        .split_once("\r\n\r\n")
        .ok_or_else(|| format!("GET http://{addr}/metrics: no HTTP answer"))?;
    if !head.starts_with("HTTP/1.1 200") {
        return Err(format!(
            "GET http://{addr}/metrics answered {}",
            head.lines().next().unwrap_or("")
        ));
    }
    Ok(body.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    const PAGE: &str = r#"# TYPE shaddock_requests_total counter
shaddock_requests_total{route="a",server="c1"} 10
shaddock_requests_total{route="b",server="c1"} 5
shaddock_pushes_total{server="c1"} 40
shaddock_request_seconds_bucket{route="a",le="0.001"} 8
shaddock_request_seconds_bucket{route="a",le="0.01"} 10
shaddock_request_seconds_bucket{route="a",le="+Inf"} 10
shaddock_request_seconds_bucket{route="b",le="0.001"} 5
shaddock_request_seconds_bucket{route="b",le="0.01"} 5
shaddock_request_seconds_bucket{route="b",le="+Inf"} 5
"#;

    #[test]
    fn figures_sum_over_routes() {
        let f = parse(PAGE);
        assert_eq!(f.requests, 15.0);
        assert_eq!(f.pushes, 40.0);
        assert_eq!(
            f.buckets,
            vec![(0.001, 13.0), (0.01, 15.0), (f64::INFINITY, 15.0)]
        );
    }

    #[test]
    fn p99_is_the_bucket_of_the_new_observations() {
        let before = [(0.001, 13.0), (0.01, 15.0), (f64::INFINITY, 15.0)];
        // 100 new, all fast: 1 ms.
        let fast = [(0.001, 113.0), (0.01, 115.0), (f64::INFINITY, 115.0)];
        assert_eq!(p99(&before, &fast), Some(1.0));
        // 100 new, 2 slow: 10 ms.
        let slow = [(0.001, 111.0), (0.01, 115.0), (f64::INFINITY, 115.0)];
        assert_eq!(p99(&before, &slow), Some(10.0));
        assert_eq!(p99(&before, &before), None);
    }

    #[test]
    fn backends_count_handler_runs() {
        let page = "shaddock_handler_seconds_count{route=\"chat.send\"} 7\n\
                    shaddock_handler_seconds_bucket{route=\"chat.send\",le=\"0.001\"} 7\n";
        assert_eq!(parse(page).requests, 7.0);
    }
}
