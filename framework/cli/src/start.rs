//! `shaddock start` and the hidden `shaddock master`.
//!
//! `start` builds the app (`cargo build -p game-server [-p web-server]`,
//! release unless `--debug`), then either runs the master in this process
//! (foreground: merged `[server-id] ...` output, Ctrl-C stops everything)
//! or re-runs itself as `shaddock master ...` in a new session with its
//! output in `logs/master.log` (`-D`) and waits until every server is up.
//! With `-t`/`-i` and a master already running, it asks that master to
//! start those servers instead (Pomelo's "join the running master").

use std::net::{TcpStream, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use super::args::StartArgs;
use super::client::{self, AdminClient};
use super::exit::{self, CliError};
use super::{table, wait_states};
use crate::master::supervisor::Selection;
use crate::master::{self, MasterOptions, config, proto};
use crate::secret::ensure_cluster_secret;

fn selection(a: &StartArgs) -> Option<Selection> {
    if a.ids.is_empty() && a.server_type.is_none() {
        None
    } else {
        Some(Selection {
            ids: a.ids.clone(),
            server_type: a.server_type.clone(),
        })
    }
}

fn app_dir(a: &StartArgs) -> Result<PathBuf, CliError> {
    let dir =
        a.admin.app.dir.canonicalize().map_err(|e| {
            CliError::error(format!("app folder {}: {e}", a.admin.app.dir.display()))
        })?;
    let cfg = config::config_dir(&dir);
    if !cfg.join("servers.json").is_file() {
        return Err(CliError::error(format!(
            "{} is not a Shaddock app: no {} (create one with `shaddock init <dir>`)",
            dir.display(),
            cfg.join("servers.json").display()
        )));
    }
    Ok(dir)
}

fn master_listening(addr: &str) -> bool {
    addr.to_socket_addrs()
        .ok()
        .and_then(|mut a| a.next())
        .is_some_and(|a| TcpStream::connect_timeout(&a, Duration::from_millis(300)).is_ok())
}

/// `shaddock start`.
pub async fn start(mut a: StartArgs) -> Result<(), CliError> {
    let dir = app_dir(&a)?;
    a.admin.app.dir = dir.clone();

    ensure_admin_user(&dir)?;
    let env = &a.admin.app.env;
    if let Some(file) = ensure_cluster_secret(&config::config_dir(&dir), env)? {
        println!("no cluster secret for `{env}`: wrote a random one to {file} (mode 0600)");
    }
    let addr = client::master_addr(&a.admin)?;
    let sel = selection(&a);

    if master_listening(&addr) {
        let Some(sel) = sel else {
            return Err(CliError::error(format!(
                "a master already runs at {addr}; see `shaddock list`, or `shaddock stop` it first"
            )));
        };
        println!("a master runs at {addr}: asking it to start the selected servers");
        let mut c = AdminClient::connect(&a.admin).await?;
        let resp = c
            .start(proto::SelectRequest {
                ids: sel.ids,
                server_type: sel.server_type.unwrap_or_default(),
                local_only: false,
            })
            .await?;
        if !resp.errors.is_empty() {
            return Err(CliError::error(resp.errors.join("; ")));
        }
        wait_states(
            &mut c,
            &resp.ids,
            &["running"],
            None,
            Duration::from_secs(a.timeout),
        )
        .await?;
        print!("{}", table::render(&c.list().await?));
        return Ok(());
    }

    let layout = discover(&dir);
    if !a.no_build {
        build(&dir, a.debug, &layout, !a.no_web)?;
    }
    let opts = options(&a, &dir, &layout, sel)?;
    if a.daemon {
        daemon(&a, &dir, &addr, &opts).await
    } else {
        run_master(opts, true).await
    }
}

/// An app without `adminUser.json` (a fresh clone: the file holds
/// per-developer hashes and is not committed) gets an `admin` user with a
/// random password, printed once. Never a fixed default.
fn ensure_admin_user(dir: &Path) -> Result<(), CliError> {
    let cfg = config::config_dir(dir);
    if cfg.join("adminUser.json").exists() {
        return Ok(());
    }
    let password = super::init::create_admin_user(&cfg, "admin")?;
    println!(
        "{} was missing: created admin user `admin`, password: {password}\n  \
         (shown once; only its hash is stored; the CLI reads {})",
        cfg.join("adminUser.json").display(),
        cfg.join(client::CREDENTIALS_FILE).display()
    );
    Ok(())
}

/// `shaddock master` (no build; what `start -D` runs).
pub async fn master(mut a: StartArgs) -> Result<(), CliError> {
    let dir = app_dir(&a)?;
    a.admin.app.dir = dir.clone();

    let layout = match (&a.server_bin, &a.web_bin, a.no_web) {
        // Everything given (what `start -D` passes): no cargo call needed.
        (Some(_), Some(_), _) | (Some(_), None, true) => AppLayout {
            target_dir: dir.join("target"),
            game: ("game-server".into(), "game-server".into()),
            web: None,
        },
        _ => discover(&dir),
    };
    let opts = options(&a, &dir, &layout, selection(&a))?;
    run_master(opts, false).await
}

/// Runs the master until Ctrl-C or SIGTERM (then it stops every server).
/// In the foreground, a closed terminal (SIGHUP) does the same: the
/// servers belong to that session. Any other death of the master (SIGKILL,
/// a crash) leaves them running for the next master to adopt.
async fn run_master(opts: MasterOptions, foreground: bool) -> Result<(), CliError> {
    let master_id = config::load_master(&config::config_dir(&opts.app_dir), &opts.env)
        .map(|m| m.id)
        .unwrap_or_else(|_| "master".into());
    // Keep the guard for the life of the master (it flushes the file).
    let log_id = match &opts.supervise_host {
        Some(host) => format!("{master_id}-{host}"),
        None => master_id,
    };
    let _guard = shaddock::logging::init(&log_id, opts.app_dir.join("logs")).ok();
    let shutdown = async move {
        tokio::select! {
            _ = shaddock::launch::shutdown_signal() => {}
            _ = hangup(), if foreground => {}
        }
    };
    master::run(opts, shutdown).await.map_err(CliError::from)
}

/// Resolves on SIGHUP (never where there is none).
async fn hangup() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        if let Ok(mut s) = signal(SignalKind::hangup()) {
            s.recv().await;
            return;
        }
    }
    std::future::pending::<()>().await
}

fn options(
    a: &StartArgs,
    dir: &Path,
    layout: &AppLayout,
    only: Option<Selection>,
) -> Result<MasterOptions, CliError> {
    let profile = if a.debug { "debug" } else { "release" };
    let bin_dir = layout.target_dir.join(profile);
    let server_bin = match &a.server_bin {
        Some(b) => absolute(b)?,
        None => bin_dir.join(&layout.game.1),
    };
    if !server_bin.is_file() {
        return Err(CliError::error(format!(
            "server binary {} not found; build the app (drop --no-build) or pass --server-bin",
            server_bin.display()
        )));
    }
    let web_bin = if a.no_web {
        None
    } else {
        match &a.web_bin {
            Some(b) => Some(absolute(b)?),
            None => layout
                .web
                .as_ref()
                .map(|(_, bin)| bin_dir.join(bin))
                .filter(|b| b.is_file()),
        }
    };
    let mut opts = MasterOptions::new(dir.to_path_buf(), a.admin.app.env.clone(), server_bin);
    opts.server_args = a.server_arg.clone();
    opts.web_bin = web_bin;
    opts.only = only;
    opts.auto_restart = a.auto_restart;
    opts.stop_timeout = Duration::from_secs(a.stop_timeout);
    // `start --host NAME`: the supervisor of host NAME (several hosts).
    opts.supervise_host = a.admin.host.clone();
    Ok(opts)
}

fn absolute(p: &Path) -> Result<PathBuf, CliError> {
    p.canonicalize()
        .map_err(|e| CliError::error(format!("{}: {e}", p.display())))
}

/// Runs `cargo build` in the app folder, output shown to the user.
fn build(dir: &Path, debug: bool, layout: &AppLayout, web: bool) -> Result<(), CliError> {
    let mut args = vec!["build"];
    if !debug {
        args.push("--release");
    }
    args.extend(["-p", &layout.game.0]);
    if let (true, Some(w)) = (web, &layout.web) {
        args.extend(["-p", &w.0]);
    }
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    println!("$ cargo {} (in {})", args.join(" "), dir.display());
    let status = std::process::Command::new(&cargo)
        .args(&args)
        .current_dir(dir)
        .status()
        .map_err(|e| CliError::error(format!("cannot run `{cargo}`: {e}")))?;
    if !status.success() {
        return Err(CliError::error(format!(
            "`cargo {}` failed ({status})",
            args.join(" ")
        )));
    }
    Ok(())
}

/// The app's packages and where cargo puts their binaries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppLayout {
    pub target_dir: PathBuf,
    /// (package, binary) of `game-server/`.
    pub game: (String, String),
    /// (package, binary) of `web-server/`, if the app has one.
    pub web: Option<(String, String)>,
}

/// Asks `cargo metadata` for the packages of `<dir>/game-server` and
/// `<dir>/web-server` (their names may carry the app's name, so two apps
/// can share a target folder) and the target folder (`CARGO_TARGET_DIR`
/// included). Falls back to `game-server` / `web-server` in `<dir>/target`.
pub fn discover(dir: &Path) -> AppLayout {
    let mut layout = AppLayout {
        target_dir: dir.join("target"),
        game: ("game-server".into(), "game-server".into()),
        web: dir
            .join("web-server/Cargo.toml")
            .is_file()
            .then(|| ("web-server".into(), "web-server".into())),
    };
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = std::process::Command::new(cargo)
        .args(["metadata", "--format-version", "1", "--no-deps"])
        .current_dir(dir)
        .stderr(Stdio::null())
        .output();
    let Some(meta) = out
        .ok()
        .filter(|o| o.status.success())
        .and_then(|o| serde_json::from_slice::<serde_json::Value>(&o.stdout).ok())
    else {
        return layout;
    };
    if let Some(t) = meta.get("target_directory").and_then(|t| t.as_str()) {
        layout.target_dir = PathBuf::from(t);
    }
    let find = |folder: &str| -> Option<(String, String)> {
        let manifest = dir.join(folder).join("Cargo.toml").canonicalize().ok()?;
        meta.get("packages")?.as_array()?.iter().find_map(|p| {
            let path = PathBuf::from(p.get("manifest_path")?.as_str()?);
            if path.canonicalize().ok()? != manifest {
                return None;
            }
            let bin = p.get("targets")?.as_array()?.iter().find_map(|t| {
                let is_bin = t.get("kind")?.as_array()?.iter().any(|k| k == "bin");
                is_bin.then(|| t.get("name")?.as_str().map(String::from))?
            })?;
            Some((p.get("name")?.as_str()?.to_string(), bin))
        })
    };
    if let Some(game) = find("game-server") {
        layout.game = game;
    }
    if layout.web.is_some()
        && let Some(web) = find("web-server")
    {
        layout.web = Some(web);
    }
    layout
}

/// Starts `shaddock master ...` detached and waits until the servers are up.
async fn daemon(
    a: &StartArgs,
    dir: &Path,
    addr: &str,
    opts: &MasterOptions,
) -> Result<(), CliError> {
    let exe = std::env::current_exe()
        .map_err(|e| CliError::error(format!("cannot find the shaddock binary: {e}")))?;
    let logs = dir.join("logs");
    std::fs::create_dir_all(&logs)
        .map_err(|e| CliError::error(format!("cannot create {}: {e}", logs.display())))?;
    let log_path = match &opts.supervise_host {
        Some(host) => logs.join(format!("master-{host}.log")),
        None => logs.join("master.log"),
    };
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log_path)
        .map_err(|e| CliError::error(format!("cannot open {}: {e}", log_path.display())))?;
    let log2 = log
        .try_clone()
        .map_err(|e| CliError::error(format!("{}: {e}", log_path.display())))?;

    let mut cmd = std::process::Command::new(exe);
    cmd.arg("master")
        .arg("-d")
        .arg(dir)
        .arg("-e")
        .arg(&opts.env)
        .arg("--server-bin")
        .arg(&opts.server_bin)
        .arg("--stop-timeout")
        .arg(opts.stop_timeout.as_secs().to_string());
    for arg in &opts.server_args {
        cmd.arg(format!("--server-arg={arg}"));
    }
    match &opts.web_bin {
        Some(w) => {
            cmd.arg("--web-bin").arg(w);
        }
        None => {
            cmd.arg("--no-web");
        }
    }
    if let Some(v) = opts.auto_restart {
        cmd.arg("--auto-restart").arg(v.to_string());
    }
    if let Some(t) = &a.server_type {
        cmd.arg("-t").arg(t);
    }
    if let Some(host) = &opts.supervise_host {
        cmd.arg("--host").arg(host);
    }
    for id in &a.ids {
        cmd.arg("-i").arg(id);
    }
    cmd.current_dir(dir)
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(log2);
    #[cfg(unix)]
    {
        use std::os::unix::process::CommandExt;
        // SAFETY: setsid is async-signal-safe; the master gets its own
        // session so closing the terminal does not stop it.
        unsafe {
            cmd.pre_exec(|| {
                libc::setsid();
                Ok(())
            });
        }
    }
    let mut child = cmd
        .spawn()
        .map_err(|e| CliError::error(format!("cannot start the master: {e}")))?;
    println!(
        "master started in the background (pid {}), output in {}",
        child.id(),
        log_path.display()
    );

    let deadline = Instant::now() + Duration::from_secs(a.timeout);
    let creds = client::credentials(&a.admin).ok();
    let master_died = |child: &mut std::process::Child| -> Option<CliError> {
        match child.try_wait() {
            Ok(Some(status)) => Some(CliError::error(format!(
                "the master exited ({status}); last lines of {}:\n{}",
                log_path.display(),
                tail(&log_path, 15)
            ))),
            _ => None,
        }
    };
    // Wait for the admin API.
    loop {
        if let Some(e) = master_died(&mut child) {
            return Err(e);
        }
        if master_listening(addr) {
            break;
        }
        if Instant::now() > deadline {
            return Err(CliError::error(
                "the master did not open its admin port in time",
            ));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let Some(creds) = creds else {
        println!(
            "no admin credentials found, so the servers' state is not checked; see `shaddock list -u ... -p ...`"
        );
        return Ok(());
    };
    let mut c = AdminClient::connect_to(addr, creds).await?;
    let mut announced: Vec<String> = Vec::new();
    loop {
        if let Some(e) = master_died(&mut child) {
            return Err(e);
        }
        let resp = c.list().await?;
        let selected: Vec<&proto::ServerStatus> = resp
            .servers
            .iter()
            .filter(|s| match &opts.only {
                None => true,
                Some(sel) => {
                    sel.ids.contains(&s.id) || sel.server_type.as_deref() == Some(&s.server_type)
                }
            })
            .collect();
        for s in &selected {
            if s.state == "running" && !announced.contains(&s.id) {
                let adopted = if s.adopted { ", adopted" } else { "" };
                println!("  {} is up (pid {}{adopted})", s.id, s.pid);
                announced.push(s.id.clone());
            }
        }
        let failed: Vec<String> = selected
            .iter()
            .filter(|s| s.state == "failed")
            .map(|s| format!("{}: {}", s.id, s.last_error))
            .collect();
        if !failed.is_empty() {
            print!("{}", table::render(&resp));
            return Err(CliError::new(
                exit::SERVERS_FAILED,
                format!(
                    "{} server(s) failed to start (reasons above); the others keep running: \
                     fix the cause, then `shaddock restart <id>` or `shaddock stop`",
                    failed.len()
                ),
            ));
        }
        if selected.iter().all(|s| s.state == "running") {
            print!("{}", table::render(&resp));
            println!("all {} servers are up", selected.len());
            return Ok(());
        }
        if Instant::now() > deadline {
            print!("{}", table::render(&resp));
            return Err(CliError::error(format!(
                "not every server came up within {} s",
                a.timeout
            )));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn tail(path: &Path, n: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}
