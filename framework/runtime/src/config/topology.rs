//! `config/servers.json`: every server of one environment, in file order.

use std::collections::HashMap;
use std::path::Path;

use serde_json::{Map, Value};

use super::overrides::{self, EnvOverrides, FieldOverride};
use super::{ConfigError, ServerInfo, fields, read_config_file, read_env_section};

/// File name of the topology inside the config directory.
pub const SERVERS_FILE: &str = "servers.json";

/// Fields of a servers.json entry that Shaddock reads. Others (Pomelo's
/// `cpu`, …) are ignored with a warning.
const KNOWN_FIELDS: &[&str] = &[
    "id",
    "host",
    "clientHost",
    "bindHost",
    "clientBindHost",
    "port",
    "clientPort",
    "metricsPort",
    "frontend",
    "max-connections",
    "auto-restart",
    "args",
];

/// The servers of one environment, in servers.json order: server types in
/// the order their keys appear, servers in list order. Routers hash over
/// `servers_of_type`, so this order decides which server a uid lands on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Topology {
    pub env: String,
    pub servers: Vec<ServerInfo>,
}

impl Topology {
    /// Loads `<config_dir>/servers.json` for `env`, then applies the
    /// `SHADDOCK_SERVERS__…` overrides of the process environment.
    pub fn load(config_dir: &Path, env: &str) -> Result<Self, ConfigError> {
        Self::load_with_overrides(config_dir, env, &EnvOverrides::from_process_env()?)
    }

    /// [`Topology::load`] with explicit overrides (the process environment
    /// is not read).
    pub fn load_with_overrides(
        config_dir: &Path,
        env: &str,
        overrides: &EnvOverrides,
    ) -> Result<Self, ConfigError> {
        let path = config_dir.join(SERVERS_FILE);
        let text = read_config_file(&path)?;
        Self::from_json_str_with_overrides(&text, env, &path.display().to_string(), overrides)
    }

    /// Parses and validates a servers.json text. Pure: no environment
    /// overrides. `file_label` names the source in error messages.
    pub fn from_json_str(text: &str, env: &str, file_label: &str) -> Result<Self, ConfigError> {
        Self::from_json_str_with_overrides(text, env, file_label, &EnvOverrides::none())
    }

    /// [`Topology::from_json_str`], then the given overrides.
    pub fn from_json_str_with_overrides(
        text: &str,
        env: &str,
        file_label: &str,
        overrides: &EnvOverrides,
    ) -> Result<Self, ConfigError> {
        let section = read_env_section(text, env, file_label)?;
        let ctx = Ctx {
            file: file_label,
            env,
        };
        let Value::Object(types) = section else {
            return Err(ctx.invalid(
                "(all servers)".into(),
                env,
                format!(
                    "expected an object keyed by server type, e.g. {{\"connector\": [...]}}, found {}",
                    fields::describe(&section)
                ),
            ));
        };
        let mut servers = Vec::new();
        for (server_type, list) in types {
            let Value::Array(entries) = list else {
                return Err(ctx.invalid(
                    format!("server type \"{server_type}\""),
                    &server_type,
                    format!(
                        "expected a list of servers, found {}; write \"{server_type}\": [{{\"id\": ..., \"host\": ...}}]",
                        fields::describe(&list)
                    ),
                ));
            };
            for (index, entry) in entries.into_iter().enumerate() {
                servers.push(ctx.server(&server_type, index, entry, overrides)?);
            }
        }
        let ids: Vec<&str> = servers.iter().map(|s| s.id.as_str()).collect();
        if let Some(o) = overrides.unmatched_servers(&ids).next() {
            return Err(ConfigError::Override {
                var: o.var.clone(),
                problem: format!(
                    "names no server of {file_label} [{env}]; the servers are {}",
                    ids.join(", ")
                ),
            });
        }
        check_unique(&ctx, &servers)?;
        Ok(Self {
            env: env.to_owned(),
            servers,
        })
    }

    /// The server with this id.
    pub fn server(&self, id: &str) -> Option<&ServerInfo> {
        self.servers.iter().find(|s| s.id == id)
    }

    /// The servers of one type, in servers.json order.
    pub fn servers_of_type(&self, server_type: &str) -> Vec<&ServerInfo> {
        self.servers
            .iter()
            .filter(|s| s.server_type == server_type)
            .collect()
    }

    /// Server types in the order they first appear in servers.json.
    pub fn server_types(&self) -> Vec<&str> {
        let mut types: Vec<&str> = Vec::new();
        for s in &self.servers {
            if !types.contains(&s.server_type.as_str()) {
                types.push(&s.server_type);
            }
        }
        types
    }

    /// The frontend servers (the ones clients connect to), in order.
    pub fn frontends(&self) -> Vec<&ServerInfo> {
        self.servers.iter().filter(|s| s.frontend).collect()
    }

    /// Refuses a server type the app registered nothing for (a typo in
    /// servers.json would otherwise start a server that serves nothing).
    pub fn validate_types(&self, known: &[&str]) -> Result<(), ConfigError> {
        match self
            .servers
            .iter()
            .find(|s| !known.contains(&s.server_type.as_str()))
        {
            None => Ok(()),
            Some(s) => Err(ConfigError::UnknownServerType {
                file: SERVERS_FILE.into(),
                env: self.env.clone(),
                server_id: s.id.clone(),
                server_type: s.server_type.clone(),
                known: if known.is_empty() {
                    "no server types".into()
                } else {
                    known
                        .iter()
                        .map(|k| format!("`{k}`"))
                        .collect::<Vec<_>>()
                        .join(", ")
                },
            }),
        }
    }

    /// A servers.json document holding this environment only:
    /// `{"<env>": {"<type>": [{"id": …, "host": …, …}]}}`, in order.
    /// `Topology::from_json_str` of its text gives `self` back.
    pub fn to_servers_json(&self) -> Value {
        let mut types = Map::new();
        for s in &self.servers {
            let Value::Object(mut entry) = serde_json::to_value(s).unwrap_or_default() else {
                continue;
            };
            entry.remove("serverType");
            if !s.frontend {
                entry.remove("frontend");
            }
            let list = types
                .entry(s.server_type.clone())
                .or_insert_with(|| Value::Array(Vec::new()));
            if let Value::Array(list) = list {
                list.push(Value::Object(entry));
            }
        }
        let mut root = Map::new();
        root.insert(self.env.clone(), Value::Object(types));
        Value::Object(root)
    }
}

/// File and environment of the document being read, for error messages.
struct Ctx<'a> {
    file: &'a str,
    env: &'a str,
}

impl Ctx<'_> {
    fn invalid(&self, server: String, field: &str, problem: String) -> ConfigError {
        ConfigError::Invalid {
            file: self.file.to_owned(),
            env: self.env.to_owned(),
            server,
            field: field.to_owned(),
            problem,
        }
    }

    fn server(
        &self,
        server_type: &str,
        index: usize,
        entry: Value,
        overrides: &EnvOverrides,
    ) -> Result<ServerInfo, ConfigError> {
        let unnamed = format!("server #{} of type \"{server_type}\"", index + 1);
        let Value::Object(mut obj) = entry else {
            return Err(self.invalid(
                unnamed,
                "(entry)",
                format!(
                    "expected an object {{\"id\": ..., \"host\": ...}}, found {}",
                    fields::describe(&entry)
                ),
            ));
        };
        let example_id = format!("{server_type}-server-{}", index + 1);
        let id = fields::string(&obj, "id", &example_id)
            .map_err(|p| self.invalid(unnamed.clone(), "id", p))?;
        let label = format!("server \"{id}\"");
        let applied: &[FieldOverride] = overrides.for_server(&id);
        overrides::apply(&mut obj, applied);
        // Errors in overridden fields name the variable they came from.
        let err = |field: &str, problem: String| {
            let problem = match applied.iter().find(|o| o.field == field) {
                Some(o) => format!("{problem} (value from environment variable {})", o.var),
                None => problem,
            };
            self.invalid(label.clone(), field, problem)
        };
        for key in obj.keys() {
            if !KNOWN_FIELDS.contains(&key.as_str()) {
                tracing::warn!(
                    file = self.file,
                    env = self.env,
                    server = %id,
                    field = %key,
                    "unknown field in servers.json is ignored (known: {})",
                    KNOWN_FIELDS.join(", ")
                );
            }
        }
        let host = fields::string(&obj, "host", "127.0.0.1").map_err(|p| err("host", p))?;
        let optional_host = |field: &str| match obj.get(field) {
            None | Some(Value::Null) => Ok(None),
            Some(_) => fields::string(&obj, field, "10.0.0.2")
                .map(Some)
                .map_err(|p| err(field, p)),
        };
        let client_host = optional_host("clientHost")?;
        let bind_host = optional_host("bindHost")?;
        let client_bind_host = optional_host("clientBindHost")?;
        let port = fields::port(&obj, "port").map_err(|p| err("port", p))?;
        let client_port = fields::port(&obj, "clientPort").map_err(|p| err("clientPort", p))?;
        let metrics_port = fields::port(&obj, "metricsPort").map_err(|p| err("metricsPort", p))?;
        let frontend = fields::boolean(&obj, "frontend")
            .map_err(|p| err("frontend", p))?
            .unwrap_or(false);
        let max_connections =
            fields::count(&obj, "max-connections").map_err(|p| err("max-connections", p))?;
        let auto_restart =
            fields::boolean(&obj, "auto-restart").map_err(|p| err("auto-restart", p))?;
        let args = fields::args(&obj, "args").map_err(|p| err("args", p))?;
        if frontend && client_port.is_none() {
            return Err(err(
                "clientPort",
                "missing on a frontend server: clients need a port to connect to; add e.g. \
                 \"clientPort\": 3010, or remove \"frontend\": true"
                    .into(),
            ));
        }
        if !frontend && port.is_none() {
            tracing::warn!(
                file = self.file,
                env = self.env,
                server = %id,
                "backend server has no `port`: it cannot receive forwarded requests or RPCs"
            );
        }
        Ok(ServerInfo {
            id,
            server_type: server_type.to_owned(),
            host,
            client_host,
            bind_host,
            client_bind_host,
            port,
            client_port,
            metrics_port,
            frontend,
            max_connections,
            auto_restart,
            args,
        })
    }
}

/// Ids are unique; no two ports (port or clientPort) collide on one host.
fn check_unique(ctx: &Ctx<'_>, servers: &[ServerInfo]) -> Result<(), ConfigError> {
    let mut ids: HashMap<&str, &ServerInfo> = HashMap::new();
    let mut ports: HashMap<(&str, u16), (&str, &str)> = HashMap::new();
    for s in servers {
        if let Some(first) = ids.insert(&s.id, s) {
            return Err(ctx.invalid(
                format!("server \"{}\" (type \"{}\")", s.id, s.server_type),
                "id",
                format!(
                    "duplicate id: already used by a server of type \"{}\"; give every server its own id",
                    first.server_type
                ),
            ));
        }
        let pairs = [
            ("port", s.port),
            ("clientPort", s.client_port),
            ("metricsPort", s.metrics_port),
        ];
        for (field, port) in pairs {
            let Some(port) = port else { continue };
            if let Some((other, other_field)) = ports.insert((&s.host, port), (&s.id, field)) {
                return Err(ctx.invalid(
                    format!("server \"{}\"", s.id),
                    field,
                    format!(
                        "port {port} on host {} is already the `{other_field}` of server \"{other}\"; \
                         give every server on a host its own ports",
                        s.host
                    ),
                ));
            }
        }
    }
    Ok(())
}
