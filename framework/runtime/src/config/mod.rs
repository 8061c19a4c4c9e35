//! App configuration: `config/servers.json` (the [`Topology`]),
//! `config/master.json` ([`MasterConfig`]), the optional
//! `config/dictionary.json` ([`load_dictionary`]) and the cluster secret
//! (`config/cluster.json`, [`ClusterSecret`]), the optional per-client
//! budgets of the frontends (`config/connector.json`, [`ConnectorLimits`]),
//! the optional protobuf schemas (`config/serverProtos.json`,
//! `config/clientProtos.json`, [`load_protos`]) and the optional log
//! settings (`config/log.json`, [`LogConfig`]).
//!
//! The field names are Pomelo's (§7.6 of `docs/protocol.md`) so a
//! Pomelo user can bring their servers.json across unchanged:
//!
//! ```json
//! {"development": {"connector": [{"id": "connector-server-1", "host": "127.0.0.1",
//!   "port": 4050, "clientPort": 3050, "frontend": true, "max-connections": 10000,
//!   "auto-restart": true, "args": ["--flag"]}]}}
//! ```
//!
//! # Environment
//!
//! Every file is keyed by environment (`development`, `production`, …). The
//! caller picks one with [`env_from_args_or_var`]: `--env`, else the
//! `SHADDOCK_ENV` variable, else `development`.
//!
//! # Overrides from the environment
//!
//! `SHADDOCK_SERVERS__<SERVER_ID>__<FIELD>=value` replaces one field of one
//! server, `SHADDOCK_MASTER__<FIELD>=value` one field of the master, e.g.
//! `SHADDOCK_SERVERS__CONNECTOR_SERVER_1__CLIENTPORT=4000`. Server ids match
//! case-insensitively with `_` standing for `-`; field names match
//! case-insensitively with `-`/`_` optional (`MAX_CONNECTIONS` →
//! `max-connections`). Values are JSON when they parse (`4000`, `true`), else
//! strings. A variable naming no server or an unknown field is an error.
//! Overrides are validated like file values, and their errors name the
//! variable.
//!
//! # Why serde_json reads the files and `config` only the environment
//!
//! Routers hash over the servers of a type in servers.json order (§6.2), so
//! order is part of the meaning of the file. The `config` crate stores tables
//! in a `HashMap` unless its `preserve_order` feature is on, and its layering
//! merges by key path — but servers live in lists (env → type → list), which
//! `config` cannot address by id. So the files are parsed with serde_json
//! (`preserve_order`, with our own validation and error messages), and the
//! `config` crate's `Environment` source collects the `SHADDOCK_…` variables
//! (prefix, `__` nesting), which are then applied per server id.
//!
//! # Validation
//!
//! Every error names the file, the environment, the server (id, or its index
//! in the type's list when it has no usable id) and the field, and says what
//! to do: unknown environment, missing/empty `id` or `host`, a value of the
//! wrong type (`"port": "abc"`), a frontend without `clientPort`, duplicate
//! ids, two servers (or one server's `port` and `clientPort`) sharing a port
//! on the same host (hosts compare as written), and — once the app knows
//! its server types — [`Topology::validate_types`].

mod cluster_secret;
mod cluster_tls;
mod connector;
mod dictionary;
mod error;
mod etcd;
mod fields;
mod log;
mod master;
mod overrides;
mod protos;
mod topology;

pub use cluster_secret::{
    CLUSTER_FILE, ClusterSecret, MIN_SECRET_LEN, SECRET_VAR, missing_secret_error,
};
pub use cluster_tls::ClusterTlsFiles;
pub use connector::{CONNECTOR_FILE, ConnectorLimits};
pub use dictionary::{DICTIONARY_FILE, load_dictionary};
pub use error::ConfigError;
pub use etcd::{ETCD_ENDPOINTS_VAR, EtcdConfig};
pub use log::{LOG_FILE, LOG_FORMAT_VAR, LogConfig};
pub use master::{MASTER_FILE, MasterConfig};
pub use overrides::{ENV_PREFIX, EnvOverrides, FieldOverride, MASTER_FIELDS, SERVER_FIELDS};
pub use protos::{CLIENT_PROTOS_FILE, SERVER_PROTOS_FILE, load_protos};
pub use topology::{SERVERS_FILE, Topology};

/// The environment used when neither `--env` nor `SHADDOCK_ENV` is given.
pub const DEFAULT_ENV: &str = "development";
/// The variable that selects the environment.
pub const ENV_VAR: &str = "SHADDOCK_ENV";

/// The environment to run in: `arg` (from `--env`) if given and non-empty,
/// else `SHADDOCK_ENV` if set and non-empty, else `development`.
pub fn env_from_args_or_var(arg: Option<String>) -> String {
    arg.filter(|a| !a.trim().is_empty())
        .or_else(|| std::env::var(ENV_VAR).ok().filter(|v| !v.trim().is_empty()))
        .unwrap_or_else(|| DEFAULT_ENV.to_owned())
}

/// Parses a config file keyed by environment and returns the `env` section.
/// Reads one config file; a missing or unreadable file names its path.
fn read_config_file(path: &std::path::Path) -> Result<String, ConfigError> {
    std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        file: path.display().to_string(),
        source,
    })
}

fn read_env_section(
    text: &str,
    env: &str,
    file_label: &str,
) -> Result<serde_json::Value, ConfigError> {
    let root: serde_json::Value = serde_json::from_str(text).map_err(|e| ConfigError::Json {
        file: file_label.to_owned(),
        problem: format!("not valid JSON ({e}); fix the syntax there"),
    })?;
    let serde_json::Value::Object(mut envs) = root else {
        return Err(ConfigError::Json {
            file: file_label.to_owned(),
            problem: format!(
                "expected an object keyed by environment, e.g. {{\"{DEFAULT_ENV}\": {{...}}}}, found {}",
                fields::describe(&root)
            ),
        });
    };
    match envs.remove(env) {
        Some(section) => Ok(section),
        None => Err(ConfigError::UnknownEnvironment {
            file: file_label.to_owned(),
            env: env.to_owned(),
            available: if envs.is_empty() {
                "no environments".into()
            } else {
                envs.keys()
                    .map(|k| format!("`{k}`"))
                    .collect::<Vec<_>>()
                    .join(", ")
            },
        }),
    }
}

use serde::{Deserialize, Serialize};

/// One server of the topology: one entry of a server-type list in servers.json.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServerInfo {
    /// Unique server id, e.g. `connector-server-1`.
    pub id: String,
    /// The server type (the key of the list it appears in), e.g. `connector`.
    #[serde(rename = "serverType")]
    pub server_type: String,
    /// What other servers dial to reach this one's cluster `port` (and,
    /// unless `clientHost` says otherwise, what the gate hands to clients
    /// and what both ports bind). On several hosts: the host's private
    /// address, so the cluster port need not be public.
    pub host: String,
    /// What clients are given for this frontend (Pomelo's `clientHost`):
    /// a public address or name. Default: `host`.
    #[serde(
        default,
        rename = "clientHost",
        skip_serializing_if = "Option::is_none"
    )]
    pub client_host: Option<String>,
    /// The local address the cluster port binds, when `host` is not one
    /// (a container's service name, a NAT address): e.g. `0.0.0.0`.
    /// Default: `host`.
    #[serde(default, rename = "bindHost", skip_serializing_if = "Option::is_none")]
    pub bind_host: Option<String>,
    /// The local address the client port binds. Default: `host`, or
    /// `0.0.0.0` when a different `clientHost` is set (clients then come
    /// from outside, through an address that may not be local).
    #[serde(
        default,
        rename = "clientBindHost",
        skip_serializing_if = "Option::is_none"
    )]
    pub client_bind_host: Option<String>,
    /// gRPC (cluster) port. A server without one hosts no RPC server and
    /// cannot receive forwarded requests, pushes or remote calls.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    /// Client-facing WebSocket port (frontends only).
    #[serde(
        default,
        rename = "clientPort",
        skip_serializing_if = "Option::is_none"
    )]
    pub client_port: Option<u16>,
    /// HTTP port of `/metrics`, `/healthz` and `/readyz` (bound on
    /// `bindHost`, else `host`). None: no such endpoint, and the master
    /// does not health-check this server.
    #[serde(
        default,
        rename = "metricsPort",
        skip_serializing_if = "Option::is_none"
    )]
    pub metrics_port: Option<u16>,
    /// Whether clients connect to this server.
    #[serde(default)]
    pub frontend: bool,
    /// Cap on concurrent client connections (frontends).
    #[serde(
        default,
        rename = "max-connections",
        skip_serializing_if = "Option::is_none"
    )]
    pub max_connections: Option<usize>,
    /// Whether the master restarts this server when it crashes.
    #[serde(
        default,
        rename = "auto-restart",
        skip_serializing_if = "Option::is_none"
    )]
    pub auto_restart: Option<bool>,
    /// Extra command-line arguments for the server process.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub args: Vec<String>,
}

impl ServerInfo {
    /// The address the gate hands to clients for this frontend.
    pub fn client_host(&self) -> &str {
        self.client_host.as_deref().unwrap_or(&self.host)
    }

    /// The local address the cluster (RPC) port binds.
    pub fn rpc_bind_host(&self) -> &str {
        self.bind_host.as_deref().unwrap_or(&self.host)
    }

    /// The local address the client port binds.
    pub fn client_bind_host(&self) -> &str {
        match (&self.client_bind_host, &self.client_host) {
            (Some(bind), _) => bind,
            (None, Some(client)) if *client != self.host => "0.0.0.0",
            _ => &self.host,
        }
    }
}
