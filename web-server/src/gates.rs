//! The gates the chat page may connect to.
//!
//! The page takes its gate from `?gate=HOST:PORT` (tests run clusters on
//! free ports). Unchecked, a link to this site with `?gate=evil.example:443`
//! would send the user's name, room and messages to any host. So the page
//! only connects to a gate this server lists at `/gates.json`: the servers
//! of type `gate` (`--gate-type`) in `<config>/servers.json` for `--env`,
//! plus any `--gate HOST:PORT`. The list is read once at start; restart the
//! web server after adding a gate.

use std::path::Path;

use anyhow::Context;
use shaddock::config::Topology;

/// `host:port` of every allowed gate, servers.json order first, then
/// `extra`. An IPv6 host is bracketed (`[::1]:3014`), as the page writes it.
pub fn load(
    config_dir: &Path,
    env: &str,
    gate_type: &str,
    extra: &[String],
) -> anyhow::Result<Vec<String>> {
    let mut gates = Vec::new();
    if config_dir.join("servers.json").is_file() {
        let topology = Topology::load(config_dir, env).with_context(|| {
            format!(
                "reading the gates from {}/servers.json (env {env}); fix the file or pass --config",
                config_dir.display()
            )
        })?;
        gates.extend(
            topology
                .servers_of_type(gate_type)
                .into_iter()
                .filter_map(|s| Some(host_port(&s.host, s.client_port?))),
        );
    } else {
        tracing::warn!(
            config = %config_dir.display(),
            "no servers.json: the page may only use gates given with --gate"
        );
    }
    for gate in extra {
        if !gates.contains(gate) {
            gates.push(gate.clone());
        }
    }
    if gates.is_empty() {
        tracing::warn!("no gate allowed: the page falls back to its own host name and port 3014");
    }
    Ok(gates)
}

/// Whether the gates serve `wss://`: their type has a TLS certificate in
/// `<config>/connector.json` for `env`. The page then uses `wss://` for the
/// gate and for the connector the gate names (every frontend of a
/// deployment is expected to serve TLS, or none).
pub fn secure(config_dir: &Path, env: &str, gate_type: &str) -> anyhow::Result<bool> {
    let limits = shaddock::config::ConnectorLimits::load(config_dir, env, gate_type)
        .with_context(|| format!("reading {}/connector.json", config_dir.display()))?;
    Ok(limits.tls_cert.is_some())
}

/// `host:metricsPort` of every server of servers.json that has one (what
/// the dashboard scrapes). Empty without servers.json.
pub fn metrics_endpoints(
    config_dir: &Path,
    env: &str,
) -> anyhow::Result<std::collections::HashMap<String, String>> {
    if !config_dir.join("servers.json").is_file() {
        return Ok(Default::default());
    }
    let topology = Topology::load(config_dir, env)
        .with_context(|| format!("reading {}/servers.json (env {env})", config_dir.display()))?;
    Ok(topology
        .servers
        .iter()
        .filter_map(|s| Some((s.id.clone(), host_port(&s.host, s.metrics_port?))))
        .collect())
}

fn host_port(host: &str, port: u16) -> String {
    if host.contains(':') && !host.starts_with('[') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv6_hosts_are_bracketed() {
        assert_eq!(host_port("127.0.0.1", 3014), "127.0.0.1:3014");
        assert_eq!(host_port("::1", 3014), "[::1]:3014");
        assert_eq!(host_port("chat.example", 443), "chat.example:443");
    }
}
