//! The client of every request, resolved once before any handler runs
//! (`http::forwarded` decides; this wires it in): the sign-in throttle's source, the
//! audit's address, the origin check's host, the session cookie's `Secure` and HSTS
//! all read the same [`Client`].

pub use super::forwarded::Client;
use super::forwarded::{self, Malformed, TrustedProxies};
use crate::state::AppState;
use axum::extract::{ConnectInfo, FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, HeaderValue};
use axum::middleware::Next;
use axum::response::Response;
use std::net::{IpAddr, SocketAddr};
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

/// Resolve the request's [`Client`] into its extensions; answers to a client that
/// came over TLS (the hub's own or a trusted proxy's) carry Strict-Transport-Security.
pub async fn resolve(State(st): State<AppState>, mut req: Request, next: Next) -> Response {
    let client = client_of(&st, req.extensions(), req.headers());
    let https = client.https;
    req.extensions_mut().insert(client);
    let mut resp = next.run(req).await;
    if https {
        resp.headers_mut().insert(
            header::STRICT_TRANSPORT_SECURITY,
            HeaderValue::from_static(super::HSTS),
        );
    }
    resp
}

fn client_of(st: &AppState, ext: &axum::http::Extensions, headers: &HeaderMap) -> Client {
    let peer = ext.get::<ConnectInfo<SocketAddr>>().map(|c| c.0.ip());
    st.proxies
        .client(peer, st.config.https(), headers, &st.metrics)
}

/// The request's client, as [`resolve`] found it (or found now, on a router without
/// that layer).
impl FromRequestParts<AppState> for Client {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, st: &AppState) -> Result<Self, Self::Rejection> {
        Ok(match parts.extensions.get::<Client>() {
            Some(c) => c.clone(),
            None => client_of(st, &parts.extensions, &parts.headers),
        })
    }
}
