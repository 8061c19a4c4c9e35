//! Mutual TLS on the cluster ports with real processes (docs/security.md):
//! the chat app's servers, given the cluster's certificate and CA in
//! `config/cluster.json`, forward requests and push to clients over TLS;
//! a peer speaking plain HTTP/2, or TLS without a certificate of the
//! cluster's CA, does not get a single call through.

mod support;

use std::time::Duration;

use serde_json::json;
use shaddock::cluster::proto::MembersRequest;
use shaddock::cluster::proto::cluster_client::ClusterClient;
use shaddock::tonic::transport::{Certificate, Channel, ClientTlsConfig, Identity};
use shared::{PUSH_CHAT, TARGET_ALL};
use support::Topo;
use support::chat::{enter, room_on_chat};

const SECRET: &str = "cluster-tls-test-secret-0123456789";

/// A CA and a certificate it signed for `name`: (ca, cert, key) PEM.
fn issue(name: &str) -> (String, String, String) {
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = rcgen::CertificateParams::new(vec![name.to_string()])
        .unwrap()
        .signed_by(&key, &ca, &ca_key)
        .unwrap();
    (ca.pem(), cert.pem(), key.serialize_pem())
}

/// Dials `port` with `tls` (`None`: plain HTTP/2) and makes one call: the
/// status code it ends with (`Err`: the connection itself failed). Only
/// `Ok` or `Unauthenticated` (the cluster key check) come from the
/// server's gRPC layer; anything else is the transport failing.
async fn call(port: u16, tls: Option<ClientTlsConfig>) -> Result<shaddock::tonic::Code, String> {
    let scheme = if tls.is_some() { "https" } else { "http" };
    let mut endpoint = Channel::from_shared(format!("{scheme}://127.0.0.1:{port}"))
        .unwrap()
        .connect_timeout(Duration::from_secs(3))
        .timeout(Duration::from_secs(3));
    if let Some(tls) = tls {
        endpoint = endpoint.tls_config(tls).unwrap();
    }
    let channel = endpoint
        .connect()
        .await
        .map_err(|e| format!("connect: {e}"))?;
    Ok(ClusterClient::new(channel)
        .members(MembersRequest::default())
        .await
        .map(|_| shaddock::tonic::Code::Ok)
        .unwrap_or_else(|s| s.code()))
}

/// Whether a call reached the server's gRPC layer.
fn reached(r: &Result<shaddock::tonic::Code, String>) -> bool {
    matches!(
        r,
        Ok(shaddock::tonic::Code::Ok | shaddock::tonic::Code::Unauthenticated)
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_chat_runs_over_mutual_tls_and_strangers_get_no_call_through() {
    let (ca, cert, key) = issue("shaddock-cluster");
    let cluster_json = json!({ support::ENV: {
        "secret": SECRET,
        "tls": {"cert": "cluster.pem", "key": "cluster.key", "ca": "ca.pem"}
    }})
    .to_string();
    let cluster = support::ProcCluster::try_start_with(
        support::bin().as_ref(),
        Topo::new(2, 2).servers(),
        &[],
        &[
            ("cluster.json", cluster_json.as_str()),
            ("cluster.pem", cert.as_str()),
            ("cluster.key", key.as_str()),
            ("ca.pem", ca.as_str()),
        ],
    )
    .await
    .expect("cluster up");
    assert!(
        cluster
            .log("chat-server-1")
            .contains("RPC server listening"),
        "{}",
        cluster.log("chat-server-1")
    );

    // Forwards (connector → chat server) and pushes (chat server →
    // connector) cross the TLS cluster ports.
    let rid = room_on_chat("tls", 1, 2);
    let (a, _) = enter(&cluster, "alice", &rid).await;
    let (b, _) = enter(&cluster, "bob", &rid).await;
    assert_eq!(a.expect_push(shared::PUSH_ADD).await["user"], "bob");
    for i in 0..10 {
        assert_eq!(a.send(&format!("m{i}"), TARGET_ALL).await, json!({}));
    }
    for u in [&a, &b] {
        for i in 0..10 {
            assert_eq!(u.expect_push(PUSH_CHAT).await["msg"], format!("m{i}"));
        }
    }

    let port = cluster
        .servers
        .iter()
        .find(|s| s.id == "connector-server-1")
        .and_then(|s| s.port)
        .unwrap();
    // Plain HTTP/2 on a TLS port: no gRPC answer.
    let plain = call(port, None).await;
    assert!(!reached(&plain), "a plain-text call got through: {plain:?}");
    // TLS trusting the cluster's CA but without a client certificate: the
    // handshake is refused (mutual TLS).
    let no_cert = ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(&ca))
        .domain_name("shaddock-cluster");
    let anonymous = call(port, Some(no_cert)).await;
    assert!(
        !reached(&anonymous),
        "a call without a client certificate got through: {anonymous:?}"
    );
    // A certificate of another CA: refused too.
    let (_, other_cert, other_key) = issue("shaddock-cluster");
    let foreign = ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(&ca))
        .identity(Identity::from_pem(&other_cert, &other_key))
        .domain_name("shaddock-cluster");
    let foreign = call(port, Some(foreign)).await;
    assert!(
        !reached(&foreign),
        "a foreign certificate got through: {foreign:?}"
    );
    // The cluster's own certificate gets through TLS — and then meets the
    // cluster key check (no key here): TLS and the secret both hold.
    let member = ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(&ca))
        .identity(Identity::from_pem(&cert, &key))
        .domain_name("shaddock-cluster");
    assert_eq!(
        call(port, Some(member)).await,
        Ok(shaddock::tonic::Code::Unauthenticated)
    );
}
