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
        Ok(Response::new(proto::ListResponse {
            master_id: self.master_id.clone(),
            master_pid: std::process::id(),
            env: self.env.clone(),
            master_uptime_secs: self.started.elapsed().as_secs(),
            servers: self.supervisor.status(),
        }))
    }

    async fn start(
        &self,
        request: Request<proto::SelectRequest>,
    ) -> Result<Response<proto::ActionResponse>, Status> {
        self.authenticate(&request).await?;
        Ok(reply(
            self.supervisor.start(&selection(request.into_inner())),
        ))
    }

    async fn stop(
        &self,
        request: Request<proto::SelectRequest>,
    ) -> Result<Response<proto::ActionResponse>, Status> {
        self.authenticate(&request).await?;
        Ok(reply(
            self.supervisor.stop(&selection(request.into_inner())),
        ))
    }

    async fn kill(
        &self,
        request: Request<proto::SelectRequest>,
    ) -> Result<Response<proto::ActionResponse>, Status> {
        self.authenticate(&request).await?;
        Ok(reply(
            self.supervisor.kill(&selection(request.into_inner())),
        ))
    }

    async fn restart(
        &self,
        request: Request<proto::SelectRequest>,
    ) -> Result<Response<proto::ActionResponse>, Status> {
        self.authenticate(&request).await?;
        Ok(reply(
            self.supervisor.restart(&selection(request.into_inner())),
        ))
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
