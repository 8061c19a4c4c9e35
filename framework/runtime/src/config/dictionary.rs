//! `config/dictionary.json`: extra routes for the route dictionary (§5.2).

use std::path::Path;

use serde_json::Value;

use super::ConfigError;

/// File name of the extra routes inside the config directory.
pub const DICTIONARY_FILE: &str = "dictionary.json";

/// Extra routes to append to the route dictionary (push routes such as
/// `onChat` can only be compressed if listed here), in file order.
///
/// As in Pomelo: a missing file means no extra routes, and a file that is not
/// a JSON array (chatofpomelo ships `{}`) adds nothing — with a warning here.
/// Non-string elements are skipped with a warning. Unreadable or invalid
/// JSON is an error: a typo should not silently disable compression.
pub fn load_dictionary(config_dir: &Path) -> Result<Vec<String>, ConfigError> {
    let path = config_dir.join(DICTIONARY_FILE);
    let file = path.display().to_string();
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(source) => return Err(ConfigError::Read { file, source }),
    };
    let value: Value = serde_json::from_str(&text).map_err(|e| ConfigError::Json {
        file: file.clone(),
        problem: format!("not valid JSON ({e}); write a list of routes, e.g. [\"onChat\"]"),
    })?;
    let Value::Array(items) = value else {
        tracing::warn!(
            file = %file,
            "dictionary.json is not a JSON array of routes; it adds nothing (write e.g. [\"onChat\"])"
        );
        return Ok(Vec::new());
    };
    let mut routes = Vec::with_capacity(items.len());
    for (index, item) in items.into_iter().enumerate() {
        match item {
            Value::String(route) => routes.push(route),
            other => tracing::warn!(
                file = %file,
                index,
                "dictionary.json element is not a route string and is skipped: {other}"
            ),
        }
    }
    Ok(routes)
}
