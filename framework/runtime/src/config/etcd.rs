//! `config/master.json`'s optional `etcd` section: membership through etcd.
//!
//! ```json
//! {"production": {"id": "master-server-1", "host": "10.0.0.2", "port": 3005,
//!   "etcd": {"endpoints": ["10.0.0.9:2379"], "prefix": "/shaddock/chat", "ttl": 5}}}
//! ```
//!
//! Without the section a cluster runs as on one box (the master's stream,
//! or the static list of servers.json): nothing but our binaries needed.
//! With it, every server registers itself under `<prefix>/servers/` with a
//! lease of `ttl` seconds and watches that prefix (see
//! `discovery::etcd`). `SHADDOCK_ETCD_ENDPOINTS=host:port,host:port`
//! overrides (or sets) the endpoints, e.g. for a test or a container.

use std::path::Path;
use std::time::Duration;

use serde_json::Value;

use super::{ConfigError, MASTER_FILE, fields, read_env_section};

/// The variable that overrides (or sets) the etcd endpoints.
pub const ETCD_ENDPOINTS_VAR: &str = "SHADDOCK_ETCD_ENDPOINTS";
/// Lease TTL when the section gives none.
pub const DEFAULT_TTL: Duration = Duration::from_secs(5);

/// Where etcd is and how servers use it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EtcdConfig {
    /// `host:port` of etcd's client port, one per member.
    pub endpoints: Vec<String>,
    /// Key prefix of this cluster (default `/shaddock/<env>`), so several
    /// apps or environments can share one etcd.
    pub prefix: String,
    /// Lease TTL: how long a crashed host's servers stay listed.
    pub ttl: Duration,
}

impl EtcdConfig {
    /// The key of server `id`'s registration.
    pub fn server_key(&self, id: &str) -> String {
        format!("{}/servers/{id}", self.prefix)
    }

    /// The prefix of every server registration.
    pub fn servers_prefix(&self) -> String {
        format!("{}/servers/", self.prefix)
    }

    /// The key of the supervisor of host `name`.
    pub fn supervisor_key(&self, name: &str) -> String {
        format!("{}/supervisors/{name}", self.prefix)
    }

    /// The prefix of every supervisor registration.
    pub fn supervisors_prefix(&self) -> String {
        format!("{}/supervisors/", self.prefix)
    }

    /// The etcd section of `<config_dir>/master.json` for `env`, with the
    /// [`ETCD_ENDPOINTS_VAR`] override. `None` when etcd is not used (no
    /// section, no variable, or no master.json at all).
    pub fn load(config_dir: &Path, env: &str) -> Result<Option<Self>, ConfigError> {
        let path = config_dir.join(MASTER_FILE);
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => Some(text),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(source) => {
                return Err(ConfigError::Read {
                    file: path.display().to_string(),
                    source,
                });
            }
        };
        let var = std::env::var(ETCD_ENDPOINTS_VAR).ok();
        Self::parse(text.as_deref(), env, &path.display().to_string(), var)
    }

    /// [`EtcdConfig::load`] on a text (`None`: no master.json) and the
    /// variable's value.
    pub fn parse(
        text: Option<&str>,
        env: &str,
        file_label: &str,
        endpoints_var: Option<String>,
    ) -> Result<Option<Self>, ConfigError> {
        let invalid = |field: &str, problem: String| ConfigError::Invalid {
            file: file_label.to_owned(),
            env: env.to_owned(),
            server: "master".into(),
            field: format!("etcd.{field}"),
            problem,
        };
        let section = match text {
            Some(text) => match read_env_section(text, env, file_label)? {
                Value::Object(mut master) => master.remove("etcd"),
                _ => None,
            },
            None => None,
        };
        let from_var = endpoints_var
            .map(|v| split_endpoints(&v))
            .filter(|e| !e.is_empty());
        let obj = match section {
            None | Some(Value::Null) if from_var.is_none() => return Ok(None),
            None | Some(Value::Null) => serde_json::Map::new(),
            Some(Value::Object(obj)) => obj,
            Some(other) => {
                return Err(invalid(
                    "(section)",
                    format!(
                        "expected an object like {{\"endpoints\": [\"127.0.0.1:2379\"]}}, found {}",
                        fields::describe(&other)
                    ),
                ));
            }
        };
        let endpoints = match (from_var, obj.get("endpoints")) {
            (Some(var), _) => var,
            (None, Some(Value::String(s))) => split_endpoints(s),
            (None, Some(Value::Array(items))) => items
                .iter()
                .map(|i| match i {
                    Value::String(s) if !s.trim().is_empty() => Ok(s.trim().to_owned()),
                    other => Err(invalid(
                        "endpoints",
                        format!(
                            "expected \"host:port\" strings, found {}",
                            fields::describe(other)
                        ),
                    )),
                })
                .collect::<Result<_, _>>()?,
            (None, _) => Vec::new(),
        };
        if endpoints.is_empty() {
            return Err(invalid(
                "endpoints",
                format!(
                    "missing or empty; list etcd's client addresses, e.g. \"endpoints\": \
                     [\"127.0.0.1:2379\"] (or set {ETCD_ENDPOINTS_VAR})"
                ),
            ));
        }
        let prefix = match obj.get("prefix") {
            None | Some(Value::Null) => format!("/shaddock/{env}"),
            Some(Value::String(p)) if !p.trim().is_empty() => p.trim_end_matches('/').to_owned(),
            Some(other) => {
                return Err(invalid(
                    "prefix",
                    format!(
                        "expected a non-empty key prefix, e.g. \"/shaddock/chat\"; found {}",
                        fields::describe(other)
                    ),
                ));
            }
        };
        let ttl = fields::count(&obj, "ttl")
            .map_err(|p| invalid("ttl", p))?
            .map(|s| Duration::from_secs(s as u64))
            .unwrap_or(DEFAULT_TTL);
        if ttl < Duration::from_secs(2) {
            return Err(invalid(
                "ttl",
                "must be at least 2 seconds (keep-alives go every third of it)".into(),
            ));
        }
        Ok(Some(EtcdConfig {
            endpoints,
            prefix,
            ttl,
        }))
    }
}

fn split_endpoints(text: &str) -> Vec<String> {
    text.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const FILE: &str = r#"{"development": {"id": "m", "host": "127.0.0.1", "port": 3005},
        "production": {"id": "m", "host": "127.0.0.1", "port": 3005,
            "etcd": {"endpoints": ["10.0.0.9:2379", "10.0.0.10:2379"], "prefix": "/chat/", "ttl": 3}}}"#;

    #[test]
    fn absent_section_means_no_etcd() {
        assert_eq!(
            EtcdConfig::parse(Some(FILE), "development", "m.json", None).unwrap(),
            None
        );
        assert_eq!(
            EtcdConfig::parse(None, "development", "m.json", None).unwrap(),
            None
        );
    }

    #[test]
    fn section_is_read_and_the_variable_wins() {
        let c = EtcdConfig::parse(Some(FILE), "production", "m.json", None)
            .unwrap()
            .unwrap();
        assert_eq!(c.endpoints, ["10.0.0.9:2379", "10.0.0.10:2379"]);
        assert_eq!(c.prefix, "/chat");
        assert_eq!(c.ttl, Duration::from_secs(3));
        assert_eq!(c.server_key("chat-1"), "/chat/servers/chat-1");
        let v = EtcdConfig::parse(
            Some(FILE),
            "development",
            "m.json",
            Some("127.0.0.1:2379, 127.0.0.1:22379".into()),
        )
        .unwrap()
        .unwrap();
        assert_eq!(v.endpoints, ["127.0.0.1:2379", "127.0.0.1:22379"]);
        assert_eq!(v.prefix, "/shaddock/development");
        assert_eq!(v.ttl, DEFAULT_TTL);
    }

    #[test]
    fn bad_sections_say_what_to_write() {
        let bad =
            r#"{"development": {"id": "m", "host": "h", "port": 1, "etcd": {"endpoints": []}}}"#;
        let e = EtcdConfig::parse(Some(bad), "development", "m.json", None).unwrap_err();
        assert!(e.to_string().contains("etcd.endpoints"), "{e}");
        let bad = r#"{"development": {"id": "m", "host": "h", "port": 1, "etcd": {"endpoints": "a:1", "ttl": 1}}}"#;
        let e = EtcdConfig::parse(Some(bad), "development", "m.json", None).unwrap_err();
        assert!(e.to_string().contains("at least 2 seconds"), "{e}");
    }
}
