//! Who may use the admin API, and how expensive guessing is.
//!
//! * **Login → token.** `Login` checks a user name and password once
//!   (argon2, deliberately slow) and returns a random token valid for
//!   [`TOKEN_TTL`]; the CLI sends the token afterwards, so the password
//!   crosses the wire once per command, not on every poll.
//! * **Same work for every failure.** An unknown user name is checked
//!   against a dummy hash, so it answers no faster than a wrong password.
//! * **Failures are logged** with the peer address and the user name tried.
//! * **Back-off per address.** After [`FREE_FAILURES`] failures from one
//!   address, each further attempt from it first waits, doubling up to
//!   [`MAX_DELAY`]. A wait is never a refusal: the right password still gets
//!   in, at most [`MAX_DELAY`] later — nobody can lock the operator out.
//! * **Fair checks.** At most [`CHECKS`] argon2 checks run at once and one
//!   address holds at most one of them (its attempts queue behind each
//!   other), so a guesser cannot take every slot and starve the operator.
//!   Waiting for a slot is bounded ([`CHECK_WAIT`]).
//!
//! Both maps (tokens, failures) are bounded.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::Semaphore;
use tonic::Status;

use super::auth::{AdminUsers, random_token};

/// How long a login token is valid.
pub const TOKEN_TTL: Duration = Duration::from_secs(15 * 60);
/// Failures from one address before attempts from it are slowed down.
pub const FREE_FAILURES: u32 = 3;
/// The longest wait before an attempt (doubling from 250 ms).
pub const MAX_DELAY: Duration = Duration::from_secs(4);
/// Concurrent password checks (argon2 uses a core for ~50 ms each).
pub const CHECKS: usize = 2;
/// How long an attempt may wait for a check slot.
pub const CHECK_WAIT: Duration = Duration::from_secs(10);
/// Pause before answering a failed check.
const FAILURE_PAUSE: Duration = Duration::from_millis(300);
const MAX_TOKENS: usize = 256;
const MAX_TRACKED: usize = 4096;

/// The admin API's gatekeeper (cheap to share: `Arc` inside).
#[derive(Clone)]
pub struct Guard {
    inner: Arc<Inner>,
}

struct Inner {
    users: AdminUsers,
    slots: Semaphore,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    /// token → (user, expiry)
    tokens: HashMap<String, (String, Instant)>,
    /// address → failures, and its own queue of checks
    peers: HashMap<IpAddr, Peer>,
}

struct Peer {
    failures: u32,
    last: Instant,
    queue: Arc<tokio::sync::Mutex<()>>,
}

impl Peer {
    fn new() -> Self {
        Peer {
            failures: 0,
            last: Instant::now(),
            queue: Arc::new(tokio::sync::Mutex::new(())),
        }
    }
}

/// The wait before an attempt after `failures` failures.
pub fn delay_after(failures: u32) -> Duration {
    if failures < FREE_FAILURES {
        return Duration::ZERO;
    }
    let doublings = (failures - FREE_FAILURES).min(8);
    (Duration::from_millis(250) * 2u32.pow(doublings)).min(MAX_DELAY)
}

impl Guard {
    pub fn new(users: AdminUsers) -> Self {
        Guard {
            inner: Arc::new(Inner {
                users,
                slots: Semaphore::new(CHECKS),
                state: Mutex::new(State::default()),
            }),
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        match self.inner.state.lock() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        }
    }

    /// The user a valid token belongs to.
    pub fn user_of_token(&self, token: &str) -> Option<String> {
        let mut state = self.state();
        let now = Instant::now();
        state.tokens.retain(|_, (_, expiry)| *expiry > now);
        state.tokens.get(token).map(|(user, _)| user.clone())
    }

    /// Checks `user`/`password` from `peer` (back-off, fair queueing, same
    /// work for unknown users); on success returns a new token.
    pub async fn login(
        &self,
        peer: Option<SocketAddr>,
        user: &str,
        password: &str,
    ) -> Result<(String, Duration), Status> {
        self.check_password(peer, user, password).await?;
        let token = random_token(32).map_err(|e| Status::internal(e.to_string()))?;
        let mut state = self.state();
        let now = Instant::now();
        state.tokens.retain(|_, (_, expiry)| *expiry > now);
        if state.tokens.len() >= MAX_TOKENS {
            // The oldest token goes first (it expires first).
            if let Some(oldest) = state
                .tokens
                .iter()
                .min_by_key(|(_, (_, e))| *e)
                .map(|(t, _)| t.clone())
            {
                state.tokens.remove(&oldest);
            }
        }
        state
            .tokens
            .insert(token.clone(), (user.to_string(), now + TOKEN_TTL));
        Ok((token, TOKEN_TTL))
    }

    /// Records a check's outcome for `ip`; returns its failures in a row.
    fn note(&self, ip: Option<IpAddr>, ok: bool) -> u32 {
        let mut state = self.state();
        let Some(p) = ip.and_then(|ip| state.peers.get_mut(&ip)) else {
            return 0;
        };
        if ok {
            p.failures = 0;
        } else {
            p.failures = p.failures.saturating_add(1);
            p.last = Instant::now();
        }
        p.failures
    }

    /// One password check, as described in the module docs.
    pub async fn check_password(
        &self,
        peer: Option<SocketAddr>,
        user: &str,
        password: &str,
    ) -> Result<(), Status> {
        let ip = peer.map(|p| p.ip());
        let (delay, queue) = match ip {
            Some(ip) => {
                let mut state = self.state();
                if !state.peers.contains_key(&ip) && state.peers.len() >= MAX_TRACKED {
                    let stalest = state
                        .peers
                        .iter()
                        .min_by_key(|(_, p)| p.last)
                        .map(|(ip, _)| *ip);
                    if let Some(stalest) = stalest {
                        state.peers.remove(&stalest);
                    }
                }
                let p = state.peers.entry(ip).or_insert_with(Peer::new);
                (delay_after(p.failures), Some(p.queue.clone()))
            }
            None => (Duration::ZERO, None),
        };
        // One check at a time per address; the back-off is served in that
        // queue, holding no global slot.
        let _turn = match &queue {
            Some(q) => Some(
                tokio::time::timeout(CHECK_WAIT + MAX_DELAY, q.clone().lock_owned())
                    .await
                    .map_err(|_| {
                        Status::resource_exhausted(
                            "too many admin attempts from this address are queued; retry later",
                        )
                    })?,
            ),
            None => None,
        };
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
        let permit = tokio::time::timeout(CHECK_WAIT, self.inner.slots.acquire())
            .await
            .map_err(|_| Status::resource_exhausted("too many admin requests; retry later"))?
            .map_err(|_| Status::unavailable("the master is shutting down"))?;
        let guard = self.clone();
        let (u, p) = (user.to_string(), password.to_string());
        let ok = tokio::task::spawn_blocking(move || guard.inner.users.verify(&u, &p))
            .await
            .unwrap_or(false);
        drop(permit);
        let failures = self.note(ip, ok);
        if ok {
            return Ok(());
        }
        let from = peer.map(|p| p.to_string()).unwrap_or_else(|| "?".into());
        tracing::warn!(peer = %from, user, failures, "failed admin login");
        super::supervisor::out_line(&format!(
            "[master] failed admin login for user `{user}` from {from} ({failures} in a row; \
             next attempt from there waits {} ms)",
            delay_after(failures).as_millis()
        ));
        tokio::time::sleep(FAILURE_PAUSE).await;
        Err(Status::unauthenticated("wrong admin user name or password"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn back_off_starts_after_the_free_failures_and_is_capped() {
        assert_eq!(delay_after(0), Duration::ZERO);
        assert_eq!(delay_after(FREE_FAILURES - 1), Duration::ZERO);
        assert_eq!(delay_after(FREE_FAILURES), Duration::from_millis(250));
        assert_eq!(delay_after(FREE_FAILURES + 2), Duration::from_millis(1000));
        assert_eq!(delay_after(1000), MAX_DELAY);
    }
}
