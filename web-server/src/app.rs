//! The HTTP routes: `/healthz`, `/gates.json`, the dashboard's
//! `/admin/api/*` ([`crate::admin`]) and every file under the public folder
//! (`/admin/` is `public/admin/index.html`), all with the security headers
//! of [`crate::headers`].

use std::path::PathBuf;
use std::sync::Arc;

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use tower_http::services::ServeDir;
use tower_http::trace::{DefaultMakeSpan, DefaultOnResponse, TraceLayer};
use tracing::Level;

/// Builds the router. `ServeDir` resolves `/` to `index.html`, answers 404
/// for missing files and rejects paths that would leave `public`
/// (`..` segments, also percent-encoded ones). `gates` is what
/// `/gates.json` lists (see [`crate::gates`]).
pub fn router(
    public: PathBuf,
    gates: Vec<String>,
    secure: bool,
    admin: crate::admin::Admin,
) -> Router {
    let router = Router::new()
        .route("/healthz", get(healthz))
        .route("/gates.json", get(gates_json))
        .with_state(Arc::new(Gates {
            list: gates,
            secure,
        }))
        .merge(crate::admin::routes(Arc::new(admin)))
        .fallback_service(ServeDir::new(public));
    crate::headers::apply(router).layer(
        // One INFO line per request (method, path, status, latency) in
        // logs/web-server.log: enough to see what a browser fetched.
        TraceLayer::new_for_http()
            .make_span_with(DefaultMakeSpan::new().level(Level::INFO))
            .on_response(DefaultOnResponse::new().level(Level::INFO)),
    )
}

/// What `/gates.json` says.
struct Gates {
    list: Vec<String>,
    /// The frontends serve `wss://` (see [`crate::gates::secure`]).
    secure: bool,
}

/// `{"gates": ["host:port", ..], "secure": bool}`: the gates the page may
/// connect to, and whether over `wss://`. Not cached, so a restarted web
/// server's list is seen at once.
async fn gates_json(State(gates): State<Arc<Gates>>) -> impl IntoResponse {
    (
        [(header::CACHE_CONTROL, "no-store")],
        Json(serde_json::json!({ "gates": gates.list, "secure": gates.secure })),
    )
}

/// Liveness probe for the CLI and tests.
async fn healthz() -> &'static str {
    "ok\n"
}
