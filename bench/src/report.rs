//! What the robot prints: a human table, then exactly one JSON line (the
//! last line of stdout) for scripts.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::procs::Proc;

/// Figures of one measured step of the chat scenario.
#[derive(Debug, Clone, Serialize)]
pub struct StepReport {
    /// Messages per second per client.
    pub rate: f64,
    pub duration_s: f64,
    /// Time spent waiting for late pushes after the step.
    pub drain_s: f64,
    pub sends: u64,
    /// Sends not made because the client had too many requests in flight.
    pub sends_skipped: u64,
    pub send_errors: u64,
    pub send_timeouts: u64,
    pub pushes_expected: u64,
    pub pushes_delivered: u64,
    pub delivery: f64,
    /// Pushes delivered per second of the step.
    pub pushes_per_s: f64,
    /// Pushes that arrived out of order or twice (per sender and receiver).
    pub pushes_reordered: u64,
    pub push_p50_ms: f64,
    pub push_p90_ms: f64,
    pub push_p99_ms: f64,
    pub push_max_ms: f64,
    pub req_p50_ms: f64,
    pub req_p99_ms: f64,
    pub req_max_ms: f64,
    pub disconnects: u64,
    pub server_cpu_s: f64,
    /// Server CPU per push delivered, µs.
    pub server_cpu_us_per_push: f64,
    /// Server CPU use during the step, in cores.
    pub server_cores: f64,
    pub robot_cpu_s: f64,
    pub robot_cores: f64,
    pub server_rss_kb: u64,
    /// Server CPU per process during the step, seconds.
    pub server_cpu_by_process: BTreeMap<String, f64>,
    /// The machine's 1-minute load average at the end of the step.
    pub loadavg_1m: f64,
    pub pass: bool,
}

/// Figures of the idle scenario.
#[derive(Debug, Clone, Serialize)]
pub struct IdleReport {
    /// The connector(s) connected to, comma-separated.
    pub target: String,
    /// Source addresses the connections came from (empty: the kernel's choice).
    pub source_addrs: Vec<String>,
    pub connected: u64,
    pub connect_errors: u64,
    pub connect_s: f64,
    pub hold_s: f64,
    pub disconnects: u64,
    pub rss_before_kb: u64,
    pub rss_connected_kb: u64,
    pub rss_end_kb: u64,
    /// (RSS with every connection open − RSS before) / connections, KiB.
    pub rss_per_conn_kb: f64,
    /// Same at the end of the hold.
    pub rss_per_conn_end_kb: f64,
    pub server_cpu_s: f64,
    pub robot_rss_kb: u64,
    /// The robot's own CPU over the whole run (connects, hold, close).
    pub robot_cpu_s: f64,
    /// The robot's CPU during the hold (heartbeats only), in cores.
    pub robot_cores_hold: f64,
}

/// Figures of the login storm.
#[derive(Debug, Clone, Serialize)]
pub struct StormReport {
    pub users: u64,
    pub logged_in: u64,
    pub errors: u64,
    /// Failed logins by `"<step> <timeout|refused|error>"`.
    pub errors_by_kind: BTreeMap<String, u64>,
    pub first_error: Option<String>,
    pub concurrency: usize,
    /// From the first connect to the last login done (success or failure).
    pub total_s: f64,
    /// Successful logins per second of `total_s`.
    pub logins_per_s: f64,
    /// One login: gate connect + queryEntry + connector connect + enter.
    pub login_p50_ms: f64,
    pub login_p90_ms: f64,
    pub login_p99_ms: f64,
    pub login_max_ms: f64,
    /// Server CPU during the storm (all watched processes), seconds and cores.
    pub server_cpu_s: f64,
    pub server_cores: f64,
    /// Server CPU per successful login, ms.
    pub server_cpu_ms_per_login: f64,
    /// Server CPU per process during the storm, seconds.
    pub server_cpu_by_process: BTreeMap<String, f64>,
    pub server_rss_before_kb: u64,
    pub server_rss_after_kb: u64,
    pub robot_cpu_s: f64,
    pub robot_cores: f64,
    /// Logged-in users that lost their connection during the hold.
    pub disconnects: u64,
    pub hold_s: f64,
    pub max_seconds: f64,
    /// Every user in within `max_seconds`, no error, no disconnect.
    pub pass: bool,
}

/// The whole run.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub bench: &'static str,
    pub scenario: &'static str,
    pub label: String,
    pub gate: String,
    pub clients: usize,
    pub rooms: usize,
    pub processes: Vec<Proc>,
    pub login_errors: u64,
    pub login_s: f64,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub steps: Vec<StepReport>,
    /// With --ramp: the highest passing step.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub best: Option<StepReport>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub idle: Option<IdleReport>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub storm: Option<StormReport>,
    /// What else the machine was doing (filled in by `main`).
    pub machine: Machine,
    pub notes: Vec<String>,
}

/// The machine around the run: load average (1, 5, 15 min) before and
/// after, and its cores.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Machine {
    pub loadavg_before: [f64; 3],
    pub loadavg_after: [f64; 3],
    pub cores: usize,
}

impl Report {
    pub fn print(&self) {
        println!(
            "\n{} / {} — {} clients{}, gate {}, {} server process(es){}",
            self.label,
            self.scenario,
            self.clients,
            if self.rooms > 0 {
                format!(", {} rooms", self.rooms)
            } else {
                String::new()
            },
            self.gate,
            self.processes.len(),
            if self.login_errors > 0 {
                format!(", {} login errors", self.login_errors)
            } else {
                String::new()
            },
        );
        if !self.steps.is_empty() {
            println!(
                "{:>6} {:>9} {:>9} {:>8} {:>7} {:>7} {:>7} {:>7} {:>7} {:>7} {:>7} {:>6} {:>5} {:>8} {:>4}",
                "rate",
                "pushes/s",
                "expected",
                "deliv%",
                "p50ms",
                "p90ms",
                "p99ms",
                "maxms",
                "req99",
                "srvCPU",
                "µs/push",
                "robot",
                "errs",
                "RSS MB",
                "ok"
            );
            for s in &self.steps {
                println!(
                    "{:>6.2} {:>9.0} {:>9} {:>8.3} {:>7.2} {:>7.2} {:>7.2} {:>7.1} {:>7.2} {:>7.2} {:>7.2} {:>6.2} {:>5} {:>8.1} {:>4}",
                    s.rate,
                    s.pushes_per_s,
                    s.pushes_expected,
                    s.delivery * 100.0,
                    s.push_p50_ms,
                    s.push_p90_ms,
                    s.push_p99_ms,
                    s.push_max_ms,
                    s.req_p99_ms,
                    s.server_cores,
                    s.server_cpu_us_per_push,
                    s.robot_cores,
                    s.send_errors + s.send_timeouts + s.disconnects,
                    s.server_rss_kb as f64 / 1024.0,
                    if s.pass { "yes" } else { "NO" }
                );
            }
            println!("(srvCPU and robot in cores; errs = send errors + timeouts + disconnects)");
            if let Some(b) = &self.best {
                println!(
                    "highest passing step: {:.0} pushes/s (rate {}/s per client, p99 {:.2} ms, delivery {:.3} %)",
                    b.pushes_per_s,
                    b.rate,
                    b.push_p99_ms,
                    b.delivery * 100.0
                );
            }
        }
        if let Some(i) = &self.idle {
            println!(
                "{} connections to {} ({} errors) in {:.1} s, held {:.0} s, {} disconnects",
                i.connected, i.target, i.connect_errors, i.connect_s, i.hold_s, i.disconnects
            );
            println!(
                "server RSS {:.1} MB → {:.1} MB (open) → {:.1} MB (end): {:.2} KB per connection ({:.2} at the end)",
                i.rss_before_kb as f64 / 1024.0,
                i.rss_connected_kb as f64 / 1024.0,
                i.rss_end_kb as f64 / 1024.0,
                i.rss_per_conn_kb,
                i.rss_per_conn_end_kb
            );
            println!(
                "robot CPU {:.1} s in all, {:.2} cores during the hold",
                i.robot_cpu_s, i.robot_cores_hold
            );
        }
        if let Some(s) = &self.storm {
            println!(
                "{}/{} users logged in ({} errors) in {:.2} s: {:.0} logins/s, {} in flight at most",
                s.logged_in, s.users, s.errors, s.total_s, s.logins_per_s, s.concurrency
            );
            println!(
                "login latency p50 {:.1} ms, p90 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
                s.login_p50_ms, s.login_p90_ms, s.login_p99_ms, s.login_max_ms
            );
            println!(
                "server CPU {:.2} s ({:.2} cores, {:.2} ms per login), robot {:.2} s ({:.2} cores); {} disconnects in {:.0} s after",
                s.server_cpu_s,
                s.server_cores,
                s.server_cpu_ms_per_login,
                s.robot_cpu_s,
                s.robot_cores,
                s.disconnects,
                s.hold_s
            );
            for (kind, n) in &s.errors_by_kind {
                println!("errors: {n} × {kind}");
            }
            println!(
                "{} (all in ≤ {} s, no errors, no disconnects)",
                if s.pass { "PASS" } else { "FAIL" },
                s.max_seconds
            );
        }
        println!(
            "machine: load average {:.2} before, {:.2} after (1 min), {} cores",
            self.machine.loadavg_before[0], self.machine.loadavg_after[0], self.machine.cores
        );
        for n in &self.notes {
            println!("note: {n}");
        }
        println!(
            "{}",
            serde_json::to_string(self).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"))
        );
    }
}
