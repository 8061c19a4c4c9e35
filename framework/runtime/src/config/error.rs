//! Configuration errors. Each one names the file, the server and the field it
//! is about and says what to do, so a user can fix the config from the log
//! line alone.

/// Why a configuration could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file exists but could not be read (or a required file is missing).
    #[error(
        "cannot read {file}: {source}; check the config directory (run from the app root or pass its path)"
    )]
    Read {
        file: String,
        #[source]
        source: std::io::Error,
    },
    /// The file is not JSON, or not shaped as the format requires.
    #[error("{file}: {problem}")]
    Json { file: String, problem: String },
    /// The requested environment has no section in the file.
    #[error(
        "{file}: no environment `{env}` (the file has: {available}); pass --env with one of them \
         (or set SHADDOCK_ENV), or add a \"{env}\" section to {file}"
    )]
    UnknownEnvironment {
        file: String,
        env: String,
        available: String,
    },
    /// One field of one server (or of the master) is wrong.
    #[error("{file} [{env}] {server}, field `{field}`: {problem}")]
    Invalid {
        file: String,
        env: String,
        /// `server "connector-server-1"`, or `server #2 of type "chat"`
        /// when the entry has no usable id, or `master`.
        server: String,
        field: String,
        problem: String,
    },
    /// A server type in servers.json that the app registered nothing for.
    #[error(
        "{file} [{env}] server \"{server_id}\", field `serverType`: unknown server type \
         `{server_type}` (the key the server is listed under); this app knows {known}; register \
         handlers for `{server_type}` in the app or fix the key in {file}"
    )]
    UnknownServerType {
        file: String,
        env: String,
        server_id: String,
        server_type: String,
        known: String,
    },
    /// An environment-variable override that cannot be applied.
    #[error("environment variable {var}: {problem}")]
    Override { var: String, problem: String },
}
