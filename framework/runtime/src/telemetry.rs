//! Metrics and health: Prometheus text on `/metrics`, `/healthz` and
//! `/readyz` on one HTTP port per server (servers.json `metricsPort`).
//!
//! The figures are kept with the `metrics` crate and rendered by
//! `metrics-exporter-prometheus` (no hand-written format). The recorder is
//! process-wide (one server per process): [`install`] sets it before the app
//! is built; without it (unit tests, an app started without the launcher)
//! every handle is a no-op.
//!
//! Cost on the hot path: every per-push and per-frame figure is a
//! [`Counter`] handle registered once (in [`Metrics`], or lazily per route
//! / per peer in a `OnceLock`), so a push pays one atomic add per counter:
//! no lock, no allocation, no label lookup. Names and labels are listed in
//! `docs/observability.md`.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock, RwLock};
use std::time::{Duration, Instant};

use metrics::{Counter, Gauge, Histogram, counter, gauge, histogram};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

/// Buckets of every `*_seconds` histogram: 100 µs … 10 s.
const BUCKETS: &[f64] = &[
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0, 10.0,
];

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
static METRICS: OnceLock<Metrics> = OnceLock::new();
static HEALTH: Health = Health {
    serving: AtomicBool::new(false),
    draining: AtomicBool::new(false),
};

/// Installs the process's recorder, with `server` and `server_type` as
/// labels of every series. Call before anything records (the launcher does,
/// first thing). A second call keeps the first recorder.
pub fn install(server: &str, server_type: &str) -> Result<(), String> {
    if HANDLE.get().is_some() {
        return Ok(());
    }
    let handle = PrometheusBuilder::new()
        .add_global_label("server", server)
        .add_global_label("server_type", server_type)
        .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), BUCKETS)
        .map_err(|e| e.to_string())?
        .install_recorder()
        .map_err(|e| format!("cannot install the metrics recorder: {e}"))?;
    let _ = HANDLE.set(handle);
    Ok(())
}

/// The process's figures (registered on first use).
pub fn m() -> &'static Metrics {
    METRICS.get_or_init(Metrics::new)
}

/// Readiness of this process, for `/readyz`.
pub struct Health {
    serving: AtomicBool,
    draining: AtomicBool,
}

/// The process's readiness flags.
pub fn health() -> &'static Health {
    &HEALTH
}

impl Health {
    /// Every listener is bound and the server joined the cluster.
    pub fn set_serving(&self) {
        self.serving.store(true, Ordering::SeqCst);
    }
    /// Shutdown began: stop sending traffic here.
    pub fn set_draining(&self) {
        self.draining.store(true, Ordering::SeqCst);
    }
    /// Serving and not draining.
    pub fn ready(&self) -> bool {
        self.serving.load(Ordering::SeqCst) && !self.draining.load(Ordering::SeqCst)
    }
    fn state(&self) -> &'static str {
        match (
            self.serving.load(Ordering::SeqCst),
            self.draining.load(Ordering::SeqCst),
        ) {
            (_, true) => "draining",
            (true, false) => "ready",
            (false, false) => "starting",
        }
    }
}

/// KICK reasons with their own label value; any other reason is `other`.
const KICK_REASONS: &[(&str, &str)] = &[
    ("outbound queue overflow", "overflow"),
    ("write timeout", "write_timeout"),
    ("message too large", "too_large"),
    ("idle timeout", "idle"),
    ("rate limit exceeded", "rate_limit"),
    ("server shutdown", "shutdown"),
    ("attack", "attack"),
];

/// Every per-process figure: handles registered once.
pub struct Metrics {
    pub connections_total: Counter,
    pub connections_open: Gauge,
    pub connections_refused: Counter,
    pub handshakes_ok: Counter,
    pub handshakes_failed: Counter,
    /// Push messages queued to client sessions (one per receiver).
    pub pushes: Counter,
    /// Bytes of those push frames.
    pub push_bytes: Counter,
    /// Every frame queued to a client (responses, pushes, handshakes).
    pub frames_out: Counter,
    pub bytes_out: Counter,
    /// Frames dropped because a client's outbound queue was full.
    pub outbound_drops: Counter,
    kicks: Vec<(&'static str, Counter)>,
    kicks_other: Counter,
    pub refused_rate: Counter,
    pub refused_inflight: Counter,
    /// Sharded channels reconciled after a membership change (hand-offs).
    pub handoffs: Counter,
    /// Channels this server held after each of those reconciles (summed).
    pub handoff_channels: Counter,
    cpu: Gauge,
    rss: Gauge,
    /// Kind → peer → figures.
    calls: RwLock<HashMap<&'static str, ByPeer>>,
}

impl Metrics {
    fn new() -> Self {
        describe();
        let kick = |r: &'static str| counter!("shaddock_kicks_total", "reason" => r);
        Metrics {
            connections_total: counter!("shaddock_connections_total"),
            connections_open: gauge!("shaddock_connections"),
            connections_refused: counter!("shaddock_connections_refused_total"),
            handshakes_ok: counter!("shaddock_handshakes_total", "result" => "ok"),
            handshakes_failed: counter!("shaddock_handshakes_total", "result" => "failed"),
            pushes: counter!("shaddock_pushes_total"),
            push_bytes: counter!("shaddock_push_bytes_total"),
            frames_out: counter!("shaddock_client_frames_out_total"),
            bytes_out: counter!("shaddock_client_bytes_out_total"),
            outbound_drops: counter!("shaddock_outbound_drops_total"),
            kicks: KICK_REASONS.iter().map(|(_, l)| (*l, kick(l))).collect(),
            kicks_other: kick("other"),
            refused_rate: counter!("shaddock_budget_refusals_total", "budget" => "rate"),
            refused_inflight: counter!("shaddock_budget_refusals_total", "budget" => "inflight"),
            handoffs: counter!("shaddock_handoffs_total"),
            handoff_channels: counter!("shaddock_handoff_channels_total"),
            cpu: gauge!("process_cpu_seconds_total"),
            rss: gauge!("process_resident_memory_bytes"),
            calls: RwLock::default(),
        }
    }

    /// Counts one KICK (labelled by a known reason, else `other`).
    pub fn kick(&self, reason: &str) {
        let label = KICK_REASONS
            .iter()
            .find(|(prefix, _)| reason.starts_with(prefix))
            .map(|(_, l)| *l);
        match label.and_then(|l| self.kicks.iter().find(|(k, _)| *k == l)) {
            Some((_, c)) => c.increment(1),
            None => self.kicks_other.increment(1),
        }
    }

    /// The figures of calls of kind `remote` (`forward`, `push`,
    /// `broadcast`, `remote` for a typed remote) to server `peer`:
    /// registered on first use (a read lock and a map lookup per call).
    pub fn calls(&self, remote: &'static str, peer: &str) -> Arc<CallMetrics> {
        let known = self.calls.read().unwrap_or_else(|e| e.into_inner());
        if let Some(m) = known.get(remote).and_then(|p| p.get(peer)) {
            return m.clone();
        }
        drop(known);
        let mut map = self.calls.write().unwrap_or_else(|e| e.into_inner());
        map.entry(remote)
            .or_default()
            .entry(peer.into())
            .or_insert_with(|| {
                let labels = [("remote", remote.to_string()), ("peer", peer.to_string())];
                Arc::new(CallMetrics {
                    calls: counter!("shaddock_cluster_calls_total", &labels),
                    errors: counter!("shaddock_cluster_call_errors_total", &labels),
                    seconds: histogram!("shaddock_cluster_call_seconds", &labels),
                })
            })
            .clone()
    }

    fn sample_process(&self) {
        if let Some((cpu, rss)) = process_usage() {
            self.cpu.set(cpu);
            self.rss.set(rss);
        }
    }
}

/// The call figures of one kind, by peer id.
type ByPeer = HashMap<Box<str>, Arc<CallMetrics>>;

/// Calls to one peer of one kind.
pub struct CallMetrics {
    calls: Counter,
    errors: Counter,
    seconds: Histogram,
}

impl CallMetrics {
    /// Records one call that started at `started`.
    pub fn record(&self, started: Instant, ok: bool) {
        self.calls.increment(1);
        if !ok {
            self.errors.increment(1);
        }
        self.seconds.record(started.elapsed().as_secs_f64());
    }
}

/// The figures of one route, registered on first use (kept in the
/// handler registry's entry: no lookup per request).
#[derive(Default)]
pub struct RouteMetrics {
    /// A frontend's figures of client requests.
    inner: OnceLock<RouteHandles>,
    /// The figure of the server that runs the handler.
    handled: OnceLock<Histogram>,
}

struct RouteHandles {
    requests: Counter,
    request_seconds: Histogram,
    codes: [(u16, Counter); 4],
    code_other: Counter,
}

/// Response codes with their own label value; others are `other`.
const CODES: [u16; 4] = [200, 429, 500, 501];

impl RouteMetrics {
    /// Figures registered on first use.
    pub const fn new() -> Self {
        RouteMetrics {
            inner: OnceLock::new(),
            handled: OnceLock::new(),
        }
    }

    fn get(&self, route: &str) -> &RouteHandles {
        self.inner.get_or_init(|| {
            let route = route.to_string();
            let code = |c: &str| {
                counter!("shaddock_responses_total", "route" => route.clone(), "code" => c.to_string())
            };
            RouteHandles {
                requests: counter!("shaddock_requests_total", "route" => route.clone()),
                request_seconds: histogram!("shaddock_request_seconds", "route" => route.clone()),
                codes: CODES.map(|c| (c, code(&c.to_string()))),
                code_other: code("other"),
            }
        })
    }

    /// A client request (or notify) arrived on this frontend.
    pub fn request(&self, route: &str) {
        self.get(route).requests.increment(1);
    }

    /// The frontend answered it (`response` is the JSON body) after
    /// `started`: counts the response by its `code` and records the time.
    pub fn response(&self, route: &str, started: Instant, response: Option<&[u8]>) {
        let h = self.get(route);
        h.request_seconds.record(started.elapsed().as_secs_f64());
        let Some(body) = response else { return };
        let code = response_code(body);
        match h.codes.iter().find(|(c, _)| Some(*c) == code) {
            Some((_, counter)) => counter.increment(1),
            None => h.code_other.increment(1),
        }
    }

    /// This server ran the route's handler (filters included) in `elapsed`.
    pub fn handled(&self, route: &str, elapsed: Duration) {
        let handled = self
            .handled
            .get_or_init(|| histogram!("shaddock_handler_seconds", "route" => route.to_string()));
        handled.record(elapsed.as_secs_f64());
    }
}

/// The top-level `code` of a JSON response body (200 when it has none:
/// a handler's plain success).
fn response_code(body: &[u8]) -> Option<u16> {
    #[derive(serde::Deserialize)]
    struct Code {
        code: Option<serde_json::Value>,
    }
    match serde_json::from_slice::<Code>(body) {
        Ok(Code { code: None }) => Some(200),
        Ok(Code { code: Some(v) }) => v.as_u64().and_then(|c| u16::try_from(c).ok()),
        Err(_) => None,
    }
}

fn describe() {
    use metrics::{Unit, describe_counter, describe_gauge, describe_histogram};
    describe_counter!("shaddock_connections_total", "client connections accepted");
    describe_gauge!("shaddock_connections", "client connections open");
    describe_counter!(
        "shaddock_connections_refused_total",
        "client connections refused (max-connections, per-address limit)"
    );
    describe_counter!(
        "shaddock_handshakes_total",
        "Pomelo handshakes answered, by result"
    );
    describe_counter!(
        "shaddock_requests_total",
        "client requests and notifies received by this frontend, by route"
    );
    describe_counter!(
        "shaddock_responses_total",
        "responses sent to clients by this frontend, by route and code"
    );
    describe_histogram!(
        "shaddock_request_seconds",
        Unit::Seconds,
        "time from a client message to its response on the frontend (forwarding included)"
    );
    describe_histogram!(
        "shaddock_handler_seconds",
        Unit::Seconds,
        "time in a route's filters and handler on the server that runs it"
    );
    describe_counter!(
        "shaddock_cluster_calls_total",
        "calls to other servers, by kind (forward, push, broadcast, remote) and peer"
    );
    describe_counter!(
        "shaddock_cluster_call_errors_total",
        "failed calls to other servers"
    );
    describe_histogram!(
        "shaddock_cluster_call_seconds",
        Unit::Seconds,
        "latency of calls to other servers"
    );
    describe_counter!(
        "shaddock_pushes_total",
        "push messages queued to clients (one per receiver)"
    );
    describe_counter!(
        "shaddock_push_bytes_total",
        Unit::Bytes,
        "bytes of push frames queued to clients"
    );
    describe_counter!(
        "shaddock_client_frames_out_total",
        "frames queued to clients (responses, pushes, handshakes, heartbeats)"
    );
    describe_counter!(
        "shaddock_client_bytes_out_total",
        Unit::Bytes,
        "bytes of frames queued to clients"
    );
    describe_counter!(
        "shaddock_outbound_drops_total",
        "frames dropped because a client's outbound queue was full"
    );
    describe_counter!("shaddock_kicks_total", "clients kicked, by reason");
    describe_counter!(
        "shaddock_budget_refusals_total",
        "client messages refused by the request budget"
    );
    describe_counter!(
        "shaddock_handoffs_total",
        "sharded-channel reconciles after a membership change"
    );
    describe_counter!(
        "shaddock_handoff_channels_total",
        "channels this server held after each of those reconciles (summed)"
    );
    describe_gauge!(
        "process_cpu_seconds_total",
        Unit::Seconds,
        "user + system CPU time of this process"
    );
    describe_gauge!(
        "process_resident_memory_bytes",
        Unit::Bytes,
        "resident set size of this process"
    );
}

/// CPU seconds (user + system) and RSS bytes of this process, from /proc.
fn process_usage() -> Option<(f64, f64)> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    let after = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = after.split_whitespace().collect();
    // Fields 14 and 15 (utime, stime) are at 11 and 12 after the state.
    let ticks: f64 = fields.get(11)?.parse::<f64>().ok()? + fields.get(12)?.parse::<f64>().ok()?;
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: f64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    Some((ticks / USER_HZ, pages * 4096.0))
}

/// Clock ticks per second of /proc's CPU times (`USER_HZ`, 100 on every
/// Linux architecture Shaddock runs on).
const USER_HZ: f64 = 100.0;

/// The Prometheus text of this process (CPU and RSS sampled now).
pub fn render() -> String {
    m().sample_process();
    HANDLE
        .get()
        .map(PrometheusHandle::render)
        .unwrap_or_default()
}

/// Serves `/metrics`, `/healthz` and `/readyz` on `addr` until the process
/// ends. Binding happens here (an error names the address); serving runs
/// in a spawned task.
pub async fn serve(addr: &str) -> std::io::Result<SocketAddr> {
    use axum::http::StatusCode;
    use axum::routing::get;
    let listener = tokio::net::TcpListener::bind(addr).await.map_err(|e| {
        std::io::Error::new(
            e.kind(),
            format!("cannot listen on {addr} (metricsPort): {e}"),
        )
    })?;
    let local = listener.local_addr()?;
    let router = axum::Router::new()
        .route(
            "/metrics",
            get(|| async {
                (
                    [("content-type", "text/plain; version=0.0.4; charset=utf-8")],
                    render(),
                )
            }),
        )
        .route("/healthz", get(|| async { "ok\n" }))
        .route(
            "/readyz",
            get(|| async {
                let h = health();
                let code = if h.ready() {
                    StatusCode::OK
                } else {
                    StatusCode::SERVICE_UNAVAILABLE
                };
                (code, format!("{}\n", h.state()))
            }),
        );
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, router).await {
            tracing::warn!(error = %e, "metrics endpoint stopped");
        }
    });
    // Histograms are drained into their buckets by the handle's upkeep.
    tokio::spawn(async {
        let mut tick = tokio::time::interval(Duration::from_secs(5));
        loop {
            tick.tick().await;
            if let Some(h) = HANDLE.get() {
                h.run_upkeep();
            }
        }
    });
    Ok(local)
}
