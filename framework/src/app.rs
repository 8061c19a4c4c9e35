//! `App`: the runtime handle every handler gets, and its builder.
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
//! `App` is an `Arc` around [`AppInner`]; cloning is a reference-count bump,
//! so handlers take it by value. Adding a subsystem (cluster pool, routers,
//! channels, membership) means: one field in `AppInner`, one builder method,
//! one accessor.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;

use bytes::Bytes;
use serde::Serialize;
use serde::de::DeserializeOwned;
use tracing::warn;

use crate::channel::ChannelService;
use crate::cluster::{Cluster, Forwarder, Rpc};
use crate::config::ServerInfo;
use crate::connector::{Acceptor, ConnectorOptions, Tracker};
use crate::handler::error::CODE_500;
use crate::handler::filter::{AfterFilter, BeforeFilter, FilterContext, Filters};
use crate::handler::registry::{Registry, TypedHandler};
use crate::handler::{Handler, HandlerError, Route, RouteError};
use crate::protocol::RouteDictionary;
use crate::session::{Session, SessionService};

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
    /// process can compute the same route dictionary).
    registry: Registry,
    /// Filters applied to every locally handled message.
    global: Filters,
    /// Route dictionary over all handler routes + extra routes; `None` when
    /// `use_dict` is off.
    dict: Option<Arc<RouteDictionary>>,
    /// Live client sessions (empty on backends).
    sessions: SessionService,
    /// Forwards requests for other server types; `None` → `{"code":500}`.
    forwarder: Option<Arc<dyn Forwarder>>,
    /// Requests currently running (shutdown waits for them).
    inflight: Tracker,
    /// Cluster transport: servers, pool, routers, channels, remotes.
    cluster: Arc<Cluster>,
    /// Whether a cluster was configured (then `run` serves RPC on `port`).
    clustered: bool,
    // Extension point: cluster pool, routers, channel service and
    // membership go here, each with a builder method and an accessor.
}

impl App {
    /// Starts building the app of `server`.
    pub fn builder(server: ServerInfo) -> AppBuilder {
        AppBuilder {
            server,
            options: ConnectorOptions::default(),
            registry: Registry::default(),
            route_filters: HashMap::new(),
            global: Filters::default(),
            forwarder: None,
            cluster: None,
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
        self.inner.registry.routes().cloned().collect()
    }

    pub fn forwarder(&self) -> Option<&Arc<dyn Forwarder>> {
        self.inner.forwarder.as_ref()
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

    pub(crate) fn inflight(&self) -> &Tracker {
        &self.inner.inflight
    }

    /// Binds `host:clientPort` and serves clients until `shutdown` resolves
    /// (see [`Acceptor::run`] for the graceful shutdown steps).
    ///
    /// With a cluster configured and a `port` in servers.json, also serves
    /// the cluster RPC (forwarded requests, pushes, remotes) until then; a
    /// server without `clientPort` serves RPC only.
    pub async fn run(&self, shutdown: impl Future<Output = ()>) -> std::io::Result<()> {
        let rpc = match self.server().port {
            Some(_) if self.inner.clustered => Some(self.inner.cluster.start(self).await?),
            _ => None,
        };
        // Started by `shaddock start`? Then join the master's membership
        // stream once every port is bound (see `master::agent::attach`).
        if self.server().client_port.is_some() {
            let acceptor = Acceptor::bind(self.clone()).await?;
            let _master = crate::master::agent::attach(self);
            acceptor.run(shutdown).await;
        } else {
            let _master = crate::master::agent::attach(self);
            shutdown.await;
        }
        if let Some(rpc) = rpc {
            rpc.shutdown(self.inner.options.shutdown_grace).await;
        }
        Ok(())
    }

    /// Runs filters and the handler of `route` locally and returns the
    /// response body with §5.5 applied: `None` for a notify and for routes
    /// Pomelo drops (no `.`; method `constructor`, which also kicks the
    /// session with reason "attack"), `{"code":500}` for a malformed or
    /// unknown route or a failed handler/filter.
    ///
    /// Backends call this for forwarded requests.
    pub async fn handle(
        &self,
        session: Session,
        route: &str,
        body: Bytes,
        is_request: bool,
    ) -> Option<Bytes> {
        match Route::parse(route) {
            Ok(_) => {}
            Err(e) => return self.route_error(&session, route, e, is_request).await,
        }
        let Some(entry) = self.inner.registry.get(route) else {
            warn!(route, "no handler for route; answering 500");
            return is_request.then(|| Bytes::from_static(CODE_500));
        };
        let ctx = FilterContext {
            app: self.clone(),
            session: session.clone(),
            route: entry.route.clone(),
            body: body.clone(),
            is_request,
        };
        let mut rejected = None;
        for filter in self.inner.global.before.iter().chain(&entry.filters.before) {
            if let Err(e) = filter.before(ctx.clone()).await {
                warn!(route, error = %e, "before-filter rejected the message");
                rejected = Some(e.response_body());
                break;
            }
        }
        let response = match rejected {
            Some(body) => body,
            None => match entry
                .handler
                .call(self.clone(), session, entry.route.clone(), body)
                .await
            {
                Ok(resp) => resp,
                Err(e) => {
                    warn!(route, error = %e, "handler failed");
                    e.response_body()
                }
            },
        };
        for filter in entry
            .filters
            .after
            .iter()
            .rev()
            .chain(self.inner.global.after.iter().rev())
        {
            filter.after(ctx.clone(), response.clone()).await;
        }
        is_request.then_some(response)
    }

    /// Frontend dispatch: local server type → [`handle`](Self::handle);
    /// another type → the forwarder (or `{"code":500}` without one).
    pub(crate) async fn dispatch(
        &self,
        session: Session,
        route: &str,
        body: Bytes,
        is_request: bool,
    ) -> Option<Bytes> {
        let parsed = match Route::parse(route) {
            Ok(r) => r,
            Err(e) => return self.route_error(&session, route, e, is_request).await,
        };
        if parsed.server_type == self.server_type() {
            return self.handle(session, route, body, is_request).await;
        }
        let Some(forwarder) = &self.inner.forwarder else {
            warn!(
                route,
                server_type = parsed.server_type,
                "route is for another server type and this app has no forwarder; answering 500"
            );
            return is_request.then(|| Bytes::from_static(CODE_500));
        };
        let limit = self.inner.options.forward_timeout;
        let call = forwarder.forward(parsed.server_type, route, session.snapshot(), body);
        let response = match tokio::time::timeout(limit, call).await {
            // Empty: the backend has no response to send (§5.5 drops).
            Ok(Ok(resp)) if resp.is_empty() => return None,
            Ok(Ok(resp)) => resp,
            Ok(Err(e)) => {
                warn!(route, error = %e, "forwarding failed; answering 500");
                Bytes::from_static(CODE_500)
            }
            Err(_) => {
                warn!(route, ?limit, "forwarded request timed out; answering 500");
                Bytes::from_static(CODE_500)
            }
        };
        is_request.then_some(response)
    }

    async fn route_error(
        &self,
        session: &Session,
        route: &str,
        error: RouteError,
        is_request: bool,
    ) -> Option<Bytes> {
        match error {
            RouteError::NoDot => {
                warn!(route, "route has no `.`; message dropped");
                None
            }
            RouteError::NotThreeParts => {
                warn!(
                    route,
                    "route is not serverType.handler.method; answering 500"
                );
                is_request.then(|| Bytes::from_static(CODE_500))
            }
            RouteError::Constructor => {
                warn!(
                    route,
                    "method `constructor` requested; kicking the session (attack)"
                );
                let _ = session.kick("attack").await;
                None
            }
        }
    }
}

/// Builds an [`App`]. Registration order does not matter.
pub struct AppBuilder {
    server: ServerInfo,
    options: ConnectorOptions,
    registry: Registry,
    route_filters: HashMap<String, Filters>,
    global: Filters,
    forwarder: Option<Arc<dyn Forwarder>>,
    cluster: Option<Arc<Cluster>>,
}

impl AppBuilder {
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
        if let Err(e) = Route::parse(route) {
            warn!(route, error = %e, "registering a handler on a route clients cannot reach");
        }
        self.registry
            .insert(route, Arc::new(TypedHandler::new(f)) as Arc<dyn Handler>);
        self
    }

    /// Registers an already erased handler.
    pub fn raw_handler(mut self, route: &str, handler: Arc<dyn Handler>) -> Self {
        self.registry.insert(route, handler);
        self
    }

    /// A before-filter for every locally handled message.
    pub fn before(mut self, filter: impl BeforeFilter) -> Self {
        self.global.before.push(Arc::new(filter));
        self
    }

    /// An after-filter for every locally handled message.
    pub fn after(mut self, filter: impl AfterFilter) -> Self {
        self.global.after.push(Arc::new(filter));
        self
    }

    /// A before-filter for one route (runs after the global ones).
    pub fn before_route(mut self, route: &str, filter: impl BeforeFilter) -> Self {
        self.route_filters
            .entry(route.to_owned())
            .or_default()
            .before
            .push(Arc::new(filter));
        self
    }

    /// An after-filter for one route (runs before the global ones).
    pub fn after_route(mut self, route: &str, filter: impl AfterFilter) -> Self {
        self.route_filters
            .entry(route.to_owned())
            .or_default()
            .after
            .push(Arc::new(filter));
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

    pub fn build(mut self) -> App {
        for (route, filters) in self.route_filters {
            match self.registry.entries.get_mut(&route) {
                Some(entry) => entry.filters = filters,
                None => warn!(route, "filters registered for a route without a handler"),
            }
        }
        let dict = self.options.use_dict.then(|| {
            Arc::new(RouteDictionary::new(
                self.registry.routes().cloned(),
                self.options.extra_dict_routes.iter().cloned(),
            ))
        });
        let sessions = SessionService::new(
            self.server.id.as_str(),
            dict.clone(),
            self.options.queue_bound,
        );
        App {
            inner: Arc::new(AppInner {
                server: self.server,
                options: self.options,
                registry: self.registry,
                global: self.global,
                dict,
                sessions,
                forwarder: self.forwarder.or_else(|| {
                    let c = self.cluster.as_ref()?;
                    Some(c.forwarder().clone() as Arc<dyn Forwarder>)
                }),
                inflight: Tracker::default(),
                clustered: self.cluster.is_some(),
                cluster: self.cluster.unwrap_or_else(Cluster::standalone),
            }),
        }
    }
}
