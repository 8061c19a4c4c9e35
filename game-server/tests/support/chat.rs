//! Chat-client helpers over the real Rust Pomelo client: the browser
//! client's flow (gate → connector → enter) and push assertions.

use std::time::Duration;

use serde_json::Value;
use shaddock::hash::dispatch_index;
use shaddock::router::RendezvousRouter;
use shaddock_client::{Client, ClientOptions, Push};
use shared::{EnterRequest, EnterResponse, QueryEntryRequest, QueryEntryResponse};

use super::ProcCluster;

/// Generous wait for something that should happen (a push, a log line).
pub const WAIT: Duration = Duration::from_secs(10);
/// How long "nothing more arrives" is watched.
pub const QUIET: Duration = Duration::from_millis(400);

pub fn options() -> ClientOptions {
    ClientOptions {
        connect_timeout: WAIT,
        request_timeout: WAIT,
        ..ClientOptions::default()
    }
}

pub async fn connect(url: &str) -> Client {
    Client::connect(url, options())
        .await
        .unwrap_or_else(|e| panic!("connect {url}: {e}"))
}

/// `gate.gateHandler.queryEntry`, then disconnect from the gate.
pub async fn query_entry(cluster: &ProcCluster, uid: &str) -> QueryEntryResponse {
    query_entry_over(cluster, "ws", uid).await
}

/// [`query_entry`] over `scheme` (`ws`, or `tcp`: raw TCP on the same port).
pub async fn query_entry_over(
    cluster: &ProcCluster,
    scheme: &str,
    uid: &str,
) -> QueryEntryResponse {
    let gate_port = cluster.of_type("gate")[0].client_port.unwrap();
    let gate = connect(&format!("{scheme}://127.0.0.1:{gate_port}")).await;
    let resp = gate
        .request(
            shared::ROUTE_QUERY_ENTRY,
            &QueryEntryRequest { uid: uid.into() },
        )
        .await
        .expect("queryEntry answered");
    gate.close().await;
    resp
}

/// A logged-in chat user.
pub struct User {
    pub name: String,
    pub rid: String,
    pub client: Client,
    /// clientPort of the connector the gate chose.
    pub port: u16,
}

/// Asks the gate, connects to the chosen connector and sends `enter`.
pub async fn login(cluster: &ProcCluster, name: &str, rid: &str) -> (User, EnterResponse) {
    login_over(cluster, "ws", name, rid).await
}

/// [`login`] with every connection over `scheme` (`ws` or `tcp`).
pub async fn login_over(
    cluster: &ProcCluster,
    scheme: &str,
    name: &str,
    rid: &str,
) -> (User, EnterResponse) {
    login_with(cluster, scheme, name, rid, options()).await
}

/// [`login_over`] with the client's `options` (e.g. `resumable`).
pub async fn login_with(
    cluster: &ProcCluster,
    scheme: &str,
    name: &str,
    rid: &str,
    options: ClientOptions,
) -> (User, EnterResponse) {
    let entry = query_entry_over(cluster, scheme, name).await;
    assert_eq!(entry.code, 200, "gate refused {name}: {entry:?}");
    let (host, port) = (entry.host.unwrap(), entry.port.unwrap());
    login_at(&format!("{scheme}://{host}"), port, name, rid, options).await
}

/// Connects to the frontend at `base:port` (no gate) and sends `enter`.
pub async fn login_at(
    base: &str,
    port: u16,
    name: &str,
    rid: &str,
    options: ClientOptions,
) -> (User, EnterResponse) {
    let url = format!("{base}:{port}");
    let client = Client::connect(&url, options)
        .await
        .unwrap_or_else(|e| panic!("connect {url}: {e}"));
    let resp = enter_on(&client, name, rid).await;
    let user = User {
        name: name.into(),
        rid: rid.into(),
        client,
        port,
    };
    (user, resp)
}

/// `connector.entryHandler.enter` on an open connection.
pub async fn enter_on(client: &Client, name: &str, rid: &str) -> EnterResponse {
    client
        .request(
            shared::ROUTE_ENTER,
            &EnterRequest {
                username: name.into(),
                rid: rid.into(),
            },
        )
        .await
        .expect("enter answered")
}

/// [`login`] that must succeed; returns the user and the room's names.
pub async fn enter(cluster: &ProcCluster, name: &str, rid: &str) -> (User, Vec<String>) {
    match login(cluster, name, rid).await {
        (user, EnterResponse::Users { users }) => (user, users),
        (_, other) => panic!("{name} could not enter {rid}: {other:?}"),
    }
}

impl User {
    /// `chat.chatHandler.send`; returns the raw response body as JSON.
    pub async fn send(&self, content: &str, target: &str) -> Value {
        let req = shared::SendRequest {
            rid: self.rid.clone(),
            content: content.into(),
            from: self.name.clone(),
            target: target.into(),
        };
        self.client
            .request(shared::ROUTE_SEND, &req)
            .await
            .expect("send answered")
    }

    /// The next push, which must be `route`; returns its JSON body.
    pub async fn expect_push(&self, route: &str) -> Value {
        let push: Push = self
            .client
            .next_push_timeout(WAIT)
            .await
            .unwrap_or_else(|e| panic!("{} expected {route}: {e}", self.name));
        assert_eq!(push.route, route, "{} got {push:?}", self.name);
        push.json().expect("JSON push body")
    }

    /// No push arrives within [`QUIET`].
    pub async fn expect_silence(&self) {
        if let Ok(p) = self.client.next_push_timeout(QUIET).await {
            panic!(
                "{} got an unexpected push {} {}",
                self.name,
                p.route,
                String::from_utf8_lossy(&p.body)
            );
        }
    }
}

/// The first name `prefix<k>` the gate sends to connector `index` of `n`.
pub fn name_on_connector(prefix: &str, index: usize, n: usize) -> String {
    (0..)
        .map(|k| format!("{prefix}{k}"))
        .find(|name| dispatch_index(name, n) == Some(index))
        .unwrap()
}

/// The chat server (index into `chat-server-1..=n`) that owns room `rid`:
/// the chat app places rooms by rendezvous hashing over the server ids.
pub fn chat_of_room(rid: &str, n: usize) -> usize {
    let chats: Vec<_> = (1..=n)
        .map(|i| shaddock_testkit::server(&format!("chat-server-{i}"), "chat", Some(1), None))
        .collect();
    RendezvousRouter::owner(rid, &chats).expect("a chat server")
}

/// The first room `prefix<k>` that lives on chat server `index` of `n`.
pub fn room_on_chat(prefix: &str, index: usize, n: usize) -> String {
    (0..)
        .map(|k| format!("{prefix}{k}"))
        .find(|rid| chat_of_room(rid, n) == index)
        .unwrap()
}
