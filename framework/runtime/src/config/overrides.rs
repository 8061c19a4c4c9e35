//! Environment-variable overrides, collected with the `config` crate.
//!
//! `SHADDOCK_SERVERS__<SERVER_ID>__<FIELD>=value` overrides one field of one
//! server; `SHADDOCK_MASTER__<FIELD>=value` one field of the master. The
//! `config` crate's `Environment` source splits the names on `__` and
//! lower-cases them, so both parts are matched loosely: server ids compare
//! case-insensitively with `_` and `-` equal (`CONNECTOR_SERVER_1` →
//! `connector-server-1`), and field names compare case-insensitively with
//! `-`/`_` ignored (`CLIENTPORT` → `clientPort`, `MAX_CONNECTIONS` →
//! `max-connections`). Values are read as JSON when they parse (`4000`,
//! `true`, `["--a"]`) and as plain strings otherwise; `host` is always a
//! string.

use std::collections::HashMap;

use serde_json::{Map, Value};

use super::ConfigError;

/// Prefix of every Shaddock environment variable.
pub const ENV_PREFIX: &str = "SHADDOCK";

/// Server fields an override may set (Pomelo spelling). `id` is not among
/// them: overrides are addressed by id.
pub const SERVER_FIELDS: &[&str] = &[
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

/// Master fields an override may set.
pub const MASTER_FIELDS: &[&str] = &["id", "host", "port"];

/// One field to overwrite, and the variable it came from (for errors).
#[derive(Debug, Clone, PartialEq)]
pub struct FieldOverride {
    /// Canonical field name, e.g. `clientPort`.
    pub field: String,
    pub value: Value,
    /// The variable name, e.g. `SHADDOCK_SERVERS__CONNECTOR_SERVER_1__CLIENTPORT`.
    pub var: String,
}

/// All overrides found in one environment.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct EnvOverrides {
    /// Keyed by the normalised server id (lower case, `-` → `_`).
    servers: Vec<(String, Vec<FieldOverride>)>,
    master: Vec<FieldOverride>,
}

impl EnvOverrides {
    /// No overrides at all.
    pub fn none() -> Self {
        Self::default()
    }

    /// Overrides from the process environment.
    pub fn from_process_env() -> Result<Self, ConfigError> {
        Self::collect(
            std::env::vars_os()
                .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
                .collect(),
        )
    }

    /// Overrides from the given variables only (tests; embedding apps). The
    /// process environment is not read.
    pub fn from_vars<I, K, V>(vars: I) -> Result<Self, ConfigError>
    where
        I: IntoIterator<Item = (K, V)>,
        K: Into<String>,
        V: Into<String>,
    {
        Self::collect(
            vars.into_iter()
                .map(|(k, v)| (k.into(), v.into()))
                .collect(),
        )
    }

    pub fn is_empty(&self) -> bool {
        self.servers.is_empty() && self.master.is_empty()
    }

    fn collect(mut vars: HashMap<String, String>) -> Result<Self, ConfigError> {
        // Only our two sections go to the `config` crate: other SHADDOCK_*
        // variables (SHADDOCK_ENV, logging, …) must not be able to fail the
        // load through a key `config` cannot parse.
        vars.retain(|k, _| {
            let k = k.to_uppercase();
            k.starts_with("SHADDOCK_SERVERS__") || k.starts_with("SHADDOCK_MASTER__")
        });
        let env = config::Environment::with_prefix(ENV_PREFIX)
            .prefix_separator("_")
            .separator("__")
            .source(Some(vars.into_iter().collect()));
        let cfg = config::Config::builder()
            .add_source(env)
            .build()
            .map_err(|e| ConfigError::Override {
                var: format!("{ENV_PREFIX}_*"),
                problem: format!("{e}; use {ENV_PREFIX}_SERVERS__<SERVER_ID>__<FIELD>=value"),
            })?;
        let mut out = Self::default();
        for (key, value) in table(&cfg, "servers")? {
            let var_base = format!("{ENV_PREFIX}_SERVERS__{}", key.to_uppercase());
            let fields = value.into_table().map_err(|_| ConfigError::Override {
                var: var_base.clone(),
                problem: format!(
                    "names a server but no field; use {var_base}__<FIELD>=value with FIELD one of {}",
                    SERVER_FIELDS.join(", ")
                ),
            })?;
            let mut list = Vec::new();
            for (field_key, v) in fields {
                let var = format!("{var_base}__{}", field_key.to_uppercase());
                list.push(field_override(&var, &field_key, v, SERVER_FIELDS)?);
            }
            list.sort_by(|a, b| a.var.cmp(&b.var));
            out.servers.push((key.replace('-', "_"), list));
        }
        out.servers.sort_by(|a, b| a.0.cmp(&b.0));
        for (field_key, v) in table(&cfg, "master")? {
            let var = format!("{ENV_PREFIX}_MASTER__{}", field_key.to_uppercase());
            out.master
                .push(field_override(&var, &field_key, v, MASTER_FIELDS)?);
        }
        out.master.sort_by(|a, b| a.var.cmp(&b.var));
        Ok(out)
    }

    /// The overrides of server `id` (matched as described in the module doc).
    pub fn for_server(&self, id: &str) -> &[FieldOverride] {
        let key = normalise_id(id);
        self.servers
            .iter()
            .find(|(k, _)| *k == key)
            .map(|(_, v)| v.as_slice())
            .unwrap_or(&[])
    }

    /// The overrides of the master.
    pub fn for_master(&self) -> &[FieldOverride] {
        &self.master
    }

    /// Server keys that match none of `ids`: a typo in a variable name must
    /// not be silently ignored.
    pub(crate) fn unmatched_servers<'a>(
        &'a self,
        ids: &[&str],
    ) -> impl Iterator<Item = &'a FieldOverride> + 'a {
        let known: Vec<String> = ids.iter().map(|id| normalise_id(id)).collect();
        self.servers
            .iter()
            .filter(move |(k, _)| !known.contains(k))
            .filter_map(|(_, fields)| fields.first())
    }
}

/// Writes `overrides` into a server or master object.
pub(crate) fn apply(obj: &mut Map<String, Value>, overrides: &[FieldOverride]) {
    for o in overrides {
        obj.insert(o.field.clone(), o.value.clone());
    }
}

fn normalise_id(id: &str) -> String {
    id.to_lowercase().replace('-', "_")
}

fn normalise_field(field: &str) -> String {
    field
        .chars()
        .filter(|c| *c != '-' && *c != '_')
        .flat_map(char::to_lowercase)
        .collect()
}

fn table(cfg: &config::Config, key: &str) -> Result<HashMap<String, config::Value>, ConfigError> {
    match cfg.get_table(key) {
        Ok(t) => Ok(t.into_iter().collect()),
        Err(config::ConfigError::NotFound(_)) => Ok(HashMap::new()),
        Err(e) => Err(ConfigError::Override {
            var: format!("{ENV_PREFIX}_{}", key.to_uppercase()),
            problem: format!(
                "{e}; use {ENV_PREFIX}_{}__...__<FIELD>=value",
                key.to_uppercase()
            ),
        }),
    }
}

fn field_override(
    var: &str,
    key: &str,
    value: config::Value,
    allowed: &[&str],
) -> Result<FieldOverride, ConfigError> {
    let wanted = normalise_field(key);
    let field = allowed
        .iter()
        .find(|f| normalise_field(f) == wanted)
        .ok_or_else(|| ConfigError::Override {
            var: var.to_owned(),
            problem: format!(
                "unknown field `{key}`; overridable fields are {} (any case, `_` or `-` optional)",
                allowed.join(", ")
            ),
        })?;
    let raw = value.into_string().map_err(|e| ConfigError::Override {
        var: var.to_owned(),
        problem: format!("{e}; give a plain value"),
    })?;
    let value = if matches!(*field, "host" | "id") {
        Value::String(raw)
    } else {
        serde_json::from_str(&raw).unwrap_or(Value::String(raw))
    };
    Ok(FieldOverride {
        field: (*field).to_owned(),
        value,
        var: var.to_owned(),
    })
}
