//! The connection task of a [`Client`](super::Client): one per connection.

use std::sync::Arc;
use std::time::Duration;

use super::{CloseReason, Command, Conn, Push, PushRoute, Shared, lock};
use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use shaddock_protocol::handshake::parse_kick;
use shaddock_protocol::{HEARTBEAT, MessageType, PackageType, decode_message, decode_packages};
use tokio::sync::mpsc;
use tokio::sync::mpsc::error::TrySendError;
use tokio::time::{Instant, sleep_until};

/// The server's push route for a fresh resume token (`sys.resume`).
const RESUME_TOKEN_ROUTE: &str = "sys.resume";

/// Slack on the heartbeat deadline, as in the browser client.
const SLACK: Duration = Duration::from_millis(100);

pub(super) async fn run(
    mut ws: Conn,
    shared: Arc<Shared>,
    mut commands: mpsc::Receiver<Command>,
    heartbeat: Option<Duration>,
    send_heartbeats: bool,
) {
    let mut next_beat: Option<Instant> = None;
    let mut deadline: Option<Instant> = None;
    let mut kicked: Option<String> = None;
    // One timer for the connection. A fresh `sleep_until` per loop turn
    // would register and cancel a timer-wheel entry for every push received
    // (each one moves the deadline). So the timer only ever moves earlier;
    // when it fires before the real wake-up time the branch below finds
    // nothing due and the next turn re-arms it.
    let timer = sleep_until(Instant::now());
    tokio::pin!(timer);
    let mut armed: Option<Instant> = None;
    let reason = loop {
        let wake = match (next_beat, deadline) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        if let Some(w) = wake.filter(|w| armed.is_none_or(|a| *w < a)) {
            timer.as_mut().reset(w);
            armed = Some(w);
        }
        tokio::select! {
            command = commands.recv() => {
                let mut frame = match command {
                    Some(Command::Frame(f)) => f,
                    Some(Command::Close) | None => break CloseReason::Closed,
                    Some(Command::Abort) => return abort(ws, &shared),
                };
                // Batch: feed everything already queued, then flush once.
                let mut close = None;
                let result = async {
                    loop {
                        ws.feed(frame).await?;
                        match commands.try_recv() {
                            Ok(Command::Frame(f)) => frame = f,
                            Ok(c @ (Command::Close | Command::Abort)) => { close = Some(c); break; }
                            Err(_) => break,
                        }
                    }
                    ws.flush().await
                }.await;
                if let Err(e) = result {
                    break CloseReason::Error(format!("write failed: {e}"));
                }
                match close {
                    Some(Command::Abort) => return abort(ws, &shared),
                    Some(_) => break CloseReason::Closed,
                    None => {}
                }
            }
            _ = &mut timer, if wake.is_some() => {
                armed = None;
                let now = Instant::now();
                if deadline.is_some_and(|d| d <= now) {
                    break CloseReason::HeartbeatTimeout;
                }
                if next_beat.is_some_and(|t| t <= now) {
                    next_beat = None;
                    if let Err(e) = ws.send(Bytes::from_static(&HEARTBEAT)).await {
                        break CloseReason::Error(format!("write failed: {e}"));
                    }
                    if let Some(interval) = heartbeat {
                        deadline = Some(now + interval * 2 + SLACK);
                    }
                }
            }
            frame = ws.next() => {
                let data = match frame {
                    Some(Ok(d)) => d,
                    None => {
                        break match kicked.take() {
                            Some(r) => CloseReason::Kicked(r),
                            None => CloseReason::ServerClosed,
                        };
                    }
                    Some(Err(e)) => {
                        break match kicked.take() {
                            Some(r) => CloseReason::Kicked(r),
                            None => CloseReason::Error(e.to_string()),
                        };
                    }
                };
                // Any package from the server pushes the deadline forward.
                if let (Some(_), Some(interval)) = (deadline, heartbeat) {
                    deadline = Some(Instant::now() + interval * 2 + SLACK);
                }
                let packages = match decode_packages(data) {
                    Ok(p) => p,
                    Err(e) => break CloseReason::Error(format!("bad package from server: {e}")),
                };
                for package in packages {
                    match package.kind {
                        PackageType::Heartbeat => {
                            deadline = None;
                            if let (true, None, Some(interval)) = (send_heartbeats, next_beat, heartbeat) {
                                next_beat = Some(Instant::now() + interval);
                            }
                        }
                        PackageType::Data => deliver(&shared, package.body),
                        PackageType::Kick => kicked = Some(parse_kick(&package.body)),
                        _ => {}
                    }
                }
                if kicked.is_some() {
                    // Pomelo closes right after the KICK; stop reading now so
                    // the reason is reported even if the close frame is lost.
                    break CloseReason::Kicked(kicked.take().unwrap_or_default());
                }
            }
        }
    };
    let _ = tokio::time::timeout(Duration::from_millis(500), ws.close()).await;
    lock(&shared.pending).clear();
    shared.closed.send_replace(Some(reason));
}

/// Ends the connection without a close handshake: the socket just goes
/// away, as in a network loss ([`Client::abort`](super::Client::abort)).
fn abort(ws: Conn, shared: &Shared) {
    drop(ws);
    lock(&shared.pending).clear();
    shared
        .closed
        .send_replace(Some(CloseReason::Error("aborted".into())));
}

fn deliver(shared: &Shared, body: Bytes) {
    let msg = match decode_message(body, shared.dict.as_ref()) {
        Ok(m) => m,
        Err(e) => {
            tracing::warn!(error = %e, "undecodable message from server dropped");
            return;
        }
    };
    match msg.kind {
        MessageType::Response => {
            if let Some(tx) = lock(&shared.pending).remove(&msg.id) {
                let _ = tx.send(msg.body);
            }
        }
        MessageType::Push => {
            let body = match &shared.protos {
                None => msg.body,
                Some(protos) => match protos.server_body_to_json(&msg.route, msg.body) {
                    Ok(json) => json,
                    Err(e) => {
                        tracing::warn!(error = %e, "push with an undecodable protobuf body dropped");
                        return;
                    }
                },
            };
            // A fresh session resume token (the session's uid, settings
            // or keys changed): kept for `Client::resume`, not shown.
            if msg.route == RESUME_TOKEN_ROUTE {
                match serde_json::from_slice::<serde_json::Value>(&body) {
                    Ok(v) => match v.get("token").and_then(|t| t.as_str()) {
                        Some(token) => *lock(&shared.resume_token) = Some(token.to_owned()),
                        None => tracing::warn!("resume token push without a token; ignored"),
                    },
                    Err(e) => tracing::warn!(error = %e, "resume token push is not JSON; ignored"),
                }
                return;
            }
            let push = Push {
                route: msg.route,
                body,
            };
            let subscribed = lock(&shared.subscriptions).get(&push.route).cloned();
            let target = match &subscribed {
                Some(PushRoute::Call(handler)) => return handler(push),
                Some(PushRoute::Queue(tx)) => tx,
                None => &shared.pushes,
            };
            match target.try_send(push) {
                Ok(()) => {}
                Err(TrySendError::Full(p)) => {
                    tracing::warn!(route = %p.route, "push buffer full; push dropped");
                }
                Err(TrySendError::Closed(_)) => {}
            }
        }
        _ => {}
    }
}
