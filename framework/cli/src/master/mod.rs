//! The master: starts every server of `config/servers.json`, keeps them
//! running and answers the `shaddock` CLI.
//!
//! * [`supervisor`] owns the server processes (spawn or adopt, graceful
//!   stop, crash log, auto-restart with backoff, "failed" after repeated
//!   start failures).
//! * [`records`] is `logs/master.pids.json`: pids, start times, entries
//!   and the membership token, so that the next master adopts the servers
//!   of one that died instead of starting second copies.
//! * [`membership`] is the stream every server opens at start-up; the
//!   master pushes the live server list over it and asks servers to stop.
//! * [`actions`] passes operators' admin actions (broadcast, kick, drain,
//!   close-room) to servers over their membership streams.
//! * [`admin`] is the CLI's API, authenticated against
//!   `config/adminUser.json` ([`auth`]).
//! * The *server* side of the membership stream is a discovery backend of
//!   the runtime: `shaddock::discovery::master`.
//!
//! One tonic server on the `master.json` host:port carries both services.
//! See `docs/cli.md` for the design and its reasons.

pub mod actions;
pub mod admin;
pub mod auth;
pub mod config;
pub mod guard;
pub mod hosts;
pub mod membership;
pub mod procinfo;
pub mod rates;
pub mod records;
pub mod scrape;
pub mod supervisor;

/// Generated types of `proto/admin.proto`, plus the membership types the
/// runtime generates from its `proto/membership.proto` (the master serves
/// that stream; servers are its clients).
#[allow(clippy::all, missing_docs)]
pub mod proto {
    tonic::include_proto!("shaddock.admin");
    pub use shaddock::discovery::master::proto::*;
}

use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use tonic::transport::server::TcpIncoming;

use self::supervisor::{Selection, Supervisor, SupervisorConfig, WebServer};

/// How to run a master.
#[derive(Debug, Clone)]
pub struct MasterOptions {
    /// The app folder (holds `config/` and `logs/`).
    pub app_dir: PathBuf,
    pub env: String,
    /// The app's server binary, started once per server.
    pub server_bin: PathBuf,
    /// Extra arguments before `--env E --server-id ID`.
    pub server_args: Vec<String>,
    /// The web server binary, if the app has one.
    pub web_bin: Option<PathBuf>,
    /// Which servers to start at once (`None` = all). The others are known
    /// (and listed as `stopped`) and can be started later.
    pub only: Option<Selection>,
    /// Auto-restart of crashed servers; default: on in `development`.
    pub auto_restart: Option<bool>,
    /// Graceful stop budget per server before SIGKILL.
    pub stop_timeout: Duration,
    /// Supervise only the servers placed on this host (`start --host`).
    pub supervise_host: Option<String>,
}

impl MasterOptions {
    pub fn new(app_dir: PathBuf, env: String, server_bin: PathBuf) -> Self {
        MasterOptions {
            app_dir,
            env,
            server_bin,
            server_args: Vec::new(),
            web_bin: None,
            only: None,
            auto_restart: None,
            stop_timeout: Duration::from_secs(10),
            supervise_host: None,
        }
    }
}

/// Runs the master until `shutdown` resolves or an admin calls `Shutdown`,
/// then stops every server gracefully and returns.
///
/// If the records of an earlier master of this app are there and that
/// master is dead, the servers they name that still run are adopted (with
/// that master's token, so their membership streams rejoin); only the
/// others are started. If that master still runs, this one refuses to.
pub async fn run(opts: MasterOptions, shutdown: impl Future<Output = ()>) -> anyhow::Result<()> {
    let began = Instant::now();
    let config_dir = config::config_dir(&opts.app_dir);
    let master = config::load_master(&config_dir, &opts.env)?;
    let all_servers = config::load_servers(&config_dir, &opts.env)?;
    let etcd = shaddock::config::EtcdConfig::load(&config_dir, &opts.env)?;
    let placement = hosts::Placement::new(&opts, &master, etcd.as_ref(), &all_servers)?;
    let servers = placement.servers_of_this_host(all_servers);
    let users = auth::AdminUsers::load(&config_dir.join("adminUser.json"))?;
    let log_dir = placement.log_dir(&opts.app_dir);
    std::fs::create_dir_all(&log_dir)
        .with_context(|| format!("cannot create {}", log_dir.display()))?;

    let addr = format!("{}:{}", placement.admin_host(&master), master.port);
    let previous = records::Records::read(&log_dir).unwrap_or_else(|e| {
        tracing::warn!("ignoring the records of an earlier master: {e}");
        None
    });
    if let Some(prev) = &previous
        && prev.master_alive()
    {
        bail!(
            "a master of this app is still running (pid {}, recorded in {}) but this one \
             cannot replace it: `shaddock list` / `shaddock stop` talk to it, \
             `shaddock kill --force` kills it and its servers if it hangs",
            prev.master,
            records::path(&log_dir).display()
        );
    }
    let (adoptees, gone) = previous
        .as_ref()
        .map(records::Records::split_alive)
        .unwrap_or_default();
    if let Some(prev) = previous.as_ref().filter(|_| !adoptees.is_empty())
        && (prev.env != opts.env || prev.addr != addr)
    {
        bail!(
            "servers of an earlier master (env {}, master address {}) still run: {}; this master \
             (env {}, address {addr}) cannot adopt them. Start it with their env and \
             config/master.json, or kill them with `shaddock kill --force`",
            prev.env,
            prev.addr,
            adoptees
                .iter()
                .map(|a| format!("{} (pid {})", a.info.id, a.pid))
                .collect::<Vec<_>>()
                .join(", "),
            opts.env,
        );
    }
    let listener = tokio::net::TcpListener::bind(&addr)
        .await
        .with_context(|| {
            format!(
                "cannot listen on the master address {addr} (config/master.json): \
             is a master already running? try `shaddock list`"
            )
        })?;
    // Adopted servers hold the earlier master's token: keep it so their
    // membership streams (they reconnect with backoff) are accepted.
    let token = match previous.as_ref().filter(|_| !adoptees.is_empty()) {
        Some(prev) if !prev.token.is_empty() => prev.token.clone(),
        _ => auth::random_token(32)?,
    };
    let web = placement
        .runs_web(&master)
        .then_some(())
        .and(opts.web_bin.clone())
        .map(|bin| {
            let w = master.web.clone();
            WebServer {
                bin,
                host: w.host,
                port: w.port,
            }
        });
    let cfg = SupervisorConfig {
        work_dir: config_dir
            .parent()
            .map(|p| p.to_path_buf())
            .unwrap_or_else(|| opts.app_dir.clone()),
        env: opts.env.clone(),
        server_bin: opts.server_bin.clone(),
        server_args: opts.server_args.clone(),
        web,
        auto_restart_default: opts.auto_restart.unwrap_or(opts.env == "development"),
        master_addr: addr.clone(),
        token: token.clone(),
        log_dir: log_dir.clone(),
        stop_timeout: opts.stop_timeout,
        supervisor_name: placement.name.clone(),
        membership_in_etcd: etcd.is_some(),
    };
    let supervisor = Supervisor::new(cfg, servers);
    // Before the membership service answers: a server added at run time is
    // known only from the records.
    let adopted = supervisor.adopt(adoptees);
    supervisor.note_gone(&gone);
    supervisor.write_records();
    // With etcd, this supervisor is listed for the others (`list`, and
    // `stop`/`kill`/`restart` of a server on another host, reach it).
    let registration = match &etcd {
        Some(etcd) => Some(hosts::register(etcd, &placement.name, &addr).await?),
        None => None,
    };
    // Supervisors of several hosts trust each other through the cluster
    // secret (passed-on requests: see `hosts`).
    let secret = shaddock::config::ClusterSecret::load(&config_dir, &opts.env)?;
    let peers = etcd
        .clone()
        .map(|etcd| hosts::Peers::new(etcd, placement.name.clone(), secret.clone()));
    let peer_key = etcd
        .as_ref()
        .map(|_| shaddock::cluster::auth::KeyCheck::new(&master.id, secret.clone()));
    let dispatcher = Arc::new(actions::Dispatcher::default());
    let admin = admin::AdminService::new(
        supervisor.clone(),
        users,
        master.id.clone(),
        opts.env.clone(),
        config_dir.clone(),
    )
    .with_peers(peers)
    .with_cluster_key(peer_key)
    .with_placement(placement.clone())
    .with_actions(Arc::clone(&dispatcher));
    let members =
        membership::MembershipService::new(supervisor.clone(), token).with_actions(dispatcher);
    let server_stop = tokio_util::sync::CancellationToken::new();
    let server_stop2 = server_stop.clone();
    let server = tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(proto::admin_server::AdminServer::new(admin))
            .add_service(proto::membership_server::MembershipServer::new(members))
            .serve_with_incoming_shutdown(
                TcpIncoming::from(listener).with_nodelay(Some(true)),
                async move { server_stop2.cancelled().await },
            ),
    );
    supervisor::out_line(&format!(
        "[master] {} listening on {addr} (env {})",
        master.id, opts.env
    ));
    tracing::debug!(master = %master.id, %addr, "master started");
    let started = supervisor.start(&opts.only.clone().unwrap_or_default());
    for e in &started.errors {
        supervisor::out_line(&format!("[master] {e}"));
    }
    if !adopted.is_empty() {
        supervisor::out_line(&format!(
            "[master] adopted {} running server(s) of an earlier master in {} ms; started {}",
            adopted.len(),
            began.elapsed().as_millis(),
            started.ids.len()
        ));
    }

    // Tell the operator when everything asked for is up (or what failed).
    let announced = Arc::new(AtomicBool::new(false));
    let (watch, only, flag) = (
        supervisor.clone(),
        opts.only.clone().unwrap_or_default(),
        announced.clone(),
    );
    let ready = tokio::spawn(async move {
        while !announce_readiness(&watch, &only, &flag, began) {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    });

    let admin_shutdown = supervisor.shutdown_token();
    tokio::select! {
        _ = shutdown => supervisor::out_line("[master] stop requested, stopping every server"),
        _ = admin_shutdown.cancelled() => supervisor::out_line("[master] shutdown requested by admin, stopping every server"),
    }
    // A stop can arrive between two polls, after every server came up: say
    // so before stopping them (once: the flag guards the poller's line).
    ready.abort();
    let _ = ready.await;
    announce_readiness(
        &supervisor,
        &opts.only.clone().unwrap_or_default(),
        &announced,
        began,
    );
    supervisor.stop_all_and_wait().await;
    if let Some(registration) = registration {
        registration.leave().await;
    }
    server_stop.cancel();
    if let Ok(Ok(Err(e))) = tokio::time::timeout(Duration::from_secs(3), server).await {
        tracing::warn!("admin API ended with an error: {e}");
    }
    supervisor.remove_records();
    supervisor::out_line("[master] all servers stopped, bye");
    Ok(())
}

/// Prints, once, that every selected server is up or which failed; returns
/// whether that is settled.
fn announce_readiness(
    supervisor: &Supervisor,
    only: &Selection,
    announced: &AtomicBool,
    began: Instant,
) -> bool {
    match supervisor.readiness(only) {
        Ok(None) => false,
        Ok(Some(count)) => {
            if !announced.swap(true, Ordering::SeqCst) {
                supervisor::out_line(&format!(
                    "[master] all servers are up: {count} servers in {:.1} s",
                    began.elapsed().as_secs_f64()
                ));
            }
            true
        }
        Err(failed) => {
            if !announced.swap(true, Ordering::SeqCst) {
                supervisor::out_line("[master] some servers failed to start:");
                for f in failed {
                    supervisor::out_line(&format!("[master]   {f}"));
                }
            }
            true
        }
    }
}
