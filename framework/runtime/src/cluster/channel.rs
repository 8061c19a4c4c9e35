//! Backend channels (Pomelo's `channelService`): named groups of users to
//! push to, each user recorded with the frontend that holds its connection.
//!
//! A push serializes the body **once**, groups receivers by frontend, and
//! sends one message per frontend over that frontend's push stream (all
//! frontends concurrently). Member lists are copied out of the lock before
//! any `.await`, so a slow frontend never blocks `add`/`leave`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use futures_util::future::join_all;
use serde::Serialize;

use crate::cluster::push::PushClient;
use crate::error::ClusterError;

/// Result of a push: uids that were not reached (no session on their
/// frontend, or the frontend failed — the error is logged).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct PushReport {
    pub failed: Vec<String>,
}

/// Serializes a push body once, as JSON.
pub fn encode_body(body: &impl Serialize) -> Result<Bytes, ClusterError> {
    serde_json::to_vec(body)
        .map(Bytes::from)
        .map_err(|e| ClusterError::Remote {
            server: "local".into(),
            reason: format!("push body is not serializable to JSON: {e}"),
        })
}

/// Members grouped by frontend, both levels in insertion order.
#[derive(Debug, Default)]
struct Members {
    groups: Vec<(String, Vec<String>)>,
    by_uid: HashMap<String, String>,
}

/// One channel.
pub struct Channel {
    name: String,
    members: Mutex<Members>,
    push: Arc<PushClient>,
}

impl Channel {
    pub fn name(&self) -> &str {
        &self.name
    }

    fn members(&self) -> std::sync::MutexGuard<'_, Members> {
        self.members.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Adds `uid`, connected to `frontend_id`. Returns false if the uid is
    /// already a member or `frontend_id` is empty.
    pub fn add(&self, uid: &str, frontend_id: &str) -> bool {
        if frontend_id.is_empty() {
            return false;
        }
        let mut m = self.members();
        if m.by_uid.contains_key(uid) {
            return false;
        }
        m.by_uid.insert(uid.to_string(), frontend_id.to_string());
        match m.groups.iter_mut().find(|(f, _)| f == frontend_id) {
            Some((_, uids)) => uids.push(uid.to_string()),
            None => m
                .groups
                .push((frontend_id.to_string(), vec![uid.to_string()])),
        }
        true
    }

    /// Removes `uid` (recorded at `frontend_id`). Returns whether it was there.
    pub fn leave(&self, uid: &str, frontend_id: &str) -> bool {
        let mut m = self.members();
        if m.by_uid.get(uid).map(String::as_str) != Some(frontend_id) {
            return false;
        }
        m.by_uid.remove(uid);
        if let Some(pos) = m.groups.iter().position(|(f, _)| f == frontend_id) {
            let uids = &mut m.groups[pos].1;
            uids.retain(|u| u != uid);
            if uids.is_empty() {
                m.groups.remove(pos);
            }
        }
        true
    }

    /// Every uid, grouped by frontend (frontends in first-join order, uids in
    /// join order) — the order Pomelo's `getMembers` returns.
    pub fn members_list(&self) -> Vec<String> {
        self.members()
            .groups
            .iter()
            .flat_map(|(_, uids)| uids.iter().cloned())
            .collect()
    }

    /// The uids recorded at `frontend_id`.
    pub fn members_at(&self, frontend_id: &str) -> Vec<String> {
        self.members()
            .groups
            .iter()
            .find(|(f, _)| f == frontend_id)
            .map(|(_, uids)| uids.clone())
            .unwrap_or_default()
    }

    /// The frontends that hold members of this channel.
    pub fn frontends(&self) -> Vec<String> {
        self.members()
            .groups
            .iter()
            .map(|(f, _)| f.clone())
            .collect()
    }

    /// The frontend of `uid`, if it is a member.
    pub fn member(&self, uid: &str) -> Option<String> {
        self.members().by_uid.get(uid).cloned()
    }

    pub fn user_amount(&self) -> usize {
        self.members().by_uid.len()
    }

    /// Pushes to every member: one message per frontend.
    pub async fn push(
        &self,
        route: &str,
        body: &impl Serialize,
    ) -> Result<PushReport, ClusterError> {
        let body = encode_body(body)?;
        Ok(self.push_bytes(route, body).await)
    }

    /// Pushes to every member but `uid` (a newcomer is told about the room
    /// in its reply, not by its own `onAdd`).
    pub async fn push_except(
        &self,
        route: &str,
        body: &impl Serialize,
        uid: &str,
    ) -> Result<PushReport, ClusterError> {
        let body = encode_body(body)?;
        let mut groups = self.members().groups.clone();
        for (_, uids) in &mut groups {
            uids.retain(|u| u != uid);
        }
        groups.retain(|(_, uids)| !uids.is_empty());
        Ok(push_groups(&self.push, route, body, groups).await)
    }

    /// Like [`Channel::push`] with a body already serialized.
    pub async fn push_bytes(&self, route: &str, body: Bytes) -> PushReport {
        let groups = self.members().groups.clone();
        push_groups(&self.push, route, body, groups).await
    }
}

/// Sends one push per frontend group, concurrently.
async fn push_groups(
    push: &PushClient,
    route: &str,
    body: Bytes,
    groups: Vec<(String, Vec<String>)>,
) -> PushReport {
    let sends = groups.into_iter().map(|(frontend, uids)| {
        let body = body.clone();
        async move {
            match push.push_to_uids(&frontend, route, body, uids.clone()).await {
                Ok(failed) => failed,
                Err(e) => {
                    tracing::warn!(frontend = %frontend, route, error = %e, receivers = uids.len(), "push failed");
                    uids
                }
            }
        }
    });
    PushReport {
        failed: join_all(sends).await.into_iter().flatten().collect(),
    }
}

/// Whether this server owns a channel name (sharded channels, see
/// `cluster::shard`).
pub type OwnerCheck = Arc<dyn Fn(&str) -> bool + Send + Sync>;

/// Called when reconciliation removes a member whose frontend no longer
/// has it (the user is gone: a crashed or stopped connector, a missed leave
/// call): the app tells the channel's other members (chat: `onLeave`).
pub type MemberLost = Arc<dyn Fn(Arc<Channel>, String) + Send + Sync>;

/// The channels of one backend server.
pub struct ChannelService {
    push: Arc<PushClient>,
    channels: Mutex<HashMap<String, Arc<Channel>>>,
    owner: Mutex<Option<OwnerCheck>>,
    lost: Mutex<Option<MemberLost>>,
}

impl std::fmt::Debug for Channel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Channel").field("name", &self.name).finish()
    }
}

impl std::fmt::Debug for PushClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PushClient")
    }
}

impl ChannelService {
    pub fn new(push: Arc<PushClient>) -> Self {
        ChannelService {
            push,
            channels: Mutex::new(HashMap::new()),
            owner: Mutex::new(None),
            lost: Mutex::new(None),
        }
    }

    /// Makes channels sharded: `owns(name)` says whether this server owns
    /// channel `name` under the current server list.
    pub fn set_owner_check(&self, owns: OwnerCheck) {
        *self.owner.lock().unwrap_or_else(|p| p.into_inner()) = Some(owns);
    }

    /// Whether this server owns channel `name` (always, when channels are
    /// not sharded). A join for a name it does not own went to a stale
    /// owner: refuse it and let the caller retry.
    pub fn owns(&self, name: &str) -> bool {
        let check = self.owner.lock().unwrap_or_else(|p| p.into_inner()).clone();
        check.is_none_or(|owns| owns(name))
    }

    /// Sets the hook run for each member reconciliation removes.
    pub fn on_member_lost(&self, hook: MemberLost) {
        *self.lost.lock().unwrap_or_else(|p| p.into_inner()) = Some(hook);
    }

    /// Runs the member-lost hook (if any) for each removed member.
    pub fn report_lost(&self, lost: Vec<(Arc<Channel>, String)>) {
        let hook = self.lost.lock().unwrap_or_else(|p| p.into_inner()).clone();
        if let Some(hook) = hook {
            for (channel, uid) in lost {
                hook(channel, uid);
            }
        }
    }

    /// Every channel, in no particular order.
    pub fn all(&self) -> Vec<Arc<Channel>> {
        self.channels().values().cloned().collect()
    }

    /// Destroys the channels this server does not own (their keys moved to
    /// another server, which rebuilds them); returns their names.
    pub fn drop_unowned(&self) -> Vec<String> {
        let mut channels = self.channels();
        let gone: Vec<String> = channels
            .keys()
            .filter(|name| !self.owns(name))
            .cloned()
            .collect();
        for name in &gone {
            channels.remove(name);
        }
        gone
    }

    /// Makes the members recorded at `frontend_id`, over every channel this
    /// server owns, exactly `wanted` (key → uids): adds the missing ones
    /// (quietly: for the room they were there all along) and removes the
    /// others, which it returns (they left without a leave call reaching
    /// us). Keys this server does not own are ignored.
    pub fn replace_frontend_members(
        &self,
        frontend_id: &str,
        wanted: &HashMap<String, Vec<String>>,
    ) -> Vec<(Arc<Channel>, String)> {
        let mut lost = Vec::new();
        for channel in self.all() {
            if !self.owns(channel.name()) {
                continue;
            }
            let want = wanted.get(channel.name());
            for uid in channel.members_at(frontend_id) {
                if !want.is_some_and(|w| w.contains(&uid)) && channel.leave(&uid, frontend_id) {
                    lost.push((channel.clone(), uid));
                }
            }
        }
        for (key, uids) in wanted {
            if !self.owns(key) {
                continue;
            }
            for uid in uids {
                self.add_member(key, uid, frontend_id);
            }
        }
        lost
    }

    /// Removes every member recorded at a frontend not in `frontends` (it
    /// left the cluster); returns them.
    pub fn remove_frontends_except(&self, frontends: &[String]) -> Vec<(Arc<Channel>, String)> {
        let mut lost = Vec::new();
        for channel in self.all() {
            for frontend in channel.frontends() {
                if frontends.contains(&frontend) {
                    continue;
                }
                for uid in channel.members_at(&frontend) {
                    if channel.leave(&uid, &frontend) {
                        lost.push((channel.clone(), uid));
                    }
                }
            }
        }
        lost
    }

    fn channels(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<Channel>>> {
        self.channels.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Creates channel `name`, or returns the existing one.
    pub fn create(&self, name: &str) -> Arc<Channel> {
        self.channels()
            .entry(name.to_string())
            .or_insert_with(|| self.new_channel(name))
            .clone()
    }

    fn new_channel(&self, name: &str) -> Arc<Channel> {
        Arc::new(Channel {
            name: name.to_string(),
            members: Mutex::new(Members::default()),
            push: self.push.clone(),
        })
    }

    /// Channel `name`; with `create`, made if absent (Pomelo's `getChannel`).
    pub fn get(&self, name: &str, create: bool) -> Option<Arc<Channel>> {
        if create {
            return Some(self.create(name));
        }
        self.channels().get(name).cloned()
    }

    /// Removes channel `name`. Returns whether it existed.
    pub fn destroy(&self, name: &str) -> bool {
        self.channels().remove(name).is_some()
    }

    /// Adds `uid` (at `frontend_id`) to channel `name`, creating the channel
    /// if needed, under the same lock [`destroy_if_empty`](Self::destroy_if_empty)
    /// takes: a join racing the last member's leave either lands in the
    /// channel that stays or in a fresh one, never in a destroyed one
    /// (`get(.., true)` then `add` could). Returns the channel and whether
    /// the uid was added (false: already a member, or no frontend).
    pub fn add_member(&self, name: &str, uid: &str, frontend_id: &str) -> (Arc<Channel>, bool) {
        let mut channels = self.channels();
        let channel = channels
            .entry(name.to_string())
            .or_insert_with(|| self.new_channel(name))
            .clone();
        let added = channel.add(uid, frontend_id);
        (channel, added)
    }

    /// Destroys channel `name` if it has no member left, so that a server
    /// whose users come and go through ever new channel names (chat rooms)
    /// does not keep an empty channel per name for ever. Returns whether it
    /// was destroyed.
    pub fn destroy_if_empty(&self, name: &str) -> bool {
        let mut channels = self.channels();
        if channels.get(name).is_some_and(|c| c.user_amount() == 0) {
            channels.remove(name);
            return true;
        }
        false
    }

    /// How many channels this server holds (empty ones included).
    pub fn count(&self) -> usize {
        self.channels().len()
    }

    /// Pushes to the given `(uid, frontend id)` receivers, one message per
    /// frontend (Pomelo's `pushMessageByUids`).
    pub async fn push_by_uids(
        &self,
        route: &str,
        body: &impl Serialize,
        receivers: &[(String, String)],
    ) -> Result<PushReport, ClusterError> {
        let body = encode_body(body)?;
        let mut groups: Vec<(String, Vec<String>)> = Vec::new();
        for (uid, frontend) in receivers {
            match groups.iter_mut().find(|(f, _)| f == frontend) {
                Some((_, uids)) => uids.push(uid.clone()),
                None => groups.push((frontend.clone(), vec![uid.clone()])),
            }
        }
        Ok(push_groups(&self.push, route, body, groups).await)
    }

    /// Pushes to every session (or, with `binded_only`, every bound
    /// session) of every frontend of `frontend_type`. Returns the ids of the
    /// frontends that could not be reached.
    pub async fn broadcast(
        &self,
        frontend_type: &str,
        route: &str,
        body: &impl Serialize,
        binded_only: bool,
    ) -> Result<Vec<String>, ClusterError> {
        let body = encode_body(body)?;
        let frontends = self.push.pool().servers().by_type(frontend_type);
        if frontends.is_empty() {
            return Err(ClusterError::NoServerOfType(frontend_type.to_string()));
        }
        let sends = frontends.iter().map(|f| {
            let body = body.clone();
            async move {
                match self.push.broadcast(&f.id, route, body, binded_only).await {
                    Ok(()) => None,
                    Err(e) => {
                        tracing::warn!(frontend = %f.id, route, error = %e, "broadcast failed");
                        Some(f.id.clone())
                    }
                }
            }
        });
        Ok(join_all(sends).await.into_iter().flatten().collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::{Pool, Servers};

    fn service() -> ChannelService {
        let pool = Arc::new(Pool::new(Servers::new(Vec::new())));
        ChannelService::new(Arc::new(PushClient::new(pool)))
    }

    #[test]
    fn members_are_grouped_by_frontend_in_join_order() {
        let channels = service();
        let ch = channels.create("room");
        assert!(ch.add("a", "f1"));
        assert!(ch.add("c", "f2"));
        assert!(ch.add("b", "f1"));
        assert!(!ch.add("b", "f2"), "a uid is a member once");
        assert!(!ch.add("d", ""), "a member needs a frontend");
        assert_eq!(ch.members_list(), ["a", "b", "c"]);
        assert_eq!(ch.member("c").as_deref(), Some("f2"));
        assert_eq!(ch.user_amount(), 3);

        assert!(!ch.leave("a", "f2"), "wrong frontend");
        assert!(ch.leave("c", "f2"));
        assert!(!ch.leave("c", "f2"));
        assert_eq!(ch.members_list(), ["a", "b"]);
        assert!(ch.add("c", "f2"));
        assert_eq!(ch.members_list(), ["a", "b", "c"]);
    }

    #[test]
    fn create_get_destroy() {
        let channels = service();
        assert!(channels.get("x", false).is_none());
        let a = channels.create("x");
        a.add("u", "f");
        let b = channels.get("x", false).unwrap();
        assert_eq!(b.members_list(), ["u"], "the same channel");
        assert!(Arc::ptr_eq(&channels.create("x"), &a));
        assert!(channels.destroy("x"));
        assert!(!channels.destroy("x"));
        assert!(channels.get("x", false).is_none());
        assert_eq!(channels.get("x", true).unwrap().user_amount(), 0);
    }

    #[test]
    fn empty_channels_are_destroyed_and_counted() {
        let channels = service();
        let (a, added) = channels.add_member("x", "u", "f");
        assert!(added);
        assert!(!channels.add_member("x", "u", "f").1, "a member once");
        channels.create("y");
        assert_eq!(channels.count(), 2);
        assert!(!channels.destroy_if_empty("x"), "x has a member");
        assert!(channels.destroy_if_empty("y"));
        assert!(!channels.destroy_if_empty("missing"));
        assert!(a.leave("u", "f"));
        assert!(channels.destroy_if_empty("x"));
        assert_eq!(channels.count(), 0);
        // A join after the destruction makes a fresh channel.
        let (b, _) = channels.add_member("x", "v", "f");
        assert!(!Arc::ptr_eq(&a, &b));
        assert_eq!(channels.get("x", false).unwrap().members_list(), ["v"]);
    }

    #[tokio::test]
    async fn unreachable_frontends_report_their_uids() {
        let channels = service();
        let ch = channels.create("room");
        ch.add("a", "gone-1");
        ch.add("b", "gone-2");
        let report = ch
            .push("onChat", &serde_json::json!({"m": 1}))
            .await
            .unwrap();
        assert_eq!(report.failed, ["a", "b"]);
        let err = channels
            .broadcast("connector", "r", &serde_json::json!({}), false)
            .await
            .unwrap_err();
        assert!(matches!(err, ClusterError::NoServerOfType(_)));
    }
}
