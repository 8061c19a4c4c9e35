//! The `shaddock` command-line tool: `init`, `start`, `list`, `stop`,
//! `kill`, `restart`, `add` (Pomelo's commands) plus `reload`,
//! `admin-user` and the admin actions (`broadcast`, `close-room`, `drain`,
//! `kick`).
//!
//! Every command is a small function returning a [`CliError`] that carries
//! the process exit code, so scripts can tell "no master running" from
//! "wrong password" from "a server failed to start" (see [`exit`] and
//! `docs/cli.md`).

pub mod actions;
pub mod args;
pub mod client;
pub mod exit;
pub mod force;
pub mod init;
pub mod master;
pub mod secret;
pub mod start;
pub mod table;

use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::Parser;

pub use self::args::{Cli, Command};
use self::client::AdminClient;
pub use self::exit::CliError;
use crate::master::proto;

/// Parses the command line and runs the command; the `main` of the binary.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the tokio runtime: {e}");
            return ExitCode::from(exit::ERROR);
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {}", e.message);
            ExitCode::from(e.code)
        }
    }
}

/// Runs one parsed command.
pub async fn run(cli: Cli) -> Result<(), CliError> {
    match cli.command {
        Command::Init(a) => init::run(a),
        Command::Start(a) => start::start(a).await,
        Command::Master(a) => start::master(a).await,
        Command::List(a) => list(a).await,
        Command::Stop(a) => stop(a).await,
        Command::Kill(a) => kill(a).await,
        Command::Restart(a) => restart(a).await,
        Command::Add(a) => add(a).await,
        Command::Reload(a) => reload(a).await,
        Command::AdminUser(a) => init::admin_user(a),
        Command::Broadcast(a) => actions::broadcast(a).await,
        Command::CloseRoom(a) => actions::close_room(a).await,
        Command::Drain(a) => actions::drain(a).await,
        Command::Kick(a) => actions::kick(a).await,
    }
}

async fn list(a: args::ListArgs) -> Result<(), CliError> {
    let mut client = AdminClient::connect(&a.admin).await?;
    let resp = client.list().await?;
    if a.json {
        println!("{}", table::to_json(&resp));
    } else {
        print!("{}", table::render(&resp));
    }
    Ok(())
}

fn select(ids: Vec<String>, server_type: Option<String>) -> proto::SelectRequest {
    proto::SelectRequest {
        ids,
        server_type: server_type.unwrap_or_default(),
        local_only: false,
    }
}

fn report(what: &str, resp: &proto::ActionResponse) -> Result<(), CliError> {
    if !resp.ids.is_empty() {
        println!("{what}: {}", resp.ids.join(", "));
    }
    if resp.errors.is_empty() {
        Ok(())
    } else {
        Err(CliError::error(resp.errors.join("; ")))
    }
}

async fn stop(a: args::SelectArgs) -> Result<(), CliError> {
    let mut client = AdminClient::connect(&a.admin).await?;
    if a.ids.is_empty() && a.server_type.is_none() {
        client.shutdown().await?;
        println!("stopping every server, then the master");
        wait_master_gone(&mut client, a.timeout()).await?;
        println!("all servers stopped");
        return Ok(());
    }
    let resp = client
        .stop(select(a.ids.clone(), a.server_type.clone()))
        .await?;
    let result = report("stopping", &resp);
    wait_states(
        &mut client,
        &resp.ids,
        &["stopped", "failed"],
        None,
        a.timeout(),
    )
    .await?;
    result
}

async fn kill(k: args::KillArgs) -> Result<(), CliError> {
    if k.force {
        return force::kill(&k.select);
    }
    let a = k.select;
    let mut client = AdminClient::connect(&a.admin).await.map_err(|mut e| {
        if e.code == exit::NO_MASTER {
            e.message.push_str(
                "\n(`shaddock kill --force` kills the processes listed in logs/master.pids.json)",
            );
        }
        e
    })?;
    let all = a.ids.is_empty() && a.server_type.is_none();
    let resp = client
        .kill(select(a.ids.clone(), a.server_type.clone()))
        .await?;
    let result = report("killed", &resp);
    wait_states(
        &mut client,
        &resp.ids,
        &["stopped", "failed"],
        None,
        a.timeout(),
    )
    .await?;
    if all {
        client.shutdown().await?;
        wait_master_gone(&mut client, a.timeout()).await?;
        println!("All the servers have been terminated, and the master too.");
    }
    result
}

async fn restart(a: args::SelectArgs) -> Result<(), CliError> {
    let mut client = AdminClient::connect(&a.admin).await?;
    let before = client.list().await?;
    let resp = client
        .restart(select(a.ids.clone(), a.server_type.clone()))
        .await?;
    let result = report("restarting", &resp);
    let old_pids = pids_of(&before, &resp.ids);
    wait_states(
        &mut client,
        &resp.ids,
        &["running"],
        Some(&old_pids),
        a.timeout(),
    )
    .await?;
    println!("restarted: {}", resp.ids.join(", "));
    result
}

/// `(id, pid)` of the servers `ids` in a `list` answer.
fn pids_of(list: &proto::ListResponse, ids: &[String]) -> Vec<(String, u32)> {
    list.servers
        .iter()
        .filter(|s| ids.contains(&s.id))
        .map(|s| (s.id.clone(), s.pid))
        .collect()
}

async fn add(a: args::AddArgs) -> Result<(), CliError> {
    let req = args::parse_add(&a.pairs)?;
    let mut client = AdminClient::connect(&a.admin).await?;
    let id = req.id.clone();
    client.add(req).await?;
    println!("added {id}, waiting for it to come up");
    wait_states(
        &mut client,
        std::slice::from_ref(&id),
        &["running"],
        None,
        Duration::from_secs(a.timeout_secs),
    )
    .await?;
    println!("{id} is running");
    Ok(())
}

async fn reload(a: args::ReloadArgs) -> Result<(), CliError> {
    let mut client = AdminClient::connect(&a.admin).await?;
    let before = client.list().await?;
    let resp = client.reload().await?;
    if !resp.errors.is_empty() {
        return Err(CliError::error(resp.errors.join("; ")));
    }
    for (what, ids) in [
        ("started", &resp.started),
        ("stopped", &resp.stopped),
        ("restarted", &resp.restarted),
        ("kept (added at run time, not in servers.json)", &resp.kept),
    ] {
        if !ids.is_empty() {
            println!("{what}: {}", ids.join(", "));
        }
    }
    if resp.started.is_empty() && resp.stopped.is_empty() && resp.restarted.is_empty() {
        println!("servers.json unchanged: nothing to do");
        return Ok(());
    }
    let timeout = Duration::from_secs(a.timeout_secs);
    // Removed entries leave the list once stopped (then they count as done).
    wait_states(&mut client, &resp.stopped, &["stopped"], None, timeout).await?;
    let old_pids = pids_of(&before, &resp.restarted);
    let up: Vec<String> = resp
        .started
        .iter()
        .chain(&resp.restarted)
        .cloned()
        .collect();
    wait_states(&mut client, &up, &["running"], Some(&old_pids), timeout).await?;
    println!("servers.json applied");
    Ok(())
}

/// Polls `list` until every id is in one of `states` (and, with
/// `old_pids`, runs under a new pid). A server that turns `failed` while
/// we wait for `running` is an error with its reason.
pub(crate) async fn wait_states(
    client: &mut AdminClient,
    ids: &[String],
    states: &[&str],
    old_pids: Option<&[(String, u32)]>,
    timeout: Duration,
) -> Result<(), CliError> {
    let deadline = Instant::now() + timeout;
    loop {
        let resp = client.list().await?;
        let mut pending = Vec::new();
        let mut failed = Vec::new();
        for id in ids {
            let Some(s) = resp.servers.iter().find(|s| &s.id == id) else {
                continue;
            };
            let restarted = old_pids
                .map(|old| !old.iter().any(|(i, p)| i == id && *p == s.pid && *p != 0))
                .unwrap_or(true);
            if states.contains(&s.state.as_str()) && restarted {
                continue;
            }
            if s.state == "failed" {
                failed.push(format!("{}: {}", s.id, s.last_error));
            } else {
                pending.push(format!("{} ({})", s.id, s.state));
            }
        }
        if !failed.is_empty() {
            return Err(CliError::new(exit::SERVERS_FAILED, failed.join("\n")));
        }
        if pending.is_empty() {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(CliError::error(format!(
                "timed out after {} s waiting for: {}",
                timeout.as_secs(),
                pending.join(", ")
            )));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Waits until the master's API stops answering (it exits after stopping
/// every server).
async fn wait_master_gone(client: &mut AdminClient, timeout: Duration) -> Result<(), CliError> {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        match client.list().await {
            Err(e) if e.code == exit::NO_MASTER => return Ok(()),
            _ => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    }
    Err(CliError::error(format!(
        "the master still answers after {} s",
        timeout.as_secs()
    )))
}
