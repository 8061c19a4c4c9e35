//! In-process cluster for tests: two connectors (frontends) and two chat
//! backends, each an `App` with its own gRPC server and (frontends) its own
//! WebSocket listener on free loopback ports. The handlers and the test
//! remote (`tests/proto/echo.proto`) form a tiny chat app.

#![allow(dead_code)]

use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};
use shaddock::app::App;
use shaddock::cluster::{Cluster, ClusterBuilder, ClusterOptions, RpcServer};
use shaddock::config::ServerInfo;
use shaddock::connector::{Acceptor, ConnectorOptions, DuplicateLogin};
use shaddock::handler::HandlerError;
use shaddock::router::RouteContext;
use shaddock::session::Session;
use shaddock_client::{Client, ClientOptions};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

pub mod echo {
    #![allow(clippy::all)]
    include!(concat!(env!("OUT_DIR"), "/shaddock.testecho.rs"));
}

use echo::echo_server::{Echo, EchoServer};
use echo::{RoomReply, RoomRequest, SayReply, SayRequest};

/// The test remote served by every chat server.
pub struct EchoImpl {
    app: App,
}

#[tonic::async_trait]
impl Echo for EchoImpl {
    async fn say(
        &self,
        req: tonic::Request<SayRequest>,
    ) -> Result<tonic::Response<SayReply>, tonic::Status> {
        let req = req.into_inner();
        // deliberate: a slow remote on request, for timeout tests.
        tokio::time::sleep(Duration::from_millis(req.delay_ms)).await;
        Ok(tonic::Response::new(SayReply {
            text: req.text,
            server_id: self.app.server_id().to_string(),
        }))
    }

    async fn join(
        &self,
        req: tonic::Request<RoomRequest>,
    ) -> Result<tonic::Response<RoomReply>, tonic::Status> {
        let req = req.into_inner();
        let channel = self.app.channels().create(&req.room);
        // Like chatofpomelo: tell the others first, then add the newcomer.
        channel
            .push("onAdd", &json!({"user": req.uid}))
            .await
            .map_err(|e| tonic::Status::internal(e.to_string()))?;
        channel.add(&req.uid, &req.frontend_id);
        Ok(tonic::Response::new(RoomReply {
            users: channel.members_list(),
            server_id: self.app.server_id().to_string(),
        }))
    }

    async fn leave(
        &self,
        req: tonic::Request<RoomRequest>,
    ) -> Result<tonic::Response<RoomReply>, tonic::Status> {
        let req = req.into_inner();
        let Some(channel) = self.app.channels().get(&req.room, false) else {
            return Err(tonic::Status::not_found(format!("no room {}", req.room)));
        };
        channel.leave(&req.uid, &req.frontend_id);
        channel
            .push("onLeave", &json!({"user": req.uid}))
            .await
            .map_err(|e| tonic::Status::internal(e.to_string()))?;
        Ok(tonic::Response::new(RoomReply {
            users: channel.members_list(),
            server_id: self.app.server_id().to_string(),
        }))
    }
}

fn info(id: &str, ty: &str, port: u16, client_port: Option<u16>) -> ServerInfo {
    ServerInfo {
        id: id.into(),
        server_type: ty.into(),
        host: "127.0.0.1".into(),
        port: Some(port),
        client_port,
        frontend: client_port.is_some(),
        max_connections: None,
        auto_restart: None,
        args: vec![],
        client_host: None,
        bind_host: None,
        client_bind_host: None,
        metrics_port: None,
    }
}

async fn free() -> TcpListener {
    TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind 127.0.0.1:0")
}

/// One running server of the test cluster.
pub struct Node {
    pub app: App,
    pub cluster: Arc<Cluster>,
    pub rpc: Option<RpcServer>,
    pub rpc_port: u16,
    pub client_port: Option<u16>,
    stop: CancellationToken,
}

impl Node {
    pub fn ws_url(&self) -> String {
        format!("ws://127.0.0.1:{}", self.client_port.expect("a frontend"))
    }

    /// Stops the RPC server (the connector keeps running).
    pub async fn stop_rpc(&mut self) {
        if let Some(rpc) = self.rpc.take() {
            rpc.shutdown(Duration::from_secs(2)).await;
        }
    }

    /// Starts the RPC server again on the same port.
    pub async fn restart_rpc(&mut self) {
        let listener = TcpListener::bind(("127.0.0.1", self.rpc_port))
            .await
            .expect("rebind the RPC port");
        self.rpc = Some(self.app.serve_rpc(listener).expect("serve"));
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

/// connector-server-1/2 (frontends) and chat-server-1/2 (backends).
pub struct TestCluster {
    pub connectors: Vec<Node>,
    pub chats: Vec<Node>,
}

pub const CONNECTORS: [&str; 2] = ["connector-server-1", "connector-server-2"];
pub const CHATS: [&str; 2] = ["chat-server-1", "chat-server-2"];

/// The chat router: the session's `room` setting, else the route key.
pub fn chat_router(ctx: &RouteContext<'_>, servers: &[ServerInfo]) -> Result<usize, String> {
    let key = ctx.session_setting("room").unwrap_or(ctx.key);
    shaddock::hash::dispatch_index(key, servers.len()).ok_or_else(|| "no chat servers".into())
}

/// Index of the chat server a room lives on.
pub fn chat_for_room(room: &str) -> &'static str {
    CHATS[shaddock::hash::dispatch_index(room, CHATS.len()).unwrap()]
}

impl TestCluster {
    pub async fn start() -> Self {
        Self::start_with(ClusterOptions::default()).await
    }

    pub async fn start_with(options: ClusterOptions) -> Self {
        Self::build(options, false, None).await
    }

    /// Like [`start`](Self::start) with the chat channels sharded by key
    /// (the chat servers have a `ShardKeeper`; it is not started: nothing
    /// reconciles unless a test asks).
    pub async fn start_sharded() -> Self {
        Self::build(ClusterOptions::default(), true, None).await
    }

    /// A cluster whose chat servers keep the uid directory, every
    /// connector with `policy` (`duplicate-login`).
    pub async fn start_with_directory(policy: DuplicateLogin) -> Self {
        Self::build(ClusterOptions::default(), false, Some(policy)).await
    }

    async fn build(
        options: ClusterOptions,
        sharded: bool,
        directory: Option<DuplicateLogin>,
    ) -> Self {
        let mut rpc_listeners = Vec::new();
        let mut client_listeners = Vec::new();
        let mut servers = Vec::new();
        for id in CONNECTORS {
            let (rpc, client) = (free().await, free().await);
            servers.push(info(
                id,
                "connector",
                rpc.local_addr().unwrap().port(),
                Some(client.local_addr().unwrap().port()),
            ));
            rpc_listeners.push(rpc);
            client_listeners.push(Some(client));
        }
        for id in CHATS {
            let rpc = free().await;
            servers.push(info(id, "chat", rpc.local_addr().unwrap().port(), None));
            rpc_listeners.push(rpc);
            client_listeners.push(None);
        }
        let mut nodes = Vec::new();
        for ((server, rpc), client) in servers
            .clone()
            .into_iter()
            .zip(rpc_listeners)
            .zip(client_listeners)
        {
            let cluster = ClusterBuilder::new(servers.clone())
                .route("chat", chat_router)
                .options(options.clone())
                .build();
            let mut builder = register(App::builder(server.clone()));
            if directory.is_some() {
                builder = builder.uid_directory("chat");
            }
            if sharded {
                builder = builder.shard("chat");
            }
            let app = builder
                .connector(ConnectorOptions {
                    heartbeat: Some(Duration::from_secs(3)),
                    duplicate_login: directory.unwrap_or_default(),
                    ..ConnectorOptions::default()
                })
                .cluster(cluster.clone())
                .remote_with("chat", |app| EchoServer::new(EchoImpl { app: app.clone() }))
                .build();
            let rpc_port = server.port.unwrap();
            let rpc = Some(app.serve_rpc(rpc).expect("serve RPC"));
            let stop = CancellationToken::new();
            if let Some(listener) = client {
                let acceptor = Acceptor::from_listener(app.clone(), listener);
                let stop = stop.clone();
                tokio::spawn(async move { acceptor.run(stop.cancelled_owned()).await });
            }
            nodes.push(Node {
                app,
                cluster,
                rpc,
                rpc_port,
                client_port: server.client_port,
                stop,
            });
        }
        let chats = nodes.split_off(CONNECTORS.len());
        TestCluster {
            connectors: nodes,
            chats,
        }
    }

    pub fn chat(&mut self, id: &str) -> &mut Node {
        self.chats
            .iter_mut()
            .find(|n| n.app.server_id() == id)
            .unwrap()
    }

    /// A client connected to connector `i`.
    pub async fn client(&self, i: usize) -> Client {
        Client::connect(&self.connectors[i].ws_url(), ClientOptions::default())
            .await
            .expect("connect to the connector")
    }

    /// A client connected to connector `i` that entered `room` as `uid`.
    pub async fn enter(&self, i: usize, uid: &str, room: &str) -> (Client, Vec<String>) {
        let client = self.client(i).await;
        let resp: Value = client
            .request("connector.entry.enter", &json!({"uid": uid, "room": room}))
            .await
            .expect("enter");
        let users = resp["users"]
            .as_array()
            .unwrap_or_else(|| panic!("enter failed: {resp}"))
            .iter()
            .map(|u| u.as_str().unwrap().to_string())
            .collect();
        (client, users)
    }
}

/// The handlers every server registers (one binary for every type).
fn register(b: shaddock::app::AppBuilder) -> shaddock::app::AppBuilder {
    b.handler("connector.entry.enter", enter)
        .handler("connector.entry.register", register_key)
        .handler("chat.room.whoami", whoami)
        .handler("chat.room.send", send)
        .handler("chat.room.whisper", whisper)
        .handler("chat.room.bind", bind)
        .handler("chat.room.settings", settings)
        .handler("chat.room.kick", kick)
        .handler("chat.room.kick_uid", kick_uid)
        .handler("chat.room.sleep", sleep)
        .handler("chat.room.broadcast", broadcast)
        .handler("chat.room.panic", panic_handler)
        .handler("chat.room.burst", burst)
        .handler("chat.room.note", note)
        // The chat servers hear of every session bind and close.
        .session_events_to("chat")
        .on_session_event(|app, event| {
            let line = format!(
                "{} {:?} {} {} {}",
                app.server_id(),
                event.kind,
                event.uid,
                event.frontend_id,
                event.reason
            );
            SESSION_EVENTS.lock().unwrap().push(line);
        })
        .before_route(
            "chat.room.note",
            |ctx: shaddock::app::FilterContext| async move {
                NOTES
                    .lock()
                    .unwrap()
                    .push((ctx.app.server_id().to_string(), ctx.is_request));
                Ok(())
            },
        )
}

/// Every session event a chat server received, as
/// `"<server> <Bound|Closed> <uid> <frontend> <reason>"`.
pub static SESSION_EVENTS: std::sync::Mutex<Vec<String>> = std::sync::Mutex::new(Vec::new());

/// Every run of `chat.room.note` on a backend: (server, whether it ran as
/// a request). A client's notify must arrive as a notify.
pub static NOTES: std::sync::Mutex<Vec<(String, bool)>> = std::sync::Mutex::new(Vec::new());

/// A handler for notifies (it still returns a body: a notify discards it).
async fn note(_app: App, _session: Session, req: Value) -> Result<Value, HandlerError> {
    Ok(json!({"discarded": req}))
}

async fn enter(app: App, session: Session, req: Value) -> Result<Value, HandlerError> {
    let uid = req["uid"].as_str().ok_or("uid missing")?.to_string();
    let room = req["room"].as_str().ok_or("room missing")?.to_string();
    session.bind(&uid).await?;
    session.set("room", &room);
    session.push_settings(&["room"]).await?;
    let rpc = app.rpc().clone();
    let frontend_id = app.server_id().to_string();
    let leave = RoomRequest {
        uid: uid.clone(),
        room: room.clone(),
        frontend_id: frontend_id.clone(),
    };
    // chatofpomelo: when the connection closes, leave the room.
    let rpc_on_close = rpc.clone();
    session.on_closed(move |_snapshot, _reason| {
        tokio::spawn(async move {
            let Ok((server, channel)) = rpc_on_close.channel_by_key("chat", &leave.room) else {
                return;
            };
            let mut client = echo::echo_client::EchoClient::new(channel);
            let _ = rpc_on_close.call(&server, client.leave(leave)).await;
        });
    })?;
    let (server, channel) = rpc.channel_by_key("chat", &room)?;
    let mut client = echo::echo_client::EchoClient::new(channel);
    let reply = rpc
        .call(
            &server,
            client.join(RoomRequest {
                uid,
                room,
                frontend_id,
            }),
        )
        .await?;
    Ok(json!({"users": reply.users, "chat": reply.server_id}))
}

/// Binds `uid` and registers room `room` of the chat type on this
/// connector (what a sharded join does before its call), without joining:
/// the room's owner learns of it by pulling.
async fn register_key(_app: App, session: Session, req: Value) -> Result<Value, HandlerError> {
    let uid = req["uid"].as_str().ok_or("uid missing")?;
    let room = req["room"].as_str().ok_or("room missing")?;
    session.bind(uid).await?;
    session.register_key("chat", room)?;
    Ok(json!({}))
}

async fn whoami(app: App, session: Session, _req: Value) -> Result<Value, HandlerError> {
    Ok(json!({
        "server": app.server_id(),
        "uid": session.uid(),
        "sid": session.id(),
        "frontend": session.frontend_id(),
        "room": session.get::<String>("room"),
        "local": session.is_local(),
    }))
}

async fn send(app: App, session: Session, req: Value) -> Result<Value, HandlerError> {
    let room: String = session.get("room").ok_or("not in a room")?;
    let channel = app.channels().get(&room, false).ok_or("no such room")?;
    let report = channel
        .push(
            "onChat",
            &json!({"from": session.uid(), "content": req["content"], "server": app.server_id()}),
        )
        .await?;
    Ok(json!({"failed": report.failed}))
}

async fn whisper(app: App, session: Session, req: Value) -> Result<Value, HandlerError> {
    let room: String = session.get("room").ok_or("not in a room")?;
    let channel = app.channels().get(&room, false).ok_or("no such room")?;
    let mut receivers = Vec::new();
    for target in req["targets"].as_array().ok_or("targets missing")? {
        let uid = target.as_str().ok_or("target not a string")?.to_string();
        let frontend = channel
            .member(&uid)
            .unwrap_or_else(|| "connector-server-1".into());
        receivers.push((uid, frontend));
    }
    let report = app
        .channels()
        .push_by_uids(
            "onWhisper",
            &json!({"from": session.uid(), "content": req["content"]}),
            &receivers,
        )
        .await?;
    Ok(json!({"failed": report.failed}))
}

async fn bind(_app: App, session: Session, req: Value) -> Result<Value, HandlerError> {
    session
        .bind(req["uid"].as_str().ok_or("uid missing")?)
        .await?;
    Ok(json!({"uid": session.uid()}))
}

async fn settings(_app: App, session: Session, req: Value) -> Result<Value, HandlerError> {
    session.set(req["key"].as_str().ok_or("key missing")?, &req["value"]);
    session.push_all_settings().await?;
    Ok(json!({}))
}

async fn kick(_app: App, session: Session, req: Value) -> Result<Value, HandlerError> {
    session
        .kick(req["reason"].as_str().unwrap_or("kicked"))
        .await?;
    Ok(json!({}))
}

/// Kicks `uid` on whichever connector holds it: the backend does not say
/// where.
async fn kick_uid(app: App, _session: Session, req: Value) -> Result<Value, HandlerError> {
    let uid = req["uid"].as_str().ok_or("uid missing")?;
    let ops = app.cluster().session_ops();
    let unreachable = ops.kick_uid_everywhere(uid, "kicked by uid").await;
    Ok(json!({ "unreachable": unreachable }))
}

async fn sleep(app: App, _session: Session, req: Value) -> Result<Value, HandlerError> {
    // deliberate: a slow handler, for forward-timeout tests.
    tokio::time::sleep(Duration::from_millis(req["ms"].as_u64().unwrap_or(0))).await;
    Ok(json!({"server": app.server_id()}))
}

async fn broadcast(app: App, _session: Session, req: Value) -> Result<Value, HandlerError> {
    let failed = app
        .channels()
        .broadcast(
            "connector",
            "onBroadcast",
            &json!({"content": req["content"]}),
            req["binded_only"].as_bool().unwrap_or(false),
        )
        .await?;
    Ok(json!({"failed": failed}))
}

async fn panic_handler(_app: App, _session: Session, _req: Value) -> Result<Value, HandlerError> {
    panic!("a handler bug");
}

/// Fires `n` channel pushes, 30 in flight at a time (`join_all` polls that
/// many in order): they must reach every client in the order they were made
/// (one ordered stream per frontend, applied in arrival order).
async fn burst(app: App, session: Session, req: Value) -> Result<Value, HandlerError> {
    let room: String = session.get("room").ok_or("not in a room")?;
    let channel = app.channels().get(&room, false).ok_or("no such room")?;
    let n = req["n"].as_u64().unwrap_or(0);
    let seqs: Vec<u64> = (0..n).collect();
    for chunk in seqs.chunks(30) {
        let pushes = chunk.iter().map(|seq| {
            let channel = channel.clone();
            async move { channel.push("onSeq", &json!({ "seq": seq })).await }
        });
        for report in futures_util::future::join_all(pushes).await {
            if !report?.failed.is_empty() {
                return Err("a push failed".into());
            }
        }
    }
    Ok(json!({}))
}
