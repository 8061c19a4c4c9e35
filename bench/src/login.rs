//! Getting clients in: gate → connector → enter, paced.
//!
//! A thousand simultaneous connects make the server's accept queue (and the
//! robot) the thing being measured, so connects are ramped: at most
//! `concurrency` in flight and at most `rate` started per second (the storm
//! scenario, which measures exactly that, turns the rate off). Every
//! step has a timeout (the client's connect and request timeouts, and one
//! overall per login). A failed login says which step failed and how
//! ([`LoginError::kind`]), so a storm can count errors by kind.

use std::fmt;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use shaddock_client::{Client, ClientError, ClientOptions};
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
            // A rate of 0 (or below) means no pacing: only `concurrency` bounds.
            gap: if per_second > 0.0 {
                Duration::from_secs_f64(1.0 / per_second)
            } else {
                Duration::ZERO
            },
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
        if self.gap > Duration::ZERO {
            tokio::time::sleep_until(at).await;
        }
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

/// Closes every client, all at once, waiting at most 15 s in all (a server
/// too busy to answer the close must not keep the robot from reporting).
pub async fn close_all(clients: Vec<Arc<Client>>) {
    let mut closing = tokio::task::JoinSet::new();
    for client in clients {
        closing.spawn(async move { client.close().await });
    }
    let _ = tokio::time::timeout(Duration::from_secs(15), async {
        while closing.join_next().await.is_some() {}
    })
    .await;
}

/// Options of client `i`: `base` with its source address, the `i`-th of
/// `sources` round robin (none: the kernel's choice).
pub fn options_for(base: &ClientOptions, sources: &[IpAddr], i: usize) -> ClientOptions {
    let mut opts = base.clone();
    if !sources.is_empty() {
        opts.local_addr = Some(sources[i % sources.len()]);
    }
    opts
}

/// The login step that failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    Gate,
    QueryEntry,
    Connector,
    Enter,
}

impl Stage {
    fn name(self) -> &'static str {
        match self {
            Stage::Gate => "gate connect",
            Stage::QueryEntry => "queryEntry",
            Stage::Connector => "connector connect",
            Stage::Enter => "enter",
        }
    }
}

/// How a login step failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// No answer in time (connect or request timeout).
    Timeout,
    /// The server answered with an error code or a refusal.
    Refused,
    /// The connection failed or closed.
    Error,
}

/// A failed login: the step, how, and the server's or the OS's words.
#[derive(Debug, Clone)]
pub struct LoginError {
    pub stage: Stage,
    pub failure: Failure,
    pub detail: String,
}

impl LoginError {
    fn new(stage: Stage, failure: Failure, detail: impl Into<String>) -> Self {
        Self {
            stage,
            failure,
            detail: detail.into(),
        }
    }

    fn client(stage: Stage, e: ClientError) -> Self {
        let failure = match e {
            ClientError::Timeout { .. } | ClientError::ConnectTimeout(_) => Failure::Timeout,
            ClientError::Handshake(_) => Failure::Refused,
            _ => Failure::Error,
        };
        Self::new(stage, failure, e.to_string())
    }

    /// `"<stage> <timeout|refused|error>"`: the key errors are counted by.
    pub fn kind(&self) -> String {
        let how = match self.failure {
            Failure::Timeout => "timeout",
            Failure::Refused => "refused",
            Failure::Error => "error",
        };
        format!("{} {how}", self.stage.name())
    }
}

impl fmt::Display for LoginError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.stage.name(), self.detail)
    }
}

impl std::error::Error for LoginError {}

/// Asks the gate which connector serves `uid`; returns its `ws://` URL.
pub async fn query_entry(
    gate: &str,
    uid: &str,
    opts: &ClientOptions,
) -> Result<String, LoginError> {
    let g = Client::connect(gate, opts.clone())
        .await
        .map_err(|e| LoginError::client(Stage::Gate, e))?;
    let entry: Result<QueryEntryResponse, _> = g
        .request(
            shared::ROUTE_QUERY_ENTRY,
            &QueryEntryRequest {
                uid: uid.to_owned(),
            },
        )
        .await;
    g.close().await;
    let entry = entry.map_err(|e| LoginError::client(Stage::QueryEntry, e))?;
    match (entry.code, entry.host, entry.port) {
        (200, Some(host), Some(port)) => Ok(format!("ws://{host}:{port}")),
        (code, _, _) => Err(LoginError::new(
            Stage::QueryEntry,
            Failure::Refused,
            format!("answered code {code}"),
        )),
    }
}

/// The whole chatofpomelo login: gate, connector, `enter` into `rid`.
/// Returns the client and the room's member count after joining.
pub async fn login(
    gate: &str,
    name: &str,
    rid: &str,
    opts: &ClientOptions,
) -> Result<(Arc<Client>, usize), LoginError> {
    let url = query_entry(gate, name, opts).await?;
    let client = Client::connect(&url, opts.clone())
        .await
        .map_err(|e| LoginError::client(Stage::Connector, e))
        .map_err(|mut e| {
            e.detail = format!("{url}: {}", e.detail);
            e
        })?;
    let resp: EnterResponse = client
        .request(
            shared::ROUTE_ENTER,
            &EnterRequest {
                username: name.to_owned(),
                rid: rid.to_owned(),
            },
        )
        .await
        .map_err(|e| LoginError::client(Stage::Enter, e))?;
    let refused = |detail: String| LoginError::new(Stage::Enter, Failure::Refused, detail);
    match resp {
        EnterResponse::Users { users } => Ok((Arc::new(client), users.len())),
        EnterResponse::Invalid { message, .. } => Err(refused(format!("refused: {message}"))),
        EnterResponse::Error { code, .. } => Err(refused(format!("refused with code {code}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn source_addresses_round_robin() {
        let base = ClientOptions::default();
        assert_eq!(options_for(&base, &[], 5).local_addr, None);
        let sources: Vec<IpAddr> = vec!["127.0.0.2".parse().unwrap(), "127.0.0.3".parse().unwrap()];
        assert_eq!(options_for(&base, &sources, 0).local_addr, Some(sources[0]));
        assert_eq!(options_for(&base, &sources, 3).local_addr, Some(sources[1]));
    }

    #[test]
    fn errors_are_keyed_by_stage_and_failure() {
        let e = LoginError::client(
            Stage::Enter,
            ClientError::Timeout {
                route: "x".into(),
                after: Duration::from_secs(1),
            },
        );
        assert_eq!(e.kind(), "enter timeout");
        let e = LoginError::client(Stage::Gate, ClientError::ConnectTimeout("ws://g".into()));
        assert_eq!(e.kind(), "gate connect timeout");
        let e = LoginError::client(Stage::Connector, ClientError::Handshake(501));
        assert_eq!(e.kind(), "connector connect refused");
        assert!(e.to_string().starts_with("connector connect: "), "{e}");
    }
}
