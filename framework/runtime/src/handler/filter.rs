//! Before/after filters (§6.1), global or per route.
//!
//! A filter is any `Fn(FilterContext) -> impl Future` (closures and async
//! fns work), or a type implementing the trait. Before-filters run in
//! registration order — global first, then the route's — and one returning
//! `Err` stops the request: the client gets the error's §5.5 body. After-
//! filters run in reverse order (the route's, then global ones) and see the
//! response body; they cannot change it (as in Pomelo).

use std::future::Future;
use std::sync::Arc;

use bytes::Bytes;

use super::HandlerError;
use crate::BoxFuture;
use crate::session::Session;

/// What a filter sees about one message. `C` is the app's context
/// ([`App`](crate::App) in a server; `shaddock::app::FilterContext` names
/// that one).
#[derive(Clone)]
pub struct FilterContext<C> {
    pub app: C,
    pub session: Session,
    pub route: Arc<str>,
    /// The raw request body (JSON text).
    pub body: Bytes,
    /// `false` for a notify.
    pub is_request: bool,
}

/// Runs before the handler; `Err` rejects the message.
pub trait BeforeFilter<C>: Send + Sync + 'static {
    fn before(&self, ctx: FilterContext<C>) -> BoxFuture<'static, Result<(), HandlerError>>;
}

/// Runs after the handler with the response body it produced.
pub trait AfterFilter<C>: Send + Sync + 'static {
    fn after(&self, ctx: FilterContext<C>, response: Bytes) -> BoxFuture<'static, ()>;
}

impl<C, F, Fut> BeforeFilter<C> for F
where
    F: Fn(FilterContext<C>) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<(), HandlerError>> + Send + 'static,
{
    fn before(&self, ctx: FilterContext<C>) -> BoxFuture<'static, Result<(), HandlerError>> {
        Box::pin(self(ctx))
    }
}

impl<C, F, Fut> AfterFilter<C> for F
where
    F: Fn(FilterContext<C>, Bytes) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    fn after(&self, ctx: FilterContext<C>, response: Bytes) -> BoxFuture<'static, ()> {
        Box::pin(self(ctx, response))
    }
}

/// An ordered list of before- and after-filters.
pub(crate) struct Filters<C> {
    pub(crate) before: Vec<Arc<dyn BeforeFilter<C>>>,
    pub(crate) after: Vec<Arc<dyn AfterFilter<C>>>,
}

impl<C> Default for Filters<C> {
    fn default() -> Self {
        Filters {
            before: Vec::new(),
            after: Vec::new(),
        }
    }
}
