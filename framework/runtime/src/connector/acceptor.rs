//! The listener of a frontend: accepts TCP connections on `clientPort` and
//! hands each to an agent task.
//!
//! Shutdown is designed, not incidental: stop accepting → let in-flight
//! requests finish (bounded) → kick every client with "server shutdown" →
//! wait (bounded) for the agents to close their sockets → wait (bounded)
//! for the async close work they started (`Session::on_closed_async`).

use std::future::Future;
use std::net::SocketAddr;

use tokio::net::TcpListener;
use tracing::{Instrument, debug, info, info_span, warn};

use super::budget::AddressCounts;
use super::{Frontend, Tracker, agent};
use crate::logging::Throttle;

/// A bound listener, ready to [`run`](Self::run).
pub struct Acceptor<F: Frontend> {
    app: F,
    listener: TcpListener,
}

impl<F: Frontend> Acceptor<F> {
    /// Binds `host:clientPort` of the app's server (port 0 picks a free port,
    /// see [`local_addr`](Self::local_addr)).
    pub async fn bind(app: F) -> std::io::Result<Self> {
        let server = app.server();
        let port = server.client_port.ok_or_else(|| {
            std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                format!(
                    "server `{}` has no clientPort in servers.json, so it cannot accept clients",
                    server.id
                ),
            )
        })?;
        let addr = format!("{}:{}", server.client_bind_host(), port);
        let listener = TcpListener::bind(&addr).await.map_err(|e| {
            std::io::Error::new(
                e.kind(),
                format!("cannot listen on {addr} for clients: {e}"),
            )
        })?;
        Ok(Self { app, listener })
    }

    /// Uses an already bound listener (tests bind 127.0.0.1:0 themselves).
    pub fn from_listener(app: F, listener: TcpListener) -> Self {
        Self { app, listener }
    }

    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Accepts clients until `shutdown` resolves, then shuts down gracefully.
    pub async fn run(self, shutdown: impl Future<Output = ()>) {
        let Self { app, listener } = self;
        let span = info_span!("acceptor", server = %app.server_id());
        async move {
            let addr = listener.local_addr().ok();
            let tls = app.connector_options().tls.clone();
            info!(?addr, tls = tls.is_some(), "accepting clients");
            // A renewed certificate is served without a restart.
            let watcher = tls.map(|tls| {
                tokio::spawn(
                    async move {
                        loop {
                            tokio::time::sleep(super::tls::CHECK_EVERY).await;
                            match tls.reload_if_changed() {
                                Ok(true) => info!(cert = %tls.files().cert.display(),
                                                  "TLS certificate reloaded; new handshakes use it"),
                                Ok(false) => {}
                                Err(e) => warn!("TLS certificate files changed but cannot be \
                                                 used ({e}); still serving the previous one"),
                            }
                        }
                    }
                    .in_current_span(),
                )
            });
            let connections = Tracker::default();
            let max = app
                .server()
                .max_connections
                .or(app.connector_options().max_connections);
            let per_address = app.connector_options().max_connections_per_address;
            let addresses = AddressCounts::default();
            // A connection flood must not become a log flood.
            let refusals = Throttle::new(std::time::Duration::from_secs(1));
            tokio::pin!(shutdown);
            loop {
                let (tcp, peer) = tokio::select! {
                    _ = &mut shutdown => break,
                    accepted = listener.accept() => match accepted {
                        Ok(a) => a,
                        Err(e) => {
                            // EMFILE and friends: back off instead of spinning.
                            warn!(error = %e, "accept failed; retrying in 50 ms");
                            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                            continue;
                        }
                    },
                };
                if app.draining() {
                    // Drained: the gate sends nobody here any more; a client
                    // that still comes (an old address) is closed at once
                    // and reconnects through the gate.
                    if let Some(refused) = refusals.event() {
                        info!(%peer, refused, "draining: connection refused \
                              (`refused`: since the last such line)");
                    }
                    crate::telemetry::m().connections_refused.increment(1);
                    drop(tcp);
                    continue;
                }
                if let Some(max) = max
                    && connections.count() >= max
                {
                    if let Some(refused) = refusals.event() {
                        warn!(%peer, max, refused, "max-connections reached; connection refused \
                              (`refused`: since the last such line)");
                    }
                    crate::telemetry::m().connections_refused.increment(1);
                    drop(tcp);
                    continue;
                }
                // A trusted proxy's clients are counted by their real
                // address once the agent knows it.
                let trusted = app.connector_options().trusted_proxies.trusts(peer.ip());
                let connect_rate = app.connector_options().connect_rate_per_address;
                if !trusted
                    && !addresses.admit_connect(peer.ip(), connect_rate, tokio::time::Instant::now())
                {
                    if let Some(refused) = refusals.event() {
                        warn!(%peer, rate = ?connect_rate, refused,
                              "connects-per-second-per-address exceeded; connection refused \
                               (`refused`: since the last such line)");
                    }
                    crate::telemetry::m().connections_refused.increment(1);
                    drop(tcp);
                    continue;
                }
                let address = if trusted {
                    None
                } else if let Some(guard) = addresses.enter(peer.ip(), per_address) {
                    Some(guard)
                } else {
                    if let Some(refused) = refusals.event() {
                        warn!(%peer, max = per_address, refused,
                              "max-connections-per-address reached; connection refused \
                               (`refused`: since the last such line)");
                    }
                    crate::telemetry::m().connections_refused.increment(1);
                    drop(tcp);
                    continue;
                };
                if let Err(e) = tcp.set_nodelay(true) {
                    debug!(error = %e, "TCP_NODELAY failed");
                }
                let guard = connections.enter();
                tokio::spawn(agent::serve(
                    app.clone(),
                    tcp,
                    peer,
                    (guard, address),
                    addresses.clone(),
                ));
            }
            drop(listener);
            if let Some(w) = watcher {
                w.abort();
            }
            let grace = app.connector_options().shutdown_grace;
            info!(
                connections = connections.count(),
                in_flight = app.inflight().count(),
                "shutting down: no new clients"
            );
            if !app.inflight().wait_idle(grace).await {
                warn!(
                    remaining = app.inflight().count(),
                    "in-flight requests still running after the grace period"
                );
            }
            let kicked = app.sessions().kick_all("server shutdown");
            debug!(kicked, "clients kicked");
            if !connections.wait_idle(grace).await {
                warn!(
                    remaining = connections.count(),
                    "connections still open after the grace period"
                );
            }
            // Close work the app registered (leave calls to backends): let
            // it finish, or the users stay in their rooms as ghosts.
            let closing = app.sessions().closing();
            if !closing.wait_idle(grace).await {
                warn!(
                    remaining = closing.count(),
                    "close listeners still running after the grace period"
                );
            }
            info!("connector stopped");
        }
        .instrument(span)
        .await
    }
}
