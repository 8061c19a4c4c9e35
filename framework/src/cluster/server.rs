//! Starting a server's gRPC endpoint: the cluster service plus the app's
//! typed remotes for this server type, on `host:port` of its ServerInfo.
//!
//! Shutdown is designed in: [`RpcServer::shutdown`] stops accepting, lets
//! in-flight calls finish, and returns when the server task has ended.

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tonic::body::Body;
use tonic::codegen::http::{Request, Response};
use tonic::server::NamedService;
use tonic::service::Routes;
use tonic::transport::Server;
use tonic::transport::server::TcpIncoming;

use super::service::{ClusterService, LocalNode};
use crate::app::App;
use crate::config::ServerInfo;

type Factory = Arc<dyn Fn(&App, Routes) -> Routes + Send + Sync>;

/// User remotes (typed tonic services) registered per server type:
/// `remotes.add("chat", ChatRemoteServer::new(ChatRemote))`, or, when the
/// implementation needs the running app (its channels, its rpc),
/// `remotes.add_with("chat", |app| ChatRemoteServer::new(ChatRemote { app: app.clone() }))`.
#[derive(Clone, Default)]
pub struct Remotes {
    by_type: HashMap<String, Vec<Factory>>,
}

impl std::fmt::Debug for Remotes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Remotes")
            .field("types", &self.by_type.keys().collect::<Vec<_>>())
            .finish()
    }
}

/// What a generated tonic server (`FooServer<T>`) is.
pub trait RemoteService:
    tonic::codegen::Service<
        Request<Body>,
        Response = Response<Body>,
        Error = Infallible,
        Future: Send + 'static,
    > + NamedService
    + Clone
    + Send
    + Sync
    + 'static
{
}

impl<S> RemoteService for S where
    S: tonic::codegen::Service<
            Request<Body>,
            Response = Response<Body>,
            Error = Infallible,
            Future: Send + 'static,
        > + NamedService
        + Clone
        + Send
        + Sync
        + 'static
{
}

impl Remotes {
    pub fn new() -> Self {
        Self::default()
    }

    /// Serves `svc` on every server of `server_type`.
    pub fn add<S: RemoteService>(&mut self, server_type: impl Into<String>, svc: S) -> &mut Self {
        self.add_with(server_type, move |_| svc.clone())
    }

    /// Serves the service `make(app)` builds when the server starts.
    pub fn add_with<S: RemoteService>(
        &mut self,
        server_type: impl Into<String>,
        make: impl Fn(&App) -> S + Send + Sync + 'static,
    ) -> &mut Self {
        let factory: Factory = Arc::new(move |app, routes| routes.add_service(make(app)));
        self.by_type
            .entry(server_type.into())
            .or_default()
            .push(factory);
        self
    }

    /// The routes of `app`'s server type (empty if it has no remotes).
    pub fn routes_for(&self, app: &App) -> Routes {
        let mut routes = Routes::default();
        for factory in self.by_type.get(app.server_type()).into_iter().flatten() {
            routes = factory(app, routes);
        }
        routes
    }
}

/// A running gRPC server.
#[derive(Debug)]
pub struct RpcServer {
    addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    streams: CancellationToken,
    task: JoinHandle<Result<(), tonic::transport::Error>>,
}

impl RpcServer {
    /// Binds `host:port` of `info` and serves the cluster service and `routes`.
    pub async fn start(
        info: &ServerInfo,
        node: Arc<dyn LocalNode>,
        routes: Routes,
    ) -> std::io::Result<Self> {
        let port = info.port.ok_or_else(|| {
            std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                format!(
                    "server `{}` has no `port` in servers.json, so it cannot serve RPC",
                    info.id
                ),
            )
        })?;
        let listener = TcpListener::bind((info.host.as_str(), port))
            .await
            .map_err(|e| {
                std::io::Error::new(
                    e.kind(),
                    format!(
                        "server `{}` cannot listen for RPC on {}:{port}: {e}",
                        info.id, info.host
                    ),
                )
            })?;
        Self::serve(listener, node, routes)
    }

    /// Serves on an already bound listener (tests bind port 0).
    pub fn serve(
        listener: TcpListener,
        node: Arc<dyn LocalNode>,
        routes: Routes,
    ) -> std::io::Result<Self> {
        let addr = listener.local_addr()?;
        let server_id = node.server_id().to_string();
        let streams = CancellationToken::new();
        let routes = routes.add_service(ClusterService::new(node, streams.clone()).into_server());
        let incoming = TcpIncoming::from(listener).with_nodelay(Some(true));
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            tracing::info!(server = %server_id, %addr, "RPC server listening");
            let result = Server::builder()
                .http2_keepalive_interval(Some(Duration::from_secs(10)))
                .http2_keepalive_timeout(Some(Duration::from_secs(5)))
                .initial_stream_window_size(Some(super::pool::WINDOW))
                .initial_connection_window_size(Some(super::pool::WINDOW * 4))
                .add_routes(routes)
                .serve_with_incoming_shutdown(incoming, async {
                    let _ = stopped.await;
                })
                .await;
            tracing::info!(server = %server_id, "RPC server stopped");
            result
        });
        Ok(RpcServer {
            addr,
            stop: Some(stop),
            streams,
            task,
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops accepting, ends the cluster streams, and waits (at most
    /// `grace`) for open calls to end.
    pub async fn shutdown(mut self, grace: Duration) {
        self.streams.cancel();
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if tokio::time::timeout(grace, &mut self.task).await.is_err() {
            self.task.abort();
        }
    }
}
