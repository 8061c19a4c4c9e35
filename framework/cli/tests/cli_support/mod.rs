//! Helpers for the CLI / master tests: a throw-away app folder with a
//! generated admin password, free loopback ports, the `shaddock` binary and
//! the `agent_server` example as the server binary.

#![allow(dead_code)]

pub mod chat;
pub mod scaffold;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;
use std::time::Duration;

use shaddock_testkit::eventually;

pub fn shaddock() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_shaddock"))
}

/// The newest modification time of `path` or any file below it.
pub fn newest_mtime(path: &Path) -> std::time::SystemTime {
    let mut newest = std::fs::metadata(path)
        .and_then(|m| m.modified())
        .unwrap_or(std::time::SystemTime::UNIX_EPOCH);
    if let Ok(entries) = std::fs::read_dir(path) {
        for e in entries.flatten() {
            newest = newest.max(newest_mtime(&e.path()));
        }
    }
    newest
}

/// `bin`, rebuilt with `cargo build <args>` unless it is newer than the
/// `shaddock` binary and every given source path. (`cargo test --workspace`
/// has built it already; a separate `cargo build` could pick other feature
/// sets and recompile dependencies for nothing.)
pub fn built(bin: PathBuf, cargo_args: &[&str], sources: &[&str]) -> PathBuf {
    let modified = |p: &Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let fresh = modified(&bin).is_some_and(|b| {
        modified(&shaddock()).is_some_and(|s| b >= s)
            && sources.iter().all(|src| b >= newest_mtime(&root.join(src)))
    });
    if !fresh {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let status = Command::new(cargo)
            .arg("build")
            .args(cargo_args)
            .current_dir(&root)
            .status()
            .expect("running cargo build");
        assert!(status.success(), "cargo build {cargo_args:?} failed");
    }
    assert!(bin.is_file(), "{} missing after build", bin.display());
    bin
}

/// The `agent_server` example (a plain `cargo test --test cli_master` does
/// not build examples).
pub fn agent_server() -> PathBuf {
    static PATH: OnceLock<PathBuf> = OnceLock::new();
    PATH.get_or_init(|| {
        let bin = shaddock().parent().unwrap().join("examples/agent_server");
        built(
            bin,
            &["-p", "shaddock-cli", "--example", "agent_server"],
            &["framework/cli/examples/agent_server.rs"],
        )
    })
    .clone()
}

/// A free loopback port outside the ephemeral range (see
/// `shaddock_testkit::ports`).
pub use shaddock_testkit::free_port;

/// One server line of servers.json.
pub struct Srv {
    pub id: String,
    pub server_type: String,
    pub port: Option<u16>,
    pub client_port: Option<u16>,
    pub extra: &'static str,
}

impl Srv {
    pub fn backend(id: &str, ty: &str) -> Srv {
        Srv {
            id: id.into(),
            server_type: ty.into(),
            port: Some(free_port()),
            client_port: None,
            extra: "",
        }
    }

    pub fn frontend(id: &str, ty: &str) -> Srv {
        Srv {
            id: id.into(),
            server_type: ty.into(),
            port: Some(free_port()),
            client_port: Some(free_port()),
            extra: "",
        }
    }
}

/// A temp app folder: config/servers.json, master.json, adminUser.json (via
/// `shaddock admin-user`, so the password is random and only hashed).
pub struct TestApp {
    pub dir: tempfile::TempDir,
    pub master_port: u16,
    pub password: String,
    started: bool,
}

impl TestApp {
    pub fn new(servers: &[Srv]) -> TestApp {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("config");
        std::fs::create_dir_all(&config).unwrap();
        let mut by_type: Vec<(String, Vec<String>)> = Vec::new();
        for s in servers {
            let mut fields = vec![
                format!(r#""id":"{}""#, s.id),
                r#""host":"127.0.0.1""#.to_string(),
            ];
            if let Some(p) = s.port {
                fields.push(format!(r#""port":{p}"#));
            }
            if let Some(p) = s.client_port {
                fields.push(format!(r#""clientPort":{p},"frontend":true"#));
            }
            if !s.extra.is_empty() {
                fields.push(s.extra.to_string());
            }
            let entry = format!("{{{}}}", fields.join(","));
            match by_type.iter_mut().find(|(t, _)| *t == s.server_type) {
                Some((_, list)) => list.push(entry),
                None => by_type.push((s.server_type.clone(), vec![entry])),
            }
        }
        let types: Vec<String> = by_type
            .iter()
            .map(|(t, l)| format!(r#""{t}":[{}]"#, l.join(",")))
            .collect();
        std::fs::write(
            config.join("servers.json"),
            format!(r#"{{"development":{{{}}}}}"#, types.join(",")),
        )
        .unwrap();
        let master_port = free_port();
        std::fs::write(
            config.join("master.json"),
            format!(
                r#"{{"development":{{"id":"master-server-1","host":"127.0.0.1","port":{master_port}}}}}"#
            ),
        )
        .unwrap();
        let out = Command::new(shaddock())
            .args(["admin-user", "-d"])
            .arg(dir.path())
            .output()
            .unwrap();
        assert!(out.status.success(), "admin-user: {out:?}");
        let creds: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(config.join(".admin-credentials")).unwrap(),
        )
        .unwrap();
        let password = creds["password"].as_str().unwrap().to_string();
        TestApp {
            dir,
            master_port,
            password,
            started: false,
        }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Runs `shaddock <args> -d <dir>`.
    pub fn cli(&self, args: &[&str]) -> Output {
        run_cli(self.path(), args, |_| {})
    }

    /// `start -D` with the agent_server as the server binary.
    pub fn start_daemon(&mut self, extra: &[&str]) -> Output {
        self.start_daemon_with(&agent_server(), extra)
    }

    /// `start -D` with `bin` as the server binary.
    pub fn start_daemon_with(&mut self, bin: &Path, extra: &[&str]) -> Output {
        let bin = bin.to_str().unwrap();
        let mut args = vec![
            "start",
            "-D",
            "--no-build",
            "--server-bin",
            bin,
            "--stop-timeout",
            "5",
            "--timeout",
            "60",
        ];
        args.extend_from_slice(extra);
        self.started = true;
        self.cli(&args)
    }

    /// Rewrites servers.json after `edit` changed its `development`
    /// section (as an operator would before `shaddock reload`).
    pub fn edit_servers_json(&self, edit: impl FnOnce(&mut serde_json::Value)) {
        let path = self.path().join("config/servers.json");
        let mut cfg: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        edit(&mut cfg["development"]);
        std::fs::write(&path, cfg.to_string()).unwrap();
    }

    /// `list --json`, parsed.
    pub fn list(&self) -> serde_json::Value {
        let out = self.cli(&["list", "--json"]);
        assert!(out.status.success(), "list failed: {out:?}");
        serde_json::from_slice(&out.stdout).unwrap()
    }

    pub fn server(&self, id: &str) -> serde_json::Value {
        server_in(&self.list(), id)
    }

    /// Pids of every server the master runs, plus the master's.
    pub fn all_pids(&self) -> Vec<u32> {
        all_pids(&self.list())
    }

    /// Polls `f` on the server's list entry until it holds.
    pub fn wait_server(
        &self,
        id: &str,
        what: &str,
        f: impl Fn(&serde_json::Value) -> bool,
    ) -> serde_json::Value {
        eventually(&format!("{id}: {what}"), Duration::from_secs(20), || {
            let s = self.server(id);
            if f(&s) { Ok(s) } else { Err(s) }
        })
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        // Also when a master was started some other way: its servers
        // outlive it (they are recorded in logs/master.pids.json).
        if self.started || self.path().join("logs/master.pids.json").is_file() {
            cleanup(self.path());
        }
    }
}

/// Server `id` of a `list --json` answer; panics when it is not listed.
pub fn server_in(list: &serde_json::Value, id: &str) -> serde_json::Value {
    list["servers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["id"] == id)
        .cloned()
        .unwrap_or_else(|| panic!("{id} not listed"))
}

/// Pids of every running server of a `list --json` answer, plus the
/// master's.
pub fn all_pids(list: &serde_json::Value) -> Vec<u32> {
    let mut pids: Vec<u32> = list["servers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["pid"].as_u64().unwrap() as u32)
        .filter(|p| *p != 0)
        .collect();
    pids.push(list["master"]["pid"].as_u64().unwrap() as u32);
    pids
}

/// Best effort: never leave a master or a server behind, even when a test
/// failed: `kill` through the master, then `kill --force` from the pid file
/// for a master that does not answer.
pub fn cleanup(dir: &Path) {
    let _ = Command::new(shaddock())
        .args(["kill", "--timeout", "10", "-d"])
        .arg(dir)
        .output();
    if dir.join("logs/master.pids.json").is_file() {
        let _ = Command::new(shaddock())
            .args(["kill", "--force", "-d"])
            .arg(dir)
            .output();
    }
}

/// Kills a child process (SIGKILL) when dropped, for processes a test
/// spawns itself. A master's servers outlive it: declare the `TestApp`
/// first, so that its drop (after this one) kills them.
pub struct KillOnDrop(pub std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Whether a process is gone (or a zombie nobody reaped yet).
pub fn gone(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(stat) => stat
            .rsplit(')')
            .next()
            .is_some_and(|rest| rest.trim_start().starts_with('Z')),
    }
}

pub fn wait_gone(pids: &[u32], within: Duration) {
    eventually("the processes to be gone", within, || {
        let left: Vec<_> = pids.iter().filter(|p| !gone(**p)).collect();
        if left.is_empty() {
            Ok(())
        } else {
            Err(format!("processes left behind: {left:?}"))
        }
    });
}

/// Reads the one-line membership answer of an agent_server's `port`.
pub fn members_seen_by(port: u16) -> Vec<String> {
    use std::io::Read;
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
    let mut text = String::new();
    s.read_to_string(&mut text).unwrap();
    text.trim()
        .split(',')
        .filter(|x| !x.is_empty())
        .map(String::from)
        .collect()
}

/// Waits until the agent_server on `port` answers exactly `members`.
pub fn wait_members(port: u16, members: &[&str]) {
    let what = format!("the server on port {port} to see {members:?}");
    eventually(&what, Duration::from_secs(5), || {
        let seen = members_seen_by(port);
        if seen == members {
            Ok(())
        } else {
            Err(format!("it sees {seen:?}"))
        }
    });
}

pub fn code(out: &Output) -> i32 {
    out.status.code().unwrap_or(-1)
}

pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

pub fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Runs `shaddock <args> -d <dir>` with the admin credentials of the
/// developer's shell removed (the CLI must find the app's own), after
/// `configure` had its say, and echoes the output into the test log.
pub fn run_cli(
    dir: &std::path::Path,
    args: &[&str],
    configure: impl FnOnce(&mut Command),
) -> Output {
    let mut cmd = Command::new(shaddock());
    cmd.args(args)
        .arg("-d")
        .arg(dir)
        .env_remove("SHADDOCK_ADMIN_USER")
        .env_remove("SHADDOCK_ADMIN_PASSWORD");
    configure(&mut cmd);
    let out = cmd.output().unwrap();
    eprintln!(
        "$ shaddock {}\n{}{}[exit {:?}]",
        args.join(" "),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
        out.status.code()
    );
    out
}
