//! `shaddock-bench`: the load robot. See `docs/benchmarks.md` for the method
//! and `shaddock-bench chat --help` / `idle --help` / `storm --help` for the
//! options; `shaddock-bench plot <run dir>` draws a side-by-side run.
//!
//! It speaks the Pomelo client protocol through `shaddock_client`, so it
//! measures any Pomelo-compatible chat server the same way: ours or Pomelo.
//! Output: progress bars on stderr (terminals only), a table on stdout, and
//! as the last stdout line one JSON object for scripts.

mod args;
mod chat;
mod flood;
mod hist;
mod idle;
mod limits;
mod login;
mod plot;
mod procs;
mod ramp_series;
mod report;
mod storm;

use std::process::ExitCode;

use clap::Parser;

use args::{Cli, Common, Scenario};

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("shaddock-bench: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("shaddock-bench: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    if let Scenario::Plot(a) = &cli.scenario {
        plot::run(a)?;
        return Ok(());
    }
    if let Scenario::Flood(a) = &cli.scenario {
        let report = flood::run(a).await?;
        if let Some(path) = &a.common.json_out {
            std::fs::write(path, report.to_string() + "\n")
                .map_err(|e| anyhow::anyhow!("cannot write {}: {e}", path.display()))?;
        }
        return Ok(());
    }
    let (common, clients) = match &cli.scenario {
        Scenario::Flood(_) | Scenario::Plot(_) => unreachable!("handled above"),
        Scenario::Chat(a) => (&a.common, a.clients),
        Scenario::Idle(a) => (&a.common, a.clients),
        Scenario::Storm(a) => (&a.common, a.clients),
    };
    let mut notes = Vec::new();
    // One socket per client, a gate socket during login, slack for the rest.
    if let Some(note) = limits::ensure_open_files(clients as u64 + 256)? {
        eprintln!("shaddock-bench: {note}");
        notes.push(note);
    }
    let procs = find_procs(common)?;
    let loadavg_before = procs::loadavg();
    let mut report = match &cli.scenario {
        Scenario::Flood(_) | Scenario::Plot(_) => unreachable!("handled above"),
        Scenario::Chat(a) => chat::run(a, &procs, notes).await,
        Scenario::Idle(a) => idle::run(a, &procs, notes).await?,
        Scenario::Storm(a) => storm::run(a, &procs, notes).await,
    };
    report.machine = report::Machine {
        loadavg_before,
        loadavg_after: procs::loadavg(),
        cores: std::thread::available_parallelism().map_or(0, |n| n.get()),
    };
    report.print();
    if let Some(path) = &common.json_out {
        std::fs::write(path, serde_json::to_string(&report)? + "\n")
            .map_err(|e| anyhow::anyhow!("cannot write {}: {e}", path.display()))?;
    }
    Ok(())
}

fn find_procs(c: &Common) -> anyhow::Result<Vec<procs::Proc>> {
    let mut found = procs::from_pids(&c.pids)?;
    if let Some(needle) = &c.pid_match {
        found.extend(procs::matching(needle));
    }
    if let Some(path) = &c.topology {
        let t = procs::from_topology(path, &c.env)?;
        if t.is_empty() {
            anyhow::bail!(
                "no running server of {} (env {}) found: start the cluster first, or pass --pids",
                path.display(),
                c.env
            );
        }
        found.extend(t);
    }
    found.sort_by_key(|p| p.pid);
    found.dedup_by_key(|p| p.pid);
    Ok(found)
}
