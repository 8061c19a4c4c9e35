//! [`Cluster`]: every cluster-side piece of one server, built once and
//! shared by the app: the server list, the connection pool, the routers,
//! the forwarder, the push client, the channel service, the session-op
//! client and the RPC client. (The app's typed remotes are the app's: it
//! builds them when it starts its [`RpcServer`](super::RpcServer).)

use std::sync::Arc;
use std::time::Duration;

use super::auth::ClusterKey;
use super::channel::ChannelService;
use super::forward::{ClusterForwarder, DEFAULT_FORWARD_TIMEOUT, DEFAULT_QUEUE};
use super::pool::{DEFAULT_CONNECT_TIMEOUT, Pool};
use super::push::{DEFAULT_PUSH_TIMEOUT, PushClient};
use super::rpc::{DEFAULT_RPC_TIMEOUT, Rpc};
use super::session_remote::{ClusterSessionOps, DEFAULT_SESSION_OP_TIMEOUT};
use crate::config::{ClusterSecret, ServerInfo};
use crate::discovery::Servers;
use crate::router::{Router, Routers};

/// Timeouts and bounds of the cluster transport.
#[derive(Debug, Clone)]
pub struct ClusterOptions {
    /// Dialing a server.
    pub connect_timeout: Duration,
    /// A forwarded client request, end to end.
    pub forward_timeout: Duration,
    /// A push, until the frontend acknowledges it.
    pub push_timeout: Duration,
    /// A user remote call made with [`Rpc::call`].
    pub rpc_timeout: Duration,
    /// bind / unbind / push settings / kick on the owning frontend.
    pub session_op_timeout: Duration,
    /// Bound of each per-server send queue (forward and push streams).
    pub queue: usize,
}

impl Default for ClusterOptions {
    fn default() -> Self {
        ClusterOptions {
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            forward_timeout: DEFAULT_FORWARD_TIMEOUT,
            push_timeout: DEFAULT_PUSH_TIMEOUT,
            rpc_timeout: DEFAULT_RPC_TIMEOUT,
            session_op_timeout: DEFAULT_SESSION_OP_TIMEOUT,
            queue: DEFAULT_QUEUE,
        }
    }
}

/// Collects routers, remotes and options; [`ClusterBuilder::build`] makes
/// the [`Cluster`].
#[derive(Default)]
pub struct ClusterBuilder {
    servers: Servers,
    routers: Routers,
    options: ClusterOptions,
    secret: Option<ClusterSecret>,
    tls: Option<super::tls::ClusterTls>,
}

impl ClusterBuilder {
    /// Starts from a server list (servers.json order).
    pub fn new(servers: Vec<ServerInfo>) -> Self {
        Self::with_servers(Servers::new(servers))
    }

    /// Starts from a shared server-list handle (updated at run time).
    pub fn with_servers(servers: Servers) -> Self {
        ClusterBuilder {
            servers,
            ..Default::default()
        }
    }

    /// Registers the router of `server_type` (Pomelo's `app.route`).
    pub fn route(mut self, server_type: &str, router: impl Router) -> Self {
        self.routers.set(server_type, router);
        self
    }

    /// Replaces the default router (crc32 of the uid / key).
    pub fn default_route(mut self, router: impl Router) -> Self {
        self.routers.set_default(router);
        self
    }

    pub fn options(mut self, options: ClusterOptions) -> Self {
        self.options = options;
        self
    }

    /// The cluster secret: sent with every call this server makes and
    /// required of every call it serves (see [`auth`](super::auth)). `None`
    /// leaves the cluster port open (development without
    /// `config/cluster.json` only; the launcher refuses it in production).
    pub fn secret(mut self, secret: Option<ClusterSecret>) -> Self {
        self.secret = secret;
        self
    }

    /// Mutual TLS on the cluster ports (see [`tls`](super::tls)): this
    /// server's calls use it, and its RPC endpoint requires it.
    pub fn tls(mut self, tls: Option<super::tls::ClusterTls>) -> Self {
        self.tls = tls;
        self
    }

    pub fn build(self) -> Arc<Cluster> {
        let o = self.options;
        let pool = Arc::new(
            Pool::with_connect_timeout(self.servers.clone(), o.connect_timeout)
                .with_key(ClusterKey::new(self.secret.as_ref()))
                .with_tls(self.tls.as_ref().map(|t| t.client.clone())),
        );
        let routers = Arc::new(self.routers);
        let push = Arc::new(PushClient::with_options(
            pool.clone(),
            o.push_timeout,
            o.queue,
        ));
        Arc::new(Cluster {
            servers: self.servers,
            forwarder: Arc::new(ClusterForwarder::with_options(
                pool.clone(),
                routers.clone(),
                o.forward_timeout,
                o.queue,
            )),
            channels: Arc::new(ChannelService::new(push.clone())),
            push,
            rpc: Rpc::with_timeout(pool.clone(), routers.clone(), o.rpc_timeout),
            session_ops: Arc::new(ClusterSessionOps::with_timeout(
                pool.clone(),
                o.session_op_timeout,
            )),
            routers,
            pool,
            secret: self.secret,
            tls: self.tls,
        })
    }
}

/// The cluster side of one server process.
pub struct Cluster {
    servers: Servers,
    pool: Arc<Pool>,
    routers: Arc<Routers>,
    forwarder: Arc<ClusterForwarder>,
    push: Arc<PushClient>,
    channels: Arc<ChannelService>,
    rpc: Rpc,
    session_ops: Arc<ClusterSessionOps>,
    secret: Option<ClusterSecret>,
    tls: Option<super::tls::ClusterTls>,
}

impl std::fmt::Debug for Cluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cluster")
            .field("servers", &self.servers.snapshot().all().len())
            .field("routers", &self.routers)
            .finish()
    }
}

impl Cluster {
    /// A cluster of one: no peers (what an app without cluster config gets).
    pub fn standalone() -> Arc<Self> {
        ClusterBuilder::default().build()
    }

    /// The live server list (replace it when membership changes).
    pub fn servers(&self) -> &Servers {
        &self.servers
    }

    pub fn pool(&self) -> &Arc<Pool> {
        &self.pool
    }

    pub fn routers(&self) -> &Arc<Routers> {
        &self.routers
    }

    /// Forwards client requests to backends (the connector's [`Forwarder`](super::Forwarder)).
    pub fn forwarder(&self) -> &Arc<ClusterForwarder> {
        &self.forwarder
    }

    /// Pushes to frontends.
    pub fn push(&self) -> &Arc<PushClient> {
        &self.push
    }

    /// This server's channels (backends).
    pub fn channels(&self) -> &Arc<ChannelService> {
        &self.channels
    }

    /// User remotes: pick a server, get its channel, call with a timeout.
    pub fn rpc(&self) -> &Rpc {
        &self.rpc
    }

    /// The secret this server's RPC endpoint requires (`None`: open).
    pub fn secret(&self) -> Option<&ClusterSecret> {
        self.secret.as_ref()
    }

    /// The TLS this server's RPC endpoint requires (`None`: plain).
    pub fn tls(&self) -> Option<&super::tls::ClusterTls> {
        self.tls.as_ref()
    }

    /// Session operations on the owning frontend (backend sessions use it).
    pub fn session_ops(&self) -> &Arc<ClusterSessionOps> {
        &self.session_ops
    }
}
