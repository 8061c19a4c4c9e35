//! Cluster authentication with real processes (docs/security.md): the
//! cluster ports of a running chat cluster refuse a stranger's gRPC calls,
//! a server started with a wrong secret cannot take part while the others
//! keep chatting, and production refuses to start without a secret.

mod support;

use std::process::Stdio;
use std::time::Duration;

use serde_json::json;
use shaddock::cluster::ClusterKey;
use shaddock::cluster::proto::cluster_client::ClusterClient;
use shaddock::cluster::proto::{MembersRequest, ResyncRequest, SessionOpRequest};
use shaddock::config::{ClusterSecret, SECRET_VAR};
use shaddock::tonic::codegen::tokio_stream;
use shaddock::tonic::transport::Channel;
use shaddock::tonic::{Code, Status};
use shaddock_testkit::{eventually_async, exit_within};
use shared::{EnterResponse, PUSH_CHAT, TARGET_ALL};
use support::Topo;
use support::chat::{WAIT, enter, login, room_on_chat};

const WRONG: &str = "wrong-secret-0123456789abcdef";

async fn channel(port: u16) -> Channel {
    Channel::from_shared(format!("http://127.0.0.1:{port}"))
        .unwrap()
        .connect_timeout(WAIT)
        .timeout(WAIT)
        .connect()
        .await
        .unwrap_or_else(|e| panic!("dial 127.0.0.1:{port}: {e}"))
}

/// The code of every kind of cluster call made with `key` (`None`: no key
/// at all), on the server at `port`: each unary method, both streams, and
/// the app's typed remote `chat.ChatRemote/Kick`.
async fn codes(port: u16, key: Option<&ClusterSecret>) -> Vec<(&'static str, Code)> {
    let ch = channel(port).await;
    let mut c = ClusterClient::with_interceptor(ch.clone(), ClusterKey::new(key));
    let code = |r: Result<Code, Status>| r.unwrap_or_else(|s| s.code());
    let mut out = vec![
        (
            "SessionOp",
            code(
                c.session_op(SessionOpRequest::default())
                    .await
                    .map(|_| Code::Ok),
            ),
        ),
        (
            "Members",
            code(c.members(MembersRequest::default()).await.map(|_| Code::Ok)),
        ),
        (
            "Resync",
            code(c.resync(ResyncRequest::default()).await.map(|_| Code::Ok)),
        ),
        (
            "Forward",
            code(c.forward(tokio_stream::empty()).await.map(|_| Code::Ok)),
        ),
        (
            "Push",
            code(c.push(tokio_stream::empty()).await.map(|_| Code::Ok)),
        ),
    ];
    // A typed remote, called by path with an empty message.
    let mut grpc = shaddock::tonic::client::Grpc::new(
        shaddock::tonic::service::interceptor::InterceptedService::new(ch, ClusterKey::new(key)),
    );
    grpc.ready().await.expect("channel ready");
    let path =
        shaddock::tonic::codegen::http::uri::PathAndQuery::from_static("/chat.ChatRemote/Kick");
    let codec = shaddock::tonic_prost::ProstCodec::<(), ()>::default();
    let remote = grpc
        .unary(shaddock::tonic::Request::new(()), path, codec)
        .await;
    out.push(("chat.ChatRemote/Kick", code(remote.map(|_| Code::Ok))));
    out
}

fn secret_of(cluster: &support::ProcCluster) -> ClusterSecret {
    ClusterSecret::load_with(&cluster.dir().join("config"), support::ENV, None)
        .unwrap()
        .expect("the testkit wrote a secret")
}

/// A stranger (no key, or a wrong one) is refused with `Unauthenticated` on
/// every method of every cluster port — connector and chat server — and the
/// server logs it with the peer address; the same calls with the secret get
/// through (so the check is what refuses), and the chat keeps working.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stranger_is_refused_on_every_cluster_port() {
    let cluster = support::start(Topo::new(1, 1)).await;
    let secret = secret_of(&cluster);
    let wrong = ClusterSecret::new(WRONG).unwrap();
    let rpc_servers: Vec<_> = cluster
        .servers
        .iter()
        .filter(|s| s.port.is_some())
        .cloned()
        .collect();
    assert_eq!(rpc_servers.len(), 2, "connector and chat server");
    for s in &rpc_servers {
        let port = s.port.unwrap();
        for (label, key) in [("no key", None), ("a wrong key", Some(&wrong))] {
            for (method, code) in codes(port, key).await {
                assert_eq!(
                    code,
                    Code::Unauthenticated,
                    "{} answered {method} with {label}: {code:?}",
                    s.id
                );
            }
        }
        let with_secret = codes(port, Some(&secret)).await;
        assert!(
            with_secret.iter().all(|(_, c)| *c != Code::Unauthenticated),
            "{} refused calls that carry the secret: {with_secret:?}",
            s.id
        );
        assert!(
            cluster
                .wait_log_line(&s.id, &["cluster call refused", "127.0.0.1:"], WAIT)
                .await,
            "{} did not log the refusal with the peer: {}",
            s.id,
            cluster.log(&s.id)
        );
    }
    // Twelve refusals per server, logged in at most a couple of lines.
    let lines = cluster
        .log("connector-server-1")
        .lines()
        .filter(|l| l.contains("cluster call refused"))
        .count();
    assert!(
        lines <= 3,
        "refusals are rate-limited in the log ({lines} lines)"
    );

    let (a, _) = enter(&cluster, "alice", "room").await;
    let (b, _) = enter(&cluster, "bob", "room").await;
    assert_eq!(a.expect_push(shared::PUSH_ADD).await["user"], "bob");
    assert_eq!(a.send("hi", TARGET_ALL).await, json!({}));
    for u in [&a, &b] {
        assert_eq!(u.expect_push(PUSH_CHAT).await["msg"], "hi");
    }
}

/// chat-server-2 runs with a wrong secret: the connector's calls to it are
/// refused (so its rooms cannot be entered) and its own calls to the
/// connector are refused (it cannot join the others' state), while a room
/// on chat-server-1 chats with full delivery.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_with_a_wrong_secret_cannot_join() {
    let cluster = support::ProcCluster::try_start_with(
        support::bin().as_ref(),
        Topo::new(1, 2).servers(),
        &[("chat-server-2", SECRET_VAR, WRONG)],
        &[],
    )
    .await
    .expect("cluster up");
    let good_room = room_on_chat("ok", 0, 2);
    let bad_room = room_on_chat("bad", 1, 2);

    let (intruded, resp) = login(&cluster, "mallory", &bad_room).await;
    assert!(
        !matches!(resp, EnterResponse::Users { .. }),
        "a room on the server with the wrong secret was entered: {resp:?}"
    );
    intruded.client.close().await;
    assert!(
        cluster
            .wait_log_line(
                "chat-server-2",
                &["cluster call refused", "wrong cluster key"],
                WAIT
            )
            .await,
        "chat-server-2 did not refuse the connector: {}",
        cluster.log("chat-server-2")
    );

    let (a, _) = enter(&cluster, "alice", &good_room).await;
    let (b, _) = enter(&cluster, "bob", &good_room).await;
    assert_eq!(a.expect_push(shared::PUSH_ADD).await["user"], "bob");
    for i in 0..20 {
        let from = if i % 2 == 0 { &a } else { &b };
        assert_eq!(from.send(&format!("m{i}"), TARGET_ALL).await, json!({}));
    }
    for u in [&a, &b] {
        for i in 0..20 {
            let push = u.expect_push(PUSH_CHAT).await;
            assert_eq!(
                push["msg"],
                format!("m{i}"),
                "{} in order, none lost",
                u.name
            );
        }
    }
    // chat-server-2's own calls (it asks the connector for its rooms'
    // members when it starts) are refused too.
    eventually_async(
        "the connector to refuse chat-server-2's calls",
        Duration::from_secs(20),
        || async {
            let log = cluster.log("connector-server-1");
            if log.contains("cluster call refused") {
                Ok(())
            } else {
                Err("no refusal logged yet".to_string())
            }
        },
    )
    .await;
}

/// `--env production` without a secret exits 1 saying how to set one; with
/// `SHADDOCK_CLUSTER_SECRET` the same server starts.
#[test]
fn production_refuses_to_start_without_a_secret() {
    let dir = tempfile::tempdir().unwrap();
    let port = support::free_ports(1)[0];
    let config = support::write_servers_json(
        dir.path(),
        &[support::server("chat-server-1", "chat", Some(port), None)],
    );
    // The same topology under `production`, and no cluster.json at all.
    let dev: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(config.join("servers.json")).unwrap())
            .unwrap();
    let prod = json!({ "production": dev[support::ENV] });
    std::fs::write(config.join("servers.json"), prod.to_string()).unwrap();
    std::fs::remove_file(config.join("cluster.json")).unwrap();

    let run = |secret: Option<&str>| {
        let mut cmd = std::process::Command::new(support::bin());
        cmd.args(["--env", "production", "--server-id", "chat-server-1"])
            .arg("--config-dir")
            .arg(&config)
            .arg("--log-dir")
            .arg(dir.path().join("logs"))
            .env_remove(SECRET_VAR)
            .env_remove("SHADDOCK_ENV")
            .env_remove("SHADDOCK_MASTER")
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        if let Some(s) = secret {
            cmd.env(SECRET_VAR, s);
        }
        cmd.spawn().expect("spawn game-server")
    };

    let mut child = run(None);
    let status = exit_within(&mut child, WAIT).expect("exits at once");
    let mut err = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut err).unwrap();
    assert_eq!(status.code(), Some(1), "{err}");
    assert!(
        err.contains("no cluster secret for environment `production`")
            && err.contains(SECRET_VAR)
            && err.contains("cluster.json"),
        "{err}"
    );

    let mut child = run(Some("prod-secret-0123456789abcdef"));
    assert!(
        exit_within(&mut child, Duration::from_secs(2)).is_none(),
        "with a secret, production starts"
    );
    let _ = child.kill();
    let _ = child.wait();
}
