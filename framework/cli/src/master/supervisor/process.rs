//! The life of one server process: the supervising task (spawn or adopt,
//! watch, stop, crash handling with backoff), the port checks and the
//! readiness probe. A child module of the supervisor, so it works on its
//! slots directly.

use std::collections::VecDeque;
use std::net::{SocketAddr, TcpListener, TcpStream, ToSocketAddrs};
use std::process::{ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::process::{Child, Command};
use tokio::sync::mpsc;

use super::output::{describe_exit, line_prefix, pipe, tail_text};
use super::{
    BACKOFF_MAX, BACKOFF_MIN, Control, FAST_FAIL, HANDOFF, HEALTH_FAILURES, HEALTH_INTERVAL,
    HEALTH_TIMEOUT, Inner, Kind, MAX_FAST_FAILS, State, SupervisorConfig,
};
use crate::master::{procinfo, proto};
use shaddock::config::ServerInfo;

/// How often the liveness of an adopted process is checked.
const ADOPTED_POLL: Duration = Duration::from_millis(200);

/// The process a supervising task watches: one it spawned, or one an
/// earlier master spawned (adopted: no `Child` handle, so its exit is
/// noticed by polling `/proc` and its exit status is unknown).
enum Proc {
    Own(Child),
    Adopted { pid: u32, start: u64 },
}

impl Proc {
    /// Sends `sig` if the process still is the one watched: through the
    /// `Child` handle before it is reaped, or after `/proc` shows the same
    /// start time (a reused pid has another one).
    fn signal(&self, sig: libc::c_int) {
        match self {
            Proc::Own(child) => {
                if let Some(pid) = child.id() {
                    signal(pid, sig);
                }
            }
            Proc::Adopted { pid, start } => {
                if procinfo::is_alive(*pid, *start) {
                    signal(*pid, sig);
                }
            }
        }
    }

    /// Waits until the process exited; `Err` describes an exit whose
    /// status is unknown.
    async fn wait(&mut self) -> Result<ExitStatus, String> {
        match self {
            Proc::Own(child) => child
                .wait()
                .await
                .map_err(|e| format!("could not be waited for: {e}")),
            Proc::Adopted { pid, start } => {
                while procinfo::is_alive(*pid, *start) {
                    tokio::time::sleep(ADOPTED_POLL).await;
                }
                Err("exited (adopted from an earlier master: exit status unknown)".into())
            }
        }
    }
}

/// The supervising task of one server (see the module docs). A slot marked
/// `adopted` starts with watching that process instead of spawning one.
pub(super) async fn supervise(inner: Arc<Inner>, id: String, mut ctl: mpsc::Receiver<Control>) {
    let mut fast_fails = 0u32;
    // The first start is announced by "<id> is up"; respawns say "started".
    let mut first = true;
    let mut backoff = BACKOFF_MIN;
    let mut adopted = inner
        .with_slot(&id, |s| {
            match (s.adopted, s.pid, s.proc_start, s.started_at) {
                (true, Some(pid), Some(start), Some(at)) => Some((pid, start, at)),
                _ => None,
            }
        })
        .flatten();
    while let Some((info, kind, auto_restart)) =
        inner.with_slot(&id, |s| (s.info.clone(), s.kind, s.auto_restart))
    {
        let tail: Arc<Mutex<VecDeque<String>>> = Arc::default();
        let mut pipes = Vec::new();
        let (mut proc, pid, started) = match adopted.take() {
            Some((pid, start, started)) => (Proc::Adopted { pid, start }, pid, started),
            None => {
                if let Err(e) = ports_free(&info) {
                    fail(&inner, &id, e);
                    break;
                }
                let mut child = match spawn(&inner.cfg, &info, kind) {
                    Ok(child) => child,
                    Err(e) => {
                        fail(&inner, &id, e);
                        break;
                    }
                };
                let pid = child.id().unwrap_or(0);
                let prefix = line_prefix(&id, inner.id_width);
                if let Some(out) = child.stdout.take() {
                    pipes.push(tokio::spawn(pipe(out, prefix.clone(), tail.clone())));
                }
                if let Some(err) = child.stderr.take() {
                    pipes.push(tokio::spawn(pipe(err, prefix.clone(), tail.clone())));
                }
                let started = Instant::now();
                inner.with_slot(&id, |s| {
                    s.pid = Some(pid);
                    s.proc_start = procinfo::start_time(pid);
                    s.adopted = false;
                    s.started_at = Some(started);
                    s.cpu_prev = None;
                    s.draining = false;
                    s.state = State::Starting;
                });
                inner.publish();
                if std::mem::take(&mut first) {
                    tracing::debug!("started {id} (pid {pid})");
                } else {
                    inner.say(&format!("started {id} (pid {pid})"));
                }
                (Proc::Own(child), pid, started)
            }
        };
        let probe = tokio::spawn(probe_ready(inner.clone(), id.clone(), info.clone(), pid));

        enum Outcome {
            Exited(Result<ExitStatus, String>),
            Stopped,
            Restart,
            Unhealthy(String),
        }
        let outcome = tokio::select! {
            status = proc.wait() => Outcome::Exited(status),
            error = watch_health(&inner, &id, &info, pid) => Outcome::Unhealthy(error),
            cmd = ctl.recv() => match cmd {
                Some(Control::Kill) => {
                    inner.with_slot(&id, |s| s.state = State::Stopping);
                    proc.signal(libc::SIGKILL);
                    let _ = proc.wait().await;
                    Outcome::Stopped
                }
                Some(Control::Restart) => {
                    // A restart with the same entry keeps the server a
                    // member (like a crash); a new entry (reload) is a
                    // planned stop of the old one.
                    let moving = inner.with_slot(&id, |s| s.next_info.is_some()).unwrap_or(false);
                    if moving {
                        leave_first(&inner, &id).await;
                    }
                    graceful_stop(&inner, &id, &mut proc).await;
                    Outcome::Restart
                }
                Some(Control::Stop) | None => {
                    leave_first(&inner, &id).await;
                    graceful_stop(&inner, &id, &mut proc).await;
                    Outcome::Stopped
                }
            },
        };
        probe.abort();
        if let Outcome::Unhealthy(error) = &outcome {
            inner.with_slot(&id, |s| {
                s.state = State::Unhealthy;
                s.last_error = error.clone();
            });
            inner.publish();
            inner.say(&format!(
                "{id} is unhealthy: {error}; killing (SIGKILL) and restarting it"
            ));
            proc.signal(libc::SIGKILL);
            let _ = tokio::time::timeout(Duration::from_secs(5), proc.wait()).await;
        }
        for p in pipes {
            let _ = tokio::time::timeout(Duration::from_secs(1), p).await;
        }
        let was_adopted = matches!(proc, Proc::Adopted { .. });
        inner.with_slot(&id, |s| {
            s.pid = None;
            s.proc_start = None;
            s.adopted = false;
            s.agent = None;
            s.connections = 0;
        });
        match outcome {
            Outcome::Unhealthy(error) => {
                // The kill came after the pid was cleared: the crash log
                // and the restart count say what happened.
                inner.crash_log(&format!(
                    "{id} pid={pid} {error} after {:.1}s; killed (SIGKILL) and restarted",
                    started.elapsed().as_secs_f64()
                ));
                inner.with_slot(&id, |s| {
                    s.state = State::Restarting;
                    s.last_error = error;
                    s.restarts += 1;
                });
                inner.publish();
                if !wait_to_respawn(&inner, &id, &mut ctl, BACKOFF_MIN).await {
                    break;
                }
                continue;
            }
            Outcome::Stopped => {
                inner.say(&format!("{id} stopped"));
                inner.with_slot(&id, |s| {
                    s.state = State::Stopped;
                    s.ever_up = false;
                    s.leaving = false;
                });
                break;
            }
            Outcome::Restart => {
                inner.say(&format!("{id} stopped, restarting"));
                inner.with_slot(&id, |s| {
                    if let Some(next) = s.next_info.take() {
                        // Rejoins the list once it listens on the new entry.
                        s.info = next;
                        s.ever_up = false;
                    }
                    s.leaving = false;
                });
                fast_fails = 0;
                backoff = BACKOFF_MIN;
                continue;
            }
            Outcome::Exited(status) => {
                let lived = started.elapsed();
                let status = match status {
                    Ok(s) => describe_exit(s),
                    Err(e) => e,
                };
                let last = if was_adopted {
                    format!("(not captured: see logs/{id}.log)")
                } else {
                    tail_text(&tail)
                };
                inner.crash_log(&format!(
                    "{id} pid={pid} {status} after {:.1}s; last output: {}",
                    lived.as_secs_f64(),
                    if last.is_empty() { "(none)" } else { &last }
                ));
                if lived < FAST_FAIL {
                    fast_fails += 1;
                } else {
                    fast_fails = 0;
                    backoff = BACKOFF_MIN;
                }
                let error = if last.is_empty() {
                    status.clone()
                } else {
                    format!("{status}; last output: {last}")
                };
                if !auto_restart {
                    inner.say(&format!("{id} {status} (auto-restart is off)"));
                    fail(&inner, &id, error);
                    break;
                }
                if fast_fails >= MAX_FAST_FAILS {
                    inner.say(&format!(
                        "{id} {status}; it failed {fast_fails} times within {}s of starting, giving up",
                        FAST_FAIL.as_secs()
                    ));
                    fail(
                        &inner,
                        &id,
                        format!("exited {fast_fails} times right after starting: {error}"),
                    );
                    break;
                }
                inner.say(&format!(
                    "{id} {status}; restarting in {} ms",
                    backoff.as_millis()
                ));
                inner.with_slot(&id, |s| {
                    s.state = State::Restarting;
                    s.last_error = error;
                });
                if !wait_to_respawn(&inner, &id, &mut ctl, backoff).await {
                    break;
                }
                backoff = (backoff * 2).min(BACKOFF_MAX);
                inner.with_slot(&id, |s| s.restarts += 1);
            }
        }
    }
    inner.with_slot(&id, |s| {
        s.control = None;
        s.pid = None;
        s.proc_start = None;
        s.adopted = false;
        s.leaving = false;
        if let Some(next) = s.next_info.take() {
            s.info = next;
        }
    });
    // An entry removed from servers.json by a reload leaves the list.
    inner
        .lock()
        .retain(|s| !(s.info.id == id && s.remove_when_stopped && s.control.is_none()));
    inner.publish();
}

/// Waits `delay` before a respawn; `false` (the server is then `stopped`)
/// when a stop or kill command came meanwhile (a restart command respawns
/// at once).
async fn wait_to_respawn(
    inner: &Inner,
    id: &str,
    ctl: &mut mpsc::Receiver<Control>,
    delay: Duration,
) -> bool {
    let stop = tokio::select! {
        _ = tokio::time::sleep(delay) => false,
        cmd = ctl.recv() => !matches!(cmd, Some(Control::Restart)),
    };
    if stop {
        inner.with_slot(id, |s| {
            s.state = State::Stopped;
            s.ever_up = false;
        });
    }
    !stop
}

/// Planned stop of a backend that is a member of the server list: it
/// leaves the list first and keeps running for [`HANDOFF`], so its peers
/// rebuild what it owned (a sharded type's rooms, from the frontends)
/// while its in-flight requests still finish. Frontends are not delayed
/// (they kick their users on stop), nor is anything when every server
/// stops.
async fn leave_first(inner: &Inner, id: &str) {
    let left = inner
        .with_slot(id, |s| {
            let member = s.kind == Kind::Game
                && !s.info.frontend
                && s.ever_up
                && !s.leaving
                && s.state == State::Running;
            if member {
                s.leaving = true;
                s.state = State::Stopping;
            }
            member
        })
        .unwrap_or(false);
    // With etcd the server leaves by itself (it revokes its lease, then
    // serves the hand-off): the master's list is not the membership.
    if !left
        || inner.cfg.membership_in_etcd
        || inner.stopping_all.load(std::sync::atomic::Ordering::SeqCst)
    {
        return;
    }
    inner.publish();
    inner.say(&format!(
        "{id} left the server list; stopping it in {} ms (hand-off)",
        HANDOFF.as_millis()
    ));
    tokio::time::sleep(HANDOFF).await;
}

fn fail(inner: &Inner, id: &str, error: String) {
    inner.say(&format!("{id} failed: {error}"));
    inner.with_slot(id, |s| {
        s.state = State::Failed;
        s.last_error = error;
        s.ever_up = false;
    });
}

/// Stop command on the membership stream + SIGTERM, then SIGKILL after the
/// stop timeout.
async fn graceful_stop(inner: &Inner, id: &str, proc: &mut Proc) {
    let agent = inner.with_slot(id, |s| {
        s.state = State::Stopping;
        s.agent.clone()
    });
    if let Some(Some(agent)) = agent {
        let _ = agent.tx.try_send(proto::MasterMessage {
            kind: Some(proto::master_message::Kind::Stop(proto::StopCommand {
                reason: "stopped by the master".into(),
            })),
        });
    }
    proc.signal(libc::SIGTERM);
    match tokio::time::timeout(inner.cfg.stop_timeout, proc.wait()).await {
        Ok(_) => {}
        Err(_) => {
            inner.say(&format!(
                "{id} did not stop within {} s; sending SIGKILL",
                inner.cfg.stop_timeout.as_secs()
            ));
            proc.signal(libc::SIGKILL);
            let _ = tokio::time::timeout(Duration::from_secs(5), proc.wait()).await;
        }
    }
}

fn signal(pid: u32, sig: libc::c_int) {
    let Ok(pid) = libc::pid_t::try_from(pid) else {
        return;
    };
    if pid <= 0 {
        return;
    }
    // SAFETY: kill(2) with a positive pid of our own un-reaped child, or of
    // an adopted process whose start time was just checked.
    unsafe {
        libc::kill(pid, sig);
    }
}

fn spawn(cfg: &SupervisorConfig, info: &ServerInfo, kind: Kind) -> Result<Child, String> {
    let mut cmd = match kind {
        Kind::Game => {
            let mut cmd = Command::new(&cfg.server_bin);
            cmd.args(&cfg.server_args)
                .args(["--env", &cfg.env, "--server-id", &info.id])
                .args(&info.args);
            cmd
        }
        Kind::Web => {
            let web = cfg.web.as_ref().ok_or("no web server binary")?;
            let mut cmd = Command::new(&web.bin);
            cmd.arg("--host")
                .arg(&web.host)
                .arg("--port")
                .arg(web.port.to_string())
                .arg("--log-dir")
                .arg(&cfg.log_dir);
            cmd
        }
    };
    // The membership credential goes only to the servers that open the
    // membership stream: the game servers, not the web server.
    match kind {
        Kind::Game => cmd.env("SHADDOCK_MASTER_TOKEN", &cfg.token),
        Kind::Web => cmd
            .env_remove("SHADDOCK_MASTER_TOKEN")
            .env_remove(shaddock::config::SECRET_VAR),
    };
    cmd.current_dir(&cfg.work_dir)
        .env("SHADDOCK_MASTER", &cfg.master_addr)
        .env("SHADDOCK_SERVER_ID", &info.id)
        // The full entry: a server added at run time is not in servers.json.
        .env(
            "SHADDOCK_SERVER_INFO",
            serde_json::to_string(info).unwrap_or_default(),
        )
        .env("SHADDOCK_ENV", &cfg.env)
        .env(
            shaddock::discovery::etcd::SUPERVISOR_VAR,
            &cfg.supervisor_name,
        )
        // The operator's admin password is for the CLI, not for servers.
        .env_remove("SHADDOCK_ADMIN_PASSWORD")
        // Nothing to read: a server never waits for a terminal.
        .stdin(Stdio::null())
        // Merged into the master's stream. When the master dies the pipes
        // close: the runtime's console logging drops lines from then on
        // (see `shaddock::logging`), its log file keeps them.
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    #[cfg(unix)]
    {
        // Own process group: a Ctrl-C in the terminal reaches only the
        // master, which then stops the servers in order.
        cmd.process_group(0);
    }
    // No PR_SET_PDEATHSIG and no kill-on-drop: the master is not on the
    // data path. If it dies (SIGKILL, a panic, OOM), its servers keep
    // serving their players and the next master adopts them from its
    // records. Only an orderly stop stops them.
    let bin = match kind {
        Kind::Game => cfg.server_bin.display().to_string(),
        Kind::Web => cfg
            .web
            .as_ref()
            .map(|w| w.bin.display().to_string())
            .unwrap_or_default(),
    };
    cmd.spawn()
        .map_err(|e| format!("cannot start `{bin}`: {e} (was the app built?)"))
}

/// Refuses to spawn a server whose port another process already listens on:
/// a clear "port taken" beats three crash reports.
fn ports_free(info: &ServerInfo) -> Result<(), String> {
    let ports = [info.port, info.client_port, info.metrics_port];
    for port in ports.into_iter().flatten() {
        let addr = format!("{}:{port}", info.host);
        let addrs: Vec<SocketAddr> = match addr.to_socket_addrs() {
            Ok(a) => a.collect(),
            Err(e) => return Err(format!("cannot resolve host `{}`: {e}", info.host)),
        };
        for a in addrs {
            if let Err(e) = TcpListener::bind(a) {
                return Err(format!(
                    "port {port} on {} is not available ({e}); is another process using it?",
                    info.host
                ));
            }
        }
    }
    Ok(())
}

/// Marks the server running once every port it declares accepts TCP
/// connections (for processes without an agent, or before it says hello).
async fn probe_ready(inner: Arc<Inner>, id: String, info: ServerInfo, pid: u32) {
    let ports: Vec<u16> = [info.port, info.client_port]
        .into_iter()
        .flatten()
        .collect();
    let start = Instant::now();
    loop {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let host = info.host.clone();
        let ports2 = ports.clone();
        let up = tokio::task::spawn_blocking(move || {
            ports2.iter().all(|p| {
                format!("{host}:{p}")
                    .to_socket_addrs()
                    .ok()
                    .and_then(|mut a| a.next())
                    .is_some_and(|a| {
                        TcpStream::connect_timeout(&a, Duration::from_millis(200)).is_ok()
                    })
            })
        })
        .await
        .unwrap_or(false);
        // A server without ports is up once its agent said hello (or, with
        // no agent, after a second alive).
        let agent = inner.with_slot(&id, |s| s.agent.is_some()).unwrap_or(false);
        let up = up && (!ports.is_empty() || agent || start.elapsed() > Duration::from_secs(1));
        if up {
            let changed = inner
                .with_slot(&id, |s| {
                    if s.pid == Some(pid) && s.state == State::Starting {
                        s.state = State::Running;
                        s.ever_up = true;
                        true
                    } else {
                        false
                    }
                })
                .unwrap_or(false);
            if changed {
                inner.say(&format!("{id} is up (pid {pid})"));
                inner.publish();
            }
            return;
        }
    }
}

/// Resolves (with the reason) once the server's health check failed
/// [`HEALTH_FAILURES`] times in a row; checks start once the server is
/// `running` under `pid`. Never resolves for a server without a
/// `metricsPort`.
async fn watch_health(inner: &Inner, id: &str, info: &ServerInfo, pid: u32) -> String {
    let Some(addr) = crate::master::scrape::metrics_addr(info) else {
        return std::future::pending().await;
    };
    let mut failures = 0u32;
    loop {
        tokio::time::sleep(HEALTH_INTERVAL).await;
        let running = inner
            .with_slot(id, |s| s.pid == Some(pid) && s.state == State::Running)
            .unwrap_or(false);
        if !running {
            failures = 0;
            continue;
        }
        match tokio::time::timeout(HEALTH_TIMEOUT, healthz(&addr)).await {
            Ok(Ok(())) => failures = 0,
            Ok(Err(e)) => {
                failures += 1;
                if failures >= HEALTH_FAILURES {
                    return format!("health check failed {failures} times in a row: {e}");
                }
            }
            Err(_) => {
                failures += 1;
                if failures >= HEALTH_FAILURES {
                    return format!(
                        "health check timed out {failures} times in a row (GET http://{addr}/healthz, {} s each)",
                        HEALTH_TIMEOUT.as_secs()
                    );
                }
            }
        }
    }
}

/// `GET /healthz` over a fresh connection; `Ok` on a 200.
async fn healthz(addr: &str) -> Result<(), String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr)
        .await
        .map_err(|e| format!("GET http://{addr}/healthz: {e}"))?;
    stream
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: shaddock\r\nConnection: close\r\n\r\n")
        .await
        .map_err(|e| format!("GET http://{addr}/healthz: {e}"))?;
    let mut head = [0u8; 12];
    stream
        .read_exact(&mut head)
        .await
        .map_err(|e| format!("GET http://{addr}/healthz: {e}"))?;
    if head.starts_with(b"HTTP/1.1 200") || head.starts_with(b"HTTP/1.0 200") {
        Ok(())
    } else {
        Err(format!(
            "GET http://{addr}/healthz answered {:?}",
            String::from_utf8_lossy(&head)
        ))
    }
}
