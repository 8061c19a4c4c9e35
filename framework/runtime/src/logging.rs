//! Logging: `logs/<server-id>.log` plus stderr, as text or JSON, filtered
//! by `RUST_LOG` or the server's level from `config/log.json`.
//!
//! Connection spans carry `server` and `sid`, request spans `route`, `uid`
//! and `trace_id` (the same on every server a request crosses, see
//! [`crate::trace`]), so one grep over the log files follows a client
//! request through the cluster.
//!
//! Both writers are non-blocking: a server started by `shaddock start` has
//! its stderr piped to the master, and the master is not on the data path.
//! If it hangs (a full pipe) or dies (a closed pipe), console lines are
//! dropped; no request thread ever waits for or fails on the console. The
//! file keeps every line, and panics are logged there too.

use std::io::Write;
use std::path::Path;

use tracing_appender::non_blocking::WorkerGuard;
use tracing_subscriber::fmt;
use tracing_subscriber::prelude::*;
use tracing_subscriber::{EnvFilter, Layer, Registry};

/// Console lines queued while stderr does not take them (a hung reader);
/// beyond that they are dropped.
const CONSOLE_QUEUE: usize = 10_000;

#[cfg(feature = "otlp")]
mod otlp;

/// Keeps the log writers running; dropping it flushes them.
#[must_use = "dropping the guard stops the log writers"]
pub struct LogGuard {
    _file: WorkerGuard,
    _console: WorkerGuard,
    /// The OpenTelemetry exporter, flushed on drop (`otlp` feature).
    _export: Option<Box<dyn std::any::Any + Send>>,
}

impl std::fmt::Debug for LogGuard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LogGuard")
            .field("export", &self._export.is_some())
            .finish()
    }
}

/// How a server logs (from `config/log.json`, see
/// [`LogConfig`](crate::config::LogConfig); the launcher fills it in).
#[derive(Debug, Clone, Default)]
pub struct LogSettings {
    /// One JSON object per line (file, and the console of a server not
    /// started by the master) instead of text.
    pub json: bool,
    /// The filter when `RUST_LOG` is not set (`RUST_LOG` syntax); `None`:
    /// `info`.
    pub level: Option<String>,
    /// Where `level` came from, for the error an invalid one gets.
    pub level_source: String,
    /// Export spans over OTLP/gRPC to this endpoint (`otlp` feature).
    pub otlp_endpoint: Option<String>,
    /// `service.name` of the exported spans (the server type), with the
    /// server id as `service.instance.id`.
    pub service: String,
}

/// Installs the global subscriber. Keep the returned guard alive for the
/// life of the process: dropping it flushes and stops the writers.
///
/// Without `RUST_LOG` the level is `info`, the format text (or what
/// `SHADDOCK_LOG_FORMAT` says). Fails if `log_dir` cannot be created or a
/// global subscriber is already installed. Also installs a panic hook that
/// writes the panic to the log file before the default hook prints it on
/// stderr.
pub fn init(server_id: &str, log_dir: impl AsRef<Path>) -> anyhow::Result<LogGuard> {
    let json = std::env::var("SHADDOCK_LOG_FORMAT").is_ok_and(|f| f == "json");
    let settings = LogSettings {
        json,
        ..LogSettings::default()
    };
    init_with(server_id, log_dir, &settings)
}

/// [`init`] with a server's settings: its format and level (`RUST_LOG`
/// still wins over `level`), and OpenTelemetry export.
pub fn init_with(
    server_id: &str,
    log_dir: impl AsRef<Path>,
    settings: &LogSettings,
) -> anyhow::Result<LogGuard> {
    let dir = log_dir.as_ref();
    std::fs::create_dir_all(dir)
        .map_err(|e| anyhow::anyhow!("cannot create log directory {}: {e}", dir.display()))?;
    let file = tracing_appender::rolling::never(dir, format!("{server_id}.log"));
    let (writer, file_guard) = tracing_appender::non_blocking(file);
    let (console, console_guard) = tracing_appender::non_blocking::NonBlockingBuilder::default()
        .lossy(true)
        .buffered_lines_limit(CONSOLE_QUEUE)
        .thread_name("shaddock-console-log")
        .finish(QuietStderr);
    let filter = file_filter(settings)?;
    let under_master = std::env::var_os("SHADDOCK_MASTER").is_some();
    let mut layers: Vec<Box<dyn Layer<Registry> + Send + Sync>> = Vec::new();
    // The master merges its servers' consoles into its own output for
    // people: text there, whatever the format of the files.
    if settings.json && !under_master {
        layers.push(
            json_layer(console)
                .with_filter(console_filter().unwrap_or_else(&filter))
                .boxed(),
        );
    } else {
        // The console layer gets its own field formatter type: span fields
        // are cached per formatter type, and sharing `DefaultFields` with
        // the file layer would leak the console's colour codes into the file.
        layers.push(
            fmt::layer()
                .fmt_fields(console_fields())
                .with_ansi(console_colours())
                .with_writer(console)
                .with_filter(console_filter().unwrap_or_else(&filter))
                .boxed(),
        );
    }
    if settings.json {
        layers.push(json_layer(writer).with_filter(filter()).boxed());
    } else {
        layers.push(
            fmt::layer()
                .with_ansi(false)
                .with_writer(writer)
                .with_filter(filter())
                .boxed(),
        );
    }
    let export = export_layer(server_id, settings, &filter, &mut layers)?;
    tracing_subscriber::registry()
        .with(layers)
        .try_init()
        .map_err(|e| anyhow::anyhow!("logging already initialised: {e}"))?;
    if let Some(warning) = export_warning(settings) {
        tracing::warn!("{warning}");
    }
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        tracing::error!("panic: {info}");
        default_hook(info);
    }));
    Ok(LogGuard {
        _file: file_guard,
        _console: console_guard,
        _export: export,
    })
}

/// One JSON object per line: `timestamp`, `level`, `message` and the
/// event's fields at the top level, `target`, the innermost span's fields
/// as `span` and every open span's as `spans` (so `spans[].trace_id`).
fn json_layer<W>(writer: W) -> impl Layer<Registry> + Send + Sync
where
    W: for<'w> fmt::MakeWriter<'w> + Send + Sync + 'static,
{
    fmt::layer()
        .json()
        .flatten_event(true)
        .with_current_span(true)
        .with_span_list(true)
        .with_writer(writer)
}

/// The file's filter, made fresh for each layer (an `EnvFilter` is not
/// `Clone`): `RUST_LOG` when set (an invalid one falls back to `info`, as
/// before), else the configured level (an invalid one is an error naming
/// where it came from), else `info`.
fn file_filter(settings: &LogSettings) -> anyhow::Result<impl Fn() -> EnvFilter + use<>> {
    let spec = match (std::env::var("RUST_LOG"), &settings.level) {
        (Ok(env), _) => env,
        (Err(_), Some(level)) => {
            EnvFilter::try_new(level).map_err(|e| {
                anyhow::anyhow!(
                    "{}: invalid log level `{level}`: {e}; write a level (error, warn, info, debug,                      trace) or RUST_LOG-style directives (`info,shaddock::cluster=debug`)",
                    settings.level_source
                )
            })?;
            level.clone()
        }
        (Err(_), None) => "info".to_owned(),
    };
    Ok(move || EnvFilter::try_new(&spec).unwrap_or_else(|_| EnvFilter::new("info")))
}

/// The OpenTelemetry layer when an endpoint is configured (`otlp`
/// feature); without the feature, a configured endpoint gets a warning
/// once the subscriber is up.
#[cfg(feature = "otlp")]
fn export_layer(
    server_id: &str,
    settings: &LogSettings,
    filter: &dyn Fn() -> EnvFilter,
    layers: &mut Vec<Box<dyn Layer<Registry> + Send + Sync>>,
) -> anyhow::Result<Option<Box<dyn std::any::Any + Send>>> {
    let Some(endpoint) = &settings.otlp_endpoint else {
        return Ok(None);
    };
    let (layer, guard) = otlp::layer(endpoint, &settings.service, server_id)?;
    layers.push(layer.with_filter(filter()).boxed());
    Ok(Some(Box::new(guard)))
}

#[cfg(not(feature = "otlp"))]
fn export_layer(
    _server_id: &str,
    _settings: &LogSettings,
    _filter: &dyn Fn() -> EnvFilter,
    _layers: &mut Vec<Box<dyn Layer<Registry> + Send + Sync>>,
) -> anyhow::Result<Option<Box<dyn std::any::Any + Send>>> {
    Ok(None)
}

/// What to say, once logging is up, about an export this build cannot do.
fn export_warning(settings: &LogSettings) -> Option<String> {
    let endpoint = settings.otlp_endpoint.as_ref()?;
    (!cfg!(feature = "otlp")).then(|| {
        format!(
            "config/log.json sets otlp.endpoint ({endpoint}), but this build has no \
             OpenTelemetry export, so no span is exported; build the app with the `otlp` \
             feature of the shaddock crate (features = [\"otlp\"]) or remove the setting"
        )
    })
}

/// The console's own level, when it differs from the file's:
/// `SHADDOCK_CONSOLE_LOG` (a `RUST_LOG`-style filter) if set; else, for a
/// server the master started (`SHADDOCK_MASTER` set) and no `RUST_LOG`,
/// `warn`. The master merges every server's console into its own output,
/// and five servers' start-up INFO lines drowned the master's "<id> is up"
/// lines; the file keeps them.
fn console_filter() -> Option<EnvFilter> {
    if let Ok(spec) = std::env::var("SHADDOCK_CONSOLE_LOG") {
        return Some(EnvFilter::new(spec));
    }
    let under_master = std::env::var_os("SHADDOCK_MASTER").is_some();
    (under_master && std::env::var_os("RUST_LOG").is_none()).then(|| EnvFilter::new("warn"))
}

/// stderr that never reports an error: once nobody reads it (the master
/// that piped it died), lines are dropped instead of failing the writer.
struct QuietStderr;

impl Write for QuietStderr {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        Ok(std::io::stderr().write(buf).unwrap_or(buf.len()))
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Colour codes only where a person reads them: stderr is a terminal, or
/// `SHADDOCK_LOG_COLOR=1` (a master that shows its children's piped output
/// on a terminal sets it). Piped into files or CI logs they are just noise.
fn console_colours() -> bool {
    use std::io::IsTerminal;
    match std::env::var("SHADDOCK_LOG_COLOR").as_deref() {
        Ok("1") => true,
        Ok("0") => false,
        _ => std::io::stderr().is_terminal(),
    }
}

/// `key=value` fields separated by spaces, the message bare (the same text as
/// `DefaultFields`, as a distinct type).
fn console_fields() -> impl for<'w> fmt::FormatFields<'w> + Send + Sync + 'static {
    fmt::format::debug_fn(|w, field, value| {
        if field.name() == "message" {
            write!(w, "{value:?}")
        } else {
            write!(w, "{field}={value:?}")
        }
    })
    .delimited(" ")
}

/// At most one log line per interval for an event that an attacker can
/// repeat at will (refused cluster calls, refused connections): the first
/// event of an interval is logged with the number of events since the last
/// line, the others are only counted. Lock-free; cheap to call per event.
#[derive(Debug)]
pub struct Throttle {
    every_ms: u64,
    started: std::time::Instant,
    /// Milliseconds since `started` of the last line (0: none yet).
    last: std::sync::atomic::AtomicU64,
    /// Events not yet reported in a line.
    unreported: std::sync::atomic::AtomicU64,
}

impl Throttle {
    pub fn new(every: std::time::Duration) -> Self {
        Throttle {
            every_ms: every.as_millis() as u64,
            started: std::time::Instant::now(),
            last: std::sync::atomic::AtomicU64::new(0),
            unreported: std::sync::atomic::AtomicU64::new(0),
        }
    }

    /// Counts one event; `Some(n)` when the caller should log now, `n`
    /// being the events since the last line (this one included).
    pub fn event(&self) -> Option<u64> {
        use std::sync::atomic::Ordering::Relaxed;
        self.unreported.fetch_add(1, Relaxed);
        let now = (self.started.elapsed().as_millis() as u64).max(1);
        let last = self.last.load(Relaxed);
        if last != 0 && now.saturating_sub(last) < self.every_ms {
            return None;
        }
        // One caller wins the line of this interval.
        self.last
            .compare_exchange(last, now, Relaxed, Relaxed)
            .ok()
            .map(|_| self.unreported.swap(0, Relaxed))
    }
}

#[cfg(test)]
mod throttle_tests {
    use super::Throttle;
    use std::time::Duration;

    #[test]
    fn one_line_per_interval_with_the_count() {
        let t = Throttle::new(Duration::from_millis(200));
        assert_eq!(t.event(), Some(1));
        assert_eq!(t.event(), None);
        assert_eq!(t.event(), None);
        std::thread::sleep(Duration::from_millis(250));
        assert_eq!(t.event(), Some(3));
    }
}
