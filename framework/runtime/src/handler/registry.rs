//! The handler registry: typed `async fn`s erased to one callable shape.
//!
//! A handler is `async fn(App, Session, Req) -> Result<Resp, HandlerError>`
//! with `Req: DeserializeOwned` and `Resp: Serialize` (axum's model: the
//! signature says what the handler needs, the registry does the plumbing).
//!
//! Request bodies: Pomelo parses the body as JSON and uses `{}` when that
//! fails (§5.1). We do the same for text that is not JSON at all (so a
//! handler whose request type accepts `{}` behaves as in Pomelo), but JSON
//! that does not fit `Req` is answered `{"code":500}` with a warn log naming
//! the route and serde's message — a typed handler cannot run without its
//! input, and silently defaulting fields would hide client bugs.
//!
//! Responses: `Resp` is serialized once; a `null` result (e.g. `()`) becomes
//! `{}` as Pomelo's `next(null)` does.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;

use bytes::Bytes;
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::HandlerError;
use super::filter::Filters;
use crate::BoxFuture;
use crate::session::Session;

/// A handler with its types erased: body in, response body out.
///
/// `C` is the context every handler gets first — the app ([`App`](crate::App)
/// in a real server); the handler layer itself does not know what it is.
pub trait Handler<C>: Send + Sync + 'static {
    fn call(
        &self,
        app: C,
        session: Session,
        route: Arc<str>,
        body: Bytes,
    ) -> BoxFuture<'static, Result<Bytes, HandlerError>>;
}

/// Adapts a typed `async fn` to [`Handler`].
pub(crate) struct TypedHandler<F, Req, Resp> {
    f: F,
    _types: std::marker::PhantomData<fn(Req) -> Resp>,
}

impl<F, Req, Resp> TypedHandler<F, Req, Resp> {
    pub(crate) fn new(f: F) -> Self {
        Self {
            f,
            _types: std::marker::PhantomData,
        }
    }
}

impl<C, F, Fut, Req, Resp> Handler<C> for TypedHandler<F, Req, Resp>
where
    F: Fn(C, Session, Req) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<Resp, HandlerError>> + Send + 'static,
    Req: DeserializeOwned + Send + 'static,
    Resp: Serialize + Send + 'static,
{
    fn call(
        &self,
        app: C,
        session: Session,
        route: Arc<str>,
        body: Bytes,
    ) -> BoxFuture<'static, Result<Bytes, HandlerError>> {
        let req = match parse_body::<Req>(&body) {
            Ok(req) => req,
            Err(e) => {
                tracing::warn!(%route, error = %e, "request body does not fit the handler's type; answering 500");
                let err = HandlerError::new(format!("bad request body for `{route}`: {e}"));
                return Box::pin(async move { Err(err) });
            }
        };
        let fut = (self.f)(app, session, req);
        Box::pin(async move {
            let resp = fut.await?;
            let json = serde_json::to_vec(&resp)
                .map_err(|e| HandlerError::new(format!("response does not serialize: {e}")))?;
            if json == b"null" {
                return Ok(Bytes::from_static(b"{}"));
            }
            Ok(Bytes::from(json))
        })
    }
}

fn parse_body<Req: DeserializeOwned>(body: &[u8]) -> Result<Req, serde_json::Error> {
    match serde_json::from_slice::<Req>(body) {
        Ok(req) => Ok(req),
        Err(e) if e.is_syntax() || e.is_eof() => serde_json::from_slice::<Req>(b"{}"),
        Err(e) => Err(e),
    }
}

/// One registered route.
pub(crate) struct Entry<C> {
    pub(crate) handler: Arc<dyn Handler<C>>,
    pub(crate) filters: Filters<C>,
    pub(crate) route: Arc<str>,
    /// This route's request/response/latency figures.
    pub(crate) metrics: crate::telemetry::RouteMetrics,
}

/// Route → handler, plus per-route filters.
pub(crate) struct Registry<C> {
    pub(crate) entries: HashMap<String, Entry<C>>,
}

impl<C> Default for Registry<C> {
    fn default() -> Self {
        Registry {
            entries: HashMap::new(),
        }
    }
}

impl<C> Registry<C> {
    pub(crate) fn insert(&mut self, route: &str, handler: Arc<dyn Handler<C>>) {
        let filters = self
            .entries
            .remove(route)
            .map(|e| e.filters)
            .unwrap_or_default();
        self.entries.insert(
            route.to_owned(),
            Entry {
                handler,
                filters,
                route: Arc::from(route),
                metrics: Default::default(),
            },
        );
    }

    pub(crate) fn get(&self, route: &str) -> Option<&Entry<C>> {
        self.entries.get(route)
    }

    pub(crate) fn routes(&self) -> impl Iterator<Item = &String> {
        self.entries.keys()
    }
}
