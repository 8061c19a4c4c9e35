//! The client's plain-TCP socket, written by its agent *and* by the push
//! fan-out.
//!
//! A push to 25 receivers used to cost 25 task wake-ups: the fan-out
//! queued the frame and woke each connection's agent, which then ran, found
//! the frame, framed it again for its transport and wrote it. On loopback
//! at 50 000 pushes/s that wake-up, the agent's poll and the copy were most
//! of a push's user-space cost, plus the scheduler work of parking and
//! unparking workers. [`Wire`] lets the fan-out write the frame itself when
//! nothing is waiting to go out on that socket: one non-blocking
//! `writev` (the WebSocket header on the stack, the shared frame bytes),
//! no wake-up, no copy. Only when the socket is full (a slow reader) or a
//! write is partial does the rest wait in the wire's queue, and then the
//! agent is woken to finish it when the socket is writable — the same
//! bounded queue and the same kick as before.
//!
//! Everything written to the socket goes through one lock, in order:
//! the agent's own writes (the WebSocket upgrade, handshake, heartbeats,
//! kicks, pongs and close frames that tungstenite writes through
//! [`SharedTcp`]) and the fan-out's. tungstenite only ever hands its socket
//! whole frames (it buffers a frame before writing it), and [`SharedTcp`]
//! takes every byte it is given in one call, so the two kinds of writer
//! never interleave inside a frame.
//!
//! Only plain TCP gets a wire: with TLS the bytes on the socket are
//! records of a session state only the TLS stream holds, so a TLS client
//! keeps the queue-and-wake path (`LiveSession`'s outbox).
//!
//! An opt-in write window (`write-window-ms`, connector.json) trades a few
//! milliseconds of latency for fewer system calls: pushes are only queued,
//! and the agent writes everything queued once per window (one `writev`),
//! as Pomelo's buffered connector does.

use std::collections::VecDeque;
use std::io::{self, IoSlice};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, ready};

use bytes::Bytes;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

use super::lock;

/// Most buffers handed to one `writev`.
const MAX_IOV: usize = 64;

/// What [`Wire::push`] did with a frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Pushed {
    /// Written to the socket.
    Written,
    /// Queued behind bytes that are waiting; the agent was already told.
    Queued,
    /// Queued (the socket is full, or the write window holds it) and the
    /// queue was empty before: the agent must be woken to write it.
    WakeAgent,
}

/// Why [`Wire::push`] refused a frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refused {
    /// The connection is closing (kick, close, or the socket failed).
    Closing,
    /// The queue hit its bound: the client reads too slowly.
    Overflow,
}

#[derive(Default)]
struct State {
    /// Bytes accepted but not yet on the socket, oldest first, each marked
    /// when it ends a push. The first entry may be the tail of a frame the
    /// socket took only part of.
    pending: VecDeque<(Bytes, bool)>,
    pending_bytes: usize,
    /// Pushes among `pending` (a push is one or two entries).
    pending_frames: usize,
    /// Whether `pending[0]` is the tail of a partly written frame: it must
    /// go out even when the rest of the queue is thrown away.
    partial_head: bool,
    /// No more pushes: the connection is closing.
    closed: bool,
}

/// The outbound side of one plain-TCP client socket (see the module doc).
pub struct Wire {
    tcp: TcpStream,
    /// Frames written by [`push`](Self::push) get a WebSocket header.
    websocket: std::sync::atomic::AtomicBool,
    state: Mutex<State>,
}

impl Wire {
    pub(crate) fn new(tcp: TcpStream) -> Arc<Self> {
        Arc::new(Self {
            tcp,
            websocket: Default::default(),
            state: Mutex::default(),
        })
    }

    /// Says that the client turned out to speak WebSocket (set after the
    /// first bytes are sniffed, before the handshake).
    pub(crate) fn set_websocket(&self, on: bool) {
        self.websocket
            .store(on, std::sync::atomic::Ordering::Relaxed);
    }

    /// Writes one encoded frame of packages for the client, framed for its
    /// transport, or queues it behind what is waiting (at most `max_frames`
    /// pushes and `max_bytes` bytes; past that the queue is dropped and the
    /// connection must be closed). With `defer` the frame is only queued
    /// (the write window).
    pub(crate) fn push(
        &self,
        frame: &Bytes,
        max_frames: usize,
        max_bytes: usize,
        defer: bool,
    ) -> Result<Pushed, Refused> {
        let mut buf = [0u8; 10];
        let header = self.framing(frame.len(), &mut buf);
        let len = header.len() + frame.len();
        let mut st = lock(&self.state);
        if st.closed {
            return Err(Refused::Closing);
        }
        if st.pending.is_empty() && !defer {
            return match self.write_or_queue(&mut st, header, frame) {
                Ok(false) => Ok(Pushed::Written),
                Ok(true) => Ok(Pushed::WakeAgent),
                Err(_) => {
                    // The agent sees the broken socket on its side too.
                    st.closed = true;
                    Err(Refused::Closing)
                }
            };
        }
        let was_empty = st.pending.is_empty();
        if !was_empty && (st.pending_frames >= max_frames || st.pending_bytes + len > max_bytes) {
            st.closed = true;
            let keep = if st.partial_head { 1 } else { 0 };
            st.pending.truncate(keep);
            st.pending_bytes = st.pending.iter().map(|(b, _)| b.len()).sum();
            st.pending_frames = st.pending.iter().filter(|(_, end)| *end).count();
            return Err(Refused::Overflow);
        }
        queue_tail(&mut st, header, frame, 0);
        Ok(if was_empty {
            Pushed::WakeAgent
        } else {
            Pushed::Queued
        })
    }

    /// Writes (or queues behind what waits) one frame of the agent's own —
    /// handshake reply, heartbeat — framed like a push; unlike a push it is
    /// taken while closing and is not counted against the bounds (the
    /// agent writes few, and flushes before the next).
    pub(crate) fn write_own(&self, frame: &Bytes) -> io::Result<()> {
        let mut buf = [0u8; 10];
        let header = self.framing(frame.len(), &mut buf);
        self.write_or_queue(&mut lock(&self.state), header, frame)
            .map(|_| ())
    }

    /// The transport's framing of a `len`-byte frame: a WebSocket header
    /// (written into `buf`), or nothing on raw TCP.
    fn framing<'a>(&self, len: usize, buf: &'a mut [u8; 10]) -> &'a [u8] {
        if self.websocket.load(std::sync::atomic::Ordering::Relaxed) {
            let n = ws_binary_header(len, buf);
            &buf[..n]
        } else {
            &buf[..0]
        }
    }

    /// Writes `header` + `frame` now when nothing waits, and queues what
    /// the socket does not take (all of it behind waiting bytes). Returns
    /// whether bytes were left queued.
    fn write_or_queue(&self, st: &mut State, header: &[u8], frame: &Bytes) -> io::Result<bool> {
        let written = if st.pending.is_empty() {
            match self
                .tcp
                .try_write_vectored(&[IoSlice::new(header), IoSlice::new(frame)])
            {
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => 0,
                Err(e) => return Err(e),
            }
        } else {
            0
        };
        if written == header.len() + frame.len() {
            return Ok(false);
        }
        if st.pending.is_empty() {
            st.partial_head = written > 0;
        }
        queue_tail(st, header, frame, written);
        Ok(true)
    }

    /// Refuses pushes from now on (the connection is closing). The agent
    /// can still write: its kick and close frames go after what is queued.
    pub(crate) fn close_pushes(&self) {
        lock(&self.state).closed = true;
    }

    /// Writes what is queued as far as the socket takes it now; `false`
    /// when bytes are left for the agent.
    pub(crate) fn flush_now(&self) -> bool {
        let mut st = lock(&self.state);
        if self.write_pending(&mut st).is_err() {
            // The agent sees the broken socket when it reads.
            st.closed = true;
        }
        st.pending.is_empty()
    }

    /// Whether bytes are waiting for the socket (the agent must flush).
    pub(crate) fn has_pending(&self) -> bool {
        !lock(&self.state).pending.is_empty()
    }

    /// Writes as much of the queue as the socket takes now.
    fn write_pending(&self, st: &mut State) -> io::Result<()> {
        while !st.pending.is_empty() {
            let mut iov = [IoSlice::new(&[]); MAX_IOV];
            let n = st.pending.len().min(MAX_IOV);
            for (slot, (buf, _)) in iov.iter_mut().zip(st.pending.iter()) {
                *slot = IoSlice::new(buf);
            }
            let mut written = match self.tcp.try_write_vectored(&iov[..n]) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(w) => w,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
                Err(e) => return Err(e),
            };
            st.pending_bytes -= written;
            st.partial_head = false;
            while written > 0 {
                let (head, ends_push) = st.pending.front_mut().expect("written bytes were queued");
                if written >= head.len() {
                    written -= head.len();
                    if *ends_push {
                        st.pending_frames -= 1;
                    }
                    st.pending.pop_front();
                } else {
                    let _ = head.split_to(written);
                    st.partial_head = true;
                    written = 0;
                }
            }
        }
        if st.pending.capacity() > 64 {
            // A burst grew it; an idle connection keeps little.
            st.pending.shrink_to(8);
        }
        Ok(())
    }
}

/// Queues `header` + `frame`, minus the first `written` bytes.
fn queue_tail(st: &mut State, header: &[u8], frame: &Bytes, written: usize) {
    if written < header.len() {
        st.pending
            .push_back((Bytes::copy_from_slice(&header[written..]), false));
        st.pending.push_back((frame.clone(), true));
    } else {
        st.pending
            .push_back((frame.slice(written - header.len()..), true));
    }
    st.pending_bytes += header.len() + frame.len() - written;
    st.pending_frames += 1;
}

/// Writes the header of one unmasked, final, binary WebSocket frame of
/// `len` payload bytes (RFC 6455 §5.2; servers never mask) into `out`,
/// returning its length (2, 4 or 10).
pub fn ws_binary_header(len: usize, out: &mut [u8; 10]) -> usize {
    out[0] = 0x82;
    if len < 126 {
        out[1] = len as u8;
        2
    } else if len <= u16::MAX as usize {
        out[1] = 126;
        out[2..4].copy_from_slice(&(len as u16).to_be_bytes());
        4
    } else {
        out[1] = 127;
        out[2..10].copy_from_slice(&(len as u64).to_be_bytes());
        10
    }
}

/// The socket as the agent's transports see it: reads straight from the
/// socket, writes through the [`Wire`]'s queue (see the module doc).
pub(crate) struct SharedTcp {
    wire: Arc<Wire>,
    /// Bytes the agent may have queued before its writes wait for the
    /// socket (its own writes are few: handshake, heartbeats, kicks).
    max_bytes: usize,
}

impl SharedTcp {
    pub(crate) fn new(wire: Arc<Wire>, max_bytes: usize) -> Self {
        Self { wire, max_bytes }
    }
}

impl AsyncRead for SharedTcp {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let tcp = &self.wire.tcp;
        loop {
            ready!(tcp.poll_read_ready(cx))?;
            match tcp.try_read(buf.initialize_unfilled()) {
                Ok(n) => {
                    buf.advance(n);
                    return Poll::Ready(Ok(()));
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                Err(e) => return Poll::Ready(Err(e)),
            }
        }
    }
}

impl AsyncWrite for SharedTcp {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let wire = &self.wire;
        loop {
            let mut st = lock(&wire.state);
            wire.write_pending(&mut st)?;
            if st.pending.is_empty() {
                let written = match wire.tcp.try_write(buf) {
                    Ok(n) => n,
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => 0,
                    Err(e) => return Poll::Ready(Err(e)),
                };
                if written < buf.len() {
                    st.partial_head = written > 0;
                    st.pending
                        .push_back((Bytes::copy_from_slice(&buf[written..]), false));
                    st.pending_bytes += buf.len() - written;
                }
                return Poll::Ready(Ok(buf.len()));
            }
            if st.pending_bytes + buf.len() <= self.max_bytes {
                st.pending.push_back((Bytes::copy_from_slice(buf), false));
                st.pending_bytes += buf.len();
                return Poll::Ready(Ok(buf.len()));
            }
            drop(st);
            ready!(wire.tcp.poll_write_ready(cx))?;
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let wire = &self.wire;
        loop {
            let mut st = lock(&wire.state);
            wire.write_pending(&mut st)?;
            if st.pending.is_empty() {
                return Poll::Ready(Ok(()));
            }
            drop(st);
            ready!(wire.tcp.poll_write_ready(cx))?;
        }
    }

    /// Flushes; the socket itself closes when the agent drops it.
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.poll_flush(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio_tungstenite::tungstenite::protocol::frame::FrameHeader;
    use tokio_tungstenite::tungstenite::protocol::frame::coding::{Data, OpCode};

    /// Our header is byte for byte the one tungstenite writes for the same
    /// frame, at each length boundary of RFC 6455 §5.2.
    #[test]
    fn ws_header_matches_tungstenite() {
        for len in [0usize, 1, 125, 126, 127, 65_535, 65_536, 1 << 20] {
            let mut ours = [0u8; 10];
            let n = ws_binary_header(len, &mut ours);
            let header = FrameHeader {
                is_final: true,
                opcode: OpCode::Data(Data::Binary),
                ..FrameHeader::default()
            };
            let mut theirs = Vec::new();
            header.format(len as u64, &mut theirs).unwrap();
            assert_eq!(&ours[..n], &theirs[..], "length {len}");
        }
    }
}
