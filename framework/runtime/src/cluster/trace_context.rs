//! The request's trace across unary gRPC calls (typed remotes, session
//! operations): the W3C `traceparent` metadata header.
//!
//! * [`Outbound`] — client side: the interceptor of every pooled channel
//!   ([`ClusterChannel`](super::ClusterChannel)). It adds the cluster key
//!   ([`ClusterKey`]) and, when the call is made for a traced request
//!   ([`crate::trace::current`]), its `traceparent`.
//! * [`TraceLayer`] — server side: a tower layer of the
//!   [`RpcServer`](super::RpcServer). Each unary call runs in an `rpc` span
//!   that continues the caller's trace (a new one without a valid header),
//!   with the context in scope for whatever the remote calls next.
//!
//! The `Forward` and `Push` streams are passed through untouched: one
//! stream carries many requests, so forwarded requests carry their context
//! in the message (`ForwardRequest.traceparent`, see `service.rs`).

use std::sync::Arc;
use std::task::{Context, Poll};

use futures_util::future::Either;
use tonic::codegen::Service;
use tonic::codegen::http;
use tonic::metadata::AsciiMetadataValue;
use tonic::service::Interceptor;
use tonic::{Request, Status};
use tracing::Instrument;

use super::auth::ClusterKey;
use crate::trace::TRACEPARENT;

/// Client interceptor: the cluster key, then the caller's trace context.
#[derive(Clone, Debug, Default)]
pub struct Outbound {
    key: ClusterKey,
}

impl Outbound {
    pub fn new(key: ClusterKey) -> Self {
        Outbound { key }
    }
}

impl Interceptor for Outbound {
    fn call(&mut self, request: Request<()>) -> Result<Request<()>, Status> {
        let mut request = self.key.call(request)?;
        if let Some(ctx) = crate::trace::current()
            && let Ok(value) = AsciiMetadataValue::try_from(ctx.traceparent())
        {
            request.metadata_mut().insert(TRACEPARENT, value);
        }
        Ok(request)
    }
}

/// Paths whose calls are streams of many requests (not traced per call).
const STREAMS: &[&str] = &[
    "/shaddock.cluster.Cluster/Forward",
    "/shaddock.cluster.Cluster/Push",
];

/// Server layer: every unary call in a span of the caller's trace.
#[derive(Clone, Debug)]
pub struct TraceLayer {
    server_id: Arc<str>,
}

impl TraceLayer {
    pub fn new(server_id: &str) -> Self {
        TraceLayer {
            server_id: server_id.into(),
        }
    }
}

impl<S> tower_layer::Layer<S> for TraceLayer {
    type Service = Traced<S>;
    fn layer(&self, inner: S) -> Traced<S> {
        Traced {
            inner,
            server_id: self.server_id.clone(),
        }
    }
}

/// The service [`TraceLayer`] wraps around the server's routes.
#[derive(Clone, Debug)]
pub struct Traced<S> {
    inner: S,
    server_id: Arc<str>,
}

impl<S, B> Service<http::Request<B>> for Traced<S>
where
    S: Service<http::Request<B>>,
    S::Future: Send + 'static,
    S::Response: Send,
    S::Error: Send,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Either<S::Future, crate::BoxFuture<'static, Result<S::Response, S::Error>>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let path = request.uri().path();
        if STREAMS.contains(&path) {
            return Either::Left(self.inner.call(request));
        }
        let span = tracing::info_span!(
            "rpc",
            server = %self.server_id,
            method = %path,
            trace_id = tracing::field::Empty
        );
        let parent = request
            .headers()
            .get(TRACEPARENT)
            .and_then(|v| v.to_str().ok());
        let ctx = crate::trace::begin_from(&span, parent);
        let traced = crate::trace::scope_logged(ctx, "rpc handled", self.inner.call(request));
        Either::Right(Box::pin(traced.instrument(span)))
    }
}
