//! HTTPS for the hub's API and web apps: rustls (no OpenSSL), with the operator's
//! certificate, or else a certificate authority made for this hub alone.
//!
//! Without `tls_cert_file` the hub makes, once, in `<data_dir>/tls/`: a local CA
//! (`ca.pem`, its key `ca.key`, 0600) and a server certificate signed by it for the
//! hub's names (`localhost`, the machine's host name, 127.0.0.1, ::1 and every name in
//! `tls_names`). A phone trusts the hub by installing `ca.pem` (served at `/ca.pem`)
//! after checking its SHA-256 fingerprint, which the hub prints at start and shows on
//! the owner's pairing screen.

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use sha2::{Digest, Sha256};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_rustls::server::TlsStream;

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("{setting} {path}: {message}")]
    File {
        setting: &'static str,
        path: String,
        message: String,
    },
    #[error("cannot make the hub's local certificate authority: {0}")]
    Generate(String),
    #[error("tls_cert_file and tls_key_file do not make a usable certificate: {0}")]
    Unusable(String),
}

/// What the hub serves with, and what an owner checks on a phone.
#[derive(Clone)]
pub struct Served {
    pub config: Arc<rustls::ServerConfig>,
    /// The local CA's certificate (PEM), when the hub made its own.
    pub ca_pem: Option<String>,
    /// SHA-256 of the CA certificate (or of the operator's leaf certificate), as
    /// colon-separated upper-case hex.
    pub fingerprint: String,
}

impl std::fmt::Debug for Served {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Served({})", self.fingerprint)
    }
}

pub fn fingerprint(der: &[u8]) -> String {
    Sha256::digest(der)
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(":")
}

fn file_err(setting: &'static str, path: &Path, message: impl ToString) -> TlsError {
    TlsError::File {
        setting,
        path: path.display().to_string(),
        message: message.to_string(),
    }
}

/// The operator's certificate chain and key (PEM files).
pub fn from_files(cert: &Path, key: &Path) -> Result<Served, TlsError> {
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .map_err(|e| file_err("tls_cert_file", cert, e))?
        .collect::<Result<_, _>>()
        .map_err(|e| file_err("tls_cert_file", cert, e))?;
    let Some(leaf) = chain.first() else {
        return Err(file_err(
            "tls_cert_file",
            cert,
            "no certificate in the file",
        ));
    };
    let fp = fingerprint(leaf);
    crate::secrets::check_private(key).map_err(|e| file_err("tls_key_file", key, e))?;
    let key_der =
        PrivateKeyDer::from_pem_file(key).map_err(|e| file_err("tls_key_file", key, e))?;
    Ok(Served {
        config: server_config(chain, key_der)?,
        ca_pem: None,
        fingerprint: fp,
    })
}

fn server_config(
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
) -> Result<Arc<rustls::ServerConfig>, TlsError> {
    let mut c = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| TlsError::Unusable(e.to_string()))?
    .with_no_client_auth()
    .with_single_cert(chain, key)
    .map_err(|e| TlsError::Unusable(e.to_string()))?;
    c.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(c))
}

/// The names the local certificate is for.
pub fn default_names(extra: &[String]) -> Vec<String> {
    let mut names = vec![
        "localhost".to_owned(),
        "127.0.0.1".to_owned(),
        "::1".to_owned(),
    ];
    if let Ok(h) = std::fs::read_to_string("/etc/hostname") {
        let h = h.trim();
        if !h.is_empty() {
            names.push(h.to_owned());
            names.push(format!("{h}.local"));
        }
    }
    for n in extra {
        if !names.contains(n) {
            names.push(n.clone());
        }
    }
    names
}

fn write_private(path: &Path, text: &str) -> Result<(), TlsError> {
    crate::secrets::create_private(path, text.as_bytes()).map_err(|e| file_err("data_dir", path, e))
}

/// The hub's own CA and server certificate in `dir`, made on first use.
pub fn local_ca(dir: &Path, names: &[String]) -> Result<Served, TlsError> {
    let paths = |n: &str| -> PathBuf { dir.join(n) };
    let (ca_pem, cert_pem, key_pem) = (paths("ca.pem"), paths("cert.pem"), paths("key.pem"));
    if !cert_pem.exists() {
        std::fs::create_dir_all(dir).map_err(|e| file_err("data_dir", dir, e))?;
        let gen = |e: rcgen::Error| TlsError::Generate(e.to_string());
        let ca_key = rcgen::KeyPair::generate().map_err(gen)?;
        let mut ca = rcgen::CertificateParams::new(Vec::<String>::new()).map_err(gen)?;
        ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Constrained(0));
        ca.distinguished_name
            .push(rcgen::DnType::CommonName, "Threshold hub local CA");
        ca.key_usages = vec![
            rcgen::KeyUsagePurpose::KeyCertSign,
            rcgen::KeyUsagePurpose::CrlSign,
        ];
        let ca_cert = ca.self_signed(&ca_key).map_err(gen)?;
        let key = rcgen::KeyPair::generate().map_err(gen)?;
        let mut leaf = rcgen::CertificateParams::new(names.to_vec()).map_err(gen)?;
        leaf.distinguished_name
            .push(rcgen::DnType::CommonName, "Threshold hub");
        leaf.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth];
        let leaf_cert = leaf.signed_by(&key, &ca_cert, &ca_key).map_err(gen)?;
        write_private(&paths("ca.key"), &ca_key.serialize_pem())?;
        write_private(&key_pem, &key.serialize_pem())?;
        std::fs::write(&ca_pem, ca_cert.pem()).map_err(|e| file_err("data_dir", &ca_pem, e))?;
        // The chain a client is sent: the server certificate, then the CA.
        std::fs::write(&cert_pem, format!("{}{}", leaf_cert.pem(), ca_cert.pem()))
            .map_err(|e| file_err("data_dir", &cert_pem, e))?;
    }
    let ca_text = std::fs::read_to_string(&ca_pem).map_err(|e| file_err("data_dir", &ca_pem, e))?;
    let ca_der = CertificateDer::from_pem_slice(ca_text.as_bytes())
        .map_err(|e| file_err("data_dir", &ca_pem, e))?;
    let mut served = from_files(&cert_pem, &key_pem)?;
    served.fingerprint = fingerprint(&ca_der);
    served.ca_pem = Some(ca_text);
    Ok(served)
}

/// Accepts TCP connections and completes TLS handshakes off the accept loop, so a
/// slow or silent client holds up only itself; axum serves what comes out.
pub struct TlsListener {
    local: SocketAddr,
    ready: mpsc::Receiver<(TlsStream<TcpStream>, SocketAddr)>,
}

/// A handshake not finished by then is dropped (HTTPS and MQTT over TLS alike).
pub const HANDSHAKE_WITHIN: std::time::Duration = std::time::Duration::from_secs(10);

impl TlsListener {
    pub fn new(listener: TcpListener, config: Arc<rustls::ServerConfig>) -> std::io::Result<Self> {
        let local = listener.local_addr()?;
        let acceptor = tokio_rustls::TlsAcceptor::from(config);
        let (tx, ready) = mpsc::channel(64);
        tokio::spawn(async move {
            loop {
                let (tcp, peer) = match listener.accept().await {
                    Ok(c) => c,
                    Err(e) => {
                        tracing::warn!(error = %e, "HTTPS listener cannot accept; pausing");
                        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                        continue;
                    }
                };
                if tx.is_closed() {
                    return;
                }
                let (acceptor, tx) = (acceptor.clone(), tx.clone());
                tokio::spawn(async move {
                    match tokio::time::timeout(HANDSHAKE_WITHIN, acceptor.accept(tcp)).await {
                        Ok(Ok(tls)) => {
                            let _ = tx.send((tls, peer)).await;
                        }
                        Ok(Err(e)) => {
                            tracing::debug!(peer = %peer.ip(), error = %e, "TLS handshake failed")
                        }
                        Err(_) => tracing::debug!(peer = %peer.ip(), "TLS handshake timed out"),
                    }
                });
            }
        });
        Ok(TlsListener { local, ready })
    }
}

impl axum::serve::Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.ready.recv().await {
            Some(c) => c,
            // The accept task ended: nothing more will come.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> std::io::Result<SocketAddr> {
        Ok(self.local)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_local_ca_is_made_once_with_private_keys_and_reused() {
        let dir = std::env::temp_dir().join(format!("thr-tls-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let names = vec!["localhost".to_owned(), "hub.lan".to_owned()];
        let a = local_ca(&dir, &names).unwrap();
        let b = local_ca(&dir, &names).unwrap();
        assert_eq!(a.fingerprint, b.fingerprint, "made once, then reused");
        assert_eq!(a.fingerprint.len(), 32 * 3 - 1);
        assert!(a.ca_pem.as_deref().unwrap().contains("BEGIN CERTIFICATE"));
        #[cfg(unix)]
        for k in ["ca.key", "key.pem"] {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.join(k)).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600, "{k}");
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn bad_files_name_the_setting() {
        let dir = std::env::temp_dir().join(format!("thr-tls-bad-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let cert = dir.join("c.pem");
        std::fs::write(&cert, "not a certificate").unwrap();
        let e = from_files(&cert, &dir.join("missing.key")).unwrap_err();
        assert!(e.to_string().starts_with("tls_cert_file"), "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
