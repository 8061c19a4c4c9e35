//! `/admin`: the live dashboard's API, behind the master's admin login.
//!
//! The page (`public/admin/`) posts the admin user and password to
//! `/admin/api/login`; the web server asks the master's `Login` and keeps
//! the master's short-lived token (15 min) in an `HttpOnly`,
//! `SameSite=Strict` cookie scoped to `/admin`. So the page's scripts never
//! see the token (an injected script could not steal it), no other site
//! can make the browser use it (`SameSite=Strict`), and every state
//! changing call is a JSON `POST` (a cross-site form cannot send one). The
//! password itself is only passed on, never kept.
//!
//! Every read goes to the master (`List`, the `rooms` query) and to each
//! server's `/metrics` (for the rates, see [`scrape`]); the web server is
//! not on the data path.

mod master;
mod scrape;

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};
use shaddock_cli::master::proto;

pub use self::master::Master;
use self::master::MasterError;
use self::scrape::Scraper;

/// The cookie holding the master's token.
const COOKIE: &str = "shaddock_admin";

/// The actions the dashboard's buttons may run.
const ACTIONS: [&str; 4] = ["broadcast", "close-room", "drain", "kick"];

/// What the dashboard's API needs.
pub struct Admin {
    /// `None`: no master known (the web server was started by hand without
    /// `--master`); every call then says so.
    pub master: Option<Master>,
    /// `host:metricsPort` of every server that has one (servers.json).
    pub metrics: HashMap<String, String>,
    scraper: Scraper,
}

impl Admin {
    pub fn new(master: Option<Master>, metrics: HashMap<String, String>) -> Self {
        Admin {
            master,
            metrics,
            scraper: Scraper::default(),
        }
    }
}

/// The `/admin/api/*` routes.
pub fn routes(admin: Arc<Admin>) -> Router {
    Router::new()
        .route("/admin/api/login", post(login))
        .route("/admin/api/logout", post(logout))
        .route("/admin/api/cluster", get(cluster))
        .route("/admin/api/action", post(action))
        .with_state(admin)
}

/// A refused or failed call: `{"error": why}` with its status.
struct ApiError(StatusCode, String);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (
            self.0,
            [(header::CACHE_CONTROL, "no-store")],
            Json(json!({ "error": self.1 })),
        )
            .into_response()
    }
}

impl From<MasterError> for ApiError {
    fn from(e: MasterError) -> Self {
        match e {
            MasterError::Unauthenticated(m) => ApiError(StatusCode::UNAUTHORIZED, m),
            MasterError::Invalid(m) => ApiError(StatusCode::BAD_REQUEST, m),
            MasterError::Unavailable(m) => ApiError(StatusCode::BAD_GATEWAY, m),
        }
    }
}

fn master_of(admin: &Admin) -> Result<Master, ApiError> {
    admin.master.clone().ok_or_else(|| {
        ApiError(
            StatusCode::SERVICE_UNAVAILABLE,
            "this web server knows no master: start it with `shaddock start`, or pass \
             --master HOST:PORT"
                .into(),
        )
    })
}

/// The token of the request's cookie.
fn token(headers: &HeaderMap) -> Result<String, ApiError> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|pair| {
            let (name, value) = pair.trim().split_once('=')?;
            (name == COOKIE && !value.is_empty()).then(|| value.to_string())
        })
        .ok_or_else(|| ApiError(StatusCode::UNAUTHORIZED, "log in first".into()))
}

fn cookie(value: &str, max_age: u64) -> String {
    format!("{COOKIE}={value}; Path=/admin; HttpOnly; SameSite=Strict; Max-Age={max_age}")
}

#[derive(Deserialize)]
struct Login {
    user: String,
    password: String,
}

async fn login(
    State(admin): State<Arc<Admin>>,
    Json(login): Json<Login>,
) -> Result<Response, ApiError> {
    let (token, ttl) = master_of(&admin)?
        .login(&login.user, &login.password)
        .await?;
    tracing::info!(user = %login.user, "dashboard login");
    Ok((
        [
            (header::SET_COOKIE, cookie(&token, ttl)),
            (header::CACHE_CONTROL, "no-store".to_string()),
        ],
        Json(json!({ "user": login.user, "expiresInSecs": ttl })),
    )
        .into_response())
}

async fn logout() -> Response {
    (
        [(header::SET_COOKIE, cookie("", 0))],
        Json(json!({ "ok": true })),
    )
        .into_response()
}

/// `GET /admin/api/cluster`: every server with its figures and rates, and
/// the rooms of each chat server.
async fn cluster(
    State(admin): State<Arc<Admin>>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let master = master_of(&admin)?;
    let token = token(&headers)?;
    let list = master.list(&token).await?;
    let mut errors: Vec<String> = list.unreachable.clone();
    // Every scrape at once: a slow server delays the answer by its timeout
    // at most, not by the sum of them.
    let mut scrapes = tokio::task::JoinSet::new();
    for s in &list.servers {
        if let Some(addr) = admin.metrics.get(&s.id).filter(|_| s.pid != 0) {
            let (admin, id, addr) = (Arc::clone(&admin), s.id.clone(), addr.clone());
            scrapes.spawn(async move {
                let rates = admin.scraper.rates(&id, &addr).await;
                (id, rates)
            });
        }
    }
    let mut rates = HashMap::new();
    while let Some(done) = scrapes.join_next().await {
        match done {
            Ok((id, Ok(r))) => {
                rates.insert(id, r);
            }
            Ok((id, Err(e))) => errors.push(format!("{id}: {e}")),
            Err(e) => errors.push(format!("a scrape failed: {e}")),
        }
    }
    let servers: Vec<Value> = list
        .servers
        .iter()
        .map(|s| {
            let r = rates.get(&s.id);
            json!({
                "id": s.id,
                "type": s.server_type,
                "host": s.host,
                "state": s.state,
                "pid": s.pid,
                "uptimeSecs": s.uptime_secs,
                "restarts": s.restarts,
                "connections": s.connections,
                "cpuPercent": s.cpu_percent,
                "rssBytes": s.rss_bytes,
                "metrics": r.is_some(),
                "requestsTotal": r.map(|r| r.requests_total),
                "pushesTotal": r.map(|r| r.pushes_total),
                "requestsPerSec": r.map(|r| r.requests_per_sec),
                "pushesPerSec": r.map(|r| r.pushes_per_sec),
                "p99Ms": r.and_then(|r| r.p99_ms),
            })
        })
        .collect();
    let rooms_query = proto::ActRequest {
        action: "rooms".into(),
        args_json: "{}".into(),
        ids: Vec::new(),
        server_type: String::new(),
        query: true,
    };
    let mut rooms = Vec::new();
    match master.act(&token, rooms_query).await {
        Ok(resp) => {
            for o in resp.outcomes.iter().filter(|o| o.error.is_empty()) {
                let held: Value = serde_json::from_str(&o.result_json).unwrap_or(Value::Null);
                for room in held["rooms"].as_array().into_iter().flatten() {
                    rooms.push(json!({
                        "server": o.id,
                        "room": room["room"],
                        "members": room["members"],
                    }));
                }
            }
            errors.extend(resp.errors);
        }
        Err(e) => errors.push(format!("rooms: {e:?}")),
    }
    Ok((
        [(header::CACHE_CONTROL, "no-store")],
        Json(json!({
            "master": {
                "id": list.master_id,
                "env": list.env,
                "uptimeSecs": list.master_uptime_secs,
            },
            "servers": servers,
            "rooms": rooms,
            "errors": errors,
        })),
    )
        .into_response())
}

#[derive(Deserialize)]
struct Action {
    action: String,
    #[serde(default)]
    args: serde_json::Map<String, Value>,
    #[serde(default)]
    ids: Vec<String>,
}

/// `POST /admin/api/action {action, args, ids}`: one of [`ACTIONS`],
/// through the master (which records it with the logged-in user).
async fn action(
    State(admin): State<Arc<Admin>>,
    headers: HeaderMap,
    Json(act): Json<Action>,
) -> Result<Response, ApiError> {
    let master = master_of(&admin)?;
    let token = token(&headers)?;
    if !ACTIONS.contains(&act.action.as_str()) {
        return Err(ApiError(
            StatusCode::BAD_REQUEST,
            format!(
                "unknown action `{}` (one of {})",
                act.action,
                ACTIONS.join(", ")
            ),
        ));
    }
    let req = proto::ActRequest {
        action: act.action,
        args_json: Value::Object(act.args).to_string(),
        ids: act.ids,
        server_type: String::new(),
        query: false,
    };
    let resp = master.act(&token, req).await?;
    let done: Vec<Value> = resp
        .outcomes
        .iter()
        .filter(|o| o.error.is_empty())
        .map(|o| {
            json!({
                "id": o.id,
                "result": serde_json::from_str::<Value>(&o.result_json).unwrap_or(Value::Null),
            })
        })
        .collect();
    Ok(Json(json!({ "done": done, "errors": resp.errors })).into_response())
}
