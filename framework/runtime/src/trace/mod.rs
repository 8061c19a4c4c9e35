//! One trace across servers: W3C trace context for client requests.
//!
//! A frontend starts a trace for every client request ([`TraceContext::new_root`]);
//! the request's span records its `trace_id`, and every server the request
//! reaches continues the same trace, so one `trace_id` finds the
//! connector's and the backend's log lines of one request.
//!
//! How the context travels:
//!
//! * **In the process**: a tokio task-local ([`scope`] / [`current`]) around
//!   the request's future. Code that runs inside it — the handler, the
//!   forwarder, a typed remote call — finds the context without it being
//!   threaded through every signature. (A task the handler spawns leaves
//!   the scope: wrap it with [`scope`] to keep the trace.)
//! * **Forwarded requests** ride a multiplexed stream (many requests per
//!   gRPC call), so the context is a field of each `ForwardRequest`
//!   (`traceparent`), not call metadata.
//! * **Typed remotes and other unary calls** carry it as the `traceparent`
//!   gRPC metadata header (the cluster channel's interceptor adds it; the
//!   RPC server's layer reads it).
//!
//! Invalid or missing `traceparent` values are ignored: the receiver starts
//! a new trace.
//!
//! With the `otlp` cargo feature and an OTLP endpoint configured, spans are
//! exported with OpenTelemetry; the ids are then the exported spans' own
//! (see [`begin`]), so the logs and the exported trace agree.

mod context;
#[cfg(feature = "otlp")]
mod otel;

use std::future::Future;

pub use context::{SpanId, TraceContext, TraceId};

/// The W3C header / metadata key.
pub const TRACEPARENT: &str = "traceparent";

tokio::task_local! {
    static CURRENT: TraceContext;
}

/// The trace context of the request this code runs for, if any.
pub fn current() -> Option<TraceContext> {
    CURRENT.try_with(|c| *c).ok()
}

/// A future running with a trace context in scope (see [`scope`]).
pub type Scoped<F> = tokio::task::futures::TaskLocalFuture<TraceContext, F>;

/// Runs `fut` as part of the trace `ctx` ([`current`] returns it inside).
pub fn scope<F: Future>(ctx: TraceContext, fut: F) -> Scoped<F> {
    CURRENT.scope(ctx, fut)
}

/// [`scope`], then one `debug` line `done` with `elapsed_us` once `fut`
/// has finished: a server's end of a traced request or call, logged in the
/// span the caller instruments this with.
pub fn scope_logged<F: Future>(
    ctx: TraceContext,
    done: &'static str,
    fut: F,
) -> Scoped<impl Future<Output = F::Output>> {
    let started = std::time::Instant::now();
    scope(ctx, async move {
        let output = fut.await;
        tracing::debug!(elapsed_us = started.elapsed().as_micros() as u64, "{done}");
        output
    })
}

/// Starts this server's part of a trace on `span` and records its
/// `trace_id` field (declare it with `trace_id = tracing::field::Empty`).
/// `parent` is the caller's context (from `traceparent`); `None` starts a
/// new trace. Returns the context to [`scope`] the span's work with.
///
/// With OpenTelemetry export on, the span is made a child of `parent` in
/// the exported trace and the ids are the exported span's; without it, the
/// ids are generated here (same trace id as `parent`, a new span id).
pub fn begin(span: &tracing::Span, parent: Option<TraceContext>) -> TraceContext {
    let own = || match parent {
        Some(p) => p.child(),
        None => TraceContext::new_root(),
    };
    #[cfg(feature = "otlp")]
    let ctx = otel::adopt(span, parent).unwrap_or_else(own);
    #[cfg(not(feature = "otlp"))]
    let ctx = own();
    span.record("trace_id", tracing::field::display(ctx.trace_id));
    ctx
}

/// [`begin`] with a `traceparent` value as the parent (invalid: ignored).
pub fn begin_from(span: &tracing::Span, traceparent: Option<&str>) -> TraceContext {
    begin(span, traceparent.and_then(TraceContext::parse))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_scope_carries_the_context() {
        assert_eq!(current(), None);
        let span = tracing::info_span!("t", trace_id = tracing::field::Empty);
        let root = begin(&span, None);
        let inner = scope(root, async { current() }).await;
        assert_eq!(inner, Some(root));
        assert_eq!(current(), None);
        let parent = TraceContext::parse("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01");
        let child = begin(&span, parent);
        assert_eq!(child.trace_id, parent.unwrap().trace_id);
        assert_ne!(child.span_id, parent.unwrap().span_id);
        let fresh = begin_from(&span, Some("not a traceparent"));
        assert_ne!(fresh.trace_id, parent.unwrap().trace_id);
    }
}
