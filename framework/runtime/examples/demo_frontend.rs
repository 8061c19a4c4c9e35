//! A demo frontend any Pomelo client can talk to, until the chat app exists.
//!
//! ```text
//! cargo run -p shaddock --example demo_frontend -- [--port 3050] [--host 127.0.0.1]
//! ```
//!
//! Routes (all on server type `connector`):
//! * `connector.entryHandler.enter` `{"username":"bob"}` → binds the session,
//!   answers `{"code":200,"users":[...]}` and pushes `onAdd` to the others;
//!   a second login with a bound name gets `{"code":500,"error":true}`.
//! * `connector.demoHandler.echo` — answers the request body.
//! * `connector.demoHandler.say` `{"msg":"hi"}` — pushes `onChat`
//!   `{"msg","from"}` to every bound session, answers `{}`.
//! * `connector.demoHandler.time` — `{"unixMillis":...}`.
//!
//! Closing a bound connection pushes `onLeave` to the others.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use clap::Parser;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use shaddock::app::App;
use shaddock::config::ServerInfo;
use shaddock::connector::ConnectorOptions;
use shaddock::handler::HandlerError;
use shaddock::session::Session;

#[derive(Parser)]
#[command(about = "Shaddock demo frontend (a connector with a few handlers)")]
struct Args {
    /// Client (WebSocket) port.
    #[arg(long, default_value_t = 3050)]
    port: u16,
    /// Bind host.
    #[arg(long, default_value = "127.0.0.1")]
    host: String,
    /// Heartbeat interval in seconds (0 = off).
    #[arg(long, default_value_t = 3)]
    heartbeat: u64,
}

#[derive(Deserialize)]
struct EnterRequest {
    username: String,
}

#[derive(Serialize)]
struct EnterResponse {
    code: u16,
    users: Vec<String>,
}

async fn enter(
    app: App,
    session: Session,
    req: EnterRequest,
) -> Result<EnterResponse, HandlerError> {
    let name = req.username.trim().to_owned();
    if name.is_empty() || !app.sessions().by_uid(&name).is_empty() {
        return Err(HandlerError::with_body(
            format!("name `{name}` is empty or taken"),
            json!({"code": 500, "error": true}),
        ));
    }
    let others = app.sessions().broadcast(
        "onAdd",
        Bytes::from(serde_json::to_vec(
            &json!({"route": "onAdd", "user": name}),
        )?),
        true,
    );
    session.bind(&name).await?;
    let sessions = app.sessions().clone();
    session.on_closed(move |snapshot, _reason| {
        if let Some(user) = snapshot.uid {
            let body = json!({"route": "onLeave", "user": user}).to_string();
            sessions.broadcast("onLeave", Bytes::from(body), true);
        }
    })?;
    tracing::info!(user = %name, others, "entered");
    let mut users = app.sessions().bound_uids();
    users.sort();
    Ok(EnterResponse { code: 200, users })
}

async fn echo(_app: App, _session: Session, req: Value) -> Result<Value, HandlerError> {
    Ok(req)
}

#[derive(Deserialize)]
struct SayRequest {
    msg: String,
}

async fn say(app: App, session: Session, req: SayRequest) -> Result<Value, HandlerError> {
    let from = session
        .uid()
        .ok_or_else(|| HandlerError::new("say before enter"))?;
    let body = serde_json::to_vec(&json!({"msg": req.msg, "from": from}))?;
    app.sessions().broadcast("onChat", Bytes::from(body), true);
    Ok(json!({}))
}

async fn time(_app: App, _session: Session, _req: Value) -> Result<Value, HandlerError> {
    let ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0);
    Ok(json!({ "unixMillis": ms }))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let server: ServerInfo = serde_json::from_value(json!({
        "id": "demo-connector-1",
        "serverType": "connector",
        "host": args.host,
        "clientPort": args.port,
        "frontend": true
    }))?;
    let _log = shaddock::logging::init(&server.id, "logs")?;
    let options = ConnectorOptions {
        heartbeat: (args.heartbeat > 0).then(|| Duration::from_secs(args.heartbeat)),
        extra_dict_routes: vec!["onChat".into()],
        ..ConnectorOptions::default()
    };
    let app = App::builder(server)
        .handler("connector.entryHandler.enter", enter)
        .handler("connector.demoHandler.echo", echo)
        .handler("connector.demoHandler.say", say)
        .handler("connector.demoHandler.time", time)
        .connector(options)
        .build();
    tracing::info!(
        "demo frontend on ws://{}:{} (Ctrl-C to stop)",
        app.server().host,
        args.port
    );
    app.run(async {
        let _ = tokio::signal::ctrl_c().await;
    })
    .await?;
    Ok(())
}
