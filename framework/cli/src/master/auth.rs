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
/// gRPC metadata key carrying the admin password (sent once per command,
/// to `Login`; the API binds to the master's host only: use a loopback or
/// private address).
pub const PASSWORD_HEADER: &str = "x-shaddock-password";
/// gRPC metadata key carrying a token from `Login`.
pub const TOKEN_HEADER: &str = "x-shaddock-token";
/// gRPC metadata key naming the admin user a supervisor of another host
/// acts for (with the cluster key; see `master::hosts`).
pub const ON_BEHALF_HEADER: &str = "x-shaddock-on-behalf-of";

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
    /// A hash of a random password, checked for unknown user names so they
    /// cost the same argon2 work as a wrong password (no user enumeration
    /// by timing). Made on first use.
    dummy: std::sync::OnceLock<String>,
}

impl AdminUsers {
    pub fn new(users: Vec<AdminUser>) -> Self {
        AdminUsers {
            users,
            dummy: std::sync::OnceLock::new(),
        }
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
        Ok(AdminUsers::new(users))
    }

    /// The argon2 hash a check of `username` runs against: the user's, or
    /// for an unknown name a dummy one made the same way (same algorithm
    /// and cost), so both cost the same work.
    fn hash_for(&self, username: &str) -> (&str, bool) {
        match self.users.iter().find(|u| u.username == username) {
            Some(u) => (u.password_hash.as_str(), true),
            None => (
                self.dummy.get_or_init(|| {
                    let random = random_token(24).unwrap_or_else(|_| "x".repeat(24));
                    hash_password(&random).unwrap_or_default()
                }),
                false,
            ),
        }
    }

    /// Whether `username`/`password` match a user. An unknown user name
    /// costs the same argon2 check (against a dummy hash) as a known one.
    pub fn verify(&self, username: &str, password: &str) -> bool {
        let (phc, known) = self.hash_for(username);
        let matches = match PasswordHash::new(phc) {
            Ok(hash) => Argon2::default()
                .verify_password(password.as_bytes(), &hash)
                .is_ok(),
            Err(_) => false,
        };
        matches && known
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

    /// An unknown user name is checked against a hash of the same
    /// algorithm and cost as a real user's: the same argon2 work, so timing
    /// does not tell which names exist. (Checked on the hashes, not with a
    /// clock: timings on a shared machine are noise.)
    #[test]
    fn unknown_users_cost_the_same_work_as_wrong_passwords() {
        let users = AdminUsers::new(vec![AdminUser {
            id: "user-1".into(),
            username: "admin".into(),
            password_hash: hash_password("right").unwrap(),
            level: 1,
        }]);
        let (known, is_known) = users.hash_for("admin");
        let (dummy, dummy_known) = users.hash_for("nobody");
        assert!(is_known && !dummy_known);
        let (known, dummy) = (
            PasswordHash::new(known).unwrap(),
            PasswordHash::new(dummy).unwrap(),
        );
        assert_eq!(known.algorithm, dummy.algorithm);
        assert_eq!(known.version, dummy.version);
        assert_eq!(
            format!("{:?}", known.params),
            format!("{:?}", dummy.params),
            "same memory, time and parallelism cost"
        );
        assert!(!users.verify("nobody", "right"));
        assert!(users.verify("admin", "right"));
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
