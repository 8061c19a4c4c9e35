//! Command-line syntax (clap derive). Every command and option has a help
//! text; `shaddock <command> --help` shows it.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

use super::exit::CliError;
use crate::master::proto;

/// Shaddock: run and manage a Pomelo-style game server cluster.
#[derive(Debug, Parser)]
#[command(name = "shaddock", version, propagate_version = true)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create a new app (game-server with gate, connector and a `room`
    /// backend, web-server, config with a fresh admin password, ...).
    Init(InitArgs),
    /// Build the app if needed, start the master and every server of
    /// config/servers.json (and the web server).
    Start(StartArgs),
    /// Run the master in the foreground without building (what `start -D`
    /// runs in the background).
    #[command(hide = true)]
    Master(StartArgs),
    /// Print every server: id, type, pid, ports, state, uptime,
    /// connections, memory, CPU, restarts.
    List(ListArgs),
    /// Stop servers gracefully (no id: every server, then the master).
    Stop(SelectArgs),
    /// Kill servers at once with SIGKILL (only processes this master
    /// started; no id: every server, then the master).
    Kill(KillArgs),
    /// Restart servers gracefully (by id, by type with -t, or all).
    Restart(SelectArgs),
    /// Start a new server at run time: `add id=connector-3
    /// serverType=connector host=127.0.0.1 port=4052 clientPort=3052
    /// frontend=true`. Every other server learns it.
    Add(AddArgs),
    /// Apply a changed config/servers.json to the running cluster: start
    /// the servers that were added, stop the ones that were removed,
    /// restart the ones whose entry changed. Servers added at run time
    /// with `add` are kept.
    Reload(ReloadArgs),
    /// Create or replace an admin user in config/adminUser.json with a new
    /// random password (printed once; only its hash is stored).
    AdminUser(AdminUserArgs),
    /// Send a system message to every connected user, or to one room
    /// (`-r ROOM`). Each user's page shows it as a system line.
    Broadcast(BroadcastArgs),
    /// Close a chat room: its members are disconnected with the reason and
    /// the room is gone (a newcomer finds it empty).
    CloseRoom(CloseRoomArgs),
    /// Drain frontends: they accept no new connection and the gate sends
    /// nobody there, while their current users keep chatting. Until the
    /// server's next restart.
    Drain(DrainArgs),
    /// Disconnect a user (the uid, e.g. `alice*lobby` in the chat) wherever
    /// it is connected; the client is told the reason.
    Kick(KickArgs),
}

#[derive(Debug, Clone, Args)]
pub struct BroadcastArgs {
    #[command(flatten)]
    pub admin: AdminArgs,
    /// The message.
    pub message: String,
    /// Only this room's members (default: every connected user).
    #[arg(short = 'r', long)]
    pub room: Option<String>,
}

#[derive(Debug, Clone, Args)]
pub struct CloseRoomArgs {
    #[command(flatten)]
    pub admin: AdminArgs,
    /// The room's id.
    pub room: String,
    /// What the members are told.
    #[arg(long, default_value = "closed by an administrator")]
    pub reason: String,
}

#[derive(Debug, Clone, Args)]
pub struct DrainArgs {
    #[command(flatten)]
    pub admin: AdminArgs,
    /// The frontends' server ids.
    #[arg(required = true)]
    pub ids: Vec<String>,
}

#[derive(Debug, Clone, Args)]
pub struct KickArgs {
    #[command(flatten)]
    pub admin: AdminArgs,
    /// The user's uid.
    pub uid: String,
    /// What the client is told.
    #[arg(long, default_value = "kicked by an administrator")]
    pub reason: String,
}

/// Where the app is and which environment of its config to use.
#[derive(Debug, Clone, Args)]
pub struct AppArgs {
    /// The app folder (holds config/ and logs/).
    #[arg(short = 'd', long = "directory", default_value = ".")]
    pub dir: PathBuf,
    /// Environment: the section of servers.json / master.json to use.
    #[arg(short = 'e', long = "env", default_value = "development")]
    pub env: String,
}

/// How to reach and authenticate to the master's admin API.
#[derive(Debug, Clone, Args)]
pub struct AdminArgs {
    #[command(flatten)]
    pub app: AppArgs,
    /// Master host (default: master.json). With etcd (several hosts): the
    /// host whose supervisor to ask; `start --host NAME` runs the
    /// supervisor of host NAME, which starts the servers of servers.json
    /// whose `host` is NAME.
    #[arg(short = 'H', long)]
    pub host: Option<String>,
    /// Master port (default: master.json).
    #[arg(short = 'P', long)]
    pub port: Option<u16>,
    /// Admin user name (default: config/.admin-credentials).
    #[arg(short = 'u', long, env = "SHADDOCK_ADMIN_USER")]
    pub username: Option<String>,
    /// Admin password (default: config/.admin-credentials).
    #[arg(
        short = 'p',
        long,
        env = "SHADDOCK_ADMIN_PASSWORD",
        hide_env_values = true
    )]
    pub password: Option<String>,
}

#[derive(Debug, Clone, Args)]
pub struct StartArgs {
    #[command(flatten)]
    pub admin: AdminArgs,
    /// Return once every server is up; the master keeps running in the
    /// background (output in logs/master.log).
    #[arg(short = 'D', long)]
    pub daemon: bool,
    /// Start only the servers of this type (joins a running master).
    #[arg(short = 't', long = "type")]
    pub server_type: Option<String>,
    /// Start only this server (joins a running master). Repeatable.
    #[arg(short = 'i', long = "id")]
    pub ids: Vec<String>,
    /// Do not run `cargo build` first.
    #[arg(long)]
    pub no_build: bool,
    /// Build and run the debug profile instead of release.
    #[arg(long)]
    pub debug: bool,
    /// The server binary to run (default: <target>/<profile>/game-server).
    #[arg(long)]
    pub server_bin: Option<PathBuf>,
    /// Extra argument put before `--env E --server-id ID` (repeatable).
    #[arg(long, allow_hyphen_values = true)]
    pub server_arg: Vec<String>,
    /// The web server binary (default: <target>/<profile>/web-server if it
    /// exists).
    #[arg(long)]
    pub web_bin: Option<PathBuf>,
    /// Do not start the web server.
    #[arg(long)]
    pub no_web: bool,
    /// Restart crashed servers (default: true in development).
    #[arg(long)]
    pub auto_restart: Option<bool>,
    /// Seconds a graceful stop may take before SIGKILL.
    #[arg(long, default_value_t = 10)]
    pub stop_timeout: u64,
    /// Seconds to wait for every server to come up.
    #[arg(long, default_value_t = 120)]
    pub timeout: u64,
}

#[derive(Debug, Clone, Args)]
pub struct ListArgs {
    #[command(flatten)]
    pub admin: AdminArgs,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Clone, Args)]
pub struct SelectArgs {
    #[command(flatten)]
    pub admin: AdminArgs,
    /// Server ids (none and no -t: every server).
    pub ids: Vec<String>,
    /// Every server of this type.
    #[arg(short = 't', long = "type")]
    pub server_type: Option<String>,
    /// Seconds to wait for the servers to reach the new state.
    #[arg(long = "timeout", default_value_t = 60)]
    pub timeout_secs: u64,
}

impl SelectArgs {
    pub fn timeout(&self) -> Duration {
        Duration::from_secs(self.timeout_secs)
    }
}

#[derive(Debug, Clone, Args)]
pub struct KillArgs {
    #[command(flatten)]
    pub select: SelectArgs,
    /// Do not ask the master (hung or unreachable): SIGKILL the pids in
    /// logs/master.pids.json, each only after checking in /proc that it
    /// still is that server (or that master) of this app.
    #[arg(short = 'f', long)]
    pub force: bool,
}

#[derive(Debug, Clone, Args)]
pub struct ReloadArgs {
    #[command(flatten)]
    pub admin: AdminArgs,
    /// Seconds to wait for the servers to reach their new state.
    #[arg(long = "timeout", default_value_t = 60)]
    pub timeout_secs: u64,
}

#[derive(Debug, Clone, Args)]
pub struct AddArgs {
    #[command(flatten)]
    pub admin: AdminArgs,
    /// key=value pairs: id, serverType, host, port, clientPort, frontend.
    #[arg(required = true)]
    pub pairs: Vec<String>,
    /// Seconds to wait for the new server to come up.
    #[arg(long = "timeout", default_value_t = 60)]
    pub timeout_secs: u64,
}

#[derive(Debug, Clone, Args)]
pub struct InitArgs {
    /// Folder to create the app in (must be empty or absent).
    pub dir: PathBuf,
    /// Crate name prefix / app name (default: the folder name).
    #[arg(long)]
    pub name: Option<String>,
    /// Depend on the framework at this path (default: the framework this
    /// `shaddock` was built from).
    #[arg(long, conflicts_with_all = ["framework_version", "framework_git"])]
    pub framework_path: Option<PathBuf>,
    /// Depend on this crates.io version of `shaddock`.
    #[arg(long, conflicts_with = "framework_git")]
    pub framework_version: Option<String>,
    /// Depend on the framework from this git repository.
    #[arg(long)]
    pub framework_git: Option<String>,
}

#[derive(Debug, Clone, Args)]
pub struct AdminUserArgs {
    /// The app folder.
    #[arg(short = 'd', long = "directory", default_value = ".")]
    pub dir: PathBuf,
    /// User name.
    #[arg(default_value = "admin")]
    pub username: String,
}

/// Parses `add`'s `key=value` pairs (Pomelo's syntax).
pub fn parse_add(pairs: &[String]) -> Result<proto::AddRequest, CliError> {
    let mut req = proto::AddRequest::default();
    for pair in pairs {
        let (k, v) = pair.split_once('=').ok_or_else(|| {
            CliError::new(super::exit::USAGE, format!("`{pair}` is not key=value"))
        })?;
        let port = |v: &str| -> Result<u32, CliError> {
            v.parse::<u16>()
                .ok()
                .filter(|p| *p != 0)
                .map(u32::from)
                .ok_or_else(|| CliError::new(super::exit::USAGE, format!("{k}={v}: not a port")))
        };
        match k {
            "id" => req.id = v.to_string(),
            "serverType" => req.server_type = v.to_string(),
            "host" => req.host = v.to_string(),
            "port" => req.port = Some(port(v)?),
            "clientPort" => req.client_port = Some(port(v)?),
            "frontend" => {
                req.frontend = match v {
                    "true" => true,
                    "false" => false,
                    _ => {
                        return Err(CliError::new(
                            super::exit::USAGE,
                            format!("frontend={v}: use true or false"),
                        ));
                    }
                }
            }
            _ => {
                return Err(CliError::new(
                    super::exit::USAGE,
                    format!(
                        "unknown key `{k}` (use id, serverType, host, port, clientPort, frontend)"
                    ),
                ));
            }
        }
    }
    for (name, value) in [
        ("id", &req.id),
        ("serverType", &req.server_type),
        ("host", &req.host),
    ] {
        if value.is_empty() {
            return Err(CliError::new(
                super::exit::USAGE,
                format!("{name}=... is required"),
            ));
        }
    }
    Ok(req)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_definition_is_valid() {
        Cli::command().debug_assert();
    }

    #[test]
    fn add_pairs() {
        let req = parse_add(&[
            "id=c3".into(),
            "serverType=connector".into(),
            "host=127.0.0.1".into(),
            "port=4052".into(),
            "clientPort=3052".into(),
            "frontend=true".into(),
        ])
        .unwrap();
        assert_eq!(req.port, Some(4052));
        assert!(req.frontend);
        assert!(parse_add(&["id=x".into()]).is_err());
        assert!(
            parse_add(&[
                "id=x".into(),
                "serverType=a".into(),
                "host=h".into(),
                "port=99999".into()
            ])
            .is_err()
        );
        assert!(parse_add(&["bogus".into()]).is_err());
    }
}
