//! Starting a server's gRPC endpoint: the cluster service plus the app's
//! typed remotes for this server type (as tonic [`Routes`], built by the
//! app), on `host:port` of its ServerInfo.
//!
//! Every call passes the cluster key check first ([`KeyCheck`], a tower
//! layer in front of all routes): a caller without the cluster secret
//! reaches neither the cluster service nor a remote.
//!
//! Shutdown is designed in: [`RpcServer::shutdown`] stops accepting, lets
//! in-flight calls finish, and returns when the server task has ended.

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
use tonic::service::{InterceptorLayer, Routes};
use tonic::transport::Server;
use tonic::transport::ServerTlsConfig;
use tonic::transport::server::TcpIncoming;

use super::auth::KeyCheck;
use super::service::{ClusterService, LocalNode};
use super::trace_context::TraceLayer;
use crate::config::{ClusterSecret, ServerInfo};

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

/// A running gRPC server.
#[derive(Debug)]
pub struct RpcServer {
    addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    streams: CancellationToken,
    task: JoinHandle<Result<(), tonic::transport::Error>>,
}

impl RpcServer {
    /// Binds `host:port` of `info` and serves the cluster service and
    /// `routes` to callers that present `secret` (to anyone without one).
    pub async fn start(
        info: &ServerInfo,
        node: Arc<dyn LocalNode>,
        routes: Routes,
        secret: Option<ClusterSecret>,
        tls: Option<ServerTlsConfig>,
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
        let listener = TcpListener::bind((info.rpc_bind_host(), port))
            .await
            .map_err(|e| {
                std::io::Error::new(
                    e.kind(),
                    format!(
                        "server `{}` cannot listen for RPC on {}:{port}: {e}",
                        info.id,
                        info.rpc_bind_host()
                    ),
                )
            })?;
        Self::serve_secured(listener, node, routes, secret, tls)
    }

    /// Serves on an already bound listener (tests bind port 0), without
    /// authentication.
    pub fn serve(
        listener: TcpListener,
        node: Arc<dyn LocalNode>,
        routes: Routes,
    ) -> std::io::Result<Self> {
        Self::serve_secured(listener, node, routes, None, None)
    }

    /// Serves on an already bound listener; with a `secret`, only calls
    /// that carry it; with `tls`, only over mutual TLS (see
    /// [`tls`](super::tls)).
    pub fn serve_secured(
        listener: TcpListener,
        node: Arc<dyn LocalNode>,
        routes: Routes,
        secret: Option<ClusterSecret>,
        tls: Option<ServerTlsConfig>,
    ) -> std::io::Result<Self> {
        let mut builder = Server::builder();
        if let Some(tls) = tls {
            builder = builder
                .tls_config(tls)
                .map_err(|e| std::io::Error::other(format!("cluster TLS: {e}")))?;
        }
        let addr = listener.local_addr()?;
        let server_id = node.server_id().to_string();
        let check = KeyCheck::new(&server_id, secret);
        let streams = CancellationToken::new();
        let routes = routes.add_service(ClusterService::new(node, streams.clone()).into_server());
        let incoming = TcpIncoming::from(listener).with_nodelay(Some(true));
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            tracing::info!(server = %server_id, %addr, "RPC server listening");
            let result = builder
                .http2_keepalive_interval(Some(Duration::from_secs(10)))
                .http2_keepalive_timeout(Some(Duration::from_secs(5)))
                .initial_stream_window_size(Some(super::pool::WINDOW))
                .initial_connection_window_size(Some(super::pool::WINDOW * 4))
                .layer(InterceptorLayer::new(check))
                .layer(TraceLayer::new(&server_id))
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
