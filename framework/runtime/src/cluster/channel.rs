//! Backend channels (Pomelo's `channelService`): named groups of users to
//! push to, each user recorded with the frontend that holds its connection.
//!
//! A push serializes the body **once**, groups receivers by frontend, and
//! sends one message per frontend over that frontend's push stream (all
//! frontends concurrently). Member lists are copied out of the lock before
//! any `.await`, so a slow frontend never blocks `add`/`leave`.
//!
//! **Held members** (resume after a connector crash, `docs/scaling.md`): a
//! member whose session asked for resume has a *window*. When its frontend
//! is lost (it left the list, a pull no longer lists the member, or a push
//! to it failed as a whole) the member is *held* for that window instead
//! of being removed: it stays listed, is counted at no live frontend, and
//! every push to it is kept, in order, in one buffer per uid (bounded).
//! A `Reattach` (see `ShardKeeper::reattach`) sends the buffer to the
//! session's new frontend and records the member there; a window that
//! ends, or a buffer that overflows, removes the member and reports it
//! lost as before. Limits:
//!
//! * Order across channels holds for what was buffered before the first
//!   of a uid's reattaches; between the reattach of one channel and of
//!   another, a push of the first may overtake a held push of the second.
//! * A push that timed out may have reached the frontend anyway: it is
//!   buffered too, so the client may get it twice (at least once).
//! * Held members of a channel whose key moves to another owner are
//!   dropped quietly (the new owner cannot pull them from a dead
//!   frontend): a `Reattach` there answers "no member", and the frontend
//!   joins the room again.
//! * A reattach cancelled mid-send (its caller gave up) may lose the frame
//!   in flight; the others stay held.
//! * A push by uid ([`ChannelService::push_by_uids`]) buffers for a uid
//!   already held from that frontend, but does not start a hold when it
//!   fails (it names no channel).

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::time::Duration;

use bytes::Bytes;
use futures_util::future::join_all;
use serde::Serialize;

use crate::cluster::push::PushClient;
use crate::error::ClusterError;

/// How long a reattach keeps retrying to reach the frontend it hands a
/// member to (its caller waits 2 s in all).
pub const REATTACH_DIAL_RETRY: Duration = Duration::from_millis(1200);

/// Result of a push: uids that were not reached (no session on their
/// frontend, or the frontend failed — the error is logged).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct PushReport {
    pub failed: Vec<String>,
}

/// Serializes a push body once, as JSON.
pub fn encode_body(body: &impl Serialize) -> Result<Bytes, ClusterError> {
    serde_json::to_vec(body)
        .map(Bytes::from)
        .map_err(|e| ClusterError::Remote {
            server: "local".into(),
            reason: format!("push body is not serializable to JSON: {e}"),
        })
}

/// Members grouped by frontend, both levels in insertion order.
#[derive(Debug, Default)]
struct Members {
    /// Live members only (held ones are in `held`).
    groups: Vec<(String, Vec<String>)>,
    /// Every member → its frontend (for a held one: the frontend it was
    /// lost from).
    by_uid: HashMap<String, String>,
    /// The resume window of the members that have one.
    windows: HashMap<String, Duration>,
    /// Held members, in the order they were held.
    held: Vec<String>,
}

impl Members {
    fn is_held(&self, uid: &str) -> bool {
        !self.held.is_empty() && self.held.iter().any(|u| u == uid)
    }

    fn insert_live(&mut self, uid: &str, frontend_id: &str) {
        self.by_uid.insert(uid.to_string(), frontend_id.to_string());
        match self.groups.iter_mut().find(|(f, _)| f == frontend_id) {
            Some((_, uids)) => uids.push(uid.to_string()),
            None => self
                .groups
                .push((frontend_id.to_string(), vec![uid.to_string()])),
        }
    }

    fn remove_live(&mut self, uid: &str, frontend_id: &str) {
        if let Some(pos) = self.groups.iter().position(|(f, _)| f == frontend_id) {
            let uids = &mut self.groups[pos].1;
            uids.retain(|u| u != uid);
            if uids.is_empty() {
                self.groups.remove(pos);
            }
        }
    }

    fn remove_held(&mut self, uid: &str) -> bool {
        let before = self.held.len();
        self.held.retain(|u| u != uid);
        before != self.held.len()
    }
}

/// One channel.
pub struct Channel {
    name: String,
    members: Mutex<Members>,
    push: Arc<PushClient>,
    holds: Arc<Holds>,
    me: Weak<Channel>,
}

impl Channel {
    pub fn name(&self) -> &str {
        &self.name
    }

    fn members(&self) -> std::sync::MutexGuard<'_, Members> {
        self.members.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Adds `uid`, connected to `frontend_id`. Returns false if the uid is
    /// already a member or `frontend_id` is empty.
    pub fn add(&self, uid: &str, frontend_id: &str) -> bool {
        self.add_with(uid, frontend_id, None)
    }

    /// Like [`add`](Self::add), with the session's resume window (`None`:
    /// its client did not ask for resume): how long the member is held when
    /// its frontend is lost.
    pub fn add_with(&self, uid: &str, frontend_id: &str, resume: Option<Duration>) -> bool {
        if frontend_id.is_empty() {
            return false;
        }
        let mut m = self.members();
        if m.by_uid.contains_key(uid) {
            return false;
        }
        m.insert_live(uid, frontend_id);
        if let Some(window) = resume.filter(|w| !w.is_zero()) {
            m.windows.insert(uid.to_string(), window);
        }
        true
    }

    /// Removes `uid` (recorded at `frontend_id`; for a held member, the
    /// frontend it was lost from, and its held pushes go with it). Returns
    /// whether it was there.
    pub fn leave(&self, uid: &str, frontend_id: &str) -> bool {
        let mut m = self.members();
        if m.by_uid.get(uid).map(String::as_str) != Some(frontend_id) {
            return false;
        }
        m.by_uid.remove(uid);
        m.windows.remove(uid);
        if m.remove_held(uid) {
            let mut st = self.holds.state();
            self.holds.end(&mut st, &self.name, uid);
        } else {
            m.remove_live(uid, frontend_id);
        }
        true
    }

    /// Whether `uid` is held (its frontend was lost; it waits for a
    /// reattach within its resume window).
    pub fn is_held(&self, uid: &str) -> bool {
        self.holds.any() && self.members().is_held(uid)
    }

    /// For a held `uid`: drops its held pushes and records it, live, at
    /// `new_frontend`, quietly (the user logged in afresh through another
    /// frontend instead of resuming; the pushes were for the old session).
    /// Its buffer is dropped for every channel (it is one per uid); the
    /// other channels still hold it until their own `take_over`, reattach
    /// or window end. Returns false if `uid` is not held here.
    pub fn take_over(&self, uid: &str, new_frontend: &str) -> bool {
        if new_frontend.is_empty() {
            return false;
        }
        let mut m = self.members();
        if !m.remove_held(uid) {
            return false;
        }
        {
            let mut st = self.holds.state();
            if let Some(h) = st.uids.get_mut(uid) {
                h.frames.clear();
                h.bytes = 0;
            }
            self.holds.end(&mut st, &self.name, uid);
        }
        m.insert_live(uid, new_frontend);
        tracing::info!(server = %self.holds.server(), channel = %self.name, uid, frontend = new_frontend,
            "held member taken over by a new login; its held pushes are dropped");
        true
    }

    /// Holds `uid` if it is a live member at `frontend_id` with a resume
    /// window. Returns whether it is held (now or already, from that
    /// frontend).
    fn hold_locked(
        &self,
        m: &mut Members,
        st: &mut HoldState,
        uid: &str,
        frontend_id: &str,
        why: &str,
    ) -> bool {
        if m.by_uid.get(uid).map(String::as_str) != Some(frontend_id) {
            return false;
        }
        if m.is_held(uid) {
            return true;
        }
        let Some(&window) = m.windows.get(uid) else {
            return false;
        };
        m.remove_live(uid, frontend_id);
        m.held.push(uid.to_string());
        self.holds
            .start(st, &self.me, &self.name, uid, frontend_id, window);
        tracing::info!(server = %self.holds.server(), channel = %self.name, uid, from = frontend_id,
            window_ms = window.as_millis() as u64, why, "member held for resume");
        true
    }

    /// [`hold_locked`](Self::hold_locked) on its own.
    fn hold(&self, uid: &str, frontend_id: &str, why: &str) -> bool {
        let held = {
            let mut m = self.members();
            let mut st = self.holds.state();
            self.hold_locked(&mut m, &mut st, uid, frontend_id, why)
        };
        if held {
            self.holds.ensure_sweeper();
        }
        held
    }

    /// Updates the resume window of live member `uid` at `frontend_id`.
    fn set_window(&self, uid: &str, frontend_id: &str, resume: Option<Duration>) {
        let mut m = self.members();
        if m.by_uid.get(uid).map(String::as_str) != Some(frontend_id) || m.is_held(uid) {
            return;
        }
        match resume.filter(|w| !w.is_zero()) {
            Some(w) => {
                m.windows.insert(uid.to_string(), w);
            }
            None => {
                m.windows.remove(uid);
            }
        }
    }

    /// Removes held `uid` whose hold ended (window, overflow). Returns
    /// whether it was still here, held.
    fn drop_released(&self, uid: &str) -> bool {
        let mut m = self.members();
        if !m.remove_held(uid) {
            return false;
        }
        m.by_uid.remove(uid);
        m.windows.remove(uid);
        true
    }

    /// Ends every hold of this channel quietly (the channel is destroyed or
    /// moved to another owner).
    fn forget_holds(&self) {
        if !self.holds.any() {
            return;
        }
        let m = self.members();
        let mut st = self.holds.state();
        for uid in &m.held {
            self.holds.end(&mut st, &self.name, uid);
        }
    }

    /// Moves member `uid`, held (lost from `from`) or still recorded at
    /// `from`, to `to`: first sends `to` every push held for it, in order
    /// (pushes that arrive meanwhile are buffered behind them), then, with
    /// the buffer empty, records it at `to` (keeping its window) in the
    /// same step as the hold ends. Returns how many held pushes were sent;
    /// `Err` says why not (a failed send keeps the hold).
    ///
    /// One reattach at a time sends a uid's frames (a uid held in several
    /// channels has one buffer: the first reattach sends it all, the others
    /// wait, then find it empty). If the caller gives up mid-send (the RPC
    /// is cancelled), the frame in flight may be lost; the rest stay held.
    pub async fn reattach(&self, uid: &str, from: &str, to: &str) -> Result<usize, String> {
        let mut guard = FlushGuard {
            holds: &self.holds,
            uid,
            flushing: false,
        };
        self.reattach_steps(uid, from, to, &mut guard.flushing)
            .await
    }

    async fn reattach_steps(
        &self,
        uid: &str,
        from: &str,
        to: &str,
        flushing: &mut bool,
    ) -> Result<usize, String> {
        enum Step {
            Wait,
            Send(String, Bytes),
        }
        if to.is_empty() {
            return Err("no frontend to reattach to".into());
        }
        let key = &self.name;
        let mut flushed = 0;
        loop {
            let notified = self.holds.flushed.notified();
            let step = {
                let mut m = self.members();
                let Some(at) = m.by_uid.get(uid).cloned() else {
                    return Err(self.holds.why_gone(key, uid));
                };
                if !m.is_held(uid) {
                    if at == to {
                        return Ok(flushed);
                    }
                    if at != from {
                        return Err(format!("{uid} is in {key} through {at}, not {from}"));
                    }
                    m.remove_live(uid, from);
                    m.insert_live(uid, to);
                    return Ok(flushed);
                }
                if at != from {
                    return Err(format!("{uid} is held in {key} from {at}, not {from}"));
                }
                let mut st = self.holds.state();
                let Some(h) = st.uids.get_mut(uid) else {
                    // Its hold just ended (window, overflow): it is being
                    // removed.
                    drop(st);
                    return Err(self.holds.why_gone(key, uid));
                };
                if h.flushing && !*flushing {
                    Step::Wait
                } else if let Some((route, body)) = h.frames.pop_front() {
                    h.bytes -= frame_size(&route, &body);
                    h.flushing = true;
                    *flushing = true;
                    Step::Send(route, body)
                } else {
                    h.flushing = false;
                    *flushing = false;
                    self.holds.end(&mut st, key, uid);
                    drop(st);
                    m.remove_held(uid);
                    m.insert_live(uid, to);
                    self.holds.flushed.notify_waiters();
                    return Ok(flushed);
                }
            };
            match step {
                // Woken when a flush ends or a hold ends; re-checked now
                // and then regardless.
                Step::Wait => {
                    let _ = tokio::time::timeout(Duration::from_millis(500), notified).await;
                }
                Step::Send(route, body) => {
                    // `to` has just come up (a restarted connector): this
                    // server's connection to it may still be in its
                    // reconnect backoff. Retry a failed dial briefly.
                    let retry_until = tokio::time::Instant::now() + REATTACH_DIAL_RETRY;
                    let sent = loop {
                        let sent = self
                            .push
                            .push_to_uids(to, &route, body.clone(), vec![uid.to_string()])
                            .await;
                        if sent.is_ok() || tokio::time::Instant::now() >= retry_until {
                            break sent;
                        }
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    };
                    let error = match sent {
                        Ok(failed) if failed.is_empty() => {
                            flushed += 1;
                            continue;
                        }
                        Ok(_) => format!("{to} has no session of {uid}"),
                        Err(e) => format!("sending held pushes to {to} failed: {e}"),
                    };
                    // Put the frame back: it is still the oldest one.
                    let mut st = self.holds.state();
                    if let Some(h) = st.uids.get_mut(uid) {
                        h.bytes += frame_size(&route, &body);
                        h.frames.push_front((route, body));
                        h.flushing = false;
                    }
                    *flushing = false;
                    drop(st);
                    self.holds.flushed.notify_waiters();
                    return Err(error);
                }
            }
        }
    }

    /// Every uid, grouped by frontend (frontends in first-join order, uids in
    /// join order) — the order Pomelo's `getMembers` returns.
    /// Held members come last, in the order they were held.
    pub fn members_list(&self) -> Vec<String> {
        let m = self.members();
        m.groups
            .iter()
            .flat_map(|(_, uids)| uids.iter().cloned())
            .chain(m.held.iter().cloned())
            .collect()
    }

    /// The live uids recorded at `frontend_id` (held ones are not).
    pub fn members_at(&self, frontend_id: &str) -> Vec<String> {
        self.members()
            .groups
            .iter()
            .find(|(f, _)| f == frontend_id)
            .map(|(_, uids)| uids.clone())
            .unwrap_or_default()
    }

    /// The frontends that hold live members of this channel.
    pub fn frontends(&self) -> Vec<String> {
        self.members()
            .groups
            .iter()
            .map(|(f, _)| f.clone())
            .collect()
    }

    /// The frontend of `uid`, if it is a member (a held one: the frontend
    /// it was lost from).
    pub fn member(&self, uid: &str) -> Option<String> {
        self.members().by_uid.get(uid).cloned()
    }

    pub fn user_amount(&self) -> usize {
        self.members().by_uid.len()
    }

    /// Pushes to every member: one message per frontend.
    pub async fn push(
        &self,
        route: &str,
        body: &impl Serialize,
    ) -> Result<PushReport, ClusterError> {
        let body = encode_body(body)?;
        Ok(self.push_bytes(route, body).await)
    }

    /// Pushes to every member but `uid` (a newcomer is told about the room
    /// in its reply, not by its own `onAdd`).
    pub async fn push_except(
        &self,
        route: &str,
        body: &impl Serialize,
        uid: &str,
    ) -> Result<PushReport, ClusterError> {
        let body = encode_body(body)?;
        Ok(self.push_inner(route, body, Some(uid)).await)
    }

    /// Like [`Channel::push`] with a body already serialized.
    pub async fn push_bytes(&self, route: &str, body: Bytes) -> PushReport {
        self.push_inner(route, body, None).await
    }

    async fn push_inner(&self, route: &str, body: Bytes, except: Option<&str>) -> PushReport {
        let mut released = Vec::new();
        let mut groups = {
            let m = self.members();
            // Buffered under the members lock: a reattach that ends a hold
            // takes it too, so a push is either buffered before the flush
            // ends or sent to the new frontend after.
            if self.holds.any() && !m.held.is_empty() {
                let mut st = self.holds.state();
                for uid in m.held.iter().filter(|u| Some(u.as_str()) != except) {
                    self.holds.append(&mut st, uid, route, &body, &mut released);
                }
            }
            m.groups.clone()
        };
        self.holds.release(released, "held pushes overflowed");
        if let Some(uid) = except {
            for (_, uids) in &mut groups {
                uids.retain(|u| u != uid);
            }
            groups.retain(|(_, uids)| !uids.is_empty());
        }
        push_groups(&self.push, route, body, groups, Some(self)).await
    }

    /// A push to `frontend_id` failed as a whole: holds the receivers that
    /// have a window (this push is their first held one) and returns the
    /// others.
    fn hold_after_failure(
        &self,
        frontend_id: &str,
        route: &str,
        body: &Bytes,
        uids: Vec<String>,
    ) -> Vec<String> {
        let mut failed = Vec::new();
        let mut released = Vec::new();
        let mut started = false;
        {
            let mut m = self.members();
            let mut st = self.holds.state();
            for uid in uids {
                let was = m.is_held(&uid);
                if self.hold_locked(
                    &mut m,
                    &mut st,
                    &uid,
                    frontend_id,
                    "a push to its frontend failed",
                ) {
                    started |= !was;
                    self.holds.append(&mut st, &uid, route, body, &mut released);
                } else {
                    failed.push(uid);
                }
            }
        }
        if started {
            self.holds.ensure_sweeper();
        }
        self.holds.release(released, "held pushes overflowed");
        failed
    }
}

/// Clears a uid's `flushing` mark if the reattach that set it ends without
/// clearing it (an error, or its future dropped mid-send).
struct FlushGuard<'a> {
    holds: &'a Holds,
    uid: &'a str,
    flushing: bool,
}

impl Drop for FlushGuard<'_> {
    fn drop(&mut self) {
        if !self.flushing {
            return;
        }
        if let Some(h) = self.holds.state().uids.get_mut(self.uid) {
            h.flushing = false;
        }
        self.holds.flushed.notify_waiters();
    }
}

/// Bytes a held frame counts for.
fn frame_size(route: &str, body: &Bytes) -> usize {
    route.len() + body.len()
}

/// Most pushes held for one uid; one more ends its hold.
pub const HELD_FRAMES: usize = 256;
/// Most bytes (routes and bodies) held for one uid; more ends its hold.
pub const HELD_BYTES: usize = 256 * 1024;
/// How many recent hold ends are remembered to tell a late `Reattach` why.
const ENDED_MEMORY: usize = 1024;
/// How often held members whose frontend is still listed are offered their
/// held pushes there again (a push that timed out on a slow but living
/// frontend must not make its members leave at the end of their window).
pub const HOLD_PROBE_EVERY: Duration = Duration::from_secs(1);

/// The held pushes of one uid (one buffer, whatever channels hold it).
struct HeldUid {
    /// The frontend it was lost from.
    from: String,
    frames: VecDeque<(String, Bytes)>,
    bytes: usize,
    /// A reattach is sending the frames.
    flushing: bool,
    /// The channels holding it: channel, name, end of its window.
    holds: Vec<(Weak<Channel>, String, tokio::time::Instant)>,
}

#[derive(Default)]
struct HoldState {
    uids: HashMap<String, HeldUid>,
    /// Recent hold ends: (channel, uid, why), oldest first.
    ended: VecDeque<(String, String, &'static str)>,
}

/// Held members of every channel of a service, and their buffers.
struct Holds {
    /// Uids held anywhere: the push path reads only this when none is.
    count: AtomicUsize,
    state: Mutex<HoldState>,
    lost: Mutex<Option<MemberLost>>,
    /// A reattach finished sending a uid's frames.
    flushed: tokio::sync::Notify,
    /// A hold started: the sweeper recomputes its next deadline.
    wake: tokio::sync::Notify,
    sweeping: AtomicBool,
    /// A probe round runs (see [`HOLD_PROBE_EVERY`]).
    probing: AtomicBool,
    server: OnceLock<String>,
    /// Asks a frontend whether it lists `(key, uid)` (a session of the uid
    /// registered in the key): the probe hands a held member back only
    /// then, never on a mere delivery (any session of the uid would take
    /// a push, e.g. a fresh login on a restarted frontend with the same id).
    confirm: OnceLock<HeldConfirm>,
    /// The server list: which frontends are still there.
    servers: crate::discovery::Servers,
}

impl Holds {
    fn new(servers: crate::discovery::Servers) -> Self {
        Holds {
            probing: AtomicBool::new(false),
            servers,
            count: AtomicUsize::new(0),
            state: Mutex::new(HoldState::default()),
            lost: Mutex::new(None),
            flushed: tokio::sync::Notify::new(),
            wake: tokio::sync::Notify::new(),
            sweeping: AtomicBool::new(false),
            server: OnceLock::new(),
            confirm: OnceLock::new(),
        }
    }

    fn any(&self) -> bool {
        self.count.load(Ordering::Acquire) > 0
    }

    fn server(&self) -> &str {
        self.server.get().map(String::as_str).unwrap_or("")
    }

    fn state(&self) -> std::sync::MutexGuard<'_, HoldState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn start(
        &self,
        st: &mut HoldState,
        channel: &Weak<Channel>,
        name: &str,
        uid: &str,
        from: &str,
        window: Duration,
    ) {
        let h = st.uids.entry(uid.to_string()).or_insert_with(|| {
            self.count.fetch_add(1, Ordering::AcqRel);
            HeldUid {
                from: from.to_string(),
                frames: VecDeque::new(),
                bytes: 0,
                flushing: false,
                holds: Vec::new(),
            }
        });
        h.holds.retain(|(_, n, _)| n != name);
        h.holds.push((
            channel.clone(),
            name.to_string(),
            tokio::time::Instant::now() + window,
        ));
        self.wake.notify_one();
    }

    /// Ends channel `name`'s hold of `uid`; the buffer goes with the last.
    fn end(&self, st: &mut HoldState, name: &str, uid: &str) {
        let Some(h) = st.uids.get_mut(uid) else {
            return;
        };
        h.holds.retain(|(_, n, _)| n != name);
        if h.holds.is_empty() {
            st.uids.remove(uid);
            self.count.fetch_sub(1, Ordering::AcqRel);
            self.flushed.notify_waiters();
        }
    }

    /// Appends a push to `uid`'s buffer. On overflow the uid's holds end
    /// (every channel) and are added to `released`.
    fn append(
        &self,
        st: &mut HoldState,
        uid: &str,
        route: &str,
        body: &Bytes,
        released: &mut Vec<(Weak<Channel>, String, String)>,
    ) {
        let Some(h) = st.uids.get_mut(uid) else {
            return;
        };
        let size = frame_size(route, body);
        if h.frames.len() < HELD_FRAMES && h.bytes + size <= HELD_BYTES {
            h.frames.push_back((route.to_string(), body.clone()));
            h.bytes += size;
            return;
        }
        let h = st.uids.remove(uid).expect("present");
        self.count.fetch_sub(1, Ordering::AcqRel);
        for (channel, name, _) in h.holds {
            Self::remember(st, &name, uid, "its held pushes overflowed");
            released.push((channel, name, uid.to_string()));
        }
    }

    fn remember(st: &mut HoldState, name: &str, uid: &str, why: &'static str) {
        if st.ended.len() >= ENDED_MEMORY {
            st.ended.pop_front();
        }
        st.ended.push_back((name.to_string(), uid.to_string(), why));
    }

    /// Why `uid` is not (or no longer) a member of channel `name`.
    fn why_gone(&self, name: &str, uid: &str) -> String {
        let st = self.state();
        match st
            .ended
            .iter()
            .rev()
            .find(|(n, u, _)| n == name && u == uid)
        {
            Some((_, _, why)) => format!("{uid} was released: {why}"),
            None => format!("no member {uid} in {name}"),
        }
    }

    /// Removes the members whose hold ended and reports them lost.
    fn release(&self, released: Vec<(Weak<Channel>, String, String)>, why: &str) {
        if released.is_empty() {
            return;
        }
        // A reattach waiting for another's flush re-checks: the uid is gone.
        self.flushed.notify_waiters();
        let mut lost = Vec::new();
        for (channel, name, uid) in released {
            if let Some(channel) = channel.upgrade()
                && channel.drop_released(&uid)
            {
                tracing::info!(server = %self.server(), channel = %name, uid = %uid, why, "held member released");
                lost.push((channel, uid));
            }
        }
        self.report_lost(lost);
    }

    fn report_lost(&self, lost: Vec<(Arc<Channel>, String)>) {
        let hook = self.lost.lock().unwrap_or_else(|p| p.into_inner()).clone();
        if let Some(hook) = hook {
            for (channel, uid) in lost {
                hook(channel, uid);
            }
        }
    }

    /// Starts the task that ends holds whose window passed, if none runs.
    /// It stops when nothing is held. Without a runtime (sync tests) there
    /// is none: holds then end only by reattach, leave or overflow.
    fn ensure_sweeper(self: &Arc<Self>) {
        let Ok(rt) = tokio::runtime::Handle::try_current() else {
            return;
        };
        if self.sweeping.swap(true, Ordering::AcqRel) {
            return;
        }
        // Strong: the task ends as soon as nothing is held.
        let h = self.clone();
        rt.spawn(async move {
            let mut probe_at = tokio::time::Instant::now() + HOLD_PROBE_EVERY;
            loop {
                let woken = h.wake.notified();
                let next = h.sweep();
                if next.is_some() && tokio::time::Instant::now() >= probe_at {
                    probe_at = tokio::time::Instant::now() + HOLD_PROBE_EVERY;
                    if !h.probing.swap(true, Ordering::AcqRel) {
                        let p = h.clone();
                        tokio::spawn(async move {
                            p.probe().await;
                            p.probing.store(false, Ordering::Release);
                        });
                    }
                }
                let next = next.map(|n| n.min(probe_at));
                if next.is_none() {
                    h.sweeping.store(false, Ordering::Release);
                    // A hold that started meanwhile found the flag set.
                    if !h.any() || h.sweeping.swap(true, Ordering::AcqRel) {
                        return;
                    }
                    continue;
                }
                tokio::select! {
                    _ = tokio::time::sleep_until(next.expect("some")) => {}
                    _ = woken => {}
                }
            }
        });
    }

    /// Offers the held pushes of each held member whose frontend is still
    /// listed to that frontend again: if its session is there (a push only
    /// timed out, or the frontend came back with the session), the flush
    /// succeeds and the member is live again; otherwise it stays held. A
    /// member with nothing held is left alone: only a delivered push shows
    /// the session is there. One round at a time; a frontend that cannot
    /// be reached is skipped for the rest of the round.
    async fn probe(&self) {
        let targets: Vec<(Weak<Channel>, String, String)> = {
            let st = self.state();
            st.uids
                .iter()
                .filter(|(_, h)| !h.flushing && !h.frames.is_empty())
                .flat_map(|(uid, h)| {
                    h.holds
                        .iter()
                        .map(|(c, _, _)| (c.clone(), uid.clone(), h.from.clone()))
                })
                .collect()
        };
        if targets.is_empty() {
            return;
        }
        let list = self.servers.snapshot();
        let mut down: Vec<String> = Vec::new();
        for (channel, uid, from) in targets {
            if list.get(&from).is_none() || down.contains(&from) {
                continue;
            }
            let Some(channel) = channel.upgrade() else {
                continue;
            };
            let confirmed = match self.confirm.get() {
                Some(confirm) => {
                    confirm(from.clone(), channel.name().to_owned(), uid.clone()).await
                }
                None => false,
            };
            if !confirmed {
                continue;
            }
            let nothing_held = self
                .state()
                .uids
                .get(&uid)
                .is_none_or(|h| h.frames.is_empty());
            if nothing_held {
                // Flushed through another channel meanwhile: that channel
                // is live again, this one waits for its own reattach.
                continue;
            }
            match channel.reattach(&uid, &from, &from).await {
                Ok(flushed) => {
                    tracing::info!(server = %self.server(), channel = %channel.name(), uid = %uid, frontend = %from, flushed,
                        "held member's frontend has its session: reattached there")
                }
                Err(reason) if reason.starts_with("sending held pushes") => down.push(from),
                Err(_) => {}
            }
        }
    }

    /// Ends the holds whose window passed; returns the next window end.
    fn sweep(&self) -> Option<tokio::time::Instant> {
        let now = tokio::time::Instant::now();
        let mut released = Vec::new();
        let next = {
            let mut st = self.state();
            let mut next: Option<tokio::time::Instant> = None;
            let mut emptied = Vec::new();
            let mut ended = Vec::new();
            for (uid, h) in st.uids.iter_mut() {
                h.holds.retain(|(channel, name, until)| {
                    if *until <= now {
                        ended.push((name.clone(), uid.clone()));
                        released.push((channel.clone(), name.clone(), uid.clone()));
                        false
                    } else {
                        next = Some(next.map_or(*until, |n| n.min(*until)));
                        true
                    }
                });
                if h.holds.is_empty() {
                    emptied.push(uid.clone());
                }
            }
            for uid in emptied {
                st.uids.remove(&uid);
                self.count.fetch_sub(1, Ordering::AcqRel);
            }
            for (name, uid) in ended {
                Self::remember(&mut st, &name, &uid, "its resume window ended");
            }
            next
        };
        self.release(released, "its resume window ended");
        next
    }
}

/// Sends one push per frontend group, concurrently. For a channel's push,
/// the receivers of a frontend that cannot be reached are held if they have
/// a resume window (this push is then buffered for them, not failed).
async fn push_groups(
    push: &PushClient,
    route: &str,
    body: Bytes,
    groups: Vec<(String, Vec<String>)>,
    channel: Option<&Channel>,
) -> PushReport {
    let sends = groups.into_iter().map(|(frontend, uids)| {
        let body = body.clone();
        async move {
            match push.push_to_uids(&frontend, route, body.clone(), uids.clone()).await {
                Ok(failed) => failed,
                Err(e) => {
                    tracing::warn!(frontend = %frontend, route, error = %e, receivers = uids.len(), "push failed");
                    match channel {
                        Some(channel) => channel.hold_after_failure(&frontend, route, &body, uids),
                        None => uids,
                    }
                }
            }
        }
    });
    PushReport {
        failed: join_all(sends).await.into_iter().flatten().collect(),
    }
}

/// Whether `frontend` lists `(key, uid)` (see `ChannelService::set_held_confirm`).
pub type HeldConfirm =
    Arc<dyn Fn(String, String, String) -> crate::BoxFuture<'static, bool> + Send + Sync>;

/// Whether this server owns a channel name (sharded channels, see
/// `cluster::shard`).
pub type OwnerCheck = Arc<dyn Fn(&str) -> bool + Send + Sync>;

/// Called when reconciliation removes a member whose frontend no longer
/// has it (the user is gone: a crashed or stopped connector, a missed leave
/// call): the app tells the channel's other members (chat: `onLeave`).
pub type MemberLost = Arc<dyn Fn(Arc<Channel>, String) + Send + Sync>;

/// The channels of one backend server.
pub struct ChannelService {
    push: Arc<PushClient>,
    channels: Mutex<HashMap<String, Arc<Channel>>>,
    owner: Mutex<Option<OwnerCheck>>,
    holds: Arc<Holds>,
}

/// What [`ChannelService::replace_frontend_members`] changed.
#[derive(Debug, Default)]
pub struct Replaced {
    /// Members removed (no window): report them lost.
    pub lost: Vec<(Arc<Channel>, String)>,
    /// Held members the frontend lists again (its session came back there):
    /// reattach them to it, which sends their held pushes first.
    pub relisted: Vec<(Arc<Channel>, String)>,
}

impl std::fmt::Debug for Channel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Channel").field("name", &self.name).finish()
    }
}

impl std::fmt::Debug for PushClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PushClient")
    }
}

impl ChannelService {
    pub fn new(push: Arc<PushClient>) -> Self {
        let holds = Arc::new(Holds::new(push.pool().servers().clone()));
        ChannelService {
            push,
            channels: Mutex::new(HashMap::new()),
            owner: Mutex::new(None),
            holds,
        }
    }

    /// How the probe confirms that a held member's frontend still has its
    /// session in the key (set once, by the shard keeper). Without it
    /// nothing is probed: a held member comes back only by a reattach or a
    /// pull.
    pub fn set_held_confirm(&self, confirm: HeldConfirm) {
        let _ = self.holds.confirm.set(confirm);
    }

    /// Names this server in the hold logs (set once).
    pub fn set_server_id(&self, id: &str) {
        let _ = self.holds.server.set(id.to_string());
    }

    /// How many uids are held (over every channel).
    pub fn held_count(&self) -> usize {
        self.holds.count.load(Ordering::Acquire)
    }

    /// Makes channels sharded: `owns(name)` says whether this server owns
    /// channel `name` under the current server list.
    pub fn set_owner_check(&self, owns: OwnerCheck) {
        *self.owner.lock().unwrap_or_else(|p| p.into_inner()) = Some(owns);
    }

    /// Whether this server owns channel `name` (always, when channels are
    /// not sharded). A join for a name it does not own went to a stale
    /// owner: refuse it and let the caller retry.
    pub fn owns(&self, name: &str) -> bool {
        let check = self.owner.lock().unwrap_or_else(|p| p.into_inner()).clone();
        check.is_none_or(|owns| owns(name))
    }

    /// Sets the hook run for each member reconciliation removes.
    pub fn on_member_lost(&self, hook: MemberLost) {
        *self.holds.lost.lock().unwrap_or_else(|p| p.into_inner()) = Some(hook);
    }

    /// Runs the member-lost hook (if any) for each removed member.
    pub fn report_lost(&self, lost: Vec<(Arc<Channel>, String)>) {
        self.holds.report_lost(lost);
    }

    /// Every channel, in no particular order.
    pub fn all(&self) -> Vec<Arc<Channel>> {
        self.channels().values().cloned().collect()
    }

    /// Destroys the channels this server does not own (their keys moved to
    /// another server, which rebuilds them); returns their names.
    pub fn drop_unowned(&self) -> Vec<String> {
        let mut channels = self.channels();
        let gone: Vec<String> = channels
            .keys()
            .filter(|name| !self.owns(name))
            .cloned()
            .collect();
        for name in &gone {
            if let Some(channel) = channels.remove(name) {
                channel.forget_holds();
            }
        }
        gone
    }

    /// Makes the live members recorded at `frontend_id`, over every channel
    /// this server owns, exactly `wanted` (key → uids with their resume
    /// window): adds the missing ones (quietly: for the room they were
    /// there all along), updates the window of the present ones, and of
    /// the others holds those with a window and removes the rest, which it
    /// returns as lost (they left without a leave call reaching us). Held
    /// members the frontend lists again are returned as relisted. Keys this
    /// server does not own are ignored.
    pub fn replace_frontend_members(
        &self,
        frontend_id: &str,
        wanted: &HashMap<String, Vec<(String, Option<Duration>)>>,
    ) -> Replaced {
        let mut out = Replaced::default();
        for channel in self.all() {
            if !self.owns(channel.name()) {
                continue;
            }
            let want = wanted.get(channel.name());
            for uid in channel.members_at(frontend_id) {
                if want.is_some_and(|w| w.iter().any(|(u, _)| *u == uid)) {
                    continue;
                }
                if channel.hold(&uid, frontend_id, "its frontend no longer lists it") {
                    continue;
                }
                if channel.leave(&uid, frontend_id) {
                    out.lost.push((channel.clone(), uid));
                }
            }
        }
        for (key, uids) in wanted {
            if !self.owns(key) {
                continue;
            }
            for (uid, window) in uids {
                let (channel, added) = self.add_member_with(key, uid, frontend_id, *window);
                if added {
                    continue;
                }
                if channel.is_held(uid) {
                    if channel.member(uid).as_deref() == Some(frontend_id) {
                        out.relisted.push((channel, uid.clone()));
                    }
                } else {
                    channel.set_window(uid, frontend_id, *window);
                }
            }
        }
        out
    }

    /// Removes every live member recorded at a frontend not in `frontends`
    /// (it left the cluster) — or holds it, if it has a resume window;
    /// returns the removed ones.
    pub fn remove_frontends_except(&self, frontends: &[String]) -> Vec<(Arc<Channel>, String)> {
        let mut lost = Vec::new();
        for channel in self.all() {
            for frontend in channel.frontends() {
                if frontends.contains(&frontend) {
                    continue;
                }
                for uid in channel.members_at(&frontend) {
                    if channel.hold(&uid, &frontend, "its frontend left the server list") {
                        continue;
                    }
                    if channel.leave(&uid, &frontend) {
                        lost.push((channel.clone(), uid));
                    }
                }
            }
        }
        lost
    }

    fn channels(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<Channel>>> {
        self.channels.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Creates channel `name`, or returns the existing one.
    pub fn create(&self, name: &str) -> Arc<Channel> {
        self.channels()
            .entry(name.to_string())
            .or_insert_with(|| self.new_channel(name))
            .clone()
    }

    fn new_channel(&self, name: &str) -> Arc<Channel> {
        Arc::new_cyclic(|me| Channel {
            name: name.to_string(),
            members: Mutex::new(Members::default()),
            push: self.push.clone(),
            holds: self.holds.clone(),
            me: me.clone(),
        })
    }

    /// Channel `name`; with `create`, made if absent (Pomelo's `getChannel`).
    pub fn get(&self, name: &str, create: bool) -> Option<Arc<Channel>> {
        if create {
            return Some(self.create(name));
        }
        self.channels().get(name).cloned()
    }

    /// Removes channel `name`. Returns whether it existed.
    pub fn destroy(&self, name: &str) -> bool {
        let gone = self.channels().remove(name);
        gone.inspect(|c| c.forget_holds()).is_some()
    }

    /// Adds `uid` (at `frontend_id`) to channel `name`, creating the channel
    /// if needed, under the same lock [`destroy_if_empty`](Self::destroy_if_empty)
    /// takes: a join racing the last member's leave either lands in the
    /// channel that stays or in a fresh one, never in a destroyed one
    /// (`get(.., true)` then `add` could). Returns the channel and whether
    /// the uid was added (false: already a member, or no frontend).
    pub fn add_member(&self, name: &str, uid: &str, frontend_id: &str) -> (Arc<Channel>, bool) {
        self.add_member_with(name, uid, frontend_id, None)
    }

    /// Like [`add_member`](Self::add_member), with the session's resume
    /// window (see [`Channel::add_with`]).
    pub fn add_member_with(
        &self,
        name: &str,
        uid: &str,
        frontend_id: &str,
        resume: Option<Duration>,
    ) -> (Arc<Channel>, bool) {
        let mut channels = self.channels();
        let channel = channels
            .entry(name.to_string())
            .or_insert_with(|| self.new_channel(name))
            .clone();
        let added = channel.add_with(uid, frontend_id, resume);
        (channel, added)
    }

    /// Destroys channel `name` if it has no member left, so that a server
    /// whose users come and go through ever new channel names (chat rooms)
    /// does not keep an empty channel per name for ever. Returns whether it
    /// was destroyed.
    pub fn destroy_if_empty(&self, name: &str) -> bool {
        let mut channels = self.channels();
        if channels.get(name).is_some_and(|c| c.user_amount() == 0) {
            channels.remove(name);
            return true;
        }
        false
    }

    /// How many channels this server holds (empty ones included).
    pub fn count(&self) -> usize {
        self.channels().len()
    }

    /// Pushes to the given `(uid, frontend id)` receivers, one message per
    /// frontend (Pomelo's `pushMessageByUids`).
    pub async fn push_by_uids(
        &self,
        route: &str,
        body: &impl Serialize,
        receivers: &[(String, String)],
    ) -> Result<PushReport, ClusterError> {
        let body = encode_body(body)?;
        let mut groups: Vec<(String, Vec<String>)> = Vec::new();
        let mut held = Vec::new();
        if self.holds.any() {
            let mut st = self.holds.state();
            let mut released = Vec::new();
            for (uid, frontend) in receivers {
                if st.uids.get(uid).is_some_and(|h| h.from == *frontend) {
                    self.holds.append(&mut st, uid, route, &body, &mut released);
                    held.push(uid);
                }
            }
            drop(st);
            self.holds.release(released, "held pushes overflowed");
        }
        for (uid, frontend) in receivers {
            if held.contains(&uid) {
                continue;
            }
            match groups.iter_mut().find(|(f, _)| f == frontend) {
                Some((_, uids)) => uids.push(uid.clone()),
                None => groups.push((frontend.clone(), vec![uid.clone()])),
            }
        }
        Ok(push_groups(&self.push, route, body, groups, None).await)
    }

    /// Pushes to every session (or, with `binded_only`, every bound
    /// session) of every frontend of `frontend_type`. Returns the ids of the
    /// frontends that could not be reached.
    pub async fn broadcast(
        &self,
        frontend_type: &str,
        route: &str,
        body: &impl Serialize,
        binded_only: bool,
    ) -> Result<Vec<String>, ClusterError> {
        let body = encode_body(body)?;
        let frontends = self.push.pool().servers().by_type(frontend_type);
        if frontends.is_empty() {
            return Err(ClusterError::NoServerOfType(frontend_type.to_string()));
        }
        let sends = frontends.iter().map(|f| {
            let body = body.clone();
            async move {
                match self.push.broadcast(&f.id, route, body, binded_only).await {
                    Ok(()) => None,
                    Err(e) => {
                        tracing::warn!(frontend = %f.id, route, error = %e, "broadcast failed");
                        Some(f.id.clone())
                    }
                }
            }
        });
        Ok(join_all(sends).await.into_iter().flatten().collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::{Pool, Servers};

    fn service() -> ChannelService {
        let pool = Arc::new(Pool::new(Servers::new(Vec::new())));
        ChannelService::new(Arc::new(PushClient::new(pool)))
    }

    #[test]
    fn members_are_grouped_by_frontend_in_join_order() {
        let channels = service();
        let ch = channels.create("room");
        assert!(ch.add("a", "f1"));
        assert!(ch.add("c", "f2"));
        assert!(ch.add("b", "f1"));
        assert!(!ch.add("b", "f2"), "a uid is a member once");
        assert!(!ch.add("d", ""), "a member needs a frontend");
        assert_eq!(ch.members_list(), ["a", "b", "c"]);
        assert_eq!(ch.member("c").as_deref(), Some("f2"));
        assert_eq!(ch.user_amount(), 3);

        assert!(!ch.leave("a", "f2"), "wrong frontend");
        assert!(ch.leave("c", "f2"));
        assert!(!ch.leave("c", "f2"));
        assert_eq!(ch.members_list(), ["a", "b"]);
        assert!(ch.add("c", "f2"));
        assert_eq!(ch.members_list(), ["a", "b", "c"]);
    }

    #[test]
    fn create_get_destroy() {
        let channels = service();
        assert!(channels.get("x", false).is_none());
        let a = channels.create("x");
        a.add("u", "f");
        let b = channels.get("x", false).unwrap();
        assert_eq!(b.members_list(), ["u"], "the same channel");
        assert!(Arc::ptr_eq(&channels.create("x"), &a));
        assert!(channels.destroy("x"));
        assert!(!channels.destroy("x"));
        assert!(channels.get("x", false).is_none());
        assert_eq!(channels.get("x", true).unwrap().user_amount(), 0);
    }

    #[test]
    fn empty_channels_are_destroyed_and_counted() {
        let channels = service();
        let (a, added) = channels.add_member("x", "u", "f");
        assert!(added);
        assert!(!channels.add_member("x", "u", "f").1, "a member once");
        channels.create("y");
        assert_eq!(channels.count(), 2);
        assert!(!channels.destroy_if_empty("x"), "x has a member");
        assert!(channels.destroy_if_empty("y"));
        assert!(!channels.destroy_if_empty("missing"));
        assert!(a.leave("u", "f"));
        assert!(channels.destroy_if_empty("x"));
        assert_eq!(channels.count(), 0);
        // A join after the destruction makes a fresh channel.
        let (b, _) = channels.add_member("x", "v", "f");
        assert!(!Arc::ptr_eq(&a, &b));
        assert_eq!(channels.get("x", false).unwrap().members_list(), ["v"]);
    }

    #[tokio::test]
    async fn unreachable_frontends_report_their_uids() {
        let channels = service();
        let ch = channels.create("room");
        ch.add("a", "gone-1");
        ch.add("b", "gone-2");
        let report = ch
            .push("onChat", &serde_json::json!({"m": 1}))
            .await
            .unwrap();
        assert_eq!(report.failed, ["a", "b"]);
        let err = channels
            .broadcast("connector", "r", &serde_json::json!({}), false)
            .await
            .unwrap_err();
        assert!(matches!(err, ClusterError::NoServerOfType(_)));
    }

    const W: Duration = Duration::from_secs(30);

    fn lost_log(channels: &ChannelService) -> Arc<Mutex<Vec<(String, String)>>> {
        let log = Arc::new(Mutex::new(Vec::new()));
        let l = log.clone();
        channels.on_member_lost(Arc::new(move |ch: Arc<Channel>, uid: String| {
            l.lock().unwrap().push((ch.name().to_string(), uid));
        }));
        log
    }

    fn held_frames(channels: &ChannelService, uid: &str) -> Vec<(String, String)> {
        let st = channels.holds.state();
        st.uids
            .get(uid)
            .map(|h| {
                h.frames
                    .iter()
                    .map(|(r, b)| (r.clone(), String::from_utf8_lossy(b).into_owned()))
                    .collect()
            })
            .unwrap_or_default()
    }

    #[tokio::test]
    async fn a_lost_frontend_holds_members_with_a_window_only() {
        let channels = service();
        let lost = lost_log(&channels);
        let (ch, _) = channels.add_member_with("room", "a", "f1", Some(W));
        channels.add_member_with("room", "b", "f1", None);
        channels.add_member("room", "c", "f2");
        assert_eq!(channels.held_count(), 0);

        let removed = channels.remove_frontends_except(&["f2".to_string()]);
        assert_eq!(
            removed.iter().map(|(_, u)| u.as_str()).collect::<Vec<_>>(),
            ["b"],
            "only the member without a window is removed"
        );
        assert!(ch.is_held("a"));
        assert!(!ch.is_held("c"));
        assert_eq!(
            ch.members_list(),
            ["c", "a"],
            "held members stay listed, last"
        );
        assert_eq!(ch.user_amount(), 2);
        assert_eq!(
            ch.member("a").as_deref(),
            Some("f1"),
            "the frontend it was lost from"
        );
        assert!(ch.members_at("f1").is_empty(), "held: at no live frontend");
        assert_eq!(ch.frontends(), ["f2"]);
        assert_eq!(channels.held_count(), 1);
        // A second pass touches nothing.
        assert!(
            channels
                .remove_frontends_except(&["f2".to_string()])
                .is_empty()
        );
        assert!(ch.is_held("a"));
        assert!(!ch.add("a", "f3"), "a held uid is still a member");
        assert!(
            lost.lock().unwrap().is_empty(),
            "report_lost is the caller's"
        );
    }

    #[tokio::test]
    async fn a_pull_that_no_longer_lists_a_member_holds_it_and_relists_it() {
        let channels = service();
        let (ch, _) = channels.add_member_with("room", "a", "f1", None);
        channels.add_member("room", "b", "f1");
        // The pull gives a's window now.
        let wanted: HashMap<String, Vec<(String, Option<Duration>)>> = [(
            "room".to_string(),
            vec![("a".to_string(), Some(W)), ("b".to_string(), None)],
        )]
        .into();
        let r = channels.replace_frontend_members("f1", &wanted);
        assert!(r.lost.is_empty() && r.relisted.is_empty());
        // f1 restarted: its new incarnation has none of them yet.
        let r = channels.replace_frontend_members("f1", &HashMap::new());
        assert_eq!(r.lost.len(), 1);
        assert_eq!(r.lost[0].1, "b");
        assert!(ch.is_held("a"), "the window came with the pull");
        assert!(ch.members_at("f1").is_empty());
        // Pulled again (same id, session back): relisted, still held until
        // its reattach sends the held pushes.
        let r = channels.replace_frontend_members("f1", &wanted);
        assert!(r.lost.is_empty());
        assert_eq!(r.relisted.len(), 1);
        assert_eq!(r.relisted[0].1, "a");
        assert!(ch.is_held("a"));
        assert_eq!(ch.members_list(), ["b", "a"], "b came back, a is held");
    }

    #[tokio::test]
    async fn a_failed_push_holds_and_pushes_are_buffered_in_order_across_channels() {
        let channels = service();
        let lost = lost_log(&channels);
        let (room, _) = channels.add_member_with("room", "a", "gone", Some(W));
        room.add("b", "gone");
        let (hall, _) = channels.add_member_with("hall", "a", "gone", Some(W));

        let report = room.push("onChat", &serde_json::json!(1)).await.unwrap();
        assert_eq!(report.failed, ["b"], "a is held, not failed");
        assert!(room.is_held("a"));
        assert!(!hall.is_held("a"), "hall has not failed to push yet");
        hall.push("onHall", &serde_json::json!(2)).await.unwrap();
        assert!(hall.is_held("a"));
        room.push_except("onChat", &serde_json::json!(3), "b")
            .await
            .unwrap();
        room.push_except("onChat", &serde_json::json!(4), "a")
            .await
            .unwrap();
        channels
            .push_by_uids(
                "onDirect",
                &serde_json::json!(5),
                &[("a".into(), "gone".into())],
            )
            .await
            .unwrap();
        // To another frontend: not the held session's, sent (and failed).
        let report = channels
            .push_by_uids(
                "onDirect",
                &serde_json::json!(6),
                &[("a".into(), "other".into())],
            )
            .await
            .unwrap();
        assert_eq!(report.failed, ["a"]);
        assert_eq!(
            held_frames(&channels, "a"),
            [
                ("onChat".to_string(), "1".to_string()),
                ("onHall".to_string(), "2".to_string()),
                ("onChat".to_string(), "3".to_string()),
                ("onDirect".to_string(), "5".to_string()),
            ],
            "one buffer for the uid, in push order"
        );
        assert_eq!(channels.held_count(), 1);
        assert!(lost.lock().unwrap().is_empty());
    }

    #[tokio::test]
    async fn an_overflowing_buffer_ends_the_hold_and_reports_lost() {
        let channels = service();
        let lost = lost_log(&channels);
        let (room, _) = channels.add_member_with("room", "a", "gone", Some(W));
        let (hall, _) = channels.add_member_with("hall", "a", "gone", Some(W));
        channels.remove_frontends_except(&[]);
        assert!(room.is_held("a") && hall.is_held("a"));
        for i in 0..HELD_FRAMES {
            room.push_bytes("r", Bytes::from(format!("{i}"))).await;
        }
        assert_eq!(held_frames(&channels, "a").len(), HELD_FRAMES);
        assert!(lost.lock().unwrap().is_empty());
        room.push_bytes("r", Bytes::from_static(b"one too many"))
            .await;
        assert_eq!(channels.held_count(), 0);
        assert_eq!(room.user_amount(), 0);
        assert_eq!(hall.user_amount(), 0, "the hold ends in every channel");
        let mut got = lost.lock().unwrap().clone();
        got.sort();
        assert_eq!(
            got,
            [("hall".into(), "a".into()), ("room".into(), "a".into())]
        );
        assert_eq!(
            room.reattach("a", "gone", "f2").await.unwrap_err(),
            "a was released: its held pushes overflowed"
        );

        // Bytes count too.
        let (room, _) = channels.add_member_with("room", "b", "gone", Some(W));
        channels.remove_frontends_except(&[]);
        room.push_bytes("r", Bytes::from(vec![b'x'; HELD_BYTES - 10]))
            .await;
        assert!(room.is_held("b"));
        room.push_bytes("r", Bytes::from(vec![b'x'; 10])).await;
        assert!(!room.is_held("b") && room.member("b").is_none());
    }

    #[tokio::test]
    async fn a_window_that_ends_releases_and_reports_lost() {
        let ms = Duration::from_millis;
        let channels = service();
        let lost = lost_log(&channels);
        let (room, _) = channels.add_member_with("room", "a", "gone", Some(ms(600)));
        room.add_with("b", "gone", Some(ms(200)));
        channels.remove_frontends_except(&[]);
        assert!(room.is_held("a") && room.is_held("b"));
        tokio::time::sleep(ms(100)).await;
        assert!(room.is_held("b"));
        tokio::time::sleep(ms(200)).await;
        assert!(!room.is_held("b") && room.member("b").is_none());
        assert_eq!(*lost.lock().unwrap(), [("room".into(), "b".into())]);
        assert!(room.is_held("a"));
        tokio::time::sleep(ms(400)).await;
        assert_eq!(room.user_amount(), 0);
        assert_eq!(lost.lock().unwrap().len(), 2);
        assert_eq!(channels.held_count(), 0);
        assert_eq!(
            room.reattach("a", "gone", "f2").await.unwrap_err(),
            "a was released: its resume window ended"
        );
        assert_eq!(
            room.reattach("z", "gone", "f2").await.unwrap_err(),
            "no member z in room"
        );
        // The sweeper stopped with nothing held; a new hold starts another,
        // and a shorter window than the one it sleeps on wakes it.
        tokio::time::sleep(ms(50)).await;
        room.add_with("c", "gone", Some(ms(5000)));
        room.add_with("d", "gone", Some(ms(100)));
        channels.remove_frontends_except(&[]);
        tokio::time::sleep(ms(300)).await;
        assert!(room.member("d").is_none());
        assert!(room.is_held("c"));
    }

    #[tokio::test]
    async fn take_over_and_leave_end_a_hold_quietly() {
        let channels = service();
        let lost = lost_log(&channels);
        let (room, _) = channels.add_member_with("room", "a", "gone", Some(W));
        room.add_with("b", "gone", Some(W));
        room.add("c", "f2");
        channels.remove_frontends_except(&["f2".to_string()]);
        room.push_bytes("r", Bytes::from_static(b"1")).await;
        assert_eq!(held_frames(&channels, "a").len(), 1);

        assert!(!room.take_over("c", "f3"), "c is not held");
        assert!(room.take_over("a", "f3"));
        assert!(!room.is_held("a"));
        assert_eq!(room.member("a").as_deref(), Some("f3"));
        assert_eq!(room.members_at("f3"), ["a"]);
        assert!(
            held_frames(&channels, "a").is_empty(),
            "its buffer is dropped"
        );

        assert!(!room.leave("b", "f2"), "not lost from f2");
        assert!(room.leave("b", "gone"));
        assert!(room.member("b").is_none());
        assert_eq!(channels.held_count(), 0);
        assert!(lost.lock().unwrap().is_empty(), "nobody reported lost");
        assert_eq!(room.members_list(), ["c", "a"]);
    }

    #[tokio::test]
    async fn reattach_moves_a_member_not_yet_held_and_keeps_a_hold_it_cannot_flush() {
        let channels = service();
        let (room, _) = channels.add_member_with("room", "a", "f1", Some(W));
        room.add("x", "f1");
        // Not noticed yet: still recorded at f1.
        assert_eq!(room.reattach("a", "f1", "f2").await, Ok(0));
        assert_eq!(room.members_at("f2"), ["a"]);
        assert_eq!(
            room.reattach("a", "f1", "f2").await,
            Ok(0),
            "a retry is fine"
        );
        assert_eq!(
            room.reattach("x", "f0", "f2").await.unwrap_err(),
            "x is in room through f1, not f0"
        );
        // Held from f2; f3 cannot be reached: the hold and the buffer stay.
        channels.remove_frontends_except(&[]);
        room.push_bytes("r", Bytes::from_static(b"1")).await;
        room.push_bytes("r", Bytes::from_static(b"2")).await;
        let err = room.reattach("a", "f2", "f3").await.unwrap_err();
        assert!(err.starts_with("sending held pushes to f3 failed"), "{err}");
        assert!(room.is_held("a"));
        assert_eq!(held_frames(&channels, "a").len(), 2);
        assert_eq!(
            held_frames(&channels, "a")[0].1,
            "1",
            "the first one is put back"
        );
    }

    #[test]
    fn members_without_a_window_are_removed_as_before() {
        let channels = service();
        let (ch, _) = channels.add_member("room", "a", "f1");
        let removed = channels.remove_frontends_except(&[]);
        assert_eq!(removed.len(), 1);
        assert_eq!(ch.user_amount(), 0);
        assert_eq!(channels.held_count(), 0);
    }

    #[tokio::test]
    async fn destroying_a_channel_ends_its_holds_quietly() {
        let channels = service();
        let lost = lost_log(&channels);
        channels.add_member_with("room", "a", "gone", Some(W));
        let (hall, _) = channels.add_member_with("hall", "a", "gone", Some(W));
        channels.remove_frontends_except(&[]);
        hall.push_bytes("r", Bytes::from_static(b"1")).await;
        assert!(!channels.destroy_if_empty("room"), "a held member counts");
        assert!(channels.destroy("room"));
        assert_eq!(channels.held_count(), 1, "hall still holds a");
        assert_eq!(held_frames(&channels, "a").len(), 1);
        assert!(channels.destroy("hall"));
        assert_eq!(channels.held_count(), 0);
        assert!(held_frames(&channels, "a").is_empty());
        assert!(lost.lock().unwrap().is_empty());
    }
}
