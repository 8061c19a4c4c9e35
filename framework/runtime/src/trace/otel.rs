//! With OpenTelemetry export (`otlp` feature): a request's span is the
//! exported span, so the trace context sent on is that span's.

use opentelemetry::trace::{
    SpanContext, SpanId as OtelSpanId, TraceContextExt, TraceFlags, TraceId as OtelTraceId,
    TraceState,
};
use tracing_opentelemetry::OpenTelemetrySpanExt;

use super::{SpanId, TraceContext, TraceId};

/// Makes `span` a child of the remote `parent` in the exported trace, and
/// returns the exported span's context; `None` when spans are not
/// exported (no OpenTelemetry layer, or the span is filtered out).
pub(super) fn adopt(span: &tracing::Span, parent: Option<TraceContext>) -> Option<TraceContext> {
    if let Some(p) = parent {
        let flags = if p.sampled {
            TraceFlags::SAMPLED
        } else {
            TraceFlags::default()
        };
        let remote = SpanContext::new(
            OtelTraceId::from_bytes(p.trace_id.0),
            OtelSpanId::from_bytes(p.span_id.0),
            flags,
            true,
            TraceState::default(),
        );
        // Fails only without the layer (then the context below is invalid
        // and the caller makes its own ids).
        let _ = span.set_parent(opentelemetry::Context::new().with_remote_span_context(remote));
    }
    let cx = span.context();
    let own = cx.span().span_context().clone();
    own.is_valid().then(|| TraceContext {
        trace_id: TraceId(own.trace_id().to_bytes()),
        span_id: SpanId(own.span_id().to_bytes()),
        sampled: own.is_sampled(),
    })
}
