//! Requests a browser makes on behalf of another site are refused before any handler
//! runs: a state-changing request (anything but GET, HEAD, OPTIONS) or a WebSocket
//! upgrade whose `Origin` is not this hub, or which the browser marks
//! `Sec-Fetch-Site: cross-site`. Session cookies are SameSite=Strict as well; this is
//! the second wall (OWASP CSRF cheat sheet: verify the origin with standard headers).
//!
//! Clients that are not browsers send neither header and are not affected: they hold
//! a bearer token, which another site cannot make them send.
//!
//! "This hub" is the host the browser asked for: `Host`, or behind a trusted reverse
//! proxy its `X-Forwarded-Host` (`http::forwarded`; a proxy may send its upstream
//! address as `Host`). From any other peer `X-Forwarded-Host` is not read, and a page
//! of another site cannot add it to a browser's request anyway (not without a CORS
//! preflight, which the hub never grants).

use super::error::ApiError;
use axum::extract::Request;
use axum::http::{header, HeaderMap, Method};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

/// Whether a request with these headers, for `host` (the request's
/// [`Client::host`](super::client::Client)), comes from another site's page.
pub fn foreign(method: &Method, headers: &HeaderMap, host: Option<&str>) -> bool {
    let upgrade = headers
        .get(header::UPGRADE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("websocket"));
    let changes_state = !matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS);
    if !changes_state && !upgrade {
        return false;
    }
    if headers
        .get("sec-fetch-site")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("cross-site"))
    {
        return true;
    }
    let Some(origin) = headers.get(header::ORIGIN) else {
        return false;
    };
    match (origin.to_str().ok().and_then(authority_of), host) {
        (Some(o), Some(h)) => !o.eq_ignore_ascii_case(h),
        // "null" (a sandboxed frame, a file) or no Host to compare with.
        _ => true,
    }
}

/// `host[:port]` of an origin such as `https://hub.example:8443`.
fn authority_of(origin: &str) -> Option<&str> {
    let (scheme, rest) = origin.split_once("://")?;
    if !matches!(scheme, "http" | "https") || rest.is_empty() || rest.contains('/') {
        return None;
    }
    Some(rest)
}

pub async fn same_origin_only(req: Request, next: Next) -> Response {
    let host = match req.extensions().get::<super::client::Client>() {
        Some(c) => c.host.as_deref(),
        None => req
            .headers()
            .get(header::HOST)
            .and_then(|v| v.to_str().ok()),
    };
    if foreign(req.method(), req.headers(), host) {
        return ApiError::CrossOrigin.into_response();
    }
    next.run(req).await
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A request for `hub.lan:8080` (its Host) with these headers.
    fn foreign(method: &Method, headers: &HeaderMap) -> bool {
        super::foreign(method, headers, Some("hub.lan:8080"))
    }

    fn h(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut m = HeaderMap::new();
        for (k, v) in pairs {
            m.insert(*k, v.parse().unwrap());
        }
        m
    }

    #[test]
    fn same_origin_and_non_browser_requests_pass() {
        let host = ("host", "hub.lan:8080");
        assert!(!foreign(
            &Method::POST,
            &h(&[host, ("origin", "http://hub.lan:8080")])
        ));
        assert!(!foreign(
            &Method::POST,
            &h(&[host, ("origin", "https://HUB.lan:8080")])
        ));
        assert!(!foreign(&Method::POST, &h(&[host])), "curl, a device");
        assert!(!foreign(
            &Method::POST,
            &h(&[
                host,
                ("sec-fetch-site", "same-origin"),
                ("origin", "http://hub.lan:8080")
            ])
        ));
        assert!(!foreign(
            &Method::GET,
            &h(&[host, ("origin", "http://evil.example")])
        ));
    }

    #[test]
    fn another_sites_page_is_refused() {
        let host = ("host", "hub.lan:8080");
        assert!(foreign(
            &Method::POST,
            &h(&[host, ("origin", "http://evil.example")])
        ));
        assert!(foreign(
            &Method::DELETE,
            &h(&[host, ("origin", "http://hub.lan:9999")])
        ));
        assert!(foreign(&Method::PUT, &h(&[host, ("origin", "null")])));
        assert!(foreign(
            &Method::POST,
            &h(&[host, ("sec-fetch-site", "cross-site")])
        ));
        assert!(foreign(
            &Method::GET,
            &h(&[
                host,
                ("upgrade", "websocket"),
                ("origin", "http://evil.example")
            ])
        ));
        assert!(!foreign(
            &Method::GET,
            &h(&[
                host,
                ("upgrade", "websocket"),
                ("origin", "http://hub.lan:8080")
            ])
        ));
    }

    #[test]
    fn the_host_compared_is_the_one_given() {
        let page = h(&[("origin", "https://hub.example.org")]);
        // Behind a proxy: the host the browser asked the proxy for.
        assert!(!super::foreign(
            &Method::POST,
            &page,
            Some("hub.example.org")
        ));
        // Not the proxy's upstream address, nor no host at all.
        assert!(super::foreign(&Method::POST, &page, Some("127.0.0.1:8080")));
        assert!(super::foreign(&Method::POST, &page, None));
    }
}
