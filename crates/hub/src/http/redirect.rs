//! Plain HTTP beside HTTPS, only to send browsers to the HTTPS address: every request
//! is answered 308 with the same host and path on the HTTPS port, and nothing else is
//! served in clear.

use axum::extract::Request;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;

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
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    let app = axum::Router::new().fallback(move |req: Request| async move {
        let host = req
            .headers()
            .get(header::HOST)
            .and_then(|v| v.to_str().ok());
        let pq = req
            .uri()
            .path_and_query()
            .map_or("/", |p| p.as_str())
            .to_owned();
        match target(host, https_port, &pq) {
            Some(url) => {
                (StatusCode::PERMANENT_REDIRECT, [(header::LOCATION, url)]).into_response()
            }
            None => super::error::ApiError::BadRequest("a Host header is required".into())
                .into_response(),
        }
    });
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
}
