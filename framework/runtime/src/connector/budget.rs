//! Per-client budgets: what one connection (or one remote address) may
//! cost a frontend before it is refused, and then kicked.
//!
//! Each limit has a default in [`ConnectorOptions`](super::ConnectorOptions)
//! and a documented outcome (`docs/security.md`):
//!
//! * requests per second — a token bucket per connection ([`RequestBudget`]);
//! * requests in flight — a counter per connection;
//!
//!   both refuse a request with [`REFUSED_RATE`] / [`REFUSED_INFLIGHT`] (a
//!   notify is dropped) and, once a client has been refused
//!   `kick_after_refusals` times within [`ABUSE_WINDOW`], the agent KICKs it
//!   (`{"reason":"rate limit exceeded"}`) and closes;
//! * connections per remote address — [`AddressCounts`], checked on accept.
//!
//! The checks are a few integer operations on the connection's own task:
//! no lock, no allocation on the hot path.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;

/// Response body of a request refused by the rate limit.
pub const REFUSED_RATE: &[u8] =
    br#"{"code":429,"error":"rate limit: too many requests per second"}"#;
/// Response body of a request refused because too many are in flight.
pub const REFUSED_INFLIGHT: &[u8] = br#"{"code":429,"error":"too many requests in flight"}"#;
/// KICK reason after sustained abuse.
pub const KICK_RATE: &str = "rate limit exceeded";
/// Refusals are counted over this window to tell a burst from abuse.
pub const ABUSE_WINDOW: Duration = Duration::from_secs(10);

/// Why a client message was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refusal {
    Rate,
    InFlight,
}

impl Refusal {
    pub(crate) fn body(self) -> &'static [u8] {
        match self {
            Refusal::Rate => REFUSED_RATE,
            Refusal::InFlight => REFUSED_INFLIGHT,
        }
    }
}

/// What the agent does with one DATA message.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Verdict {
    Run,
    Refuse(Refusal),
    /// Refused once too often within [`ABUSE_WINDOW`]: KICK and close.
    Kick,
}

/// The request budget of one connection.
#[derive(Debug)]
pub(crate) struct RequestBudget {
    /// Tokens per second (`None`: no rate limit).
    rate: Option<f64>,
    burst: f64,
    tokens: f64,
    last: Instant,
    max_inflight: usize,
    inflight: Arc<AtomicUsize>,
    kick_after: u32,
    refusals: u32,
    window_start: Instant,
}

impl RequestBudget {
    pub(crate) fn new(
        rate: Option<(u32, u32)>,
        max_inflight: usize,
        kick_after: u32,
        now: Instant,
    ) -> Self {
        let (per_second, burst) = rate.map_or((None, 0.0), |(r, b)| {
            (Some(f64::from(r.max(1))), f64::from(b.max(1)))
        });
        RequestBudget {
            rate: per_second,
            burst,
            tokens: burst,
            last: now,
            max_inflight: max_inflight.max(1),
            inflight: Arc::new(AtomicUsize::new(0)),
            kick_after: kick_after.max(1),
            refusals: 0,
            window_start: now,
        }
    }

    /// Judges one message arriving at `now`. On [`Verdict::Run`] the caller
    /// must hold the returned [`InFlight`] for as long as the request runs.
    pub(crate) fn admit(&mut self, now: Instant) -> (Verdict, Option<InFlight>) {
        let refusal = if !self.take_token(now) {
            Some(Refusal::Rate)
        } else if self.inflight.load(Ordering::Relaxed) >= self.max_inflight {
            Some(Refusal::InFlight)
        } else {
            None
        };
        let Some(refusal) = refusal else {
            self.inflight.fetch_add(1, Ordering::Relaxed);
            return (Verdict::Run, Some(InFlight(self.inflight.clone())));
        };
        if now.duration_since(self.window_start) > ABUSE_WINDOW {
            self.window_start = now;
            self.refusals = 0;
        }
        self.refusals += 1;
        if self.refusals >= self.kick_after {
            (Verdict::Kick, None)
        } else {
            (Verdict::Refuse(refusal), None)
        }
    }

    fn take_token(&mut self, now: Instant) -> bool {
        let Some(rate) = self.rate else {
            return true;
        };
        let elapsed = now.duration_since(self.last).as_secs_f64();
        self.last = now;
        self.tokens = (self.tokens + elapsed * rate).min(self.burst);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

/// One running request of a connection; dropping it frees the slot.
#[derive(Debug)]
pub(crate) struct InFlight(Arc<AtomicUsize>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Open connections per remote address, shared by one acceptor, and the
/// rate of new connections per address (a token bucket each).
#[derive(Debug, Clone, Default)]
pub(crate) struct AddressCounts {
    counts: Arc<Mutex<HashMap<IpAddr, usize>>>,
    connects: Arc<Mutex<HashMap<IpAddr, (f64, Instant)>>>,
}

/// Addresses whose connect buckets are remembered; beyond it the full
/// (idle) buckets are forgotten first.
const MAX_TRACKED_ADDRESSES: usize = 4096;

impl AddressCounts {
    /// Whether `ip` may open one more connection now under `rate`
    /// (`(connections per second, burst)`; `None`: no limit). A client
    /// kicked for abuse that logs in again at once is held to this rate.
    pub(crate) fn admit_connect(&self, ip: IpAddr, rate: Option<(u32, u32)>, now: Instant) -> bool {
        let Some((per_second, burst)) = rate else {
            return true;
        };
        let (per_second, burst) = (f64::from(per_second.max(1)), f64::from(burst.max(1)));
        let mut buckets = self.connects.lock().unwrap_or_else(|p| p.into_inner());
        if buckets.len() >= MAX_TRACKED_ADDRESSES && !buckets.contains_key(&ip) {
            buckets.retain(|_, (tokens, last)| {
                *tokens + now.saturating_duration_since(*last).as_secs_f64() * per_second < burst
            });
        }
        let (tokens, last) = buckets.entry(ip).or_insert((burst, now));
        *tokens =
            (*tokens + now.saturating_duration_since(*last).as_secs_f64() * per_second).min(burst);
        *last = now;
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            true
        } else {
            false
        }
    }

    /// Counts a connection from `ip`, unless `max` are already open.
    pub(crate) fn enter(&self, ip: IpAddr, max: Option<usize>) -> Option<AddressGuard> {
        let mut counts = self.counts.lock().unwrap_or_else(|p| p.into_inner());
        let n = counts.entry(ip).or_insert(0);
        if max.is_some_and(|max| *n >= max) {
            return None;
        }
        *n += 1;
        Some(AddressGuard {
            counts: self.counts.clone(),
            ip,
        })
    }
}

/// A counted connection; dropping it uncounts it (and forgets the address
/// at zero, so the map holds only addresses with open connections).
#[derive(Debug)]
pub(crate) struct AddressGuard {
    counts: Arc<Mutex<HashMap<IpAddr, usize>>>,
    ip: IpAddr,
}

impl Drop for AddressGuard {
    fn drop(&mut self) {
        let mut counts = self.counts.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(n) = counts.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                counts.remove(&self.ip);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn new_connections_per_address_are_held_to_the_rate() {
        let counts = AddressCounts::default();
        let (a, b): (IpAddr, IpAddr) = (
            "203.0.113.1".parse().unwrap(),
            "203.0.113.2".parse().unwrap(),
        );
        let t0 = Instant::now();
        let rate = Some((10, 3));
        let admitted: Vec<bool> = (0..5).map(|_| counts.admit_connect(a, rate, t0)).collect();
        assert_eq!(
            admitted,
            [true, true, true, false, false],
            "the burst, then refused"
        );
        assert!(
            counts.admit_connect(b, rate, t0),
            "another address has its own bucket"
        );
        assert!(
            counts.admit_connect(a, rate, t0 + Duration::from_millis(100)),
            "10/s refills"
        );
        assert!(!counts.admit_connect(a, rate, t0 + Duration::from_millis(100)));
        assert!(counts.admit_connect(a, None, t0), "no limit without a rate");
    }

    #[test]
    fn token_bucket_allows_the_burst_then_the_rate() {
        let t0 = Instant::now();
        let mut b = RequestBudget::new(Some((10, 5)), 100, 1000, t0);
        let ran: Vec<_> = (0..8).map(|_| b.admit(t0).0 == Verdict::Run).collect();
        assert_eq!(ran, [true, true, true, true, true, false, false, false]);
        // 10/s refills one token per 100 ms.
        let t1 = t0 + Duration::from_millis(100);
        assert_eq!(b.admit(t1).0, Verdict::Run);
        assert_eq!(b.admit(t1).0, Verdict::Refuse(Refusal::Rate));
    }

    #[test]
    fn in_flight_cap_and_release() {
        let t0 = Instant::now();
        let mut b = RequestBudget::new(None, 2, 1000, t0);
        let (_, a) = b.admit(t0);
        let (_, c) = b.admit(t0);
        assert_eq!(b.admit(t0).0, Verdict::Refuse(Refusal::InFlight));
        drop(a);
        assert_eq!(b.admit(t0).0, Verdict::Run);
        drop(c);
    }

    #[test]
    fn sustained_refusals_kick_but_spread_ones_do_not() {
        let t0 = Instant::now();
        let mut b = RequestBudget::new(Some((1, 1)), 100, 3, t0);
        assert_eq!(b.admit(t0).0, Verdict::Run);
        assert_eq!(b.admit(t0).0, Verdict::Refuse(Refusal::Rate));
        assert_eq!(b.admit(t0).0, Verdict::Refuse(Refusal::Rate));
        assert_eq!(b.admit(t0).0, Verdict::Kick);
        let mut b = RequestBudget::new(Some((1, 1)), 100, 3, t0);
        for i in 0..10u64 {
            // One refusal per window never adds up to a kick.
            let t = t0 + ABUSE_WINDOW * (i as u32) + Duration::from_millis(i);
            let _ = b.admit(t);
            assert_ne!(b.admit(t).0, Verdict::Kick);
        }
    }

    #[test]
    fn addresses_are_capped_and_forgotten() {
        let counts = AddressCounts::default();
        let ip: IpAddr = "10.0.0.1".parse().unwrap();
        let a = counts.enter(ip, Some(2)).unwrap();
        let b = counts.enter(ip, Some(2)).unwrap();
        assert!(counts.enter(ip, Some(2)).is_none());
        assert!(counts.enter("10.0.0.2".parse().unwrap(), Some(2)).is_some());
        drop(a);
        assert!(counts.enter(ip, Some(2)).is_some());
        drop(b);
        assert!(counts.counts.lock().unwrap().is_empty());
    }
}
