//! `logs/master.pids.json`: what a running master records about itself and
//! its processes, for the next master (which adopts the servers that still
//! run) and for `shaddock kill --force` (which kills them without a master).
//!
//! ```json
//! {
//!   "master": 4242, "masterStart": 1234567,
//!   "addr": "127.0.0.1:3005", "env": "development", "token": "…",
//!   "servers": {
//!     "chat-server-1": {"pid": 4250, "start": 1234590, "restarts": 0, "up": true,
//!                       "info": {"id": "chat-server-1", "serverType": "chat", …}}
//!   }
//! }
//! ```
//!
//! `start` is field 22 of `/proc/<pid>/stat` (clock ticks after boot): with
//! the pid it names one process, so a reused pid is never taken for a
//! server. The file holds the membership token, so it is written with mode
//! 0600, atomically (a temp file renamed over it): a master killed in the
//! middle of a write leaves the previous version, never half a file.
//! Files of older masters (`"servers": {"id": pid}`) are still read.

use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::procinfo;
use shaddock::config::ServerInfo;

/// The file's name in the app's `logs/` folder.
pub const FILE: &str = "master.pids.json";

/// Where the records of the master whose logs go to `log_dir` are.
pub fn path(log_dir: &Path) -> PathBuf {
    log_dir.join(FILE)
}

/// One recorded server process.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServerRecord {
    /// The key of the `servers` object.
    #[serde(skip)]
    pub id: String,
    pub pid: u32,
    /// Start time of `pid` (see the module docs); `None` in old files.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start: Option<u64>,
    /// The entry the server runs with (a server added at run time is in no
    /// servers.json).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub info: Option<ServerInfo>,
    #[serde(default)]
    pub restarts: u32,
    /// Whether it was a member of the server list (it came up).
    #[serde(default)]
    pub up: bool,
}

/// The whole file.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Records {
    pub master: u32,
    /// Start time of the master's pid; `None` in old files.
    pub master_start: Option<u64>,
    /// The master address its servers were given (`SHADDOCK_MASTER`).
    pub addr: String,
    pub env: String,
    /// The membership token its servers were given.
    pub token: String,
    /// In the master's order (servers.json, then run-time additions).
    pub servers: Vec<ServerRecord>,
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawRecords {
    master: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    master_start: Option<u64>,
    #[serde(default)]
    addr: String,
    #[serde(default)]
    env: String,
    #[serde(default)]
    token: String,
    #[serde(default)]
    servers: serde_json::Map<String, serde_json::Value>,
}

/// A recorded server that still runs: the next master adopts it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Adoptee {
    pub info: ServerInfo,
    pub pid: u32,
    pub start: u64,
    pub restarts: u32,
    pub up: bool,
}

impl Records {
    /// Parses the file's text (either format).
    pub fn parse(text: &str) -> Result<Records, String> {
        let raw: RawRecords = serde_json::from_str(text).map_err(|e| e.to_string())?;
        let servers = raw
            .servers
            .into_iter()
            .filter_map(|(id, v)| {
                let mut rec = match v {
                    // Old files: `"id": pid`.
                    serde_json::Value::Number(n) => ServerRecord {
                        pid: u32::try_from(n.as_u64()?).ok()?,
                        ..ServerRecord::default()
                    },
                    v => serde_json::from_value::<ServerRecord>(v).ok()?,
                };
                rec.id = id;
                Some(rec)
            })
            .collect();
        Ok(Records {
            master: raw.master,
            master_start: raw.master_start,
            addr: raw.addr,
            env: raw.env,
            token: raw.token,
            servers,
        })
    }

    /// Reads `logs/master.pids.json`: `Ok(None)` when there is none.
    pub fn read(log_dir: &Path) -> Result<Option<Records>, String> {
        let path = path(log_dir);
        match std::fs::read_to_string(&path) {
            Ok(text) => Records::parse(&text)
                .map(Some)
                .map_err(|e| format!("{} is not valid: {e}", path.display())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(format!("cannot read {}: {e}", path.display())),
        }
    }

    fn to_text(&self) -> String {
        let servers = self
            .servers
            .iter()
            .map(|s| {
                let v = serde_json::to_value(s).unwrap_or(serde_json::Value::Null);
                (s.id.clone(), v)
            })
            .collect();
        let raw = RawRecords {
            master: self.master,
            master_start: self.master_start,
            addr: self.addr.clone(),
            env: self.env.clone(),
            token: self.token.clone(),
            servers,
        };
        serde_json::to_string_pretty(&raw).unwrap_or_default() + "\n"
    }

    /// Writes the file atomically with mode 0600 (it holds the token).
    pub fn write(&self, log_dir: &Path) -> std::io::Result<()> {
        let tmp = log_dir.join(format!("{FILE}.tmp"));
        let mut open = std::fs::OpenOptions::new();
        open.write(true).create(true).truncate(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            open.mode(0o600);
        }
        let mut f = open.open(&tmp)?;
        #[cfg(unix)]
        {
            // `mode` applies only to a new file.
            use std::os::unix::fs::PermissionsExt;
            f.set_permissions(std::fs::Permissions::from_mode(0o600))?;
        }
        f.write_all(self.to_text().as_bytes())?;
        drop(f);
        std::fs::rename(&tmp, path(log_dir))
    }

    /// Whether the recorded master still runs (same pid, same start time).
    /// Old files without a start time cannot tell: `false`.
    pub fn master_alive(&self) -> bool {
        self.master != std::process::id()
            && self
                .master_start
                .is_some_and(|start| procinfo::is_alive(self.master, start))
    }

    /// Splits the recorded servers into those that still run — same pid,
    /// same start time, and the environment of this app's server `id`
    /// (checked in `/proc`) — and those that do not.
    pub fn split_alive(&self) -> (Vec<Adoptee>, Vec<ServerRecord>) {
        let mut alive = Vec::new();
        let mut gone = Vec::new();
        for rec in &self.servers {
            let adoptee = match (&rec.info, rec.start) {
                (Some(info), Some(start))
                    if info.id == rec.id
                        && procinfo::is_alive(rec.pid, start)
                        && procinfo::is_server(rec.pid, &rec.id, &self.addr) =>
                {
                    Some(Adoptee {
                        info: info.clone(),
                        pid: rec.pid,
                        start,
                        restarts: rec.restarts,
                        up: rec.up,
                    })
                }
                _ => None,
            };
            match adoptee {
                Some(a) => alive.push(a),
                None => gone.push(rec.clone()),
            }
        }
        (alive, gone)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(id: &str) -> ServerInfo {
        ServerInfo {
            id: id.into(),
            server_type: "chat".into(),
            host: "127.0.0.1".into(),
            port: Some(4050),
            client_port: None,
            frontend: false,
            max_connections: None,
            auto_restart: None,
            args: Vec::new(),
            client_host: None,
            bind_host: None,
            client_bind_host: None,
            metrics_port: None,
        }
    }

    #[test]
    fn round_trip_keeps_order_and_mode_0600() {
        let dir = tempfile::tempdir().unwrap();
        let rec = Records {
            master: 42,
            master_start: Some(7),
            addr: "127.0.0.1:3005".into(),
            env: "development".into(),
            token: "secret".into(),
            servers: ["zeta", "alpha"]
                .iter()
                .map(|id| ServerRecord {
                    id: id.to_string(),
                    pid: 100,
                    start: Some(9),
                    info: Some(info(id)),
                    restarts: 2,
                    up: true,
                })
                .collect(),
        };
        rec.write(dir.path()).unwrap();
        assert_eq!(Records::read(dir.path()).unwrap(), Some(rec));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(path(dir.path()))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        assert!(!dir.path().join(format!("{FILE}.tmp")).exists());
        assert_eq!(Records::read(&dir.path().join("none")).unwrap(), None);
    }

    #[test]
    fn reads_old_files_and_adopts_nothing_from_them() {
        let rec = Records::parse(r#"{"master": 1, "servers": {"chat-1": 2}}"#).unwrap();
        assert_eq!(rec.servers[0].id, "chat-1");
        assert_eq!(rec.servers[0].pid, 2);
        assert!(!rec.master_alive());
        let (alive, gone) = rec.split_alive();
        assert!(alive.is_empty());
        assert_eq!(gone.len(), 1);
    }

    #[test]
    #[cfg(target_os = "linux")]
    fn a_reused_pid_is_not_adopted() {
        // This very process, recorded with another start time.
        let me = std::process::id();
        let start = procinfo::start_time(me).unwrap();
        let rec = Records {
            master: 1,
            servers: vec![ServerRecord {
                id: "chat-1".into(),
                pid: me,
                start: Some(start + 1),
                info: Some(info("chat-1")),
                ..ServerRecord::default()
            }],
            ..Records::default()
        };
        assert!(rec.split_alive().0.is_empty());
    }
}
