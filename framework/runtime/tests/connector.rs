//! The frontend connector end to end: a real server on a loopback port,
//! driven by the Rust client over real WebSockets.

mod frontend_common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use frontend_common::*;
use serde_json::{Value, json};
use shaddock::app::FilterContext;
use shaddock::handler::HandlerError;
use shaddock_client::{Client, ClientOptions, CloseReason};

const CODE_500: &str = r#"{"code":500}"#;

async fn raw(client: &Client, route: &str, body: &str) -> String {
    let resp = client
        .request_raw(route, Bytes::from(body.to_owned()))
        .await
        .unwrap_or_else(|e| panic!("request {route} failed: {e}"));
    String::from_utf8(resp.to_vec()).unwrap()
}

#[tokio::test]
async fn handshake_sends_heartbeat_and_sorted_dictionary() {
    let server = start().await;
    let client = connect(&server.url).await;
    let hs = client.handshake();
    assert_eq!(hs.code, 200);
    assert_eq!(hs.sys.heartbeat, Some(1));
    assert_eq!(hs.sys.use_dict, Some(true));
    let dict = client.dictionary().expect("dictionary sent");
    // Handler routes sorted (UTF-16 order), then the extra push route.
    assert_eq!(dict.route(1), Some("chat.chatHandler.send"));
    assert_eq!(dict.route(2), Some("connector.entryHandler.enter"));
    assert_eq!(dict.code("onChat"), Some(dict.len() as u16));
    assert_eq!(
        hs.sys.dict_version.as_deref(),
        Some(server.app.dictionary().unwrap().version())
    );
    assert_eq!(server.app.sessions().count(), 1);
    server.shutdown().await;
}

#[tokio::test]
async fn request_response_and_session_binding() {
    let server = start().await;
    let client = connect(&server.url).await;
    // Compressed route (it is in the dictionary) and a plain JSON echo.
    let echoed: Value = client
        .request("connector.testHandler.echo", &json!({"a": 1, "b": "中文"}))
        .await
        .unwrap();
    assert_eq!(echoed, json!({"a": 1, "b": "中文"}));

    let resp: Value = client
        .request("connector.entryHandler.enter", &json!({"uid": "alice"}))
        .await
        .unwrap();
    assert_eq!(resp["code"], 200);
    let sid = resp["sid"].as_u64().unwrap();
    let sessions = server.app.sessions();
    assert_eq!(sessions.by_uid("alice").len(), 1);
    assert_eq!(sessions.get(sid).unwrap().uid().as_deref(), Some("alice"));
    assert_eq!(sessions.bound_count(), 1);

    // Binding another uid to a bound session fails → {"code":500}.
    let body = raw(&client, "connector.entryHandler.enter", r#"{"uid":"bob"}"#).await;
    assert_eq!(body, CODE_500);
    // The same uid again is fine.
    let again: Value = client
        .request("connector.entryHandler.enter", &json!({"uid": "alice"}))
        .await
        .unwrap();
    assert_eq!(again["code"], 200);

    // A handler returning () answers {} (Pomelo's next(null)).
    assert_eq!(
        raw(&client, "connector.testHandler.nothing", "{}").await,
        "{}"
    );

    // Settings pushed by one request are seen by the next.
    let first: Value = client
        .request("connector.testHandler.remember", &json!(7))
        .await
        .unwrap();
    assert_eq!(first, json!({"before": null}));
    let second: Value = client
        .request("connector.testHandler.remember", &json!(8))
        .await
        .unwrap();
    assert_eq!(second, json!({"before": 7}));
    assert_eq!(sessions.snapshot(sid).unwrap().settings["memo"], json!(8));

    // Responses come back by id even when they finish out of order.
    let (slow_req, fast_req) = (json!({"ms": 400}), json!({"fast": true}));
    let (slow, fast) = tokio::join!(
        client.request::<_, Value>("connector.testHandler.slow", &slow_req),
        client.request::<_, Value>("connector.testHandler.echo", &fast_req),
    );
    assert_eq!(slow.unwrap(), json!({"slept": 400}));
    assert_eq!(fast.unwrap(), json!({"fast": true}));
    server.shutdown().await;
}

#[tokio::test]
async fn errors_map_to_code_500_and_responses_never_carry_a_route() {
    let server = start().await;
    let client = connect(&server.url).await;
    // Unknown method of the local type, unknown handler, unknown type
    // without a forwarder, not three parts, a failing handler.
    for route in [
        "connector.testHandler.missing",
        "connector.nope.echo",
        "chat.chatHandler.send",
        "area.playerHandler.move",
        "connector.echo",
        "a.b.c.d",
        "connector.testHandler.fail",
        "connector.testHandler.panic",
    ] {
        assert_eq!(raw(&client, route, "{}").await, CODE_500, "route {route}");
    }
    // An error with a body keeps it and adds the code.
    assert_eq!(
        raw(&client, "connector.testHandler.failWithBody", "{}").await,
        r#"{"error":true,"code":500}"#
    );
    // JSON that does not fit the request type → 500; text that is not JSON
    // is treated as {} (Pomelo), which EnterRequest rejects too.
    assert_eq!(
        raw(&client, "connector.entryHandler.enter", r#"{"uid":5}"#).await,
        CODE_500
    );
    assert_eq!(
        raw(&client, "connector.testHandler.echo", "not json").await,
        "{}"
    );
    // A route without a dot is dropped: no response at all.
    let err = client
        .request_raw_timeout(
            "nodot",
            Bytes::from_static(b"{}"),
            Duration::from_millis(500),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(err, shaddock_client::ClientError::Timeout { .. }),
        "{err}"
    );
    // The connection is still fine.
    assert_eq!(
        raw(&client, "connector.testHandler.echo", "[1]").await,
        "[1]"
    );
    server.shutdown().await;
}

#[tokio::test]
async fn notify_runs_the_handler_and_gets_no_response() {
    let server = start().await;
    let client = connect(&server.url).await;
    client
        .notify("connector.testHandler.note", &json!({"n": 1}))
        .await
        .unwrap();
    let push = client
        .next_push_timeout(Duration::from_secs(3))
        .await
        .unwrap();
    assert_eq!(push.route, "onNote");
    assert_eq!(push.json::<Value>().unwrap(), json!({"n": 1}));
    // The handler's return value was not sent: the next thing that arrives
    // is the response to this request.
    let resp: Value = client
        .request("connector.testHandler.echo", &json!(2))
        .await
        .unwrap();
    assert_eq!(resp, json!(2));
    assert!(
        client
            .next_push_timeout(Duration::from_millis(200))
            .await
            .is_err(),
        "nothing else was sent"
    );
    server.shutdown().await;
}

#[tokio::test]
async fn push_to_uids_reaches_every_session_of_the_uid() {
    let server = start().await;
    let alice1 = connect(&server.url).await;
    let alice2 = connect(&server.url).await;
    let bob = connect(&server.url).await;
    for (c, uid) in [(&alice1, "alice"), (&alice2, "alice"), (&bob, "bob")] {
        let r: Value = c
            .request("connector.entryHandler.enter", &json!({"uid": uid}))
            .await
            .unwrap();
        assert_eq!(r["code"], 200);
    }
    let mut chat = alice2.subscribe("onChat");
    let resp: Value = bob
        .request(
            "connector.testHandler.push",
            &json!({"route": "onChat", "uids": ["alice", "nobody"], "msg": {"msg": "hi", "from": "bob"}}),
        )
        .await
        .unwrap();
    assert_eq!(resp, json!({"failed": ["nobody"]}));
    let p1 = alice1
        .next_push_timeout(Duration::from_secs(3))
        .await
        .unwrap();
    assert_eq!(p1.route, "onChat"); // compressed on the wire, resolved by the client
    assert_eq!(
        p1.json::<Value>().unwrap(),
        json!({"msg": "hi", "from": "bob"})
    );
    let p2 = tokio::time::timeout(Duration::from_secs(3), chat.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(p2, p1);
    assert!(
        bob.next_push_timeout(Duration::from_millis(200))
            .await
            .is_err()
    );

    // A push route outside the dictionary travels uncompressed.
    let failed = server.app.sessions().push_to_uids(
        "onLeave",
        Bytes::from_static(br#"{"user":"x"}"#),
        &["bob"],
    );
    assert!(failed.is_empty());
    let p = bob.next_push_timeout(Duration::from_secs(3)).await.unwrap();
    assert_eq!(
        (p.route.as_str(), &p.body[..]),
        ("onLeave", &br#"{"user":"x"}"#[..])
    );

    // Broadcast to bound sessions only.
    let unbound = connect(&server.url).await;
    let n = server
        .app
        .sessions()
        .broadcast("onAll", Bytes::from_static(b"{}"), true);
    assert_eq!(n, 3);
    assert!(
        unbound
            .next_push_timeout(Duration::from_millis(200))
            .await
            .is_err()
    );
    let n = server
        .app
        .sessions()
        .broadcast("onAll", Bytes::from_static(b"{}"), false);
    assert_eq!(n, 4);
    assert_eq!(
        unbound
            .next_push_timeout(Duration::from_secs(3))
            .await
            .unwrap()
            .route,
        "onAll"
    );
    server.shutdown().await;
}

#[tokio::test]
async fn heartbeats_keep_the_connection_open() {
    let server = start().await; // heartbeat 1 s, timeout 2 s
    let client = connect(&server.url).await;
    // deliberate: more than two heartbeat timeouts pass; the client must stay.
    tokio::time::sleep(Duration::from_millis(4500)).await;
    assert!(client.is_open(), "closed: {:?}", client.close_reason());
    let resp: Value = client
        .request("connector.testHandler.echo", &json!("alive"))
        .await
        .unwrap();
    assert_eq!(resp, json!("alive"));
    assert_eq!(server.app.sessions().count(), 1);
    server.shutdown().await;
}

#[tokio::test]
async fn missing_heartbeats_close_the_connection_without_kick() {
    let server = start().await;
    let silent = Client::connect(
        &server.url,
        ClientOptions {
            send_heartbeats: false,
            ..ClientOptions::default()
        },
    )
    .await
    .unwrap();
    let r: Value = silent
        .request("connector.entryHandler.enter", &json!({"uid": "mute"}))
        .await
        .unwrap();
    let sid = r["sid"].as_u64().unwrap();
    let reasons = Arc::new(Mutex::new(Vec::new()));
    let seen = reasons.clone();
    server
        .app
        .sessions()
        .get(sid)
        .unwrap()
        .on_closed(move |snap, reason| seen.lock().unwrap().push((snap.uid, reason)))
        .unwrap();
    // DATA does not reset the server's timer: keep sending requests.
    let start = std::time::Instant::now();
    while start.elapsed() < Duration::from_millis(1500) {
        let _ = silent
            .request_raw("connector.testHandler.echo", Bytes::from_static(b"1"))
            .await;
        // deliberate: paces the requests through the heartbeat timeout.
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let reason = silent
        .closed_within(Duration::from_secs(4))
        .await
        .expect("server closed the connection");
    assert_eq!(reason, CloseReason::ServerClosed);
    assert!(
        start.elapsed() < Duration::from_millis(3500),
        "closed after ~2 s, not {:?}",
        start.elapsed()
    );
    sessions_closed(&server).await;
    assert_eq!(
        reasons.lock().unwrap().clone(),
        vec![(Some("mute".to_owned()), "heartbeat timeout".to_owned())]
    );
    assert!(server.app.sessions().by_uid("mute").is_empty());
    server.shutdown().await;
}

#[tokio::test]
async fn kick_sends_the_reason_then_closes() {
    let server = start().await;
    let client = connect(&server.url).await;
    let other = connect(&server.url).await;
    let r: Value = client
        .request("connector.entryHandler.enter", &json!({"uid": "carol"}))
        .await
        .unwrap();
    let sid = r["sid"].as_u64().unwrap();
    assert_eq!(server.app.sessions().kick_by_uid("carol", "bye carol"), 1);
    assert_eq!(
        client.closed_within(Duration::from_secs(3)).await,
        Some(CloseReason::Kicked("bye carol".into()))
    );
    eventually_async(
        "carol's session to close",
        Duration::from_secs(2),
        || async { server.app.sessions().get(sid).is_none() },
    )
    .await;

    let r: Value = other
        .request("connector.entryHandler.enter", &json!({"uid": "dave"}))
        .await
        .unwrap();
    assert!(
        server
            .app
            .sessions()
            .kick_by_sid(r["sid"].as_u64().unwrap(), "kick")
    );
    assert_eq!(
        other.closed_within(Duration::from_secs(3)).await,
        Some(CloseReason::Kicked("kick".into()))
    );
    assert!(!server.app.sessions().kick_by_sid(9999, "x"));
    sessions_closed(&server).await;
    server.shutdown().await;
}

#[tokio::test]
async fn method_constructor_kicks_with_attack() {
    let server = start().await;
    let client = connect(&server.url).await;
    let _ = client
        .request_raw_timeout(
            "connector.testHandler.constructor",
            Bytes::from_static(b"{}"),
            Duration::from_millis(500),
        )
        .await;
    assert_eq!(
        client.closed_within(Duration::from_secs(3)).await,
        Some(CloseReason::Kicked("attack".into()))
    );
    server.shutdown().await;
}

#[tokio::test]
async fn filters_run_in_order_and_can_reject() {
    let log = Arc::new(Mutex::new(Vec::<String>::new()));
    let (l1, l2, l3, l4) = (log.clone(), log.clone(), log.clone(), log.clone());
    let server = start_with(fast_options(), move |b| {
        test_app(b)
            .before(move |ctx: FilterContext| {
                let log = l1.clone();
                async move {
                    log.lock()
                        .unwrap()
                        .push(format!("global-before {}", ctx.route));
                    Ok::<(), HandlerError>(())
                }
            })
            .before_route("connector.testHandler.fail", |_ctx: FilterContext| async {
                Err::<(), _>(HandlerError::with_body(
                    "blocked",
                    json!({"code": 403, "why": "blocked"}),
                ))
            })
            .before_route("connector.testHandler.echo", move |_ctx: FilterContext| {
                let log = l2.clone();
                async move {
                    log.lock().unwrap().push("route-before".into());
                    Ok::<(), HandlerError>(())
                }
            })
            .after_route(
                "connector.testHandler.echo",
                move |_ctx: FilterContext, resp: Bytes| {
                    let log = l3.clone();
                    async move {
                        log.lock()
                            .unwrap()
                            .push(format!("route-after {}", String::from_utf8_lossy(&resp)));
                    }
                },
            )
            .after(move |_ctx: FilterContext, resp: Bytes| {
                let log = l4.clone();
                async move {
                    log.lock()
                        .unwrap()
                        .push(format!("global-after {}", String::from_utf8_lossy(&resp)));
                }
            })
    })
    .await;
    let client = connect(&server.url).await;
    assert_eq!(
        raw(&client, "connector.testHandler.echo", "[1]").await,
        "[1]"
    );
    assert_eq!(
        *log.lock().unwrap(),
        vec![
            "global-before connector.testHandler.echo",
            "route-before",
            "route-after [1]",
            "global-after [1]"
        ]
    );
    log.lock().unwrap().clear();
    // The route filter rejects before the handler runs, with its own body.
    assert_eq!(
        raw(&client, "connector.testHandler.fail", "{}").await,
        r#"{"code":403,"why":"blocked"}"#
    );
    assert_eq!(
        *log.lock().unwrap(),
        vec![
            "global-before connector.testHandler.fail",
            r#"global-after {"code":403,"why":"blocked"}"#
        ]
    );
    server.shutdown().await;
}

#[tokio::test]
async fn graceful_shutdown_finishes_requests_then_kicks() {
    let server = start().await;
    let client = connect(&server.url).await;
    let url = server.url.clone();
    let slow_req = json!({"ms": 600});
    let slow = client.request::<_, Value>("connector.testHandler.slow", &slow_req);
    let stop = async {
        eventually_async(
            "the slow request in flight",
            Duration::from_secs(5),
            || async { server.app.inflight().count() > 0 },
        )
        .await;
        server.shutdown().await;
    };
    let (resp, ()) = tokio::join!(slow, stop);
    assert_eq!(
        resp.unwrap(),
        json!({"slept": 600}),
        "in-flight request finished"
    );
    assert_eq!(
        client.closed_within(Duration::from_secs(3)).await,
        Some(CloseReason::Kicked("server shutdown".into()))
    );
    // No longer accepting.
    assert!(
        Client::connect(&url, ClientOptions::default())
            .await
            .is_err()
    );
}

#[tokio::test]
async fn max_connections_refuses_extra_clients() {
    let opts = shaddock::connector::ConnectorOptions {
        max_connections: Some(1),
        ..fast_options()
    };
    let server = start_with(opts, test_app).await;
    let first = connect(&server.url).await;
    let second = Client::connect(
        &server.url,
        ClientOptions {
            connect_timeout: Duration::from_secs(2),
            ..ClientOptions::default()
        },
    )
    .await;
    assert!(second.is_err(), "second connection must be refused");
    let r: Value = first
        .request("connector.testHandler.echo", &json!(1))
        .await
        .unwrap();
    assert_eq!(r, json!(1));
    first.close().await;
    sessions_closed(&server).await;
    connect(&server.url).await;
    server.shutdown().await;
}

#[tokio::test]
async fn request_timeout_is_reported() {
    let server = start().await;
    let client = Client::connect(
        &server.url,
        ClientOptions {
            request_timeout: Duration::from_millis(200),
            ..ClientOptions::default()
        },
    )
    .await
    .unwrap();
    let err = client
        .request::<_, Value>("connector.testHandler.slow", &json!({"ms": 1000}))
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("connector.testHandler.slow"),
        "{err}"
    );
    server.shutdown().await;
}
