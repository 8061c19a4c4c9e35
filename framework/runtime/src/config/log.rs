//! `config/log.json` (optional): the log format, the level of each server,
//! and OpenTelemetry export — next to `servers.json`, so one file of the
//! app says how every server of `shaddock start` logs.
//!
//! ```json
//! {"development": {
//!   "format": "json",
//!   "level": "info",
//!   "servers": {"chat": "debug", "connector-server-1": "info,shaddock::cluster=debug"},
//!   "otlp": {"endpoint": "http://127.0.0.1:4317"}
//! }}
//! ```
//!
//! * `format`: `text` (default) or `json` (one JSON object per line, for
//!   log shippers). `SHADDOCK_LOG_FORMAT=json|text` overrides it.
//! * `level`: every server's level (a `RUST_LOG`-style filter, default
//!   `info`); `servers` sets it per server id, or per server type (an id
//!   wins over its type). `RUST_LOG`, when set, wins over all of them.
//! * `otlp.endpoint`: export spans over OTLP/gRPC — only in a build with
//!   the runtime's `otlp` cargo feature (off by default); without it the
//!   launcher warns and logs as usual.
//!
//! A missing file or environment section means the defaults.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Deserialize;

use super::{ConfigError, read_config_file, read_env_section};

/// File name inside the config directory.
pub const LOG_FILE: &str = "log.json";
/// Overrides `format`.
pub const LOG_FORMAT_VAR: &str = "SHADDOCK_LOG_FORMAT";

/// How one server logs (before `RUST_LOG`, which the logger applies).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LogConfig {
    /// One JSON object per line instead of text.
    pub json: bool,
    /// This server's filter (`RUST_LOG` syntax); `None`: `info`.
    pub level: Option<String>,
    /// Where the file's entry came from, for error messages (`config/log.json
    /// [development] servers.chat`).
    pub level_source: String,
    /// OTLP/gRPC endpoint to export spans to.
    pub otlp_endpoint: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Section {
    format: Option<Format>,
    level: Option<String>,
    #[serde(default)]
    servers: BTreeMap<String, String>,
    otlp: Option<Otlp>,
}

#[derive(Deserialize, Clone, Copy)]
#[serde(rename_all = "lowercase")]
enum Format {
    Text,
    Json,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Otlp {
    endpoint: String,
}

impl LogConfig {
    /// Reads `<config_dir>/log.json` for server `server_id` of type
    /// `server_type`, then [`LOG_FORMAT_VAR`].
    pub fn load(
        config_dir: &Path,
        env: &str,
        server_id: &str,
        server_type: &str,
    ) -> Result<Self, ConfigError> {
        let path = config_dir.join(LOG_FILE);
        let mut config = if path.exists() {
            let label = path.display().to_string();
            Self::from_json_str(
                &read_config_file(&path)?,
                env,
                &label,
                server_id,
                server_type,
            )?
        } else {
            LogConfig::default()
        };
        if let Ok(format) = std::env::var(LOG_FORMAT_VAR) {
            config.json = match format.as_str() {
                "json" => true,
                "text" => false,
                other => {
                    return Err(ConfigError::Override {
                        var: LOG_FORMAT_VAR.into(),
                        problem: format!("`{other}` is not a log format; use `json` or `text`"),
                    });
                }
            };
        }
        Ok(config)
    }

    /// Parses a log.json text (no environment variables read).
    pub fn from_json_str(
        text: &str,
        env: &str,
        label: &str,
        server_id: &str,
        server_type: &str,
    ) -> Result<Self, ConfigError> {
        let section = match read_env_section(text, env, label) {
            Ok(section) => section,
            Err(ConfigError::UnknownEnvironment { .. }) => return Ok(Self::default()),
            Err(e) => return Err(e),
        };
        let section: Section =
            serde_json::from_value(section).map_err(|e| ConfigError::Invalid {
                file: label.to_owned(),
                env: env.to_owned(),
                server: "(all servers)".into(),
                field: "(section)".into(),
                problem: format!(
                    "{e}; the fields are format (\"text\" | \"json\"), level, servers \
                     ({{\"<id or type>\": \"<level>\"}}) and otlp ({{\"endpoint\": \"http://…\"}}); \
                     see docs/observability.md"
                ),
            })?;
        let (level, level_source) = match section
            .servers
            .get(server_id)
            .map(|l| (l, server_id))
            .or_else(|| section.servers.get(server_type).map(|l| (l, server_type)))
        {
            Some((level, key)) => (Some(level.clone()), format!("servers.{key}")),
            None => (section.level.clone(), "level".to_owned()),
        };
        Ok(LogConfig {
            json: matches!(section.format, Some(Format::Json)),
            level,
            level_source: format!("{label} [{env}] {level_source}"),
            otlp_endpoint: section.otlp.map(|o| o.endpoint),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = r#"{"development": {"format": "json", "level": "warn",
        "servers": {"chat": "debug", "chat-server-2": "trace"},
        "otlp": {"endpoint": "http://127.0.0.1:4317"}}}"#;

    fn load(id: &str, ty: &str) -> LogConfig {
        LogConfig::from_json_str(TEXT, "development", "log.json", id, ty).unwrap()
    }

    #[test]
    fn an_id_wins_over_its_type_and_the_type_over_the_default() {
        assert_eq!(
            load("chat-server-2", "chat").level.as_deref(),
            Some("trace")
        );
        assert_eq!(
            load("chat-server-1", "chat").level.as_deref(),
            Some("debug")
        );
        let gate = load("gate-server-1", "gate");
        assert_eq!(gate.level.as_deref(), Some("warn"));
        assert_eq!(gate.level_source, "log.json [development] level");
        assert!(gate.json);
        assert_eq!(gate.otlp_endpoint.as_deref(), Some("http://127.0.0.1:4317"));
    }

    #[test]
    fn no_section_is_the_defaults_and_typos_are_errors() {
        let none = LogConfig::from_json_str(TEXT, "production", "log.json", "a", "b").unwrap();
        assert_eq!(none, LogConfig::default());
        let typo = r#"{"development": {"fromat": "json"}}"#;
        let e = LogConfig::from_json_str(typo, "development", "log.json", "a", "b")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("fromat") && e.contains("docs/observability.md"),
            "{e}"
        );
        let bad = r#"{"development": {"format": "xml"}}"#;
        let e = LogConfig::from_json_str(bad, "development", "log.json", "a", "b")
            .unwrap_err()
            .to_string();
        assert!(e.contains("xml"), "{e}");
    }
}
