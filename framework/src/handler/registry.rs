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
use crate::app::App;
use crate::cluster::BoxFuture;
use crate::session::Session;

/// A handler with its types erased: body in, response body out.
pub trait Handler: Send + Sync + 'static {
    fn call(
        &self,
        app: App,
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

impl<F, Fut, Req, Resp> Handler for TypedHandler<F, Req, Resp>
where
    F: Fn(App, Session, Req) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<Resp, HandlerError>> + Send + 'static,
    Req: DeserializeOwned + Send + 'static,
    Resp: Serialize + Send + 'static,
{
    fn call(
        &self,
        app: App,
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
#[derive(Clone)]
pub(crate) struct Entry {
    pub(crate) handler: Arc<dyn Handler>,
    pub(crate) filters: Filters,
    pub(crate) route: Arc<str>,
}

/// Route → handler, plus per-route filters.
#[derive(Clone, Default)]
pub(crate) struct Registry {
    pub(crate) entries: HashMap<String, Entry>,
}

impl Registry {
    pub(crate) fn insert(&mut self, route: &str, handler: Arc<dyn Handler>) {
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
            },
        );
    }

    pub(crate) fn get(&self, route: &str) -> Option<&Entry> {
        self.entries.get(route)
    }

    pub(crate) fn routes(&self) -> impl Iterator<Item = &String> {
        self.entries.keys()
    }
}
