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
    /// Connects started per second during login.
    #[arg(long, default_value_t = 500.0)]
    pub connect_rate: f64,
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
    /// Connect every client to this connector directly (ws://host:port)
    /// instead of asking the gate per client.
    #[arg(long)]
    pub connector: Option<String>,
    /// Seconds to hold the connections after they are all open.
    #[arg(long, default_value_t = 60.0)]
    pub hold: f64,
    /// Seconds to let the servers settle before sampling RSS.
    #[arg(long, default_value_t = 3.0)]
    pub settle: f64,
}
