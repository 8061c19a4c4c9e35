//! Shared set-up of the frontend integration tests: a real connector on a
//! free loopback port with a small set of test handlers.
#![allow(dead_code)]

use std::path::Path;
use std::time::Duration;

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use shaddock::app::{App, AppBuilder};
use shaddock::config::ServerInfo;
use shaddock::connector::{Acceptor, ConnectorOptions};
use shaddock::handler::HandlerError;
use shaddock::session::Session;
use shaddock_client::{Client, ClientOptions, tls_trusting};
pub use shaddock_testkit::eventually_async;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

pub struct TestServer {
    pub app: App,
    pub url: String,
    pub port: u16,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

impl TestServer {
    /// Triggers the graceful shutdown and waits for the acceptor to finish.
    pub async fn shutdown(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(task) = self.task.take() {
            tokio::time::timeout(Duration::from_secs(15), task)
                .await
                .expect("acceptor did not stop within 15 s")
                .expect("acceptor task panicked");
        }
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

pub fn server_info(port: u16) -> ServerInfo {
    serde_json::from_value(json!({
        "id": "connector-test-1",
        "serverType": "connector",
        "host": "127.0.0.1",
        "clientPort": port,
        "frontend": true
    }))
    .expect("valid ServerInfo")
}

/// Short heartbeats so timeout tests are quick.
pub fn fast_options() -> ConnectorOptions {
    ConnectorOptions {
        heartbeat: Some(Duration::from_secs(1)),
        extra_dict_routes: vec!["onChat".into()],
        shutdown_grace: Duration::from_secs(2),
        ..ConnectorOptions::default()
    }
}

#[derive(Debug, Deserialize)]
pub struct EnterRequest {
    pub uid: String,
}

#[derive(Debug, Serialize)]
pub struct EnterResponse {
    pub code: u16,
    pub sid: u64,
}

async fn enter(
    _app: App,
    session: Session,
    req: EnterRequest,
) -> Result<EnterResponse, HandlerError> {
    session.bind(&req.uid).await?;
    Ok(EnterResponse {
        code: 200,
        sid: session.id(),
    })
}

async fn echo(_app: App, _session: Session, req: Value) -> Result<Value, HandlerError> {
    Ok(req)
}

async fn fail(_app: App, _session: Session, _req: Value) -> Result<Value, HandlerError> {
    Err(HandlerError::new("this handler always fails"))
}

async fn fail_with_body(_app: App, _session: Session, _req: Value) -> Result<Value, HandlerError> {
    Err(HandlerError::with_body("duplicate", json!({"error": true})))
}

async fn panics(_app: App, _session: Session, _req: Value) -> Result<Value, HandlerError> {
    panic!("a handler bug");
}

async fn nothing(_app: App, _session: Session, _req: Value) -> Result<(), HandlerError> {
    Ok(())
}

#[derive(Debug, Deserialize)]
pub struct PushRequest {
    pub route: String,
    pub uids: Vec<String>,
    pub msg: Value,
}

async fn push(app: App, _session: Session, req: PushRequest) -> Result<Value, HandlerError> {
    let body = Bytes::from(serde_json::to_vec(&req.msg)?);
    let failed = app.sessions().push_to_uids(&req.route, body, &req.uids);
    Ok(json!({ "failed": failed }))
}

/// A notify handler: answers by pushing `onNote` to the sender.
async fn note(app: App, session: Session, req: Value) -> Result<Value, HandlerError> {
    let body = Bytes::from(serde_json::to_vec(&req)?);
    app.sessions().push_to_sids("onNote", body, &[session.id()]);
    Ok(json!({"ignored": "notify results are never sent"}))
}

async fn slow(_app: App, _session: Session, req: Value) -> Result<Value, HandlerError> {
    let ms = req.get("ms").and_then(Value::as_u64).unwrap_or(500);
    // deliberate: a slow handler, for timeout and graceful-stop tests.
    tokio::time::sleep(Duration::from_millis(ms)).await;
    Ok(json!({"slept": ms}))
}

/// Remembers settings across requests via push_settings.
async fn remember(_app: App, session: Session, req: Value) -> Result<Value, HandlerError> {
    let before: Option<Value> = session.get("memo");
    session.set("memo", req.clone());
    session.push_settings(&["memo"]).await?;
    Ok(json!({ "before": before }))
}

/// The standard test app: handlers of the local `connector` type plus one
/// `chat` route (so it is in the dictionary but not served here).
pub fn test_app(builder: AppBuilder) -> AppBuilder {
    builder
        .handler("connector.entryHandler.enter", enter)
        .handler("connector.testHandler.echo", echo)
        .handler("connector.testHandler.fail", fail)
        .handler("connector.testHandler.failWithBody", fail_with_body)
        .handler("connector.testHandler.nothing", nothing)
        .handler("connector.testHandler.panic", panics)
        .handler("connector.testHandler.push", push)
        .handler("connector.testHandler.note", note)
        .handler("connector.testHandler.slow", slow)
        .handler("connector.testHandler.remember", remember)
        .handler("chat.chatHandler.send", echo)
}

/// Starts a frontend on a free loopback port.
pub async fn start_with(
    options: ConnectorOptions,
    customize: impl FnOnce(AppBuilder) -> AppBuilder,
) -> TestServer {
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind loopback");
    let port = listener.local_addr().unwrap().port();
    let app = customize(App::builder(server_info(port)).connector(options)).build();
    let (tx, rx) = oneshot::channel::<()>();
    let acceptor = Acceptor::from_listener(app.clone(), listener);
    let task = tokio::spawn(acceptor.run(async {
        let _ = rx.await;
    }));
    TestServer {
        app,
        url: format!("ws://127.0.0.1:{port}/"),
        port,
        shutdown: Some(tx),
        task: Some(task),
    }
}

pub async fn start() -> TestServer {
    start_with(fast_options(), test_app).await
}

pub async fn connect(url: &str) -> Client {
    Client::connect(url, ClientOptions::default())
        .await
        .expect("client connects and handshakes")
}

/// Waits until the server holds no session any more.
pub async fn sessions_closed(server: &TestServer) {
    eventually_async("every session to close", Duration::from_secs(2), || async {
        match server.app.sessions().count() {
            0 => Ok(()),
            n => Err(format!("{n} session(s) open")),
        }
    })
    .await;
}

/// A self-signed certificate for 127.0.0.1 written to `dir`; returns its PEM.
pub fn write_cert(dir: &Path) -> String {
    let cert = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_string()]).unwrap();
    let pem = cert.cert.pem();
    // The key first, the certificate last: the reload happens when both
    // changed and the pair matches.
    std::fs::write(dir.join("key.pem"), cert.key_pair.serialize_pem()).unwrap();
    std::fs::write(dir.join("cert.pem"), &pem).unwrap();
    pem
}

pub fn tls_client(pem: &str) -> ClientOptions {
    ClientOptions {
        tls: Some(tls_trusting(pem.as_bytes()).unwrap()),
        ..ClientOptions::default()
    }
}

pub async fn enter_as(c: &Client, uid: &str) {
    let r: Value = c
        .request("connector.entryHandler.enter", &json!({"uid": uid}))
        .await
        .unwrap();
    assert_eq!(r["code"], 200, "{r}");
}

/// `a` asks the server to push `msg` to `b`, which receives it.
pub async fn push_between(a: &Client, b: &Client, to: &str, msg: u64) {
    let r: Value = a
        .request(
            "connector.testHandler.push",
            &json!({"route": "onChat", "uids": [to], "msg": msg}),
        )
        .await
        .unwrap();
    assert_eq!(r["failed"], json!([]), "{r}");
    let p = b.next_push_timeout(Duration::from_secs(5)).await.unwrap();
    assert_eq!(p.json::<u64>().unwrap(), msg);
}

/// [`fast_options`] serving TLS with the certificate and key
/// [`write_cert`] wrote to `dir`.
pub fn tls_options(dir: &Path) -> ConnectorOptions {
    let tls = shaddock::connector::tls::Tls::load(shaddock::connector::tls::TlsFiles {
        cert: dir.join("cert.pem"),
        key: dir.join("key.pem"),
    })
    .unwrap();
    ConnectorOptions {
        tls: Some(tls),
        ..fast_options()
    }
}
