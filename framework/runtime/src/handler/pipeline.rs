//! The dispatch pipeline: what happens to one client message, in one place.
//!
//! ```text
//! route ─ parse (§5.5) ─┬─ this server's type ─ before filters ─ handler ─ after filters ─▶ body
//!                       └─ another type ─────── Forwarder (cluster) ── timeout ─────────────▶ body
//! ```
//!
//! Every failure becomes the §5.5 answer a Pomelo client expects: `None`
//! (nothing sent) for a route without a `.` and for a notify, `{"code":500}`
//! for a malformed or unknown route, a rejected or failed handler, a failed
//! or timed-out forward; the method `constructor` kicks the session with
//! reason "attack", as Pomelo does. Each failure is logged once, naming the
//! route.
//!
//! The pipeline is generic over the context `C` handed to handlers and
//! filters (the app), so this layer does not depend on the app that owns it.

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use serde::Serialize;
use serde::de::DeserializeOwned;
use tracing::warn;

use super::filter::{AfterFilter, BeforeFilter, FilterContext, Filters};
use super::registry::{Handler, Registry, TypedHandler};
use super::{Forwarder, HandlerError, Route, RouteError};
use crate::protocol::CODE_500;
use crate::session::Session;
use crate::telemetry::RouteMetrics;

/// Handlers, filters and the forwarder of one server; built once by the app
/// builder, read-only afterwards.
pub struct Pipeline<C> {
    registry: Registry<C>,
    global: Filters<C>,
    /// Route filters registered before their route's handler (registration
    /// order does not matter); moved onto the route when it arrives.
    pending: HashMap<String, Filters<C>>,
    forwarder: Option<Arc<dyn Forwarder>>,
    forward_timeout: Duration,
    /// Routes only servers may call (see [`server_only`](Self::server_only)).
    server_only: HashSet<String>,
}

impl<C> Default for Pipeline<C> {
    fn default() -> Self {
        Pipeline {
            registry: Registry::default(),
            global: Filters::default(),
            pending: HashMap::new(),
            forwarder: None,
            forward_timeout: Duration::from_secs(10),
            server_only: HashSet::new(),
        }
    }
}

impl<C: Clone + Send + Sync + 'static> Pipeline<C> {
    /// Registers a typed handler for `route` (`serverType.handler.method`).
    pub fn handler<F, Fut, Req, Resp>(&mut self, route: &str, f: F)
    where
        F: Fn(C, Session, Req) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Resp, HandlerError>> + Send + 'static,
        Req: DeserializeOwned + Send + 'static,
        Resp: Serialize + Send + 'static,
    {
        self.raw_handler(route, Arc::new(TypedHandler::new(f)));
    }

    /// Registers an already erased handler.
    pub fn raw_handler(&mut self, route: &str, handler: Arc<dyn Handler<C>>) {
        if let Err(e) = Route::parse(route) {
            warn!(route, error = %e, "registering a handler on a route clients cannot reach");
        }
        self.registry.insert(route, handler);
        if let (Some(pending), Some(entry)) = (
            self.pending.remove(route),
            self.registry.entries.get_mut(route),
        ) {
            entry.filters.before.extend(pending.before);
            entry.filters.after.extend(pending.after);
        }
    }

    /// Marks `route` server-only (Pitaya's server-only handlers): a client
    /// calling it through [`dispatch`](Self::dispatch) gets exactly what an
    /// unknown route gets (`{"code":500}`, or nothing for a notify), it is
    /// left out of the route dictionary clients receive, and it is never
    /// forwarded for a client. Servers still reach it: [`handle`](Self::handle)
    /// (`App::handle`) on this server, or the forwarder from server code.
    ///
    /// The check runs on the frontend that received the client's message:
    /// every server of an app registers every route, so each frontend knows.
    pub fn server_only(&mut self, route: &str) {
        self.server_only.insert(route.to_owned());
    }

    /// Whether `route` is server-only.
    pub fn is_server_only(&self, route: &str) -> bool {
        self.server_only.contains(route)
    }

    /// The routes a client may call: every handler route but the
    /// server-only ones (what the route dictionary is built from).
    pub fn client_routes(&self) -> impl Iterator<Item = &String> {
        self.registry
            .routes()
            .filter(|r| !self.server_only.contains(r.as_str()))
    }

    /// A before-filter for every locally handled message.
    pub fn before(&mut self, filter: impl BeforeFilter<C>) {
        self.global.before.push(Arc::new(filter));
    }

    /// An after-filter for every locally handled message.
    pub fn after(&mut self, filter: impl AfterFilter<C>) {
        self.global.after.push(Arc::new(filter));
    }

    /// A before-filter for one route (runs after the global ones).
    pub fn before_route(&mut self, route: &str, filter: impl BeforeFilter<C>) {
        self.route_filters(route).before.push(Arc::new(filter));
    }

    /// An after-filter for one route (runs before the global ones).
    pub fn after_route(&mut self, route: &str, filter: impl AfterFilter<C>) {
        self.route_filters(route).after.push(Arc::new(filter));
    }

    fn route_filters(&mut self, route: &str) -> &mut Filters<C> {
        match self.registry.entries.get_mut(route) {
            Some(entry) => &mut entry.filters,
            None => self.pending.entry(route.to_owned()).or_default(),
        }
    }

    /// Warns about route filters whose route never got a handler (a typo
    /// would otherwise silently disable them). Call once, when built.
    pub fn check(&self) {
        for route in self.pending.keys() {
            warn!(route, "filters registered for a route without a handler");
        }
    }

    /// Where routes of other server types go, and how long they may take.
    pub fn set_forwarder(&mut self, forwarder: Option<Arc<dyn Forwarder>>, timeout: Duration) {
        self.forwarder = forwarder;
        self.forward_timeout = timeout;
    }

    pub fn forwarder(&self) -> Option<&Arc<dyn Forwarder>> {
        self.forwarder.as_ref()
    }

    /// Every registered handler route (all server types), unsorted.
    pub fn routes(&self) -> impl Iterator<Item = &String> {
        self.registry.routes()
    }

    /// The figures of a client's `route` and its label value: unknown and
    /// server-only routes share one, `unknown`, so a client cannot create
    /// series at will.
    pub fn route_metrics(&self, route: &str) -> (&RouteMetrics, &str) {
        static UNKNOWN: RouteMetrics = RouteMetrics::new();
        match self.registry.get(route) {
            Some(entry) if !self.server_only.contains(route) => (&entry.metrics, &entry.route),
            _ => (&UNKNOWN, "unknown"),
        }
    }

    /// Runs filters and the handler of `route` on this server and returns the
    /// response body (§5.5 applied). Backends call this for forwarded
    /// requests; frontends through [`dispatch`](Self::dispatch).
    pub async fn handle(
        &self,
        ctx: C,
        session: Session,
        route: &str,
        body: Bytes,
        is_request: bool,
    ) -> Option<Bytes> {
        if let Err(e) = Route::parse(route) {
            return route_error(&session, route, e, is_request).await;
        }
        let Some(entry) = self.registry.get(route) else {
            warn!(route, "no handler for route; answering 500");
            return is_request.then(|| Bytes::from_static(CODE_500));
        };
        let started = std::time::Instant::now();
        let filter_ctx = FilterContext {
            app: ctx.clone(),
            session: session.clone(),
            route: entry.route.clone(),
            body: body.clone(),
            is_request,
        };
        let mut rejected = None;
        for filter in self.global.before.iter().chain(&entry.filters.before) {
            if let Err(e) = filter.before(filter_ctx.clone()).await {
                warn!(route, error = %e, "before-filter rejected the message");
                rejected = Some(e.response_body());
                break;
            }
        }
        let response = match rejected {
            Some(body) => body,
            None => match entry
                .handler
                .call(ctx, session, entry.route.clone(), body)
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
            .chain(self.global.after.iter().rev())
        {
            filter.after(filter_ctx.clone(), response.clone()).await;
        }
        entry.metrics.handled(&entry.route, started.elapsed());
        is_request.then_some(response)
    }

    /// Frontend dispatch: a route of `own_type` → [`handle`](Self::handle);
    /// another type → the forwarder (or `{"code":500}` without one).
    pub async fn dispatch(
        &self,
        ctx: C,
        own_type: &str,
        session: Session,
        route: &str,
        body: Bytes,
        is_request: bool,
    ) -> Option<Bytes> {
        let parsed = match Route::parse(route) {
            Ok(r) => r,
            Err(e) => return route_error(&session, route, e, is_request).await,
        };
        if self.server_only.contains(route) {
            // The unknown-route answer, so a client cannot tell the route
            // exists; the log says what really happened.
            warn!(
                route,
                sid = session.id(),
                "a client called a server-only route; answering as for an unknown route"
            );
            return is_request.then(|| Bytes::from_static(CODE_500));
        }
        if parsed.server_type == own_type {
            return self.handle(ctx, session, route, body, is_request).await;
        }
        let Some(forwarder) = &self.forwarder else {
            warn!(
                route,
                server_type = parsed.server_type,
                "route is for another server type and this app has no forwarder; answering 500"
            );
            return is_request.then(|| Bytes::from_static(CODE_500));
        };
        let limit = self.forward_timeout;
        if !is_request {
            // A notify stays one on the backend: nothing to wait for.
            let call = forwarder.notify(parsed.server_type, route, session.snapshot(), body);
            match tokio::time::timeout(limit, call).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => warn!(route, error = %e, "forwarding a notify failed; dropped"),
                Err(_) => warn!(route, ?limit, "forwarding a notify timed out; dropped"),
            }
            return None;
        }
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
}

/// The §5.5 answer to a route that does not parse.
async fn route_error(
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
