//! `logging::init` writes `<log_dir>/<server-id>.log` with span fields.

use std::time::Duration;

use shaddock_testkit::eventually;

#[test]
fn init_writes_the_server_log_file_with_span_fields() {
    let dir = std::env::temp_dir().join(format!("shaddock-logging-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let guard = shaddock::logging::init("connector-log-test", &dir).expect("logging initialises");
    let span = tracing::info_span!("conn", server = "connector-log-test", sid = 42u64);
    span.in_scope(|| {
        let req = tracing::info_span!("request", route = "connector.entryHandler.enter");
        req.in_scope(|| tracing::info!("hello from a handler"));
    });
    // A second init fails with a clear error instead of panicking.
    let err = shaddock::logging::init("other", &dir).unwrap_err();
    assert!(err.to_string().contains("already"), "{err}");
    drop(guard); // flushes the non-blocking writer
    let log = dir.join("connector-log-test.log");
    let text = eventually(
        "the handler's line in the log file",
        Duration::from_secs(5),
        || match std::fs::read_to_string(&log) {
            Ok(text) if text.contains("hello from a handler") => Ok(text),
            Ok(text) => Err(text),
            Err(e) => Err(format!("{}: {e}", log.display())),
        },
    );
    assert!(text.contains("sid=42"), "{text}");
    assert!(
        text.contains("route=\"connector.entryHandler.enter\"")
            || text.contains("route=connector.entryHandler.enter"),
        "{text}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
