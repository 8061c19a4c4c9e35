//! A graceful stop of a frontend finishes the close work its sessions
//! started (`Session::on_closed_async`) before it returns: a user's leave
//! call to a backend is made, not cut off by the process exiting.

mod frontend_common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use frontend_common::{connect, fast_options, start_with};
use serde_json::{Value, json};
use shaddock::app::App;
use shaddock::handler::HandlerError;
use shaddock::session::Session;

#[tokio::test]
async fn graceful_stop_waits_for_async_close_work() {
    let done = Arc::new(AtomicUsize::new(0));
    let started = Arc::new(AtomicUsize::new(0));
    let (d, s) = (done.clone(), started.clone());
    let server = start_with(fast_options(), move |b| {
        b.handler(
            "connector.entryHandler.enter",
            move |_app: App, session: Session, _req: Value| {
                let (done, started) = (d.clone(), s.clone());
                async move {
                    session
                        .on_closed_async(move |_snapshot, _reason| async move {
                            started.fetch_add(1, Ordering::SeqCst);
                            // A slow leave call (a backend far away).
                            tokio::time::sleep(Duration::from_millis(400)).await;
                            done.fetch_add(1, Ordering::SeqCst);
                        })
                        .map_err(HandlerError::from)?;
                    Ok::<_, HandlerError>(json!({"code": 200}))
                }
            },
        )
    })
    .await;
    let mut clients = Vec::new();
    for _ in 0..3 {
        let client = connect(&server.url).await;
        let reply: Value = client
            .request("connector.entryHandler.enter", &json!({}))
            .await
            .expect("enter answers");
        assert_eq!(reply["code"], 200);
        clients.push(client);
    }
    // The stop kicks the three clients; each close starts 400 ms of work.
    server.shutdown().await;
    assert_eq!(started.load(Ordering::SeqCst), 3, "every close ran");
    assert_eq!(
        done.load(Ordering::SeqCst),
        3,
        "the stop returned before the close work finished"
    );
}

#[tokio::test]
async fn async_close_listeners_are_frontend_only() {
    let ops: Arc<dyn shaddock::session::RemoteSessionOps> = Arc::new(NoOps);
    let remote = Session::remote(Default::default(), ops);
    let err = remote
        .on_closed_async(|_, _| async {})
        .expect_err("a backend session cannot observe the socket");
    assert!(err.to_string().contains("on_closed_async"), "{err}");
}

struct NoOps;

impl shaddock::session::RemoteSessionOps for NoOps {
    fn bind(
        &self,
        _: &str,
        _: u64,
        _: &str,
    ) -> shaddock::BoxFuture<'_, Result<(), shaddock::ClusterError>> {
        Box::pin(async { Ok(()) })
    }
    fn unbind(
        &self,
        _: &str,
        _: u64,
        _: &str,
    ) -> shaddock::BoxFuture<'_, Result<(), shaddock::ClusterError>> {
        Box::pin(async { Ok(()) })
    }
    fn push_settings(
        &self,
        _: &str,
        _: u64,
        _: serde_json::Map<String, Value>,
    ) -> shaddock::BoxFuture<'_, Result<(), shaddock::ClusterError>> {
        Box::pin(async { Ok(()) })
    }
    fn kick_by_sid(
        &self,
        _: &str,
        _: u64,
        _: &str,
    ) -> shaddock::BoxFuture<'_, Result<(), shaddock::ClusterError>> {
        Box::pin(async { Ok(()) })
    }
    fn kick_by_uid(
        &self,
        _: &str,
        _: &str,
        _: &str,
    ) -> shaddock::BoxFuture<'_, Result<(), shaddock::ClusterError>> {
        Box::pin(async { Ok(()) })
    }
}
