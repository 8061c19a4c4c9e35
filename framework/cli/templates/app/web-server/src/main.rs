//! Serves `public/` (the browser client). `shaddock start` runs it next to
//! the game servers with `--host`, `--port` (master.json `web`, default
//! 3001) and `--log-dir`.

use std::path::PathBuf;

use anyhow::Context;
use axum::http::{HeaderName, HeaderValue, header};
use clap::Parser;
use tower_http::set_header::SetResponseHeaderLayer;

/// Security headers on every response: the page loads nothing from
/// elsewhere, so scripts, styles and images come from this origin only,
/// WebSockets may go to any host (the gate names the connector), the page
/// is never framed, and no referrer leaks the URL.
const HEADERS: [(HeaderName, &str); 5] = [
    (
        header::CONTENT_SECURITY_POLICY,
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
         connect-src 'self' ws: wss:; object-src 'none'; base-uri 'none'; form-action 'self'; \
         frame-ancestors 'none'",
    ),
    (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
    (header::REFERRER_POLICY, "no-referrer"),
    (header::X_FRAME_OPTIONS, "DENY"),
    (
        HeaderName::from_static("cross-origin-opener-policy"),
        "same-origin",
    ),
];

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
    let mut app = axum::Router::new().fallback_service(tower_http::services::ServeDir::new(public));
    for (name, value) in HEADERS {
        app = app.layer(SetResponseHeaderLayer::overriding(
            name,
            HeaderValue::from_static(value),
        ));
    }
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
