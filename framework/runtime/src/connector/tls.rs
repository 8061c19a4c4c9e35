//! TLS on the client port: `wss://` (and TLS under the raw protocol) with
//! rustls.
//!
//! The certificate chain and the private key are PEM files named in
//! `config/connector.json` (`tls-cert`, `tls-key`, per frontend type). They
//! are re-read when either file changes ([`Tls::reload_if_changed`], which
//! the acceptor calls every [`CHECK_EVERY`]): a renewed certificate (certbot,
//! a secret store) is served to the next handshake, without a restart. A
//! file that does not parse keeps the old certificate and says why.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, SystemTime};

use rustls::ServerConfig;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use tokio::net::TcpStream;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;

/// How often the certificate files are checked for a change.
pub const CHECK_EVERY: Duration = Duration::from_secs(2);

/// Where a frontend's certificate and key are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    /// PEM: the server certificate first, then its chain.
    pub cert: PathBuf,
    /// PEM: the private key (PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
}

/// A frontend's TLS: the acceptor and the certificate it serves.
#[derive(Clone)]
pub struct Tls {
    acceptor: TlsAcceptor,
    current: Arc<Current>,
}

impl std::fmt::Debug for Tls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tls")
            .field("files", &self.current.files)
            .finish()
    }
}

/// The certificate in use, swapped when the files change.
struct Current {
    files: TlsFiles,
    key: RwLock<Arc<CertifiedKey>>,
    /// Modification times of (cert, key) when last loaded.
    stamps: Mutex<(Option<SystemTime>, Option<SystemTime>)>,
}

impl std::fmt::Debug for Current {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Current")
            .field("files", &self.files)
            .finish()
    }
}

impl ResolvesServerCert for Current {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(match self.key.read() {
            Ok(k) => k.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        })
    }
}

fn modified(path: &Path) -> Option<SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

/// Reads and checks the PEM files.
fn load_key(files: &TlsFiles) -> Result<CertifiedKey, String> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&files.cert)
        .map_err(|e| format!("cannot read the certificate {}: {e}", files.cert.display()))?
        .collect::<Result<_, _>>()
        .map_err(|e| format!("{}: not a PEM certificate chain: {e}", files.cert.display()))?;
    if certs.is_empty() {
        return Err(format!(
            "{}: no certificate in it (expected PEM `BEGIN CERTIFICATE` blocks)",
            files.cert.display()
        ));
    }
    let key = PrivateKeyDer::from_pem_file(&files.key).map_err(|e| {
        format!(
            "{}: no usable private key (PEM PKCS#8, PKCS#1 or SEC1): {e}",
            files.key.display()
        )
    })?;
    let signing = rustls::crypto::ring::sign::any_supported_type(&key)
        .map_err(|e| format!("{}: unsupported private key: {e}", files.key.display()))?;
    let key = CertifiedKey::new(certs, signing);
    key.keys_match().map_err(|e| {
        format!(
            "{} and {} do not belong together: {e}",
            files.cert.display(),
            files.key.display()
        )
    })?;
    Ok(key)
}

impl Tls {
    /// Loads the files; an error says which file is wrong and how.
    pub fn load(files: TlsFiles) -> Result<Self, String> {
        let stamps = (modified(&files.cert), modified(&files.key));
        let key = load_key(&files)?;
        let current = Arc::new(Current {
            files,
            key: RwLock::new(Arc::new(key)),
            stamps: Mutex::new(stamps),
        });
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| format!("TLS setup failed: {e}"))?
            .with_no_client_auth()
            .with_cert_resolver(current.clone());
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Tls {
            acceptor: TlsAcceptor::from(Arc::new(config)),
            current,
        })
    }

    /// The files served.
    pub fn files(&self) -> &TlsFiles {
        &self.current.files
    }

    /// Re-reads the files if either changed since the last load. `Ok(true)`
    /// when a new certificate is now served; on an error the old one stays.
    pub fn reload_if_changed(&self) -> Result<bool, String> {
        let files = &self.current.files;
        let now = (modified(&files.cert), modified(&files.key));
        {
            let stamps = self
                .current
                .stamps
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            if *stamps == now {
                return Ok(false);
            }
        }
        let result = load_key(files);
        // Remember the stamps either way: a broken file is reported once,
        // not every check, and tried again when it changes.
        *self
            .current
            .stamps
            .lock()
            .unwrap_or_else(|p| p.into_inner()) = now;
        let key = result?;
        *self.current.key.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(key);
        Ok(true)
    }

    /// The TLS handshake on an accepted connection.
    pub async fn accept(&self, tcp: TcpStream) -> std::io::Result<TlsStream<TcpStream>> {
        self.acceptor.accept(tcp).await
    }
}
