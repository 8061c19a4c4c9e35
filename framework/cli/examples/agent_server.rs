//! A minimal server process that speaks the master protocol, without the
//! full App: what the master-side tests run, and a reference for running a
//! non-App binary under `shaddock start` — it uses the runtime's
//! [`Discovery`] trait directly, as the App does.
//!
//! `agent_server --env E --server-id ID [--fail]` reads its entry from
//! `config/servers.json`, listens on its `port` and `clientPort`, and:
//! * on `port`, answers every TCP connection with the server ids of the
//!   current membership list (one line, comma-separated) and closes;
//! * on `clientPort`, keeps connections open and reports their number to
//!   the master as its connection count;
//! * stops gracefully on SIGTERM, Ctrl-C or the master's stop command
//!   (prints `graceful stop` first).
//!
//! `--fail` makes it exit with an error at once (a server with a bad
//! config).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use shaddock::discovery::master::{MasterDiscovery, server_info_from_env};
use shaddock::discovery::{Discovery, DiscoveryContext, Servers};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpListener;

#[tokio::main(flavor = "current_thread")]
async fn main() -> std::process::ExitCode {
    match run().await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("agent_server: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let value = |flag: &str| {
        args.iter()
            .position(|a| a == flag)
            .and_then(|i| args.get(i + 1))
            .cloned()
    };
    let env = value("--env").unwrap_or_else(|| "development".into());
    let id = value("--server-id").ok_or_else(|| anyhow::anyhow!("--server-id is required"))?;
    if args.iter().any(|a| a == "--fail") {
        anyhow::bail!("bad configuration for {id} (--fail given)");
    }
    let dir = std::env::current_dir()?;
    let servers = shaddock_cli::master::config::load_servers(&dir.join("config"), &env)?;
    let Some(me) = servers
        .iter()
        .find(|s| s.id == id)
        .cloned()
        .or_else(|| server_info_from_env(&id))
    else {
        anyhow::bail!("{id} is not in config/servers.json and was not added by a master");
    };

    // The list starts as servers.json's; the master's stream replaces it.
    let members = Servers::new(servers.clone());
    let conns = Arc::new(AtomicU64::new(0));
    let mut ctx = DiscoveryContext::new(me.clone(), members.clone());
    let load = conns.clone();
    ctx.load = Arc::new(move || load.load(Ordering::Relaxed));
    let discovery = match MasterDiscovery::from_env(&id) {
        Some(master) => Some(master.start(ctx.clone()).await?),
        None => None,
    };
    if let Some(port) = me.port {
        let l = TcpListener::bind((me.host.as_str(), port)).await?;
        let members = members.clone();
        tokio::spawn(async move {
            while let Ok((mut s, _)) = l.accept().await {
                let ids: Vec<String> = members
                    .snapshot()
                    .all()
                    .iter()
                    .map(|s| s.id.clone())
                    .collect();
                let line = ids.join(",") + "\n";
                let _ = s.write_all(line.as_bytes()).await;
            }
        });
    }
    if let Some(port) = me.client_port {
        let l = TcpListener::bind((me.host.as_str(), port)).await?;
        let conns = conns.clone();
        tokio::spawn(async move {
            while let Ok((mut s, _)) = l.accept().await {
                conns.fetch_add(1, Ordering::Relaxed);
                let conns = conns.clone();
                tokio::spawn(async move {
                    let mut buf = [0u8; 64];
                    use tokio::io::AsyncReadExt;
                    while matches!(s.read(&mut buf).await, Ok(n) if n > 0) {}
                    conns.fetch_sub(1, Ordering::Relaxed);
                });
            }
        });
    }
    say(&format!(
        "{id} listening (port {:?}, clientPort {:?})",
        me.port, me.client_port
    ));
    tokio::select! {
        _ = shaddock::launch::shutdown_signal() => {}
        _ = ctx.request_stop.cancelled() => {}
    }
    say("graceful stop");
    ctx.stop.cancel();
    if let Some(task) = discovery {
        let _ = task.await;
    }
    Ok(())
}

/// One line on stdout. Not `println!`: it panics when nobody reads stdout
/// any more (the master that piped it died, and a new one adopted us).
fn say(line: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stdout(), "{line}");
}
