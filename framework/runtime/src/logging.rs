//! Logging: `logs/<server-id>.log` plus stderr, filtered by `RUST_LOG`.
//!
//! Connection spans carry `server` and `sid`, request spans `route`, so one
//! grep over a log file follows a client through the system.
//!
//! Both writers are non-blocking: a server started by `shaddock start` has
//! its stderr piped to the master, and the master is not on the data path.
//! If it hangs (a full pipe) or dies (a closed pipe), console lines are
//! dropped; no request thread ever waits for or fails on the console. The
//! file keeps every line, and panics are logged there too.

use std::io::Write;
use std::path::Path;

use tracing_appender::non_blocking::WorkerGuard;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt;
use tracing_subscriber::prelude::*;

/// Console lines queued while stderr does not take them (a hung reader);
/// beyond that they are dropped.
const CONSOLE_QUEUE: usize = 10_000;

/// Keeps the log writers running; dropping it flushes them.
#[derive(Debug)]
#[must_use = "dropping the guard stops the log writers"]
pub struct LogGuard {
    _file: WorkerGuard,
    _console: WorkerGuard,
}

/// Installs the global subscriber. Keep the returned guard alive for the
/// life of the process: dropping it flushes and stops the writers.
///
/// Without `RUST_LOG` the level is `info`. Fails if `log_dir` cannot be
/// created or a global subscriber is already installed. Also installs a
/// panic hook that writes the panic to the log file before the default
/// hook prints it on stderr.
pub fn init(server_id: &str, log_dir: impl AsRef<Path>) -> anyhow::Result<LogGuard> {
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
    let filter = || EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    tracing_subscriber::registry()
        // The console layer gets its own field formatter type: span fields
        // are cached per formatter type, and sharing `DefaultFields` with
        // the file layer would leak the console's colour codes into the file.
        .with(
            fmt::layer()
                .fmt_fields(console_fields())
                .with_ansi(console_colours())
                .with_writer(console)
                .with_filter(console_filter().unwrap_or_else(filter)),
        )
        .with(
            fmt::layer()
                .with_ansi(false)
                .with_writer(writer)
                .with_filter(filter()),
        )
        .try_init()
        .map_err(|e| anyhow::anyhow!("logging already initialised: {e}"))?;
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        tracing::error!("panic: {info}");
        default_hook(info);
    }));
    Ok(LogGuard {
        _file: file_guard,
        _console: console_guard,
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
