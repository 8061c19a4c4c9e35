//! Packages over a socket (feature `io`): one [`Stream`] + [`Sink`] of
//! package bytes for both transports of Pomelo's hybrid connector (§1).
//!
//! * **WebSocket**: one binary message is one frame of one or more whole
//!   packages; a text message's bytes are read the same way (as Node's `ws`
//!   does); pings, pongs and the close frame are handled by tungstenite.
//! * **Raw TCP**: a plain byte stream of packages, cut by their §2.1 header
//!   with [`split_package`]: each item is exactly one package.
//!
//! Either way an item is a buffer of whole packages for [`decode_packages`]
//! and what is sent is one or more already encoded packages, written as
//! they are: a push encoded once for many receivers is never re-encoded
//! per connection (each transport copies it once into its write buffer).
//!
//! [`decode_packages`]: crate::decode_packages

use std::pin::Pin;
use std::task::{Context, Poll, ready};

use bytes::{Bytes, BytesMut};
use futures_util::{Sink, Stream};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::{Error as WsError, Message as WsMessage};
use tokio_util::codec::{Decoder, Encoder, Framed, FramedParts};

use crate::{DecodeError, split_package};

/// Why reading or writing packages failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TransportError {
    /// A message (WebSocket) or package (TCP) over the size limit.
    #[error("{0}")]
    TooLarge(String),
    /// Broken framing or a failed socket.
    #[error("{0}")]
    Failed(String),
}

impl From<std::io::Error> for TransportError {
    fn from(e: std::io::Error) -> Self {
        Self::Failed(e.to_string())
    }
}

fn ws_error(e: WsError) -> TransportError {
    match e {
        WsError::Capacity(c) => TransportError::TooLarge(c.to_string()),
        other => TransportError::Failed(other.to_string()),
    }
}

/// The raw TCP codec: [`split_package`] in, encoded packages out as is.
#[derive(Debug, Clone, Copy)]
pub struct PackageCodec {
    /// Largest package body accepted.
    pub max_body: usize,
}

impl Decoder for PackageCodec {
    type Item = Bytes;
    type Error = TransportError;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Bytes>, TransportError> {
        split_package(src, self.max_body).map_err(|e| match e {
            DecodeError::PackageTooLarge { .. } => TransportError::TooLarge(e.to_string()),
            other => TransportError::Failed(format!("bad package: {other}")),
        })
    }
}

impl Encoder<Bytes> for PackageCodec {
    type Error = TransportError;

    fn encode(&mut self, packages: Bytes, dst: &mut BytesMut) -> Result<(), TransportError> {
        dst.extend_from_slice(&packages);
        Ok(())
    }
}

/// A connection carrying Pomelo packages, over either transport.
pub enum PackageTransport<S> {
    WebSocket(WebSocketStream<S>),
    Tcp(Framed<S, PackageCodec>),
}

impl<S: AsyncRead + AsyncWrite + Unpin> PackageTransport<S> {
    /// Raw TCP over `io`: packages up to `max_body` bytes; the read buffer
    /// starts at `read_capacity` bytes (kept small: idle connections are
    /// many) and grows for larger packages.
    pub fn tcp(io: S, max_body: usize, read_capacity: usize) -> Self {
        let mut parts = FramedParts::new::<Bytes>(io, PackageCodec { max_body });
        parts.read_buf = BytesMut::with_capacity(read_capacity);
        parts.write_buf = BytesMut::new();
        Self::Tcp(Framed::from_parts(parts))
    }

    /// `"ws"` or `"tcp"`, for logs.
    pub fn name(&self) -> &'static str {
        match self {
            Self::WebSocket(_) => "ws",
            Self::Tcp(_) => "tcp",
        }
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> Stream for PackageTransport<S> {
    /// Whole packages: one WebSocket message, or one package off TCP.
    type Item = Result<Bytes, TransportError>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        match self.get_mut() {
            Self::Tcp(framed) => Pin::new(framed).poll_next(cx),
            Self::WebSocket(ws) => loop {
                return Poll::Ready(match ready!(Pin::new(&mut *ws).poll_next(cx)) {
                    None | Some(Ok(WsMessage::Close(_))) => None,
                    Some(Ok(WsMessage::Binary(data))) => Some(Ok(data)),
                    Some(Ok(WsMessage::Text(text))) => Some(Ok(Bytes::from(text))),
                    // Ping, pong: tungstenite answers pings itself.
                    Some(Ok(_)) => continue,
                    Some(Err(e)) => Some(Err(ws_error(e))),
                });
            },
        }
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> Sink<Bytes> for PackageTransport<S> {
    type Error = TransportError;

    fn poll_ready(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        match self.get_mut() {
            Self::WebSocket(ws) => Pin::new(ws).poll_ready(cx).map_err(ws_error),
            Self::Tcp(framed) => Pin::new(framed).poll_ready(cx),
        }
    }

    fn start_send(self: Pin<&mut Self>, packages: Bytes) -> Result<(), Self::Error> {
        match self.get_mut() {
            Self::WebSocket(ws) => Pin::new(ws)
                .start_send(WsMessage::Binary(packages))
                .map_err(ws_error),
            Self::Tcp(framed) => Pin::new(framed).start_send(packages),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        match self.get_mut() {
            Self::WebSocket(ws) => Pin::new(ws).poll_flush(cx).map_err(ws_error),
            Self::Tcp(framed) => Pin::new(framed).poll_flush(cx),
        }
    }

    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        match self.get_mut() {
            Self::WebSocket(ws) => Pin::new(ws).poll_close(cx).map_err(ws_error),
            Self::Tcp(framed) => Pin::new(framed).poll_close(cx),
        }
    }
}
