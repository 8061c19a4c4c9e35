//! The `Admin` service the CLI talks to, and its authentication.
//!
//! Every call must carry `x-shaddock-user` / `x-shaddock-password` metadata
//! matching a user of `config/adminUser.json` (argon2 hashes). The check
//! runs in a blocking thread because argon2 is deliberately slow.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::Semaphore;
use tonic::{Request, Response, Status};

use super::auth::{AdminUsers, PASSWORD_HEADER, USER_HEADER};
use super::hosts::{self, Action, Peers};
use super::proto;
use super::supervisor::{ActionReport, Selection, Supervisor};
use shaddock::config::ServerInfo;

/// Concurrent password checks (argon2 is deliberately expensive).
const VERIFY_CONCURRENCY: usize = 2;
/// How long a request may wait for a check slot.
const VERIFY_WAIT: Duration = Duration::from_secs(5);
/// Pause before answering a wrong password.
const FAILURE_DELAY: Duration = Duration::from_millis(300);

pub struct AdminService {
    verify_slots: Arc<Semaphore>,
    supervisor: Supervisor,
    users: Arc<AdminUsers>,
    master_id: String,
    env: String,
    /// Where `Reload` reads servers.json.
    config_dir: PathBuf,
    started: Instant,
    /// The other hosts' supervisors (etcd configured).
    peers: Option<Peers>,
}

impl AdminService {
    pub fn new(
        supervisor: Supervisor,
        users: AdminUsers,
        master_id: String,
        env: String,
        config_dir: PathBuf,
    ) -> Self {
        AdminService {
            verify_slots: Arc::new(Semaphore::new(VERIFY_CONCURRENCY)),
            supervisor,
            users: Arc::new(users),
            master_id,
            env,
            config_dir,
            started: Instant::now(),
            peers: None,
        }
    }

    /// Lists and acts across hosts through `peers` (see [`hosts`]).
    pub fn with_peers(mut self, peers: Option<Peers>) -> Self {
        self.peers = peers;
        self
    }

    /// `action` on the selected servers: this host's here, the others'
    /// through their supervisors (unless the request is `local_only`).
    async fn act(
        &self,
        action: Action,
        request: Request<proto::SelectRequest>,
    ) -> Result<Response<proto::ActionResponse>, Status> {
        self.authenticate(&request).await?;
        let caller = request.metadata().clone();
        let req = request.into_inner();
        let peers = match &self.peers {
            Some(peers) if !req.local_only => peers,
            _ => return Ok(reply(self.act_here(action, &selection(req)))),
        };
        let cluster = peers
            .cluster()
            .await
            .map_err(|e| Status::unavailable(format!("{e:#}")))?;
        let (here, elsewhere): (Vec<String>, Vec<String>) = req
            .ids
            .iter()
            .cloned()
            .partition(|id| self.supervisor.knows(id));
        let mut report = if here.is_empty() && !req.ids.is_empty() && req.server_type.is_empty() {
            ActionReport::default()
        } else {
            let local = Selection {
                ids: here,
                server_type: (!req.server_type.is_empty()).then(|| req.server_type.clone()),
            };
            let mut r = self.act_here(action, &local);
            // "no server of type" here is no error when another host has some.
            r.errors.retain(|e| !e.starts_with("no server of type"));
            r
        };
        // Ids of other hosts go to their supervisors; a type goes to all.
        let config = super::config::load_servers(&self.config_dir, &self.env).unwrap_or_default();
        let mut per_peer: Vec<(hosts::SupervisorEntry, Vec<String>)> = Vec::new();
        for id in elsewhere {
            let host = config.iter().find(|s| s.id == id).map(|s| s.host.as_str());
            match cluster.owner_of(&id, host) {
                Some(peer) => match per_peer.iter_mut().find(|(p, _)| p.name == peer.name) {
                    Some((_, ids)) => ids.push(id),
                    None => per_peer.push((peer.clone(), vec![id])),
                },
                None => report.errors.push(format!(
                    "unknown server id `{id}` (no supervisor in etcd runs it{})",
                    host.map(|h| format!("; its host {h} has no supervisor registered: is `shaddock start --host {h}` running there?")).unwrap_or_default()
                )),
            }
        }
        if !req.server_type.is_empty() {
            for peer in &cluster.supervisors {
                if !per_peer.iter().any(|(p, _)| p.name == peer.name) {
                    per_peer.push((peer.clone(), Vec::new()));
                }
            }
        }
        for (peer, ids) in per_peer {
            let forwarded = proto::SelectRequest {
                ids,
                server_type: req.server_type.clone(),
                local_only: true,
            };
            match peers.act(&peer, action, forwarded, &caller).await {
                Ok(r) => {
                    report.ids.extend(r.ids);
                    report.errors.extend(
                        r.errors
                            .into_iter()
                            .filter(|e| !e.starts_with("no server of type")),
                    );
                }
                Err(e) => report.errors.push(format!(
                    "the supervisor of host {} ({}): {e}",
                    peer.name, peer.admin
                )),
            }
        }
        if report.ids.is_empty() && !req.server_type.is_empty() && report.errors.is_empty() {
            report
                .errors
                .push(format!("no server of type `{}`", req.server_type));
        }
        Ok(reply(report))
    }

    fn act_here(&self, action: Action, sel: &Selection) -> ActionReport {
        match action {
            Action::Start => self.supervisor.start(sel),
            Action::Stop => self.supervisor.stop(sel),
            Action::Kill => self.supervisor.kill(sel),
            Action::Restart => self.supervisor.restart(sel),
        }
    }

    async fn authenticate<T>(&self, request: &Request<T>) -> Result<(), Status> {
        let md = request.metadata();
        let user = md
            .get(USER_HEADER)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let password = md
            .get(PASSWORD_HEADER)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let (Some(user), Some(password)) = (user, password) else {
            return Err(Status::unauthenticated(
                "admin credentials required (-u/-p, SHADDOCK_ADMIN_USER/SHADDOCK_ADMIN_PASSWORD \
                 or config/.admin-credentials)",
            ));
        };
        // At most VERIFY_CONCURRENCY argon2 checks at once: a flood of
        // requests queues here (bounded wait) instead of eating every core.
        let permit = tokio::time::timeout(VERIFY_WAIT, self.verify_slots.clone().acquire_owned())
            .await
            .map_err(|_| Status::resource_exhausted("too many admin requests; retry later"))?
            .map_err(|_| Status::unavailable("the master is shutting down"))?;
        let users = self.users.clone();
        let ok = tokio::task::spawn_blocking(move || users.verify(&user, &password))
            .await
            .unwrap_or(false);
        drop(permit);
        if ok {
            Ok(())
        } else {
            // Slows down password guessing; the permit is already released.
            tokio::time::sleep(FAILURE_DELAY).await;
            Err(Status::unauthenticated("wrong admin user name or password"))
        }
    }
}

fn selection(req: proto::SelectRequest) -> Selection {
    Selection {
        ids: req.ids,
        server_type: (!req.server_type.is_empty()).then_some(req.server_type),
    }
}

fn reply(report: ActionReport) -> Response<proto::ActionResponse> {
    Response::new(proto::ActionResponse {
        ids: report.ids,
        errors: report.errors,
    })
}

#[tonic::async_trait]
impl proto::admin_server::Admin for AdminService {
    async fn list(
        &self,
        request: Request<proto::ListRequest>,
    ) -> Result<Response<proto::ListResponse>, Status> {
        self.authenticate(&request).await?;
        let mut resp = proto::ListResponse {
            master_id: self.master_id.clone(),
            master_pid: std::process::id(),
            env: self.env.clone(),
            master_uptime_secs: self.started.elapsed().as_secs(),
            servers: self.supervisor.status(),
            unreachable: Vec::new(),
        };
        let peers = match &self.peers {
            Some(peers) if !request.get_ref().local_only => peers,
            _ => return Ok(Response::new(resp)),
        };
        let cluster = match peers.cluster().await {
            Ok(c) => c,
            Err(e) => {
                resp.unreachable.push(format!("etcd ({e:#})"));
                return Ok(Response::new(resp));
            }
        };
        for peer in &cluster.supervisors {
            match peers.list(peer, request.metadata()).await {
                Ok(theirs) => resp.servers.extend(theirs.servers),
                Err(e) => resp
                    .unreachable
                    .push(format!("{} at {} ({e})", peer.name, peer.admin)),
            }
        }
        // Registered in etcd, listed by no supervisor that answered.
        for reg in &cluster.servers {
            if !resp.servers.iter().any(|s| s.id == reg.server.id) {
                resp.servers.push(hosts::registered_row(reg));
            }
        }
        Ok(Response::new(resp))
    }

    async fn start(
        &self,
        request: Request<proto::SelectRequest>,
    ) -> Result<Response<proto::ActionResponse>, Status> {
        self.act(Action::Start, request).await
    }

    async fn stop(
        &self,
        request: Request<proto::SelectRequest>,
    ) -> Result<Response<proto::ActionResponse>, Status> {
        self.act(Action::Stop, request).await
    }

    async fn kill(
        &self,
        request: Request<proto::SelectRequest>,
    ) -> Result<Response<proto::ActionResponse>, Status> {
        self.act(Action::Kill, request).await
    }

    async fn restart(
        &self,
        request: Request<proto::SelectRequest>,
    ) -> Result<Response<proto::ActionResponse>, Status> {
        self.act(Action::Restart, request).await
    }

    async fn add(
        &self,
        request: Request<proto::AddRequest>,
    ) -> Result<Response<proto::ActionResponse>, Status> {
        self.authenticate(&request).await?;
        let req = request.into_inner();
        let port = |p: Option<u32>, name: &str| -> Result<Option<u16>, Status> {
            p.map(|p| {
                u16::try_from(p)
                    .ok()
                    .filter(|p| *p != 0)
                    .ok_or_else(|| Status::invalid_argument(format!("{name} {p} is not a port")))
            })
            .transpose()
        };
        let info = ServerInfo {
            id: req.id.clone(),
            server_type: req.server_type,
            host: req.host,
            port: port(req.port, "port")?,
            client_port: port(req.client_port, "clientPort")?,
            frontend: req.frontend,
            max_connections: None,
            auto_restart: None,
            args: Vec::new(),
            client_host: None,
            bind_host: None,
            client_bind_host: None,
        };
        self.supervisor
            .add(info)
            .map_err(Status::invalid_argument)?;
        Ok(reply(ActionReport {
            ids: vec![req.id],
            errors: Vec::new(),
        }))
    }

    async fn reload(
        &self,
        request: Request<proto::ReloadRequest>,
    ) -> Result<Response<proto::ReloadResponse>, Status> {
        self.authenticate(&request).await?;
        let report = match super::config::load_servers(&self.config_dir, &self.env) {
            Ok(servers) => self.supervisor.reload(servers),
            Err(e) => super::supervisor::ReloadReport {
                errors: vec![format!("{e:#}; nothing was changed")],
                ..Default::default()
            },
        };
        Ok(Response::new(proto::ReloadResponse {
            started: report.started,
            stopped: report.stopped,
            restarted: report.restarted,
            kept: report.kept,
            errors: report.errors,
        }))
    }

    async fn shutdown(
        &self,
        request: Request<proto::ShutdownRequest>,
    ) -> Result<Response<proto::ActionResponse>, Status> {
        self.authenticate(&request).await?;
        self.supervisor.shutdown_token().cancel();
        Ok(reply(ActionReport::default()))
    }
}
