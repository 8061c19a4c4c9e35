//! Admin actions: an operator's command (`shaddock kick`, `drain`,
//! `broadcast`, `close-room`) that the master passes to servers over the
//! membership stream (see [`crate::discovery::master`]).
//!
//! The master does not know what a room is: it sends the action's name and
//! JSON arguments to the servers it selects (by default every server), and
//! each answers "done", "failed" or "not here". The framework runs its own
//! actions, which mean the same in every app:
//!
//! * `kick` `{uid, reason?}` — every session bound to `uid` on this
//!   frontend gets KICK `{reason}` and is closed;
//! * `drain` `{}` — this frontend accepts no new connection (its current
//!   clients stay), and `/readyz` says `draining`. The master also lists it
//!   as draining, so gates skip it ([`Servers::accepting`](crate::discovery::Servers::accepting)).
//!
//! An app registers its own with
//! [`AppBuilder::admin_action`](super::AppBuilder::admin_action) (the chat
//! registers `broadcast` and `close-room`, which are chat concepts), and
//! read-only queries with [`AppBuilder::admin_query`](super::AppBuilder::admin_query)
//! (the chat's `rooms`, which the dashboard polls). An app's action of the
//! same name replaces the framework's.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use serde_json::{Value, json};

use super::App;
use crate::BoxFuture;
use crate::discovery::{ActionOutcome, ActionRunner};

/// An action's result on this server: `Ok(None)` when it does not apply
/// here (not an error), `Ok(Some(what it did))`, or `Err(why it failed)`.
pub type ActionResult = Result<Option<Value>, String>;

/// One registered action.
pub(super) type ActionHandler =
    Arc<dyn Fn(App, Value) -> BoxFuture<'static, ActionResult> + Send + Sync>;

/// The actions a server runs, by name, each with whether it is a
/// read-only query.
#[derive(Default, Clone)]
pub(super) struct AdminActions {
    by_name: HashMap<String, (ActionHandler, bool)>,
}

impl AdminActions {
    pub(super) fn add(&mut self, name: &str, handler: ActionHandler, query: bool) {
        self.by_name.insert(name.to_string(), (handler, query));
    }

    /// Adds the framework's own actions the app did not replace.
    pub(super) fn with_builtins(mut self) -> Self {
        let builtins: [(&str, ActionHandler); 2] = [
            ("kick", Arc::new(|app, args| Box::pin(kick(app, args)))),
            ("drain", Arc::new(|app, _| Box::pin(drain(app)))),
        ];
        for (name, handler) in builtins {
            self.by_name
                .entry(name.to_string())
                .or_insert((handler, false));
        }
        self
    }
}

/// The runner a discovery backend calls (holds the app weakly: the app owns
/// the discovery task, and a strong reference would keep it alive for ever).
pub(super) fn runner(app: &App) -> ActionRunner {
    let weak = Arc::downgrade(&app.inner);
    Arc::new(move |name: String, args: Value, query: bool| {
        let weak = weak.clone();
        Box::pin(async move {
            let Some(inner) = weak.upgrade() else {
                return ActionOutcome::NotHere;
            };
            let app = App { inner };
            let Some((handler, is_query)) = app.inner.actions.by_name.get(&name).cloned() else {
                return ActionOutcome::NotHere;
            };
            if query && !is_query {
                return ActionOutcome::Failed(format!(
                    "`{name}` changes things: it cannot be run as a query"
                ));
            }
            match handler(app, args).await {
                Ok(None) => ActionOutcome::NotHere,
                Ok(Some(done)) => ActionOutcome::Done(done),
                Err(e) => ActionOutcome::Failed(e),
            }
        }) as BoxFuture<'static, ActionOutcome>
    })
}

/// `kick {uid, reason?}` on a frontend.
async fn kick(app: App, args: Value) -> ActionResult {
    if !app.server().frontend {
        return Ok(None);
    }
    let uid = args
        .get("uid")
        .and_then(Value::as_str)
        .filter(|u| !u.is_empty())
        .ok_or("kick needs {\"uid\": \"...\"}")?;
    let reason = args
        .get("reason")
        .and_then(Value::as_str)
        .unwrap_or("kicked by an administrator");
    match app.sessions().kick_by_uid(uid, reason) {
        0 => Ok(None),
        kicked => Ok(Some(json!({ "kicked": kicked }))),
    }
}

/// `drain {}` on a frontend with a client port.
async fn drain(app: App) -> ActionResult {
    if !app.server().frontend || app.server().client_port.is_none() {
        return Ok(None);
    }
    app.inner.draining.store(true, Ordering::SeqCst);
    crate::telemetry::health().set_draining();
    Ok(Some(json!({ "connections": app.sessions().count() })))
}
