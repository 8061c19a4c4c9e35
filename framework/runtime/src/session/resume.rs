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
//! The token is `base64url(JSON) "." base64url(HMAC-SHA256)` with a key
//! derived from the cluster secret, so any server of the cluster can check
//! it (a frontend without a secret uses a random key of its own). The JSON
//! names the session — frontend id, the frontend process's incarnation,
//! sid, a per-session nonce — and carries its state: uid, settings and
//! keyed registrations. It is opaque to clients. On the frontend that
//! parked the session it is worth something only while the session is
//! parked (the nonce is drawn per session, so a token of a previous
//! incarnation's sid matches nothing).
//!
//! **After a crash** (the token's frontend is gone, or answers as another
//! incarnation) any frontend rebuilds the session from the token's state
//! and asks the owner of each key for the member it held, with the pushes
//! it held ([`TokenClaims::state`], `docs/scaling.md`). The state in a
//! token is as old as the token, so a frontend sends a fresh one on the
//! reserved push route [`TOKEN_ROUTE`] whenever the session's uid,
//! settings or keys change.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use ring::hmac;
use ring::rand::{SecureRandom, SystemRandom};
use serde_json::{Map, Value, json};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::live::CloseRequest;
use super::{LiveSession, SessionService, lock};

/// Label the resume key is derived under from the cluster secret, so the
/// secret itself never signs anything a client sees.
const KEY_LABEL: &[u8] = b"shaddock session resume v2";

/// Push route of a fresh token (`{"token": "..."}`), sent to a resumable
/// session whenever its state changes. Only clients that asked for resume
/// get it; the Shaddock clients keep the token and do not show the push.
pub const TOKEN_ROUTE: &str = "sys.resume";

/// Largest token payload that carries state; a session whose settings make
/// it bigger gets a token without state (it resumes on its own frontend
/// only), so a client never stores or sends kilobytes per reconnect.
pub const MAX_STATE_BYTES: usize = 2048;

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

impl Parked {
    /// A session rebuilt on this frontend from another frontend's token
    /// (after that one was lost), waiting for its connection's ACK like a
    /// claimed parked session: if the connection dies first, it is parked
    /// for `window`.
    pub(crate) fn restored(live: Arc<LiveSession>, nonce: u64, window: Duration) -> Self {
        Parked {
            live,
            nonce,
            deadline: Instant::now() + window,
            reason: "resumed from another frontend, connection lost before its ACK".into(),
            stop: CancellationToken::new(),
        }
    }
}

/// What a token says, once its signature checked out.
#[derive(Debug, Clone, PartialEq)]
pub struct TokenClaims {
    pub frontend_id: String,
    /// The frontend process that issued it ([`crate::discovery::incarnation`]).
    pub incarnation: u64,
    pub sid: u64,
    pub nonce: u64,
    /// The session's state when the token was issued; `None` when it was
    /// too big to carry ([`MAX_STATE_BYTES`]).
    pub state: Option<TokenState>,
}

/// A session's state as a token carries it: enough to rebuild the session
/// on another frontend.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct TokenState {
    #[serde(rename = "u", default, skip_serializing_if = "Option::is_none")]
    pub uid: Option<String>,
    /// Settings (Pomelo's `session.set` + `push`).
    #[serde(rename = "st", default, skip_serializing_if = "Map::is_empty")]
    pub settings: Map<String, Value>,
    /// Keyed registrations: `(server type, key)`.
    #[serde(rename = "k", default, skip_serializing_if = "Vec::is_empty")]
    pub keys: Vec<(String, String)>,
}

/// The signed JSON of a token.
#[derive(serde::Serialize, serde::Deserialize)]
struct Payload {
    f: String,
    i: u64,
    s: u64,
    /// The nonce in hex: JavaScript clients read JSON numbers as doubles.
    n: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    x: Option<TokenState>,
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

    /// The token of session `sid` with `nonce`, carrying `state` unless it
    /// is over [`MAX_STATE_BYTES`].
    pub fn token(&self, sid: u64, nonce: u64, state: Option<TokenState>) -> String {
        let mut payload = Payload {
            f: self.inner.frontend_id.to_string(),
            i: crate::discovery::incarnation(),
            s: sid,
            n: format!("{nonce:016x}"),
            x: state,
        };
        let mut json = serde_json::to_vec(&payload).unwrap_or_default();
        if json.len() > MAX_STATE_BYTES && payload.x.is_some() {
            tracing::debug!(
                sid,
                bytes = json.len(),
                "session state too big for its resume token; it resumes on this frontend only"
            );
            payload.x = None;
            json = serde_json::to_vec(&payload).unwrap_or_default();
        }
        let tag = hmac::sign(&self.inner.key, &json);
        format!("{}.{}", B64.encode(json), B64.encode(tag.as_ref()))
    }

    /// Checks `token`'s signature and reads it; `Err` says why not.
    pub fn verify(&self, token: &str) -> Result<TokenClaims, &'static str> {
        let (payload, tag) = token.split_once('.').ok_or("not a resume token")?;
        let payload = B64.decode(payload).map_err(|_| "not a resume token")?;
        let tag = B64.decode(tag).map_err(|_| "not a resume token")?;
        hmac::verify(&self.inner.key, &payload, &tag).map_err(|_| "bad signature")?;
        let p: Payload = serde_json::from_slice(&payload).map_err(|_| "not a resume token")?;
        let nonce = u64::from_str_radix(&p.n, 16).map_err(|_| "not a resume token")?;
        Ok(TokenClaims {
            frontend_id: p.f,
            incarnation: p.i,
            sid: p.s,
            nonce,
            state: p.x,
        })
    }

    /// Whether `claims` name a session of this very process (else its
    /// frontend crashed, restarted, or is another one).
    pub fn is_local(&self, claims: &TokenClaims) -> bool {
        claims.frontend_id == *self.inner.frontend_id
            && claims.incarnation == crate::discovery::incarnation()
    }

    /// A fresh per-session nonce.
    pub(crate) fn nonce() -> u64 {
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
        if claims.incarnation != crate::discovery::incarnation() {
            return Err("the token is of a previous run of this frontend");
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
    /// token's session if it is parked here (or takes `restored`, the
    /// session an app rebuilt from another frontend's token), and returns
    /// the reply's `sys.resume` — `{"token", "windowMs", "resumed"}` — or
    /// `None` when the client did not ask or this frontend has resume off.
    pub(crate) fn handshake(
        &mut self,
        sessions: &SessionService,
        asked: Option<&Value>,
        live: &LiveSession,
        restored: Option<Parked>,
    ) -> Option<Value> {
        let resume = sessions.resume().filter(|r| !r.window().is_zero())?;
        let asked = asked?;
        let mut resumed = false;
        if let Some(parked) = restored {
            self.nonce = Some(parked.nonce);
            self.claimed = Some(parked);
            resumed = true;
        } else if let Some(token) = asked.as_str() {
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
        let token = match &self.claimed {
            Some(p) => resume.token(p.live.sid(), p.nonce, Some(sessions.token_state(&p.live))),
            None => {
                let nonce = *self.nonce.get_or_insert_with(Resume::nonce);
                live.set_resume_nonce(nonce);
                resume.token(live.sid(), nonce, Some(TokenState::default()))
            }
        };
        Some(json!({
            "token": token,
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

    fn state() -> TokenState {
        let mut settings = Map::new();
        settings.insert("rid".into(), json!("lobby"));
        TokenState {
            uid: Some("bob*lobby".into()),
            settings,
            keys: vec![("chat".into(), "lobby".into())],
        }
    }

    #[test]
    fn tokens_verify_and_carry_their_session() {
        let r = Resume::new(
            "connector-1",
            Duration::from_secs(5),
            8,
            Some("0123456789abcdef"),
        );
        let token = r.token(42, 7, Some(state()));
        let claims = r.verify(&token).unwrap();
        assert_eq!(
            claims,
            TokenClaims {
                frontend_id: "connector-1".into(),
                incarnation: crate::discovery::incarnation(),
                sid: 42,
                nonce: 7,
                state: Some(state()),
            }
        );
        assert!(r.is_local(&claims), "issued by this very process");
        // Any server with the same secret can check it; another secret cannot.
        let peer = Resume::new(
            "connector-2",
            Duration::from_secs(5),
            8,
            Some("0123456789abcdef"),
        );
        let seen = peer.verify(&token).unwrap();
        assert_eq!(seen.frontend_id, "connector-1");
        assert!(!peer.is_local(&seen), "another frontend's");
        let other = Resume::new(
            "connector-1",
            Duration::from_secs(5),
            8,
            Some("fedcba9876543210"),
        );
        assert_eq!(other.verify(&token), Err("bad signature"));
        // A changed byte anywhere fails: a client cannot rewrite its uid.
        let (payload, tag) = token.split_once('.').unwrap();
        let text = String::from_utf8(B64.decode(payload).unwrap()).unwrap();
        let forged = text.replace("bob*lobby", "amy*lobby");
        assert_ne!(forged, text);
        let forged = format!("{}.{tag}", B64.encode(forged));
        assert_eq!(r.verify(&forged), Err("bad signature"));
        assert!(r.verify(&format!("{payload}.AAAA")).is_err());
        assert_eq!(r.verify("garbage"), Err("not a resume token"));
        assert_eq!(r.verify("a.b.c"), Err("not a resume token"));
        // The whole u64 range of nonces survives JSON.
        let odd = r.token(1, u64::MAX, None);
        assert_eq!(r.verify(&odd).unwrap().nonce, u64::MAX);
    }

    #[test]
    fn a_token_of_another_run_of_this_frontend_is_not_local() {
        let r = Resume::new("f", Duration::from_secs(5), 8, Some("0123456789abcdef"));
        let mut claims = r.verify(&r.token(1, 2, None)).unwrap();
        claims.incarnation -= 1;
        assert!(!r.is_local(&claims));
    }

    #[test]
    fn state_too_big_for_a_token_is_left_out() {
        let r = Resume::new("f", Duration::from_secs(5), 8, Some("0123456789abcdef"));
        let mut big = state();
        big.settings
            .insert("blob".into(), json!("x".repeat(MAX_STATE_BYTES)));
        let token = r.token(1, 2, Some(big));
        let claims = r.verify(&token).unwrap();
        assert_eq!(claims.state, None, "no state: it resumes at home only");
        assert!(token.len() < 400, "{} bytes", token.len());
    }

    #[test]
    fn without_a_secret_each_frontend_has_its_own_key() {
        let a = Resume::new("f", Duration::from_secs(1), 8, None);
        let b = Resume::new("f", Duration::from_secs(1), 8, None);
        assert!(a.verify(&a.token(1, 2, None)).is_ok());
        assert_eq!(b.verify(&a.token(1, 2, None)), Err("bad signature"));
    }
}
