//! The admin API under attack, with a real master (`start -D`) and real
//! gRPC clients from distinct loopback addresses:
//!
//! * a password guesser from 127.0.0.5 is slowed down (each attempt after
//!   the free ones waits longer) and every failure is logged with its
//!   address;
//! * while it floods the API with concurrent guesses, the operator (from
//!   127.0.0.1) still logs in at once with the right password, and the
//!   guesser's own address still gets in with the right password — a
//!   back-off, never a lock-out;
//! * a token from `Login` lets the CLI in; a made-up one does not.

mod cli_support;

use std::net::IpAddr;
use std::time::{Duration, Instant};

use cli_support::*;
use shaddock_cli::master::guard::{MAX_DELAY, delay_after};
use shaddock_cli::master::proto::{self, admin_client::AdminClient};
use tonic::Request;
use tonic::transport::{Channel, Endpoint};

async fn client_from(master: &str, source: &str) -> AdminClient<Channel> {
    let channel = Endpoint::from_shared(format!("http://{master}"))
        .unwrap()
        .local_address(Some(source.parse::<IpAddr>().unwrap()))
        .timeout(Duration::from_secs(30))
        .connect()
        .await
        .unwrap();
    AdminClient::new(channel)
}

fn login_request(user: &str, password: &str) -> Request<proto::LoginRequest> {
    let mut r = Request::new(proto::LoginRequest {});
    r.metadata_mut()
        .insert("x-shaddock-user", user.parse().unwrap());
    r.metadata_mut()
        .insert("x-shaddock-password", password.parse().unwrap());
    r
}

/// One login attempt: its outcome and how long the answer took.
async fn attempt(c: &mut AdminClient<Channel>, user: &str, password: &str) -> (bool, Duration) {
    let began = Instant::now();
    let ok = c.login(login_request(user, password)).await.is_ok();
    (ok, began.elapsed())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn guessing_is_slowed_logged_and_never_locks_the_operator_out() {
    let mut app = TestApp::new(&[Srv::backend("chat-1", "chat")]);
    let out = app.start_daemon(&[]);
    assert_eq!(code(&out), 0, "start -D: {}", stderr(&out));
    let master = format!("127.0.0.1:{}", app.master_port);

    // Slowed: the wait before each attempt grows after the free failures.
    let mut guesser = client_from(&master, "127.0.0.5").await;
    let mut times = Vec::new();
    for i in 0..6 {
        let (ok, took) = attempt(&mut guesser, "admin", &format!("guess{i}")).await;
        assert!(!ok, "a wrong password must not log in");
        times.push(took);
    }
    eprintln!("wrong-password answers from one address: {times:?}");
    // Attempt i waits delay_after(i) first (failures before it).
    assert!(times[0] < Duration::from_millis(1500), "{times:?}");
    assert!(times[5] >= delay_after(5), "{times:?}");
    // An unknown user costs the same and is slowed the same way.
    let (ok, took) = attempt(&mut guesser, "root", "guess").await;
    assert!(!ok && took >= delay_after(6), "unknown user: {took:?}");

    // Flood from the guesser's address while the operator logs in.
    let flood: Vec<_> = (0..3)
        .map(|i| {
            let master = master.clone();
            tokio::spawn(async move {
                let mut c = client_from(&master, "127.0.0.5").await;
                attempt(&mut c, "admin", &format!("flood{i}")).await
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut operator = client_from(&master, "127.0.0.1").await;
    let (ok, took) = attempt(&mut operator, "admin", &app.password).await;
    eprintln!("operator login during the flood: {took:?}");
    assert!(
        ok,
        "the operator's right password must get in during a flood"
    );
    assert!(took < Duration::from_secs(3), "operator waited {took:?}");
    for f in flood {
        let _ = f.await;
    }
    // The guesser's address is slowed, not locked: the right password
    // still gets in, after at most the longest wait.
    let (ok, took) = attempt(&mut guesser, "admin", &app.password).await;
    eprintln!("right password from the guesser's address: {took:?}");
    assert!(ok, "a back-off must never become a lock-out");
    assert!(took < MAX_DELAY + Duration::from_secs(3), "{took:?}");

    // Every failure is in the master's log, with the address.
    let log = std::fs::read_to_string(app.path().join("logs/master.log")).unwrap();
    let failures = log
        .lines()
        .filter(|l| l.contains("failed admin login") && l.contains("127.0.0.5"))
        .count();
    // The 7 above, and the flood's (those that did not time out queued).
    assert!(failures >= 8, "{failures} failures logged:\n{log}");
    assert!(log.contains("failed admin login for user `root` from 127.0.0.5"));

    // Tokens: the CLI logs in once and uses one; a made-up one is refused.
    let out = app.cli(&["list"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let mut r = Request::new(proto::ListRequest { local_only: false });
    r.metadata_mut()
        .insert("x-shaddock-token", "made-up-token".parse().unwrap());
    let err = operator.list(r).await.unwrap_err();
    assert_eq!(err.code(), tonic::Code::Unauthenticated, "{err}");
}
