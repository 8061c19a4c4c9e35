//! Command-line options of the `web-server` binary.
//!
//! Every option has a default so that `shaddock start` (and a developer) can
//! run the binary bare: port 3001 like Pomelo's demo web server, loopback
//! only, and the crate's own `public/` folder.

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use clap::Parser;

/// Serves the browser chat client (HTML, CSS and the ES-module Pomelo client).
#[derive(Debug, Parser)]
#[command(name = "web-server", version, about)]
pub struct Args {
    /// TCP port to listen on (0 picks a free one; the chosen address is
    /// printed on stdout as `listening on http://HOST:PORT`).
    #[arg(long, env = "SHADDOCK_WEB_PORT", default_value_t = 3001)]
    pub port: u16,

    /// Address to bind. Loopback by default: a demo server should not be
    /// reachable from the network unless asked for.
    #[arg(long, default_value = "127.0.0.1")]
    pub host: IpAddr,

    /// Folder of static files to serve (default: web-server/public).
    #[arg(long)]
    pub public: Option<PathBuf>,

    /// Environment whose gates (servers.json) the page may connect to; the
    /// master sets SHADDOCK_ENV for the servers it starts.
    #[arg(long, env = "SHADDOCK_ENV", default_value = "development")]
    pub env: String,

    /// Folder holding servers.json (relative to the working directory,
    /// which is the app's folder under `shaddock start`).
    #[arg(long, default_value = "config")]
    pub config: PathBuf,

    /// Server type of the gates in servers.json.
    #[arg(long, default_value = "gate")]
    pub gate_type: String,

    /// One more gate the page may use, as HOST:PORT (repeatable).
    #[arg(long = "gate", value_name = "HOST:PORT")]
    pub gates: Vec<String>,

    /// The master's admin API (`host:port`), which the /admin dashboard
    /// asks; the master sets SHADDOCK_MASTER for the servers it starts.
    #[arg(long, env = "SHADDOCK_MASTER")]
    pub master: Option<String>,

    /// Folder for `web-server.log` (created if missing).
    #[arg(long, default_value = "logs")]
    pub log_dir: PathBuf,
}

impl Args {
    /// The folder to serve: `--public` if given, otherwise the first existing
    /// of `<crate dir>/public` (the source tree this binary was built from),
    /// `./web-server/public` (run from the workspace root) and `./public`.
    pub fn public_dir(&self) -> anyhow::Result<PathBuf> {
        if let Some(dir) = &self.public {
            if !dir.is_dir() {
                bail!(
                    "--public {}: not a directory; pass the folder that holds index.html",
                    dir.display()
                );
            }
            return dir
                .canonicalize()
                .with_context(|| format!("resolving --public {}", dir.display()));
        }
        let candidates = [
            Path::new(env!("CARGO_MANIFEST_DIR")).join("public"),
            PathBuf::from("web-server/public"),
            PathBuf::from("public"),
        ];
        for dir in &candidates {
            if dir.join("index.html").is_file() {
                return dir
                    .canonicalize()
                    .with_context(|| format!("resolving {}", dir.display()));
            }
        }
        bail!(
            "no public folder found (looked for index.html in {}); pass --public <dir>",
            candidates
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        )
    }
}
