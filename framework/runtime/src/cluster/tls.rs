//! Optional TLS on the cluster ports, mutual: every server presents the
//! cluster's certificate and accepts only peers whose certificate the
//! cluster's CA signed.
//!
//! The cluster secret ([`auth`](super::auth)) authenticates calls; it does
//! not hide them, and whoever can read cluster traffic can read it. With
//! TLS on, the traffic (and the secret) is encrypted, and a peer without a
//! certificate of the cluster's CA cannot even open a connection.
//!
//! One certificate for the whole cluster, issued for `server-name`
//! (default [`DEFAULT_SERVER_NAME`]): servers dial each other by address
//! but verify that name, so no certificate has to list every host.

use tonic::transport::{Certificate, ClientTlsConfig, Identity, ServerTlsConfig};

use crate::config::ClusterTlsFiles;

/// The name every cluster certificate is checked against by default.
pub const DEFAULT_SERVER_NAME: &str = "shaddock-cluster";

/// Both sides of the cluster's TLS.
#[derive(Debug, Clone)]
pub struct ClusterTls {
    /// What this server's RPC endpoint requires.
    pub server: ServerTlsConfig,
    /// What this server's calls to the others present and check.
    pub client: ClientTlsConfig,
}

impl ClusterTls {
    /// Reads the PEM files; an error names the file.
    pub fn load(files: &ClusterTlsFiles) -> Result<Self, String> {
        let read = |path: &std::path::Path, what: &str| {
            std::fs::read(path).map_err(|e| {
                format!(
                    "cannot read the cluster TLS {what} {}: {e} (config/cluster.json `tls`)",
                    path.display()
                )
            })
        };
        let cert = read(&files.cert, "certificate")?;
        let key = read(&files.key, "key")?;
        let ca = read(&files.ca, "CA certificate")?;
        for (bytes, path, marker) in [
            (&cert, &files.cert, "CERTIFICATE"),
            (&key, &files.key, "PRIVATE KEY"),
            (&ca, &files.ca, "CERTIFICATE"),
        ] {
            if !String::from_utf8_lossy(bytes).contains(marker) {
                return Err(format!("{}: not PEM (no `{marker}` block)", path.display()));
            }
        }
        let identity = Identity::from_pem(&cert, &key);
        let ca = Certificate::from_pem(&ca);
        let name = files
            .server_name
            .clone()
            .unwrap_or_else(|| DEFAULT_SERVER_NAME.to_owned());
        Ok(ClusterTls {
            server: ServerTlsConfig::new()
                .identity(identity.clone())
                .client_ca_root(ca.clone()),
            client: ClientTlsConfig::new()
                .ca_certificate(ca)
                .identity(identity)
                .domain_name(name),
        })
    }
}
