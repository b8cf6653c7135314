//! How a device trusts its hub over TLS: the public web's roots, plus the hub's own CA
//! certificate when the operator hands it over (`--hub-ca`; a hub that made its own CA
//! serves it at `/ca.pem` and prints its fingerprint).

use std::path::Path;
use std::sync::Arc;

pub use rustls::ClientConfig;

pub fn client_config(hub_ca: Option<&Path>) -> anyhow::Result<Arc<rustls::ClientConfig>> {
    let roots =
        threshold_tls_roots::roots_with(hub_ca).map_err(|e| anyhow::anyhow!("hub CA {e}"))?;
    let config = threshold_tls_roots::builder(roots)
        .map_err(|e| anyhow::anyhow!("{e}"))?
        .with_no_client_auth();
    Ok(Arc::new(config))
}
