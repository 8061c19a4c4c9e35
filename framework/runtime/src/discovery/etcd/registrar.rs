//! Keeps one key registered in etcd under a lease, for as long as its
//! owner lives: a server's registration, or a host supervisor's.
//!
//! The lease is renewed every third of its TTL. When etcd is unreachable
//! the registrar retries (any endpoint, with backoff); when it is back and
//! the lease expired meanwhile, it grants a new lease and puts the key
//! again, so an outage longer than the TTL heals by itself.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::Mutex;
use tokio::task::JoinHandle;

use super::client::{CALL_TIMEOUT, EtcdClient, EtcdError};
use super::{RETRY_MAX, RETRY_MIN};

/// A key kept alive in etcd; [`Registrar::leave`] deletes it.
pub struct Registrar {
    state: Arc<Mutex<Lease>>,
    task: JoinHandle<()>,
}

struct Lease {
    client: EtcdClient,
    id: i64,
}

impl Registrar {
    /// Grants a lease of `ttl`, puts `key` = `value` with it and keeps it
    /// alive in the background. Fails if etcd does not accept the key now.
    pub async fn register(
        client: EtcdClient,
        endpoints: Vec<String>,
        key: String,
        value: Bytes,
        ttl: Duration,
    ) -> Result<Self, EtcdError> {
        let ttl_secs = ttl.as_secs().max(1) as i64;
        let id = client.grant(ttl_secs).await?;
        client.put(&key, value.clone(), id).await?;
        let state = Arc::new(Mutex::new(Lease { client, id }));
        let task = tokio::spawn(keep(state.clone(), endpoints, key, value, ttl));
        Ok(Registrar { state, task })
    }

    /// Stops renewing and revokes the lease, which deletes the key at once
    /// (bounded: if etcd is away, the key goes when the lease expires).
    pub async fn leave(self) {
        self.task.abort();
        let lease = self.state.lock().await;
        let _ = tokio::time::timeout(CALL_TIMEOUT, lease.client.revoke(lease.id)).await;
    }
}

impl Drop for Registrar {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn keep(
    state: Arc<Mutex<Lease>>,
    endpoints: Vec<String>,
    key: String,
    value: Bytes,
    ttl: Duration,
) {
    let every = ttl / 3;
    let mut delay = RETRY_MIN;
    let mut failing_since: Option<std::time::Instant> = None;
    loop {
        tokio::time::sleep(if failing_since.is_some() {
            delay
        } else {
            every
        })
        .await;
        let mut lease = state.lock().await;
        let outcome = renew(
            &mut lease,
            &endpoints,
            &key,
            &value,
            ttl,
            failing_since.is_some(),
        )
        .await;
        drop(lease);
        match outcome {
            Ok(()) => {
                if let Some(since) = failing_since.take() {
                    tracing::info!(%key, "etcd registration renewed after {:.1} s without etcd", since.elapsed().as_secs_f64());
                }
                delay = RETRY_MIN;
            }
            Err(e) => {
                if failing_since.is_none() {
                    failing_since = Some(std::time::Instant::now());
                    tracing::warn!(%key, "cannot renew the etcd registration ({e}); retrying");
                }
                delay = (delay * 2).min(RETRY_MAX);
            }
        }
    }
}

/// One renewal; after a failure, reconnects first. A lease etcd no longer
/// knows (expired while it was away) is replaced and the key put again.
async fn renew(
    lease: &mut Lease,
    endpoints: &[String],
    key: &str,
    value: &Bytes,
    ttl: Duration,
    reconnect: bool,
) -> Result<(), EtcdError> {
    if reconnect {
        lease.client = EtcdClient::connect(endpoints).await?;
    }
    let remaining = lease.client.keep_alive(lease.id).await?;
    if remaining > 0 {
        return Ok(());
    }
    let id = lease.client.grant(ttl.as_secs().max(1) as i64).await?;
    lease.client.put(key, value.clone(), id).await?;
    tracing::info!(%key, "etcd lease had expired; registered again with a new lease");
    lease.id = id;
    Ok(())
}
