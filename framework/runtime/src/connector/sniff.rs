//! One client port, two transports (Pomelo's hybrid connector, §1): the
//! first bytes of a connection (after the PROXY header and TLS) tell a
//! WebSocket upgrade from a raw Pomelo package stream.
//!
//! A raw client's first byte is a package type (`0x01` HANDSHAKE; any of
//! 1..=5 counts, so a broken client meets the package decoder rather than
//! the HTTP parser); an HTTP request starts with a method name, an ASCII
//! letter. Pomelo compares the first four bytes with `GET`, `POST`, `PUT`
//! and `HEAD`; one byte is enough to decide, and waiting for four would
//! stall a client whose first write is shorter.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{Buf, Bytes};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, ReadBuf};
use tokio::time::Instant;

/// What a connection turned out to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// An HTTP request: the WebSocket upgrade.
    WebSocket,
    /// Raw Pomelo packages.
    Tcp,
}

/// A stream that first gives back the bytes read to sniff it.
pub(crate) struct Rewind<S> {
    prefix: Option<Bytes>,
    inner: S,
}

/// Reads the first bytes of `stream` (within `deadline`) and says what it
/// is; the returned stream still yields them.
pub(crate) async fn sniff<S: AsyncRead + Unpin>(
    mut stream: S,
    deadline: Instant,
) -> Result<(Kind, Rewind<S>), String> {
    let mut first = [0u8; 16];
    let n = tokio::time::timeout_at(deadline, stream.read(&mut first))
        .await
        .map_err(|_| "nothing received before the handshake deadline".to_owned())?
        .map_err(|e| format!("read failed: {e}"))?;
    if n == 0 {
        return Err("client closed before sending anything".into());
    }
    let kind = if (1..=5).contains(&first[0]) {
        Kind::Tcp
    } else {
        Kind::WebSocket
    };
    let prefix = Some(Bytes::copy_from_slice(&first[..n]));
    Ok((
        kind,
        Rewind {
            prefix,
            inner: stream,
        },
    ))
}

impl<S: AsyncRead + Unpin> AsyncRead for Rewind<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if let Some(prefix) = &mut self.prefix {
            let n = prefix.len().min(buf.remaining());
            buf.put_slice(&prefix[..n]);
            prefix.advance(n);
            if prefix.is_empty() {
                self.prefix = None;
            }
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Rewind<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}
