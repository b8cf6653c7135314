//! Plain HTTP beside HTTPS, only to send browsers to the HTTPS address: every request
//! is answered 308 with the same host and path on the HTTPS port, and nothing else is
//! served in clear.
//!
//! Except one: a trusted reverse proxy saying its client already came over HTTPS
//! (`X-Forwarded-Proto: https`) was pointed at this port by mistake. A redirect would
//! send the browser back to the proxy, which would send it here again (a loop when
//! the proxy listens on 443); it is answered 421 `misdirected`, naming the fix.

use super::forwarded::{self, TrustedProxies};
use axum::extract::{ConnectInfo, Request};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use std::net::{IpAddr, SocketAddr};

/// Whether a request from `peer` came through a trusted proxy that already serves
/// the client over HTTPS.
pub fn proxied_https(peer: Option<IpAddr>, headers: &HeaderMap, trusted: &TrustedProxies) -> bool {
    peer.is_some_and(|p| {
        let c = forwarded::resolve(p, false, headers, trusted).client;
        c.via_proxy && c.https
    })
}

/// The answer to one request on the redirect port.
fn answer(req: &Request, https_port: u16, trusted: &TrustedProxies) -> Response {
    let peer = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip());
    if proxied_https(peer, req.headers(), trusted) {
        return super::error::ApiError::Misdirected(
            "this port only redirects plain HTTP to HTTPS; point the reverse proxy at http_addr"
                .into(),
        )
        .into_response();
    }
    let host = req
        .headers()
        .get(header::HOST)
        .and_then(|v| v.to_str().ok());
    let pq = req.uri().path_and_query().map_or("/", |p| p.as_str());
    match target(host, https_port, pq) {
        Some(url) => (StatusCode::PERMANENT_REDIRECT, [(header::LOCATION, url)]).into_response(),
        None => {
            super::error::ApiError::BadRequest("a Host header is required".into()).into_response()
        }
    }
}

/// `https://host:port/path?query` for a request that came in on plain HTTP.
pub fn target(host: Option<&str>, https_port: u16, path_and_query: &str) -> Option<String> {
    let host = host?;
    // Host without its port (IPv6 in brackets keeps its brackets).
    let name = match host.rsplit_once(':') {
        Some((n, p)) if p.bytes().all(|b| b.is_ascii_digit()) && !n.ends_with(':') => n,
        _ => host,
    };
    if name.is_empty() || name.contains(['/', '@', ' ']) {
        return None;
    }
    let port = if https_port == 443 {
        String::new()
    } else {
        format!(":{https_port}")
    };
    Some(format!("https://{name}{port}{path_and_query}"))
}

pub fn spawn(
    listener: tokio::net::TcpListener,
    https_port: u16,
    trusted: TrustedProxies,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    let trusted = std::sync::Arc::new(trusted);
    let app = axum::Router::new().fallback(move |req: Request| {
        let trusted = trusted.clone();
        async move { answer(&req, https_port, &trusted) }
    });
    let app = app.into_make_service_with_connect_info::<SocketAddr>();
    tokio::spawn(async move {
        let r = axum::serve(listener, app).with_graceful_shutdown(async move {
            let _ = stop.changed().await;
        });
        if let Err(e) = r.await {
            tracing::error!(error = %e, "HTTP redirect server stopped");
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_host_and_path_on_the_https_port() {
        assert_eq!(
            target(Some("hub.lan:8080"), 8443, "/courier?x=1").as_deref(),
            Some("https://hub.lan:8443/courier?x=1")
        );
        assert_eq!(
            target(Some("hub.lan"), 443, "/").as_deref(),
            Some("https://hub.lan/")
        );
        assert_eq!(
            target(Some("[::1]:8080"), 8443, "/").as_deref(),
            Some("https://[::1]:8443/")
        );
        assert_eq!(target(None, 8443, "/"), None);
        assert_eq!(target(Some("evil.example/x@"), 8443, "/"), None);
    }

    #[test]
    fn a_trusted_proxy_already_on_https_is_not_sent_round_again() {
        let trusted = TrustedProxies::parse(&["127.0.0.1"]).unwrap();
        let https: HeaderMap = [(
            forwarded::X_FORWARDED_PROTO,
            axum::http::HeaderValue::from_static("https"),
        )]
        .into_iter()
        .collect();
        let local = Some(IpAddr::from([127, 0, 0, 1]));
        assert!(proxied_https(local, &https, &trusted));
        // Plain HTTP through the proxy, or no proxy at all: redirected as ever.
        assert!(!proxied_https(local, &HeaderMap::new(), &trusted));
        assert!(!proxied_https(
            Some(IpAddr::from([203, 0, 113, 9])),
            &https,
            &trusted
        ));
        assert!(!proxied_https(local, &https, &TrustedProxies::default()));
        assert!(!proxied_https(None, &https, &trusted));
    }
}
