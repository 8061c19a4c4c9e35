//! `shaddock init` and `shaddock admin-user`.

use std::path::{Path, PathBuf};

use super::args::{AdminUserArgs, InitArgs};
use super::client::{CREDENTIALS_FILE, write_credentials};
use super::exit::CliError;
use crate::master::auth::{self, AdminUser, Credentials};
use crate::master::config;
use crate::secret::ensure_cluster_secret;

/// The app template (`framework/cli/templates/app`), embedded in the binary:
/// (path in the new app, contents). `{{name}}`, `{{shaddock_dep}}` and
/// `{{shaddock_build_dep}}` are filled in.
const TEMPLATE: &[(&str, &str)] = &[
    (
        "Cargo.toml",
        include_str!("../templates/app/Cargo.toml.tmpl"),
    ),
    (".gitignore", include_str!("../templates/app/gitignore")),
    ("README.md", include_str!("../templates/app/README.md")),
    (
        "config/servers.json",
        include_str!("../templates/app/config/servers.json"),
    ),
    (
        "config/master.json",
        include_str!("../templates/app/config/master.json"),
    ),
    (
        "proto/room.proto",
        include_str!("../templates/app/proto/room.proto"),
    ),
    ("logs/.gitkeep", ""),
    (
        "shared/Cargo.toml",
        include_str!("../templates/app/shared/Cargo.toml.tmpl"),
    ),
    (
        "shared/src/lib.rs",
        include_str!("../templates/app/shared/src/lib.rs"),
    ),
    (
        "game-server/Cargo.toml",
        include_str!("../templates/app/game-server/Cargo.toml.tmpl"),
    ),
    (
        "game-server/build.rs",
        include_str!("../templates/app/game-server/build.rs"),
    ),
    (
        "game-server/src/main.rs",
        include_str!("../templates/app/game-server/src/main.rs"),
    ),
    (
        "game-server/src/servers/gate/handler/gate_handler.rs",
        include_str!("../templates/app/game-server/src/servers/gate/handler/gate_handler.rs"),
    ),
    (
        "game-server/src/servers/connector/handler/entry_handler.rs",
        include_str!("../templates/app/game-server/src/servers/connector/handler/entry_handler.rs"),
    ),
    (
        "game-server/src/servers/room/handler/room_handler.rs",
        include_str!("../templates/app/game-server/src/servers/room/handler/room_handler.rs"),
    ),
    (
        "game-server/src/servers/room/remote/room_remote.rs",
        include_str!("../templates/app/game-server/src/servers/room/remote/room_remote.rs"),
    ),
    (
        "web-server/Cargo.toml",
        include_str!("../templates/app/web-server/Cargo.toml.tmpl"),
    ),
    (
        "web-server/src/main.rs",
        include_str!("../templates/app/web-server/src/main.rs"),
    ),
    (
        "web-server/public/index.html",
        include_str!("../templates/app/web-server/public/index.html"),
    ),
    (
        "web-server/public/js/room.js",
        include_str!("../templates/app/web-server/public/js/room.js"),
    ),
    (
        "web-server/public/js/pomelo-client.js",
        include_str!("../templates/app/web-server/public/js/pomelo-client.js"),
    ),
];

/// The framework source this binary was built from (the default
/// dependency of a new app).
const FRAMEWORK_DIR: &str = env!("CARGO_MANIFEST_DIR");

/// How the new app depends on the framework.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FrameworkSource {
    Path(PathBuf),
    Version(String),
    Git(String),
}

impl FrameworkSource {
    fn from_args(a: &InitArgs) -> Result<Self, CliError> {
        if let Some(v) = &a.framework_version {
            return Ok(FrameworkSource::Version(v.clone()));
        }
        if let Some(g) = &a.framework_git {
            return Ok(FrameworkSource::Git(g.clone()));
        }
        let path = match &a.framework_path {
            Some(p) => p.clone(),
            // framework/cli → framework/ (runtime/, build-support/, …).
            None => PathBuf::from(FRAMEWORK_DIR).join(".."),
        };
        if !path.join("runtime/Cargo.toml").is_file() {
            if a.framework_path.is_none() {
                // An installed binary whose source is gone: use crates.io.
                return Ok(FrameworkSource::Version(
                    env!("CARGO_PKG_VERSION").to_string(),
                ));
            }
            return Err(CliError::error(format!(
                "--framework-path {}: no runtime/Cargo.toml there (give the repository's framework/ folder)",
                path.display()
            )));
        }
        let path = path
            .canonicalize()
            .map_err(|e| CliError::error(format!("{}: {e}", path.display())))?;
        Ok(FrameworkSource::Path(path))
    }

    /// `(shaddock = ..., shaddock-build = ...)` dependency specs.
    fn deps(&self) -> (String, String) {
        let q = |s: &str| serde_json::to_string(s).unwrap_or_default();
        match self {
            FrameworkSource::Path(p) => (
                format!(
                    "{{ path = {} }}",
                    q(&p.join("runtime").display().to_string())
                ),
                format!(
                    "{{ path = {} }}",
                    q(&p.join("build-support").display().to_string())
                ),
            ),
            FrameworkSource::Version(v) => (q(v), q(v)),
            FrameworkSource::Git(url) => (
                format!("{{ git = {} }}", q(url)),
                format!("{{ git = {} }}", q(url)),
            ),
        }
    }
}

/// A crate-name-safe app name: lower case letters, digits and `-`,
/// starting with a letter.
pub fn app_name(raw: &str) -> Result<String, CliError> {
    let name: String = raw
        .trim()
        .to_lowercase()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    let name = name.trim_matches('-').to_string();
    if name.is_empty() || !name.starts_with(|c: char| c.is_ascii_lowercase()) {
        return Err(CliError::error(format!(
            "`{raw}` does not make a crate name; pass --name with a name that starts with a letter"
        )));
    }
    Ok(name)
}

/// A template file with its placeholders filled in.
fn render(text: &str, name: &str, dep: &str, build_dep: &str) -> String {
    text.replace("{{name}}", name)
        .replace("{{shaddock_dep}}", dep)
        .replace("{{shaddock_build_dep}}", build_dep)
}

/// Writes the app into `dir` (which must be absent or empty) and creates
/// its admin user and development cluster secret. Returns the admin
/// password.
pub fn scaffold(dir: &Path, name: &str, source: &FrameworkSource) -> Result<String, CliError> {
    if dir.exists() {
        let empty = std::fs::read_dir(dir)
            .map_err(|e| CliError::error(format!("{}: {e}", dir.display())))?
            .next()
            .is_none();
        if !empty {
            return Err(CliError::error(format!(
                "{} exists and is not empty; choose a new folder",
                dir.display()
            )));
        }
    }
    let (dep, build_dep) = source.deps();
    for (path, text) in TEMPLATE {
        let text = render(text, name, &dep, &build_dep);
        let dest = dir.join(path);
        if let Some(parent) = dest.parent() {
            std::fs::create_dir_all(parent)
                .map_err(|e| CliError::error(format!("cannot create {}: {e}", parent.display())))?;
        }
        std::fs::write(&dest, text)
            .map_err(|e| CliError::error(format!("cannot write {}: {e}", dest.display())))?;
    }
    ensure_cluster_secret(&dir.join("config"), shaddock::config::DEFAULT_ENV)?;
    create_admin_user(&dir.join("config"), "admin")
}

/// `shaddock init <dir>`.
pub fn run(a: InitArgs) -> Result<(), CliError> {
    let raw_name = match &a.name {
        Some(n) => n.clone(),
        None => a
            .dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default(),
    };
    let name = app_name(&raw_name)?;
    let source = FrameworkSource::from_args(&a)?;
    let password = scaffold(&a.dir, &name, &source)?;
    let framework = match &source {
        FrameworkSource::Path(p) => format!("path {}", p.display()),
        FrameworkSource::Version(v) => format!("crates.io version {v}"),
        FrameworkSource::Git(g) => format!("git {g}"),
    };
    println!(
        "created app `{name}` in {} (framework: {framework})",
        a.dir.display()
    );
    println!();
    println!("admin user `admin`, password: {password}");
    println!("  shown once; config/adminUser.json keeps only its argon2 hash,");
    println!("  config/.admin-credentials (mode 0600, git-ignored) lets the CLI log in.");
    println!("cluster secret: config/cluster.json (mode 0600, git-ignored); servers refuse");
    println!("  cluster calls without it (production needs its own: see docs/security.md).");
    println!();
    println!("next:");
    println!("  cd {}", a.dir.display());
    println!("  shaddock start        # build and run every server; Ctrl-C stops");
    Ok(())
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

#[cfg(test)]
mod tests {
    use super::*;

    /// The app's browser client is the chat app's Pomelo client, copied
    /// (an installed `shaddock` has no repository to read it from). The
    /// copy must not drift: after an edit of the original, run
    /// `cp web-server/public/js/pomelo-client.js framework/cli/templates/app/web-server/public/js/`.
    #[test]
    fn template_pomelo_client_is_the_chat_apps() {
        let original = Path::new(FRAMEWORK_DIR).join("../../web-server/public/js/pomelo-client.js");
        let original = std::fs::read_to_string(&original)
            .unwrap_or_else(|e| panic!("{}: {e}", original.display()));
        let (_, copy) = TEMPLATE
            .iter()
            .find(|(path, _)| *path == "web-server/public/js/pomelo-client.js")
            .expect("the template has no pomelo-client.js");
        assert!(
            *copy == original,
            "framework/cli/templates/app/web-server/public/js/pomelo-client.js differs from \
             web-server/public/js/pomelo-client.js; copy the original over it"
        );
        // Written as is: no placeholder in it.
        assert_eq!(render(copy, "app", "dep", "build-dep"), original);
    }
}
