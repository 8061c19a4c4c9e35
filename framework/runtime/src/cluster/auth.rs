//! Cluster authentication: every call between servers carries the cluster
//! secret in the `x-shaddock-cluster-key` metadata, and every server refuses
//! a call without it (`Unauthenticated`) before any service sees it.
//!
//! Two tonic interceptors, so no service, stream or generated caller has to
//! remember it:
//!
//! * [`ClusterKey`] — client side: the [`Pool`](super::Pool) wraps every
//!   channel in it ([`ClusterChannel`]), so forwards, pushes, session ops,
//!   shard RPCs and the app's typed remotes all carry the key.
//! * [`KeyCheck`] — server side: [`RpcServer`](super::RpcServer) installs it
//!   as a layer in front of the cluster service *and* the app's remotes.
//!
//! The compare is constant-time (a timing side channel would let a
//! stranger guess the secret byte by byte). Refusals are logged at `warn`
//! with the peer address, at most one line per [`LOG_EVERY`] per server with
//! the number refused since the last line, so a flood cannot flood the log.
//!
//! Without a secret (a development run without `config/cluster.json`) the
//! client sends nothing and the check lets everything through; the
//! launcher warns about it, and refuses it in production.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tonic::metadata::{AsciiMetadataValue, MetadataMap};
use tonic::service::Interceptor;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;
use tonic::{Request, Status};

use crate::config::ClusterSecret;
use crate::logging::Throttle;

/// gRPC metadata key carrying the cluster secret.
pub const KEY_HEADER: &str = "x-shaddock-cluster-key";

/// At most one refusal log line per this interval per server.
pub const LOG_EVERY: Duration = Duration::from_secs(1);

/// A pooled channel that adds the cluster key (and the caller's trace
/// context, see [`trace_context`](super::trace_context)) to every call.
/// Every tonic client (`ClusterClient::new(channel)`, a generated
/// `FooClient::new`) takes it like a plain [`Channel`].
pub type ClusterChannel = InterceptedService<Channel, super::trace_context::Outbound>;

/// Client interceptor: adds the secret to each outgoing call.
#[derive(Clone, Debug, Default)]
pub struct ClusterKey {
    value: Option<AsciiMetadataValue>,
}

impl ClusterKey {
    pub fn new(secret: Option<&ClusterSecret>) -> Self {
        let value = secret.and_then(|s| {
            // ClusterSecret only holds visible ASCII, so this cannot fail.
            let mut v = AsciiMetadataValue::try_from(s.expose()).ok()?;
            v.set_sensitive(true);
            Some(v)
        });
        ClusterKey { value }
    }
}

impl Interceptor for ClusterKey {
    fn call(&mut self, mut request: Request<()>) -> Result<Request<()>, Status> {
        if let Some(v) = &self.value {
            request.metadata_mut().insert(KEY_HEADER, v.clone());
        }
        Ok(request)
    }
}

/// Server interceptor: refuses calls without the right key.
#[derive(Clone, Debug)]
pub struct KeyCheck {
    inner: Arc<CheckInner>,
}

#[derive(Debug)]
struct CheckInner {
    secret: Option<ClusterSecret>,
    server_id: String,
    log: Throttle,
}

impl KeyCheck {
    pub fn new(server_id: &str, secret: Option<ClusterSecret>) -> Self {
        KeyCheck {
            inner: Arc::new(CheckInner {
                secret,
                server_id: server_id.to_owned(),
                log: Throttle::new(LOG_EVERY),
            }),
        }
    }

    /// Whether `metadata` carries the secret (always, without a secret).
    pub fn accepts(&self, metadata: &MetadataMap) -> bool {
        let Some(secret) = &self.inner.secret else {
            return true;
        };
        let given = metadata
            .get(KEY_HEADER)
            .map(|v| v.as_bytes())
            .unwrap_or_default();
        constant_time_eq(given, secret.expose().as_bytes())
    }

    fn refused(&self, peer: Option<SocketAddr>, had_key: bool) {
        let i = &self.inner;
        let Some(refused) = i.log.event() else {
            return;
        };
        let peer = peer.map_or_else(|| "unknown".to_owned(), |p| p.to_string());
        tracing::warn!(
            server = %i.server_id,
            %peer,
            refused,
            reason = if had_key { "wrong cluster key" } else { "no cluster key" },
            "cluster call refused: not authenticated (at most one line per second; \
             `refused` counts the calls since the last line)"
        );
    }
}

impl Interceptor for KeyCheck {
    fn call(&mut self, request: Request<()>) -> Result<Request<()>, Status> {
        if self.accepts(request.metadata()) {
            return Ok(request);
        }
        let had_key = request.metadata().contains_key(KEY_HEADER);
        self.refused(request.remote_addr(), had_key);
        Err(Status::unauthenticated(
            "cluster call refused: missing or wrong cluster key (x-shaddock-cluster-key); \
             every server of a cluster needs the same secret (config/cluster.json or \
             SHADDOCK_CLUSTER_SECRET)",
        ))
    }
}

/// Compares in time that depends only on the lengths, not on where the
/// first differing byte is.
fn constant_time_eq(given: &[u8], expected: &[u8]) -> bool {
    let mut diff = u8::from(given.len() != expected.len());
    for (i, e) in expected.iter().enumerate() {
        let g = given.get(i).copied().unwrap_or(0);
        diff |= g ^ e;
    }
    std::hint::black_box(diff) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compare() {
        assert!(constant_time_eq(b"abcdef", b"abcdef"));
        assert!(!constant_time_eq(b"abcdeg", b"abcdef"));
        assert!(!constant_time_eq(b"abcde", b"abcdef"));
        assert!(!constant_time_eq(b"abcdefg", b"abcdef"));
        assert!(!constant_time_eq(b"", b"abcdef"));
        // Lengths differing by a multiple of 256 are still different.
        assert!(!constant_time_eq(&[0; 256], b""));
    }

    #[test]
    fn key_and_check_agree() {
        let secret = ClusterSecret::new("0123456789abcdef0123").unwrap();
        let mut check = KeyCheck::new("s", Some(secret.clone()));
        let signed = ClusterKey::new(Some(&secret))
            .call(Request::new(()))
            .unwrap();
        assert!(check.call(signed).is_ok());
        let status = check.call(Request::new(())).unwrap_err();
        assert_eq!(status.code(), tonic::Code::Unauthenticated);
        let other = ClusterSecret::new("0123456789abcdef0124").unwrap();
        let wrong = ClusterKey::new(Some(&other))
            .call(Request::new(()))
            .unwrap();
        assert!(check.call(wrong).is_err());
        // No secret configured: nothing sent, nothing checked.
        let mut open = KeyCheck::new("s", None);
        assert!(open.call(Request::new(())).is_ok());
    }
}
