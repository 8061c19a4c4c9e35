//! Session resume: a client whose connection drops gets its session back
//! when it reconnects within a window (`docs/protocol.md` §13.6).
//!
//! A mobile network blip should not log a player out, announce a leave to
//! its room and a join a second later. So a frontend keeps the session of
//! a WORKING connection that *dropped* (a transport error, raw TCP EOF, a
//! heartbeat timeout — not a kick, not a WebSocket close frame: those are
//! the app or the client ending it on purpose) for `resume_window`,
//! *parked*: still in the [`SessionService`] under its sid and uid, with
//! its settings and keyed registrations (rooms), and still taking pushes
//! into its outbound queue, whose frame and byte bounds are the bounds of
//! this buffer. Nobody drains the queue meanwhile.
//!
//! * The client reconnects and sends the token it got in its first
//!   handshake (`sys.resume: "<token>"`): the new connection adopts the
//!   parked session at its handshake ACK, and the queued pushes go out in
//!   order. The app sees nothing: no `closed` listener runs, so the chat
//!   room announces no leave.
//! * The window passes, the queue overflows, or the app kicks the parked
//!   session: it is closed as it would have been at the drop (listeners
//!   run with the reason).
//!
//! Only clients that ask for it are parked (`sys.resume: true` or a token
//! in the handshake): a Pomelo client never sends `sys.resume`, so its
//! reply bytes and its close behaviour are exactly as before — a session
//! that cannot come back would only delay its leave.
//!
//! The token is `base64url(frontend|sid|nonce) "." base64url(HMAC-SHA256)`
//! with a key derived from the cluster secret, so any server of the cluster
//! can check it (a frontend without a secret uses a random key of its own).
//! It is opaque to clients. It is worth something only while its session
//! is parked: the nonce is drawn per session, so a token of a previous
//! incarnation's sid (sids restart at 1) matches nothing.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use ring::hmac;
use ring::rand::{SecureRandom, SystemRandom};
use serde_json::{Value, json};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::live::CloseRequest;
use super::{LiveSession, SessionService, lock};

/// Label the resume key is derived under from the cluster secret, so the
/// secret itself never signs anything a client sees.
const KEY_LABEL: &[u8] = b"shaddock session resume v1";

/// A frontend's resume setup and its parked sessions. Cheap to clone.
#[derive(Clone)]
pub struct Resume {
    inner: Arc<Inner>,
}

struct Inner {
    frontend_id: Arc<str>,
    window: Duration,
    /// Most sessions parked at once: each may hold a full outbound queue,
    /// so a wave of drops must not grow memory past what as many open
    /// connections could hold.
    max_parked: usize,
    key: hmac::Key,
    parked: Mutex<HashMap<u64, Parked>>,
}

/// A session kept after its connection dropped.
pub(crate) struct Parked {
    pub(crate) live: Arc<LiveSession>,
    nonce: u64,
    deadline: Instant,
    /// Why its connection ended (the close reason if it is never resumed).
    reason: String,
    /// Stops its watcher when a connection claims it.
    stop: CancellationToken,
}

/// What a token says, once its signature checked out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenClaims {
    pub frontend_id: String,
    pub sid: u64,
    pub nonce: u64,
}

impl std::fmt::Debug for Resume {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Resume")
            .field("window", &self.inner.window)
            .field("parked", &lock(&self.inner.parked).len())
            .finish()
    }
}

impl Resume {
    /// Resume on `frontend_id` with `window`; tokens signed with a key
    /// derived from `secret` (the cluster secret), or a random one. At most
    /// `max_parked` sessions wait at once (beyond it a drop closes the
    /// session as without resume, logged).
    pub fn new(
        frontend_id: impl Into<Arc<str>>,
        window: Duration,
        max_parked: usize,
        secret: Option<&str>,
    ) -> Self {
        let key = match secret {
            Some(secret) => {
                let master = hmac::Key::new(hmac::HMAC_SHA256, secret.as_bytes());
                hmac::Key::new(hmac::HMAC_SHA256, hmac::sign(&master, KEY_LABEL).as_ref())
            }
            None => {
                let mut bytes = [0u8; 32];
                // SystemRandom fails only without an OS random source, where
                // nothing of TLS would work either; a zero key still keeps
                // tokens per frontend and is logged.
                if SystemRandom::new().fill(&mut bytes).is_err() {
                    tracing::error!("no OS random source: session resume tokens use a fixed key");
                }
                hmac::Key::new(hmac::HMAC_SHA256, &bytes)
            }
        };
        Resume {
            inner: Arc::new(Inner {
                frontend_id: frontend_id.into(),
                window,
                max_parked: max_parked.max(1),
                key,
                parked: Mutex::default(),
            }),
        }
    }

    /// How long a dropped session is kept.
    pub fn window(&self) -> Duration {
        self.inner.window
    }

    /// How many sessions are parked now.
    pub fn parked(&self) -> usize {
        lock(&self.inner.parked).len()
    }

    /// The token of session `sid` with `nonce`.
    pub fn token(&self, sid: u64, nonce: u64) -> String {
        let payload = format!("{}|{sid}|{nonce:016x}", self.inner.frontend_id);
        let tag = hmac::sign(&self.inner.key, payload.as_bytes());
        format!("{}.{}", B64.encode(payload), B64.encode(tag.as_ref()))
    }

    /// Checks `token`'s signature and reads it; `Err` says why not.
    pub fn verify(&self, token: &str) -> Result<TokenClaims, &'static str> {
        let (payload, tag) = token.split_once('.').ok_or("not a resume token")?;
        let payload = B64.decode(payload).map_err(|_| "not a resume token")?;
        let tag = B64.decode(tag).map_err(|_| "not a resume token")?;
        hmac::verify(&self.inner.key, &payload, &tag).map_err(|_| "bad signature")?;
        let payload = String::from_utf8(payload).map_err(|_| "not a resume token")?;
        // The frontend id may hold anything; sid and nonce are the last two.
        let mut parts = payload.rsplitn(3, '|');
        let nonce = parts.next().and_then(|n| u64::from_str_radix(n, 16).ok());
        let sid = parts.next().and_then(|s| s.parse().ok());
        match (parts.next(), sid, nonce) {
            (Some(frontend), Some(sid), Some(nonce)) => Ok(TokenClaims {
                frontend_id: frontend.to_owned(),
                sid,
                nonce,
            }),
            _ => Err("not a resume token"),
        }
    }

    /// A fresh per-session nonce.
    fn nonce() -> u64 {
        let mut bytes = [0u8; 8];
        let _ = SystemRandom::new().fill(&mut bytes);
        u64::from_le_bytes(bytes)
    }

    /// Takes the parked session `token` names out of the parked set (its
    /// window stops); `Err` says why there is none.
    pub(crate) fn claim(&self, token: &str) -> Result<Parked, &'static str> {
        let claims = self.verify(token)?;
        if claims.frontend_id != *self.inner.frontend_id {
            return Err("the token is another frontend's");
        }
        let mut parked = lock(&self.inner.parked);
        match parked.get(&claims.sid) {
            Some(p) if p.nonce == claims.nonce => {}
            _ => return Err("no such session waiting (expired, closed or resumed)"),
        }
        let p = parked.remove(&claims.sid).expect("checked above");
        p.stop.cancel();
        Ok(p)
    }

    /// Keeps `live` for the window (or until `deadline`, for a session
    /// claimed by a connection that died before its ACK), closing it with
    /// `reason` if nobody claims it.
    fn park(
        &self,
        sessions: &SessionService,
        live: Arc<LiveSession>,
        nonce: u64,
        reason: String,
        deadline: Option<Instant>,
    ) {
        let sid = live.sid();
        // Pushes from now on wait in the outbox for the next connection.
        live.use_outbox_only();
        let deadline = deadline.unwrap_or_else(|| Instant::now() + self.inner.window);
        let stop = CancellationToken::new();
        tracing::info!(sid, uid = ?live.uid(), %reason, window_ms = self.inner.window.as_millis() as u64,
            "connection dropped; session kept for resume");
        let parked = Parked {
            live: live.clone(),
            nonce,
            deadline,
            reason,
            stop: stop.clone(),
        };
        lock(&self.inner.parked).insert(sid, parked);
        tokio::spawn(
            self.clone()
                .watch(sessions.clone(), live, nonce, stop, deadline),
        );
    }

    /// Waits out a parked session's window; closes it unless claimed.
    async fn watch(
        self,
        sessions: SessionService,
        live: Arc<LiveSession>,
        nonce: u64,
        stop: CancellationToken,
        deadline: Instant,
    ) {
        let why = loop {
            match live.close_requested() {
                Some(CloseRequest::Overflow) => {
                    break "outbound queue overflow while parked".into();
                }
                Some(CloseRequest::Kick(reason)) => break format!("kick: {reason}"),
                None => {}
            }
            tokio::select! {
                // Claimed wins over a wake-up; a wake-up this loop took may
                // have been meant for the connection that now holds the
                // session: hand one back.
                biased;
                _ = stop.cancelled() => {
                    live.rewake();
                    return;
                }
                _ = tokio::time::sleep_until(deadline) => break "resume window expired".to_owned(),
                // A push or a kick: look at the close request again.
                _ = live.wait_outbound() => {}
            }
        };
        let sid = live.sid();
        let taken = {
            let mut parked = lock(&self.inner.parked);
            match parked.get(&sid) {
                Some(p) if p.nonce == nonce => parked.remove(&sid),
                _ => None,
            }
        };
        // Claimed at the same moment: the claimer owns it now.
        let Some(parked) = taken else { return };
        let reason = format!("{why} (connection lost: {})", parked.reason);
        tracing::info!(sid, uid = ?live.uid(), %reason, "parked session closed");
        sessions.remove(sid);
        live.finish(&reason);
    }
}

/// One connection's side of resume (kept by its agent).
#[derive(Default)]
pub(crate) struct ResumeConn {
    /// Set when the client asked for resume: its session may be parked.
    nonce: Option<u64>,
    /// The parked session this connection's handshake claimed; adopted at
    /// the ACK.
    claimed: Option<Parked>,
}

impl ResumeConn {
    /// The handshake's `sys.resume` (`true`, or a token): claims the
    /// token's session if it is parked, and returns the reply's
    /// `sys.resume` — `{"token", "windowMs", "resumed"}` — or `None` when
    /// the client did not ask or this frontend has resume off.
    pub(crate) fn handshake(
        &mut self,
        resume: Option<&Resume>,
        asked: Option<&Value>,
        live: &LiveSession,
    ) -> Option<Value> {
        let resume = resume.filter(|r| !r.window().is_zero())?;
        let asked = asked?;
        let mut resumed = false;
        if let Some(token) = asked.as_str() {
            match resume.claim(token) {
                Ok(parked) => {
                    tracing::info!(resumed_sid = parked.live.sid(), uid = ?parked.live.uid(),
                        "session resumed by a new connection");
                    self.nonce = Some(parked.nonce);
                    self.claimed = Some(parked);
                    resumed = true;
                }
                Err(why) => tracing::info!(why, "resume refused; a new session starts"),
            }
        }
        let (sid, nonce) = match &self.claimed {
            Some(p) => (p.live.sid(), p.nonce),
            None => {
                let nonce = *self.nonce.get_or_insert_with(Resume::nonce);
                live.set_resume_nonce(nonce);
                (live.sid(), nonce)
            }
        };
        Some(json!({
            "token": resume.token(sid, nonce),
            "windowMs": resume.window().as_millis() as u64,
            "resumed": resumed,
        }))
    }

    /// The claimed session, to adopt at the handshake ACK.
    pub(crate) fn take_claimed(&mut self) -> Option<Arc<LiveSession>> {
        self.claimed.take().map(|p| p.live)
    }

    /// At the end of the connection: parks its session when it dropped
    /// (`dropped`) and the client can resume; gives a claimed but never
    /// adopted session back its window. Returns whether `live` was kept
    /// (then the caller must not close it).
    pub(crate) fn end(
        &mut self,
        sessions: &SessionService,
        live: &Arc<LiveSession>,
        dropped: bool,
        reason: &str,
    ) -> bool {
        let Some(resume) = sessions.resume() else {
            return false;
        };
        if let Some(p) = self.claimed.take() {
            let reason = p.reason.clone();
            resume.park(sessions, p.live, p.nonce, reason, Some(p.deadline));
        }
        let Some(nonce) = self.nonce else {
            return false;
        };
        let mut keep = dropped
            && !resume.window().is_zero()
            && live.is_working()
            && live.close_requested().is_none();
        if keep && resume.parked() >= resume.inner.max_parked {
            tracing::warn!(
                sid = live.sid(),
                max = resume.inner.max_parked,
                "too many sessions waiting for resume; closing this one now"
            );
            keep = false;
        }
        if keep {
            resume.park(sessions, live.clone(), nonce, reason.to_owned(), None);
        }
        keep
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_verify_and_name_their_session() {
        let r = Resume::new(
            "connector-1",
            Duration::from_secs(5),
            8,
            Some("0123456789abcdef"),
        );
        let token = r.token(42, 7);
        assert_eq!(
            r.verify(&token),
            Ok(TokenClaims {
                frontend_id: "connector-1".into(),
                sid: 42,
                nonce: 7
            })
        );
        // Any server with the same secret can check it; another secret cannot.
        let peer = Resume::new(
            "connector-2",
            Duration::from_secs(5),
            8,
            Some("0123456789abcdef"),
        );
        assert_eq!(peer.verify(&token).unwrap().frontend_id, "connector-1");
        let other = Resume::new(
            "connector-1",
            Duration::from_secs(5),
            8,
            Some("fedcba9876543210"),
        );
        assert_eq!(other.verify(&token), Err("bad signature"));
        // A changed byte anywhere fails.
        let (payload, tag) = token.split_once('.').unwrap();
        let forged = format!("{}.{tag}", B64.encode("connector-1|43|0000000000000007"));
        assert_eq!(r.verify(&forged), Err("bad signature"));
        assert!(r.verify(&format!("{payload}.AAAA")).is_err());
        assert_eq!(r.verify("garbage"), Err("not a resume token"));
        assert_eq!(r.verify("a.b.c"), Err("not a resume token"));
        // A frontend id with the separator in it still reads back.
        let odd = r.token(1, u64::MAX);
        assert_eq!(r.verify(&odd).unwrap().nonce, u64::MAX);
    }

    #[test]
    fn without_a_secret_each_frontend_has_its_own_key() {
        let a = Resume::new("f", Duration::from_secs(1), 8, None);
        let b = Resume::new("f", Duration::from_secs(1), 8, None);
        assert!(a.verify(&a.token(1, 2)).is_ok());
        assert_eq!(b.verify(&a.token(1, 2)), Err("bad signature"));
    }
}
