//! Per-client budgets on a real connector over real sockets
//! (`connector/budget.rs`, `docs/security.md`): each budget is exceeded by
//! one client and gives its documented outcome — a 429 response, then a
//! KICK with a reason and a close — while a well-behaved pair of clients on
//! the same connector keeps exchanging pushes with full delivery.

mod frontend_common;

use std::time::Duration;

use bytes::{Bytes, BytesMut};
use frontend_common::*;
use serde_json::{Value, json};
use shaddock::App;
use shaddock::connector::ConnectorOptions;
use shaddock::connector::budget::{KICK_RATE, REFUSED_INFLIGHT, REFUSED_RATE};
use shaddock::handler::HandlerError;
use shaddock::protocol::{Message, encode_data_frame};
use shaddock::session::Session;
use shaddock_client::{Client, CloseReason};

const WAIT: Duration = Duration::from_secs(5);

/// Two well-behaved clients: `a` asks the server to push to `b`.
struct Witness {
    a: Client,
    b: Client,
    sent: u64,
}

impl Witness {
    async fn new(server: &TestServer) -> Self {
        let a = connect(&server.url).await;
        let b = connect(&server.url).await;
        for (c, uid) in [(&a, "witness-a"), (&b, "witness-b")] {
            let r: Value = c
                .request("connector.entryHandler.enter", &json!({"uid": uid}))
                .await
                .unwrap();
            assert_eq!(r["code"], 200);
        }
        Witness { a, b, sent: 0 }
    }

    /// `n` pushes from a to b, each delivered, in order.
    async fn chat(&mut self, n: u64) {
        for _ in 0..n {
            self.sent += 1;
            let r: Value = self
                .a
                .request(
                    "connector.testHandler.push",
                    &json!({"route": "onChat", "uids": ["witness-b"], "msg": self.sent}),
                )
                .await
                .expect("the witness is answered");
            assert_eq!(r["failed"], json!([]), "{r}");
            let push = self.b.next_push_timeout(WAIT).await.expect("witness push");
            assert_eq!(push.json::<u64>().unwrap(), self.sent, "full delivery");
        }
        assert!(self.a.is_open() && self.b.is_open());
    }
}

/// One WebSocket frame holding `n` echo requests (ids from `first`).
fn packed_requests(client: &Client, first: u32, n: u32) -> Bytes {
    let mut frame = BytesMut::new();
    for id in first..first + n {
        let msg = Message::request(id, "connector.testHandler.echo", "1");
        frame.extend_from_slice(&encode_data_frame(&msg, client.dictionary()).unwrap());
    }
    frame.freeze()
}

async fn kicked(client: &Client) -> String {
    match client.closed_within(WAIT).await {
        Some(CloseReason::Kicked(reason)) => reason,
        other => panic!("expected a KICK, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_over_the_rate_get_429_then_sustained_abuse_is_kicked() {
    let opts = ConnectorOptions {
        // A slow refill, so a loaded machine cannot refill the burst while
        // the test sends; the witnesses stay under it (16 requests each).
        rate_limit: Some((2, 20)),
        kick_after_refusals: 30,
        ..fast_options()
    };
    let server = start_with(opts, test_app).await;
    let mut witness = Witness::new(&server).await;
    let abuser = connect(&server.url).await;

    // The burst passes, the next request is refused with 429.
    let mut answers = Vec::new();
    for i in 0..25 {
        answers.push(
            abuser
                .request_raw("connector.testHandler.echo", format!("{i}"))
                .await
                .unwrap(),
        );
    }
    let refused = answers.iter().filter(|a| a[..] == *REFUSED_RATE).count();
    assert!(
        (3..=5).contains(&refused),
        "20 of 25 pass the burst (a token may refill meanwhile): {answers:?}"
    );
    assert_eq!(answers[0], Bytes::from_static(b"0"));
    witness.chat(5).await;

    // A frame packed with requests: refused past the budget, then KICK.
    abuser
        .send_frame(packed_requests(&abuser, 1000, 200))
        .await
        .unwrap();
    assert_eq!(kicked(&abuser).await, KICK_RATE);
    witness.chat(10).await;
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_over_the_in_flight_cap_get_429() {
    let opts = ConnectorOptions {
        max_inflight: 3,
        rate_limit: None,
        ..fast_options()
    };
    let server = start_with(opts, test_app).await;
    let mut witness = Witness::new(&server).await;
    let abuser = connect(&server.url).await;
    let calls = (0..8).map(|_| abuser.request_raw("connector.testHandler.slow", r#"{"ms":600}"#));
    let (answers, ()) = tokio::join!(futures_util::future::join_all(calls), witness.chat(5));
    let answers: Vec<Bytes> = answers.into_iter().map(Result::unwrap).collect();
    let slept = answers
        .iter()
        .filter(|a| a[..] == *br#"{"slept":600}"#)
        .count();
    let refused = answers
        .iter()
        .filter(|a| a[..] == *REFUSED_INFLIGHT)
        .count();
    assert_eq!((slept, refused), (3, 5), "{answers:?}");
    // The slots are free again once the slow requests are done.
    let again = abuser
        .request_raw("connector.testHandler.slow", r#"{"ms":1}"#)
        .await
        .unwrap();
    assert_eq!(&again[..], br#"{"slept":1}"#);
    assert!(abuser.is_open(), "a few refusals do not kick");
    server.shutdown().await;
}

/// Pushes `n` bodies of `size` bytes to the caller in one go, faster than
/// any client can read.
async fn burst(app: App, session: Session, req: Value) -> Result<Value, HandlerError> {
    let n = req["n"].as_u64().unwrap_or(100);
    let size = req["size"].as_u64().unwrap_or(1024) as usize;
    let pad = "z".repeat(size);
    let mut refused = 0;
    for i in 0..n {
        let body = Bytes::from(json!({"i": i, "pad": pad}).to_string());
        refused += app
            .sessions()
            .push_to_sids("onBurst", body, &[session.id()])
            .len();
    }
    Ok(json!({ "undelivered": refused }))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_under_the_byte_bound_is_delivered_whole() {
    // The bound itself (a client that stops reading) is tested with a raw
    // socket in `connector_bad_input.rs`: a client that reads is written to
    // straight from the fan-out, so only what its socket cannot take counts.
    let opts = ConnectorOptions {
        queue_bound: 100_000, // only the byte bound could trip
        queue_bytes: 64 * 1024,
        ..fast_options()
    };
    let server = start_with(opts, |b| {
        test_app(b).handler("connector.testHandler.burst", burst)
    })
    .await;
    let mut witness = Witness::new(&server).await;
    witness.chat(10).await;
    let fine = connect(&server.url).await;
    fine.notify(
        "connector.testHandler.burst",
        &json!({"n": 10, "size": 4096}),
    )
    .await
    .unwrap();
    for _ in 0..10 {
        fine.next_push_timeout(WAIT).await.expect("every push");
    }
    assert!(fine.is_open());
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversized_frame_is_kicked_with_the_limit() {
    let opts = ConnectorOptions {
        max_message_size: 2048,
        ..fast_options()
    };
    let server = start_with(opts, test_app).await;
    let mut witness = Witness::new(&server).await;
    let abuser = connect(&server.url).await;
    let body = format!("\"{}\"", "x".repeat(4096));
    let _ = abuser
        .request_raw_timeout("connector.testHandler.echo", body, WAIT)
        .await;
    assert_eq!(
        kicked(&abuser).await,
        "message too large (limit 2048 bytes)"
    );
    witness.chat(10).await;
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_client_is_kicked_on_a_frontend_without_heartbeats() {
    // The gate's configuration: no heartbeats, so only the idle timeout
    // closes a socket that says nothing.
    let opts = ConnectorOptions {
        heartbeat: None,
        idle_timeout: Some(Duration::from_millis(800)),
        ..fast_options()
    };
    let server = start_with(opts, test_app).await;
    let idle = connect(&server.url).await;
    let busy = connect(&server.url).await;
    let started = tokio::time::Instant::now();
    // The busy client talks every 200 ms for twice the idle timeout.
    while started.elapsed() < Duration::from_millis(1600) {
        let r: Value = busy
            .request("connector.testHandler.echo", &json!(1))
            .await
            .expect("an active client is not idle");
        assert_eq!(r, json!(1));
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(
        idle.closed_within(WAIT).await,
        Some(CloseReason::Kicked("idle timeout".into()))
    );
    assert!(busy.is_open(), "{:?}", busy.close_reason());
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_over_the_per_address_cap_are_refused() {
    let opts = ConnectorOptions {
        max_connections_per_address: Some(3),
        ..fast_options()
    };
    let server = start_with(opts, test_app).await;
    let mut witness = Witness::new(&server).await; // two connections
    let third = connect(&server.url).await;
    let options = shaddock_client::ClientOptions {
        connect_timeout: Duration::from_secs(2),
        ..Default::default()
    };
    let fourth = Client::connect(&server.url, options.clone()).await;
    assert!(
        fourth.is_err(),
        "a fourth connection from 127.0.0.1 is refused"
    );
    witness.chat(5).await;
    third.close().await;
    eventually_async("a slot to free up", WAIT, || async {
        Client::connect(&server.url, options.clone()).await.is_ok()
    })
    .await;
    witness.chat(5).await;
    server.shutdown().await;
}

/// New connections per address over `connects-per-second-per-address`
/// are closed on accept (a kicked client logging in again at once is held
/// to the rate); clients already connected are not affected.
#[tokio::test]
async fn new_connections_over_the_per_address_rate_are_refused() {
    let server = start_with(
        ConnectorOptions {
            connect_rate_per_address: Some((2, 3)),
            ..fast_options()
        },
        test_app,
    )
    .await;
    let mut open = Vec::new();
    for _ in 0..3 {
        open.push(connect(&server.url).await);
    }
    let over = Client::connect(&server.url, shaddock_client::ClientOptions::default()).await;
    assert!(over.is_err(), "a 4th connection at once must be refused");
    // 2/s refills one connection every 500 ms.
    tokio::time::sleep(Duration::from_millis(600)).await;
    open.push(connect(&server.url).await);
    for c in &open {
        let r: Value = c
            .request("connector.testHandler.echo", &json!({"x": 1}))
            .await
            .expect("connected clients keep working");
        assert_eq!(r["x"], 1);
    }
}

/// With a write window (`write-window-ms`) pushes wait for the window's
/// end and go out together: every one arrives, in order, not before the
/// window, over WebSocket and over raw TCP alike.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_window_delivers_every_push_in_order() {
    let window = Duration::from_millis(40);
    let opts = ConnectorOptions {
        write_window: Some(window),
        ..fast_options()
    };
    let server = start_with(opts, |b| {
        test_app(b).handler("connector.testHandler.burst", burst)
    })
    .await;
    let tcp_url = server.url.replacen("ws://", "tcp://", 1);
    for url in [server.url.clone(), tcp_url] {
        let client = connect(&url).await;
        let started = std::time::Instant::now();
        client
            .notify("connector.testHandler.burst", &json!({"n": 50, "size": 64}))
            .await
            .unwrap();
        for i in 0..50 {
            let push = client.next_push_timeout(WAIT).await.expect("every push");
            if i == 0 {
                assert!(
                    started.elapsed() >= window,
                    "{url}: the first push waited for the window ({:?})",
                    started.elapsed()
                );
            }
            let body: Value = push.json().unwrap();
            assert_eq!(body["i"], json!(i), "{url}: in order");
        }
        assert!(client.is_open());
    }
    server.shutdown().await;
}
