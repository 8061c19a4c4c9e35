//! Discovery through etcd: membership for clusters on several hosts.
//!
//! Pitaya's model, on etcd's v3 API (`client`): every server puts its
//! [`Registration`] under `<prefix>/servers/<id>`, attached to a lease of
//! `ttl` seconds that it keeps alive, and watches `<prefix>/servers/`.
//!
//! * **Join**: [`EtcdDiscovery::start`] grants the lease, registers, reads
//!   the whole prefix and publishes it, and only then resolves, so the
//!   server's first list is complete (a restarted frontend's announcement
//!   reaches every backend). etcd unreachable at start → an error: the
//!   server exits non-zero instead of running alone.
//! * **Follow**: watch events (from the revision after the read: nothing
//!   in between is lost) update the list. Every server orders the list the
//!   same way (servers.json order, then id), whatever order events came
//!   in, so hash routers agree everywhere.
//! * **Crash**: a server (or a whole host) that dies stops renewing; etcd
//!   deletes its key when the lease expires, and every watcher drops it
//!   within `ttl` (plus the watch's latency).
//! * **Restart**: a restarted server registers again with a new
//!   [`Registration::generation`], so a restart within the TTL is a new
//!   entry too; its peers log it.
//! * **etcd lost**: servers keep serving with the last list; the
//!   registration and the watch retry with backoff and, when etcd is back,
//!   re-register (a fresh lease if the old one expired), re-read the
//!   prefix and watch again.
//! * **Planned stop**: the lease is revoked first (the key goes at once),
//!   then a backend keeps serving for [`HANDOFF`] while its peers take over
//!   its rooms; a frontend needs no delay (it kicks its users).
//!
//! A process started by the master (`SHADDOCK_MASTER` set) still opens the
//! master's stream, for the master's stop command and `shaddock list`'s
//! figures, but ignores the master's lists: etcd is the membership.

pub mod client;
mod registrar;

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use tokio::task::JoinHandle;

pub use self::client::{EtcdClient, EtcdError};
pub use self::registrar::Registrar;
use super::master::MasterDiscovery;
use super::{Change, Discovery, DiscoveryContext, DiscoveryError};
use crate::BoxFuture;
use crate::config::{EtcdConfig, ServerInfo};

/// Generated types of `proto/etcd.proto` (etcd's own API).
#[allow(clippy::all, missing_docs)]
pub mod proto {
    tonic::include_proto!("etcdserverpb");
}

/// How long a stopping backend keeps serving after it left the list, so
/// its peers rebuild its rooms from the frontends first (the master's
/// planned stop waits as long; see `docs/scaling.md` for the figures).
pub const HANDOFF: Duration = Duration::from_millis(400);
/// First retry delay after etcd became unreachable; doubles up to 5 s.
const RETRY_MIN: Duration = Duration::from_millis(200);
const RETRY_MAX: Duration = Duration::from_secs(5);

/// What a server puts in etcd: what the others need to route to it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Registration {
    /// Id, type, cluster address, client address, frontend flag, ….
    pub server: ServerInfo,
    /// Unique per process start (start time in µs since the epoch), so a
    /// restarted server is a new entry even within the old lease's TTL.
    pub generation: u64,
    /// The host whose supervisor started this process (`shaddock start
    /// --host NAME`), if one did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub supervisor: Option<String>,
    pub pid: u32,
}

impl Registration {
    /// The registration of this process for `server`.
    pub fn of_this_process(server: ServerInfo) -> Self {
        let generation = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_micros() as u64)
            .unwrap_or(0);
        Registration {
            server,
            generation,
            supervisor: std::env::var(SUPERVISOR_VAR).ok().filter(|s| !s.is_empty()),
            pid: std::process::id(),
        }
    }

    fn to_bytes(&self) -> Bytes {
        Bytes::from(serde_json::to_vec(self).unwrap_or_default())
    }

    /// Parses a registration read from etcd.
    pub fn from_bytes(value: &[u8]) -> Result<Self, String> {
        serde_json::from_slice(value).map_err(|e| e.to_string())
    }
}

/// Set by a per-host supervisor on the servers it starts: its host name.
pub const SUPERVISOR_VAR: &str = "SHADDOCK_SUPERVISOR";

/// Membership through etcd (see the module docs).
#[derive(Debug, Clone)]
pub struct EtcdDiscovery {
    config: EtcdConfig,
    /// The master's stream, for its stop command and figures only.
    agent: Option<MasterDiscovery>,
}

impl EtcdDiscovery {
    pub fn new(config: EtcdConfig) -> Self {
        EtcdDiscovery {
            config,
            agent: None,
        }
    }

    /// Also follows the master that started this process, for its stop
    /// command and `list` figures (its server lists are ignored).
    pub fn with_agent(mut self, agent: Option<MasterDiscovery>) -> Self {
        self.agent = agent.map(MasterDiscovery::commands_only);
        self
    }
}

impl Discovery for EtcdDiscovery {
    fn name(&self) -> &str {
        "etcd"
    }

    fn start(
        &self,
        ctx: DiscoveryContext,
    ) -> BoxFuture<'_, Result<JoinHandle<()>, DiscoveryError>> {
        Box::pin(async move {
            let cfg = self.config.clone();
            let fail = |reason: String| DiscoveryError {
                backend: "etcd".into(),
                reason,
            };
            let client = EtcdClient::connect(&cfg.endpoints).await.map_err(|e| {
                fail(format!(
                    "cannot reach etcd at {} ({e}); start etcd, or fix `etcd.endpoints` in \
                     config/master.json (or {})",
                    cfg.endpoints.join(", "),
                    crate::config::ETCD_ENDPOINTS_VAR
                ))
            })?;
            let me = Registration::of_this_process(ctx.me.clone());
            let registrar = Registrar::register(
                client.clone(),
                cfg.endpoints.clone(),
                cfg.server_key(&me.server.id),
                me.to_bytes(),
                cfg.ttl,
            )
            .await
            .map_err(|e| fail(format!("cannot register {} in etcd: {e}", me.server.id)))?;
            let mut view = View::new(&ctx);
            let revision = view
                .read_all(&client, &cfg)
                .await
                .map_err(|e| fail(format!("cannot read the server list from etcd: {e}")))?;
            view.publish(&ctx);
            tracing::info!(
                server = %ctx.me.id,
                etcd = %client.endpoint,
                servers = view.members.len(),
                ttl_secs = cfg.ttl.as_secs(),
                "registered in etcd"
            );
            let agent = match &self.agent {
                Some(agent) => Some(agent.start(ctx.clone()).await?),
                None => None,
            };
            Ok(tokio::spawn(async move {
                let frontend = ctx.me.frontend;
                let stop = ctx.stop.clone();
                tokio::select! {
                    _ = follow(cfg, client, revision, view, ctx) => {}
                    _ = stop.cancelled() => {}
                }
                registrar.leave().await;
                if !frontend {
                    tokio::time::sleep(HANDOFF).await;
                }
                if let Some(agent) = agent {
                    agent.abort();
                }
            }))
        })
    }
}

/// What this server knows of the cluster, keyed by id.
struct View {
    me: ServerInfo,
    members: BTreeMap<String, Registration>,
    /// Position of each id in servers.json, for a stable order.
    order: HashMap<String, usize>,
}

impl View {
    fn new(ctx: &DiscoveryContext) -> Self {
        let order = ctx
            .servers
            .snapshot()
            .all()
            .iter()
            .enumerate()
            .map(|(i, s)| (s.id.clone(), i))
            .collect();
        View {
            me: ctx.me.clone(),
            members: BTreeMap::new(),
            order,
        }
    }

    /// Replaces the view with the whole prefix; returns the read's revision.
    async fn read_all(&mut self, client: &EtcdClient, cfg: &EtcdConfig) -> Result<i64, EtcdError> {
        let prefix = cfg.servers_prefix();
        let (entries, revision) = client.get_prefix(&prefix).await?;
        self.members.clear();
        for entry in entries {
            self.put(&prefix, &entry.key, &entry.value);
        }
        Ok(revision)
    }

    fn put(&mut self, prefix: &str, key: &str, value: &[u8]) {
        let Some(id) = key.strip_prefix(prefix) else {
            return;
        };
        match Registration::from_bytes(value) {
            Ok(reg) if reg.server.id == id => {
                if let Some(old) = self.members.get(id)
                    && old.generation != reg.generation
                    && id != self.me.id
                {
                    tracing::info!(server = %self.me.id, peer = %id, pid = reg.pid, "peer restarted (new registration)");
                }
                self.members.insert(id.to_string(), reg);
            }
            Ok(reg) => tracing::warn!(
                server = %self.me.id,
                key,
                "etcd entry names server `{}`, not `{id}`; ignored",
                reg.server.id
            ),
            Err(e) => {
                tracing::warn!(server = %self.me.id, key, "unreadable registration in etcd ignored: {e}")
            }
        }
    }

    fn delete(&mut self, prefix: &str, key: &str) {
        if let Some(id) = key.strip_prefix(prefix) {
            self.members.remove(id);
        }
    }

    /// The list every server computes alike: servers.json order, then
    /// servers added at run time by id. This server is always in it (its
    /// own key may be gone while etcd is away; it still serves).
    fn list(&self) -> Vec<ServerInfo> {
        let mut list: Vec<ServerInfo> = self.members.values().map(|r| r.server.clone()).collect();
        if !self.members.contains_key(&self.me.id) {
            list.push(self.me.clone());
        }
        list.sort_by(|a, b| {
            let rank = |s: &ServerInfo| self.order.get(&s.id).copied().unwrap_or(usize::MAX);
            rank(a).cmp(&rank(b)).then_with(|| a.id.cmp(&b.id))
        });
        list
    }

    /// Publishes the list if it differs from the current one.
    fn publish(&self, ctx: &DiscoveryContext) {
        let list = self.list();
        if ctx.servers.snapshot().all() != list.as_slice() {
            tracing::debug!(server = %self.me.id, count = list.len(), "server list from etcd");
            ctx.servers.apply(Change::Reset(list));
        }
    }
}

/// Follows the servers prefix until the task is cancelled: watch, and on
/// any failure read again and watch from there (with backoff while etcd is
/// away, serving the last list meanwhile).
async fn follow(
    cfg: EtcdConfig,
    mut client: EtcdClient,
    mut revision: i64,
    mut view: View,
    ctx: DiscoveryContext,
) {
    let prefix = cfg.servers_prefix();
    let mut delay = RETRY_MIN;
    let mut outage: Option<std::time::Instant> = None;
    loop {
        let problem = match client.watch_prefix(&prefix, revision + 1).await {
            Ok(mut watch) => {
                if let Some(since) = outage.take() {
                    tracing::info!(server = %ctx.me.id, etcd = %client.endpoint, "etcd reachable again after {:.1} s; following the server list", since.elapsed().as_secs_f64());
                }
                delay = RETRY_MIN;
                loop {
                    match watch.next().await {
                        Ok(Some(events)) => {
                            for event in events {
                                match event {
                                    client::Event::Put(e) => view.put(&prefix, &e.key, &e.value),
                                    client::Event::Delete(key) => view.delete(&prefix, &key),
                                }
                            }
                            view.publish(&ctx);
                        }
                        Ok(None) => break "etcd closed the watch".to_string(),
                        Err(e) => break e.to_string(),
                    }
                }
            }
            Err(e) => e.to_string(),
        };
        if outage.is_none() {
            outage = Some(std::time::Instant::now());
            tracing::warn!(
                server = %ctx.me.id,
                "lost etcd ({problem}); serving with the last known list of {} servers and retrying",
                view.list().len()
            );
        }
        // Reconnect (any endpoint), read the whole prefix, watch again.
        loop {
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(RETRY_MAX);
            let attempt = async {
                let fresh = EtcdClient::connect(&cfg.endpoints).await?;
                let rev = view.read_all(&fresh, &cfg).await?;
                Ok::<_, EtcdError>((fresh, rev))
            };
            match attempt.await {
                Ok((fresh, rev)) => {
                    client = fresh;
                    revision = rev;
                    view.publish(&ctx);
                    break;
                }
                Err(e) => tracing::debug!(server = %ctx.me.id, "etcd still unreachable: {e}"),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::discovery::Servers;

    fn info(id: &str, ty: &str) -> ServerInfo {
        ServerInfo {
            id: id.into(),
            server_type: ty.into(),
            host: "10.0.0.2".into(),
            port: Some(4000),
            ..Default::default()
        }
    }

    fn reg(id: &str, ty: &str, generation: u64) -> Vec<u8> {
        serde_json::to_vec(&Registration {
            server: info(id, ty),
            generation,
            supervisor: Some("10.0.0.2".into()),
            pid: 7,
        })
        .unwrap()
    }

    /// Whatever order etcd's events come in, every server lists the others
    /// in servers.json order (then added ones by id), and always itself.
    #[test]
    fn the_list_is_in_servers_json_order_and_holds_this_server() {
        let config = vec![
            info("gate-1", "gate"),
            info("conn-1", "connector"),
            info("conn-2", "connector"),
        ];
        let ctx = DiscoveryContext::new(info("conn-2", "connector"), Servers::new(config));
        let mut view = View::new(&ctx);
        let p = "/app/servers/";
        view.put(p, "/app/servers/zz-added", &reg("zz-added", "chat", 1));
        view.put(p, "/app/servers/conn-1", &reg("conn-1", "connector", 1));
        view.put(p, "/app/servers/gate-1", &reg("gate-1", "gate", 1));
        view.put(p, "/app/servers/aa-added", &reg("aa-added", "chat", 1));
        let ids: Vec<String> = view.list().into_iter().map(|s| s.id).collect();
        assert_eq!(ids, ["gate-1", "conn-1", "conn-2", "aa-added", "zz-added"]);
        view.delete(p, "/app/servers/conn-1");
        let ids: Vec<String> = view.list().into_iter().map(|s| s.id).collect();
        assert_eq!(ids, ["gate-1", "conn-2", "aa-added", "zz-added"]);
    }

    /// An entry under another id's key, or not JSON, is ignored; a restart
    /// (new generation) replaces the entry.
    #[test]
    fn odd_entries_are_ignored_and_restarts_replace() {
        let ctx = DiscoveryContext::new(info("me", "chat"), Servers::new(vec![]));
        let mut view = View::new(&ctx);
        let p = "/app/servers/";
        view.put(p, "/app/servers/a", &reg("b", "chat", 1));
        view.put(p, "/app/servers/c", b"not json");
        assert!(view.members.is_empty());
        view.put(p, "/app/servers/a", &reg("a", "chat", 1));
        view.put(p, "/app/servers/a", &reg("a", "chat", 2));
        assert_eq!(view.members["a"].generation, 2);
        let publish = Servers::new(vec![]);
        let ctx2 = DiscoveryContext {
            servers: publish.clone(),
            ..ctx
        };
        view.publish(&ctx2);
        let ids: Vec<String> = publish
            .snapshot()
            .all()
            .iter()
            .map(|s| s.id.clone())
            .collect();
        assert_eq!(ids, ["a", "me"]);
    }
}
