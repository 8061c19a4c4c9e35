//! The CLI side of the admin API: finds the master's address, the admin
//! credentials, and maps gRPC failures to exit codes.
//!
//! Credentials come from, in order: `-u`/`-p`, `SHADDOCK_ADMIN_USER` /
//! `SHADDOCK_ADMIN_PASSWORD`, `config/.admin-credentials` (written by
//! `shaddock init`, mode 0600, git-ignored), then a prompt on the terminal.
//! The password never has to be on the command line (`-p` puts it in the
//! process list, and says so). It is sent once, to `Login`; later calls
//! carry the token.

use std::io::IsTerminal;
use std::path::Path;
use std::time::Duration;

use tonic::metadata::MetadataValue;
use tonic::transport::Channel;
use tonic::{Code, Request, Status};

use super::args::AdminArgs;
use super::exit::{self, CliError};
use crate::master::auth::{Credentials, PASSWORD_HEADER, TOKEN_HEADER, USER_HEADER};
use crate::master::{config, proto};

/// File (in the config folder) holding the CLI's admin credentials.
pub const CREDENTIALS_FILE: &str = ".admin-credentials";

/// Per-call deadline: admin calls are quick; a hung master must not hang
/// the CLI.
const CALL_TIMEOUT: Duration = Duration::from_secs(15);

pub struct AdminClient {
    inner: proto::admin_client::AdminClient<Channel>,
    /// From `Login`: sent instead of the password on every later call.
    token: String,
    addr: String,
}

/// The master address from `-H/-P` or `master.json`.
pub fn master_addr(a: &AdminArgs) -> Result<String, CliError> {
    let (host, port) = match (&a.host, a.port) {
        (Some(h), Some(p)) => (h.clone(), p),
        _ => {
            let entry = config::load_master(&config::config_dir(&a.app.dir), &a.app.env)?;
            (
                a.host.clone().unwrap_or(entry.host),
                a.port.unwrap_or(entry.port),
            )
        }
    };
    Ok(format!("{host}:{port}"))
}

/// Resolves the admin credentials (see the module docs).
pub fn credentials(a: &AdminArgs) -> Result<Credentials, CliError> {
    let file = config::config_dir(&a.app.dir).join(CREDENTIALS_FILE);
    let from_file = read_credentials(&file);
    let username = a
        .username
        .clone()
        .or_else(|| from_file.as_ref().map(|c| c.username.clone()));
    if a.password.is_some()
        && std::env::args().any(|arg| arg == "-p" || arg.starts_with("--password"))
    {
        eprintln!(
            "warning: -p/--password shows the password to every user of this machine (ps); \
             prefer SHADDOCK_ADMIN_PASSWORD, config/.admin-credentials or the prompt"
        );
    }
    let mut password = a
        .password
        .clone()
        .or_else(|| from_file.as_ref().map(|c| c.password.clone()));
    if password.is_none() && std::io::stdin().is_terminal() {
        let who = username.as_deref().unwrap_or("admin");
        password = rpassword::prompt_password(format!("admin password for `{who}`: ")).ok();
    }
    let username = username.or_else(|| password.as_ref().map(|_| "admin".to_string()));
    match (username, password) {
        (Some(username), Some(password)) => Ok(Credentials { username, password }),
        _ => Err(CliError::new(
            exit::AUTH,
            format!(
                "no admin credentials: pass -u/-p, set SHADDOCK_ADMIN_USER and \
                 SHADDOCK_ADMIN_PASSWORD, or keep {} (written by `shaddock init`)",
                file.display()
            ),
        )),
    }
}

fn read_credentials(path: &Path) -> Option<Credentials> {
    let text = std::fs::read_to_string(path).ok()?;
    serde_json::from_str(&text).ok()
}

/// Writes the credentials file with mode 0600.
pub fn write_credentials(path: &Path, creds: &Credentials) -> std::io::Result<()> {
    let json = serde_json::to_string_pretty(creds).map_err(std::io::Error::other)?;
    write_private(path, &json)
}

/// Writes `text` and a newline to `path`, readable by its owner only (0600).
pub fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts.open(path)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        f.set_permissions(std::fs::Permissions::from_mode(0o600))?;
    }
    writeln!(f, "{text}")
}

impl AdminClient {
    /// Connects to the master (exit code 3 when none answers).
    pub async fn connect(a: &AdminArgs) -> Result<AdminClient, CliError> {
        let addr = master_addr(a)?;
        let creds = credentials(a)?;
        AdminClient::connect_to(&addr, creds).await
    }

    pub async fn connect_to(addr: &str, creds: Credentials) -> Result<AdminClient, CliError> {
        let endpoint = Channel::from_shared(format!("http://{addr}"))
            .map_err(|e| CliError::error(format!("bad master address {addr}: {e}")))?
            .connect_timeout(Duration::from_secs(3))
            .timeout(CALL_TIMEOUT);
        let channel = endpoint.connect().await.map_err(|e| {
            CliError::new(
                exit::NO_MASTER,
                format!("no master answers at {addr} ({e}); start one with `shaddock start`"),
            )
        })?;
        let mut client = AdminClient {
            inner: proto::admin_client::AdminClient::new(channel),
            token: String::new(),
            addr: addr.to_string(),
        };
        client.login(&creds).await?;
        Ok(client)
    }

    /// Logs in once: the password crosses the wire here only; every later
    /// call carries the short-lived token.
    async fn login(&mut self, creds: &Credentials) -> Result<(), CliError> {
        let mut req = Request::new(proto::LoginRequest {});
        let user = MetadataValue::try_from(creds.username.as_str())
            .map_err(|_| CliError::new(exit::AUTH, "the user name has invalid characters"))?;
        let pass = MetadataValue::try_from(creds.password.as_str())
            .map_err(|_| CliError::new(exit::AUTH, "the password has invalid characters"))?;
        req.metadata_mut().insert(USER_HEADER, user);
        req.metadata_mut().insert(PASSWORD_HEADER, pass);
        match self.inner.login(req).await {
            Ok(resp) => {
                self.token = resp.into_inner().token;
                Ok(())
            }
            Err(s) => Err(self.map(s)),
        }
    }

    fn request<T>(&self, msg: T) -> Result<Request<T>, CliError> {
        let mut req = Request::new(msg);
        let token = MetadataValue::try_from(self.token.as_str())
            .map_err(|_| CliError::new(exit::AUTH, "the master sent an unusable token"))?;
        req.metadata_mut().insert(TOKEN_HEADER, token);
        Ok(req)
    }

    fn map(&self, status: Status) -> CliError {
        match status.code() {
            Code::Unauthenticated => CliError::new(
                exit::AUTH,
                format!("the master at {} refused: {}", self.addr, status.message()),
            ),
            Code::Unavailable | Code::Cancelled | Code::Unknown
                if status.message().contains("connect")
                    || status.message().contains("transport")
                    || status.message().contains("closed")
                    || status.code() == Code::Unavailable =>
            {
                CliError::new(
                    exit::NO_MASTER,
                    format!("no master answers at {} ({})", self.addr, status.message()),
                )
            }
            _ => CliError::error(format!(
                "{} (from the master at {})",
                status.message(),
                self.addr
            )),
        }
    }

    pub async fn list(&mut self) -> Result<proto::ListResponse, CliError> {
        let req = self.request(proto::ListRequest { local_only: false })?;
        match self.inner.list(req).await {
            Ok(r) => Ok(r.into_inner()),
            Err(s) => Err(self.map(s)),
        }
    }

    pub async fn start(
        &mut self,
        sel: proto::SelectRequest,
    ) -> Result<proto::ActionResponse, CliError> {
        let req = self.request(sel)?;
        match self.inner.start(req).await {
            Ok(r) => Ok(r.into_inner()),
            Err(s) => Err(self.map(s)),
        }
    }

    pub async fn stop(
        &mut self,
        sel: proto::SelectRequest,
    ) -> Result<proto::ActionResponse, CliError> {
        let req = self.request(sel)?;
        match self.inner.stop(req).await {
            Ok(r) => Ok(r.into_inner()),
            Err(s) => Err(self.map(s)),
        }
    }

    pub async fn kill(
        &mut self,
        sel: proto::SelectRequest,
    ) -> Result<proto::ActionResponse, CliError> {
        let req = self.request(sel)?;
        match self.inner.kill(req).await {
            Ok(r) => Ok(r.into_inner()),
            Err(s) => Err(self.map(s)),
        }
    }

    pub async fn restart(
        &mut self,
        sel: proto::SelectRequest,
    ) -> Result<proto::ActionResponse, CliError> {
        let req = self.request(sel)?;
        match self.inner.restart(req).await {
            Ok(r) => Ok(r.into_inner()),
            Err(s) => Err(self.map(s)),
        }
    }

    pub async fn add(&mut self, add: proto::AddRequest) -> Result<proto::ActionResponse, CliError> {
        let req = self.request(add)?;
        match self.inner.add(req).await {
            Ok(r) => Ok(r.into_inner()),
            Err(s) => Err(self.map(s)),
        }
    }

    pub async fn reload(&mut self) -> Result<proto::ReloadResponse, CliError> {
        let req = self.request(proto::ReloadRequest { local_only: false })?;
        match self.inner.reload(req).await {
            Ok(r) => Ok(r.into_inner()),
            Err(s) => Err(self.map(s)),
        }
    }

    pub async fn act(&mut self, act: proto::ActRequest) -> Result<proto::ActResponse, CliError> {
        let req = self.request(act)?;
        match self.inner.act(req).await {
            Ok(r) => Ok(r.into_inner()),
            Err(s) => Err(self.map(s)),
        }
    }

    pub async fn shutdown(&mut self) -> Result<proto::ActionResponse, CliError> {
        let req = self.request(proto::ShutdownRequest {})?;
        match self.inner.shutdown(req).await {
            Ok(r) => Ok(r.into_inner()),
            Err(s) => Err(self.map(s)),
        }
    }
}
