//! The `Admin` service the CLI talks to, and its authentication.
//!
//! A call is let in by one of (see [`guard`](super::guard) for the login
//! rules: tokens, back-off, fair checks, logged failures):
//!
//! * `x-shaddock-token`: a token from `Login` (the CLI's way);
//! * `x-shaddock-user` / `x-shaddock-password`: checked like a login
//!   (scripts; `Login` itself);
//! * the cluster key with `x-shaddock-on-behalf-of`: the supervisor of
//!   another host passing on an operator's `list` or action for this
//!   host's servers (`local_only` requests only).
//!
//! Every action is recorded in the master's log with the user who asked.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use tonic::{Request, Response, Status};

use super::actions::{Answer, Dispatcher};
use super::auth::{AdminUsers, ON_BEHALF_HEADER, PASSWORD_HEADER, TOKEN_HEADER, USER_HEADER};
use super::guard::Guard;
use super::hosts::{self, Action, Peers, Placement};
use super::proto;
use super::supervisor::{ActionReport, Selection, Supervisor};
use shaddock::cluster::auth::KeyCheck;
use shaddock::config::ServerInfo;

pub struct AdminService {
    guard: Guard,
    supervisor: Supervisor,
    master_id: String,
    env: String,
    /// Where `Reload` reads servers.json.
    config_dir: PathBuf,
    started: Instant,
    /// `list`'s requests/s and p99, from the servers' `/metrics`.
    rates: super::rates::Rates,
    /// The other hosts' supervisors (etcd configured).
    peers: Option<Peers>,
    /// Accepts the cluster key of another host's supervisor.
    cluster_key: Option<KeyCheck>,
    /// Which servers of servers.json are this supervisor's (`start --host`).
    placement: Option<Placement>,
    /// Admin actions in flight to servers (shared with the membership
    /// service, which receives the replies).
    actions: Arc<Dispatcher>,
}

/// Who a request is from.
struct Caller {
    user: String,
    /// Another host's supervisor, acting for `user`.
    via_peer: bool,
}

fn meta<'a, T>(request: &'a Request<T>, key: &str) -> Option<&'a str> {
    request.metadata().get(key).and_then(|v| v.to_str().ok())
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
            guard: Guard::new(users),
            supervisor,
            master_id,
            env,
            config_dir,
            started: Instant::now(),
            rates: Default::default(),
            peers: None,
            cluster_key: None,
            placement: None,
            actions: Arc::default(),
        }
    }

    /// Sends admin actions through `actions` (the membership service's).
    pub fn with_actions(mut self, actions: Arc<Dispatcher>) -> Self {
        self.actions = actions;
        self
    }

    /// Applies `reload` to the servers of this host only.
    pub fn with_placement(mut self, placement: Placement) -> Self {
        self.placement = Some(placement);
        self
    }

    /// Lets another host's supervisor in with the cluster key (`local_only`
    /// requests).
    pub fn with_cluster_key(mut self, check: Option<KeyCheck>) -> Self {
        self.cluster_key = check;
        self
    }

    async fn authenticate<T>(&self, request: &Request<T>) -> Result<Caller, Status> {
        if let Some(token) = meta(request, TOKEN_HEADER) {
            return match self.guard.user_of_token(token) {
                Some(user) => Ok(Caller {
                    user,
                    via_peer: false,
                }),
                None => Err(Status::unauthenticated(
                    "the admin token expired or is unknown; run the command again (it logs in)",
                )),
            };
        }
        if let (Some(user), Some(check)) = (meta(request, ON_BEHALF_HEADER), &self.cluster_key)
            && check.accepts(request.metadata())
        {
            return Ok(Caller {
                user: user.to_string(),
                via_peer: true,
            });
        }
        let (Some(user), Some(password)) =
            (meta(request, USER_HEADER), meta(request, PASSWORD_HEADER))
        else {
            return Err(Status::unauthenticated(
                "admin credentials required (SHADDOCK_ADMIN_USER/SHADDOCK_ADMIN_PASSWORD, \
                 config/.admin-credentials, or the prompt)",
            ));
        };
        self.guard
            .check_password(peer(request), user, password)
            .await?;
        Ok(Caller {
            user: user.to_string(),
            via_peer: false,
        })
    }

    /// Only this host's own `local_only` business may come from a peer.
    fn local_only_for_peers(caller: &Caller, local_only: bool) -> Result<(), Status> {
        if caller.via_peer && !local_only {
            return Err(Status::permission_denied(
                "another host's supervisor may only ask for this host's own servers",
            ));
        }
        Ok(())
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
        let caller = self.authenticate(&request).await?;
        let req = request.into_inner();
        Self::local_only_for_peers(&caller, req.local_only)?;
        let who = &caller.user;
        let peers = match &self.peers {
            Some(peers) if !req.local_only => peers,
            _ => {
                let report = self.act_here(action, &selection(req));
                self.record(who, caller.via_peer, action, &report);
                return Ok(reply(report));
            }
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
            match peers.act(&peer, action, forwarded, who).await {
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
        self.record(who, false, action, &report);
        Ok(reply(report))
    }

    /// The master's log line of an action: what, on which servers, by whom.
    fn record(&self, user: &str, via_peer: bool, action: Action, report: &ActionReport) {
        if report.ids.is_empty() && report.errors.is_empty() {
            return;
        }
        let via = if via_peer {
            " (through another host's supervisor)"
        } else {
            ""
        };
        tracing::info!(user, ?action, ids = ?report.ids, errors = ?report.errors, "admin action{via}");
        super::supervisor::out_line(&format!(
            "[master] {action:?} by {user}{via}: {}{}",
            report.ids.join(", "),
            if report.errors.is_empty() {
                String::new()
            } else {
                format!(" (errors: {})", report.errors.join("; "))
            }
        ));
    }

    fn act_here(&self, action: Action, sel: &Selection) -> ActionReport {
        match action {
            Action::Start => self.supervisor.start(sel),
            Action::Stop => self.supervisor.stop(sel),
            Action::Kill => self.supervisor.kill(sel),
            Action::Restart => self.supervisor.restart(sel),
        }
    }
}

/// The peer's address (for the back-off and the logs).
fn peer<T>(request: &Request<T>) -> Option<SocketAddr> {
    request.remote_addr()
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
    async fn login(
        &self,
        request: Request<proto::LoginRequest>,
    ) -> Result<Response<proto::LoginResponse>, Status> {
        let (Some(user), Some(password)) =
            (meta(&request, USER_HEADER), meta(&request, PASSWORD_HEADER))
        else {
            return Err(Status::unauthenticated(
                "Login needs a user name and a password",
            ));
        };
        let (token, ttl) = self.guard.login(peer(&request), user, password).await?;
        // Successful logins are routine (one per CLI command): debug only;
        // failures are warned about by the guard.
        tracing::debug!(user, peer = ?peer(&request), "admin login");
        Ok(Response::new(proto::LoginResponse {
            token,
            expires_in_secs: ttl.as_secs(),
        }))
    }

    async fn list(
        &self,
        request: Request<proto::ListRequest>,
    ) -> Result<Response<proto::ListResponse>, Status> {
        let caller = self.authenticate(&request).await?;
        Self::local_only_for_peers(&caller, request.get_ref().local_only)?;
        let mut resp = proto::ListResponse {
            master_id: self.master_id.clone(),
            master_pid: std::process::id(),
            env: self.env.clone(),
            master_uptime_secs: self.started.elapsed().as_secs(),
            servers: self.supervisor.status(),
            unreachable: Vec::new(),
        };
        self.rates.fill(&mut resp.servers).await;
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
            match peers.list(peer, &caller.user).await {
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
        let caller = self.authenticate(&request).await?;
        Self::local_only_for_peers(&caller, false)?;
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
            metrics_port: None,
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
        let caller = self.authenticate(&request).await?;
        let local_only = request.get_ref().local_only;
        Self::local_only_for_peers(&caller, local_only)?;
        super::supervisor::out_line(&format!("[master] reload asked by {}", caller.user));
        let report = match super::config::load_servers(&self.config_dir, &self.env) {
            Ok(servers) => {
                let mine = match &self.placement {
                    Some(p) => p.servers_of_this_host(servers),
                    None => servers,
                };
                self.supervisor.reload(mine)
            }
            Err(e) => super::supervisor::ReloadReport {
                errors: vec![format!("{e:#}; nothing was changed")],
                ..Default::default()
            },
        };
        let mut resp = proto::ReloadResponse {
            started: report.started,
            stopped: report.stopped,
            restarted: report.restarted,
            kept: report.kept,
            errors: report.errors,
        };
        // Every other host applies its own copy of servers.json.
        if let Some(peers) = self.peers.as_ref().filter(|_| !local_only) {
            match peers.cluster().await {
                Ok(cluster) => {
                    for peer in &cluster.supervisors {
                        match peers.reload(peer, &caller.user).await {
                            Ok(r) => {
                                resp.started.extend(r.started);
                                resp.stopped.extend(r.stopped);
                                resp.restarted.extend(r.restarted);
                                resp.kept.extend(r.kept);
                                resp.errors.extend(r.errors);
                            }
                            Err(e) => resp.errors.push(format!(
                                "the supervisor of host {} ({}): {e}",
                                peer.name, peer.admin
                            )),
                        }
                    }
                }
                Err(e) => resp.errors.push(format!("{e:#}")),
            }
        }
        Ok(Response::new(resp))
    }

    async fn act(
        &self,
        request: Request<proto::ActRequest>,
    ) -> Result<Response<proto::ActResponse>, Status> {
        let caller = self.authenticate(&request).await?;
        Self::local_only_for_peers(&caller, false)?;
        let req = request.into_inner();
        if req.action.is_empty() {
            return Err(Status::invalid_argument("which action? (e.g. broadcast)"));
        }
        let args = if req.args_json.is_empty() {
            "{}".to_string()
        } else {
            req.args_json.clone()
        };
        if !serde_json::from_str::<serde_json::Value>(&args).is_ok_and(|v| v.is_object()) {
            return Err(Status::invalid_argument(format!(
                "the arguments of `{}` must be one JSON object, not {args}",
                req.action
            )));
        }
        let sel = Selection {
            ids: req.ids,
            server_type: (!req.server_type.is_empty()).then_some(req.server_type),
        };
        let (links, mut errors) = self.supervisor.agents(&sel);
        let answers = self.actions.run(links, &req.action, &args, req.query).await;
        let mut outcomes = Vec::new();
        for (id, answer) in answers {
            match answer {
                Answer::NotHere => {}
                Answer::Done(result_json) => outcomes.push(proto::ServerOutcome {
                    id,
                    result_json,
                    error: String::new(),
                }),
                Answer::Failed(error) => {
                    errors.push(format!("{id}: {error}"));
                    outcomes.push(proto::ServerOutcome {
                        id,
                        result_json: String::new(),
                        error,
                    });
                }
            }
        }
        // A drained frontend is also listed as draining, so that gates send
        // no new clients there.
        if req.action == "drain" && !req.query {
            let drained: Vec<String> = outcomes
                .iter()
                .filter(|o| o.error.is_empty())
                .map(|o| o.id.clone())
                .collect();
            self.supervisor.set_draining(&drained);
        }
        let done: Vec<String> = outcomes
            .iter()
            .map(|o| {
                if o.error.is_empty() {
                    format!("{} {}", o.id, o.result_json)
                } else {
                    format!("{} failed", o.id)
                }
            })
            .collect();
        if req.query {
            tracing::debug!(user = %caller.user, query = %req.action, done = ?done, errors = ?errors, "admin query");
            return Ok(Response::new(proto::ActResponse { outcomes, errors }));
        }
        tracing::info!(user = %caller.user, action = %req.action, args = %args, done = ?done, errors = ?errors, "admin action");
        super::supervisor::out_line(&format!(
            "[master] {} {args} by {}: {}{}",
            req.action,
            caller.user,
            if done.is_empty() {
                "no server it applies to".to_string()
            } else {
                done.join(", ")
            },
            if errors.is_empty() {
                String::new()
            } else {
                format!(" (errors: {})", errors.join("; "))
            }
        ));
        Ok(Response::new(proto::ActResponse { outcomes, errors }))
    }

    async fn shutdown(
        &self,
        request: Request<proto::ShutdownRequest>,
    ) -> Result<Response<proto::ActionResponse>, Status> {
        let caller = self.authenticate(&request).await?;
        Self::local_only_for_peers(&caller, false)?;
        super::supervisor::out_line(&format!("[master] shutdown asked by {}", caller.user));
        self.supervisor.shutdown_token().cancel();
        Ok(reply(ActionReport::default()))
    }
}
