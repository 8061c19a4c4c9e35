//! The live server list of the cluster.
//!
//! Routers and connection pools read the *current* list through a cheap
//! snapshot (`Arc<ServerList>`), and a [`Discovery`](super::Discovery)
//! backend changes it at run time when servers join or leave. A std `RwLock` is enough: it is held only
//! to clone an `Arc`, never across an `.await`.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use tokio::sync::watch;

use crate::config::ServerInfo;

use super::Change;
use crate::error::ClusterError;

/// One immutable version of the server list, indexed by type so a router
/// gets its candidates as a slice without copying.
#[derive(Debug, Default)]
pub struct ServerList {
    all: Vec<ServerInfo>,
    by_type: HashMap<String, Vec<ServerInfo>>,
}

impl ServerList {
    fn new(all: Vec<ServerInfo>) -> Self {
        let mut by_type: HashMap<String, Vec<ServerInfo>> = HashMap::new();
        for s in &all {
            by_type
                .entry(s.server_type.clone())
                .or_default()
                .push(s.clone());
        }
        ServerList { all, by_type }
    }

    /// Every server, in servers.json order.
    pub fn all(&self) -> &[ServerInfo] {
        &self.all
    }

    /// The servers of one type, in servers.json order (empty if none).
    pub fn of_type(&self, server_type: &str) -> &[ServerInfo] {
        self.by_type
            .get(server_type)
            .map(Vec::as_slice)
            .unwrap_or(&[])
    }

    pub fn get(&self, server_id: &str) -> Option<&ServerInfo> {
        self.all.iter().find(|s| s.id == server_id)
    }

    /// The ids of the frontends with a cluster port: those that can hold
    /// bound sessions and be asked about them (a gate without one binds
    /// no uids, and nobody could push to it).
    pub fn cluster_frontends(&self) -> Vec<String> {
        self.all
            .iter()
            .filter(|s| s.frontend && s.port.is_some())
            .map(|s| s.id.clone())
            .collect()
    }
}

/// Shared handle to the server list (servers.json order). Cloning is cheap.
#[derive(Clone, Debug, Default)]
pub struct Servers {
    inner: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    list: RwLock<Arc<ServerList>>,
    /// Bumped on every replacement, so owners of server-held state can
    /// react to membership changes ([`Servers::changes`]).
    version: watch::Sender<u64>,
    /// Frontends an operator drained (`shaddock drain`): members still,
    /// kept apart from [`ServerInfo`] because draining is the operator's
    /// state of a running server, not its configuration.
    draining: RwLock<Arc<Vec<String>>>,
}

impl Default for Shared {
    fn default() -> Self {
        Shared {
            list: RwLock::default(),
            version: watch::Sender::new(0),
            draining: RwLock::default(),
        }
    }
}

impl Servers {
    pub fn new(servers: Vec<ServerInfo>) -> Self {
        Servers {
            inner: Arc::new(Shared {
                list: RwLock::new(Arc::new(ServerList::new(servers))),
                version: watch::Sender::new(0),
                draining: RwLock::default(),
            }),
        }
    }

    /// The current list. Holding it does not block updates.
    pub fn snapshot(&self) -> Arc<ServerList> {
        match self.inner.list.read() {
            Ok(guard) => guard.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// Replaces the whole list (membership change pushed by the master).
    pub fn replace(&self, servers: Vec<ServerInfo>) {
        let new = Arc::new(ServerList::new(servers));
        match self.inner.list.write() {
            Ok(mut guard) => *guard = new,
            Err(poisoned) => *poisoned.into_inner() = new,
        }
        self.inner.version.send_modify(|v| *v += 1);
    }

    /// A receiver that wakes on every change of the list (its value counts
    /// the changes). Compare [`snapshot`](Self::snapshot)s to see what
    /// changed.
    pub fn changes(&self) -> watch::Receiver<u64> {
        self.inner.version.subscribe()
    }

    /// Applies one membership change. A `Put` of a known id replaces that
    /// entry in place (order is kept); a new id is appended.
    pub fn apply(&self, change: Change) {
        let current = self.snapshot();
        let next = match change {
            Change::Reset(all) => all,
            Change::Put(info) => {
                let mut all = current.all().to_vec();
                match all.iter_mut().find(|s| s.id == info.id) {
                    Some(slot) => *slot = info,
                    None => all.push(info),
                }
                all
            }
            Change::Delete(id) => current
                .all()
                .iter()
                .filter(|s| s.id != id)
                .cloned()
                .collect(),
        };
        self.replace(next);
    }

    /// Replaces the set of drained frontends (the master's list says which).
    pub fn set_draining(&self, ids: Vec<String>) {
        let new = Arc::new(ids);
        match self.inner.draining.write() {
            Ok(mut guard) => *guard = new,
            Err(poisoned) => *poisoned.into_inner() = new,
        }
    }

    /// Whether an operator drained server `id`: it keeps its clients but
    /// should be given no new ones.
    pub fn is_draining(&self, id: &str) -> bool {
        let draining = match self.inner.draining.read() {
            Ok(guard) => guard.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        };
        draining.iter().any(|d| d == id)
    }

    /// The servers of one type that take new clients (drained ones left
    /// out), in list order: what a gate chooses from.
    pub fn accepting(&self, server_type: &str) -> Vec<ServerInfo> {
        let mut servers = self.by_type(server_type);
        servers.retain(|s| !self.is_draining(&s.id));
        servers
    }

    /// Servers of one type, in list order.
    pub fn by_type(&self, server_type: &str) -> Vec<ServerInfo> {
        self.snapshot().of_type(server_type).to_vec()
    }

    /// One server by id.
    pub fn get(&self, server_id: &str) -> Result<ServerInfo, ClusterError> {
        self.snapshot()
            .get(server_id)
            .cloned()
            .ok_or_else(|| ClusterError::UnknownServer(server_id.to_string()))
    }

    /// `http://host:port` of a server's RPC endpoint.
    pub fn rpc_uri(&self, server_id: &str) -> Result<String, ClusterError> {
        let info = self.get(server_id)?;
        let port = info
            .port
            .ok_or_else(|| ClusterError::NoRpcPort(server_id.to_string()))?;
        Ok(format!("http://{}:{}", info.host, port))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn server(id: &str, server_type: &str) -> ServerInfo {
        ServerInfo {
            id: id.into(),
            server_type: server_type.into(),
            host: "127.0.0.1".into(),
            client_host: None,
            bind_host: None,
            client_bind_host: None,
            port: None,
            client_port: Some(3000),
            metrics_port: None,
            frontend: true,
            max_connections: None,
            auto_restart: None,
            args: Vec::new(),
        }
    }

    #[test]
    fn drained_servers_take_no_new_clients_but_stay_members() {
        let servers = Servers::new(vec![server("c1", "connector"), server("c2", "connector")]);
        assert_eq!(servers.accepting("connector").len(), 2);
        servers.set_draining(vec!["c1".into()]);
        assert!(servers.is_draining("c1") && !servers.is_draining("c2"));
        let ids: Vec<String> = servers
            .accepting("connector")
            .into_iter()
            .map(|s| s.id)
            .collect();
        assert_eq!(ids, ["c2"]);
        // Still a member: routing and pushes reach it.
        assert_eq!(servers.by_type("connector").len(), 2);
        servers.set_draining(Vec::new());
        assert_eq!(servers.accepting("connector").len(), 2);
    }
}
