//! Session resume after a crash, the frontend's side (`docs/scaling.md`,
//! "Resume after a connector crash").
//!
//! A client reconnects — to the restarted connector, or to another one the
//! gate gave it — with the resume token of a session whose frontend is
//! gone. The token is signed with the cluster's key and carries the
//! session's uid, settings and keyed registrations, so this frontend can
//! rebuild it, in order:
//!
//! 1. **Is the old frontend lost?** A token of a previous run of this very
//!    server is (its process changed). Another frontend is lost when it is
//!    out of the server list, refuses the connection, or answers as another
//!    process; one that is slow (no answer within [`INCARNATION_TIMEOUT`])
//!    is not taken for lost. One that answers as the same process
//!    still holds the session (parked, or connected): the client must go
//!    back there, so this frontend refuses.
//! 2. **Rebuild** the session here: bound to its uid, its settings and keys,
//!    queueing pushes until the connection's handshake ACK adopts it.
//! 3. **Reattach** each key (a session in none is not restored: the owners
//!    are what bound a token's use — a member is handed over once, and only
//!    while it is held or its old frontend no longer lists it): its owner
//!    moved the member to a *held* state
//!    when the frontend was lost, buffering its pushes; it now sends them
//!    here, in order, and records the member here. Any key that fails
//!    undoes the whole restore and the client starts a new session (it is
//!    then a new user for the room, as without resume).
//! 4. The app's [`on_session_restored`](super::AppBuilder::on_session_restored)
//!    hook puts back what is code rather than state: its `closed`
//!    listeners (the chat's "leave the room when the user goes"). It runs
//!    before step 3, so a restore that fails part-way closes the session
//!    like any other and leaves no member behind here.

use std::sync::Arc;
use std::time::Duration;

use super::App;
use crate::cluster::proto::{self, cluster_client::ClusterClient};
use crate::cluster::shard::owner_of;
use crate::session::{LiveSession, Resume, TokenClaims};

/// How long the old frontend may take to say which process it is.
pub const INCARNATION_TIMEOUT: Duration = Duration::from_millis(500);

/// How long one key's owner may take to hand back its held member: more
/// than it may wait for a reconciliation (`SETTLE_LIMIT`, 2 s) plus its
/// dial retries to this frontend (`REATTACH_DIAL_RETRY`, 1.2 s), so a
/// move the owner completes is not one this side gave up on.
pub const REATTACH_TIMEOUT: Duration = Duration::from_secs(4);

/// Rebuilds the session `claims` describe; `Err` says why not (logged by
/// the caller, and the client gets `resumed: false`).
pub(crate) async fn restore_session(
    app: &App,
    claims: TokenClaims,
) -> Result<Arc<LiveSession>, String> {
    let state = claims.state.as_ref().ok_or(
        "the token carries no session state (it was too big): it resumes on its own frontend only",
    )?;
    // A token is a bearer credential with no expiry. What bounds its use
    // after a crash is the owners: each hands a member over once, and only
    // while it is held (within its window) or its old frontend no longer
    // lists it — never a member a live session holds. A session in no key
    // has no owner to vouch for it, so it does not come back from a lost
    // frontend.
    if state.keys.is_empty() {
        return Err("the session was in no keyed channel: nothing was held for it".into());
    }
    if !app.inner.clustered {
        return Err(
            "this server is not in a cluster: it restores no other server's sessions".into(),
        );
    }
    check_lost(app, &claims).await?;
    let sessions = app.sessions();
    // The uid directory (when the app keeps one) still names the lost
    // frontend: the claim finds it gone and moves the uid here; a live
    // holder elsewhere refuses it (a stale token never kicks anyone).
    let live = sessions.restore(state, Resume::nonce()).await?;
    let uid = state.uid.clone().unwrap_or_default();
    // The app's listeners first: if a key below fails, the session closes
    // like any other (the chat's listener leaves the rooms it was moved
    // into), so no member is left behind at this frontend.
    if let (Some(hook), Some(session)) = (&app.inner.restored, sessions.get(live.sid())) {
        hook(app.clone(), session);
    }
    let mut flushed = 0;
    for (server_type, key) in &state.keys {
        match reattach(app, server_type, key, &uid, &claims.frontend_id).await {
            Ok(n) => flushed += n,
            Err(why) => {
                sessions.discard(&live, "resume from a lost frontend failed");
                return Err(format!("{server_type} key `{key}`: {why}"));
            }
        }
    }
    tracing::info!(
        uid = %uid,
        from = %claims.frontend_id,
        keys = state.keys.len(),
        flushed,
        "session restored from a lost frontend"
    );
    Ok(live)
}

/// `Ok` when the frontend that issued `claims` is lost (see the module doc).
async fn check_lost(app: &App, claims: &TokenClaims) -> Result<(), String> {
    let frontend = &claims.frontend_id;
    if frontend == app.server_id() {
        // Not this process's token (the caller checked): a previous run's.
        return Ok(());
    }
    let Ok(channel) = app.cluster().pool().channel(frontend) else {
        return Ok(()); // out of the list
    };
    let mut client = ClusterClient::new(channel);
    let call = client.incarnation(proto::IncarnationRequest {});
    match tokio::time::timeout(INCARNATION_TIMEOUT, call).await {
        Ok(Ok(reply)) if reply.get_ref().incarnation == claims.incarnation => Err(format!(
            "{frontend} is up and holds the session: reconnect there"
        )),
        // Another process under that id: the one that held it is gone.
        Ok(Ok(_)) => Ok(()),
        // Nothing listens there (connection refused): gone.
        Ok(Err(status)) if status.code() == tonic::Code::Unavailable => Ok(()),
        Ok(Err(status)) => Err(format!(
            "{frontend} could not say whether it holds the session ({}): reconnect there",
            status.message()
        )),
        // Slow or frozen is not gone: it may still hold the session.
        Err(_) => Err(format!(
            "{frontend} did not answer within {INCARNATION_TIMEOUT:?}: reconnect there or retry"
        )),
    }
}

/// Asks the owner of `key` for the member of `uid` held since `from` was
/// lost; returns how many held pushes it sent here first.
async fn reattach(
    app: &App,
    server_type: &str,
    key: &str,
    uid: &str,
    from: &str,
) -> Result<u32, String> {
    let cluster = app.cluster();
    let list = cluster.servers().snapshot();
    let candidates = list.of_type(server_type);
    let owner = owner_of(cluster.routers(), server_type, key, candidates)
        .map(|i| candidates[i].id.clone())
        .ok_or_else(|| format!("no {server_type} server is up to own it"))?;
    let channel = cluster.pool().channel(&owner).map_err(|e| e.to_string())?;
    let req = proto::ReattachRequest {
        server_type: server_type.to_owned(),
        key: key.to_owned(),
        uid: uid.to_owned(),
        from_frontend: from.to_owned(),
        to_frontend: app.server_id().to_owned(),
    };
    let mut client = ClusterClient::new(channel);
    let call = client.reattach(req);
    match tokio::time::timeout(REATTACH_TIMEOUT, call).await {
        Ok(Ok(reply)) => {
            let reply = reply.into_inner();
            if reply.reattached {
                Ok(reply.flushed)
            } else {
                Err(format!("{owner}: {}", reply.reason))
            }
        }
        Ok(Err(status)) => Err(format!("{owner}: {}", status.message())),
        Err(_) => Err(format!(
            "{owner} did not answer within {REATTACH_TIMEOUT:?}"
        )),
    }
}
