//! The owner and courier web apps, embedded in the binary (no build step: plain HTML,
//! JS modules and CSS from `web/`), served with a strict Content-Security-Policy.
//!
//! - `/` and `/index.html`: the owner app
//! - `/courier/`: the courier app (`/courier` redirects there)
//! - `/guest/`: a guest's page, opened from the owner's link `/guest/#<secret>`
//! - `/owner/*`, `/courier/*`, `/shared/*`: their scripts, styles and icons
//! - `/sw.js`: the service worker that shows pushed critical alerts

use axum::extract::Path;
use axum::http::{header, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use axum::Router;

/// No inline script or style, nothing from any other host; images may be blobs (live
/// frames) or data URLs; sockets only to this origin's hub.
pub const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' blob: data:; media-src 'self' blob:; connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

/// One embedded file.
#[derive(Debug, Clone, Copy)]
pub struct Asset {
    pub path: &'static str,
    pub content_type: &'static str,
    pub body: &'static [u8],
}

macro_rules! asset {
    ($path:literal, $ct:literal) => {
        Asset {
            path: $path,
            content_type: $ct,
            body: include_bytes!(concat!(env!("CARGO_MANIFEST_DIR"), "/../../web/", $path)),
        }
    };
}

/// Every file the apps consist of.
pub const ASSETS: &[Asset] = &[
    asset!("owner/index.html", "text/html; charset=utf-8"),
    asset!("owner/app.js", "text/javascript; charset=utf-8"),
    asset!("courier/index.html", "text/html; charset=utf-8"),
    asset!("courier/app.js", "text/javascript; charset=utf-8"),
    asset!("guest/index.html", "text/html; charset=utf-8"),
    asset!("guest/app.js", "text/javascript; charset=utf-8"),
    asset!("shared/lib.js", "text/javascript; charset=utf-8"),
    asset!("shared/live.js", "text/javascript; charset=utf-8"),
    asset!("shared/style.css", "text/css; charset=utf-8"),
    asset!("shared/icon.svg", "image/svg+xml"),
    asset!("owner/manifest.webmanifest", "application/manifest+json"),
    asset!("sw.js", "text/javascript; charset=utf-8"),
];

pub fn find(path: &str) -> Option<&'static Asset> {
    ASSETS.iter().find(|a| a.path == path)
}

fn headers(content_type: &'static str) -> [(HeaderName, HeaderValue); 6] {
    [
        (header::CONTENT_TYPE, HeaderValue::from_static(content_type)),
        (
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(CSP),
        ),
        (
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ),
        (
            header::REFERRER_POLICY,
            HeaderValue::from_static("no-referrer"),
        ),
        (header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY")),
        // Small files; always revalidate so an upgraded hub serves its own app.
        (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
    ]
}

fn serve(path: &str) -> Response {
    match find(path) {
        Some(a) => (headers(a.content_type), a.body).into_response(),
        None => (
            StatusCode::NOT_FOUND,
            headers("text/plain; charset=utf-8"),
            "not found",
        )
            .into_response(),
    }
}

async fn owner_index() -> Response {
    serve("owner/index.html")
}

async fn courier_index() -> Response {
    serve("courier/index.html")
}

async fn file(dir: &'static str, rest: String) -> Response {
    if rest.contains("..") || rest.ends_with("index.html") {
        return serve("");
    }
    serve(&format!("{dir}/{rest}"))
}

/// Routes for the embedded apps; merge into the main router.
pub fn router<S: Clone + Send + Sync + 'static>() -> Router<S> {
    Router::new()
        .route("/", get(owner_index))
        .route("/index.html", get(owner_index))
        .route(
            "/courier",
            get(|| async { Redirect::permanent("/courier/") }),
        )
        .route("/courier/", get(courier_index))
        .route("/guest/", get(|| async { serve("guest/index.html") }))
        .route(
            "/guest/{*rest}",
            get(|Path(rest): Path<String>| file("guest", rest)),
        )
        .route(
            "/owner/{*rest}",
            get(|Path(rest): Path<String>| file("owner", rest)),
        )
        .route(
            "/courier/{*rest}",
            get(|Path(rest): Path<String>| file("courier", rest)),
        )
        .route(
            "/shared/{*rest}",
            get(|Path(rest): Path<String>| file("shared", rest)),
        )
        // The service worker lives at the root so that its scope is the whole app.
        .route("/sw.js", get(|| async { serve("sw.js") }))
        .route("/favicon.ico", get(|| async { serve("shared/icon.svg") }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_asset_has_a_type_and_content() {
        for a in ASSETS {
            assert!(!a.body.is_empty(), "{} is empty", a.path);
            assert!(!a.content_type.is_empty());
        }
        assert!(find("owner/index.html").is_some());
        assert!(find("../Cargo.toml").is_none());
    }

    #[test]
    fn pages_load_no_inline_script_or_third_party_host() {
        for a in ASSETS {
            let text = std::str::from_utf8(a.body).unwrap_or("");
            if a.content_type.starts_with("text/html") {
                assert!(!text.contains("<script>"), "{}: inline script", a.path);
                assert!(!text.contains("style=\""), "{}: inline style", a.path);
                for h in [
                    "onclick=",
                    "onload=",
                    "onerror=",
                    "onsubmit=",
                    "oninput=",
                    "onchange=",
                ] {
                    assert!(!text.contains(h), "{}: inline handler {h}", a.path);
                }
            }
            for bad in [
                "http://",
                "https://",
                "//cdn",
                "innerHTML",
                "outerHTML",
                "insertAdjacentHTML",
                "document.write",
                "eval(",
            ] {
                if bad.starts_with("http") && a.content_type.starts_with("image/svg") {
                    continue; // the SVG namespace URI
                }
                assert!(!text.contains(bad), "{} contains {bad}", a.path);
            }
        }
    }
}
