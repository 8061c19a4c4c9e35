//! Reading a server's own figures from its `/metrics` (Prometheus text):
//! the address, one bounded `GET`, and the latency histogram `list` shows.
//!
//! The master reads the same figures an operator's Prometheus scrapes, so
//! `shaddock list` and a dashboard never disagree, and a server keeps no
//! second set of counters for the master.

use std::time::Duration;

use shaddock::config::ServerInfo;

/// A scrape that takes longer is given up (`list` shows `-`).
pub const SCRAPE_TIMEOUT: Duration = Duration::from_millis(800);

/// Largest `/metrics` answer read (a server with many routes and peers
/// renders tens of KB).
const MAX_BODY: u64 = 4 << 20;

/// `host:port` of a server's metrics endpoint: its `bindHost` (a wildcard
/// bind is reached on loopback), else `host`; `None` without `metricsPort`.
pub fn metrics_addr(info: &ServerInfo) -> Option<String> {
    let port = info.metrics_port?;
    let host = info.bind_host.clone().unwrap_or_else(|| info.host.clone());
    let host = match host.as_str() {
        "0.0.0.0" => "127.0.0.1".to_owned(),
        "::" | "[::]" => "[::1]".to_owned(),
        _ => host,
    };
    Some(format!("{host}:{port}"))
}

/// One histogram, summed over every label set but `le`: the total count
/// and the cumulative count per upper bound (ascending, `+Inf` last).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Histogram {
    pub count: f64,
    pub buckets: Vec<(f64, f64)>,
}

impl Histogram {
    /// What was recorded between `earlier` and `self` (a counter that went
    /// down means a restart: then everything in `self`).
    pub fn since(&self, earlier: &Histogram) -> Histogram {
        if self.count < earlier.count || self.buckets.len() != earlier.buckets.len() {
            return self.clone();
        }
        Histogram {
            count: self.count - earlier.count,
            buckets: self
                .buckets
                .iter()
                .zip(&earlier.buckets)
                .map(|((le, now), (_, then))| (*le, (now - then).max(0.0)))
                .collect(),
        }
    }

    /// The `q` quantile, interpolated inside its bucket as Prometheus's
    /// `histogram_quantile` does (the highest finite bound when it falls in
    /// `+Inf`); `None` without observations.
    pub fn quantile(&self, q: f64) -> Option<f64> {
        let total = self.buckets.last()?.1;
        if total <= 0.0 {
            return None;
        }
        let rank = q * total;
        let mut lower = (0.0, 0.0);
        for &(le, cumulative) in &self.buckets {
            if cumulative >= rank {
                if le.is_infinite() {
                    return Some(lower.0);
                }
                let in_bucket = cumulative - lower.1;
                if in_bucket <= 0.0 {
                    return Some(le);
                }
                return Some(lower.0 + (le - lower.0) * (rank - lower.1) / in_bucket);
            }
            lower = (le, cumulative);
        }
        Some(lower.0)
    }
}

/// The histogram `name` (`<name>_bucket` and `<name>_count` samples)
/// summed over its label sets.
pub fn histogram(text: &str, name: &str) -> Histogram {
    let bucket = format!("{name}_bucket");
    let count = format!("{name}_count");
    let mut h = Histogram::default();
    for (metric, labels, value) in text.lines().filter_map(sample) {
        if metric == count {
            h.count += value;
        } else if metric == bucket {
            let Some(le) = label(labels, "le").and_then(|v| match v {
                "+Inf" => Some(f64::INFINITY),
                v => v.parse::<f64>().ok(),
            }) else {
                continue;
            };
            match h.buckets.iter_mut().find(|(b, _)| *b == le) {
                Some((_, c)) => *c += value,
                None => h.buckets.push((le, value)),
            }
        }
    }
    h.buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
    h
}

/// `(metric, labels, value)` of one sample line (`None`: a comment, or
/// not a sample).
fn sample(line: &str) -> Option<(&str, &str, f64)> {
    if line.starts_with('#') {
        return None;
    }
    let (series, value) = line.trim_end().rsplit_once(' ')?;
    let value = value.parse().ok()?;
    match series.split_once('{') {
        Some((metric, rest)) => Some((metric, rest.strip_suffix('}')?, value)),
        None => Some((series, "", value)),
    }
}

/// The value of label `key` in `a="x",b="y"` (escapes kept as written:
/// only `le`, a number, is read).
fn label<'a>(labels: &'a str, key: &str) -> Option<&'a str> {
    let mut rest = labels;
    while !rest.is_empty() {
        let (k, after) = rest.split_once("=\"")?;
        // The value ends at the first quote that is not escaped (`\"`;
        // `\\` is an escaped backslash).
        let bytes = after.as_bytes();
        let mut end = 0;
        while end < bytes.len() && bytes[end] != b'"' {
            end += if bytes[end] == b'\\' { 2 } else { 1 };
        }
        if end >= bytes.len() {
            return None;
        }
        if k.trim_start_matches(',') == key {
            return Some(&after[..end]);
        }
        rest = &after[end + 1..];
    }
    None
}

/// `GET /metrics` from `addr` (the caller bounds the time).
pub async fn get_metrics(addr: &str) -> Result<String, String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let failed = |e: std::io::Error| format!("GET http://{addr}/metrics: {e}");
    let mut stream = tokio::net::TcpStream::connect(addr).await.map_err(failed)?;
    stream
        .write_all(b"GET /metrics HTTP/1.1\r\nHost: shaddock\r\nConnection: close\r\n\r\n")
        .await
        .map_err(failed)?;
    let mut raw = Vec::new();
    stream
        .take(MAX_BODY)
        .read_to_end(&mut raw)
        .await
        .map_err(failed)?;
    let text = String::from_utf8_lossy(&raw);
    let (head, body) = text
        .split_once("\r\n\r\n")
        .ok_or_else(|| format!("GET http://{addr}/metrics: no HTTP answer"))?;
    if !head.starts_with("HTTP/1.1 200") && !head.starts_with("HTTP/1.0 200") {
        let status = head.lines().next().unwrap_or_default();
        return Err(format!("GET http://{addr}/metrics answered {status:?}"));
    }
    Ok(body.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Two routes of one histogram, as metrics-exporter-prometheus renders
    /// them (other series around them).
    const SCRAPE: &str = r#"# TYPE shaddock_request_seconds histogram
shaddock_request_seconds_bucket{server="c-1",server_type="connector",route="chat.chatHandler.send",le="0.001"} 10
shaddock_request_seconds_bucket{server="c-1",server_type="connector",route="chat.chatHandler.send",le="0.005"} 90
shaddock_request_seconds_bucket{server="c-1",server_type="connector",route="chat.chatHandler.send",le="+Inf"} 100
shaddock_request_seconds_sum{server="c-1",server_type="connector",route="chat.chatHandler.send"} 0.3
shaddock_request_seconds_count{server="c-1",server_type="connector",route="chat.chatHandler.send"} 100
shaddock_request_seconds_bucket{server="c-1",server_type="connector",route="a \"quoted\" route",le="0.001"} 0
shaddock_request_seconds_bucket{server="c-1",server_type="connector",route="a \"quoted\" route",le="0.005"} 0
shaddock_request_seconds_bucket{server="c-1",server_type="connector",route="a \"quoted\" route",le="+Inf"} 0
shaddock_request_seconds_count{server="c-1",server_type="connector",route="a \"quoted\" route"} 0
shaddock_requests_total{server="c-1",server_type="connector",route="chat.chatHandler.send"} 100
"#;

    #[test]
    fn sums_a_histogram_over_routes() {
        let h = histogram(SCRAPE, "shaddock_request_seconds");
        assert_eq!(h.count, 100.0);
        assert_eq!(
            h.buckets,
            vec![(0.001, 10.0), (0.005, 90.0), (f64::INFINITY, 100.0)]
        );
        // Rank 99 lies in the +Inf bucket: the highest finite bound.
        assert_eq!(h.quantile(0.99), Some(0.005));
        // Rank 50 lies in (1 ms, 5 ms]: 40 of its 80 observations in.
        let p50 = h.quantile(0.5).unwrap();
        assert!((p50 - 0.003).abs() < 1e-9, "{p50}");
        assert_eq!(histogram(SCRAPE, "nothing_here"), Histogram::default());
        assert_eq!(histogram("garbage {\n\n}}} x", "x"), Histogram::default());
    }

    #[test]
    fn windows_and_restarts() {
        let before = histogram(SCRAPE, "shaddock_request_seconds");
        let mut after = before.clone();
        after.count += 20.0;
        for (le, c) in &mut after.buckets {
            if *le >= 0.001 {
                *c += 20.0;
            }
        }
        let window = after.since(&before);
        assert_eq!(window.count, 20.0);
        assert_eq!(window.quantile(0.99), Some(0.001 * 0.99));
        // A restarted server's counters start over: its whole figures.
        assert_eq!(before.since(&after), before);
        assert_eq!(Histogram::default().quantile(0.99), None);
    }

    #[test]
    fn addresses() {
        let mut info = ServerInfo {
            id: "c".into(),
            host: "10.0.0.5".into(),
            metrics_port: Some(9102),
            ..ServerInfo::default()
        };
        assert_eq!(metrics_addr(&info).as_deref(), Some("10.0.0.5:9102"));
        info.bind_host = Some("0.0.0.0".into());
        assert_eq!(metrics_addr(&info).as_deref(), Some("127.0.0.1:9102"));
        info.metrics_port = None;
        assert_eq!(metrics_addr(&info), None);
    }
}
