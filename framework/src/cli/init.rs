//! `shaddock init` and `shaddock admin-user`.

use std::path::Path;

use super::args::{AdminUserArgs, InitArgs};
use super::client::{CREDENTIALS_FILE, write_credentials};
use super::exit::CliError;
use crate::master::auth::{self, AdminUser, Credentials};
use crate::master::config;

pub fn run(_a: InitArgs) -> Result<(), CliError> {
    Err(CliError::error("init: not yet available"))
}

/// Creates or replaces `username` in `adminUser.json` with a fresh random
/// password, stores only its hash, writes `.admin-credentials` (0600) and
/// returns the password (printed once by the caller).
pub fn create_admin_user(config_dir: &Path, username: &str) -> Result<String, CliError> {
    if username.is_empty() || username.contains(char::is_whitespace) {
        return Err(CliError::error(format!(
            "`{username}` is not a usable user name"
        )));
    }
    let path = config_dir.join("adminUser.json");
    let mut users: Vec<serde_json::Value> = match std::fs::read_to_string(&path) {
        Ok(text) => serde_json::from_str(&text)
            .map_err(|e| CliError::error(format!("{} is not a JSON list: {e}", path.display())))?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(e) => {
            return Err(CliError::error(format!(
                "cannot read {}: {e}",
                path.display()
            )));
        }
    };
    users.retain(|u| u.get("username").and_then(|n| n.as_str()) != Some(username));
    let password = auth::generate_password()?;
    let user = AdminUser {
        id: format!("user-{}", users.len() + 1),
        username: username.to_string(),
        password_hash: auth::hash_password(&password)?,
        level: 1,
    };
    users.push(serde_json::to_value(&user).map_err(|e| CliError::error(e.to_string()))?);
    let text = serde_json::to_string_pretty(&users).map_err(|e| CliError::error(e.to_string()))?;
    std::fs::write(&path, text + "\n")
        .map_err(|e| CliError::error(format!("cannot write {}: {e}", path.display())))?;
    let creds_path = config_dir.join(CREDENTIALS_FILE);
    write_credentials(
        &creds_path,
        &Credentials {
            username: username.to_string(),
            password: password.clone(),
        },
    )
    .map_err(|e| CliError::error(format!("cannot write {}: {e}", creds_path.display())))?;
    Ok(password)
}

/// `shaddock admin-user [name]`.
pub fn admin_user(a: AdminUserArgs) -> Result<(), CliError> {
    let dir = config::config_dir(&a.dir);
    if !dir.is_dir() {
        return Err(CliError::error(format!(
            "{} does not exist; run this in an app folder or pass -d",
            dir.display()
        )));
    }
    let password = create_admin_user(&dir, &a.username)?;
    println!("admin user `{}` password: {password}", a.username);
    println!(
        "(shown once; only its hash is in {}; the CLI reads {} — keep it private)",
        dir.join("adminUser.json").display(),
        dir.join(CREDENTIALS_FILE).display()
    );
    Ok(())
}
