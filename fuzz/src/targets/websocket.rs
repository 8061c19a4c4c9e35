//! WebSocket framing as the connector sees it: tokio-tungstenite, with the
//! connector's own `WebSocketConfig` (`ConnectorOptions::ws_config`: frame
//! and message size limits), reading from an in-memory duplex stream; every
//! binary message then goes through the package decoder, and handshake and
//! data packages through their parsers, as `connector::agent` does.
//!
//! The first input byte picks the mode: even → the bytes follow a finished
//! upgrade (frames only); odd → the whole connection, HTTP upgrade request
//! first (`accept_async_with_config`). Invariant beyond "no panic": the
//! connection ends within 2 s (no hang on any input).

use std::time::Duration;

use bytes::Bytes;
use futures_util::StreamExt;
use shaddock::connector::ConnectorOptions;
use shaddock_protocol::handshake::parse_handshake;
use shaddock_protocol::{PackageType, RouteDictionary, decode_message, decode_packages};
use tokio::io::AsyncWriteExt;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::{Role, WebSocketConfig};

use super::{Target, signature, variant};
use crate::rng::Rng;

const HANG: Duration = Duration::from_secs(2);

pub struct WebSocketFraming {
    rt: tokio::runtime::Runtime,
    config: WebSocketConfig,
    dict: RouteDictionary,
}

impl WebSocketFraming {
    pub fn new() -> Self {
        WebSocketFraming {
            rt: runtime(),
            config: ConnectorOptions::default().ws_config(),
            dict: super::message::chat_dictionary(),
        }
    }
}

impl Default for WebSocketFraming {
    fn default() -> Self {
        Self::new()
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime")
}

/// A browser's upgrade request, sometimes with a header missing or broken.
fn upgrade_request(rng: &mut Rng) -> Vec<u8> {
    let mut lines = vec![
        "GET / HTTP/1.1".to_owned(),
        "Host: 127.0.0.1:3050".to_owned(),
        "Upgrade: websocket".to_owned(),
        "Connection: Upgrade".to_owned(),
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==".to_owned(),
        "Sec-WebSocket-Version: 13".to_owned(),
        "Origin: http://127.0.0.1:3001".to_owned(),
    ];
    if rng.one_in(4) {
        let i = rng.below(lines.len());
        match rng.below(3) {
            0 => {
                lines.remove(i);
            }
            1 => lines[i] = rng.text(40),
            _ => lines.insert(i, format!("X-{}: {}", rng.text(8), rng.text(200))),
        }
    }
    let mut out = lines.join("\r\n").into_bytes();
    out.extend_from_slice(b"\r\n\r\n");
    out
}

/// A Pomelo package as a client sends it.
fn pomelo_payload(rng: &mut Rng) -> Vec<u8> {
    let (kind, body) = match rng.below(5) {
        0 => (1, super::handshake::handshake_json(rng)),
        1 => (2, Vec::new()),
        2 => (3, Vec::new()),
        _ => (4, super::message::message_bytes(rng)),
    };
    super::package::package_bytes(rng, kind, &body)
}

/// One client frame (RFC 6455 §5.2), masked as clients must, with the
/// length in its minimal or a longer encoding, or lying.
fn frame(rng: &mut Rng) -> Vec<u8> {
    let opcode: u8 = if rng.one_in(4) {
        *rng.pick(&[0x0, 0x1, 0x3, 0x8, 0x9, 0xA, 0xB, 0xF])
    } else {
        0x2
    };
    let fin = !rng.one_in(8);
    let rsv = if rng.one_in(16) { rng.byte() & 0x70 } else { 0 };
    let payload = match (opcode, rng.below(4)) {
        (0x8, _) => {
            let mut p = rng
                .pick(&[1000u16, 1001, 1002, 999, 5000, 0])
                .to_be_bytes()
                .to_vec();
            p.extend(rng.some_bytes(4));
            p.truncate(
                rng.below(p.len() + 1)
                    .max(if rng.one_in(2) { 2 } else { 0 }),
            );
            p
        }
        (_, 0) => rng.some_bytes(200),
        _ => pomelo_payload(rng),
    };
    let masked = !rng.one_in(16);
    let mut out = vec![(u8::from(fin) << 7) | rsv | opcode];
    let mask_bit = if masked { 0x80 } else { 0 };
    let len = if rng.one_in(12) {
        u64::from(rng.interesting_u32()) | if rng.one_in(4) { 1 << 63 } else { 0 }
    } else {
        payload.len() as u64
    };
    match (len, rng.below(6)) {
        (0..=125, 0..=4) => out.push(mask_bit | len as u8),
        (0..=0xFFFF, 0..=4) | (_, 5) if len <= 0xFFFF => {
            out.push(mask_bit | 126);
            out.extend((len as u16).to_be_bytes());
        }
        _ => {
            out.push(mask_bit | 127);
            out.extend(len.to_be_bytes());
        }
    }
    let key = [rng.byte(), rng.byte(), rng.byte(), rng.byte()];
    if masked {
        out.extend(key);
    }
    out.extend(
        payload
            .iter()
            .enumerate()
            .map(|(i, b)| if masked { b ^ key[i % 4] } else { *b }),
    );
    out
}

impl Target for WebSocketFraming {
    fn name(&self) -> &'static str {
        "websocket"
    }

    fn max_len(&self) -> usize {
        8192
    }

    fn generate(&mut self, rng: &mut Rng) -> Vec<u8> {
        let upgrade = rng.one_in(4);
        let mut out = vec![(rng.byte() & 0xFE) | u8::from(upgrade)];
        if upgrade {
            out.extend(upgrade_request(rng));
        }
        for _ in 0..1 + rng.below(4) {
            out.extend(frame(rng));
        }
        out
    }

    fn run(&mut self, input: &[u8]) -> u64 {
        let Some((&mode, bytes)) = input.split_first() else {
            return 0;
        };
        let config = self.config;
        let dict = &self.dict;
        let outcome = self.rt.block_on(async move {
            tokio::time::timeout(HANG, connection(mode & 1 == 1, bytes, config, dict)).await
        });
        match outcome {
            Ok(sig) => sig,
            Err(_) => {
                // A fresh runtime for the next input, then report the hang.
                self.rt = runtime();
                panic!("the connection did not end within {HANG:?}");
            }
        }
    }
}

/// Writes `bytes` as the client, closes the client's write side and reads
/// everything the server side decodes.
async fn connection(
    upgrade: bool,
    bytes: &[u8],
    config: WebSocketConfig,
    dict: &RouteDictionary,
) -> u64 {
    // Room for all the server may write back (the 101, pongs, a close).
    let (mut client, server) = tokio::io::duplex(64 * 1024 + 4 * bytes.len());
    client.write_all(bytes).await.expect("duplex has room");
    client.shutdown().await.expect("duplex shutdown");
    let mut ws = if upgrade {
        match tokio_tungstenite::accept_async_with_config(server, Some(config)).await {
            Ok(ws) => ws,
            Err(e) => return signature(("upgrade", variant(&e))),
        }
    } else {
        WebSocketStream::from_raw_socket(server, Role::Server, Some(config)).await
    };
    let mut sig = Vec::new();
    while let Some(next) = ws.next().await {
        match next {
            Ok(Message::Binary(data)) => sig.push(pomelo(data, dict)),
            Ok(other) => sig.push(kind(&other).to_string()),
            Err(e) => {
                sig.push(variant(&e));
                break;
            }
        }
        if sig.len() > 8 {
            break;
        }
    }
    drop(client);
    signature(sig)
}

fn kind(m: &Message) -> &'static str {
    match m {
        Message::Text(_) => "text",
        Message::Binary(_) => "binary",
        Message::Ping(_) => "ping",
        Message::Pong(_) => "pong",
        Message::Close(_) => "close",
        Message::Frame(_) => "frame",
    }
}

/// What the connector's agent does with a binary message.
fn pomelo(data: Bytes, dict: &RouteDictionary) -> String {
    match decode_packages(data) {
        Ok(packages) => {
            let mut seen = String::new();
            for p in packages {
                let part = match p.kind {
                    PackageType::Handshake => {
                        parse_handshake(&p.body).map(|_| "hs").unwrap_or("bad-hs")
                    }
                    PackageType::Data => decode_message(p.body, Some(dict))
                        .map(|_| "data")
                        .unwrap_or("bad-data"),
                    _ => "other",
                };
                seen.push_str(part);
            }
            seen
        }
        Err(e) => variant(&e),
    }
}
