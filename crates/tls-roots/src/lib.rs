//! Which servers Threshold's TLS clients trust, shared by the hub (webhooks, Web Push,
//! an external broker, Home Assistant's broker) and the device agent (its hub): the
//! public web's roots (webpki-roots, so no system store is trusted by accident) plus,
//! when given, the CA certificates of one PEM file (a hub's own CA, a private PKI).

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// A CA file that cannot be trusted as given. Its text names the file; the caller
/// puts the setting that named it in front.
#[derive(Debug, thiserror::Error)]
pub enum CaFileError {
    #[error("{}: {source}", path.display())]
    Unreadable {
        path: PathBuf,
        source: rustls::pki_types::pem::Error,
    },
    #[error("{}: no certificate in the file", path.display())]
    Empty { path: PathBuf },
    #[error("{}: {source}", path.display())]
    Refused {
        path: PathBuf,
        source: rustls::Error,
    },
}

/// The public web's roots, and those of `extra_ca` when given.
pub fn roots_with(extra_ca: Option<&Path>) -> Result<rustls::RootCertStore, CaFileError> {
    let mut roots = rustls::RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
    };
    if let Some(path) = extra_ca {
        let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(path)
            .and_then(|i| i.collect::<Result<_, _>>())
            .map_err(|source| CaFileError::Unreadable {
                path: path.to_owned(),
                source,
            })?;
        if certs.is_empty() {
            return Err(CaFileError::Empty {
                path: path.to_owned(),
            });
        }
        for c in certs {
            roots.add(c).map_err(|source| CaFileError::Refused {
                path: path.to_owned(),
                source,
            })?;
        }
    }
    Ok(roots)
}

/// A client configuration builder on ring with the safe protocol versions, trusting
/// `roots`; the caller chooses whether it presents a certificate.
pub fn builder(
    roots: rustls::RootCertStore,
) -> Result<
    rustls::ConfigBuilder<rustls::ClientConfig, rustls::client::WantsClientCert>,
    rustls::Error,
> {
    Ok(rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()?
    .with_root_certificates(roots))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp(name: &str, body: &[u8]) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("threshold-tls-roots-{}-{name}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("ca.pem");
        std::fs::write(&p, body).unwrap();
        p
    }

    #[test]
    fn one_ca_file_is_added_to_the_public_roots() {
        let public = roots_with(None).unwrap().len();
        let ca = rcgen::generate_simple_self_signed(vec!["hub.local".to_owned()]).unwrap();
        let p = temp("good", ca.cert.pem().as_bytes());
        assert_eq!(roots_with(Some(&p)).unwrap().len(), public + 1);
        assert!(builder(roots_with(Some(&p)).unwrap()).is_ok());
    }

    #[test]
    fn a_bad_ca_file_is_named_with_its_fault() {
        let empty = temp("empty", b"not a certificate\n");
        let e = roots_with(Some(&empty)).unwrap_err();
        assert!(matches!(e, CaFileError::Empty { .. }), "{e}");
        assert!(e.to_string().starts_with(&empty.display().to_string()));
        assert!(e.to_string().ends_with("no certificate in the file"));

        let missing = empty.with_file_name("missing.pem");
        let e = roots_with(Some(&missing)).unwrap_err();
        assert!(matches!(e, CaFileError::Unreadable { .. }), "{e}");
        assert!(e.to_string().contains("missing.pem"));
    }
}
