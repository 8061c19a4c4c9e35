//! Admin users (`config/adminUser.json`) and how the master checks them.
//!
//! Pomelo ships `admin/admin` and compares MD5s; we never store or accept a
//! plaintext password: each user has an argon2id PHC string, `shaddock init`
//! generates a random password and prints it once. An entry with a plain
//! `password` field is refused with an error that says how to fix it.

use std::path::Path;

use anyhow::{Context, bail};
use argon2::Argon2;
use argon2::password_hash::phc::PasswordHash;
use argon2::password_hash::{PasswordHasher, PasswordVerifier};
use serde::{Deserialize, Serialize};

/// gRPC metadata key carrying the admin user name.
pub const USER_HEADER: &str = "x-shaddock-user";
/// gRPC metadata key carrying the admin password (the API binds to the
/// master's host only; use a loopback or private address).
pub const PASSWORD_HEADER: &str = "x-shaddock-password";

/// One entry of `adminUser.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AdminUser {
    pub id: String,
    pub username: String,
    /// argon2id PHC string (`$argon2id$v=19$...`).
    #[serde(rename = "passwordHash")]
    pub password_hash: String,
    /// Pomelo's level (1 = full access). Kept for compatibility.
    #[serde(default = "one")]
    pub level: u32,
}

fn one() -> u32 {
    1
}

/// The loaded users.
#[derive(Debug, Clone, Default)]
pub struct AdminUsers {
    users: Vec<AdminUser>,
}

impl AdminUsers {
    pub fn new(users: Vec<AdminUser>) -> Self {
        AdminUsers { users }
    }

    /// Loads `adminUser.json`. A missing file is an error: an admin API with
    /// no users would either be open to anyone or useless.
    pub fn load(path: &Path) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(path).with_context(|| {
            format!(
                "cannot read {} (create it with `shaddock admin-user <name>`)",
                path.display()
            )
        })?;
        let raw: Vec<serde_json::Value> = serde_json::from_str(&text)
            .with_context(|| format!("{} must be a JSON list of users", path.display()))?;
        let mut users = Vec::new();
        for (i, entry) in raw.into_iter().enumerate() {
            if entry.get("password").is_some() {
                bail!(
                    "{}: user #{i} has a plaintext `password`; store a hash instead \
                     (`shaddock admin-user <name>` writes one)",
                    path.display()
                );
            }
            let user: AdminUser = serde_json::from_value(entry).with_context(|| {
                format!(
                    "{}: user #{i} needs id, username and passwordHash",
                    path.display()
                )
            })?;
            PasswordHash::new(&user.password_hash).map_err(|e| {
                anyhow::anyhow!(
                    "{}: user `{}` has an invalid passwordHash: {e}",
                    path.display(),
                    user.username
                )
            })?;
            users.push(user);
        }
        if users.is_empty() {
            bail!("{} lists no user", path.display());
        }
        Ok(AdminUsers { users })
    }

    /// Whether `username`/`password` match a user. Constant work per user
    /// name lookup; the hash comparison is argon2's.
    pub fn verify(&self, username: &str, password: &str) -> bool {
        let Some(user) = self.users.iter().find(|u| u.username == username) else {
            return false;
        };
        match PasswordHash::new(&user.password_hash) {
            Ok(hash) => Argon2::default()
                .verify_password(password.as_bytes(), &hash)
                .is_ok(),
            Err(_) => false,
        }
    }
}

/// Hashes a password into an argon2id PHC string with a random salt.
pub fn hash_password(password: &str) -> anyhow::Result<String> {
    let hash = Argon2::default()
        .hash_password(password.as_bytes())
        .map_err(|e| anyhow::anyhow!("hashing the admin password failed: {e}"))?;
    Ok(hash.to_string())
}

/// A fresh random password: 24 characters from a 62-letter alphabet
/// (~142 bits), from the OS random source.
pub fn generate_password() -> anyhow::Result<String> {
    random_token(24)
}

/// `len` random alphanumeric characters from the OS random source.
pub fn random_token(len: usize) -> anyhow::Result<String> {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    let mut out = String::with_capacity(len);
    let mut buf = [0u8; 64];
    while out.len() < len {
        getrandom::fill(&mut buf).map_err(|e| anyhow::anyhow!("OS random source failed: {e}"))?;
        for b in buf {
            // Rejection sampling keeps the distribution uniform (248 = 4 * 62).
            if b < 248 && out.len() < len {
                out.push(ALPHABET[(b % 62) as usize] as char);
            }
        }
    }
    Ok(out)
}

/// Credentials as the CLI sends them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Credentials {
    pub username: String,
    pub password: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_verifies_only_the_right_password() {
        let pw = generate_password().unwrap();
        assert_eq!(pw.len(), 24);
        assert_ne!(pw, generate_password().unwrap());
        let users = AdminUsers::new(vec![AdminUser {
            id: "user-1".into(),
            username: "admin".into(),
            password_hash: hash_password(&pw).unwrap(),
            level: 1,
        }]);
        assert!(users.verify("admin", &pw));
        assert!(!users.verify("admin", "admin"));
        assert!(!users.verify("root", &pw));
        assert!(!users.verify("admin", ""));
    }

    #[test]
    fn plaintext_passwords_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("adminUser.json");
        std::fs::write(
            &path,
            r#"[{"id":"user-1","username":"admin","password":"admin","level":1}]"#,
        )
        .unwrap();
        let err = format!("{:#}", AdminUsers::load(&path).unwrap_err());
        assert!(err.contains("plaintext"), "{err}");
    }
}
