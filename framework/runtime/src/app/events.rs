//! Session bind and close events, frontend side and backend side
//! ([`crate::cluster::session_events`]).

use std::sync::Arc;

use super::App;
use crate::cluster::Pool;
use crate::cluster::session_events::{EventKind, SessionEvent, SessionEvents};
use crate::session::{BindHook, LiveSession};

/// A backend's handler of the session events it subscribed to.
pub(super) type SessionEventHook = Arc<dyn Fn(App, SessionEvent) + Send + Sync>;

/// The frontend's bind hook: tells every server of `types` that a session
/// was bound, and (through a closed listener registered then) that it
/// closed.
pub(super) fn bind_hook(pool: Arc<Pool>, types: Vec<String>) -> BindHook {
    let events = SessionEvents::new(pool, types);
    Arc::new(move |live: &Arc<LiveSession>| {
        let Some(uid) = live.uid() else { return };
        let event = |kind, reason: String| SessionEvent {
            kind,
            uid: uid.clone(),
            frontend_id: live.frontend_id().to_string(),
            sid: live.sid(),
            reason,
        };
        events.emit(event(EventKind::Bound, String::new()));
        let closed = event(EventKind::Closed, String::new());
        let events = events.clone();
        live.on_closed(Box::new(move |_snapshot, reason| {
            events.emit(SessionEvent { reason, ..closed });
        }));
    })
}
