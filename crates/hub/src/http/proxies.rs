//! The hub's trusted reverse proxies, held in its state (`http::forwarded` decides
//! what a request from one means; `http::client` wires it into every request).

use super::forwarded::{self, Client, Malformed, TrustedProxies};
use axum::http::{header, HeaderMap};
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, Ordering};

/// The trusted proxies, and whether a malformed header from one was logged yet.
#[derive(Debug, Default)]
pub struct Proxies {
    pub trusted: TrustedProxies,
    warned: AtomicBool,
}

impl Proxies {
    pub fn new(trusted: TrustedProxies) -> Proxies {
        Proxies {
            trusted,
            warned: AtomicBool::new(false),
        }
    }

    /// The client behind a request from `peer` (`None`: not recorded).
    pub fn client(
        &self,
        peer: Option<IpAddr>,
        own_tls: bool,
        headers: &HeaderMap,
        metrics: &crate::metrics::Metrics,
    ) -> Client {
        let Some(peer) = peer else {
            return Client {
                addr: None,
                https: own_tls,
                host: headers
                    .get(header::HOST)
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_owned),
                via_proxy: false,
            };
        };
        let r = forwarded::resolve(peer, own_tls, headers, &self.trusted);
        if let Some(m) = r.malformed {
            self.malformed(m, peer, metrics);
        }
        r.client
    }

    /// Counted every time, logged the first time only (a misconfigured proxy would
    /// otherwise write a line per request).
    fn malformed(&self, m: Malformed, peer: IpAddr, metrics: &crate::metrics::Metrics) {
        metrics.forwarded_malformed(m.header());
        if !self.warned.swap(true, Ordering::Relaxed) {
            tracing::warn!(
                header = m.header(),
                proxy = %peer,
                "a trusted proxy sent a malformed forwarding header: it was ignored (logged once; counted in threshold_http_forwarded_malformed)"
            );
        }
    }
}
