//! Test kit for apps: a whole cluster of real server processes on loopback,
//! one OS process per server — what an app's integration tests (and ours:
//! the chat suite, the browser test, the load-robot smoke) start.
//!
//! [`ProcCluster::start`] allocates free ports, writes a generated
//! `servers.json` (via [`Topology::to_servers_json`]) into a fresh temp
//! directory, spawns the app binary once per server with `--config-dir` /
//! `--log-dir` pointing there, and waits (bounded) until every port
//! accepts. Each cluster gets its own random cluster secret
//! (`config/cluster.json`, [`write_cluster_secret`]), as `shaddock start`
//! makes for a development app, so tests run with authentication on. Children are SIGKILLed on `Drop` — also when a test panics — and
//! on Linux they get `PR_SET_PDEATHSIG` so they die with the test process
//! even if it is killed itself.
//!
//! Tests wait on conditions, not clocks: [`eventually`] (and
//! [`eventually_async`] in tokio tests) polls a condition with a short
//! backoff until it holds, and fails naming what it waited for and what it
//! saw last. A fixed `sleep` belongs only where a test lets time pass on
//! purpose, to show that something does *not* happen.

pub mod apt;
pub mod etcd;
pub mod ports;

pub use ports::free_port;
use std::fmt::Display;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use shaddock::config::{ServerInfo, Topology};

/// How long a cluster may take to come up on a loaded machine.
pub const START_TIMEOUT: Duration = Duration::from_secs(30);
/// Environment name written into the generated servers.json.
pub const ENV: &str = "development";

/// What one attempt of [`eventually`] saw. `true`, `Some(value)` or
/// `Ok(value)` ends the wait; `false`, `None` or `Err(seen)` asks for
/// another attempt, and the panic on timeout quotes the last `seen`.
pub trait Attempt {
    /// What the wait returns once the condition holds.
    type Output;
    /// `Ok` when the condition holds, else what was seen instead (if known).
    fn outcome(self) -> Result<Self::Output, Option<String>>;
}

impl Attempt for bool {
    type Output = ();
    fn outcome(self) -> Result<(), Option<String>> {
        if self { Ok(()) } else { Err(None) }
    }
}

impl<T> Attempt for Option<T> {
    type Output = T;
    fn outcome(self) -> Result<T, Option<String>> {
        self.ok_or(None)
    }
}

impl<T, E: Display> Attempt for Result<T, E> {
    type Output = T;
    fn outcome(self) -> Result<T, Option<String>> {
        self.map_err(|seen| Some(seen.to_string()))
    }
}

/// The pause after the first failed attempt; it doubles up to [`MAX_PAUSE`].
const FIRST_PAUSE: Duration = Duration::from_millis(10);
const MAX_PAUSE: Duration = Duration::from_millis(100);

/// The clock and the record of one wait.
struct Wait<'a> {
    what: &'a str,
    timeout: Duration,
    start: Instant,
    pause: Duration,
    attempts: u32,
    last: Option<String>,
}

impl<'a> Wait<'a> {
    fn new(what: &'a str, timeout: Duration) -> Self {
        Wait {
            what,
            timeout,
            start: Instant::now(),
            pause: FIRST_PAUSE,
            attempts: 0,
            last: None,
        }
    }

    /// Records a failed attempt: the pause before the next one, or the
    /// timeout message when time is up (checked between attempts only).
    fn failed(&mut self, seen: Option<String>) -> Result<Duration, String> {
        self.attempts += 1;
        self.last = seen;
        let left = self.timeout.saturating_sub(self.start.elapsed());
        if left.is_zero() {
            let mut msg = format!(
                "timed out after {:?} waiting for {}",
                self.timeout, self.what
            );
            if let Some(last) = &self.last {
                msg.push_str(&format!("; last seen: {last}"));
            }
            msg.push_str(&format!(" ({} attempts)", self.attempts));
            return Err(msg);
        }
        let pause = self.pause.min(left);
        self.pause = (self.pause * 2).min(MAX_PAUSE);
        Ok(pause)
    }
}

/// Polls `f` until its [`Attempt`] succeeds; `Err` is the timeout message.
fn poll<A: Attempt>(
    what: &str,
    timeout: Duration,
    mut f: impl FnMut() -> A,
) -> Result<A::Output, String> {
    let mut wait = Wait::new(what, timeout);
    loop {
        match f().outcome() {
            Ok(value) => return Ok(value),
            Err(seen) => std::thread::sleep(wait.failed(seen)?),
        }
    }
}

/// [`poll`] for async conditions; an attempt still running after `timeout`
/// is abandoned and counts as failed.
async fn poll_async<A: Attempt, F: Future<Output = A>>(
    what: &str,
    timeout: Duration,
    mut f: impl FnMut() -> F,
) -> Result<A::Output, String> {
    let mut wait = Wait::new(what, timeout);
    loop {
        let seen = match tokio::time::timeout(timeout, f()).await {
            Ok(attempt) => match attempt.outcome() {
                Ok(value) => return Ok(value),
                Err(seen) => seen,
            },
            Err(_) => Some(format!("an attempt still running after {timeout:?}")),
        };
        tokio::time::sleep(wait.failed(seen)?).await;
    }
}

/// Waits until `f` reports that a condition holds and returns what it
/// found; panics if that does not happen within `timeout`, naming `what`
/// it waited for and what the last attempt saw.
///
/// `f` returns an [`Attempt`]: a `bool`, an `Option` or a `Result` whose
/// `Err` says what was seen instead. It is polled at once, then after
/// pauses of 10 ms doubling up to 100 ms. The deadline is checked between
/// attempts: an attempt that started in time may finish.
///
/// ```
/// use std::sync::Arc;
/// use std::sync::atomic::{AtomicU32, Ordering};
/// use std::time::Duration;
/// use shaddock_testkit::eventually;
///
/// let count = Arc::new(AtomicU32::new(0));
/// let worker = count.clone();
/// std::thread::spawn(move || {
///     for _ in 0..3 {
///         worker.fetch_add(1, Ordering::SeqCst);
///     }
/// });
/// // On timeout this panics with "timed out after 5s waiting for three
/// // increments; last seen: count 1 (…attempts)".
/// eventually("three increments", Duration::from_secs(5), || {
///     match count.load(Ordering::SeqCst) {
///         3 => Ok(()),
///         n => Err(format!("count {n}")),
///     }
/// });
/// ```
#[track_caller]
pub fn eventually<A: Attempt>(what: &str, timeout: Duration, f: impl FnMut() -> A) -> A::Output {
    match poll(what, timeout, f) {
        Ok(value) => value,
        Err(msg) => panic!("{msg}"),
    }
}

/// [`eventually`] for tokio tests: `f` returns a future (`|| async { … }`;
/// do mutable work before the `async` block), the pauses do not block the
/// runtime, and an attempt still running after `timeout` is abandoned.
///
/// ```
/// use std::time::Duration;
/// use shaddock_testkit::eventually_async;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
/// let addr = listener.local_addr().unwrap();
/// let stream = eventually_async("the listener to accept", Duration::from_secs(5), || {
///     tokio::net::TcpStream::connect(addr)
/// })
/// .await;
/// assert_eq!(stream.peer_addr().unwrap(), addr);
/// # }
/// ```
pub async fn eventually_async<A: Attempt, F: Future<Output = A>>(
    what: &str,
    timeout: Duration,
    f: impl FnMut() -> F,
) -> A::Output {
    match poll_async(what, timeout, f).await {
        Ok(value) => value,
        Err(msg) => panic!("{msg}"),
    }
}

/// The exit status of `child` once it has exited (polled like
/// [`eventually`]), or `None` if it still runs after `timeout` — for the
/// caller to kill it and say why. Like the client's `closed_within`.
pub fn exit_within(child: &mut Child, timeout: Duration) -> Option<ExitStatus> {
    poll("the process to exit", timeout, || {
        child.try_wait().expect("polling a child process")
    })
    .ok()
}

/// Shape of a Pomelo-style cluster: one gate, `connectors` connectors and
/// `chats` backends of type `chat`, in this order in servers.json.
#[derive(Debug, Clone, Copy)]
pub struct Topo {
    pub connectors: usize,
    pub chats: usize,
}

impl Topo {
    pub const fn new(connectors: usize, chats: usize) -> Self {
        Topo { connectors, chats }
    }

    /// The topology with fresh free loopback ports.
    pub fn servers(&self) -> Vec<ServerInfo> {
        // Each server also gets a `metricsPort` (/metrics, /healthz, /readyz).
        let n = 2 * (1 + self.connectors + self.chats) + self.connectors;
        let ports = free_ports(n);
        let mut ports = ports.into_iter();
        let mut next = || ports.next().expect("enough ports");
        let mut servers = vec![server("gate-server-1", "gate", None, Some(next()))];
        for i in 1..=self.connectors {
            let (port, client) = (next(), next());
            servers.push(server(
                &format!("connector-server-{i}"),
                "connector",
                Some(port),
                Some(client),
            ));
        }
        for i in 1..=self.chats {
            servers.push(server(
                &format!("chat-server-{i}"),
                "chat",
                Some(next()),
                None,
            ));
        }
        for s in &mut servers {
            s.metrics_port = Some(next());
        }
        servers
    }
}

pub fn server(id: &str, ty: &str, port: Option<u16>, client_port: Option<u16>) -> ServerInfo {
    ServerInfo {
        id: id.into(),
        server_type: ty.into(),
        host: "127.0.0.1".into(),
        port,
        client_port,
        frontend: client_port.is_some(),
        max_connections: None,
        auto_restart: None,
        args: Vec::new(),
        client_host: None,
        bind_host: None,
        client_bind_host: None,
        metrics_port: None,
    }
}

/// `n` distinct free loopback ports, outside the kernel's ephemeral range
/// ([`ports`]).
pub fn free_ports(n: usize) -> Vec<u16> {
    (0..n).map(|_| free_port()).collect()
}

/// Writes `{"<env>": {...}}` for `servers` into `<dir>/config/servers.json`.
pub fn write_servers_json(dir: &Path, servers: &[ServerInfo]) -> PathBuf {
    let topology = Topology {
        env: ENV.into(),
        servers: servers.to_vec(),
    };
    let config = dir.join("config");
    std::fs::create_dir_all(&config).unwrap();
    let text = serde_json::to_string_pretty(&topology.to_servers_json()).unwrap();
    std::fs::write(config.join("servers.json"), text).unwrap();
    write_cluster_secret(dir);
    config
}

/// Writes `<dir>/config/cluster.json` with a fresh random secret for [`ENV`]
/// unless the file exists (servers.json may be rewritten; the secret must
/// not change under running servers), and returns the secret in force.
pub fn write_cluster_secret(dir: &Path) -> String {
    let path = dir.join("config").join(shaddock::config::CLUSTER_FILE);
    if let Ok(Some(s)) = shaddock::config::ClusterSecret::load_with(&dir.join("config"), ENV, None)
    {
        return s.expose().to_owned();
    }
    let mut bytes = [0u8; 24];
    getrandom::fill(&mut bytes).expect("OS random source");
    let secret: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let json = serde_json::json!({ ENV: { "secret": secret } });
    std::fs::write(&path, json.to_string()).unwrap();
    secret
}

/// A sibling binary of the running test: `target/<profile>/<name>`.
///
/// `cargo test --workspace` builds every binary of the workspace before it
/// runs any test, so a test in one crate can start another crate's binary
/// from here (a crate's own binaries are also in `CARGO_BIN_EXE_<name>`).
pub fn workspace_bin(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    // target/<profile>/deps/<test>-<hash>
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("test executable lives in target/<profile>/deps");
    let bin = profile_dir.join(format!("{name}{}", std::env::consts::EXE_SUFFIX));
    assert!(
        bin.exists(),
        "{} not found: build it first (`cargo build -p {name}`, or run `cargo test --workspace`)",
        bin.display()
    );
    bin
}

/// A command for one server of the app in `dir`, with a clean environment
/// (no master, no overrides from the developer's shell). On Linux the child
/// dies with the process that started it, so a killed test leaves nothing.
pub fn command(bin: &Path, dir: &Path, server_id: &str) -> Command {
    let mut cmd = Command::new(bin);
    cmd.args(["--env", ENV, "--server-id", server_id])
        .arg("--config-dir")
        .arg(dir.join("config"))
        .arg("--log-dir")
        .arg(dir.join("logs"))
        .current_dir(dir)
        .env("RUST_LOG", "info")
        .stdin(Stdio::null());
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("SHADDOCK_") {
            cmd.env_remove(key);
        }
    }
    #[cfg(target_os = "linux")]
    {
        use std::os::unix::process::CommandExt;
        // SAFETY: prctl is async-signal-safe and only flags the child.
        unsafe {
            cmd.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                Ok(())
            });
        }
    }
    cmd
}

/// One running server process.
struct Proc {
    id: String,
    child: Child,
}

/// A running cluster of server processes; killed on drop.
pub struct ProcCluster {
    bin: PathBuf,
    dir: tempfile::TempDir,
    pub servers: Vec<ServerInfo>,
    procs: Vec<Proc>,
    /// `(server id, variable, value)` set on that server's process.
    env: Vec<(String, String, String)>,
}

impl ProcCluster {
    /// Starts `topo` with fresh ports. Retries (twice) if a port was taken
    /// by someone else between allocation and bind.
    pub async fn start(bin: impl AsRef<Path>, topo: Topo) -> Self {
        let mut last = String::new();
        for _ in 0..3 {
            match Self::try_start(bin.as_ref(), topo.servers()).await {
                Ok(c) => return c,
                Err(e) if e.contains("cannot listen") || e.contains("in use") => last = e,
                Err(e) => panic!("cluster did not start: {e}"),
            }
        }
        panic!("cluster did not start (ports kept colliding): {last}");
    }

    /// Starts the given servers (one process each) and waits until every
    /// port accepts; `Err` carries the stderr of a server that exited.
    pub async fn try_start(bin: &Path, servers: Vec<ServerInfo>) -> Result<Self, String> {
        Self::try_start_with(bin, servers, &[], &[]).await
    }

    /// [`try_start`](Self::try_start) with environment variables for some
    /// servers, `(server id, variable, value)` (e.g. a wrong
    /// `SHADDOCK_CLUSTER_SECRET` for one of them), and extra files in the
    /// config folder, `(file name, contents)` (e.g. `connector.json`).
    pub async fn try_start_with(
        bin: &Path,
        servers: Vec<ServerInfo>,
        env: &[(&str, &str, &str)],
        config_files: &[(&str, &str)],
    ) -> Result<Self, String> {
        let dir = tempfile::tempdir().expect("temp dir");
        let config = write_servers_json(dir.path(), &servers);
        for (name, contents) in config_files {
            std::fs::write(config.join(name), contents).unwrap();
        }
        let mut cluster = ProcCluster {
            bin: bin.to_path_buf(),
            dir,
            servers,
            procs: Vec::new(),
            env: env
                .iter()
                .map(|(id, k, v)| (id.to_string(), k.to_string(), v.to_string()))
                .collect(),
        };
        for s in cluster.servers.clone() {
            cluster.spawn(&s.id);
        }
        let servers = cluster.servers.clone();
        // `Ok(Err(..))` ends the wait at once: a server exited.
        let up = eventually_async("every server to listen", START_TIMEOUT, || {
            let exited = servers.iter().find_map(|s| {
                let status = cluster.exited(&s.id)?;
                Some(format!(
                    "{} exited ({status}): {}",
                    s.id,
                    cluster.stderr(&s.id)
                ))
            });
            // A port that accepts may belong to another test's cluster that
            // drew the same free port: only the server's own log line says
            // *it* is listening (and a server that lost the race exits with
            // "cannot listen", which makes `start` retry on fresh ports).
            let unlogged = servers.iter().find_map(|s| {
                let log = cluster.log(&s.id);
                let rpc = s.port.is_some() && !log.contains("RPC server listening");
                let clients = s.client_port.is_some() && !log.contains("accepting clients");
                (rpc || clients).then(|| format!("{} has not logged that it listens yet", s.id))
            });
            let servers = &servers;
            async move {
                if let Some(exited) = exited {
                    return Ok(Err(exited));
                }
                if let Some(unlogged) = unlogged {
                    return Err(unlogged);
                }
                for s in servers {
                    for port in [s.port, s.client_port].into_iter().flatten() {
                        if tokio::net::TcpStream::connect(("127.0.0.1", port))
                            .await
                            .is_err()
                        {
                            return Err(format!("{} does not listen on {port} yet", s.id));
                        }
                    }
                }
                Ok(Ok(()))
            }
        })
        .await;
        up.map(|()| cluster)
    }

    fn spawn(&mut self, id: &str) {
        let stderr = std::fs::File::create(self.dir.path().join(format!("{id}.stderr"))).unwrap();
        let mut cmd = command(&self.bin, self.dir.path(), id);
        for (_, k, v) in self.env.iter().filter(|(server, ..)| server == id) {
            cmd.env(k, v);
        }
        let child = cmd
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {}: {e}", self.bin.display()));
        self.procs.push(Proc {
            id: id.to_string(),
            child,
        });
    }

    fn exited(&mut self, id: &str) -> Option<std::process::ExitStatus> {
        let p = self.procs.iter_mut().find(|p| p.id == id)?;
        p.child.try_wait().ok().flatten()
    }

    /// The app folder (config/, logs/).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    pub fn server(&self, id: &str) -> &ServerInfo {
        self.servers
            .iter()
            .find(|s| s.id == id)
            .unwrap_or_else(|| panic!("no server {id}"))
    }

    /// Servers of one type, in servers.json order.
    pub fn of_type(&self, ty: &str) -> Vec<&ServerInfo> {
        self.servers
            .iter()
            .filter(|s| s.server_type == ty)
            .collect()
    }

    pub fn gate_url(&self) -> String {
        let gate = self.of_type("gate")[0];
        format!("ws://127.0.0.1:{}", gate.client_port.unwrap())
    }

    /// SIGKILLs one server (a crash) and reaps it.
    pub fn kill(&mut self, id: &str) {
        let p = self
            .procs
            .iter_mut()
            .find(|p| p.id == id)
            .expect("running server");
        let _ = p.child.kill();
        let _ = p.child.wait();
    }

    /// SIGSTOPs one server: it keeps its sockets open but answers nothing
    /// (a hung backend). `Drop` still kills it.
    pub fn freeze(&mut self, id: &str) {
        let p = self
            .procs
            .iter()
            .find(|p| p.id == id)
            .expect("running server");
        freeze_pid(p.child.id(), id);
    }

    /// What the server wrote to stderr so far.
    pub fn stderr(&self, id: &str) -> String {
        std::fs::read_to_string(self.dir.path().join(format!("{id}.stderr"))).unwrap_or_default()
    }

    /// `logs/<id>.log` so far.
    pub fn log(&self, id: &str) -> String {
        std::fs::read_to_string(self.dir.path().join("logs").join(format!("{id}.log")))
            .unwrap_or_default()
    }

    /// Waits until `logs/<id>.log` has a line containing every needle.
    pub async fn wait_log_line(&self, id: &str, needles: &[&str], timeout: Duration) -> bool {
        poll_async("a log line", timeout, || async {
            self.log(id)
                .lines()
                .any(|l| needles.iter().all(|n| l.contains(n)))
        })
        .await
        .is_ok()
    }
}

impl ProcCluster {
    /// Starts server `id` again after a [`kill`](Self::kill) (what the
    /// master's auto-restart does) and waits until its ports accept.
    pub async fn restart(&mut self, id: &str) {
        if let Some(pos) = self.procs.iter().position(|p| p.id == id) {
            let mut old = self.procs.remove(pos);
            let _ = old.child.kill();
            let _ = old.child.wait();
        }
        // The log file is appended to: count the previous incarnation's
        // "listening" lines so only the new process's count.
        let listening = |log: &str| {
            log.matches("RPC server listening").count() + log.matches("accepting clients").count()
        };
        let before = listening(&self.log(id));
        let info = self.server(id).clone();
        let wanted =
            before + usize::from(info.port.is_some()) + usize::from(info.client_port.is_some());
        self.spawn(id);
        let what = format!("{id} to listen again after a restart");
        let outcome = eventually_async(&what, START_TIMEOUT, || {
            let exited = self.exited(id);
            let logged = listening(&self.log(id));
            let stderr = self.stderr(id);
            async move {
                match exited {
                    Some(status) => Ok(Err(format!("{id} exited on restart ({status}): {stderr}"))),
                    None if logged >= wanted => Ok(Ok(())),
                    None => Err(format!("{logged} of {wanted} listening lines")),
                }
            }
        })
        .await;
        if let Err(e) = outcome {
            panic!("{e}");
        }
    }
}

impl Drop for ProcCluster {
    fn drop(&mut self) {
        for p in &mut self.procs {
            let _ = p.child.kill();
        }
        for p in &mut self.procs {
            let _ = p.child.wait();
        }
    }
}

/// SIGSTOPs process `pid` (named `what` in messages) and waits until the
/// kernel reports it stopped (state `T` in `/proc/<pid>/stat`): it keeps its
/// sockets open but answers nothing, like a hung server.
pub fn freeze_pid(pid: u32, what: &str) {
    let pid = libc::pid_t::try_from(pid).expect("pid");
    // SAFETY: kill(2) with a positive pid the caller owns.
    assert_eq!(
        unsafe { libc::kill(pid, libc::SIGSTOP) },
        0,
        "SIGSTOP {what}"
    );
    // kill(2) only queues the signal: wait until the kernel reports the
    // process stopped, or a request sent right away may still be served.
    let stat = format!("/proc/{pid}/stat");
    eventually(&format!("{what} to be stopped"), START_TIMEOUT, || {
        let text = std::fs::read_to_string(&stat).unwrap_or_default();
        // "pid (comm) S ...": the state follows the last ')'.
        let state = text
            .rsplit(')')
            .next()
            .and_then(|r| r.split_whitespace().next());
        match state {
            Some("T") | Some("t") => Ok(()),
            other => Err(format!("state {other:?}")),
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn eventually_returns_what_the_successful_poll_found() {
        let mut polls = 0;
        let found = eventually("the third poll", Duration::from_secs(5), || {
            polls += 1;
            (polls == 3).then_some(polls * 10)
        });
        assert_eq!((found, polls), (30, 3));
    }

    #[test]
    #[should_panic(expected = "timed out after 50ms waiting for the answer; last seen: 41 (")]
    fn eventually_panics_naming_what_and_the_last_state() {
        eventually("the answer", Duration::from_millis(50), || Err::<(), _>(41));
    }

    #[test]
    #[should_panic(expected = "timed out after 30ms waiting for a flag (")]
    fn a_bool_condition_has_no_state_to_report() {
        eventually("a flag", Duration::from_millis(30), || false);
    }

    #[test]
    fn polls_back_off_and_stop_at_the_deadline() {
        let mut polls = 0;
        let started = Instant::now();
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            eventually("never", Duration::from_millis(300), || {
                polls += 1;
                false
            })
        }));
        assert!(result.is_err());
        let took = started.elapsed();
        // 0, 10, 30, 70, 150, 250, 300 ms: a handful of polls, not 300.
        assert!((2..=8).contains(&polls), "{polls} polls");
        assert!(
            took >= Duration::from_millis(300) && took < Duration::from_secs(3),
            "{took:?}"
        );
    }

    #[tokio::test]
    async fn eventually_async_returns_what_the_successful_poll_found() {
        let mut polls = 0;
        let found = eventually_async("the second poll", Duration::from_secs(5), || {
            polls += 1;
            let poll = polls;
            async move {
                tokio::task::yield_now().await;
                if poll == 2 {
                    Ok("done")
                } else {
                    Err(format!("poll {poll}"))
                }
            }
        })
        .await;
        assert_eq!((found, polls), ("done", 2));
    }

    #[tokio::test]
    #[should_panic(expected = "timed out after 50ms waiting for a reply; last seen: no reply (")]
    async fn eventually_async_panics_naming_what_and_the_last_state() {
        eventually_async("a reply", Duration::from_millis(50), || async {
            Err::<(), _>("no reply")
        })
        .await;
    }

    #[tokio::test]
    #[should_panic(
        expected = "waiting for a hung check; last seen: an attempt still running after 50ms"
    )]
    async fn a_hung_async_attempt_is_abandoned_at_the_timeout() {
        eventually_async("a hung check", Duration::from_millis(50), || async {
            // deliberate: an attempt that hangs far past the timeout.
            tokio::time::sleep(Duration::from_secs(60)).await;
            true
        })
        .await;
    }

    /// Compile-time: `start` stays a `Send` future (e.g. for `tokio::spawn`).
    #[test]
    fn starting_a_cluster_can_be_spawned() {
        fn send<T: Send>(_: &T) {}
        send(&ProcCluster::start("/nonexistent", Topo::new(1, 1)));
    }

    #[test]
    fn exit_within_reports_the_status_or_none() {
        let mut done = Command::new("true").spawn().unwrap();
        let status = exit_within(&mut done, Duration::from_secs(10));
        assert!(status.is_some_and(|s| s.success()), "{status:?}");
        let mut running = Command::new("sleep").arg("30").spawn().unwrap();
        assert_eq!(exit_within(&mut running, Duration::from_millis(50)), None);
        running.kill().unwrap();
        running.wait().unwrap();
    }
}
