//! `App`: one server process — the handle every handler gets, and its
//! builder.
//!
//! ```text
//! let app = App::builder(server_info)
//!     .handler("connector.entryHandler.enter", enter)
//!     .before(|ctx: FilterContext| async move { Ok(()) })
//!     .connector(ConnectorOptions::default())
//!     .build();
//! app.run(shutdown_signal()).await?;
//! ```
//!
//! The app is where the layers meet: it implements the connector's
//! [`Frontend`] (client messages go into its handler [`Pipeline`]) and the
//! cluster's [`LocalNode`](crate::cluster::LocalNode) (forwarded requests
//! and pushes from other servers, in `node`), owns the typed remotes
//! ([`remotes`]) and runs the [`Discovery`] backend that keeps the server
//! list true.
//!
//! `App` is an `Arc` around its parts; cloning is a reference-count bump,
//! so handlers take it by value.

pub mod admin;
mod events;
mod node;
pub mod remotes;
mod restore;

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use bytes::Bytes;
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

pub use self::remotes::Remotes;
use crate::channel::{Channel, ChannelService};
use crate::cluster::directory::{UidClaims, UidDirectory};
use crate::cluster::shard::{ShardKeeper, announce_restart};
use crate::cluster::{Cluster, Forwarder, RemoteService, Rpc, RpcServer};
use crate::config::ServerInfo;
use crate::connector::{Acceptor, CheckClient, ConnectorOptions, Frontend, Tracker};
use crate::discovery::{Discovery, DiscoveryContext, StaticDiscovery};
use crate::handler::{self, AfterFilter, BeforeFilter, Handler, HandlerError, Pipeline};
use crate::protocol::RouteDictionary;
use crate::session::{Resume, Session, SessionService};

/// How long a stopping server may take to leave the cluster (deregister,
/// and for a backend the hand-off to its peers) before its RPC server stops.
const LEAVE_LIMIT: std::time::Duration = std::time::Duration::from_secs(5);

/// What a filter of a Shaddock server sees (the handler layer's
/// [`FilterContext`](handler::FilterContext) with this app as context).
pub type FilterContext = handler::FilterContext<App>;

/// Cheap-to-clone handle to one server process.
#[derive(Clone)]
pub struct App {
    inner: Arc<AppInner>,
}

/// Everything the app owns. Built once by [`AppBuilder::build`], read-only
/// afterwards (subsystems keep their own interior mutability).
struct AppInner {
    /// This server's servers.json entry.
    server: ServerInfo,
    /// Client-facing connector settings (frontends).
    options: ConnectorOptions,
    /// Handlers of every server type (one binary serves all types, so every
    /// process can compute the same route dictionary), filters, forwarder.
    pipeline: Pipeline<App>,
    /// Route dictionary over all handler routes + extra routes; `None` when
    /// `use_dict` is off.
    dict: Option<Arc<RouteDictionary>>,
    /// Live client sessions (empty on backends).
    sessions: SessionService,
    /// Requests currently running (shutdown waits for them).
    inflight: Tracker,
    /// Cluster transport: servers, pool, routers, channels, rpc.
    cluster: Arc<Cluster>,
    /// Whether a cluster was configured (then `run` serves RPC on `port`).
    clustered: bool,
    /// Typed remotes this server type serves.
    remotes: Remotes,
    /// Keeps `cluster.servers()` true while the server runs.
    discovery: Arc<dyn Discovery>,
    /// Server types whose channels are sharded by key (see
    /// [`AppBuilder::shard`]).
    sharded: Vec<String>,
    /// This server's keeper, when its own type is sharded.
    keeper: Option<ShardKeeper>,
    /// Operators' actions this server runs (see [`admin`]).
    actions: admin::AdminActions,
    /// An operator drained this frontend: no new connections.
    draining: AtomicBool,
    /// Backend: what to do with the session events it subscribed to.
    session_event: Option<events::SessionEventHook>,
    /// Frontend: run for a session rebuilt from a lost frontend's token.
    restored: Option<RestoredHook>,
    /// This server's part of the uid directory, when its type keeps it.
    directory: Option<UidDirectory>,
}

/// What [`AppBuilder::on_session_restored`] runs.
type RestoredHook = Arc<dyn Fn(App, Session) + Send + Sync>;

impl App {
    /// Starts building the app of `server`.
    pub fn builder(server: ServerInfo) -> AppBuilder {
        AppBuilder {
            server,
            options: ConnectorOptions::default(),
            pipeline: Pipeline::default(),
            forwarder: None,
            cluster: None,
            remotes: Remotes::default(),
            discovery: None,
            sharded: Vec::new(),
            lost: None,
            check_client: None,
            actions: admin::AdminActions::default(),
            events_to: Vec::new(),
            session_event: None,
            restored: None,
            directory: None,
        }
    }

    pub fn server(&self) -> &ServerInfo {
        &self.inner.server
    }

    pub fn server_id(&self) -> &str {
        &self.inner.server.id
    }

    pub fn server_type(&self) -> &str {
        &self.inner.server.server_type
    }

    /// The frontend's session service.
    pub fn sessions(&self) -> &SessionService {
        &self.inner.sessions
    }

    pub fn connector_options(&self) -> &ConnectorOptions {
        &self.inner.options
    }

    /// The route dictionary, when `use_dict` is on.
    pub fn dictionary(&self) -> Option<&Arc<RouteDictionary>> {
        self.inner.dict.as_ref()
    }

    /// Every registered handler route (all server types), unsorted.
    pub fn routes(&self) -> Vec<String> {
        self.inner.pipeline.routes().cloned().collect()
    }

    pub fn forwarder(&self) -> Option<&Arc<dyn Forwarder>> {
        self.inner.pipeline.forwarder()
    }

    /// The cluster side of this server (a standalone one without config).
    pub fn cluster(&self) -> &Arc<Cluster> {
        &self.inner.cluster
    }

    /// User remotes: `app.rpc().channel_by_key("chat", &rid)`.
    pub fn rpc(&self) -> &Rpc {
        self.inner.cluster.rpc()
    }

    /// This server's channels (backends push through them).
    pub fn channels(&self) -> &Arc<ChannelService> {
        self.inner.cluster.channels()
    }

    pub fn inflight(&self) -> &Tracker {
        &self.inner.inflight
    }

    /// The keeper of this server's sharded channels, when its type is
    /// sharded.
    pub fn shard_keeper(&self) -> Option<&ShardKeeper> {
        self.inner.keeper.as_ref()
    }

    /// Starts this server's RPC endpoint (cluster service + its type's
    /// remotes) on `host:port` of its entry.
    pub async fn start_rpc(&self) -> std::io::Result<RpcServer> {
        RpcServer::start(
            self.server(),
            self.node(),
            self.remote_routes(),
            self.inner.cluster.secret().cloned(),
            self.inner.cluster.tls().map(|t| t.server.clone()),
        )
        .await
    }

    /// Starts this server's RPC endpoint on an already bound listener.
    pub fn serve_rpc(&self, listener: TcpListener) -> std::io::Result<RpcServer> {
        RpcServer::serve_secured(
            listener,
            self.node(),
            self.remote_routes(),
            self.inner.cluster.secret().cloned(),
            self.inner.cluster.tls().map(|t| t.server.clone()),
        )
    }

    fn node(&self) -> Arc<node::AppNode> {
        Arc::new(node::AppNode::new(
            self.clone(),
            self.inner.cluster.session_ops().clone(),
        ))
    }

    fn remote_routes(&self) -> tonic::service::Routes {
        self.inner.remotes.routes_for(self)
    }

    /// Serves until `shutdown` resolves (or the discovery backend asks this
    /// server to stop), then shuts down gracefully:
    ///
    /// 1. with a cluster configured and a `port`, starts the RPC server;
    /// 2. with a `clientPort`, binds the client listener;
    /// 3. joins the cluster through the [`Discovery`] backend, once every
    ///    port is bound (so nobody is routed to a server not yet listening);
    /// 4. serves; on shutdown the acceptor stops accepting, lets requests
    ///    finish and kicks clients (see [`Acceptor::run`]);
    /// 5. leaves the cluster, then stops the RPC server.
    pub async fn run(&self, shutdown: impl Future<Output = ()>) -> std::io::Result<()> {
        let rpc = match self.server().port {
            Some(_) if self.inner.clustered => Some(self.start_rpc().await?),
            _ => None,
        };
        let acceptor = match self.server().client_port {
            Some(_) => Some(Acceptor::bind(self.clone()).await?),
            None => None,
        };
        let stop_requested = CancellationToken::new();
        let (membership, following) = self.join_cluster(stop_requested.clone()).await?;
        crate::telemetry::health().set_serving();
        // Key-owned state: a backend of a sharded type rebuilds its rooms
        // from the frontends; a frontend asks the owners to forget whatever
        // a previous incarnation of it had registered, before any client
        // arrives.
        if let Some(keeper) = &self.inner.keeper {
            keeper.start(membership.clone());
        }
        if let Some(directory) = &self.inner.directory {
            directory.start(membership.clone());
        }
        // A frontend without a cluster port (a gate) registers no keys.
        if self.server().frontend && self.server().port.is_some() && self.inner.clustered {
            for server_type in &self.inner.sharded {
                announce_restart(
                    self.cluster().pool(),
                    server_type,
                    self.server_id(),
                    membership.clone(),
                )
                .await;
            }
        }
        let shutdown = async {
            tokio::select! {
                _ = shutdown => {}
                _ = stop_requested.cancelled() => {
                    tracing::info!(server = %self.server_id(), "stop requested by {}", self.inner.discovery.name());
                }
            }
            crate::telemetry::health().set_draining();
        };
        match acceptor {
            Some(acceptor) => acceptor.run(shutdown).await,
            None => shutdown.await,
        }
        // Leave the cluster before the RPC server stops: a registry backend
        // deregisters and lets a backend's peers take over (bounded).
        membership.cancel();
        let _ = tokio::time::timeout(LEAVE_LIMIT, following).await;
        if let Some(rpc) = rpc {
            rpc.shutdown(self.inner.options.shutdown_grace).await;
        }
        Ok(())
    }

    /// Starts the discovery backend; the returned token ends it, and the
    /// task ends once it left the cluster.
    async fn join_cluster(
        &self,
        request_stop: CancellationToken,
    ) -> std::io::Result<(CancellationToken, tokio::task::JoinHandle<()>)> {
        let sessions = self.sessions().clone();
        let ctx = DiscoveryContext {
            me: self.server().clone(),
            servers: self.cluster().servers().clone(),
            stop: CancellationToken::new(),
            request_stop,
            load: Arc::new(move || sessions.count() as u64),
            actions: admin::runner(self),
        };
        let stop = ctx.stop.clone();
        let discovery = &self.inner.discovery;
        let following = discovery
            .start(ctx)
            .await
            .map_err(|e| std::io::Error::other(format!("cannot join the cluster: {e}")))?;
        Ok((stop, following))
    }

    /// Runs filters and the handler of `route` on this server and returns the
    /// response body (§5.5 applied, see [`Pipeline::handle`]). Backends call
    /// this for forwarded requests.
    pub async fn handle(
        &self,
        session: Session,
        route: &str,
        body: Bytes,
        is_request: bool,
    ) -> Option<Bytes> {
        self.inner
            .pipeline
            .handle(self.clone(), session, route, body, is_request)
            .await
    }
}

impl Frontend for App {
    fn server(&self) -> &ServerInfo {
        App::server(self)
    }

    fn connector_options(&self) -> &ConnectorOptions {
        App::connector_options(self)
    }

    fn sessions(&self) -> &SessionService {
        App::sessions(self)
    }

    fn draining(&self) -> bool {
        self.inner.draining.load(Ordering::SeqCst)
    }

    fn dictionary(&self) -> Option<&Arc<RouteDictionary>> {
        App::dictionary(self)
    }

    fn inflight(&self) -> &Tracker {
        App::inflight(self)
    }

    fn restore_session(
        &self,
        claims: crate::session::TokenClaims,
    ) -> impl Future<Output = Result<Arc<crate::session::LiveSession>, String>> + Send {
        let app = self.clone();
        async move { restore::restore_session(&app, claims).await }
    }

    /// A local route runs here; another type's goes to the forwarder.
    fn dispatch(
        &self,
        session: Session,
        route: &str,
        body: Bytes,
        is_request: bool,
    ) -> impl Future<Output = Option<Bytes>> + Send {
        // Requests and responses by route, and the time between them.
        let (metrics, label) = self.inner.pipeline.route_metrics(route);
        let started = std::time::Instant::now();
        metrics.request(label);
        let call = self.inner.pipeline.dispatch(
            self.clone(),
            self.server_type(),
            session,
            route,
            body,
            is_request,
        );
        async move {
            let response = call.await;
            metrics.response(label, started, response.as_deref());
            // One line per request at debug (in the request's span: route,
            // uid, trace_id), the frontend's end of a traced request.
            tracing::debug!(
                elapsed_us = started.elapsed().as_micros() as u64,
                "client request answered"
            );
            response
        }
    }
}

/// What [`AppBuilder::on_member_lost`] runs: the app, the channel, the uid.
/// Adds `server_type` to `types` once.
fn add_type(types: &mut Vec<String>, server_type: &str) {
    if !types.iter().any(|t| t == server_type) {
        types.push(server_type.to_string());
    }
}

type MemberLostHook = Arc<dyn Fn(App, Arc<Channel>, String) + Send + Sync>;

/// Builds an [`App`]. Registration order does not matter.
pub struct AppBuilder {
    sharded: Vec<String>,
    lost: Option<MemberLostHook>,
    server: ServerInfo,
    options: ConnectorOptions,
    pipeline: Pipeline<App>,
    forwarder: Option<Arc<dyn Forwarder>>,
    cluster: Option<Arc<Cluster>>,
    remotes: Remotes,
    discovery: Option<Arc<dyn Discovery>>,
    check_client: Option<CheckClient>,
    actions: admin::AdminActions,
    /// Server types told of session binds and closes.
    events_to: Vec<String>,
    session_event: Option<events::SessionEventHook>,
    restored: Option<RestoredHook>,
    /// The server type that keeps the uid directory.
    directory: Option<String>,
}

impl AppBuilder {
    /// Registers the admin action `name` (see [`admin`]): an operator's
    /// command the master passes on (`shaddock broadcast`, …), run with its
    /// JSON arguments on every server the master selects. Return
    /// `Ok(None)` when it does not apply on this server (the chat's
    /// `close-room` on a chat server that does not hold the room), so one
    /// command can go to every server and only the right ones act. Replaces
    /// a framework action of the same name.
    pub fn admin_action<F, Fut>(mut self, name: &str, action: F) -> Self
    where
        F: Fn(App, serde_json::Value) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = admin::ActionResult> + Send + 'static,
    {
        self.actions.add(
            name,
            Arc::new(move |app, args| Box::pin(action(app, args))),
            false,
        );
        self
    }

    /// Registers the read-only admin query `name`: like
    /// [`admin_action`](Self::admin_action), but it may also be asked as a
    /// query (a dashboard polling it), which the master does not record in
    /// its log. It must change nothing.
    pub fn admin_query<F, Fut>(mut self, name: &str, query: F) -> Self
    where
        F: Fn(App, serde_json::Value) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = admin::ActionResult> + Send + 'static,
    {
        self.actions.add(
            name,
            Arc::new(move |app, args| Box::pin(query(app, args))),
            true,
        );
        self
    }

    /// Pomelo's `checkClient(type, version)`: every client handshake's
    /// `sys.type` and `sys.version` go through `check`; `false` answers
    /// `{"code":501}` and closes the connection (clients report an old
    /// client). Kept over whatever [`connector`](Self::connector) sets.
    pub fn check_client(
        mut self,
        check: impl Fn(Option<&str>, Option<&str>) -> bool + Send + Sync + 'static,
    ) -> Self {
        self.check_client = Some(CheckClient::new(check));
        self
    }

    /// Registers a typed handler for `route` (`serverType.handler.method`).
    /// Register the handlers of every server type: the route dictionary is
    /// built from all of them.
    pub fn handler<F, Fut, Req, Resp>(mut self, route: &str, f: F) -> Self
    where
        F: Fn(App, Session, Req) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Resp, HandlerError>> + Send + 'static,
        Req: DeserializeOwned + Send + 'static,
        Resp: Serialize + Send + 'static,
    {
        self.pipeline.handler(route, f);
        self
    }

    /// Registers a typed handler that only servers may call: clients get
    /// the unknown-route answer (see [`Pipeline::server_only`]).
    pub fn server_handler<F, Fut, Req, Resp>(self, route: &str, f: F) -> Self
    where
        F: Fn(App, Session, Req) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Resp, HandlerError>> + Send + 'static,
        Req: DeserializeOwned + Send + 'static,
        Resp: Serialize + Send + 'static,
    {
        self.handler(route, f).server_only(route)
    }

    /// Marks an already registered (or yet to be registered) route
    /// server-only (see [`Pipeline::server_only`]).
    pub fn server_only(mut self, route: &str) -> Self {
        self.pipeline.server_only(route);
        self
    }

    /// Registers an already erased handler.
    pub fn raw_handler(mut self, route: &str, handler: Arc<dyn Handler<App>>) -> Self {
        self.pipeline.raw_handler(route, handler);
        self
    }

    /// A before-filter for every locally handled message.
    pub fn before(mut self, filter: impl BeforeFilter<App>) -> Self {
        self.pipeline.before(filter);
        self
    }

    /// An after-filter for every locally handled message.
    pub fn after(mut self, filter: impl AfterFilter<App>) -> Self {
        self.pipeline.after(filter);
        self
    }

    /// A before-filter for one route (runs after the global ones).
    pub fn before_route(mut self, route: &str, filter: impl BeforeFilter<App>) -> Self {
        self.pipeline.before_route(route, filter);
        self
    }

    /// An after-filter for one route (runs before the global ones).
    pub fn after_route(mut self, route: &str, filter: impl AfterFilter<App>) -> Self {
        self.pipeline.after_route(route, filter);
        self
    }

    pub fn connector(mut self, options: ConnectorOptions) -> Self {
        self.options = options;
        self
    }

    /// Forwards requests whose server type is not this server's.
    pub fn forwarder(mut self, forwarder: Arc<dyn Forwarder>) -> Self {
        self.forwarder = Some(forwarder);
        self
    }

    /// Joins a cluster (see [`ClusterBuilder`](crate::cluster::ClusterBuilder)):
    /// routes of other server types are forwarded through it (unless a
    /// forwarder was set explicitly) and `run` serves its RPC.
    pub fn cluster(mut self, cluster: Arc<Cluster>) -> Self {
        self.cluster = Some(cluster);
        self
    }

    /// Serves the typed remote `svc` (a generated `FooServer`) on every
    /// server of `server_type`.
    pub fn remote<S: RemoteService>(mut self, server_type: &str, svc: S) -> Self {
        self.remotes.add(server_type, svc);
        self
    }

    /// Serves the typed remote `make(app)` builds when the server starts
    /// (for implementations that need the app: channels, rpc).
    pub fn remote_with<S: RemoteService>(
        mut self,
        server_type: &str,
        make: impl Fn(&App) -> S + Send + Sync + 'static,
    ) -> Self {
        self.remotes.add_with(server_type, make);
        self
    }

    /// How this server learns the cluster's membership (default: the
    /// static list it was built with).
    pub fn discovery(mut self, discovery: Arc<dyn Discovery>) -> Self {
        self.discovery = Some(discovery);
        self
    }

    /// Declares the channels of `server_type` sharded by key: a channel
    /// lives on the server that type's router picks for its name, and is
    /// rebuilt there from the frontends' registrations
    /// (`Session::register_key`) when that server restarts or the server
    /// list changes (see [`crate::cluster::shard`]). Register it on every
    /// server of the app (frontends take part too). Use a router that moves
    /// little, such as [`RendezvousRouter`](crate::router::RendezvousRouter).
    pub fn shard(mut self, server_type: &str) -> Self {
        add_type(&mut self.sharded, server_type);
        self
    }

    /// Runs `hook(app, channel, uid)` when reconciliation finds a member
    /// whose frontend no longer has it (a connector crashed or left): tell
    /// the others (chat: push `onLeave`), destroy a channel left empty. It
    /// must not block; spawn for async work.
    pub fn on_member_lost(
        mut self,
        hook: impl Fn(App, Arc<Channel>, String) + Send + Sync + 'static,
    ) -> Self {
        self.lost = Some(Arc::new(hook));
        self
    }

    /// Makes every frontend tell each server of `server_type` when a
    /// session is bound to a uid and when a bound session closes (Pitaya
    /// #382; see [`crate::cluster::session_events`]). Register it on every
    /// server of the app, with [`on_session_event`](Self::on_session_event)
    /// for what the backend does with them.
    pub fn session_events_to(mut self, server_type: &str) -> Self {
        add_type(&mut self.events_to, server_type);
        self
    }

    /// Runs `hook(app, event)` on this server for each session event a
    /// frontend sends it. It must not block; spawn for async work.
    pub fn on_session_event(
        mut self,
        hook: impl Fn(App, crate::cluster::session_events::SessionEvent) + Send + Sync + 'static,
    ) -> Self {
        self.session_event = Some(Arc::new(hook));
        self
    }

    /// Runs `hook(app, session)` on a frontend for each session rebuilt
    /// from the resume token of a frontend that was lost (a crash, a lost
    /// host; `app/restore.rs`). The session comes back with its uid,
    /// settings, keys and held pushes, but not with its `closed` listeners
    /// — those are code: add them here as the login handler did (the chat:
    /// leave the room when the user goes). It must not block.
    pub fn on_session_restored(
        mut self,
        hook: impl Fn(App, Session) + Send + Sync + 'static,
    ) -> Self {
        self.restored = Some(Arc::new(hook));
        self
    }

    /// Keeps a cluster-wide uid directory on the servers of `server_type`
    /// (`cluster/directory.rs`): every bind on a frontend is claimed there,
    /// so a second login of a uid through another frontend meets the
    /// claiming frontend's `duplicate-login` (`refuse`: its bind fails with
    /// `SessionError::Duplicate`; `kick`: the older session is kicked) —
    /// for every uid, whether or not it is in a room. Register it on every
    /// server of the app, like [`shard`](Self::shard).
    pub fn uid_directory(mut self, server_type: &str) -> Self {
        self.directory = Some(server_type.to_owned());
        self
    }

    pub fn build(mut self) -> App {
        self.pipeline.check();
        // Fixed at start: a resume token names the process that issued it.
        let _ = crate::discovery::incarnation();
        if let Some(check) = self.check_client.take() {
            self.options.check_client = Some(check);
        }
        let forwarder = self.forwarder.or_else(|| {
            let c = self.cluster.as_ref()?;
            Some(c.forwarder().clone() as Arc<dyn Forwarder>)
        });
        self.pipeline
            .set_forwarder(forwarder, self.options.forward_timeout);
        let dict = self.options.use_dict.then(|| {
            Arc::new(RouteDictionary::new(
                self.pipeline.client_routes().cloned(),
                self.options.extra_dict_routes.iter().cloned(),
            ))
        });
        let sessions = SessionService::new(
            self.server.id.as_str(),
            dict.clone(),
            self.options.queue_bound,
        )
        .with_queue_bytes(self.options.queue_bytes)
        .with_protos(self.options.protos.clone());
        let secret = self.cluster.as_ref().and_then(|c| c.secret());
        let sessions = sessions.with_resume(Resume::new(
            self.server.id.as_str(),
            self.options.resume_window,
            // As many as the connections allowed: each may hold a queue.
            self.options.max_connections.unwrap_or(usize::MAX),
            secret.map(|s| s.expose()),
        ));
        let sessions = match &self.cluster {
            Some(cluster) if self.server.frontend && !self.events_to.is_empty() => sessions
                .with_bind_hook(events::bind_hook(
                    cluster.pool().clone(),
                    self.events_to.clone(),
                )),
            _ => sessions,
        };
        let sessions = match (&self.cluster, &self.directory) {
            (Some(cluster), Some(dir_type))
                if self.server.frontend && self.server.port.is_some() =>
            {
                sessions.with_uid_claims(Arc::new(UidClaims::new(
                    dir_type,
                    &self.server.id,
                    self.options.duplicate_login == crate::connector::DuplicateLogin::Kick,
                    cluster.servers().clone(),
                    cluster.pool().clone(),
                    cluster.routers().clone(),
                )))
            }
            _ => sessions,
        };
        let directory = match (&self.cluster, &self.directory) {
            (Some(cluster), Some(dir_type)) if *dir_type == self.server.server_type => {
                Some(UidDirectory::new(
                    &self.server.id,
                    dir_type,
                    cluster.servers().clone(),
                    cluster.pool().clone(),
                    cluster.routers().clone(),
                ))
            }
            _ => None,
        };
        let clustered = self.cluster.is_some();
        let cluster = self.cluster.unwrap_or_else(Cluster::standalone);
        let keeper = (clustered && self.sharded.contains(&self.server.server_type)).then(|| {
            ShardKeeper::new(
                self.server.clone(),
                cluster.servers().clone(),
                cluster.pool().clone(),
                cluster.routers().clone(),
                cluster.channels().clone(),
            )
        });
        let app = App {
            inner: Arc::new(AppInner {
                server: self.server,
                options: self.options,
                pipeline: self.pipeline,
                dict,
                sessions,
                inflight: Tracker::default(),
                clustered,
                cluster,
                remotes: self.remotes,
                discovery: self.discovery.unwrap_or_else(|| Arc::new(StaticDiscovery)),
                sharded: self.sharded,
                keeper,
                actions: self.actions.with_builtins(),
                draining: AtomicBool::new(false),
                session_event: self.session_event,
                restored: self.restored,
                directory,
            }),
        };
        if let Some(hook) = self.lost {
            // Weak: the channel service lives inside the app; a strong
            // reference would keep the app alive for ever.
            let weak = Arc::downgrade(&app.inner);
            app.channels()
                .on_member_lost(Arc::new(move |channel: Arc<Channel>, uid: String| {
                    if let Some(inner) = weak.upgrade() {
                        hook(App { inner }, channel, uid);
                    }
                }));
        }
        app
    }
}
