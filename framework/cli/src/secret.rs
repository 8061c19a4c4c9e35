//! The development cluster secret: `shaddock init` and `shaddock start`
//! write one into `config/cluster.json` when the environment has none, the
//! way they create the admin password, so a fresh app's cluster port is
//! authenticated without a setup step (see `docs/security.md`).
//!
//! Never for `production`: there the operator provides the secret
//! (`SHADDOCK_CLUSTER_SECRET` or the file) and a server without one refuses
//! to start, so a deployment cannot run on a secret nobody chose.

use std::path::Path;

use shaddock::config::{CLUSTER_FILE, ClusterSecret, SECRET_VAR};

use crate::client::write_private;
use crate::exit::CliError;
use crate::master::auth::random_token;

/// Length of a generated secret (62-letter alphabet: ~190 bits).
const SECRET_LEN: usize = 32;

/// Makes sure `env` has a cluster secret; returns the file written, if any.
pub fn ensure_cluster_secret(config_dir: &Path, env: &str) -> Result<Option<String>, CliError> {
    let var = std::env::var(SECRET_VAR).ok();
    let present = ClusterSecret::load_with(config_dir, env, var.as_deref())
        .map_err(|e| CliError::error(e.to_string()))?;
    if present.is_some() || env == shaddock::launch::PRODUCTION {
        return Ok(None);
    }
    let path = config_dir.join(CLUSTER_FILE);
    let mut root = match std::fs::read_to_string(&path) {
        Ok(text) => match serde_json::from_str::<serde_json::Value>(&text) {
            Ok(serde_json::Value::Object(map)) => map,
            _ => {
                return Err(CliError::error(format!(
                    "{} is not a JSON object keyed by environment; fix or delete it",
                    path.display()
                )));
            }
        },
        Err(_) => serde_json::Map::new(),
    };
    let secret = random_token(SECRET_LEN).map_err(|e| CliError::error(e.to_string()))?;
    root.insert(env.to_owned(), serde_json::json!({ "secret": secret }));
    let text = serde_json::to_string_pretty(&root).map_err(|e| CliError::error(e.to_string()))?;
    write_private(&path, &text)
        .map_err(|e| CliError::error(format!("cannot write {}: {e}", path.display())))?;
    Ok(Some(path.display().to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_a_private_secret_once_and_never_for_production() {
        let dir = tempfile::tempdir().unwrap();
        let written = ensure_cluster_secret(dir.path(), "development").unwrap();
        assert!(written.is_some());
        let path = dir.path().join(CLUSTER_FILE);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let first = std::fs::read_to_string(&path).unwrap();
        assert!(
            ensure_cluster_secret(dir.path(), "development")
                .unwrap()
                .is_none()
        );
        assert_eq!(std::fs::read_to_string(&path).unwrap(), first);
        assert!(
            ensure_cluster_secret(dir.path(), "production")
                .unwrap()
                .is_none()
        );
        // Another development-like environment is added beside the first.
        ensure_cluster_secret(dir.path(), "staging").unwrap();
        let s = ClusterSecret::load_with(dir.path(), "development", None).unwrap();
        assert_eq!(s.unwrap().expose().len(), SECRET_LEN);
        assert!(
            ClusterSecret::load_with(dir.path(), "staging", None)
                .unwrap()
                .is_some()
        );
    }
}
