//! Several hosts: one supervisor per host, found through etcd.
//!
//! `shaddock start --host NAME` supervises the servers of servers.json
//! whose `host` is NAME, and answers the admin API on NAME:<master port>.
//! With an `etcd` section in master.json, each supervisor registers
//! `<prefix>/supervisors/<NAME>` (its admin address, under a lease like a
//! server's), so any supervisor can:
//!
//! * list the whole cluster: its own servers, each other supervisor's (asked
//!   with the caller's own admin credentials, `local_only`), and servers
//!   registered in etcd that no supervisor listed (state `registered`);
//! * pass `stop`, `kill`, `restart` (and `start`) of a server on another
//!   host to that host's supervisor, authenticated the same way.
//!
//! Supervisors trust each other through the cluster secret: a passed-on
//! request carries the cluster key and the name of the operator it is for
//! (the operator logged in with the first supervisor; the token stays
//! there), and the other supervisor accepts it for its own servers only
//! (`local_only`) and logs who asked. Nothing is trusted from etcd but
//! addresses.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::bail;
use serde::{Deserialize, Serialize};
use tonic::metadata::MetadataValue;

use super::auth::ON_BEHALF_HEADER;
use super::config::MasterEntry;
use super::{MasterOptions, proto};
use shaddock::cluster::auth::KEY_HEADER;
use shaddock::config::{ClusterSecret, EtcdConfig, ServerInfo};
use shaddock::discovery::etcd::{EtcdClient, Registrar, Registration};

/// How long a call to another host's supervisor may take.
const PEER_TIMEOUT: Duration = Duration::from_secs(5);

/// Which servers this supervisor runs, and where it answers.
#[derive(Debug, Clone)]
pub struct Placement {
    /// The host name this supervisor stands for (`--host`, or the
    /// master.json host when it runs every server).
    pub name: String,
    only_host: Option<String>,
}

impl Placement {
    pub fn new(
        opts: &MasterOptions,
        master: &MasterEntry,
        etcd: Option<&EtcdConfig>,
        servers: &[ServerInfo],
    ) -> anyhow::Result<Self> {
        let host = match &opts.supervise_host {
            // One supervisor for every server: the single-box default.
            None => None,
            Some(h) if *h == master.host && etcd.is_none() => None,
            Some(h) => Some(h),
        };
        let Some(host) = host else {
            return Ok(Placement {
                name: master.host.clone(),
                only_host: None,
            });
        };
        if etcd.is_none() {
            bail!(
                "--host {host}: supervising one host of several needs etcd, so the hosts' servers \
                 find each other; add an `etcd` section to config/master.json [{}] (see \
                 docs/deployment.md), or drop --host to run every server here",
                opts.env
            );
        }
        if !servers.iter().any(|s| &s.host == host) {
            let mut hosts: Vec<&str> = servers.iter().map(|s| s.host.as_str()).collect();
            hosts.sort_unstable();
            hosts.dedup();
            bail!(
                "--host {host}: no server of config/servers.json [{}] has `host` {host}; the hosts \
                 there are: {}",
                opts.env,
                hosts.join(", ")
            );
        }
        Ok(Placement {
            name: host.clone(),
            only_host: Some(host.clone()),
        })
    }

    /// The servers this supervisor starts.
    pub fn servers_of_this_host(&self, all: Vec<ServerInfo>) -> Vec<ServerInfo> {
        match &self.only_host {
            Some(host) => all.into_iter().filter(|s| &s.host == host).collect(),
            None => all,
        }
    }

    /// Where this supervisor keeps its records and crash log: one folder
    /// per host, so two hosts' supervisors may share an app folder.
    pub fn log_dir(&self, app_dir: &Path) -> PathBuf {
        host_log_dir(app_dir, self.only_host.as_deref())
    }

    /// The address the admin API listens on.
    pub fn admin_host<'a>(&'a self, master: &'a MasterEntry) -> &'a str {
        self.only_host.as_deref().unwrap_or(&master.host)
    }

    /// Whether this supervisor starts the web server: the one of its
    /// `web.host` (or the only supervisor).
    pub fn runs_web(&self, master: &MasterEntry) -> bool {
        self.only_host
            .as_ref()
            .is_none_or(|h| *h == master.web.host || *h == master.host)
    }
}

/// Where the supervisor of `host` (`start --host`; `None`: the single
/// master) keeps its records and crash log.
pub fn host_log_dir(app_dir: &Path, host: Option<&str>) -> PathBuf {
    match host {
        Some(host) => app_dir.join("logs").join(format!("host-{host}")),
        None => app_dir.join("logs"),
    }
}

/// A supervisor's entry in etcd.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SupervisorEntry {
    pub name: String,
    /// `host:port` of its admin API.
    pub admin: String,
    pub pid: u32,
}

/// Registers this supervisor in etcd (kept alive until `leave`).
pub async fn register(etcd: &EtcdConfig, name: &str, admin: &str) -> anyhow::Result<Registrar> {
    let client = connect(etcd).await?;
    let entry = SupervisorEntry {
        name: name.to_string(),
        admin: admin.to_string(),
        pid: std::process::id(),
    };
    let value = serde_json::to_vec(&entry)?;
    Registrar::register(
        client,
        etcd.endpoints.clone(),
        etcd.supervisor_key(name),
        value.into(),
        etcd.ttl,
    )
    .await
    .map_err(|e| anyhow::anyhow!("cannot register this supervisor in etcd: {e}"))
}

async fn connect(etcd: &EtcdConfig) -> anyhow::Result<EtcdClient> {
    EtcdClient::connect(&etcd.endpoints).await.map_err(|e| {
        anyhow::anyhow!(
            "cannot reach etcd at {} ({e}); start etcd, or fix `etcd.endpoints` in \
             config/master.json",
            etcd.endpoints.join(", ")
        )
    })
}

/// The other hosts' supervisors, reached through etcd.
#[derive(Debug, Clone)]
pub struct Peers {
    etcd: EtcdConfig,
    /// This supervisor's name (never called).
    me: String,
    /// The cluster secret, which the other supervisors accept.
    secret: Option<ClusterSecret>,
}

/// What etcd says about the cluster right now.
pub struct Cluster {
    /// The other supervisors.
    pub supervisors: Vec<SupervisorEntry>,
    pub servers: Vec<Registration>,
}

impl Cluster {
    /// The supervisor of `id`: the one its registration names, else the
    /// one of its servers.json host.
    pub fn owner_of(&self, id: &str, config_host: Option<&str>) -> Option<&SupervisorEntry> {
        let named = self
            .servers
            .iter()
            .find(|r| r.server.id == id)
            .and_then(|r| r.supervisor.as_deref());
        let name = named.or(config_host)?;
        self.supervisors.iter().find(|s| s.name == name)
    }
}

/// An admin call passed to another supervisor.
#[derive(Debug, Clone, Copy)]
pub enum Action {
    Start,
    Stop,
    Kill,
    Restart,
}

impl Peers {
    pub fn new(etcd: EtcdConfig, me: String, secret: Option<ClusterSecret>) -> Self {
        Peers { etcd, me, secret }
    }

    /// `msg` as the supervisor acting for `user`.
    fn request<T>(&self, msg: T, user: &str) -> Result<tonic::Request<T>, String> {
        let secret = self.secret.as_ref().ok_or(
            "no cluster secret here, so the other hosts' supervisors would refuse; set one \
             (config/cluster.json or SHADDOCK_CLUSTER_SECRET, the same on every host)",
        )?;
        let mut request = tonic::Request::new(msg);
        let key = MetadataValue::try_from(secret.expose()).map_err(|e| e.to_string())?;
        let who = MetadataValue::try_from(user).map_err(|e| e.to_string())?;
        request.metadata_mut().insert(KEY_HEADER, key);
        request.metadata_mut().insert(ON_BEHALF_HEADER, who);
        Ok(request)
    }

    /// The other supervisors and every registered server.
    pub async fn cluster(&self) -> anyhow::Result<Cluster> {
        let client = connect(&self.etcd).await?;
        let (sups, _) = client
            .get_prefix(&self.etcd.supervisors_prefix())
            .await
            .map_err(|e| anyhow::anyhow!("etcd: {e}"))?;
        let (regs, _) = client
            .get_prefix(&self.etcd.servers_prefix())
            .await
            .map_err(|e| anyhow::anyhow!("etcd: {e}"))?;
        Ok(Cluster {
            supervisors: sups
                .iter()
                .filter_map(|e| serde_json::from_slice::<SupervisorEntry>(&e.value).ok())
                .filter(|s| s.name != self.me)
                .collect(),
            servers: regs
                .iter()
                .filter_map(|e| Registration::from_bytes(&e.value).ok())
                .collect(),
        })
    }

    /// `List` of `peer`'s own servers, for `user`.
    pub async fn list(
        &self,
        peer: &SupervisorEntry,
        user: &str,
    ) -> Result<proto::ListResponse, String> {
        let request = self.request(proto::ListRequest { local_only: true }, user)?;
        on_peer(peer, |mut c| async move { c.list(request).await }).await
    }

    /// `Reload` of `peer`'s own servers, for `user`.
    pub async fn reload(
        &self,
        peer: &SupervisorEntry,
        user: &str,
    ) -> Result<proto::ReloadResponse, String> {
        let request = self.request(proto::ReloadRequest { local_only: true }, user)?;
        on_peer(peer, |mut c| async move { c.reload(request).await }).await
    }

    /// `action` on `peer`'s servers of `request`, for `user`.
    pub async fn act(
        &self,
        peer: &SupervisorEntry,
        action: Action,
        mut request: proto::SelectRequest,
        user: &str,
    ) -> Result<proto::ActionResponse, String> {
        request.local_only = true;
        let request = self.request(request, user)?;
        on_peer(peer, |mut c| async move {
            match action {
                Action::Start => c.start(request).await,
                Action::Stop => c.stop(request).await,
                Action::Kill => c.kill(request).await,
                Action::Restart => c.restart(request).await,
            }
        })
        .await
    }
}

type PeerClient = proto::admin_client::AdminClient<tonic::transport::Channel>;

/// Connects to `peer` and makes one call, all within [`PEER_TIMEOUT`];
/// errors as one line (what failed, from the peer's side when it answered).
async fn on_peer<T, F, Fut>(peer: &SupervisorEntry, call: F) -> Result<T, String>
where
    F: FnOnce(PeerClient) -> Fut,
    Fut: std::future::Future<Output = Result<tonic::Response<T>, tonic::Status>>,
{
    let go = async {
        let client = admin_client(peer).await?;
        call(client)
            .await
            .map(tonic::Response::into_inner)
            .map_err(|s| s.message().to_string())
    };
    tokio::time::timeout(PEER_TIMEOUT, go)
        .await
        .map_err(|_| "timed out".to_string())?
}

async fn admin_client(peer: &SupervisorEntry) -> Result<PeerClient, String> {
    proto::admin_client::AdminClient::connect(format!("http://{}", peer.admin))
        .await
        .map_err(|e| format!("cannot connect to {}: {e}", peer.admin))
}

/// A row for a server that etcd lists but no supervisor answered for.
pub fn registered_row(reg: &Registration) -> proto::ServerStatus {
    let s = &reg.server;
    proto::ServerStatus {
        id: s.id.clone(),
        server_type: s.server_type.clone(),
        pid: reg.pid,
        host: s.host.clone(),
        port: s.port.map(u32::from),
        client_port: s.client_port.map(u32::from),
        frontend: s.frontend,
        state: "registered".into(),
        supervisor: reg.supervisor.clone().unwrap_or_default(),
        ..Default::default()
    }
}
