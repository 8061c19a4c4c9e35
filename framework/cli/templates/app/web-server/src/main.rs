//! Serves `public/` (the browser client). `shaddock start` runs it next to
//! the game servers with `--host`, `--port` (master.json `web`, default
//! 3001) and `--log-dir`.

use std::path::PathBuf;

use anyhow::Context;
use clap::Parser;

#[derive(Parser)]
#[command(about = "Static web server of the app")]
struct Args {
    #[arg(long, default_value = "127.0.0.1")]
    host: String,
    #[arg(long, default_value_t = 3001)]
    port: u16,
    #[arg(long, default_value = "logs")]
    log_dir: PathBuf,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let _log = shaddock::logging::init("web-server", &args.log_dir)?;
    let public = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("public");
    let app = axum::Router::new().fallback_service(tower_http::services::ServeDir::new(public));
    let listener = tokio::net::TcpListener::bind((args.host.as_str(), args.port))
        .await
        .with_context(|| format!("binding {}:{}: is the port free?", args.host, args.port))?;
    tracing::info!("web-server on http://{}", listener.local_addr()?);
    axum::serve(listener, app)
        .with_graceful_shutdown(shaddock::launch::shutdown_signal())
        .await
        .context("serving HTTP")?;
    Ok(())
}
