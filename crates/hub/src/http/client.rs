//! The client of every request, resolved once before any handler runs
//! (`http::forwarded` decides; this wires it in): the sign-in throttle's source, the
//! audit's address, the origin check's host, the session cookie's `Secure` and HSTS
//! all read the same [`Client`].

pub use super::forwarded::Client;
use crate::state::AppState;
use axum::extract::{ConnectInfo, FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, HeaderValue};
use axum::middleware::Next;
use axum::response::Response;
use std::net::SocketAddr;

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
