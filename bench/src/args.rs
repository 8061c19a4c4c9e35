//! Command-line interface.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// Load robot for Pomelo-compatible chat servers (Shaddock's chat app or
/// Pomelo's chatofpomelo): it logs in through the gate like the browser
/// client and measures pushes, latencies, and the servers' CPU and memory.
#[derive(Debug, Parser)]
#[command(name = "shaddock-bench", version)]
pub struct Cli {
    #[command(subcommand)]
    pub scenario: Scenario,
}

#[derive(Debug, Subcommand)]
pub enum Scenario {
    /// C clients in R rooms, each sending r chat messages/s to its room.
    Chat(ChatArgs),
    /// C connections that handshake and only heartbeat: memory per connection.
    Idle(IdleArgs),
    /// A witness pair chatting alone, then under a flood of clients far over
    /// their request budgets: refusals per second and the witness's p99.
    Flood(FloodArgs),
    /// C users logging in at once (gate → connector → enter), unpaced:
    /// time to log everyone in, logins/s, latency, errors by kind.
    Storm(StormArgs),
    /// Draw push p99 and server CPU per push against offered pushes/s from
    /// the ramp JSON files of a side_by_side.sh run folder (PNG).
    Plot(PlotArgs),
}

#[derive(Debug, Args)]
pub struct FloodArgs {
    #[command(flatten)]
    pub common: Common,
    /// Flooding clients (each logs in again after a kick).
    #[arg(long, default_value_t = 8)]
    pub flooders: usize,
    /// Requests each flooder keeps in flight at once.
    #[arg(long, default_value_t = 200)]
    pub burst: usize,
    /// Witness messages per second.
    #[arg(long, default_value_t = 20.0)]
    pub witness_rate: f64,
    /// Seconds of each phase (alone, flooded).
    #[arg(long, default_value_t = 10.0)]
    pub seconds: f64,
}

/// Options every scenario shares.
#[derive(Debug, Args)]
pub struct Common {
    /// Gate WebSocket address.
    #[arg(long, default_value = "ws://127.0.0.1:3014")]
    pub gate: String,
    /// Name of the system under test, copied into the report.
    #[arg(long, default_value = "server")]
    pub label: String,
    /// Server pids to sample for CPU and RSS (comma-separated).
    #[arg(long, value_delimiter = ',')]
    pub pids: Vec<u32>,
    /// Sample every process whose command line contains this text.
    #[arg(long)]
    pub pid_match: Option<String>,
    /// Find the servers from this servers.json (processes naming its ids and
    /// running in the folder that holds config/servers.json).
    #[arg(long)]
    pub topology: Option<PathBuf>,
    /// Environment of --topology.
    #[arg(long, default_value = "production")]
    pub env: String,
    /// Concurrent connects during login.
    #[arg(long, default_value_t = 32)]
    pub connect_concurrency: usize,
    /// Connects started per second during login (0: no pacing).
    #[arg(long, default_value_t = 500.0)]
    pub connect_rate: f64,
    /// Local addresses to connect from, round robin per client
    /// (comma-separated, e.g. 127.0.0.2,127.0.0.3). Each source address has
    /// only the ephemeral port range to offer (~28 000 ports), so tens of
    /// thousands of connections need several; default: the kernel's choice.
    #[arg(long, value_delimiter = ',')]
    pub source_addrs: Vec<std::net::IpAddr>,
    /// Timeout of every connect and request, seconds.
    #[arg(long, default_value_t = 10.0)]
    pub timeout: f64,
    /// Also write the JSON report to this file.
    #[arg(long)]
    pub json_out: Option<PathBuf>,
    /// No progress bars (they are hidden anyway when stderr is not a terminal).
    #[arg(long)]
    pub quiet: bool,
}

#[derive(Debug, Args)]
pub struct ChatArgs {
    #[command(flatten)]
    pub common: Common,
    /// Clients (C).
    #[arg(short = 'c', long, default_value_t = 1000)]
    pub clients: usize,
    /// Rooms (R); client i joins room i mod R.
    #[arg(short = 'r', long, default_value_t = 20)]
    pub rooms: usize,
    /// Messages per second per client (r); each is pushed to the whole room.
    #[arg(long, default_value_t = 1.0)]
    pub rate: f64,
    /// Measured seconds (D), per step with --ramp.
    #[arg(short = 'd', long, default_value_t = 10.0)]
    pub duration: f64,
    /// Unmeasured seconds at the first rate before measuring.
    #[arg(long, default_value_t = 2.0)]
    pub warmup: f64,
    /// Step the rate up through --rates; report the highest step holding
    /// delivery >= --min-delivery and p99 <= --max-p99-ms.
    #[arg(long)]
    pub ramp: bool,
    /// Per-client rates of the ramp steps.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "1,2,3,4,5,6,7,8,10,12,14,16,20,24"
    )]
    pub rates: Vec<f64>,
    /// Keep ramping after this many failed steps in a row.
    #[arg(long, default_value_t = 1)]
    pub ramp_failures: usize,
    /// Pass criterion of a step: push p99 at most this (ms).
    #[arg(long, default_value_t = 50.0)]
    pub max_p99_ms: f64,
    /// Pass criterion of a step: delivered / expected at least this.
    #[arg(long, default_value_t = 0.999)]
    pub min_delivery: f64,
    /// After a step, wait at most this long (s) for late pushes.
    #[arg(long, default_value_t = 5.0)]
    pub drain: f64,
    /// Requests in flight per client before sends are skipped (counted).
    #[arg(long, default_value_t = 64)]
    pub max_inflight: usize,
}

#[derive(Debug, Args)]
pub struct IdleArgs {
    #[command(flatten)]
    pub common: Common,
    /// Connections (C).
    #[arg(short = 'c', long, default_value_t = 5000)]
    pub clients: usize,
    /// Connect every client directly to these connectors (ws://host:port,
    /// comma-separated; client i goes to the (i mod n)-th) instead of asking
    /// the gate per client.
    #[arg(long, value_delimiter = ',')]
    pub connector: Vec<String>,
    /// Seconds to hold the connections after they are all open.
    #[arg(long, default_value_t = 60.0)]
    pub hold: f64,
    /// Seconds to let the servers settle before sampling RSS.
    #[arg(long, default_value_t = 3.0)]
    pub settle: f64,
    /// When every connect is done (and settled), write one JSON line
    /// (connected, errors) to this file: a coordinator running several
    /// robots learns that this one is ready.
    #[arg(long)]
    pub ready_file: Option<PathBuf>,
    /// After --ready-file, wait until this file exists before the hold
    /// starts, so several robots hold their connections over the same
    /// window (bounded by --go-timeout).
    #[arg(long, requires = "ready_file")]
    pub go_file: Option<PathBuf>,
    /// Longest wait for --go-file, seconds; then the robot fails.
    #[arg(long, default_value_t = 900.0)]
    pub go_timeout: f64,
}

#[derive(Debug, Args)]
pub struct StormArgs {
    #[command(flatten)]
    pub common: Common,
    /// Users (C), each logging in once: gate queryEntry, connector, enter.
    #[arg(short = 'c', long, default_value_t = 10_000)]
    pub clients: usize,
    /// Rooms; user i enters room i mod R (default: rooms of 50 at 10 000).
    #[arg(short = 'r', long, default_value_t = 200)]
    pub rooms: usize,
    /// Logins in flight at once; no other pacing (the point is the storm).
    #[arg(long, default_value_t = 1000)]
    pub concurrency: usize,
    /// Seconds to keep every logged-in user connected after the storm,
    /// counting disconnects.
    #[arg(long, default_value_t = 2.0)]
    pub hold: f64,
    /// Pass criterion: every user logged in within this many seconds.
    #[arg(long, default_value_t = 10.0)]
    pub max_seconds: f64,
}

#[derive(Debug, Args)]
pub struct PlotArgs {
    /// A side_by_side.sh run folder holding <system>-ramp-<n>.json files.
    pub dir: PathBuf,
    /// Output PNG (default: <dir>/plot.png).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// TrueType font for the labels (default: the first of DejaVu Sans,
    /// Liberation Sans, FreeSans found under /usr/share/fonts).
    #[arg(long)]
    pub font: Option<PathBuf>,
}
