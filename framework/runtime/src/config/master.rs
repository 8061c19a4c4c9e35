//! `config/master.json`: where the master listens (its admin API).

use std::path::Path;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::overrides::{self, EnvOverrides};
use super::{ConfigError, fields, read_config_file, read_env_section};

/// File name of the master's config inside the config directory.
pub const MASTER_FILE: &str = "master.json";

/// The master of one environment: `{"id": …, "host": …, "port": …}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MasterConfig {
    pub id: String,
    pub host: String,
    pub port: u16,
}

impl MasterConfig {
    /// Loads `<config_dir>/master.json` for `env`, then applies the
    /// `SHADDOCK_MASTER__<FIELD>` overrides of the process environment.
    pub fn load(config_dir: &Path, env: &str) -> Result<Self, ConfigError> {
        Self::load_with_overrides(config_dir, env, &EnvOverrides::from_process_env()?)
    }

    /// [`MasterConfig::load`] with explicit overrides.
    pub fn load_with_overrides(
        config_dir: &Path,
        env: &str,
        overrides: &EnvOverrides,
    ) -> Result<Self, ConfigError> {
        let path = config_dir.join(MASTER_FILE);
        let text = read_config_file(&path)?;
        Self::from_json_str_with_overrides(&text, env, &path.display().to_string(), overrides)
    }

    /// Parses a master.json text (no overrides).
    pub fn from_json_str(text: &str, env: &str, file_label: &str) -> Result<Self, ConfigError> {
        Self::from_json_str_with_overrides(text, env, file_label, &EnvOverrides::none())
    }

    /// Parses a master.json text, then applies `overrides`.
    pub fn from_json_str_with_overrides(
        text: &str,
        env: &str,
        file_label: &str,
        overrides: &EnvOverrides,
    ) -> Result<Self, ConfigError> {
        let section = read_env_section(text, env, file_label)?;
        let invalid = |field: &str, problem: String| {
            let problem = match overrides.for_master().iter().find(|o| o.field == field) {
                Some(o) => format!("{problem} (value from environment variable {})", o.var),
                None => problem,
            };
            ConfigError::Invalid {
                file: file_label.to_owned(),
                env: env.to_owned(),
                server: "master".into(),
                field: field.to_owned(),
                problem,
            }
        };
        let Value::Object(mut obj) = section else {
            return Err(invalid(
                "(entry)",
                format!(
                    "expected an object {{\"id\": ..., \"host\": ..., \"port\": ...}}, found {}",
                    fields::describe(&section)
                ),
            ));
        };
        overrides::apply(&mut obj, overrides.for_master());
        let id = fields::string(&obj, "id", "master-server-1").map_err(|p| invalid("id", p))?;
        let host = fields::string(&obj, "host", "127.0.0.1").map_err(|p| invalid("host", p))?;
        let port = fields::port(&obj, "port")
            .map_err(|p| invalid("port", p))?
            .ok_or_else(|| invalid("port", "missing; add e.g. \"port\": 3005".into()))?;
        Ok(Self { id, host, port })
    }

    /// A master.json document holding this environment only.
    pub fn to_master_json(&self, env: &str) -> Value {
        let mut root = serde_json::Map::new();
        root.insert(
            env.to_owned(),
            serde_json::to_value(self).unwrap_or_default(),
        );
        Value::Object(root)
    }
}
