//! Test kit for apps: a whole cluster of real server processes on loopback,
//! one OS process per server — what an app's integration tests (and ours:
//! the chat suite, the browser test, the load-robot smoke) start.
//!
//! [`ProcCluster::start`] allocates free ports, writes a generated
//! `servers.json` (via [`Topology::to_servers_json`]) into a fresh temp
//! directory, spawns the app binary once per server with `--config-dir` /
//! `--log-dir` pointing there, and waits (bounded) until every port
//! accepts. Children are SIGKILLed on `Drop` — also when a test panics — and
//! on Linux they get `PR_SET_PDEATHSIG` so they die with the test process
//! even if it is killed itself.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use shaddock::config::{ServerInfo, Topology};

/// How long a cluster may take to come up on a loaded machine.
pub const START_TIMEOUT: Duration = Duration::from_secs(30);
/// Environment name written into the generated servers.json.
pub const ENV: &str = "development";

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
        let n = 1 + 2 * self.connectors + self.chats;
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
    }
}

/// `n` distinct free loopback ports (all held until every one is picked).
pub fn free_ports(n: usize) -> Vec<u16> {
    let listeners: Vec<TcpListener> = (0..n)
        .map(|_| TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0"))
        .collect();
    listeners
        .iter()
        .map(|l| l.local_addr().unwrap().port())
        .collect()
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
    config
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
        let dir = tempfile::tempdir().expect("temp dir");
        write_servers_json(dir.path(), &servers);
        let mut cluster = ProcCluster {
            bin: bin.to_path_buf(),
            dir,
            servers,
            procs: Vec::new(),
        };
        for s in cluster.servers.clone() {
            cluster.spawn(&s.id);
        }
        let deadline = Instant::now() + START_TIMEOUT;
        for s in cluster.servers.clone() {
            for port in [s.port, s.client_port].into_iter().flatten() {
                loop {
                    if let Some(status) = cluster.exited(&s.id) {
                        return Err(format!(
                            "{} exited ({status}): {}",
                            s.id,
                            cluster.stderr(&s.id)
                        ));
                    }
                    if tokio::net::TcpStream::connect(("127.0.0.1", port))
                        .await
                        .is_ok()
                    {
                        break;
                    }
                    assert!(
                        Instant::now() < deadline,
                        "{} did not listen on {port} within {START_TIMEOUT:?}",
                        s.id
                    );
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            }
        }
        Ok(cluster)
    }

    fn spawn(&mut self, id: &str) {
        let stderr = std::fs::File::create(self.dir.path().join(format!("{id}.stderr"))).unwrap();
        let child = command(&self.bin, self.dir.path(), id)
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
        let pid = libc::pid_t::try_from(p.child.id()).expect("pid");
        // SAFETY: kill(2) on our own, not yet reaped child.
        assert_eq!(unsafe { libc::kill(pid, libc::SIGSTOP) }, 0, "SIGSTOP {id}");
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
        let deadline = Instant::now() + timeout;
        loop {
            if self
                .log(id)
                .lines()
                .any(|l| needles.iter().all(|n| l.contains(n)))
            {
                return true;
            }
            if Instant::now() > deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
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
        self.spawn(id);
        let info = self.server(id).clone();
        let deadline = Instant::now() + START_TIMEOUT;
        for port in [info.port, info.client_port].into_iter().flatten() {
            while tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .is_err()
            {
                if let Some(status) = self.exited(id) {
                    panic!("{id} exited on restart ({status}): {}", self.stderr(id));
                }
                assert!(
                    Instant::now() < deadline,
                    "{id} did not listen on {port} after a restart"
                );
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
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
