//! The supervisor: owns every server process the master started.
//!
//! Each server has a *slot* (its config, state, pid, counters) in one list
//! behind a std `Mutex` that is never held across an `.await`, and while it
//! should run, one *supervising task* that spawns the process, watches it
//! exit and decides what happens next:
//!
//! * asked to stop → graceful stop (stop command on the membership stream +
//!   SIGTERM, then SIGKILL after a timeout), state `stopped`;
//! * crashed with auto-restart → `restarting`, exponential backoff
//!   (0.5 s → 8 s), restart count + 1, a line in `logs/crash.log`;
//! * crashed again and again right after starting (port taken, bad config)
//!   → `failed`, with its last output lines as the error. Never retried
//!   forever.
//!
//! Signals only ever go to pids this master spawned (through the `Child`
//! handle, before it is reaped) or adopted (after `/proc` shows the same
//! start time), never to a process found by name.
//!
//! Servers outlive the master: a master that dies (SIGKILL, crash) leaves
//! them serving, and the next master *adopts* the ones its records
//! (`logs/master.pids.json`, [`records`](super::records)) show still
//! running: it watches their pids instead of a `Child` (see
//! [`Supervisor::adopt`]).

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

mod output;
mod process;

pub(crate) use self::output::out_line;
use self::output::utc_now;
use self::process::supervise;
use super::proto;
use super::records::{Adoptee, Records, ServerRecord};
use super::{procinfo, records};
use shaddock::config::ServerInfo;

/// First restart delay after a crash; doubles up to [`BACKOFF_MAX`].
pub const BACKOFF_MIN: Duration = Duration::from_millis(500);
pub const BACKOFF_MAX: Duration = Duration::from_secs(8);
/// A process that exits sooner than this after starting "failed to start".
pub const FAST_FAIL: Duration = Duration::from_secs(5);
/// This many failed starts in a row mark the server `failed`.
pub const MAX_FAST_FAILS: u32 = 3;
/// Lines of output kept per server for error reports.
const TAIL_LINES: usize = 20;
/// Planned stop of a backend: how long it keeps running after it left the
/// server list, so that its peers (which reconcile on the new list: a
/// sharded type's new owners pull its rooms from the frontends) are done
/// before it stops. Measured (`docs/scaling.md`): peers taking over ~330
/// rooms rebuild in ~30 ms, ~3 300 rooms in up to ~0.8 s (then requests
/// to the moved rooms wait for the rebuild instead of failing).
pub const HANDOFF: Duration = Duration::from_millis(400);

/// Health checks of a running server with a `metricsPort`: `GET /healthz`
/// every [`HEALTH_INTERVAL`], each answer awaited [`HEALTH_TIMEOUT`];
/// [`HEALTH_FAILURES`] failures in a row (a process that lives but answers
/// nothing, e.g. hung or SIGSTOPped: about 3 × (1 + 1) = 6 s) make it
/// `unhealthy`: it is killed and restarted.
pub const HEALTH_INTERVAL: Duration = Duration::from_secs(1);
pub const HEALTH_TIMEOUT: Duration = Duration::from_secs(1);
pub const HEALTH_FAILURES: u32 = 3;

/// Everything the supervisor needs to spawn servers.
#[derive(Debug, Clone)]
pub struct SupervisorConfig {
    /// Working directory of the servers (the folder holding `config/`).
    pub work_dir: PathBuf,
    /// Environment name passed as `--env`.
    pub env: String,
    /// The app's server binary (`game-server`).
    pub server_bin: PathBuf,
    /// Arguments put before `--env E --server-id ID`.
    pub server_args: Vec<String>,
    /// The web server binary, if the app has one.
    pub web: Option<WebServer>,
    /// Auto-restart for servers that do not set `auto-restart`.
    pub auto_restart_default: bool,
    /// `host:port` of the master's API, given to servers as `SHADDOCK_MASTER`.
    pub master_addr: String,
    /// Secret given as `SHADDOCK_MASTER_TOKEN`: random per master, or the
    /// recorded one of the master whose servers this one adopted.
    pub token: String,
    /// Where `crash.log` and `master.pids.json` go.
    pub log_dir: PathBuf,
    /// How long a graceful stop may take before SIGKILL.
    pub stop_timeout: Duration,
    /// The host this supervisor runs for (`start --host`, or the
    /// master.json host): given to servers as `SHADDOCK_SUPERVISOR` and
    /// shown by `list`.
    pub supervisor_name: String,
    /// Membership is etcd's (master.json `etcd`): servers register and
    /// leave by themselves.
    pub membership_in_etcd: bool,
}

/// The web server the master starts next to the game servers.
#[derive(Debug, Clone)]
pub struct WebServer {
    pub bin: PathBuf,
    pub host: String,
    pub port: u16,
}

/// Id under which the web server appears in `list`.
pub const WEB_SERVER_ID: &str = "web-server";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Game,
    Web,
}

/// Life-cycle state of one server, as shown by `shaddock list`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    Starting,
    Running,
    Stopping,
    Stopped,
    Restarting,
    Failed,
    /// Its health check stopped answering; it is being killed and restarted.
    Unhealthy,
}

impl State {
    pub fn as_str(self) -> &'static str {
        match self {
            State::Starting => "starting",
            State::Running => "running",
            State::Stopping => "stopping",
            State::Stopped => "stopped",
            State::Restarting => "restarting",
            State::Failed => "failed",
            State::Unhealthy => "unhealthy",
        }
    }
}

/// What a supervising task is asked to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Control {
    Stop,
    Kill,
    Restart,
}

/// The membership stream of a connected server agent.
#[derive(Debug, Clone)]
pub struct AgentLink {
    pub conn_id: u64,
    pub tx: mpsc::Sender<proto::MasterMessage>,
}

#[derive(Debug)]
struct Slot {
    info: ServerInfo,
    kind: Kind,
    auto_restart: bool,
    state: State,
    pid: Option<u32>,
    /// Start time of `pid` (`/proc/<pid>/stat` field 22), for the records.
    proc_start: Option<u64>,
    /// Whether `pid` was started by an earlier master (no `Child` handle,
    /// its output is not in this master's stream).
    adopted: bool,
    started_at: Option<Instant>,
    restarts: u32,
    last_error: String,
    connections: u64,
    agent: Option<AgentLink>,
    control: Option<mpsc::Sender<Control>>,
    /// Whether the server came up since it was last started on purpose;
    /// such a server stays in the membership list while it restarts.
    ever_up: bool,
    /// Out of the membership list ahead of a planned stop (hand-off).
    leaving: bool,
    /// An entry of servers.json (a reload may stop it), not added at run
    /// time.
    from_config: bool,
    /// The entry to run with after the pending restart (reload of a
    /// changed entry).
    next_info: Option<ServerInfo>,
    /// Removed from servers.json: the slot goes once the server stopped.
    remove_when_stopped: bool,
    cpu_prev: Option<(Instant, f64)>,
    /// Drained by an operator (`shaddock drain`); a new process is not.
    draining: bool,
}

/// Which servers an admin command applies to.
#[derive(Debug, Clone, Default)]
pub struct Selection {
    pub ids: Vec<String>,
    pub server_type: Option<String>,
}

impl Selection {
    pub fn all() -> Self {
        Selection::default()
    }

    fn is_all(&self) -> bool {
        self.ids.is_empty() && self.server_type.is_none()
    }
}

/// Outcome of an admin action: the ids it applied to and what went wrong.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ActionReport {
    pub ids: Vec<String>,
    pub errors: Vec<String>,
}

/// Outcome of a reload of servers.json (see [`Supervisor::reload`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReloadReport {
    pub started: Vec<String>,
    pub stopped: Vec<String>,
    pub restarted: Vec<String>,
    /// Added at run time and not in servers.json: left running.
    pub kept: Vec<String>,
    pub errors: Vec<String>,
}

/// Cheap-to-clone handle to the supervisor.
#[derive(Clone)]
pub struct Supervisor {
    inner: Arc<Inner>,
}

struct Inner {
    cfg: SupervisorConfig,
    slots: Mutex<Vec<Slot>>,
    membership: watch::Sender<Arc<proto::ServerList>>,
    /// Cancelled when the master should exit (admin `Shutdown`).
    shutdown: CancellationToken,
    id_width: usize,
    /// Start time of the master's own process, for the records.
    master_start: Option<u64>,
    /// Serialises record writes; `true` once the master removed the file
    /// for good (its last servers are gone).
    records_closed: Mutex<bool>,
    /// Every server is being stopped: no hand-off delay (nobody takes over).
    stopping_all: AtomicBool,
}

impl Supervisor {
    /// Creates the supervisor with the servers of servers.json (all
    /// `stopped`); nothing is spawned until [`Supervisor::start`].
    pub fn new(cfg: SupervisorConfig, servers: Vec<ServerInfo>) -> Self {
        let mut slots: Vec<Slot> = servers
            .into_iter()
            .map(|info| {
                let mut slot = new_slot(info, Kind::Game, cfg.auto_restart_default);
                slot.from_config = true;
                slot
            })
            .collect();
        if let Some(web) = &cfg.web {
            let info = ServerInfo {
                id: WEB_SERVER_ID.to_string(),
                server_type: "web".to_string(),
                host: web.host.clone(),
                port: None,
                client_port: Some(web.port),
                frontend: false,
                max_connections: None,
                auto_restart: None,
                args: Vec::new(),
                client_host: None,
                bind_host: None,
                client_bind_host: None,
                metrics_port: None,
            };
            slots.push(new_slot(info, Kind::Web, cfg.auto_restart_default));
        }
        let id_width = slots
            .iter()
            .map(|s| s.info.id.len())
            .max()
            .unwrap_or(6)
            .max(6);
        let (membership, _) = watch::channel(Arc::new(proto::ServerList::default()));
        Supervisor {
            inner: Arc::new(Inner {
                cfg,
                slots: Mutex::new(slots),
                membership,
                shutdown: CancellationToken::new(),
                id_width,
                master_start: procinfo::start_time(std::process::id()),
                records_closed: Mutex::new(false),
                stopping_all: AtomicBool::new(false),
            }),
        }
    }

    /// The configuration the supervisor was built with.
    pub fn config(&self) -> &SupervisorConfig {
        &self.inner.cfg
    }

    /// Token cancelled when an admin asked the master to shut down.
    pub fn shutdown_token(&self) -> CancellationToken {
        self.inner.shutdown.clone()
    }

    /// Receiver of the live server list (see [`membership`](super::membership)).
    pub fn membership(&self) -> watch::Receiver<Arc<proto::ServerList>> {
        self.inner.membership.subscribe()
    }

    /// Whether `id` is one of this supervisor's servers.
    pub fn knows(&self, id: &str) -> bool {
        self.inner.lock().iter().any(|s| s.info.id == id)
    }

    /// Starts the selected servers that are not running.
    pub fn start(&self, sel: &Selection) -> ActionReport {
        let mut report = ActionReport::default();
        let mut to_spawn = Vec::new();
        {
            let mut slots = self.inner.lock();
            let matched = select(&slots, sel, &mut report);
            for i in matched {
                let slot = &mut slots[i];
                if slot.control.is_some() && sel.is_all() {
                    continue;
                }
                if slot.control.is_some() {
                    report.errors.push(format!(
                        "{} is already {}",
                        slot.info.id,
                        slot.state.as_str()
                    ));
                    continue;
                }
                let (tx, rx) = mpsc::channel(4);
                slot.control = Some(tx);
                slot.state = State::Starting;
                slot.leaving = false;
                slot.last_error.clear();
                slot.restarts = 0;
                report.ids.push(slot.info.id.clone());
                to_spawn.push((slot.info.id.clone(), rx));
            }
        }
        for (id, rx) in to_spawn {
            tokio::spawn(supervise(self.inner.clone(), id, rx));
        }
        report
    }

    /// Graceful stop of the selected servers (returns at once; `list`
    /// shows `stopping` then `stopped`). A backend that is a member of the
    /// server list leaves it first and stops [`HANDOFF`] later, so that its
    /// peers take over its keys (rooms) while it still answers.
    pub fn stop(&self, sel: &Selection) -> ActionReport {
        self.control(sel, Control::Stop)
    }

    /// SIGKILL of the selected servers' processes; they are not restarted.
    pub fn kill(&self, sel: &Selection) -> ActionReport {
        self.control(sel, Control::Kill)
    }

    /// Graceful stop then start of the selected servers (stopped ones are
    /// just started).
    pub fn restart(&self, sel: &Selection) -> ActionReport {
        let mut report = self.control(sel, Control::Restart);
        let stopped: Vec<String> = {
            let slots = self.inner.lock();
            let mut ignore = ActionReport::default();
            select(&slots, sel, &mut ignore)
                .into_iter()
                .filter(|&i| slots[i].control.is_none())
                .map(|i| slots[i].info.id.clone())
                .collect()
        };
        if !stopped.is_empty() {
            let started = self.start(&Selection {
                ids: stopped,
                server_type: None,
            });
            report.ids.extend(started.ids);
        }
        report.errors.retain(|e| !e.ends_with("is not running"));
        report
    }

    /// Adds a server at run time and starts it.
    pub fn add(&self, info: ServerInfo) -> Result<(), String> {
        validate_new(&self.inner.lock(), &info)?;
        {
            let mut slots = self.inner.lock();
            // Re-check under the same lock that inserts.
            validate_new(&slots, &info)?;
            let auto = info
                .auto_restart
                .unwrap_or(self.inner.cfg.auto_restart_default);
            let mut slot = new_slot(info.clone(), Kind::Game, auto);
            slot.auto_restart = auto;
            slots.push(slot);
        }
        self.inner.say(&format!(
            "adding {} ({}) at runtime",
            info.id, info.server_type
        ));
        self.start(&Selection {
            ids: vec![info.id],
            server_type: None,
        });
        Ok(())
    }

    /// Applies a re-read servers.json (`servers`, in file order): starts
    /// the servers that are new, stops (gracefully, with the hand-off of
    /// [`Supervisor::stop`]) the entries that are gone and drops them from
    /// the list once stopped, and restarts the running servers whose entry
    /// changed (with the new entry). Servers added at run time that the
    /// file does not name are kept; a stopped server that is still in the
    /// file stays stopped.
    pub fn reload(&self, servers: Vec<ServerInfo>) -> ReloadReport {
        let mut report = ReloadReport::default();
        let (mut to_start, mut to_restart, mut to_stop) = (Vec::new(), Vec::new(), Vec::new());
        {
            let mut slots = self.inner.lock();
            if let Some(web) = servers.iter().find(|i| i.id == WEB_SERVER_ID) {
                report
                    .errors
                    .push(format!("`{}` is not a usable server id", web.id));
                return report;
            }
            for info in &servers {
                let Some(slot) = slots.iter_mut().find(|s| s.info.id == info.id) else {
                    let mut slot = new_slot(
                        info.clone(),
                        Kind::Game,
                        self.inner.cfg.auto_restart_default,
                    );
                    slot.from_config = true;
                    slots.push(slot);
                    to_start.push(info.id.clone());
                    continue;
                };
                slot.from_config = true;
                slot.remove_when_stopped = false;
                let current = slot.next_info.as_ref().unwrap_or(&slot.info);
                if current == info {
                    continue;
                }
                slot.auto_restart = info
                    .auto_restart
                    .unwrap_or(self.inner.cfg.auto_restart_default);
                if slot.control.is_some() {
                    slot.next_info = Some(info.clone());
                    to_restart.push(info.id.clone());
                } else {
                    slot.info = info.clone();
                }
            }
            for slot in slots.iter_mut() {
                if slot.kind != Kind::Game || servers.iter().any(|i| i.id == slot.info.id) {
                    continue;
                }
                if slot.from_config {
                    slot.remove_when_stopped = true;
                    if slot.control.is_some() {
                        to_stop.push(slot.info.id.clone());
                    } else {
                        report.stopped.push(slot.info.id.clone());
                    }
                } else {
                    report.kept.push(slot.info.id.clone());
                }
            }
            slots.retain(|s| !(s.remove_when_stopped && s.control.is_none()));
            // servers.json order, then run-time additions and the web
            // server: the membership order every server routes with.
            slots.sort_by_key(|s| {
                servers
                    .iter()
                    .position(|i| i.id == s.info.id)
                    .unwrap_or(usize::MAX)
            });
        }
        for (what, ids) in [
            ("new", &to_start),
            ("removed", &to_stop),
            ("changed", &to_restart),
        ] {
            if !ids.is_empty() {
                self.inner.say(&format!(
                    "reload of servers.json: {what}: {}",
                    ids.join(", ")
                ));
            }
        }
        let by_ids = |ids: &[String]| Selection {
            ids: ids.to_vec(),
            server_type: None,
        };
        if !to_stop.is_empty() {
            let r = self.stop(&by_ids(&to_stop));
            report.stopped.extend(r.ids);
            report.errors.extend(r.errors);
        }
        if !to_restart.is_empty() {
            let r = self.control(&by_ids(&to_restart), Control::Restart);
            report.restarted.extend(r.ids);
            report.errors.extend(r.errors);
        }
        if !to_start.is_empty() {
            let r = self.start(&by_ids(&to_start));
            report.started.extend(r.ids);
            report.errors.extend(r.errors);
        }
        self.inner.publish();
        report
    }

    /// Takes over servers an earlier master started that still run (its
    /// records name them; [`Records::split_alive`] checked them in
    /// `/proc`). Each gets a supervising task that watches its pid instead
    /// of spawning it: a crash is noticed (by polling) and handled like a
    /// crash of an own child, and stop, kill and restart work on it. The
    /// restarted process is an own child. An adopted server that came up
    /// before stays a member of the server list throughout, so its peers'
    /// routing does not move. Call before [`Supervisor::start`] and before
    /// the membership service answers (a server added at run time is known
    /// only from here). Returns the adopted ids.
    pub fn adopt(&self, adoptees: Vec<Adoptee>) -> Vec<String> {
        let mut tasks = Vec::new();
        {
            let mut slots = self.inner.lock();
            for a in adoptees {
                let id = a.info.id.clone();
                let i = match slots.iter().position(|s| s.info.id == id) {
                    Some(i) => {
                        if slots[i].info != a.info {
                            self.inner.say(&format!(
                                "{id} runs with an older entry than servers.json's; \
                                 `shaddock restart {id}` applies the new one"
                            ));
                        }
                        i
                    }
                    None => {
                        // Added at run time, or the web server of a master
                        // started with a web binary.
                        let kind = if id == WEB_SERVER_ID {
                            Kind::Web
                        } else {
                            Kind::Game
                        };
                        let auto = self.inner.cfg.auto_restart_default;
                        slots.push(new_slot(a.info.clone(), kind, auto));
                        slots.len() - 1
                    }
                };
                let slot = &mut slots[i];
                let (tx, rx) = mpsc::channel(4);
                slot.auto_restart = a.info.auto_restart.unwrap_or(slot.auto_restart);
                slot.info = a.info;
                slot.pid = Some(a.pid);
                slot.proc_start = Some(a.start);
                slot.adopted = true;
                slot.started_at = procinfo::started_ago(a.start)
                    .and_then(|ago| Instant::now().checked_sub(ago))
                    .or_else(|| Some(Instant::now()));
                slot.restarts = a.restarts;
                slot.ever_up = a.up;
                slot.state = if a.up {
                    State::Running
                } else {
                    State::Starting
                };
                slot.control = Some(tx);
                tasks.push((id, a.pid, rx));
            }
        }
        let mut ids = Vec::new();
        for (id, pid, rx) in tasks {
            self.inner.say(&format!(
                "adopted {id} (pid {pid}) from an earlier master; its output stays in logs/{id}.log"
            ));
            tokio::spawn(supervise(self.inner.clone(), id.clone(), rx));
            ids.push(id);
        }
        self.inner.publish();
        ids
    }

    /// Recorded servers of an earlier master that no longer run: each gets
    /// a line in `crash.log`; one that was a member of the server list
    /// stays one while it is started again (as after a crash).
    pub fn note_gone(&self, gone: &[ServerRecord]) {
        for rec in gone {
            let known = self.inner.with_slot(&rec.id, |s| {
                if rec.up && s.control.is_none() {
                    s.ever_up = true;
                }
            });
            if known.is_some() && rec.start.is_some() {
                self.inner.crash_log(&format!(
                    "{} pid={} exited while no master was running (found gone by a new master)",
                    rec.id, rec.pid
                ));
            }
        }
    }

    /// Writes the records now (the master's pid and token before any
    /// server started).
    pub fn write_records(&self) {
        self.inner.write_records();
    }

    /// Removes the records for good: every server is gone and the master
    /// exits. Later writes (of tasks finishing) are ignored.
    pub fn remove_records(&self) {
        let mut closed = self
            .inner
            .records_closed
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        *closed = true;
        let _ = std::fs::remove_file(records::path(&self.inner.cfg.log_dir));
    }

    /// Stops every server gracefully and waits (bounded) until all exited:
    /// frontends (and the web server) first, so their in-flight requests
    /// and the room-leave calls of kicked users still reach the backends;
    /// then the backends.
    pub async fn stop_all_and_wait(&self) {
        self.inner.stopping_all.store(true, Ordering::SeqCst);
        let frontends: Vec<String> = self
            .inner
            .lock()
            .iter()
            .filter(|s| s.info.frontend || s.kind == Kind::Web)
            .map(|s| s.info.id.clone())
            .collect();
        if !frontends.is_empty() {
            let sel = Selection {
                ids: frontends.clone(),
                server_type: None,
            };
            self.stop(&sel);
            self.wait_exited(Some(&frontends)).await;
        }
        self.stop(&Selection::all());
        self.wait_exited(None).await;
    }

    /// Waits until the given servers (`None`: all) have no process, at most
    /// the stop timeout plus the SIGKILL wait.
    async fn wait_exited(&self, ids: Option<&[String]>) {
        let deadline = Instant::now() + self.inner.cfg.stop_timeout + Duration::from_secs(6);
        while Instant::now() < deadline {
            let done = self
                .inner
                .lock()
                .iter()
                .filter(|s| ids.is_none_or(|ids| ids.contains(&s.info.id)))
                .all(|s| s.control.is_none());
            if done {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        self.inner
            .say("some servers did not exit in time even after SIGKILL; giving up waiting");
    }

    /// Whether every selected server is running (`Ok(true)`), still coming
    /// up (`Ok(false)`) or some failed (`Err` with their errors).
    /// `Ok(Some(n))`: all `n` selected servers run.
    pub fn readiness(&self, sel: &Selection) -> Result<Option<usize>, Vec<String>> {
        let slots = self.inner.lock();
        let mut ignore = ActionReport::default();
        let mut all_up = true;
        let mut failed = Vec::new();
        let mut count = 0;
        for i in select(&slots, sel, &mut ignore) {
            count += 1;
            let s = &slots[i];
            match s.state {
                State::Running => {}
                State::Failed => failed.push(format!("{}: {}", s.info.id, s.last_error)),
                _ => all_up = false,
            }
        }
        if failed.is_empty() {
            Ok(all_up.then_some(count))
        } else {
            Err(failed)
        }
    }

    /// One row per server for `shaddock list`.
    pub fn status(&self) -> Vec<proto::ServerStatus> {
        let mut slots = self.inner.lock();
        let now = Instant::now();
        slots
            .iter_mut()
            .map(|s| {
                let sample = s.pid.and_then(procinfo::sample);
                let cpu_percent = match (sample, s.cpu_prev) {
                    (Some(sample), Some((at, prev))) => {
                        let secs = now.duration_since(at).as_secs_f64();
                        if secs > 0.0 {
                            ((sample.cpu_secs - prev) / secs * 100.0).max(0.0)
                        } else {
                            0.0
                        }
                    }
                    (Some(sample), None) => {
                        let secs = s
                            .started_at
                            .map(|t| now.duration_since(t).as_secs_f64())
                            .unwrap_or(0.0);
                        if secs > 0.0 {
                            sample.cpu_secs / secs * 100.0
                        } else {
                            0.0
                        }
                    }
                    _ => 0.0,
                };
                s.cpu_prev = sample.map(|x| (now, x.cpu_secs));
                proto::ServerStatus {
                    id: s.info.id.clone(),
                    server_type: s.info.server_type.clone(),
                    supervisor: self.inner.cfg.supervisor_name.clone(),
                    pid: s.pid.unwrap_or(0),
                    host: s.info.host.clone(),
                    port: s.info.port.map(u32::from),
                    client_port: s.info.client_port.map(u32::from),
                    frontend: s.info.frontend,
                    state: s.state.as_str().to_string(),
                    uptime_secs: match (s.pid, s.started_at) {
                        (Some(_), Some(t)) => now.duration_since(t).as_secs(),
                        _ => 0,
                    },
                    connections: s.connections,
                    rss_bytes: sample.map(|x| x.rss_bytes).unwrap_or(0),
                    cpu_percent,
                    restarts: s.restarts,
                    last_error: s.last_error.clone(),
                    agent_connected: s.agent.is_some(),
                    adopted: s.adopted && s.pid.is_some(),
                    metrics_addr: super::scrape::metrics_addr(&s.info).unwrap_or_default(),
                    ..Default::default()
                }
            })
            .collect()
    }

    // ---- used by the membership service ----

    /// Registers a server's agent stream; `Err` when the id is unknown.
    pub(crate) fn agent_connected(
        &self,
        id: &str,
        link: AgentLink,
        pid: u32,
    ) -> Result<(), String> {
        let mut slots = self.inner.lock();
        let slot = slots
            .iter_mut()
            .find(|s| s.info.id == id && s.kind == Kind::Game)
            .ok_or_else(|| format!("unknown server id `{id}`"))?;
        if slot.pid.is_some_and(|p| p != pid) {
            // A wrapper script that did not `exec`: the token already proved
            // it belongs to this master's run, so accept it.
            tracing::warn!(server = %id, spawned = ?slot.pid, hello = pid, "server agent runs under another pid than the one spawned");
        }
        // Not "running" yet: that is when its ports accept connections
        // (`probe_ready`), which a hello sent before binding cannot promise.
        slot.agent = Some(link);
        Ok(())
    }

    pub(crate) fn agent_disconnected(&self, id: &str, conn_id: u64) {
        let mut slots = self.inner.lock();
        if let Some(slot) = slots.iter_mut().find(|s| s.info.id == id)
            && slot.agent.as_ref().is_some_and(|a| a.conn_id == conn_id)
        {
            slot.agent = None;
            slot.connections = 0;
        }
    }

    /// The agent streams of the selected servers, for an admin action;
    /// selected servers without one (not running) are errors.
    pub(crate) fn agents(&self, sel: &Selection) -> (Vec<(String, AgentLink)>, Vec<String>) {
        let mut report = ActionReport::default();
        let slots = self.inner.lock();
        let mut links = Vec::new();
        for i in select(&slots, sel, &mut report) {
            let slot = &slots[i];
            match &slot.agent {
                Some(link) => links.push((slot.info.id.clone(), link.clone())),
                None if slot.kind != Kind::Game || sel.is_all() => {}
                None => report.errors.push(format!(
                    "{} is not running (or not connected to this master)",
                    slot.info.id
                )),
            }
        }
        (links, report.errors)
    }

    /// Marks frontends drained: the membership list says so, and gates send
    /// no new clients there. Until the server's next process.
    pub(crate) fn set_draining(&self, ids: &[String]) {
        {
            let mut slots = self.inner.lock();
            for slot in slots.iter_mut().filter(|s| ids.contains(&s.info.id)) {
                slot.draining = true;
            }
        }
        self.inner.publish();
    }

    pub(crate) fn agent_stats(&self, id: &str, connections: u64) {
        let mut slots = self.inner.lock();
        if let Some(slot) = slots.iter_mut().find(|s| s.info.id == id) {
            slot.connections = connections;
        }
    }
}

fn new_slot(info: ServerInfo, kind: Kind, auto_default: bool) -> Slot {
    Slot {
        auto_restart: info.auto_restart.unwrap_or(auto_default),
        info,
        kind,
        state: State::Stopped,
        pid: None,
        proc_start: None,
        adopted: false,
        started_at: None,
        restarts: 0,
        last_error: String::new(),
        connections: 0,
        agent: None,
        control: None,
        ever_up: false,
        leaving: false,
        from_config: false,
        next_info: None,
        remove_when_stopped: false,
        cpu_prev: None,
        draining: false,
    }
}

fn validate_new(slots: &[Slot], info: &ServerInfo) -> Result<(), String> {
    if info.id.is_empty() || info.server_type.is_empty() || info.host.is_empty() {
        return Err("id, serverType and host are required".into());
    }
    if info.id == WEB_SERVER_ID || info.id.contains(char::is_whitespace) || info.id.contains('/') {
        return Err(format!("`{}` is not a usable server id", info.id));
    }
    if info.frontend && info.client_port.is_none() {
        return Err(format!("frontend server `{}` needs clientPort", info.id));
    }
    if info.port.is_none() && info.client_port.is_none() {
        return Err(format!("server `{}` needs port and/or clientPort", info.id));
    }
    for s in slots {
        if s.info.id == info.id {
            return Err(format!("server id `{}` already exists", info.id));
        }
        let theirs = [s.info.port, s.info.client_port];
        for p in [info.port, info.client_port].into_iter().flatten() {
            if theirs.contains(&Some(p)) && s.info.host == info.host {
                return Err(format!("port {p} is already used by `{}`", s.info.id));
            }
        }
    }
    Ok(())
}

fn select(slots: &[Slot], sel: &Selection, report: &mut ActionReport) -> Vec<usize> {
    if sel.is_all() {
        return (0..slots.len()).collect();
    }
    let mut out = Vec::new();
    for id in &sel.ids {
        match slots.iter().position(|s| &s.info.id == id) {
            Some(i) => out.push(i),
            None => report.errors.push(format!("unknown server id `{id}`")),
        }
    }
    if let Some(t) = &sel.server_type {
        let before = out.len();
        out.extend(
            slots
                .iter()
                .enumerate()
                .filter(|(_, s)| &s.info.server_type == t)
                .map(|(i, _)| i),
        );
        if out.len() == before {
            report.errors.push(format!("no server of type `{t}`"));
        }
    }
    out.sort_unstable();
    out.dedup();
    out
}

impl Supervisor {
    fn control(&self, sel: &Selection, cmd: Control) -> ActionReport {
        let mut report = ActionReport::default();
        let slots = self.inner.lock();
        for i in select(&slots, sel, &mut report) {
            let slot = &slots[i];
            match &slot.control {
                Some(tx) => {
                    // A full queue means a command is already pending.
                    let _ = tx.try_send(cmd);
                    report.ids.push(slot.info.id.clone());
                }
                None if sel.is_all() => {}
                None => report
                    .errors
                    .push(format!("{} is not running", slot.info.id)),
            }
        }
        report
    }
}

impl Inner {
    fn lock(&self) -> MutexGuard<'_, Vec<Slot>> {
        self.slots.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A line of the master's own in the merged output.
    fn say(&self, line: &str) {
        out_line(&format!("[{:<w$}] {line}", "master", w = self.id_width));
        tracing::debug!("{line}");
    }

    fn with_slot<R>(&self, id: &str, f: impl FnOnce(&mut Slot) -> R) -> Option<R> {
        let mut slots = self.lock();
        slots.iter_mut().find(|s| s.info.id == id).map(f)
    }

    /// Recomputes the live server list and pushes it when it changed.
    ///
    /// A server is a member once it came up, and stays one while it is
    /// restarting after a crash: routers keep hashing users to it (their
    /// requests fail fast for a moment) instead of moving every room of a
    /// crashed server elsewhere and back. Stopped and failed servers leave,
    /// and a backend being stopped on purpose leaves before it stops.
    fn publish(&self) {
        let entries: Vec<proto::ServerEntry> = self
            .lock()
            .iter()
            .filter(|s| {
                s.kind == Kind::Game
                    && s.ever_up
                    && !s.leaving
                    && !matches!(s.state, State::Stopped | State::Failed)
            })
            .map(|s| proto::ServerEntry {
                id: s.info.id.clone(),
                server_type: s.info.server_type.clone(),
                host: s.info.host.clone(),
                port: s.info.port.map(u32::from),
                client_port: s.info.client_port.map(u32::from),
                frontend: s.info.frontend,
            })
            .collect();
        let draining: Vec<String> = self
            .lock()
            .iter()
            .filter(|s| s.draining && s.pid.is_some())
            .map(|s| s.info.id.clone())
            .collect();
        self.membership.send_if_modified(|cur| {
            if cur.servers == entries && cur.draining == draining {
                return false;
            }
            *cur = Arc::new(proto::ServerList {
                version: cur.version + 1,
                servers: entries,
                draining,
            });
            true
        });
        self.write_records();
    }

    /// Rewrites `logs/master.pids.json` (see [`records`]).
    fn write_records(&self) {
        let servers = self
            .lock()
            .iter()
            .filter_map(|s| {
                Some(ServerRecord {
                    id: s.info.id.clone(),
                    pid: s.pid?,
                    start: s.proc_start,
                    info: Some(s.info.clone()),
                    restarts: s.restarts,
                    up: s.ever_up,
                })
            })
            .collect();
        let rec = Records {
            master: std::process::id(),
            master_start: self.master_start,
            addr: self.cfg.master_addr.clone(),
            env: self.cfg.env.clone(),
            token: self.cfg.token.clone(),
            servers,
        };
        let closed = self
            .records_closed
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if *closed {
            return;
        }
        if let Err(e) = rec.write(&self.cfg.log_dir) {
            tracing::warn!(
                "cannot write {}: {e}",
                records::path(&self.cfg.log_dir).display()
            );
        }
    }

    fn crash_log(&self, line: &str) {
        use std::io::Write;
        let path = self.cfg.log_dir.join("crash.log");
        let res = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .and_then(|mut f| writeln!(f, "{} {line}", utc_now()));
        if let Err(e) = res {
            tracing::warn!("cannot write {}: {e}", path.display());
        }
    }
}
