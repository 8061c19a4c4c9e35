//! The server launcher: an app's `main` in a few lines.
//!
//! Every server of an app is the same binary, started once per server with
//! `--env <env> --server-id <id>` (what `shaddock start`, `scripts/cluster.sh`
//! and Pomelo's `pomelo start` do). The launcher does the plumbing every such
//! process needs, so the app only registers handlers, routers and remotes:
//!
//! ```text
//! fn main() -> std::process::ExitCode {
//!     shaddock::launch::run(|s| {
//!         s.handler("gate.gateHandler.queryEntry", gate_handler::query_entry)
//!             .route("chat", by_room)
//!             .remote("chat", |app| ChatRemoteServer::new(ChatRemote::new(app)))
//!             .connector("gate", ConnectorOptions { heartbeat: None, use_dict: false, ..Default::default() })
//!     })
//! }
//! ```
//!
//! [`run`] then:
//! 1. parses the command line ([`LaunchArgs`]: `--env` / `SHADDOCK_ENV`,
//!    `--server-id` / `SHADDOCK_SERVER_ID`, `--config-dir` (`./config`),
//!    `--log-dir` (`./logs`)); anything after the flags (servers.json `args`)
//!    reaches the app as [`Setup::extra_args`];
//! 2. loads `servers.json` ([`Topology::load`], with the `SHADDOCK_SERVERS__…`
//!    overrides), `dictionary.json` and the cluster secret
//!    ([`ClusterSecret::load`]: `SHADDOCK_CLUSTER_SECRET` or
//!    `config/cluster.json`; required with `--env production`, a warning
//!    elsewhere) and `connector.json` (the per-client budgets of this
//!    server's type over the app's [`ConnectorOptions`]), and finds this
//!    server;
//! 3. logs to `<log-dir>/<server-id>.log` (and stderr), as text or JSON,
//!    at the server's level (`config/log.json`, [`LogConfig`](crate::config::LogConfig);
//!    `RUST_LOG` wins);
//! 4. calls the app's setup closure, then refuses a servers.json whose server
//!    types the app registered nothing for (a typo would otherwise start a
//!    server that serves nothing);
//! 5. builds the [`Cluster`](crate::cluster::Cluster) (routers) and the
//!    [`App`] (handlers, remotes) with its [`Discovery`] backend — etcd
//!    when `config/master.json` has an `etcd` section, else the master's
//!    stream when the master started the process (`SHADDOCK_MASTER` set),
//!    else the static list of servers.json —
//!    serves until [`shutdown_signal`] (Ctrl-C, SIGTERM) or the master's stop
//!    command, and shuts down gracefully.
//!
//! Any failure — bad arguments, a config error, a port in use — is printed
//! as one clear line on stderr and the process exits with status 1 (2 for a
//! usage error), so a supervisor sees a failed start.

use std::collections::BTreeSet;
use std::ffi::OsString;
use std::future::Future;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::app::{App, AppBuilder};
use crate::cluster::{ClusterBuilder, ClusterOptions, RemoteService};
use crate::config::{
    ClusterSecret, ConnectorLimits, EtcdConfig, ServerInfo, Topology, env_from_args_or_var,
    load_dictionary, missing_secret_error,
};
use crate::connector::ConnectorOptions;
use crate::discovery::etcd::EtcdDiscovery;
use crate::discovery::master::{MasterDiscovery, server_info_from_env};
use crate::discovery::{Discovery, StaticDiscovery};
use crate::handler::{HandlerError, Route};
use crate::router::Router;
use crate::session::Session;

const USAGE: &str = "\
One server of a Shaddock app (one process per servers.json entry)

Usage: <app> --server-id <ID> [OPTIONS] [EXTRA]...

Options:
      --server-id <ID>     Id of this server in servers.json, e.g. connector-server-1 [env: SHADDOCK_SERVER_ID]
      --env <ENV>          Environment section of the config files [env: SHADDOCK_ENV] [default: development]
      --config-dir <DIR>   Folder holding servers.json (and dictionary.json) [default: config]
      --log-dir <DIR>      Folder for <server-id>.log [default: logs]
  -h, --help               Print help

Arguments after the options (servers.json `args`) reach the app as Setup::extra_args.";

/// Command line of a server process.
///
/// Parsed with `lexopt` rather than clap: every server process links this,
/// and an app should not compile a full CLI framework for four flags.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LaunchArgs {
    /// Environment section of the config files (`SHADDOCK_ENV`, default `development`).
    pub env: Option<String>,
    /// Id of this server in servers.json, e.g. connector-server-1.
    pub server_id: String,
    /// Folder holding servers.json (and dictionary.json).
    pub config_dir: PathBuf,
    /// Folder for `<server-id>.log`.
    pub log_dir: PathBuf,
    /// Extra arguments (servers.json `args`), handed to the app.
    pub extra: Vec<String>,
}

/// Why the command line was not accepted.
#[derive(Debug)]
pub enum ArgsError {
    /// `--help` was asked for: print [`ArgsError::usage`] and exit 0.
    Help,
    /// A usage error: print it with the usage and exit 2.
    Usage(String),
}

impl ArgsError {
    /// The usage text.
    pub fn usage() -> &'static str {
        USAGE
    }
}

impl LaunchArgs {
    /// Parses the process's arguments (and `SHADDOCK_SERVER_ID`).
    pub fn from_env() -> Result<Self, ArgsError> {
        Self::parse_from(std::env::args_os().skip(1))
    }

    /// Parses `args` (without the program name).
    pub fn parse_from(
        args: impl IntoIterator<Item = impl Into<OsString>>,
    ) -> Result<Self, ArgsError> {
        use lexopt::prelude::*;
        let usage = |e: lexopt::Error| ArgsError::Usage(e.to_string());
        let string = |v: OsString, flag: &str| {
            v.into_string()
                .map_err(|_| ArgsError::Usage(format!("the value of {flag} is not valid UTF-8")))
        };
        let mut parser = lexopt::Parser::from_args(args);
        let mut env = None;
        let mut server_id = std::env::var("SHADDOCK_SERVER_ID").ok();
        let mut config_dir = PathBuf::from("config");
        let mut log_dir = PathBuf::from("logs");
        let mut extra = Vec::new();
        while let Some(arg) = parser.next().map_err(usage)? {
            match arg {
                Long("env") => env = Some(string(parser.value().map_err(usage)?, "--env")?),
                Long("server-id") => {
                    server_id = Some(string(parser.value().map_err(usage)?, "--server-id")?)
                }
                Long("config-dir") => config_dir = parser.value().map_err(usage)?.into(),
                Long("log-dir") => log_dir = parser.value().map_err(usage)?.into(),
                Short('h') | Long("help") => return Err(ArgsError::Help),
                Value(first) => {
                    // Everything from the first positional on is the app's.
                    extra.push(string(first, "an extra argument")?);
                    for rest in parser.raw_args().map_err(usage)? {
                        extra.push(string(rest, "an extra argument")?);
                    }
                }
                other => return Err(usage(other.unexpected())),
            }
        }
        let server_id = server_id.ok_or_else(|| {
            ArgsError::Usage(
                "the argument --server-id <ID> is required (or set SHADDOCK_SERVER_ID)".into(),
            )
        })?;
        Ok(LaunchArgs {
            env,
            server_id,
            config_dir,
            log_dir,
            extra,
        })
    }
}

/// What the app's setup closure configures: handlers, filters, routers,
/// remotes, connector options per server type. It also tells the app where
/// it runs ([`server`](Self::server), [`topology`](Self::topology)), for
/// Pomelo-style `app.configure(env, type, ...)` branches.
pub struct Setup {
    server: ServerInfo,
    topology: Topology,
    extra: Vec<String>,
    app: AppBuilder,
    cluster: ClusterBuilder,
    cluster_options: ClusterOptions,
    connectors: Vec<(String, ConnectorOptions)>,
    types: BTreeSet<String>,
    discovery: Option<Arc<dyn Discovery>>,
    etcd: Option<EtcdConfig>,
    /// Where the config files are (TLS files are relative to it).
    config_dir: PathBuf,
    secret: Option<ClusterSecret>,
    cluster_tls: Option<crate::cluster::tls::ClusterTls>,
    limits: ConnectorLimits,
    /// `serverProtos.json` / `clientProtos.json`, when the app has them.
    protos: Option<Arc<crate::protocol::Protos>>,
}

impl Setup {
    fn new(
        server: ServerInfo,
        topology: Topology,
        extra: Vec<String>,
        etcd: Option<EtcdConfig>,
    ) -> Self {
        Setup {
            etcd,
            config_dir: PathBuf::from("config"),
            secret: None,
            cluster_tls: None,
            limits: ConnectorLimits::default(),
            protos: None,
            app: App::builder(server.clone()),
            cluster: ClusterBuilder::new(topology.servers.clone()),
            cluster_options: ClusterOptions::default(),
            connectors: Vec::new(),
            types: BTreeSet::new(),
            discovery: None,
            server,
            topology,
            extra,
        }
    }

    /// This server's servers.json entry.
    pub fn server(&self) -> &ServerInfo {
        &self.server
    }

    /// Every server of the environment, in servers.json order.
    pub fn topology(&self) -> &Topology {
        &self.topology
    }

    /// The environment (`development`, `production`, …).
    pub fn env(&self) -> &str {
        &self.topology.env
    }

    /// Arguments after the flags (servers.json `args`).
    pub fn extra_args(&self) -> &[String] {
        &self.extra
    }

    /// Registers a handler (`serverType.handler.method`). Register the
    /// handlers of every server type: each process serves its own type and
    /// computes the route dictionary from all of them.
    pub fn handler<F, Fut, Req, Resp>(mut self, route: &str, f: F) -> Self
    where
        F: Fn(App, Session, Req) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Resp, HandlerError>> + Send + 'static,
        Req: DeserializeOwned + Send + 'static,
        Resp: Serialize + Send + 'static,
    {
        if let Ok(r) = Route::parse(route) {
            self.types.insert(r.server_type.to_string());
        }
        self.app = self.app.handler(route, f);
        self
    }

    /// Registers a handler only servers may call; a client calling it gets
    /// the same answer as for an unknown route (see
    /// [`AppBuilder::server_handler`]).
    pub fn server_handler<F, Fut, Req, Resp>(mut self, route: &str, f: F) -> Self
    where
        F: Fn(App, Session, Req) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Resp, HandlerError>> + Send + 'static,
        Req: DeserializeOwned + Send + 'static,
        Resp: Serialize + Send + 'static,
    {
        self = self.handler(route, f);
        self.app = self.app.server_only(route);
        self
    }

    /// The router of `server_type` (Pomelo's `app.route`).
    pub fn route(mut self, server_type: &str, router: impl Router) -> Self {
        self.cluster = self.cluster.route(server_type, router);
        self
    }

    /// A typed gRPC remote served by every server of `server_type`, built
    /// from the running app (`|app| ChatRemoteServer::new(ChatRemote::new(app))`).
    pub fn remote<S: RemoteService>(
        mut self,
        server_type: &str,
        make: impl Fn(&App) -> S + Send + Sync + 'static,
    ) -> Self {
        self.types.insert(server_type.to_string());
        self.app = self.app.remote_with(server_type, make);
        self
    }

    /// Connector options of the frontends of `server_type` (default:
    /// [`ConnectorOptions::default`]). `dictionary.json` routes are appended
    /// to `extra_dict_routes`.
    pub fn connector(mut self, server_type: &str, options: ConnectorOptions) -> Self {
        self.types.insert(server_type.to_string());
        self.connectors.push((server_type.to_string(), options));
        self
    }

    /// Declares the channels of `server_type` sharded by key: each lives on
    /// the server that type's router picks for its name and is rebuilt
    /// there after a restart or a membership change (see
    /// [`AppBuilder::shard`]).
    pub fn shard(mut self, server_type: &str) -> Self {
        self.app = self.app.shard(server_type);
        self
    }

    /// What to do when a sharded channel loses a member whose connector is
    /// gone (see [`AppBuilder::on_member_lost`]).
    pub fn on_member_lost(
        mut self,
        hook: impl Fn(App, Arc<crate::channel::Channel>, String) + Send + Sync + 'static,
    ) -> Self {
        self.app = self.app.on_member_lost(hook);
        self
    }

    /// What a frontend does with a session rebuilt after its connector
    /// was lost (see [`AppBuilder::on_session_restored`]).
    pub fn on_session_restored(
        mut self,
        hook: impl Fn(App, crate::session::Session) + Send + Sync + 'static,
    ) -> Self {
        self.app = self.app.on_session_restored(hook);
        self
    }

    /// Keeps the cluster-wide uid directory on the servers of
    /// `server_type` (see [`AppBuilder::uid_directory`]).
    pub fn uid_directory(mut self, server_type: &str) -> Self {
        self.app = self.app.uid_directory(server_type);
        self
    }

    /// An operator's admin action (see [`AppBuilder::admin_action`]).
    pub fn admin_action<F, Fut>(mut self, name: &str, action: F) -> Self
    where
        F: Fn(App, serde_json::Value) -> Fut + Send + Sync + 'static,
        Fut: std::future::Future<Output = crate::app::admin::ActionResult> + Send + 'static,
    {
        self.app = self.app.admin_action(name, action);
        self
    }

    /// A read-only admin query (see [`AppBuilder::admin_query`]).
    pub fn admin_query<F, Fut>(mut self, name: &str, query: F) -> Self
    where
        F: Fn(App, serde_json::Value) -> Fut + Send + Sync + 'static,
        Fut: std::future::Future<Output = crate::app::admin::ActionResult> + Send + 'static,
    {
        self.app = self.app.admin_query(name, query);
        self
    }

    /// Timeouts and bounds of the cluster transport.
    pub fn cluster_options(mut self, options: ClusterOptions) -> Self {
        self.cluster_options = options;
        self
    }

    /// Pomelo's `checkClient(type, version)` for every frontend of the app
    /// (see [`AppBuilder::check_client`]): `false` → handshake code 501 and
    /// the connection closes.
    pub fn check_client(
        mut self,
        check: impl Fn(Option<&str>, Option<&str>) -> bool + Send + Sync + 'static,
    ) -> Self {
        self.app = self.app.check_client(check);
        self
    }

    /// Anything else on the [`AppBuilder`] (filters, …).
    pub fn configure_app(mut self, f: impl FnOnce(AppBuilder) -> AppBuilder) -> Self {
        self.app = f(self.app);
        self
    }

    /// Anything else on the [`ClusterBuilder`] (default router, …).
    pub fn configure_cluster(mut self, f: impl FnOnce(ClusterBuilder) -> ClusterBuilder) -> Self {
        self.cluster = f(self.cluster);
        self
    }

    /// Declares a server type that has no handler, remote or connector
    /// options of its own (so servers.json may list it).
    pub fn server_type(mut self, server_type: &str) -> Self {
        self.types.insert(server_type.to_string());
        self
    }

    /// The server types the app registered something for.
    pub fn server_types(&self) -> Vec<&str> {
        self.types.iter().map(String::as_str).collect()
    }

    /// How this server learns the cluster's membership (default: etcd when
    /// master.json has an `etcd` section, else the master's stream when the
    /// master started this process, else the static list of servers.json).
    pub fn discovery(mut self, discovery: Arc<dyn Discovery>) -> Self {
        self.discovery = Some(discovery);
        self
    }

    /// Validates the topology against the registered types and builds the
    /// app of this server.
    pub fn build(self, extra_dict_routes: Vec<String>) -> anyhow::Result<App> {
        self.topology.validate_types(&self.server_types())?;
        let mut options = self
            .connectors
            .iter()
            .rev()
            .find(|(t, _)| *t == self.server.server_type)
            .map(|(_, o)| o.clone())
            .unwrap_or_default()
            .with_limits(&self.limits)
            .with_transport(&self.limits, &self.config_dir)
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        options.extra_dict_routes.extend(extra_dict_routes);
        // connector.json's `use-protobuf: false` keeps this frontend on JSON.
        if self.limits.use_protobuf == Some(false) {
            options.protos = None;
        } else if options.protos.is_none() {
            options.protos = self.protos;
        }
        let cluster = (self.cluster.secret(self.secret).tls(self.cluster_tls))
            .options(self.cluster_options)
            .build();
        let master = MasterDiscovery::from_env(&self.server.id);
        let discovery: Arc<dyn Discovery> = match (self.discovery, self.etcd, master) {
            (Some(chosen), _, _) => chosen,
            (None, Some(etcd), master) => Arc::new(EtcdDiscovery::new(etcd).with_agent(master)),
            (None, None, Some(master)) => Arc::new(master),
            (None, None, None) => Arc::new(StaticDiscovery),
        };
        Ok(self
            .app
            .connector(options)
            .cluster(cluster)
            .discovery(discovery)
            .build())
    }
}

/// Loads the config for `args` and returns this server's [`Setup`] (before
/// the app's closure runs) plus the `dictionary.json` routes.
pub fn prepare(args: &LaunchArgs) -> anyhow::Result<(Setup, Vec<String>)> {
    let env = env_from_args_or_var(args.env.clone());
    let topology = Topology::load(&args.config_dir, &env)?;
    let dict = load_dictionary(&args.config_dir)?;
    let etcd = EtcdConfig::load(&args.config_dir, &env)?;
    // A server added at run time (`shaddock add`) is in no servers.json:
    // the master passes its entry in the environment.
    let from_master = || server_info_from_env(&args.server_id);
    let Some(server) = topology
        .server(&args.server_id)
        .cloned()
        .or_else(from_master)
    else {
        let ids: Vec<&str> = topology.servers.iter().map(|s| s.id.as_str()).collect();
        anyhow::bail!(
            "server id `{}` is not in {} [{env}]; the servers there are: {}",
            args.server_id,
            args.config_dir.join(crate::config::SERVERS_FILE).display(),
            ids.join(", ")
        );
    };
    let secret = ClusterSecret::load(&args.config_dir, &env)?;
    if secret.is_none() && env == PRODUCTION {
        anyhow::bail!("{}", missing_secret_error(&args.config_dir, &env));
    }
    let limits = ConnectorLimits::load_for(
        &args.config_dir,
        &env,
        &server.server_type,
        Some(&server.id),
    )?;
    let mut setup = Setup::new(server, topology, args.extra.clone(), etcd);
    setup.secret = secret;
    setup.limits = limits;
    setup.protos = crate::config::load_protos(&args.config_dir, &env)?;
    setup.cluster_tls = match crate::config::ClusterTlsFiles::load(&args.config_dir, &env)? {
        Some(files) => Some(
            crate::cluster::tls::ClusterTls::load(&files).map_err(|e| anyhow::anyhow!("{e}"))?,
        ),
        None => None,
    };
    setup.config_dir = args.config_dir.clone();
    Ok((setup, dict))
}

/// The environment that refuses to run an unauthenticated cluster port.
pub const PRODUCTION: &str = "production";

/// Runs one server process: parses the command line, then [`run_with`].
/// Returns the process exit code (use it as `main`'s return value).
pub fn run(setup: impl FnOnce(Setup) -> Setup) -> ExitCode {
    match LaunchArgs::from_env() {
        Ok(args) => run_with(args, setup),
        Err(ArgsError::Help) => {
            println!("{USAGE}");
            ExitCode::SUCCESS
        }
        Err(ArgsError::Usage(e)) => {
            eprintln!("error: {e}\n\n{USAGE}");
            ExitCode::from(2)
        }
    }
}

/// Runs one server process with already parsed arguments until
/// [`shutdown_signal`]; errors are printed on stderr (exit status 1).
pub fn run_with(args: LaunchArgs, setup: impl FnOnce(Setup) -> Setup) -> ExitCode {
    match serve(args, setup) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("server failed: {e:#}");
            // Not `eprintln!`: it panics when nobody reads stderr any more
            // (the master that piped it died).
            use std::io::Write;
            let _ = writeln!(std::io::stderr(), "error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn serve(args: LaunchArgs, setup: impl FnOnce(Setup) -> Setup) -> anyhow::Result<()> {
    let (base, dict) = prepare(&args)?;
    let log = crate::config::LogConfig::load(
        &args.config_dir,
        base.env(),
        &base.server.id,
        &base.server.server_type,
    )?;
    let log = crate::logging::LogSettings {
        json: log.json,
        level: log.level,
        level_source: log.level_source,
        otlp_endpoint: log.otlp_endpoint,
        service: base.server.server_type.clone(),
    };
    let _log = crate::logging::init_with(&args.server_id, &args.log_dir, &log)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| anyhow::anyhow!("cannot start the tokio runtime: {e}"))?;
    if base.secret.is_none() {
        tracing::warn!(
            "cluster port NOT authenticated: {} (allowed outside `{PRODUCTION}` only)",
            missing_secret_error(&args.config_dir, base.env())
        );
    }
    crate::telemetry::install(&base.server.id, &base.server.server_type)
        .map_err(|e| anyhow::anyhow!(e))?;
    runtime.block_on(async move {
        if let Some(port) = base.server.metrics_port {
            let host = (base.server.bind_host.as_ref()).unwrap_or(&base.server.host);
            let addr = crate::telemetry::serve(&format!("{host}:{port}")).await?;
            tracing::info!(server = %base.server.id, %addr, "metrics and health on http://{addr}/metrics");
        }
        let app = setup(base).build(dict)?;
        let server = app.server().clone();
        tracing::info!(
            server = %server.id,
            server_type = %server.server_type,
            port = ?server.port,
            client_port = ?server.client_port,
            "server starting"
        );
        app.run(shutdown_signal())
            .await
            .map_err(|e| anyhow::anyhow!("server `{}` cannot run: {e}", server.id))?;
        tracing::info!(server = %server.id, "server stopped");
        Ok(())
    })
}

/// Resolves when the process is asked to stop gracefully: Ctrl-C or
/// SIGTERM (what `shaddock stop` and `kill` send). Pass it to
/// [`App::run`], which also stops when its discovery backend asks (the
/// master's stop command).
pub async fn shutdown_signal() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let term = async {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => tracing::info!("Ctrl-C received, shutting down"),
        _ = term => tracing::info!("SIGTERM received, shutting down"),
    }
}
