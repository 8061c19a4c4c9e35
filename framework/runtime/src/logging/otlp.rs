//! OpenTelemetry export of every span over OTLP/gRPC (`otlp` feature,
//! switched on by `otlp.endpoint` in `config/log.json`).
//!
//! The exporter gets a small tokio runtime of its own: logging starts
//! before the server's runtime, the exporter's tonic channel needs one to
//! live on, and export traffic then never competes with client traffic.
//! Spans are batched (the SDK's batch processor, its own thread); dropping
//! [`Export`] flushes what is left.

use opentelemetry::KeyValue;
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::WithExportConfig;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing_subscriber::{Layer, Registry};

/// Keeps the exporter running; flushes and stops it on drop.
pub(super) struct Export {
    provider: SdkTracerProvider,
    _runtime: tokio::runtime::Runtime,
}

impl Drop for Export {
    fn drop(&mut self) {
        // Best effort: the collector may be gone at shutdown.
        let _ = self.provider.shutdown();
    }
}

/// The tracing layer exporting to `endpoint`, as service `service`
/// (the server type) instance `server_id`.
pub(super) fn layer(
    endpoint: &str,
    service: &str,
    server_id: &str,
) -> anyhow::Result<(impl Layer<Registry> + Send + Sync + use<>, Export)> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("shaddock-otlp")
        .enable_all()
        .build()
        .map_err(|e| anyhow::anyhow!("cannot start the OTLP exporter's runtime: {e}"))?;
    let exporter = {
        let _in_runtime = runtime.enter();
        opentelemetry_otlp::SpanExporter::builder()
            .with_tonic()
            .with_endpoint(endpoint)
            .build()
            .map_err(|e| {
                anyhow::anyhow!(
                    "config/log.json otlp.endpoint `{endpoint}`: cannot build the OTLP exporter: {e}"
                )
            })?
    };
    let resource = Resource::builder()
        .with_service_name(service.to_owned())
        .with_attribute(KeyValue::new("service.instance.id", server_id.to_owned()))
        .build();
    let provider = SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(resource)
        .build();
    let tracer = provider.tracer("shaddock");
    let layer = tracing_opentelemetry::layer::<Registry>().with_tracer(tracer);
    Ok((
        layer,
        Export {
            provider,
            _runtime: runtime,
        },
    ))
}
