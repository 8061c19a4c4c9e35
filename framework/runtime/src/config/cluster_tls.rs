//! `config/cluster.json`'s optional `tls` section: TLS on the cluster
//! ports (see `cluster::tls`).
//!
//! ```json
//! {"production": {"secret": "…",
//!   "tls": {"cert": "tls/cluster.pem", "key": "tls/cluster.key", "ca": "tls/ca.pem",
//!           "server-name": "shaddock-cluster"}}}
//! ```
//!
//! Paths are relative to the config folder. `server-name` is the name the
//! cluster certificate is issued for (default `shaddock-cluster`).

use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::{CLUSTER_FILE, ConfigError, read_config_file, read_env_section};

/// Where the cluster's certificate, key and CA are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterTlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
    pub ca: PathBuf,
    pub server_name: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct Section {
    cert: String,
    key: String,
    ca: String,
    server_name: Option<String>,
}

impl ClusterTlsFiles {
    /// The `tls` section of `env` in `<config_dir>/cluster.json`, if any.
    pub fn load(config_dir: &Path, env: &str) -> Result<Option<Self>, ConfigError> {
        let path = config_dir.join(CLUSTER_FILE);
        if !path.exists() {
            return Ok(None);
        }
        let label = path.display().to_string();
        let section = match read_env_section(&read_config_file(&path)?, env, &label) {
            Ok(section) => section,
            Err(ConfigError::UnknownEnvironment { .. }) => return Ok(None),
            Err(e) => return Err(e),
        };
        let Some(tls) = section.get("tls").filter(|v| !v.is_null()) else {
            return Ok(None);
        };
        let s: Section = serde_json::from_value(tls.clone()).map_err(|e| ConfigError::Invalid {
            file: label,
            env: env.to_owned(),
            server: "cluster".into(),
            field: "tls".into(),
            problem: format!(
                "{e}; write {{\"cert\": \"tls/cluster.pem\", \"key\": \"tls/cluster.key\", \
                 \"ca\": \"tls/ca.pem\"}} (paths relative to the config folder)"
            ),
        })?;
        Ok(Some(ClusterTlsFiles {
            cert: config_dir.join(s.cert),
            key: config_dir.join(s.key),
            ca: config_dir.join(s.ca),
            server_name: s.server_name,
        }))
    }
}
