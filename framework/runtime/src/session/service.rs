//! `SessionService`: the frontend's index of its live sessions.
//!
//! Two maps behind std `RwLock`s (sid → session, uid → sids). Locks are held
//! only to look sessions up — never across an await, never while encoding —
//! so a broadcast to 10 000 sessions costs one read lock and one encode.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};

use bytes::Bytes;
use serde_json::{Map, Value};

use super::resume::{TOKEN_ROUTE, TokenState};
use super::{LiveSession, Resume, Session, SessionError, Tracker};
use crate::protocol::encode_data_frame;
use crate::protocol::{EncodeError, Message, Protos, RouteDictionary};
use crate::session::SessionSnapshot;

/// Cheap to clone; all clones share one index.
#[derive(Clone)]
pub struct SessionService {
    inner: Arc<Inner>,
}

struct Inner {
    frontend_id: Arc<str>,
    /// Dictionary used to compress PUSH routes (None when `useDict` is off).
    dict: Option<Arc<RouteDictionary>>,
    /// Protobuf bodies for the push routes `serverProtos.json` names.
    protos: Option<Arc<Protos>>,
    queue_bound: usize,
    queue_bytes: usize,
    next_sid: AtomicU64,
    sessions: RwLock<HashMap<u64, Arc<LiveSession>>>,
    uids: RwLock<HashMap<String, Vec<u64>>>,
    /// Keyed registrations: server type → sid → (key, uid). The frontend is
    /// the source of truth for which user belongs to which key (room); a
    /// backend that (re)builds its state for a key asks for them.
    keys: RwLock<HashMap<String, KeysBySid>>,
    /// Close work still running ([`Session::on_closed_async`]): a graceful
    /// stop waits for it, so a user's leave call is made before exit.
    closing: Tracker,
    /// Session resume (`session/resume.rs`); `None`: off.
    resume: Option<Resume>,
    /// Run after each successful bind (the app tells subscribed backends).
    on_bind: Option<BindHook>,
    /// The cluster-wide uid directory, when the app keeps one.
    claims: Option<Arc<dyn UidRegistry>>,
}

/// The cluster-wide uid directory as a frontend sees it (the cluster
/// implements it: `cluster::directory::UidClaims`); a trait so that
/// sessions do not depend on the cluster layer.
pub trait UidRegistry: Send + Sync + 'static {
    /// Asks for `uid` for session `sid`; `Err` says why not (another
    /// frontend holds it and the policy refuses, or no owner answered).
    /// `allow_kick`: the frontend's `duplicate-login: kick` may apply.
    fn claim<'a>(
        &'a self,
        sid: u64,
        uid: &'a str,
        allow_kick: bool,
    ) -> crate::BoxFuture<'a, Result<(), String>>;

    /// Session `sid` no longer holds `uid` (best effort, not awaited).
    fn release(&self, sid: u64, uid: &str);
}

/// Called with a session just bound to a uid.
pub type BindHook = Arc<dyn Fn(&Arc<LiveSession>) + Send + Sync>;

/// sid → (key, uid) of one server type.
type KeysBySid = HashMap<u64, (String, String)>;

fn read<T>(l: &RwLock<T>) -> RwLockReadGuard<'_, T> {
    l.read().unwrap_or_else(|e| e.into_inner())
}
fn write<T>(l: &RwLock<T>) -> RwLockWriteGuard<'_, T> {
    l.write().unwrap_or_else(|e| e.into_inner())
}

impl SessionService {
    /// `dict` compresses push routes; `queue_bound` is each session's
    /// outbound queue limit.
    pub fn new(
        frontend_id: impl Into<Arc<str>>,
        dict: Option<Arc<RouteDictionary>>,
        queue_bound: usize,
    ) -> Self {
        Self {
            inner: Arc::new(Inner {
                frontend_id: frontend_id.into(),
                dict,
                protos: None,
                queue_bound,
                queue_bytes: usize::MAX,
                // Session ids start at 1, like Pomelo's socket ids.
                next_sid: AtomicU64::new(1),
                sessions: RwLock::default(),
                uids: RwLock::default(),
                keys: RwLock::default(),
                closing: Tracker::default(),
                resume: None,
                on_bind: None,
                claims: None,
            }),
        }
    }

    /// Also bounds each session's outbound queue in bytes (call before the
    /// service is cloned).
    pub fn with_queue_bytes(mut self, bytes: usize) -> Self {
        if let Some(inner) = Arc::get_mut(&mut self.inner) {
            inner.queue_bytes = bytes;
        }
        self
    }

    /// Encodes push bodies with protobuf on the routes `protos.server`
    /// names (call before the service is cloned).
    pub fn with_protos(mut self, protos: Option<Arc<Protos>>) -> Self {
        if let Some(inner) = Arc::get_mut(&mut self.inner) {
            inner.protos = protos;
        }
        self
    }

    /// Keeps dropped sessions for `resume`'s window (call before the
    /// service is cloned).
    pub fn with_resume(mut self, resume: Resume) -> Self {
        if let Some(inner) = Arc::get_mut(&mut self.inner) {
            inner.resume = Some(resume);
        }
        self
    }

    /// Runs `hook` after every successful bind (call before the service is
    /// cloned).
    pub fn with_bind_hook(mut self, hook: BindHook) -> Self {
        if let Some(inner) = Arc::get_mut(&mut self.inner) {
            inner.on_bind = Some(hook);
        }
        self
    }

    /// Claims every bound uid in the cluster-wide uid directory (call
    /// before the service is cloned).
    pub fn with_uid_claims(mut self, claims: Arc<dyn UidRegistry>) -> Self {
        if let Some(inner) = Arc::get_mut(&mut self.inner) {
            inner.claims = Some(claims);
        }
        self
    }

    /// The uid directory's claim (when the app keeps one), then
    /// [`bind`](Self::bind): refused there, nothing is bound (no bind
    /// hook, no session event) and the error says who holds the uid. What
    /// [`Session::bind`] runs on a frontend. `allow_kick: false` refuses
    /// rather than kicking another holder whatever `duplicate-login` says
    /// (a session restored from a token must not kick a live one).
    pub async fn bind_claimed(
        &self,
        sid: u64,
        uid: &str,
        allow_kick: bool,
    ) -> Result<(), SessionError> {
        let live = self.live(sid).ok_or(SessionError::NoSuchSession(sid))?;
        let already = live.uid();
        if let (Some(claims), false) = (&self.inner.claims, already.as_deref() == Some(uid)) {
            if let Some(bound) = already {
                return Err(SessionError::AlreadyBound {
                    sid,
                    bound,
                    requested: uid.to_owned(),
                });
            }
            if let Err(why) = claims.claim(sid, uid, allow_kick).await {
                tracing::info!(sid, uid, %why, "bind refused by the uid directory");
                return Err(SessionError::Duplicate(why));
            }
            if let Err(e) = self.bind(sid, uid) {
                claims.release(sid, uid);
                return Err(e);
            }
            return Ok(());
        }
        self.bind(sid, uid)
    }

    /// Session resume, when on.
    pub fn resume(&self) -> Option<&Resume> {
        self.inner.resume.as_ref()
    }

    /// Close work still running (listeners added with
    /// [`Session::on_closed_async`]); graceful shutdown waits for it.
    pub fn closing(&self) -> &Tracker {
        &self.inner.closing
    }

    pub fn frontend_id(&self) -> &str {
        &self.inner.frontend_id
    }

    /// Creates and registers the session of a new connection.
    pub(crate) fn create(&self) -> Arc<LiveSession> {
        let sid = self.inner.next_sid.fetch_add(1, Ordering::Relaxed);
        let live = Arc::new(LiveSession::new(
            sid,
            self.inner.frontend_id.clone(),
            self.inner.queue_bound,
            self.inner.queue_bytes,
        ));
        write(&self.inner.sessions).insert(sid, live.clone());
        let m = crate::telemetry::m();
        m.connections_total.increment(1);
        m.connections_open.increment(1.0);
        live
    }

    /// Forgets a closed connection's session (agent side).
    pub(crate) fn remove(&self, sid: u64) {
        let Some(live) = write(&self.inner.sessions).remove(&sid) else {
            return;
        };
        crate::telemetry::m().connections_open.decrement(1.0);
        for by_sid in write(&self.inner.keys).values_mut() {
            by_sid.remove(&sid);
        }
        if let Some(uid) = live.uid() {
            self.forget_uid(&uid, sid);
            if let Some(claims) = &self.inner.claims {
                claims.release(sid, &uid);
            }
        }
    }

    fn forget_uid(&self, uid: &str, sid: u64) {
        let mut uids = write(&self.inner.uids);
        if let Some(sids) = uids.get_mut(uid) {
            sids.retain(|s| *s != sid);
            if sids.is_empty() {
                uids.remove(uid);
            }
        }
    }

    pub(crate) fn live(&self, sid: u64) -> Option<Arc<LiveSession>> {
        read(&self.inner.sessions).get(&sid).cloned()
    }

    fn live_by_uid(&self, uid: &str) -> Vec<Arc<LiveSession>> {
        let sids = match read(&self.inner.uids).get(uid) {
            Some(sids) => sids.clone(),
            None => return Vec::new(),
        };
        let sessions = read(&self.inner.sessions);
        sids.iter()
            .filter_map(|s| sessions.get(s).cloned())
            .collect()
    }

    /// Records that session `sid` (bound to `uid`) belongs to `key` of
    /// `server_type` (a room of the chat servers), replacing an earlier key
    /// of that type. See [`Session::register_key`].
    pub fn register_key(
        &self,
        sid: u64,
        server_type: &str,
        key: &str,
        uid: &str,
    ) -> Result<(), SessionError> {
        if !read(&self.inner.sessions).contains_key(&sid) {
            return Err(SessionError::NoSuchSession(sid));
        }
        write(&self.inner.keys)
            .entry(server_type.to_string())
            .or_default()
            .insert(sid, (key.to_string(), uid.to_string()));
        self.reissue_token(sid);
        Ok(())
    }

    /// Forgets session `sid`'s key of `server_type`.
    pub fn unregister_key(&self, sid: u64, server_type: &str) {
        let removed = write(&self.inner.keys)
            .get_mut(server_type)
            .and_then(|by_sid| by_sid.remove(&sid))
            .is_some();
        if removed {
            self.reissue_token(sid);
        }
    }

    /// Every `(key, uid)` registered for `server_type` on this frontend.
    pub fn keys(&self, server_type: &str) -> Vec<(String, String)> {
        read(&self.inner.keys)
            .get(server_type)
            .map(|by_sid| by_sid.values().cloned().collect())
            .unwrap_or_default()
    }

    /// Every `(key, uid, resume window ms)` registered for `server_type` on
    /// this frontend; the window is 0 for a session that cannot resume.
    pub fn keys_with_resume(&self, server_type: &str) -> Vec<(String, String, u32)> {
        let keys = read(&self.inner.keys);
        let Some(by_sid) = keys.get(server_type) else {
            return Vec::new();
        };
        let sessions = read(&self.inner.sessions);
        by_sid
            .iter()
            .map(|(sid, (key, uid))| {
                let window = sessions
                    .get(sid)
                    .map_or(0, |live| self.resume_window_ms(live));
                (key.clone(), uid.clone(), window)
            })
            .collect()
    }

    /// How long `live` would be kept for resume, in ms (0: not resumable).
    pub(crate) fn resume_window_ms(&self, live: &LiveSession) -> u32 {
        match &self.inner.resume {
            Some(r) if live.resume_nonce().is_some() => {
                r.window().as_millis().min(u128::from(u32::MAX)) as u32
            }
            _ => 0,
        }
    }

    /// The handler-facing session of connection `sid`.
    pub fn get(&self, sid: u64) -> Option<Session> {
        self.live(sid).map(|l| Session::local(l, self.clone()))
    }

    /// Every session bound to `uid` (several unless the app prevents it).
    pub fn by_uid(&self, uid: &str) -> Vec<Session> {
        self.live_by_uid(uid)
            .into_iter()
            .map(|l| Session::local(l, self.clone()))
            .collect()
    }

    /// Number of open connections (handshake done or not).
    pub fn count(&self) -> usize {
        read(&self.inner.sessions).len()
    }

    /// Number of sessions bound to a uid.
    pub fn bound_count(&self) -> usize {
        read(&self.inner.uids).values().map(Vec::len).sum()
    }

    /// Every uid bound on this frontend (unordered).
    pub fn bound_uids(&self) -> Vec<String> {
        read(&self.inner.uids).keys().cloned().collect()
    }

    /// Binds `uid` to session `sid`. Binding the uid it already has is a
    /// no-op; binding a different one is an error (Pomelo's rule).
    pub fn bind(&self, sid: u64, uid: &str) -> Result<(), SessionError> {
        let live = self.live(sid).ok_or(SessionError::NoSuchSession(sid))?;
        if live.uid().as_deref() == Some(uid) {
            return Ok(());
        }
        live.bind_uid(uid)
            .map_err(|bound| SessionError::AlreadyBound {
                sid,
                bound,
                requested: uid.to_owned(),
            })?;
        write(&self.inner.uids)
            .entry(uid.to_owned())
            .or_default()
            .push(sid);
        tracing::debug!(sid, uid, "session bound");
        if let Some(hook) = &self.inner.on_bind {
            hook(&live);
        }
        self.reissue_token(sid);
        Ok(())
    }

    /// Unbinds `uid` from session `sid`.
    pub fn unbind(&self, sid: u64, uid: &str) -> Result<(), SessionError> {
        let live = self.live(sid).ok_or(SessionError::NoSuchSession(sid))?;
        if !live.unbind_uid(uid) {
            return Err(SessionError::NotBound {
                sid,
                uid: uid.to_owned(),
            });
        }
        self.forget_uid(uid, sid);
        if let Some(claims) = &self.inner.claims {
            claims.release(sid, uid);
        }
        self.reissue_token(sid);
        Ok(())
    }

    /// Merges `settings` into session `sid` (Pomelo's `session.push`).
    pub fn set_settings(&self, sid: u64, settings: Map<String, Value>) -> Result<(), SessionError> {
        let live = self.live(sid).ok_or(SessionError::NoSuchSession(sid))?;
        live.merge_settings(settings);
        self.reissue_token(sid);
        Ok(())
    }

    /// What a resume token of `live` carries: uid, settings, keys.
    pub(crate) fn token_state(&self, live: &LiveSession) -> TokenState {
        let sid = live.sid();
        let mut keys: Vec<(String, String)> = read(&self.inner.keys)
            .iter()
            .filter_map(|(ty, by_sid)| by_sid.get(&sid).map(|(key, _)| (ty.clone(), key.clone())))
            .collect();
        keys.sort();
        TokenState {
            uid: live.uid(),
            settings: live.settings(),
            keys,
        }
    }

    /// Sends session `sid` a fresh resume token (on [`TOKEN_ROUTE`]) when
    /// its client asked for resume: its uid, settings or keys changed, and
    /// a frontend that rebuilds it after a crash must see them.
    fn reissue_token(&self, sid: u64) {
        let Some(resume) = &self.inner.resume else {
            return;
        };
        let Some(live) = self.live(sid) else { return };
        let Some(nonce) = live.resume_nonce() else {
            return;
        };
        let token = resume.token(sid, nonce, Some(self.token_state(&live)));
        let body = serde_json::json!({ "token": token }).to_string();
        if let Some(frame) = self.encode_push_frame(TOKEN_ROUTE, Bytes::from(body)) {
            // A session being restored queues these in its outbox, behind
            // its handshake reply's token; the client keeps the latest.
            let _ = live.send(frame);
        }
    }

    /// Rebuilds, as a new session of this frontend, the session a token of
    /// a lost frontend describes — claimed in the uid directory (never
    /// kicking a live holder), bound to its uid, with its settings and keys
    /// — ready to take pushes (queued until a connection adopts it). The
    /// caller asks the keys' owners for the members they held, and
    /// [`discard`](Self::discard)s it if that fails.
    pub(crate) async fn restore(
        &self,
        state: &TokenState,
        nonce: u64,
    ) -> Result<Arc<LiveSession>, String> {
        let uid = state
            .uid
            .as_deref()
            .ok_or("the session was not bound to a uid: nothing to resume")?;
        if !self.live_by_uid(uid).is_empty() {
            return Err(format!("`{uid}` already has a session on this frontend"));
        }
        let live = self.create();
        live.use_outbox_only();
        live.set_state(super::live::STATE_WORKING);
        live.set_resume_nonce(nonce);
        live.merge_settings(state.settings.clone());
        let sid = live.sid();
        let done = match self.bind_claimed(sid, uid, false).await {
            Err(e) => Err(e.to_string()),
            // Two handshakes with one token at once: one restore only.
            Ok(()) if self.live_by_uid(uid).len() > 1 => {
                Err(format!("`{uid}` already has a session on this frontend"))
            }
            Ok(()) => state.keys.iter().try_for_each(|(ty, key)| {
                self.register_key(sid, ty, key, uid)
                    .map_err(|e| e.to_string())
            }),
        };
        if let Err(e) = done {
            self.discard(&live, "restore failed");
            return Err(e);
        }
        Ok(live)
    }

    /// Forgets a session nobody saw (a restore that failed).
    pub(crate) fn discard(&self, live: &Arc<LiveSession>, reason: &str) {
        self.remove(live.sid());
        live.finish(reason);
    }

    /// Pomelo's `session.export()` of session `sid`.
    pub fn snapshot(&self, sid: u64) -> Option<SessionSnapshot> {
        self.live(sid).map(|l| l.snapshot())
    }

    /// Kicks session `sid`: KICK `{"reason":..}`, then close. Returns
    /// whether the session existed.
    pub fn kick_by_sid(&self, sid: u64, reason: &str) -> bool {
        match self.live(sid) {
            Some(live) => {
                live.kick(reason);
                true
            }
            None => false,
        }
    }

    /// Kicks every session bound to `uid`; returns how many.
    pub fn kick_by_uid(&self, uid: &str, reason: &str) -> usize {
        let sessions = self.live_by_uid(uid);
        for live in &sessions {
            live.kick(reason);
        }
        sessions.len()
    }

    /// Kicks every session (used on shutdown).
    pub fn kick_all(&self, reason: &str) -> usize {
        let all: Vec<_> = read(&self.inner.sessions).values().cloned().collect();
        for live in &all {
            live.kick(reason);
        }
        all.len()
    }

    /// Encodes one PUSH package (route compressed when it is in the
    /// dictionary). The result can be sent to any number of sessions.
    pub fn encode_push(&self, route: &str, body: &[u8]) -> Result<Bytes, EncodeError> {
        let body = self.push_body(route, Bytes::copy_from_slice(body));
        let msg = Message::push(route, body.unwrap_or_default());
        encode_data_frame(&msg, self.inner.dict.as_deref())
    }

    /// Pushes `body` on `route` to every session of each uid. The package is
    /// encoded once; returns the uids that had no session here or whose
    /// session could not take it.
    pub fn push_to_uids<S: AsRef<str>>(&self, route: &str, body: Bytes, uids: &[S]) -> Vec<String> {
        self.fan_out(route, body, uids, |live, frame| live.send(frame).is_ok())
    }

    /// [`push_to_uids`](Self::push_to_uids) for one push of a batch: on
    /// plain TCP the frame is only queued, and each session that needs a
    /// write is added to `touched` once, for
    /// [`flush_deferred`](Self::flush_deferred) after the last push of the
    /// batch — one write per client for the whole batch.
    pub fn push_to_uids_deferred<S: AsRef<str>>(
        &self,
        route: &str,
        body: Bytes,
        uids: &[S],
        touched: &mut Vec<Arc<LiveSession>>,
    ) -> Vec<String> {
        self.fan_out(route, body, uids, |live, frame| {
            match live.send_deferred(frame) {
                Ok(first) => {
                    if first {
                        touched.push(live.clone());
                    }
                    true
                }
                Err(_) => false,
            }
        })
    }

    /// Writes what [`push_to_uids_deferred`](Self::push_to_uids_deferred)
    /// queued (what a socket does not take now is left to its agent).
    pub fn flush_deferred(touched: &mut Vec<Arc<LiveSession>>) {
        for live in touched.drain(..) {
            live.flush_wire();
        }
    }

    /// Encodes the push once and hands it to every session of each uid
    /// with `send`; returns the uids no session took it for.
    fn fan_out<S: AsRef<str>>(
        &self,
        route: &str,
        body: Bytes,
        uids: &[S],
        mut send: impl FnMut(&Arc<LiveSession>, Bytes) -> bool,
    ) -> Vec<String> {
        let frame = match self.encode_push_frame(route, body) {
            Some(f) => f,
            None => return uids.iter().map(|u| u.as_ref().to_owned()).collect(),
        };
        let mut failed = Vec::new();
        let mut total = 0;
        // Both read locks once for the whole fan-out; `send` never blocks.
        let by_uid = read(&self.inner.uids);
        let sessions = read(&self.inner.sessions);
        for uid in uids {
            let uid = uid.as_ref();
            let delivered = by_uid
                .get(uid)
                .into_iter()
                .flatten()
                .filter_map(|sid| sessions.get(sid))
                .filter(|l| send(l, frame.clone()))
                .count();
            if delivered == 0 {
                failed.push(uid.to_owned());
            }
            total += delivered;
        }
        count_pushes(total, frame.len());
        failed
    }

    /// Pushes `body` on `route` to the given sessions; returns the sids that
    /// could not take it.
    pub fn push_to_sids(&self, route: &str, body: Bytes, sids: &[u64]) -> Vec<u64> {
        let Some(frame) = self.encode_push_frame(route, body) else {
            return sids.to_vec();
        };
        let failed: Vec<u64> = sids
            .iter()
            .copied()
            .filter(|sid| match self.live(*sid) {
                Some(live) => live.send(frame.clone()).is_err(),
                None => true,
            })
            .collect();
        count_pushes(sids.len() - failed.len(), frame.len());
        failed
    }

    /// Pushes to every working session (only bound ones when `binded_only`);
    /// returns how many took it.
    pub fn broadcast(&self, route: &str, body: Bytes, binded_only: bool) -> usize {
        let Some(frame) = self.encode_push_frame(route, body) else {
            return 0;
        };
        let delivered = read(&self.inner.sessions)
            .values()
            .filter(|l| !binded_only || l.uid().is_some())
            .filter(|l| l.send(frame.clone()).is_ok())
            .count();
        count_pushes(delivered, frame.len());
        delivered
    }

    fn encode_push_frame(&self, route: &str, body: Bytes) -> Option<Bytes> {
        let msg = Message::push(route, self.push_body(route, body)?);
        match encode_data_frame(&msg, self.inner.dict.as_deref()) {
            Ok(f) => Some(f),
            Err(e) => {
                tracing::warn!(route, error = %e, "push not sent: cannot encode it");
                None
            }
        }
    }
}

impl SessionService {
    /// A push body as the wire carries it: protobuf when `serverProtos.json`
    /// names the route, else the JSON as given. `None` (logged): it does not
    /// fit the schema and is not sent.
    fn push_body(&self, route: &str, body: Bytes) -> Option<Bytes> {
        let Some(protos) = &self.inner.protos else {
            return Some(body);
        };
        protos
            .server_body_from_json(route, body)
            .map_err(|e| tracing::warn!(error = %e, "push not sent: its body does not fit serverProtos.json"))
            .ok()
    }
}

/// Counts `delivered` pushes of one `len`-byte frame: two atomic adds per
/// fan-out, whatever its size.
fn count_pushes(delivered: usize, len: usize) {
    let m = crate::telemetry::m();
    m.pushes.increment(delivered as u64);
    m.push_bytes.increment((delivered * len) as u64);
}
