//! What the master reads from an app's `config/` folder: the servers of one
//! environment (`servers.json`), its own address (`master.json`) and the
//! optional web server address.
//!
//! The files use Pomelo's layout (`{ "<env>": ... }`), so a Pomelo app's
//! config folder works unchanged. Errors name the file, the environment and
//! the field, because that is what the operator has to fix.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use anyhow::{Context, anyhow, bail};
use serde::Deserialize;
use serde_json::{Map, Value};

use crate::config::ServerInfo;

/// The master's own entry of `master.json` for one environment.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct MasterEntry {
    #[serde(default = "default_master_id")]
    pub id: String,
    pub host: String,
    pub port: u16,
    /// Optional address of the web server the master also starts
    /// (`{"host": "127.0.0.1", "port": 3001}`), default 127.0.0.1:3001.
    #[serde(default)]
    pub web: Option<WebEntry>,
}

fn default_master_id() -> String {
    "master-server-1".to_string()
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

/// The config folder of an app (`<app>/game-server/config` or `<app>/config`).
pub fn config_dir(app_dir: &Path) -> PathBuf {
    let nested = app_dir.join("game-server").join("config");
    if nested.join("servers.json").is_file() && !app_dir.join("config/servers.json").is_file() {
        nested
    } else {
        app_dir.join("config")
    }
}

fn read_env_section(path: &Path, env: &str) -> anyhow::Result<Value> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let mut root: Value = serde_json::from_str(&text)
        .with_context(|| format!("{} is not valid JSON", path.display()))?;
    let obj = root
        .as_object_mut()
        .ok_or_else(|| anyhow!("{}: expected a JSON object", path.display()))?;
    match obj.remove(env) {
        Some(section) => Ok(section),
        None => {
            let envs: Vec<&String> = obj.keys().collect();
            bail!(
                "{} has no `{env}` environment (it has {:?}); pass -e <env>",
                path.display(),
                envs
            )
        }
    }
}

/// Reads `master.json` for `env`.
pub fn load_master(config_dir: &Path, env: &str) -> anyhow::Result<MasterEntry> {
    let path = config_dir.join("master.json");
    let section = read_env_section(&path, env)?;
    serde_json::from_value(section).with_context(|| {
        format!(
            "{}: invalid `{env}` entry (needs host and port)",
            path.display()
        )
    })
}

/// Reads the servers of `env` from `servers.json`, in file order (types in
/// the order they appear, servers in list order).
pub fn load_servers(config_dir: &Path, env: &str) -> anyhow::Result<Vec<ServerInfo>> {
    let path = config_dir.join("servers.json");
    let section = read_env_section(&path, env)?;
    let types = section
        .as_object()
        .ok_or_else(|| anyhow!("{}: `{env}` must map server types to lists", path.display()))?;
    let mut out = Vec::new();
    let mut ids = HashSet::new();
    for (server_type, list) in types {
        let list = list.as_array().ok_or_else(|| {
            anyhow!(
                "{}: `{env}.{server_type}` must be a list of servers",
                path.display()
            )
        })?;
        for (i, entry) in list.iter().enumerate() {
            let mut obj: Map<String, Value> = entry.as_object().cloned().ok_or_else(|| {
                anyhow!(
                    "{}: `{env}.{server_type}[{i}]` must be an object",
                    path.display()
                )
            })?;
            obj.insert("serverType".into(), Value::String(server_type.clone()));
            let info: ServerInfo = serde_json::from_value(Value::Object(obj)).with_context(|| {
                format!(
                    "{}: `{env}.{server_type}[{i}]` is not a valid server (id and host are required)",
                    path.display()
                )
            })?;
            if !ids.insert(info.id.clone()) {
                bail!("{}: server id `{}` appears twice", path.display(), info.id);
            }
            if info.frontend && info.client_port.is_none() {
                bail!(
                    "{}: frontend server `{}` has no clientPort",
                    path.display(),
                    info.id
                );
            }
            out.push(info);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_servers_in_file_order_with_types() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("servers.json"),
            r#"{"development":{"gate":[{"id":"g1","host":"127.0.0.1","clientPort":1,"frontend":true}],
                "chat":[{"id":"c2","host":"127.0.0.1","port":3},{"id":"c1","host":"127.0.0.1","port":2}]}}"#,
        )
        .unwrap();
        let servers = load_servers(dir.path(), "development").unwrap();
        let ids: Vec<_> = servers
            .iter()
            .map(|s| (s.id.as_str(), s.server_type.as_str()))
            .collect();
        assert_eq!(ids, [("g1", "gate"), ("c2", "chat"), ("c1", "chat")]);
        let err = load_servers(dir.path(), "production")
            .unwrap_err()
            .to_string();
        assert!(err.contains("no `production` environment"), "{err}");
    }

    #[test]
    fn duplicate_ids_and_frontends_without_client_port_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("servers.json"),
            r#"{"d":{"a":[{"id":"x","host":"h"}],"b":[{"id":"x","host":"h"}]}}"#,
        )
        .unwrap();
        let err = format!("{:#}", load_servers(dir.path(), "d").unwrap_err());
        assert!(err.contains("appears twice"), "{err}");
        std::fs::write(
            dir.path().join("servers.json"),
            r#"{"d":{"a":[{"id":"x","host":"h","frontend":true}]}}"#,
        )
        .unwrap();
        let err = format!("{:#}", load_servers(dir.path(), "d").unwrap_err());
        assert!(err.contains("no clientPort"), "{err}");
    }
}
