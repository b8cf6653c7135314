//! The hub's TLS client for what it sends out (webhooks, Web Push) and the brokers it
//! connects to: the public web's roots plus one CA file the operator names for
//! receivers on a private PKI (`outbound_ca_file`; `threshold-tls-roots`).

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;
use std::path::Path;
use std::sync::Arc;

/// The client configuration every outbound HTTPS request uses.
pub fn client_config(extra_ca: Option<&Path>) -> Result<Arc<rustls::ClientConfig>, String> {
    with_client_cert(extra_ca, "outbound_ca_file", None)
}

/// The same, naming the setting that gave `extra_ca` in errors, and presenting a
/// client certificate (chain and key PEM files) when one is given.
pub fn with_client_cert(
    extra_ca: Option<&Path>,
    setting: &str,
    client: Option<(&Path, &Path)>,
) -> Result<Arc<rustls::ClientConfig>, String> {
    let roots = threshold_tls_roots::roots_with(extra_ca).map_err(|e| format!("{setting} {e}"))?;
    let config = threshold_tls_roots::builder(roots).map_err(|e| e.to_string())?;
    let config = match client {
        None => config.with_no_client_auth(),
        Some((cert, key)) => {
            let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
                .and_then(|i| i.collect::<Result<_, _>>())
                .map_err(|e| format!("mqtt_client_cert_file {}: {e}", cert.display()))?;
            crate::secrets::check_private(key).map_err(|e| format!("mqtt_client_key_file: {e}"))?;
            let key_der = rustls::pki_types::PrivateKeyDer::from_pem_file(key)
                .map_err(|e| format!("mqtt_client_key_file {}: {e}", key.display()))?;
            config
                .with_client_auth_cert(chain, key_der)
                .map_err(|e| format!("mqtt_client_cert_file: {e}"))?
        }
    };
    Ok(Arc::new(config))
}

/// A ureq agent on that configuration, with `timeout` and no redirects (a receiver
/// cannot send the hub's signed request elsewhere).
pub fn agent(tls: &Arc<rustls::ClientConfig>, timeout: std::time::Duration) -> ureq::Agent {
    ureq::AgentBuilder::new()
        .tls_config(tls.clone())
        .timeout(timeout)
        .redirects(0)
        .build()
}
