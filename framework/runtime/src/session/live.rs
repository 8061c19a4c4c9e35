//! The frontend's record of one connection.
//!
//! Kept deliberately small (one allocation, two short std mutexes, no
//! per-session task besides the agent): a frontend holds tens of thousands
//! of these and per-connection memory is a benchmark target.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::{Arc, OnceLock, Weak};

use bytes::Bytes;
use serde_json::{Map, Value};
use tokio::sync::Notify;

use super::lock;
use super::wire::{Pushed, Refused, Wire};
use crate::session::SessionSnapshot;

/// A callback run once when the connection ends, with the session as it was
/// and the close reason (Pomelo's `session.on('closed', ...)`).
///
/// It runs on the connection's task after the socket is gone, so it must not
/// block; for async work (e.g. telling a backend the user left) spawn a task.
pub type ClosedListener = Box<dyn FnOnce(SessionSnapshot, String) + Send + 'static>;

/// Connection states of §2.3.
pub(crate) const STATE_INITED: u8 = 0;
pub(crate) const STATE_WAIT_ACK: u8 = 1;
pub(crate) const STATE_WORKING: u8 = 2;
pub(crate) const STATE_CLOSED: u8 = 3;

/// Why a frame was not queued for a client.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PushError {
    /// Before the handshake ACK (or after close) nothing but handshake
    /// traffic may be written (§2.3); the frame is dropped.
    #[error("the connection is not in the WORKING state")]
    NotWorking,
    /// The client reads too slowly: its queue hit the bound, so the
    /// connection is being closed rather than letting memory grow.
    #[error("the client's outbound queue is full; the connection is being closed")]
    Overflow,
    /// A kick or close is already under way.
    #[error("the connection is closing")]
    Closing,
}

/// What the agent should do after draining the queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum CloseRequest {
    /// Send KICK `{"reason":..}` (in WORKING), then close.
    Kick(String),
    /// The outbound queue overflowed: KICK (best effort: the client is not
    /// reading) and close.
    Overflow,
}

#[derive(Default)]
struct Outbox {
    frames: VecDeque<Bytes>,
    /// Sum of the queued frames' lengths.
    bytes: usize,
    close: Option<CloseRequest>,
}

#[derive(Default)]
struct Data {
    uid: Option<String>,
    settings: Map<String, Value>,
    listeners: Vec<ClosedListener>,
    /// The handshake's `user` object (boxed: most clients send none, and
    /// every connection pays for this field).
    handshake_user: Option<Box<Value>>,
    /// Set when the client asked for resume (`session/resume.rs`): the
    /// nonce its tokens carry. `None`: the session ends with its connection.
    resume_nonce: Option<u64>,
}

/// One client connection on this frontend.
pub struct LiveSession {
    sid: u64,
    frontend_id: Arc<str>,
    state: AtomicU8,
    queue_bound: usize,
    queue_bytes: usize,
    data: Mutex<Data>,
    outbox: Mutex<Outbox>,
    /// Wakes the agent when frames or a close request are queued. A permit is
    /// stored when the agent is busy, so no wake-up is lost.
    wake: Notify,
    /// The plain-TCP socket, for writing pushes from the fan-out (and
    /// whether the write window defers them); unset for TLS, whose frames
    /// go through `outbox`. Weak: the agent owns the socket, and a push
    /// racing with its close must not keep it open.
    wire: OnceLock<(Weak<Wire>, bool)>,
    /// Set when the session is parked for resume (`session/resume.rs`):
    /// from then on its frames wait in `outbox`, never on a wire (the
    /// dropped socket's wire is gone; a resumed session keeps this
    /// queue-and-wake path, as TLS clients do).
    outbox_only: AtomicBool,
}

impl LiveSession {
    /// `queue_bound` frames and `queue_bytes` bytes may wait for the client.
    pub(crate) fn new(
        sid: u64,
        frontend_id: Arc<str>,
        queue_bound: usize,
        queue_bytes: usize,
    ) -> Self {
        Self {
            sid,
            frontend_id,
            state: AtomicU8::new(STATE_INITED),
            queue_bound: queue_bound.max(1),
            queue_bytes: queue_bytes.max(1),
            data: Mutex::default(),
            outbox: Mutex::default(),
            wake: Notify::new(),
            wire: OnceLock::new(),
            outbox_only: AtomicBool::new(false),
        }
    }

    /// Sends this session's frames straight to `wire` from now on (plain
    /// TCP), queued for the agent's next write window when `defer`.
    pub(crate) fn attach_wire(&self, wire: &Arc<Wire>, defer: bool) {
        let _ = self.wire.set((Arc::downgrade(wire), defer));
    }

    /// The wire frames go to, unless the session uses its outbox only.
    fn wire(&self) -> Option<&(Weak<Wire>, bool)> {
        if self.outbox_only.load(Ordering::Relaxed) {
            return None;
        }
        self.wire.get()
    }

    /// Sends every later frame through the outbox (session resume: the
    /// socket of the wire is gone, and the next connection's agent drains
    /// the outbox).
    pub(crate) fn use_outbox_only(&self) {
        self.outbox_only.store(true, Ordering::Relaxed);
    }

    pub fn sid(&self) -> u64 {
        self.sid
    }

    pub fn frontend_id(&self) -> &str {
        &self.frontend_id
    }

    pub fn uid(&self) -> Option<String> {
        lock(&self.data).uid.clone()
    }

    /// Whether the client finished the handshake and the connection is open.
    pub fn is_working(&self) -> bool {
        self.state.load(Ordering::Acquire) == STATE_WORKING
    }

    pub(crate) fn set_state(&self, state: u8) {
        self.state.store(state, Ordering::Release);
    }

    /// Sets the uid unless another one is bound. Returns the previous uid
    /// (`Some` when the same uid was already bound).
    pub(crate) fn bind_uid(&self, uid: &str) -> Result<(), String> {
        let mut data = lock(&self.data);
        match &data.uid {
            Some(bound) if bound != uid => Err(bound.clone()),
            _ => {
                data.uid = Some(uid.to_owned());
                Ok(())
            }
        }
    }

    pub(crate) fn unbind_uid(&self, uid: &str) -> bool {
        let mut data = lock(&self.data);
        if data.uid.as_deref() == Some(uid) {
            data.uid = None;
            true
        } else {
            false
        }
    }

    /// The `user` object of the client's handshake (§4.1), if it sent one.
    pub fn handshake_user(&self) -> Option<Value> {
        lock(&self.data).handshake_user.as_deref().cloned()
    }

    pub(crate) fn set_handshake_user(&self, user: Value) {
        lock(&self.data).handshake_user = Some(Box::new(user));
    }

    /// The nonce of this session's resume tokens, when its client asked
    /// for resume.
    pub(crate) fn resume_nonce(&self) -> Option<u64> {
        lock(&self.data).resume_nonce
    }

    pub(crate) fn set_resume_nonce(&self, nonce: u64) {
        lock(&self.data).resume_nonce = Some(nonce);
    }

    /// A copy of the settings map.
    pub fn settings(&self) -> Map<String, Value> {
        lock(&self.data).settings.clone()
    }

    /// Merges `settings` into the session's settings (Pomelo's `session.set`
    /// + `push`).
    pub fn merge_settings(&self, settings: Map<String, Value>) {
        let mut data = lock(&self.data);
        for (k, v) in settings {
            data.settings.insert(k, v);
        }
    }

    /// Registers a listener run once when the connection ends. On an already
    /// closed session it runs at once.
    pub fn on_closed(&self, listener: ClosedListener) {
        // The state is read under the same lock `close` takes the listeners
        // with, so a close racing with this registration either sees the
        // listener or this call sees the closed state: it always runs once.
        let mut data = lock(&self.data);
        if self.state.load(Ordering::Acquire) != STATE_CLOSED {
            data.listeners.push(listener);
            return;
        }
        drop(data);
        listener(self.snapshot(), "closed".into());
    }

    /// Pomelo's `session.export()`.
    pub fn snapshot(&self) -> SessionSnapshot {
        let data = lock(&self.data);
        SessionSnapshot {
            sid: self.sid,
            frontend_id: self.frontend_id.to_string(),
            uid: data.uid.clone(),
            settings: data.settings.clone(),
        }
    }

    /// Queues an encoded frame (one or more packages) for the client without
    /// waiting. Never blocks: a client whose queue is full is closed instead
    /// (logged once), so one slow reader cannot hold up a broadcast.
    pub fn send(&self, frame: Bytes) -> Result<(), PushError> {
        if !self.is_working() {
            return Err(PushError::NotWorking);
        }
        if let Some((wire, defer)) = self.wire() {
            return self.send_on_wire(wire, *defer, frame);
        }
        let mut outbox = lock(&self.outbox);
        if outbox.close.is_some() {
            return Err(PushError::Closing);
        }
        // A frame larger than the whole byte bound still goes to an empty
        // queue: the bound is for a client falling behind, not for one push.
        if outbox.frames.len() >= self.queue_bound
            || (outbox.bytes + frame.len() > self.queue_bytes && !outbox.frames.is_empty())
        {
            let dropped = outbox.frames.len() as u64 + 1;
            outbox.frames.clear();
            outbox.bytes = 0;
            drop(outbox);
            return Err(self.overflow(dropped));
        }
        outbox.bytes += frame.len();
        count_out(frame.len());
        outbox.frames.push_back(frame);
        drop(outbox);
        self.wake.notify_one();
        Ok(())
    }

    /// [`send`](Self::send) for one push of a batch: on plain TCP (without
    /// a write window) the frame is only queued on the wire, and `true`
    /// says the caller must [`flush_wire`](Self::flush_wire) this session
    /// after the batch (its queue was empty). Elsewhere the same as `send`.
    pub(crate) fn send_deferred(&self, frame: Bytes) -> Result<bool, PushError> {
        let Some((wire, false)) = self.wire() else {
            return self.send(frame).map(|()| false);
        };
        if !self.is_working() {
            return Err(PushError::NotWorking);
        }
        let Some(wire) = wire.upgrade() else {
            return Err(PushError::Closing);
        };
        match wire.push(&frame, self.queue_bound, self.queue_bytes, true) {
            Ok(pushed) => {
                count_out(frame.len());
                Ok(pushed == Pushed::WakeAgent)
            }
            Err(Refused::Closing) => Err(PushError::Closing),
            Err(Refused::Overflow) => Err(self.overflow(1)),
        }
    }

    /// Writes what [`send_deferred`](Self::send_deferred) queued; wakes the
    /// agent for what the socket does not take now.
    pub(crate) fn flush_wire(&self) {
        if let Some(wire) = self.wire().and_then(|(w, _)| w.upgrade())
            && !wire.flush_now()
        {
            self.wake.notify_one();
        }
    }

    /// [`send`](Self::send) on plain TCP: written by the caller when the
    /// socket has nothing waiting, else queued on the wire for the agent.
    fn send_on_wire(&self, wire: &Weak<Wire>, defer: bool, frame: Bytes) -> Result<(), PushError> {
        let Some(wire) = wire.upgrade() else {
            return Err(PushError::Closing);
        };
        match wire.push(&frame, self.queue_bound, self.queue_bytes, defer) {
            Ok(pushed) => {
                count_out(frame.len());
                if pushed == Pushed::WakeAgent {
                    self.wake.notify_one();
                }
                Ok(())
            }
            Err(Refused::Closing) => Err(PushError::Closing),
            Err(Refused::Overflow) => Err(self.overflow(1)),
        }
    }

    /// The queue overflowed (`dropped` frames lost): asks the agent to KICK
    /// and close, logged once.
    fn overflow(&self, dropped: u64) -> PushError {
        crate::telemetry::m().outbound_drops.increment(dropped);
        lock(&self.outbox).close = Some(CloseRequest::Overflow);
        tracing::warn!(
            sid = self.sid,
            frames = self.queue_bound,
            bytes = self.queue_bytes,
            "outbound queue full (client reads too slowly); kicking and closing the connection"
        );
        self.wake.notify_one();
        PushError::Overflow
    }

    /// Asks the agent to send KICK `{"reason":..}` after the frames already
    /// queued, then close. Only the first close request counts.
    pub fn kick(&self, reason: &str) {
        let mut outbox = lock(&self.outbox);
        if outbox.close.is_none() {
            outbox.close = Some(CloseRequest::Kick(reason.to_owned()));
        }
        drop(outbox);
        self.close_wire();
        self.wake.notify_one();
    }

    /// No more frames from the fan-out straight to the socket: the agent
    /// is about to write its KICK or close frame, which must come last.
    pub(crate) fn close_wire(&self) {
        if let Some(wire) = self.wire.get().and_then(|(w, _)| w.upgrade()) {
            wire.close_pushes();
        }
    }

    /// Waits until frames or a close request are queued (agent side).
    pub(crate) async fn wait_outbound(&self) {
        self.wake.notified().await;
    }

    /// Re-arms the agent's wake-up (after it consumed one while busy).
    pub(crate) fn rewake(&self) {
        self.wake.notify_one();
    }

    /// The pending close request, if any, without draining the queue (a
    /// parked session's watcher, `session/resume.rs`).
    pub(crate) fn close_requested(&self) -> Option<CloseRequest> {
        lock(&self.outbox).close.clone()
    }

    /// Whether the outbound queue overflowed (agent side).
    pub(crate) fn overflowed(&self) -> bool {
        lock(&self.outbox).close == Some(CloseRequest::Overflow)
    }

    /// Moves every queued frame into `batch` and returns a pending close
    /// request, if any (agent side).
    pub(crate) fn drain(&self, batch: &mut Vec<Bytes>) -> Option<CloseRequest> {
        let mut outbox = lock(&self.outbox);
        batch.extend(outbox.frames.drain(..));
        outbox.bytes = 0;
        if outbox.frames.capacity() > 64 {
            // A burst grew the queue; give the memory back while idle.
            outbox.frames.shrink_to(8);
        }
        outbox.close.clone()
    }

    /// Marks the session closed and runs the closed listeners (agent side,
    /// exactly once).
    pub(crate) fn finish(&self, reason: &str) {
        self.set_state(STATE_CLOSED);
        let listeners = std::mem::take(&mut lock(&self.data).listeners);
        if listeners.is_empty() {
            return;
        }
        let snapshot = self.snapshot();
        for listener in listeners {
            listener(snapshot.clone(), reason.to_owned());
        }
    }
}

/// Counts one frame of `len` bytes handed to a client's socket or queue.
fn count_out(len: usize) {
    let m = crate::telemetry::m();
    m.frames_out.increment(1);
    m.bytes_out.increment(len as u64);
}
