//! App configuration: `config/servers.json` (the topology) and `config/master.json`.
//!
//! The field names are Pomelo's (§7.6 of `shared/pomelo-protocol.md`) so a
//! Pomelo user can bring their servers.json across unchanged.

use serde::{Deserialize, Serialize};

/// One server of the topology: one entry of a server-type list in servers.json.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServerInfo {
    /// Unique server id, e.g. `connector-server-1`.
    pub id: String,
    /// The server type (the key of the list it appears in), e.g. `connector`.
    #[serde(rename = "serverType")]
    pub server_type: String,
    /// Bind host for both ports; also what the gate hands to clients.
    pub host: String,
    /// gRPC (cluster) port. A server without one hosts no RPC server and
    /// cannot receive forwarded requests, pushes or remote calls.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    /// Client-facing WebSocket port (frontends only).
    #[serde(default, rename = "clientPort", skip_serializing_if = "Option::is_none")]
    pub client_port: Option<u16>,
    /// Whether clients connect to this server.
    #[serde(default)]
    pub frontend: bool,
    /// Cap on concurrent client connections (frontends).
    #[serde(default, rename = "max-connections", skip_serializing_if = "Option::is_none")]
    pub max_connections: Option<usize>,
    /// Whether the master restarts this server when it crashes.
    #[serde(default, rename = "auto-restart", skip_serializing_if = "Option::is_none")]
    pub auto_restart: Option<bool>,
    /// Extra command-line arguments for the server process.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub args: Vec<String>,
}
