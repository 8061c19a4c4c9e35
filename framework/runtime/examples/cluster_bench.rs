//! Throughput of the cluster transport on loopback: forwarded requests and
//! pushes over the long-lived streams vs. unary session ops.
//!
//! `cargo run --release -p shaddock --example cluster_bench [-- <calls per task>]`

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use shaddock::cluster::service::{LocalNode, SessionOp, SessionOpError};
use shaddock::cluster::{
    BoxFuture, ClusterForwarder, ClusterSessionOps, Forwarder, Pool, PushClient, RemoteSessionOps,
    RpcServer, Servers, SessionSnapshot,
};
use shaddock::config::ServerInfo;
use shaddock::router::Routers;

/// A peer that answers everything at once.
struct Instant0;

impl LocalNode for Instant0 {
    fn server_id(&self) -> &str {
        "bench-1"
    }
    fn handle(
        &self,
        _: SessionSnapshot,
        _: String,
        body: Bytes,
        _: bool,
    ) -> BoxFuture<'static, Option<Bytes>> {
        Box::pin(async move { Some(body) })
    }
    fn push_to_uids(&self, _: &str, _: Bytes, _: &[String]) -> Result<Vec<String>, SessionOpError> {
        Ok(Vec::new())
    }
    fn broadcast(&self, _: &str, _: Bytes, _: bool) -> Result<(), SessionOpError> {
        Ok(())
    }
    fn session_op(&self, _: SessionOp) -> BoxFuture<'_, Result<(), SessionOpError>> {
        Box::pin(async { Ok(()) })
    }
}

async fn rate<F, Fut>(label: &str, tasks: usize, per_task: usize, f: F)
where
    F: Fn() -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    let f = Arc::new(f);
    let started = Instant::now();
    let handles: Vec<_> = (0..tasks)
        .map(|_| {
            let f = f.clone();
            tokio::spawn(async move {
                for _ in 0..per_task {
                    f().await;
                }
            })
        })
        .collect();
    for h in handles {
        h.await.unwrap();
    }
    let n = tasks * per_task;
    let secs = started.elapsed().as_secs_f64();
    println!(
        "{label:<40} {n:>8} calls in {secs:>6.2}s = {:>9.0}/s",
        n as f64 / secs
    );
}

#[tokio::main]
async fn main() {
    let per_task: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(20_000);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let server = RpcServer::serve(listener, Arc::new(Instant0), Default::default()).unwrap();
    let servers = Servers::new(vec![ServerInfo {
        id: "bench-1".into(),
        server_type: "bench".into(),
        host: "127.0.0.1".into(),
        port: Some(port),
        client_port: None,
        frontend: true,
        max_connections: None,
        auto_restart: None,
        args: vec![],
        client_host: None,
        bind_host: None,
        client_bind_host: None,
        metrics_port: None,
    }]);
    let pool = Arc::new(Pool::new(servers));
    let fwd = Arc::new(ClusterForwarder::new(
        pool.clone(),
        Arc::new(Routers::new()),
    ));
    let push = Arc::new(PushClient::new(pool.clone()));
    let ops = Arc::new(ClusterSessionOps::new(pool.clone()));
    let session = SessionSnapshot {
        sid: 1,
        frontend_id: "bench-1".into(),
        uid: Some("bob".into()),
        settings: serde_json::from_str(r#"{"rid":"room1"}"#).unwrap(),
    };
    let body = Bytes::from_static(br#"{"content":"hello","target":"*"}"#);

    for (tasks, label) in [
        (1, "forward, 1 task (sequential)"),
        (64, "forward, 64 tasks"),
    ] {
        let (fwd, session, body) = (fwd.clone(), session.clone(), body.clone());
        rate(label, tasks, per_task / 4, move || {
            let (fwd, session, body) = (fwd.clone(), session.clone(), body.clone());
            async move {
                fwd.forward("bench", "bench.h.m", session, body)
                    .await
                    .unwrap();
            }
        })
        .await;
    }
    let uids: Vec<String> = (0..100).map(|i| format!("user-{i}")).collect();
    for (tasks, label) in [
        (1, "push (100 uids), 1 task"),
        (64, "push (100 uids), 64 tasks"),
    ] {
        let (push, body, uids) = (push.clone(), body.clone(), uids.clone());
        rate(label, tasks, per_task / 4, move || {
            let (push, body, uids) = (push.clone(), body.clone(), uids.clone());
            async move {
                push.push_to_uids("bench-1", "onChat", body, uids)
                    .await
                    .unwrap();
            }
        })
        .await;
    }
    for (tasks, label) in [
        (1, "unary session op, 1 task"),
        (64, "unary session op, 64 tasks"),
    ] {
        let ops = ops.clone();
        rate(label, tasks, per_task / 40, move || {
            let ops = ops.clone();
            async move {
                ops.kick_by_sid("bench-1", 1, "x").await.unwrap();
            }
        })
        .await;
    }
    server.shutdown(Duration::from_secs(1)).await;
}
