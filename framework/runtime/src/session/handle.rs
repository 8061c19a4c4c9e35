//! `Session`: the handler-facing session, the same type on both sides.
//!
//! On a frontend it wraps the [`LiveSession`] of the connection; on a backend
//! it is rebuilt from the [`SessionSnapshot`] that came with a forwarded
//! request and its `bind` / `push_settings` / `kick` travel back to the
//! owning frontend through [`RemoteSessionOps`]. Like Pomelo's
//! `FrontendSession` / `BackendSession`, `get`/`set` work on a per-request
//! copy of the settings; `push_settings` copies keys into the real session.

use std::sync::{Arc, Mutex};

use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use super::{ClosedListener, LiveSession, SessionError, SessionService, lock};
use crate::session::{RemoteSessionOps, SessionSnapshot};

/// Cheap to clone; clones share the same settings copy.
#[derive(Clone)]
pub struct Session {
    inner: Arc<Inner>,
}

struct Inner {
    backing: Backing,
    sid: u64,
    frontend_id: String,
    copy: Mutex<Copy>,
}

struct Copy {
    uid: Option<String>,
    settings: Map<String, Value>,
}

enum Backing {
    Local {
        live: Arc<LiveSession>,
        service: SessionService,
    },
    Remote {
        ops: Arc<dyn RemoteSessionOps>,
    },
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("sid", &self.inner.sid)
            .field("frontend_id", &self.inner.frontend_id)
            .field("uid", &self.uid())
            .field("local", &self.is_local())
            .finish()
    }
}

impl Session {
    /// A frontend session over a live connection.
    pub fn local(live: Arc<LiveSession>, service: SessionService) -> Self {
        let snapshot = live.snapshot();
        Self {
            inner: Arc::new(Inner {
                sid: snapshot.sid,
                frontend_id: snapshot.frontend_id,
                copy: Mutex::new(Copy {
                    uid: snapshot.uid,
                    settings: snapshot.settings,
                }),
                backing: Backing::Local { live, service },
            }),
        }
    }

    /// A backend session: the snapshot of a forwarded request plus the
    /// cluster operations that reach the owning frontend.
    pub fn remote(snapshot: SessionSnapshot, ops: Arc<dyn RemoteSessionOps>) -> Self {
        Self {
            inner: Arc::new(Inner {
                sid: snapshot.sid,
                frontend_id: snapshot.frontend_id,
                copy: Mutex::new(Copy {
                    uid: snapshot.uid,
                    settings: snapshot.settings,
                }),
                backing: Backing::Remote { ops },
            }),
        }
    }

    /// Session id (unique within its frontend).
    pub fn id(&self) -> u64 {
        self.inner.sid
    }

    /// Id of the frontend server holding the connection.
    pub fn frontend_id(&self) -> &str {
        &self.inner.frontend_id
    }

    /// Whether this session wraps a live connection on this process.
    pub fn is_local(&self) -> bool {
        matches!(self.inner.backing, Backing::Local { .. })
    }

    /// The bound uid. On a frontend this is the live value.
    pub fn uid(&self) -> Option<String> {
        match &self.inner.backing {
            Backing::Local { live, .. } => live.uid(),
            Backing::Remote { .. } => lock(&self.inner.copy).uid.clone(),
        }
    }

    /// A setting from this request's copy, deserialized; `None` when absent
    /// or of another type.
    pub fn get<T: DeserializeOwned>(&self, key: &str) -> Option<T> {
        let value = lock(&self.inner.copy).settings.get(key).cloned()?;
        serde_json::from_value(value).ok()
    }

    /// A setting as raw JSON.
    pub fn get_value(&self, key: &str) -> Option<Value> {
        lock(&self.inner.copy).settings.get(key).cloned()
    }

    /// Sets a setting in this request's copy (use [`push_settings`] to make
    /// it stick on the frontend session). A value that cannot be represented
    /// as JSON is stored as `null`.
    ///
    /// [`push_settings`]: Self::push_settings
    pub fn set(&self, key: &str, value: impl Serialize) {
        let value = serde_json::to_value(value).unwrap_or(Value::Null);
        lock(&self.inner.copy)
            .settings
            .insert(key.to_owned(), value);
    }

    /// Removes a setting from this request's copy.
    pub fn remove(&self, key: &str) {
        lock(&self.inner.copy).settings.remove(key);
    }

    /// Binds `uid` to the connection (error if another uid is bound).
    pub async fn bind(&self, uid: &str) -> Result<(), SessionError> {
        match &self.inner.backing {
            Backing::Local { service, .. } => {
                service.bind_claimed(self.inner.sid, uid, true).await?
            }
            Backing::Remote { ops } => {
                ops.bind(&self.inner.frontend_id, self.inner.sid, uid)
                    .await?
            }
        }
        lock(&self.inner.copy).uid = Some(uid.to_owned());
        Ok(())
    }

    /// Unbinds the current uid (no-op when unbound).
    pub async fn unbind(&self) -> Result<(), SessionError> {
        let Some(uid) = self.uid() else {
            return Ok(());
        };
        match &self.inner.backing {
            Backing::Local { service, .. } => service.unbind(self.inner.sid, &uid)?,
            Backing::Remote { ops } => {
                ops.unbind(&self.inner.frontend_id, self.inner.sid, &uid)
                    .await?
            }
        }
        lock(&self.inner.copy).uid = None;
        Ok(())
    }

    /// Copies the given keys of this request's settings into the frontend
    /// session (Pomelo's `session.push(key)`); keys not set are skipped.
    pub async fn push_settings(&self, keys: &[&str]) -> Result<(), SessionError> {
        let settings: Map<String, Value> = {
            let copy = lock(&self.inner.copy);
            keys.iter()
                .filter_map(|k| copy.settings.get(*k).map(|v| ((*k).to_owned(), v.clone())))
                .collect()
        };
        self.push_map(settings).await
    }

    /// Copies every setting of this request's copy (Pomelo's `pushAll`).
    pub async fn push_all_settings(&self) -> Result<(), SessionError> {
        let settings = lock(&self.inner.copy).settings.clone();
        self.push_map(settings).await
    }

    async fn push_map(&self, settings: Map<String, Value>) -> Result<(), SessionError> {
        match &self.inner.backing {
            Backing::Local { service, .. } => service.set_settings(self.inner.sid, settings),
            Backing::Remote { ops } => Ok(ops
                .push_settings(&self.inner.frontend_id, self.inner.sid, settings)
                .await?),
        }
    }

    /// Kicks the connection: KICK `{"reason":..}`, then close.
    pub async fn kick(&self, reason: &str) -> Result<(), SessionError> {
        match &self.inner.backing {
            Backing::Local { live, .. } => {
                live.kick(reason);
                Ok(())
            }
            Backing::Remote { ops } => Ok(ops
                .kick_by_sid(&self.inner.frontend_id, self.inner.sid, reason)
                .await?),
        }
    }

    /// Runs `listener` once when the connection ends (frontend only: a
    /// backend cannot observe the socket; use a remote call from the
    /// frontend instead, as chatofpomelo does).
    pub fn on_closed<F>(&self, listener: F) -> Result<(), SessionError>
    where
        F: FnOnce(SessionSnapshot, String) + Send + 'static,
    {
        match &self.inner.backing {
            Backing::Local { live, .. } => {
                live.on_closed(Box::new(listener) as ClosedListener);
                Ok(())
            }
            Backing::Remote { .. } => Err(SessionError::FrontendOnly("Session::on_closed")),
        }
    }

    /// Records that this session belongs to `key` of `server_type` — the
    /// room it joined on a chat server, say (frontend only; the uid must be
    /// bound). The frontend is the source of truth for such memberships:
    /// when a backend restarts, or keys move to another backend because the
    /// server list changed, the key's owner asks every frontend for its
    /// registrations and rebuilds its state from them (see
    /// `cluster::shard`). Register *before* the call that joins the key, so
    /// an owner that rebuilds meanwhile still learns of it. Forgotten when
    /// the connection closes.
    pub fn register_key(&self, server_type: &str, key: &str) -> Result<(), SessionError> {
        let Backing::Local { service, .. } = &self.inner.backing else {
            return Err(SessionError::FrontendOnly("Session::register_key"));
        };
        let uid = self.uid().ok_or_else(|| SessionError::NotBound {
            sid: self.inner.sid,
            uid: String::new(),
        })?;
        service.register_key(self.inner.sid, server_type, key, &uid)
    }

    /// How long this session is kept when its connection drops (and held
    /// by the owners of its keys when its frontend is lost), in ms: the
    /// frontend's `resume-window-ms` when the client asked for resume, else
    /// 0. A backend that adds the user to a sharded channel passes it on
    /// (`ChannelService::add_member_with`). Always 0 on a backend.
    pub fn resume_window_ms(&self) -> u32 {
        match &self.inner.backing {
            Backing::Local { live, service } => service.resume_window_ms(live),
            Backing::Remote { .. } => 0,
        }
    }

    /// Forgets this session's key of `server_type` (frontend only).
    pub fn unregister_key(&self, server_type: &str) -> Result<(), SessionError> {
        let Backing::Local { service, .. } = &self.inner.backing else {
            return Err(SessionError::FrontendOnly("Session::unregister_key"));
        };
        service.unregister_key(self.inner.sid, server_type);
        Ok(())
    }

    /// Runs the future `listener` returns once the connection ends, like
    /// [`on_closed`](Self::on_closed), for async close work such as telling
    /// a backend the user left. The framework tracks it: a graceful stop of
    /// the frontend waits (up to its shutdown grace) for every such future
    /// before the process exits, so no leave call is cut off.
    pub fn on_closed_async<F, Fut>(&self, listener: F) -> Result<(), SessionError>
    where
        F: FnOnce(SessionSnapshot, String) -> Fut + Send + 'static,
        Fut: std::future::Future<Output = ()> + Send + 'static,
    {
        let Backing::Local { service, .. } = &self.inner.backing else {
            return Err(SessionError::FrontendOnly("Session::on_closed_async"));
        };
        let closing = service.closing().clone();
        self.on_closed(move |session, reason| {
            let guard = closing.enter();
            tokio::spawn(async move {
                listener(session, reason).await;
                drop(guard);
            });
        })
    }

    /// The session as it would travel with a forwarded request: sid, frontend
    /// id, uid and this request's settings copy.
    pub fn snapshot(&self) -> SessionSnapshot {
        let uid = self.uid();
        let copy = lock(&self.inner.copy);
        SessionSnapshot {
            sid: self.inner.sid,
            frontend_id: self.inner.frontend_id.clone(),
            uid,
            settings: copy.settings.clone(),
        }
    }

    /// The `user` object the client sent in its handshake (§4.1; Pomelo
    /// hands it to the app's handshake hook). Frontend only: it does not
    /// travel with forwarded requests, so on a backend this is `None`
    /// (copy what a backend needs into a setting with `set` +
    /// `push_settings`).
    pub fn handshake_user(&self) -> Option<Value> {
        self.live().and_then(|live| live.handshake_user())
    }

    /// The live connection, on a frontend.
    pub fn live(&self) -> Option<&Arc<LiveSession>> {
        match &self.inner.backing {
            Backing::Local { live, .. } => Some(live),
            Backing::Remote { .. } => None,
        }
    }
}
