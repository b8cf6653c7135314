//! How a device trusts its hub over TLS: the public web's roots, plus the hub's own CA
//! certificate when the operator hands it over (`--hub-ca`; a hub that made its own CA
//! serves it at `/ca.pem` and prints its fingerprint).

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;
use std::path::Path;
use std::sync::Arc;

pub use rustls::ClientConfig;

pub fn client_config(hub_ca: Option<&Path>) -> anyhow::Result<Arc<rustls::ClientConfig>> {
    let mut roots = rustls::RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
    };
    if let Some(path) = hub_ca {
        let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(path)
            .and_then(|i| i.collect::<Result<_, _>>())
            .map_err(|e| anyhow::anyhow!("hub CA {}: {e}", path.display()))?;
        anyhow::ensure!(
            !certs.is_empty(),
            "hub CA {}: no certificate in the file",
            path.display()
        );
        for c in certs {
            roots
                .add(c)
                .map_err(|e| anyhow::anyhow!("hub CA {}: {e}", path.display()))?;
        }
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| anyhow::anyhow!("{e}"))?
    .with_root_certificates(roots)
    .with_no_client_auth();
    Ok(Arc::new(config))
}
