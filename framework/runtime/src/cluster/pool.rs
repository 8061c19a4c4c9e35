//! One gRPC channel per server id, connected lazily.
//!
//! A tonic [`Channel`] is a cheap, cloneable handle over one HTTP/2
//! connection that reconnects by itself: after a server restarts, the next
//! call dials again. So a pool only has to remember one channel per server
//! id, and build a new one when the server's address changes in the list.
//!
//! Every channel is a [`ClusterChannel`]: it adds the cluster key to each
//! call (see [`auth`](super::auth)), so no caller can forget it.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use tonic::service::interceptor::InterceptedService;
use tonic::transport::Endpoint;

use super::ClusterError;
use super::Servers;
use super::auth::{ClusterChannel, ClusterKey};
use super::trace_context::Outbound;

/// HTTP/2 flow-control window per stream (the connection gets 4×). The
/// 64 KiB default throttles a busy forward/push stream.
pub const WINDOW: u32 = 1 << 20;

/// How long dialing a server may take before the call fails.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

/// Lazily connected channels, keyed by server id.
#[derive(Debug)]
pub struct Pool {
    servers: Servers,
    connect_timeout: Duration,
    key: ClusterKey,
    /// Mutual TLS to every peer (`https://`), when the cluster has it.
    tls: Option<tonic::transport::ClientTlsConfig>,
    channels: Mutex<HashMap<String, (String, ClusterChannel)>>,
}

impl Pool {
    pub fn new(servers: Servers) -> Self {
        Self::with_connect_timeout(servers, DEFAULT_CONNECT_TIMEOUT)
    }

    pub fn with_connect_timeout(servers: Servers, connect_timeout: Duration) -> Self {
        Pool {
            servers,
            connect_timeout,
            key: ClusterKey::default(),
            tls: None,
            channels: Mutex::new(HashMap::new()),
        }
    }

    /// Sends `key` (the cluster secret) with every call on this pool's
    /// channels.
    pub fn with_key(mut self, key: ClusterKey) -> Self {
        self.key = key;
        self
    }

    /// Dials every peer over TLS with `tls` (see
    /// [`cluster::tls`](super::tls)).
    pub fn with_tls(mut self, tls: Option<tonic::transport::ClientTlsConfig>) -> Self {
        self.tls = tls;
        self
    }

    /// The server list this pool dials from.
    pub fn servers(&self) -> &Servers {
        &self.servers
    }

    /// The channel to `server_id`. Never waits: the connection is made by
    /// the first call that uses it.
    pub fn channel(&self, server_id: &str) -> Result<ClusterChannel, ClusterError> {
        let mut uri = self.servers.rpc_uri(server_id)?;
        if self.tls.is_some() {
            uri = uri.replacen("http://", "https://", 1);
        }
        let mut channels = self.channels.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((known_uri, channel)) = channels.get(server_id)
            && *known_uri == uri
        {
            return Ok(channel.clone());
        }
        let endpoint =
            Endpoint::from_shared(uri.clone()).map_err(|e| ClusterError::Unreachable {
                server: server_id.to_string(),
                reason: format!("bad address {uri}: {e}"),
            })?;
        let endpoint = match &self.tls {
            Some(tls) => {
                endpoint
                    .tls_config(tls.clone())
                    .map_err(|e| ClusterError::Unreachable {
                        server: server_id.to_string(),
                        reason: format!("cluster TLS: {e}"),
                    })?
            }
            None => endpoint,
        };
        let channel = endpoint
            .connect_timeout(self.connect_timeout)
            .tcp_nodelay(true)
            .http2_keep_alive_interval(Duration::from_secs(10))
            .keep_alive_timeout(Duration::from_secs(5))
            .keep_alive_while_idle(true)
            // Large windows: one connection carries every stream to a peer.
            .initial_stream_window_size(Some(WINDOW))
            .initial_connection_window_size(Some(WINDOW * 4))
            .connect_lazy();
        let channel = InterceptedService::new(channel, Outbound::new(self.key.clone()));
        channels.insert(server_id.to_string(), (uri, channel.clone()));
        Ok(channel)
    }
}
