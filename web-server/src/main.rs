//! `web-server`: the static HTTP server of the Shaddock chat demo.
//!
//! It plays the part of Pomelo's `web-server/app.js`: it serves `public/`
//! (the chat page and our ES-module Pomelo client) and the `/admin`
//! dashboard's API ([`admin`]). The chat page itself talks WebSocket to the
//! gate and connectors directly.

mod admin;
mod app;
mod cli;
mod gates;
mod headers;

use std::net::SocketAddr;

use anyhow::Context;
use clap::Parser;
use tokio::net::TcpListener;

fn main() -> anyhow::Result<()> {
    let args = cli::Args::parse();
    // Same log layout as every Shaddock server: stderr + logs/web-server.log.
    let _log_guard = shaddock::logging::init("web-server", &args.log_dir)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting the tokio runtime")?;
    let result = runtime.block_on(run(args));
    if let Err(err) = &result {
        tracing::error!("web-server stopped: {err:#}");
    }
    result
}

async fn run(args: cli::Args) -> anyhow::Result<()> {
    let public = args.public_dir()?;
    let gates = gates::load(&args.config, &args.env, &args.gate_type, &args.gates)?;
    let secure = gates::secure(&args.config, &args.env, &args.gate_type)?;
    let admin = admin::Admin::new(
        args.master.clone().map(|addr| admin::Master { addr }),
        gates::metrics_endpoints(&args.config, &args.env)?,
    );
    let addr = SocketAddr::new(args.host, args.port);
    let listener = TcpListener::bind(addr).await.with_context(|| {
        format!("binding {addr}: is another web-server running? choose another --port")
    })?;
    let local = listener.local_addr()?;
    tracing::info!(public = %public.display(), gates = ?gates, "web-server listening on http://{local}");
    // Machine-readable line for the CLI and tests that pass --port 0. Not
    // `println!`: it panics when nobody reads stdout any more (the master
    // that piped it died).
    use std::io::Write;
    let _ = writeln!(std::io::stdout(), "listening on http://{local}");

    axum::serve(listener, app::router(public, gates, secure, admin))
        // Ctrl-C or SIGTERM: in-flight requests finish, no new connection is
        // accepted.
        .with_graceful_shutdown(shaddock::launch::shutdown_signal())
        .await
        .context("serving HTTP")?;
    tracing::info!("web-server stopped");
    Ok(())
}
