//! The frontend ↔ cluster contract, exercised in one process: a frontend
//! whose `Forwarder` hands requests to a real backend `App` (`App::handle`)
//! with a backend `Session` whose `RemoteSessionOps` reach the frontend's
//! `SessionService`. The gRPC transport implements the same traits and is
//! tested in the cluster suite; this proves the connector side of them.

mod frontend_common;

use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use bytes::Bytes;
use frontend_common::*;
use serde_json::{Map, Value, json};
use shaddock::app::App;
use shaddock::cluster::{BoxFuture, ClusterError, Forwarder, RemoteSessionOps, SessionSnapshot};
use shaddock::connector::ConnectorOptions;
use shaddock::handler::HandlerError;
use shaddock::session::{Session, SessionService};
use shaddock_client::CloseReason;

/// Session operations applied directly to the frontend's session service.
struct LocalOps(OnceLock<SessionService>);

impl LocalOps {
    fn svc(&self, frontend: &str) -> Result<&SessionService, ClusterError> {
        let svc = self
            .0
            .get()
            .ok_or(ClusterError::UnknownServer(frontend.into()))?;
        if svc.frontend_id() != frontend {
            return Err(ClusterError::UnknownServer(frontend.into()));
        }
        Ok(svc)
    }
    fn no_session(frontend: &str, sid: u64) -> ClusterError {
        ClusterError::NoSuchSession {
            frontend: frontend.into(),
            sid,
        }
    }
}

impl RemoteSessionOps for LocalOps {
    fn bind(&self, f: &str, sid: u64, uid: &str) -> BoxFuture<'_, Result<(), ClusterError>> {
        let r = self
            .svc(f)
            .and_then(|s| s.bind(sid, uid).map_err(|_| Self::no_session(f, sid)));
        Box::pin(async move { r })
    }
    fn unbind(&self, f: &str, sid: u64, uid: &str) -> BoxFuture<'_, Result<(), ClusterError>> {
        let r = self
            .svc(f)
            .and_then(|s| s.unbind(sid, uid).map_err(|_| Self::no_session(f, sid)));
        Box::pin(async move { r })
    }
    fn push_settings(
        &self,
        f: &str,
        sid: u64,
        settings: Map<String, Value>,
    ) -> BoxFuture<'_, Result<(), ClusterError>> {
        let r = self.svc(f).and_then(|s| {
            s.set_settings(sid, settings)
                .map_err(|_| Self::no_session(f, sid))
        });
        Box::pin(async move { r })
    }
    fn kick_by_sid(
        &self,
        f: &str,
        sid: u64,
        reason: &str,
    ) -> BoxFuture<'_, Result<(), ClusterError>> {
        let r = self.svc(f).and_then(|s| {
            if s.kick_by_sid(sid, reason) {
                Ok(())
            } else {
                Err(Self::no_session(f, sid))
            }
        });
        Box::pin(async move { r })
    }
    fn kick_by_uid(
        &self,
        f: &str,
        uid: &str,
        reason: &str,
    ) -> BoxFuture<'_, Result<(), ClusterError>> {
        let r = self.svc(f).map(|s| {
            s.kick_by_uid(uid, reason);
        });
        Box::pin(async move { r })
    }
}

struct InProcess {
    backend: App,
    ops: Arc<LocalOps>,
    seen: Mutex<Vec<(String, String, SessionSnapshot)>>,
}

impl Forwarder for InProcess {
    fn forward(
        &self,
        server_type: &str,
        route: &str,
        session: SessionSnapshot,
        body: Bytes,
    ) -> BoxFuture<'_, Result<Bytes, ClusterError>> {
        self.seen
            .lock()
            .unwrap()
            .push((server_type.into(), route.into(), session.clone()));
        if server_type != self.backend.server_type() {
            let err = ClusterError::NoServerOfType(server_type.into());
            return Box::pin(async move { Err(err) });
        }
        let session = Session::remote(session, self.ops.clone());
        let route = route.to_owned();
        Box::pin(async move {
            Ok(self
                .backend
                .handle(session, &route, body, true)
                .await
                .unwrap_or_default())
        })
    }

    fn notify(
        &self,
        server_type: &str,
        route: &str,
        session: SessionSnapshot,
        body: Bytes,
    ) -> BoxFuture<'_, Result<(), ClusterError>> {
        let forwarded = self.forward(server_type, route, session, body);
        Box::pin(async move { forwarded.await.map(drop) })
    }
}

async fn send(_app: App, session: Session, req: Value) -> Result<Value, HandlerError> {
    assert!(!session.is_local());
    assert!(
        session.on_closed(|_, _| {}).is_err(),
        "on_closed is frontend only"
    );
    let rid: Option<String> = session.get("rid");
    session.set("lastMessage", req["content"].clone());
    session.push_settings(&["lastMessage"]).await?;
    Ok(json!({"from": session.uid(), "rid": rid, "frontend": session.frontend_id()}))
}

async fn bind_here(_app: App, session: Session, req: Value) -> Result<Value, HandlerError> {
    session
        .bind(req["uid"].as_str().unwrap_or_default())
        .await?;
    Ok(json!({}))
}

async fn kick_me(_app: App, session: Session, _req: Value) -> Result<Value, HandlerError> {
    session.kick("kicked by chat").await?;
    Ok(json!({}))
}

async fn enter_room(_app: App, session: Session, req: Value) -> Result<Value, HandlerError> {
    session
        .bind(req["uid"].as_str().unwrap_or_default())
        .await?;
    session.set("rid", req["rid"].clone());
    session.push_all_settings().await?;
    Ok(json!({"code": 200}))
}

fn all_handlers(b: shaddock::app::AppBuilder) -> shaddock::app::AppBuilder {
    test_app(b)
        .handler("connector.entryHandler.enterRoom", enter_room)
        .handler("chat.chatHandler.send", send)
        .handler("chat.chatHandler.bindHere", bind_here)
        .handler("chat.chatHandler.kickMe", kick_me)
        .handler(
            "chat.chatHandler.slow",
            |_a: App, _s: Session, _r: Value| async {
                // deliberate: slower than the 500 ms forward timeout.
                tokio::time::sleep(Duration::from_secs(3)).await;
                Ok::<_, HandlerError>(json!({}))
            },
        )
}

/// A frontend (real connector) and an in-process `chat` backend, both
/// with the handlers `handlers` registers, the frontend forwarding to the
/// backend within 500 ms.
async fn start_pair(
    handlers: fn(shaddock::app::AppBuilder) -> shaddock::app::AppBuilder,
) -> (TestServer, Arc<InProcess>, Arc<LocalOps>) {
    let backend_info = serde_json::from_value(json!({
        "id": "chat-test-1", "serverType": "chat", "host": "127.0.0.1"
    }))
    .unwrap();
    let backend = handlers(App::builder(backend_info)).build();
    let ops = Arc::new(LocalOps(OnceLock::new()));
    let forwarder = Arc::new(InProcess {
        backend,
        ops: ops.clone(),
        seen: Mutex::default(),
    });
    let fwd = forwarder.clone();
    let options = ConnectorOptions {
        forward_timeout: Duration::from_millis(500),
        ..fast_options()
    };
    let server = start_with(options, move |b| handlers(b).forwarder(fwd)).await;
    assert!(ops.0.set(server.app.sessions().clone()).is_ok());
    (server, forwarder, ops)
}

#[tokio::test]
async fn requests_for_other_types_are_forwarded_with_the_session() {
    let (server, forwarder, _ops) = start_pair(all_handlers).await;
    let client = connect(&server.url).await;

    let r: Value = client
        .request(
            "connector.entryHandler.enterRoom",
            &json!({"uid": "bob", "rid": "r1"}),
        )
        .await
        .unwrap();
    assert_eq!(r["code"], 200);
    let r: Value = client
        .request("chat.chatHandler.send", &json!({"content": "hello"}))
        .await
        .unwrap();
    assert_eq!(
        r,
        json!({"from": "bob", "rid": "r1", "frontend": "connector-test-1"})
    );
    {
        let seen = forwarder.seen.lock().unwrap();
        let (ty, route, snap) = seen.last().unwrap();
        assert_eq!(
            (ty.as_str(), route.as_str()),
            ("chat", "chat.chatHandler.send")
        );
        assert_eq!(snap.uid.as_deref(), Some("bob"));
        assert_eq!(snap.settings["rid"], json!("r1"));
    }
    // The backend's push_settings reached the frontend session.
    let sid = server.app.sessions().by_uid("bob")[0].id();
    assert_eq!(
        server.app.sessions().snapshot(sid).unwrap().settings["lastMessage"],
        json!("hello")
    );
    // A backend bind of another uid is refused → 500.
    let body = client
        .request_raw("chat.chatHandler.bindHere", r#"{"uid":"eve"}"#)
        .await
        .unwrap();
    assert_eq!(&body[..], br#"{"code":500}"#);
    // Forwarding errors and timeouts become {"code":500}.
    for route in ["area.playerHandler.move", "chat.chatHandler.slow"] {
        let body = client.request_raw(route, "{}").await.unwrap();
        assert_eq!(&body[..], br#"{"code":500}"#, "{route}");
    }
    // A backend kick reaches the client.
    let _ = client.request_raw("chat.chatHandler.kickMe", "{}").await;
    assert_eq!(
        client.closed_within(Duration::from_secs(3)).await,
        Some(CloseReason::Kicked("kicked by chat".into()))
    );
    server.shutdown().await;
}

/// How often `secret` ran (server-only handlers of the test below).
static SECRET_RUNS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

async fn secret(_app: App, _session: Session, _req: Value) -> Result<Value, HandlerError> {
    SECRET_RUNS.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    Ok(json!({"secret": 42}))
}

fn with_server_only(b: shaddock::app::AppBuilder) -> shaddock::app::AppBuilder {
    all_handlers(b)
        .server_handler("connector.adminHandler.secret", secret)
        .server_handler("chat.adminHandler.reset", secret)
}

/// Server-only routes (issue 12 item 8): through a real connector a client
/// gets byte for byte the unknown-route answer, for a route of the
/// frontend's own type and for one of another type (never forwarded); the
/// handshake dictionary does not list them; a notify runs nothing. A server
/// still calls them with `App::handle`.
#[tokio::test]
async fn server_only_routes_answer_clients_as_unknown_routes() {
    let (server, forwarder, ops) = start_pair(with_server_only).await;
    let backend = forwarder.backend.clone();
    let client = connect(&server.url).await;

    let dict = client.dictionary().expect("dictionary sent");
    assert!(dict.code("connector.entryHandler.enter").is_some());
    for route in ["connector.adminHandler.secret", "chat.adminHandler.reset"] {
        assert_eq!(
            dict.code(route),
            None,
            "{route} is in the client dictionary"
        );
    }

    for (hidden, unknown) in [
        (
            "connector.adminHandler.secret",
            "connector.adminHandler.nope",
        ),
        ("chat.adminHandler.reset", "chat.adminHandler.nope"),
    ] {
        let a = client.request_raw(hidden, "{}").await.unwrap();
        let b = client.request_raw(unknown, "{}").await.unwrap();
        assert_eq!(a, b, "{hidden} answers unlike the unknown {unknown}");
        assert_eq!(&a[..], br#"{"code":500}"#);
        client.notify_raw(hidden, "{}").await.unwrap();
    }
    // The unknown chat route went to the backend; the server-only one never did.
    let forwarded: Vec<String> = forwarder
        .seen
        .lock()
        .unwrap()
        .iter()
        .map(|(_, route, _)| route.clone())
        .collect();
    assert_eq!(forwarded, ["chat.adminHandler.nope"]);
    // A request after the notifies (each message runs on its own task, so
    // this only makes it likely that the notifies were handled by now).
    let echo: Value = client
        .request("connector.testHandler.echo", &json!({"x": 1}))
        .await
        .unwrap();
    assert_eq!(echo, json!({"x": 1}));
    assert_eq!(SECRET_RUNS.load(std::sync::atomic::Ordering::SeqCst), 0);

    // Servers reach it.
    for (app, route) in [
        (&server.app, "connector.adminHandler.secret"),
        (&backend, "chat.adminHandler.reset"),
    ] {
        let session = Session::remote(SessionSnapshot::default(), ops.clone());
        let body = app
            .handle(session, route, Bytes::from_static(b"{}"), true)
            .await;
        assert_eq!(body.as_deref(), Some(&br#"{"secret":42}"#[..]), "{route}");
    }
    assert_eq!(SECRET_RUNS.load(std::sync::atomic::Ordering::SeqCst), 2);
    server.shutdown().await;
}
