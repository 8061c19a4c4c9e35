//! The HTTP routes: `/healthz` and every file under the public folder.

use std::path::PathBuf;

use axum::Router;
use axum::routing::get;
use tower_http::services::ServeDir;
use tower_http::trace::{DefaultMakeSpan, DefaultOnResponse, TraceLayer};
use tracing::Level;

/// Builds the router. `ServeDir` resolves `/` to `index.html`, answers 404
/// for missing files and rejects paths that would leave `public`
/// (`..` segments, also percent-encoded ones).
pub fn router(public: PathBuf) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .fallback_service(ServeDir::new(public))
        .layer(
            // One INFO line per request (method, path, status, latency) in
            // logs/web-server.log: enough to see what a browser fetched.
            TraceLayer::new_for_http()
                .make_span_with(DefaultMakeSpan::new().level(Level::INFO))
                .on_response(DefaultOnResponse::new().level(Level::INFO)),
        )
}

/// Liveness probe for the CLI and tests.
async fn healthz() -> &'static str {
    "ok\n"
}
