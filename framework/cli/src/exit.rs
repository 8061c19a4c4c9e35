//! Exit codes of the `shaddock` binary. Scripts can rely on them; they are
//! listed in `docs/cli.md`.

/// Something failed (bad config, build failed, unknown server id, ...).
pub const ERROR: u8 = 1;
/// Bad command line (clap's own code).
pub const USAGE: u8 = 2;
/// No master answers at the configured address.
pub const NO_MASTER: u8 = 3;
/// The master refused the admin credentials (or none were found).
pub const AUTH: u8 = 4;
/// One or more servers failed to start (their errors are printed).
pub const SERVERS_FAILED: u8 = 5;

/// An error with the exit code it maps to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CliError {
    pub code: u8,
    pub message: String,
}

impl CliError {
    pub fn new(code: u8, message: impl Into<String>) -> Self {
        CliError {
            code,
            message: message.into(),
        }
    }

    /// A generic failure (exit code 1).
    pub fn error(message: impl Into<String>) -> Self {
        CliError::new(ERROR, message)
    }
}

impl From<anyhow::Error> for CliError {
    fn from(e: anyhow::Error) -> Self {
        CliError::error(format!("{e:#}"))
    }
}

impl std::fmt::Display for CliError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for CliError {}
