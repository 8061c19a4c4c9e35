//! A thin client of etcd's v3 gRPC API: the calls etcd discovery makes.
//!
//! The API is compiled from `proto/etcd.proto` by protox like the rest of
//! the cluster protocol. Every call has a deadline ([`CALL_TIMEOUT`]): a
//! hung etcd must never hang a server, only make it fall back to the last
//! list it knows.

use std::time::Duration;

use bytes::Bytes;
use tokio::sync::mpsc;
use tonic::transport::{Channel, Endpoint};

use super::proto::{
    self, kv_client::KvClient, lease_client::LeaseClient, watch_client::WatchClient,
};

/// Deadline of one unary call.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(3);
/// How long connecting to one endpoint may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

/// What went wrong talking to etcd, phrased for a log line.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{0}")]
pub struct EtcdError(pub String);

impl From<tonic::Status> for EtcdError {
    fn from(status: tonic::Status) -> Self {
        EtcdError(format!(
            "{}: {}",
            code_name(status.code()),
            status.message()
        ))
    }
}

fn code_name(code: tonic::Code) -> &'static str {
    match code {
        tonic::Code::Unavailable => "unavailable",
        tonic::Code::DeadlineExceeded => "timed out",
        tonic::Code::NotFound => "not found",
        tonic::Code::Unauthenticated => "unauthenticated",
        tonic::Code::PermissionDenied => "permission denied",
        _ => "error",
    }
}

/// A connection to one etcd member.
#[derive(Debug, Clone)]
pub struct EtcdClient {
    channel: Channel,
    /// `host:port` of the member this client talks to.
    pub endpoint: String,
}

/// One key and value read from etcd.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub key: String,
    pub value: Bytes,
}

/// A watch event on a prefix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    Put(Entry),
    Delete(String),
}

/// A prefix watch: events in revision order.
pub struct Watch {
    stream: tonic::Streaming<proto::WatchResponse>,
    /// Kept so the request stream stays open (etcd cancels the watch when
    /// the client half closes).
    _requests: mpsc::Sender<proto::WatchRequest>,
}

impl Watch {
    /// The next batch of events: `Ok(None)` when etcd ended the stream,
    /// `Err` when it broke or the watch was cancelled (compacted revision).
    pub async fn next(&mut self) -> Result<Option<Vec<Event>>, EtcdError> {
        loop {
            let Some(resp) = self.stream.message().await? else {
                return Ok(None);
            };
            if resp.canceled || resp.compact_revision > 0 {
                return Err(EtcdError(format!(
                    "watch cancelled by etcd ({}{})",
                    resp.cancel_reason,
                    if resp.compact_revision > 0 {
                        format!("; revision compacted to {}", resp.compact_revision)
                    } else {
                        String::new()
                    }
                )));
            }
            if resp.events.is_empty() {
                continue;
            }
            let events = resp
                .events
                .into_iter()
                .filter_map(|e| {
                    let kv = e.kv?;
                    let key = String::from_utf8_lossy(&kv.key).into_owned();
                    Some(if e.r#type == proto::event::EventType::Delete as i32 {
                        Event::Delete(key)
                    } else {
                        Event::Put(Entry {
                            key,
                            value: kv.value,
                        })
                    })
                })
                .collect();
            return Ok(Some(events));
        }
    }
}

/// The end of the key range holding every key that starts with `prefix`
/// (etcd's convention: the prefix with its last byte incremented).
pub fn prefix_end(prefix: &str) -> Bytes {
    let mut end = prefix.as_bytes().to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return Bytes::from(end);
        }
    }
    // Every byte was 0xff (or the prefix is empty): "to the end of the keyspace".
    Bytes::from_static(&[0])
}

impl EtcdClient {
    /// Connects to the first endpoint (`host:port`) that answers, in order.
    pub async fn connect(endpoints: &[String]) -> Result<Self, EtcdError> {
        let mut problems = Vec::new();
        for endpoint in endpoints {
            let uri = if endpoint.contains("://") {
                endpoint.clone()
            } else {
                format!("http://{endpoint}")
            };
            let built = Endpoint::from_shared(uri)
                .map_err(|e| EtcdError(format!("bad etcd endpoint `{endpoint}`: {e}")))?
                .connect_timeout(CONNECT_TIMEOUT)
                .timeout(CALL_TIMEOUT)
                .tcp_nodelay(true);
            match tokio::time::timeout(CONNECT_TIMEOUT, built.connect()).await {
                Ok(Ok(channel)) => {
                    return Ok(EtcdClient {
                        channel,
                        endpoint: endpoint.clone(),
                    });
                }
                Ok(Err(e)) => problems.push(format!("{endpoint}: {}", source_chain(&e))),
                Err(_) => problems.push(format!("{endpoint}: connect timed out")),
            }
        }
        Err(EtcdError(if problems.is_empty() {
            "no etcd endpoints configured".into()
        } else {
            problems.join("; ")
        }))
    }

    /// A lease of `ttl` seconds; keys put with it vanish when it expires.
    pub async fn grant(&self, ttl: i64) -> Result<i64, EtcdError> {
        let resp = LeaseClient::new(self.channel.clone())
            .lease_grant(proto::LeaseGrantRequest { ttl, id: 0 })
            .await?
            .into_inner();
        if !resp.error.is_empty() {
            return Err(EtcdError(format!("lease grant refused: {}", resp.error)));
        }
        Ok(resp.id)
    }

    /// Ends a lease now, deleting its keys.
    pub async fn revoke(&self, lease: i64) -> Result<(), EtcdError> {
        LeaseClient::new(self.channel.clone())
            .lease_revoke(proto::LeaseRevokeRequest { id: lease })
            .await?;
        Ok(())
    }

    /// Renews a lease once; returns its remaining TTL (0: the lease is gone).
    pub async fn keep_alive(&self, lease: i64) -> Result<i64, EtcdError> {
        let request = futures_util::stream::iter([proto::LeaseKeepAliveRequest { id: lease }]);
        let call = async {
            let mut responses = LeaseClient::new(self.channel.clone())
                .lease_keep_alive(request)
                .await?
                .into_inner();
            match responses.message().await? {
                Some(resp) => Ok(resp.ttl),
                None => Err(EtcdError(
                    "keep-alive stream closed without an answer".into(),
                )),
            }
        };
        tokio::time::timeout(CALL_TIMEOUT, call)
            .await
            .map_err(|_| EtcdError("keep-alive timed out".into()))?
    }

    /// Puts `key` = `value`, attached to `lease` (0: none).
    pub async fn put(&self, key: &str, value: Bytes, lease: i64) -> Result<(), EtcdError> {
        KvClient::new(self.channel.clone())
            .put(proto::PutRequest {
                key: Bytes::copy_from_slice(key.as_bytes()),
                value,
                lease,
                prev_kv: false,
            })
            .await?;
        Ok(())
    }

    /// Deletes one key.
    pub async fn delete(&self, key: &str) -> Result<(), EtcdError> {
        KvClient::new(self.channel.clone())
            .delete_range(proto::DeleteRangeRequest {
                key: Bytes::copy_from_slice(key.as_bytes()),
                range_end: Bytes::new(),
                prev_kv: false,
            })
            .await?;
        Ok(())
    }

    /// Every key under `prefix`, and the store revision of the read.
    pub async fn get_prefix(&self, prefix: &str) -> Result<(Vec<Entry>, i64), EtcdError> {
        let resp = KvClient::new(self.channel.clone())
            .range(proto::RangeRequest {
                key: Bytes::copy_from_slice(prefix.as_bytes()),
                range_end: prefix_end(prefix),
                limit: 0,
                revision: 0,
            })
            .await?
            .into_inner();
        let revision = resp.header.map(|h| h.revision).unwrap_or(0);
        let entries = resp
            .kvs
            .into_iter()
            .map(|kv| Entry {
                key: String::from_utf8_lossy(&kv.key).into_owned(),
                value: kv.value,
            })
            .collect();
        Ok((entries, revision))
    }

    /// Watches every key under `prefix` from `start_revision` on (inclusive).
    pub async fn watch_prefix(
        &self,
        prefix: &str,
        start_revision: i64,
    ) -> Result<Watch, EtcdError> {
        let (tx, rx) = mpsc::channel(1);
        let create = proto::WatchRequest {
            request_union: Some(proto::watch_request::RequestUnion::CreateRequest(
                proto::WatchCreateRequest {
                    key: Bytes::copy_from_slice(prefix.as_bytes()),
                    range_end: prefix_end(prefix),
                    start_revision,
                    progress_notify: false,
                    prev_kv: false,
                },
            )),
        };
        tx.send(create)
            .await
            .map_err(|_| EtcdError("watch request queue closed".into()))?;
        let requests =
            futures_util::stream::unfold(
                rx,
                |mut rx| async move { rx.recv().await.map(|m| (m, rx)) },
            );
        // The watch lives on; only the wait for etcd to accept it is bounded.
        let mut stream = tokio::time::timeout(
            CALL_TIMEOUT,
            WatchClient::new(self.channel.clone()).watch(requests),
        )
        .await
        .map_err(|_| EtcdError("watch request timed out".into()))??
        .into_inner();
        // The first answer confirms the watch (`created`).
        match tokio::time::timeout(CALL_TIMEOUT, stream.message()).await {
            Ok(Ok(Some(resp))) if resp.created && !resp.canceled => {}
            Ok(Ok(Some(resp))) => {
                return Err(EtcdError(format!(
                    "watch not created: {}",
                    resp.cancel_reason
                )));
            }
            Ok(Ok(None)) => return Err(EtcdError("watch stream closed at once".into())),
            Ok(Err(status)) => return Err(status.into()),
            Err(_) => return Err(EtcdError("watch creation timed out".into())),
        }
        Ok(Watch {
            stream,
            _requests: tx,
        })
    }
}

/// An error and its sources on one line (tonic's transport errors say
/// "transport error" at the top and the useful part underneath).
fn source_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::prefix_end;

    #[test]
    fn prefix_end_increments_the_last_byte() {
        assert_eq!(&prefix_end("/app/servers/")[..], b"/app/servers0");
        assert_eq!(&prefix_end("ab")[..], b"ac");
        assert_eq!(&prefix_end("")[..], b"\0");
    }
}
