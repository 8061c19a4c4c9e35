//! What the master reads from an app's `config/` folder. Parsing and
//! validation are the [`crate::config`] module's ([`Topology`],
//! [`MasterConfig`], with the `SHADDOCK_…` environment overrides); this file
//! only adds where the folder is and the optional web server address.

use std::path::{Path, PathBuf};

use anyhow::Context;
use serde::Deserialize;

use shaddock::config::{MasterConfig, ServerInfo, Topology};

/// The master's entry of `master.json` plus the optional web server address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MasterEntry {
    pub id: String,
    pub host: String,
    pub port: u16,
    /// `"web": {"host": "127.0.0.1", "port": 3001}` in the master's entry;
    /// default 127.0.0.1:3001.
    pub web: WebEntry,
}

/// Where the web server listens.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct WebEntry {
    #[serde(default = "default_web_host")]
    pub host: String,
    #[serde(default = "default_web_port")]
    pub port: u16,
}

fn default_web_host() -> String {
    "127.0.0.1".to_string()
}

fn default_web_port() -> u16 {
    3001
}

impl Default for WebEntry {
    fn default() -> Self {
        WebEntry {
            host: default_web_host(),
            port: default_web_port(),
        }
    }
}

/// The config folder of an app: `<app>/config`, or Pomelo's
/// `<app>/game-server/config` when only that one exists.
pub fn config_dir(app_dir: &Path) -> PathBuf {
    let nested = app_dir.join("game-server").join("config");
    if nested.join("servers.json").is_file() && !app_dir.join("config/servers.json").is_file() {
        nested
    } else {
        app_dir.join("config")
    }
}

/// Reads `master.json` for `env`.
pub fn load_master(config_dir: &Path, env: &str) -> anyhow::Result<MasterEntry> {
    let m = MasterConfig::load(config_dir, env)?;
    let path = config_dir.join("master.json");
    let web = std::fs::read_to_string(&path)
        .ok()
        .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
        .and_then(|v| v.get(env).and_then(|e| e.get("web")).cloned());
    let web = match web {
        Some(w) => serde_json::from_value(w)
            .with_context(|| format!("{}: `{env}.web` needs host and port", path.display()))?,
        None => WebEntry::default(),
    };
    Ok(MasterEntry {
        id: m.id,
        host: m.host,
        port: m.port,
        web,
    })
}

/// Reads the servers of `env` from `servers.json`, in file order.
pub fn load_servers(config_dir: &Path, env: &str) -> anyhow::Result<Vec<ServerInfo>> {
    Ok(Topology::load(config_dir, env)?.servers)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn web_entry_defaults_and_override() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("master.json"),
            r#"{"development":{"id":"m","host":"127.0.0.1","port":3005},
                "production":{"id":"m","host":"127.0.0.1","port":3005,"web":{"port":8080}}}"#,
        )
        .unwrap();
        let dev = load_master(dir.path(), "development").unwrap();
        assert_eq!(dev.web, WebEntry::default());
        assert_eq!(dev.port, 3005);
        let prod = load_master(dir.path(), "production").unwrap();
        assert_eq!(prod.web.port, 8080);
        assert_eq!(prod.web.host, "127.0.0.1");
    }

    #[test]
    fn prefers_top_level_config() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(config_dir(dir.path()), dir.path().join("config"));
        std::fs::create_dir_all(dir.path().join("game-server/config")).unwrap();
        std::fs::write(dir.path().join("game-server/config/servers.json"), "{}").unwrap();
        assert_eq!(
            config_dir(dir.path()),
            dir.path().join("game-server/config")
        );
    }
}
