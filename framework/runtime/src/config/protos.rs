//! `config/serverProtos.json` and `config/clientProtos.json`: protobuf
//! bodies (§5.3), with Pomelo's file names and format.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde_json::Value;

use super::ConfigError;
use crate::protocol::Protos;

/// Bodies the server sends: pushes by push route, responses by the
/// request's route.
pub const SERVER_PROTOS_FILE: &str = "serverProtos.json";
/// Bodies clients send, by request/notify route.
pub const CLIENT_PROTOS_FILE: &str = "clientProtos.json";

/// Loads the protos of the app in `config_dir`. As in Pomelo, each file is
/// looked for in `config/`, then in `config/<env>/`; both are optional.
/// Neither present: `None`, JSON bodies everywhere and nothing about protos
/// in the handshake. Otherwise every frontend announces them and uses
/// protobuf for the routes they name.
///
/// A file that is not JSON or not a valid schema (a malformed key, a tag
/// used twice, a type pomelo-protobuf cannot encode) fails the start with
/// the file and the key: Pomelo would skip the key and clients would find
/// out later, by bodies they cannot decode.
pub fn load_protos(config_dir: &Path, env: &str) -> Result<Option<Arc<Protos>>, ConfigError> {
    let server = read(config_dir, env, SERVER_PROTOS_FILE)?;
    let client = read(config_dir, env, CLIENT_PROTOS_FILE)?;
    if server.is_none() && client.is_none() {
        return Ok(None);
    }
    let file = |f: &Option<(PathBuf, Value)>| f.as_ref().map(|(p, _)| p.display().to_string());
    let label = [file(&server), file(&client)]
        .into_iter()
        .flatten()
        .collect::<Vec<_>>()
        .join(" / ");
    Protos::from_sources(
        server.as_ref().map(|(_, v)| v),
        client.as_ref().map(|(_, v)| v),
    )
    .map(|p| Some(Arc::new(p)))
    .map_err(|problem| ConfigError::Json {
        file: label,
        problem: format!("{problem}; fix the schema (format: docs/protocol.md §5.3)"),
    })
}

/// The file's path and JSON, from `config/` or else `config/<env>/`.
fn read(config_dir: &Path, env: &str, name: &str) -> Result<Option<(PathBuf, Value)>, ConfigError> {
    for path in [config_dir.join(name), config_dir.join(env).join(name)] {
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(source) => {
                return Err(ConfigError::Read {
                    file: path.display().to_string(),
                    source,
                });
            }
        };
        let value = serde_json::from_str(&text).map_err(|e| ConfigError::Json {
            file: path.display().to_string(),
            problem: format!("not valid JSON ({e})"),
        })?;
        return Ok(Some((path, value)));
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn absent_files_mean_json_and_a_bad_key_names_file_and_key() {
        let dir = tempfile::tempdir().unwrap();
        assert!(load_protos(dir.path(), "development").unwrap().is_none());

        // Only the client file, in config/<env>/ (Pomelo's second place).
        std::fs::create_dir(dir.path().join("development")).unwrap();
        std::fs::write(
            dir.path().join("development").join(CLIENT_PROTOS_FILE),
            r#"{"chat.chatHandler.send": {"required string content": 1}}"#,
        )
        .unwrap();
        let protos = load_protos(dir.path(), "development").unwrap().unwrap();
        assert!(protos.client.has_route("chat.chatHandler.send"));
        assert!(protos.server.is_empty());
        assert!(load_protos(dir.path(), "production").unwrap().is_none());

        std::fs::write(
            dir.path().join(SERVER_PROTOS_FILE),
            r#"{"onChat": {"required bool loud": 1}}"#,
        )
        .unwrap();
        let err = load_protos(dir.path(), "development")
            .unwrap_err()
            .to_string();
        assert!(err.contains(SERVER_PROTOS_FILE), "{err}");
        assert!(err.contains("onChat.required bool loud"), "{err}");
        assert!(err.contains("unknown type `bool`"), "{err}");

        std::fs::write(dir.path().join(SERVER_PROTOS_FILE), "{oops").unwrap();
        let err = load_protos(dir.path(), "development")
            .unwrap_err()
            .to_string();
        assert!(err.contains("not valid JSON"), "{err}");
    }
}
