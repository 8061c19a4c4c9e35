//! `config/connector.json`: per-client budgets of the frontends, per
//! environment and server type, over the defaults the app's code sets
//! (`ConnectorOptions`). Optional: without the file (or a section for the
//! type) the code's options apply unchanged.
//!
//! ```json
//! {"production": {"connector": {"requests-per-second": 20, "burst": 40,
//!                               "max-connections-per-address": 64},
//!                 "gate": {"idle-timeout-ms": 5000}}}
//! ```
//!
//! Transport fields (`docs/security.md`): `tls-cert` / `tls-key` (PEM
//! files, relative to the config folder) turn on `wss://`;
//! `allowed-origins`, `trusted-proxies`, `proxy-protocol`, `transports`
//! (`["ws", "tcp"]`: WebSocket and raw TCP on the client port, the default;
//! list one to refuse the other).
//!
//! `use-protobuf` (Pomelo's `useProtobuf`, default `true`): `false` keeps
//! this frontend on JSON bodies even when the app has protobuf schemas
//! (`serverProtos.json` / `clientProtos.json`), e.g. for browser clients
//! next to a frontend for native ones.
//!
//! A section may also be keyed by a server id (`"connector-server-2"`):
//! that server then uses it instead of its type's section.
//!
//! Every field is optional; `0` turns a limit off where off makes sense
//! (`requests-per-second`, `idle-timeout-ms`, `max-connections`,
//! `max-connections-per-address`, `resume-window-ms`). An unknown field is an error naming it,
//! so a typo does not silently leave a limit at its default. Each limit and
//! its outcome: `docs/security.md`.

use std::path::Path;

use serde::Deserialize;

use super::{ConfigError, read_config_file, read_env_section};

/// File name of the connector budgets inside the config directory.
pub const CONNECTOR_FILE: &str = "connector.json";

/// The budgets of one frontend type as written in `connector.json`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct ConnectorLimits {
    pub max_inflight: Option<usize>,
    pub requests_per_second: Option<u32>,
    pub burst: Option<u32>,
    pub kick_after_refusals: Option<u32>,
    pub max_queued_frames: Option<usize>,
    pub max_queued_bytes: Option<usize>,
    pub max_message_size: Option<usize>,
    pub idle_timeout_ms: Option<u64>,
    pub max_connections: Option<usize>,
    pub max_connections_per_address: Option<usize>,
    /// New connections per second from one address (`0`: no limit).
    pub connects_per_second_per_address: Option<u32>,
    /// Burst of new connections from one address (default: twice the rate).
    pub connect_burst_per_address: Option<u32>,
    /// PEM certificate chain for `wss://` (relative to the config folder).
    pub tls_cert: Option<String>,
    /// PEM private key for `wss://` (relative to the config folder).
    pub tls_key: Option<String>,
    /// Browser origins allowed to open a WebSocket.
    pub allowed_origins: Option<Vec<String>>,
    /// Load balancers believed about the client's address.
    pub trusted_proxies: Option<Vec<String>>,
    /// Trusted proxies send a PROXY protocol header first.
    pub proxy_protocol: Option<bool>,
    /// Transports served on the client port: `["ws", "tcp"]` (default both).
    pub transports: Option<Vec<String>>,
    /// Write window in ms (`0`: write at once, the default).
    pub write_window_ms: Option<u64>,
    /// Heartbeat interval announced in the handshake, in seconds (`0`: no
    /// heartbeats); the timeout is twice it. Over the app's code.
    pub heartbeat_secs: Option<u64>,
    /// Protobuf bodies where the app's protos name a route (default on
    /// when the app has protos); `false`: JSON everywhere on this frontend.
    pub use_protobuf: Option<bool>,
    /// How long a dropped session waits for its client to resume (`0`:
    /// off; protocol.md §13.6).
    pub resume_window_ms: Option<u64>,
    /// A second login of a uid held on another frontend: `"refuse"` the
    /// new one or `"kick"` the old one (`ConnectorOptions::duplicate_login`).
    pub duplicate_login: Option<String>,
}

impl ConnectorLimits {
    /// The section of `server_type` in `<config_dir>/connector.json` for
    /// `env` (all `None` when the file, the environment or the type is
    /// absent).
    pub fn load(config_dir: &Path, env: &str, server_type: &str) -> Result<Self, ConfigError> {
        Self::load_for(config_dir, env, server_type, None)
    }

    /// [`load`](Self::load) for one server: a section keyed by its id, if
    /// present, replaces its type's section.
    pub fn load_for(
        config_dir: &Path,
        env: &str,
        server_type: &str,
        server_id: Option<&str>,
    ) -> Result<Self, ConfigError> {
        let path = config_dir.join(CONNECTOR_FILE);
        if !path.exists() {
            return Ok(Self::default());
        }
        let label = path.display().to_string();
        let section = match read_env_section(&read_config_file(&path)?, env, &label) {
            Ok(section) => section,
            Err(ConfigError::UnknownEnvironment { .. }) => return Ok(Self::default()),
            Err(e) => return Err(e),
        };
        let by_id = server_id.and_then(|id| Some((section.get(id)?, format!("server \"{id}\""))));
        let by_type = || {
            Some((
                section.get(server_type)?,
                format!("server type \"{server_type}\""),
            ))
        };
        let Some((entry, server)) = by_id.or_else(by_type) else {
            return Ok(Self::default());
        };
        serde_json::from_value(entry.clone()).map_err(|e| ConfigError::Invalid {
            file: label,
            env: env.to_owned(),
            server,
            field: "(entry)".into(),
            problem: format!("{e}; see docs/security.md for the fields"),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sections_defaults_and_typos() {
        let dir = tempfile::tempdir().unwrap();
        let none = ConnectorLimits::load(dir.path(), "development", "gate").unwrap();
        assert_eq!(none, ConnectorLimits::default());
        std::fs::write(
            dir.path().join(CONNECTOR_FILE),
            r#"{"development": {"gate": {"idle-timeout-ms": 500, "burst": 3},
                                "connector": {"max-inflght": 1}}}"#,
        )
        .unwrap();
        let gate = ConnectorLimits::load(dir.path(), "development", "gate").unwrap();
        assert_eq!(gate.idle_timeout_ms, Some(500));
        assert_eq!(gate.burst, Some(3));
        assert_eq!(gate.max_inflight, None);
        let e = ConnectorLimits::load(dir.path(), "development", "connector").unwrap_err();
        assert!(e.to_string().contains("max-inflght"), "{e}");
        let other = ConnectorLimits::load(dir.path(), "production", "gate").unwrap();
        assert_eq!(other, ConnectorLimits::default());
    }

    #[test]
    fn a_server_id_section_replaces_its_type_section() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join(CONNECTOR_FILE),
            r#"{"development": {"connector": {"burst": 3},
                                "connector-server-2": {"use-protobuf": false}}}"#,
        )
        .unwrap();
        let load = |id| ConnectorLimits::load_for(dir.path(), "development", "connector", id);
        let one = load(Some("connector-server-1")).unwrap();
        assert_eq!((one.burst, one.use_protobuf), (Some(3), None));
        let two = load(Some("connector-server-2")).unwrap();
        assert_eq!((two.burst, two.use_protobuf), (None, Some(false)));
        assert_eq!(load(None).unwrap().burst, Some(3));
    }
}
