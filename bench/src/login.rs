//! Getting clients in: gate → connector → enter, paced.
//!
//! A thousand simultaneous connects make the server's accept queue (and the
//! robot) the thing being measured, so connects are ramped: at most
//! `concurrency` in flight and at most `rate` started per second. Every
//! step has a timeout (the client's connect and request timeouts, and one
//! overall per login).

use std::sync::Arc;
use std::time::Duration;

use shaddock_client::{Client, ClientOptions};
use shared::{EnterRequest, EnterResponse, QueryEntryRequest, QueryEntryResponse};
use tokio::sync::{Mutex, Semaphore, SemaphorePermit};
use tokio::time::Instant;

/// Limits how fast and how many connects run at once.
pub struct Pacer {
    slots: Semaphore,
    next: Mutex<Instant>,
    gap: Duration,
}

impl Pacer {
    pub fn new(concurrency: usize, per_second: f64) -> Self {
        Self {
            slots: Semaphore::new(concurrency.max(1)),
            next: Mutex::new(Instant::now()),
            gap: Duration::from_secs_f64(1.0 / per_second.max(1.0)),
        }
    }

    /// Waits for a turn; the permit is the right to have one connect in flight.
    pub async fn turn(&self) -> SemaphorePermit<'_> {
        let permit = self
            .slots
            .acquire()
            .await
            .expect("pacer semaphore never closes");
        let at = {
            let mut next = self.next.lock().await;
            let at = (*next).max(Instant::now());
            *next = at + self.gap;
            at
        };
        tokio::time::sleep_until(at).await;
        permit
    }
}

/// Client options of the robot: generous buffers (a receiver must never drop
/// a push because its buffer is full) and the given timeouts.
pub fn client_options(timeout: Duration) -> ClientOptions {
    ClientOptions {
        connect_timeout: timeout,
        request_timeout: timeout,
        push_capacity: 8192,
        ..ClientOptions::default()
    }
}

/// Asks the gate which connector serves `uid`; returns its `ws://` URL.
pub async fn query_entry(gate: &str, uid: &str, opts: &ClientOptions) -> anyhow::Result<String> {
    let g = Client::connect(gate, opts.clone())
        .await
        .map_err(|e| anyhow::anyhow!("gate {gate}: {e}"))?;
    let entry: Result<QueryEntryResponse, _> = g
        .request(
            shared::ROUTE_QUERY_ENTRY,
            &QueryEntryRequest {
                uid: uid.to_owned(),
            },
        )
        .await;
    g.close().await;
    let entry = entry.map_err(|e| anyhow::anyhow!("queryEntry: {e}"))?;
    match (entry.code, entry.host, entry.port) {
        (200, Some(host), Some(port)) => Ok(format!("ws://{host}:{port}")),
        (code, _, _) => anyhow::bail!("queryEntry answered code {code}"),
    }
}

/// The whole chatofpomelo login: gate, connector, `enter` into `rid`.
/// Returns the client and the room's member count after joining.
pub async fn login(
    gate: &str,
    name: &str,
    rid: &str,
    opts: &ClientOptions,
) -> anyhow::Result<(Arc<Client>, usize)> {
    let url = query_entry(gate, name, opts).await?;
    let client = Client::connect(&url, opts.clone())
        .await
        .map_err(|e| anyhow::anyhow!("connector {url}: {e}"))?;
    let resp: EnterResponse = client
        .request(
            shared::ROUTE_ENTER,
            &EnterRequest {
                username: name.to_owned(),
                rid: rid.to_owned(),
            },
        )
        .await
        .map_err(|e| anyhow::anyhow!("enter: {e}"))?;
    match resp {
        EnterResponse::Users { users } => Ok((Arc::new(client), users.len())),
        EnterResponse::Invalid { message, .. } => anyhow::bail!("enter refused: {message}"),
        EnterResponse::Error { code, .. } => anyhow::bail!("enter refused with code {code}"),
    }
}
