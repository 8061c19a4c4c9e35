//! The per-cluster secret every cluster gRPC call carries
//! (`config/cluster.json`, or the `SHADDOCK_CLUSTER_SECRET` variable).
//!
//! The cluster port lets a caller bind any session to any uid, kick anyone,
//! push to everyone and call every remote; without a credential anyone who
//! reaches it owns the app. The file is per developer / per deployment and
//! never committed (`.gitignore` lists it); `shaddock init` and
//! `shaddock start` write one for a development environment, mode 0600:
//!
//! ```json
//! {"development": {"secret": "3kq…(32 random letters)"}}
//! ```
//!
//! The variable wins over the file, so a deployment can keep the secret in
//! its secret store and out of the config folder. What a missing secret
//! means is the launcher's decision (production refuses to start).

use std::path::Path;
use std::sync::Arc;

use serde_json::Value;

use super::{ConfigError, fields, read_config_file, read_env_section};

/// File name of the cluster secret inside the config directory.
pub const CLUSTER_FILE: &str = "cluster.json";
/// Variable that overrides the file.
pub const SECRET_VAR: &str = "SHADDOCK_CLUSTER_SECRET";
/// Shortest secret accepted: a guessable secret is no secret.
pub const MIN_SECRET_LEN: usize = 16;

/// The shared secret of one cluster. `Debug` never shows it.
#[derive(Clone, PartialEq, Eq)]
pub struct ClusterSecret(Arc<str>);

impl std::fmt::Debug for ClusterSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ClusterSecret(<redacted>)")
    }
}

impl ClusterSecret {
    /// Checks `secret` (visible ASCII, since it travels as a gRPC metadata
    /// value; at least [`MIN_SECRET_LEN`] characters). The error says what is
    /// wrong without echoing the secret.
    pub fn new(secret: &str) -> Result<Self, String> {
        let secret = secret.trim();
        if secret.len() < MIN_SECRET_LEN {
            return Err(format!(
                "the cluster secret is {} characters long; use at least {MIN_SECRET_LEN} random \
                 characters (`shaddock start` writes 32)",
                secret.len()
            ));
        }
        if !secret.bytes().all(|b| b.is_ascii_graphic()) {
            return Err("the cluster secret may hold only visible ASCII characters \
                        (letters, digits, punctuation; no spaces)"
                .into());
        }
        Ok(ClusterSecret(secret.into()))
    }

    /// The secret itself (to put in a call or compare).
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Reads the secret of `env`: `SHADDOCK_CLUSTER_SECRET` if set and
    /// non-empty, else `secret` of the env section of
    /// `<config_dir>/cluster.json`. `Ok(None)`: neither exists (a missing
    /// file or a missing section); a present but invalid one is an error.
    pub fn load(config_dir: &Path, env: &str) -> Result<Option<Self>, ConfigError> {
        let var = std::env::var(SECRET_VAR).ok();
        Self::load_with(config_dir, env, var.as_deref())
    }

    /// [`ClusterSecret::load`] with the variable's value given.
    pub fn load_with(
        config_dir: &Path,
        env: &str,
        var: Option<&str>,
    ) -> Result<Option<Self>, ConfigError> {
        if let Some(var) = var.filter(|v| !v.trim().is_empty()) {
            return Self::new(var)
                .map(Some)
                .map_err(|problem| ConfigError::Override {
                    var: SECRET_VAR.into(),
                    problem,
                });
        }
        let path = config_dir.join(CLUSTER_FILE);
        if !path.exists() {
            return Ok(None);
        }
        let label = path.display().to_string();
        let text = read_config_file(&path)?;
        let section = match read_env_section(&text, env, &label) {
            Ok(section) => section,
            Err(ConfigError::UnknownEnvironment { .. }) => return Ok(None),
            Err(e) => return Err(e),
        };
        let invalid = |problem: String| ConfigError::Invalid {
            file: label.clone(),
            env: env.to_owned(),
            server: "cluster".into(),
            field: "secret".into(),
            problem,
        };
        let Value::Object(obj) = section else {
            return Err(invalid(format!(
                "expected an object {{\"secret\": \"...\"}}, found {}",
                fields::describe(&section)
            )));
        };
        match obj.get("secret") {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Self::new(s).map(Some).map_err(invalid),
            Some(other) => Err(invalid(format!(
                "expected a string, found {}",
                fields::describe(other)
            ))),
        }
    }
}

/// Why a server may not start without a secret, and how to give it one.
pub fn missing_secret_error(config_dir: &Path, env: &str) -> String {
    format!(
        "no cluster secret for environment `{env}`: every cluster call must be authenticated. \
         Set {SECRET_VAR}, or put {{\"{env}\": {{\"secret\": \"<at least {MIN_SECRET_LEN} random \
         characters>\"}}}} in {} (mode 0600, never committed), the same on every server of the \
         cluster",
        config_dir.join(CLUSTER_FILE).display()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir_with(text: &str) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(CLUSTER_FILE), text).unwrap();
        dir
    }

    #[test]
    fn file_variable_and_absence() {
        let dir = dir_with(r#"{"development": {"secret": "0123456789abcdef0123"}}"#);
        let s = ClusterSecret::load_with(dir.path(), "development", None).unwrap();
        assert_eq!(s.unwrap().expose(), "0123456789abcdef0123");
        // The variable wins.
        let s = ClusterSecret::load_with(dir.path(), "development", Some("zzzzzzzzzzzzzzzzzz"));
        assert_eq!(s.unwrap().unwrap().expose(), "zzzzzzzzzzzzzzzzzz");
        // Another environment has none; no file has none.
        assert!(
            ClusterSecret::load_with(dir.path(), "production", None)
                .unwrap()
                .is_none()
        );
        let empty = tempfile::tempdir().unwrap();
        assert!(
            ClusterSecret::load_with(empty.path(), "development", None)
                .unwrap()
                .is_none()
        );
    }

    #[test]
    fn weak_or_malformed_secrets_are_refused_without_echoing_them() {
        let dir = dir_with(r#"{"development": {"secret": "short"}}"#);
        let e = ClusterSecret::load_with(dir.path(), "development", None).unwrap_err();
        let e = e.to_string();
        assert!(e.contains("at least 16") && !e.contains("short\""), "{e}");
        let dir = dir_with(r#"{"development": {"secret": 12}}"#);
        assert!(ClusterSecret::load_with(dir.path(), "development", None).is_err());
        assert!(ClusterSecret::new("has a space in it, long enough").is_err());
        assert_eq!(
            format!("{:?}", ClusterSecret::new("0123456789abcdef").unwrap()),
            "ClusterSecret(<redacted>)"
        );
    }
}
