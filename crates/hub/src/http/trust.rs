//! "Trust this hub": one public page (`GET /trust`) for the owner's phone. It shows
//! the SHA-256 fingerprint of the hub's certificate authority (the one the hub
//! printed at start), links to the CA (`/ca.pem`, and `/ca.crt` in the DER form phones
//! install most readily), says how to install it on Android, iOS and a computer, and
//! draws a QR code of the page's own network address so the phone can open it from a
//! computer's screen. With a certificate from the operator's files it says that
//! nothing needs installing. Server-rendered, no script, the web apps' CSP.

use crate::state::AppState;
use axum::extract::State;
use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};
use std::net::IpAddr;

/// What the page shows about the certificate.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Cert {
    /// Plain HTTP: nothing to trust.
    None,
    /// The hub's own CA (its fingerprint): install it.
    OwnCa(String),
    /// The operator's certificate (the fingerprint of its first certificate): nothing
    /// to install.
    Operator(String),
}

/// The certificate the hub serves, read the way it was loaded at start.
pub fn cert(config: &crate::HubConfig) -> Result<Cert, String> {
    if !config.https() {
        return Ok(Cert::None);
    }
    let (file, own) = match &config.tls_cert_file {
        Some(f) => (f.clone(), false),
        None => (config.data_dir.join("tls").join("ca.pem"), true),
    };
    let pem = std::fs::read(&file).map_err(|e| e.to_string())?;
    use rustls::pki_types::pem::PemObject;
    let der = rustls::pki_types::CertificateDer::from_pem_slice(&pem).map_err(|e| e.to_string())?;
    let fp = crate::tls::fingerprint(&der);
    Ok(if own {
        Cert::OwnCa(fp)
    } else {
        Cert::Operator(fp)
    })
}

/// Split a Host header into host and port, refusing anything but the characters of a
/// host name or address.
fn split_host(host: &str) -> Option<(&str, Option<u16>)> {
    let ok = !host.is_empty()
        && host.len() <= 255
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-.:[]".contains(&b));
    if !ok {
        return None;
    }
    if let Some(rest) = host.strip_prefix('[') {
        let (addr, after) = rest.split_once(']')?;
        let port = match after.strip_prefix(':') {
            Some(p) => Some(p.parse().ok()?),
            None if after.is_empty() => None,
            None => return None,
        };
        return Some((addr, port));
    }
    match host.rsplit_once(':') {
        Some((h, p)) if !h.contains(':') => Some((h, Some(p.parse().ok()?))),
        Some(_) => None,
        None => Some((host, None)),
    }
}

fn is_local(host: &str) -> bool {
    let h = host.trim_matches(['[', ']']);
    h.eq_ignore_ascii_case("localhost")
        || h.to_ascii_lowercase().ends_with(".localhost")
        || h.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

fn url_host(host: &str) -> String {
    if host.contains(':') {
        format!("[{host}]")
    } else {
        host.to_owned()
    }
}

/// The address a phone opens this page at: the one the request came to, unless that
/// is this machine's own (`localhost`), then the first network name the hub's
/// certificate is for (`tls_names`). The flag: no network address was found.
pub fn page_url(
    host_header: Option<&str>,
    https: bool,
    tls_names: &[String],
    http_port: u16,
) -> (String, bool) {
    let scheme = if https { "https" } else { "http" };
    let (host, port) = host_header
        .and_then(split_host)
        .unwrap_or(("localhost", Some(http_port)));
    let port = port.map(|p| format!(":{p}")).unwrap_or_default();
    if !is_local(host) {
        return (format!("{scheme}://{}{port}/trust", url_host(host)), false);
    }
    match tls_names.iter().find(|n| !is_local(n)) {
        Some(n) => (format!("{scheme}://{}{port}/trust", url_host(n)), false),
        None => (format!("{scheme}://{}{port}/trust", url_host(host)), true),
    }
}

/// The QR code of `data` as an SVG element: one path of dark modules on a white
/// square with the standard four-module quiet zone (`None` if `data` is too long).
pub fn qr_svg(data: &str) -> Option<String> {
    let code = qrcode::QrCode::new(data.as_bytes()).ok()?;
    let n = code.width();
    let quiet = 4;
    let size = n + 2 * quiet;
    let mut path = String::new();
    for (i, c) in code.to_colors().iter().enumerate() {
        if *c == qrcode::Color::Dark {
            let (x, y) = (i % n + quiet, i / n + quiet);
            path.push_str(&format!("M{x} {y}h1v1h-1z"));
        }
    }
    Some(format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 {size} {size}\" width=\"240\" height=\"240\" shape-rendering=\"crispEdges\" role=\"img\" aria-label=\"QR code of {label}\" data-url=\"{label}\"><rect width=\"{size}\" height=\"{size}\" fill=\"#ffffff\"/><path fill=\"#000000\" d=\"{path}\"/></svg>",
        label = escape(data)
    ))
}

/// Text for HTML, in content and in attribute values.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

const INSTALL: &str = r#"<section class="card" id="install" aria-labelledby="install-title">
<h2 id="install-title">3. Install it</h2>
<h3>Android</h3>
<ol>
<li>Download <a href="/ca.crt" download="threshold-hub-ca.crt">the certificate</a> on the phone.</li>
<li>Settings → Security (on some phones: Security &amp; privacy → More security settings) → Encryption &amp; credentials → Install a certificate → <strong>CA certificate</strong>; choose the downloaded file and accept the warning.</li>
<li>Check it under Trusted credentials → User: its SHA-256 fingerprint is the one above.</li>
</ol>
<h3>iPhone and iPad</h3>
<ol>
<li>Open <a href="/ca.crt">the certificate</a> in Safari and allow the profile to download.</li>
<li>Settings → General → VPN &amp; Device Management → “Threshold hub local CA” → Install.</li>
<li>Settings → General → About → Certificate Trust Settings: turn on full trust for “Threshold hub local CA”.</li>
</ol>
<h3>Computer</h3>
<ul>
<li><strong>Windows</strong>: open the downloaded <code>.crt</code> → Install Certificate → Place all certificates in “Trusted Root Certification Authorities”.</li>
<li><strong>macOS</strong>: open it in Keychain Access (System keychain), double-click “Threshold hub local CA” → Trust → When using this certificate: Always Trust.</li>
<li><strong>Firefox</strong> (any system): Settings → Privacy &amp; Security → Certificates → View Certificates → Authorities → Import, and trust it to identify websites.</li>
<li><strong>Linux, Chrome</strong>: Settings → Privacy and security → Security → Manage certificates → Authorities → Import.</li>
</ul>
</section>
"#;

/// The page.
pub fn render(cert: &Cert, url: &str, url_is_local: bool) -> String {
    let mut body = String::new();
    match cert {
        Cert::None => body.push_str(
            "<section class=\"card\" id=\"plain\"><h2>This hub does not use HTTPS</h2>\
             <p>There is no certificate to trust: the hub serves plain HTTP, which anyone on \
             the network can read and change. Ask whoever runs it to start it with \
             <code>--tls</code> (see “Deploy on a real network” in the operations guide).</p></section>\n",
        ),
        Cert::Operator(fp) => body.push_str(&format!(
            "<section class=\"card\" id=\"nothing-to-install\" aria-labelledby=\"op-title\">\
             <h2 id=\"op-title\">Nothing to install</h2>\
             <p>This hub's certificate comes from its operator's certificate authority or a \
             public one, not from a CA of the hub's own: a phone that trusts that authority \
             (every phone trusts the public ones) trusts the hub already, with no install.</p>\
             <p>The certificate's SHA-256 fingerprint:</p>\
             <pre class=\"cmd\" id=\"fingerprint\" data-fingerprint=\"{fp}\">{fp}</pre></section>\n",
            fp = escape(fp)
        )),
        Cert::OwnCa(fp) => {
            body.push_str(&format!(
                "<section class=\"card\" id=\"check\" aria-labelledby=\"check-title\">\
                 <h2 id=\"check-title\">1. Check the fingerprint</h2>\
                 <p>This hub made its own certificate authority. Its SHA-256 fingerprint:</p>\
                 <pre class=\"cmd\" id=\"fingerprint\" data-fingerprint=\"{fp}\">{fp}</pre>\
                 <p class=\"muted\">Compare it with the one the hub printed when it started (or \
                 that whoever set it up gave you), and again on the phone before installing. If \
                 they differ, stop: something between you and the hub is pretending to be it.</p>\
                 </section>\n\
                 <section class=\"card\" id=\"download\" aria-labelledby=\"download-title\">\
                 <h2 id=\"download-title\">2. Download the certificate</h2>\
                 <p><a id=\"ca-link\" href=\"/ca.crt\" download=\"threshold-hub-ca.crt\">threshold-hub-ca.crt</a> \
                 (phones and Windows), or <a href=\"/ca.pem\" download=\"threshold-hub-ca.pem\">ca.pem</a> \
                 (the same certificate as PEM, for tools such as <code>threshold agent --hub-ca</code>).</p>\
                 </section>\n",
                fp = escape(fp)
            ));
            body.push_str(INSTALL);
        }
    }
    if *cert != Cert::None {
        let qr = qr_svg(url).unwrap_or_default();
        let note = if url_is_local {
            "<p class=\"warn\" id=\"local-address\">This address is this computer's own: a phone \
             cannot open it. Open this page at the hub's network address (the hub's \
             <code>--tls-name</code>) for a code the phone can use.</p>"
        } else {
            ""
        };
        body.push_str(&format!(
            "<section class=\"card\" id=\"phone\" aria-labelledby=\"phone-title\">\
             <h2 id=\"phone-title\">Open this page on the phone</h2>\
             <p>Scan this code with the phone's camera:</p>\
             <figure id=\"qr\">{qr}<figcaption><code id=\"page-url\">{url}</code></figcaption></figure>\
             {note}<p class=\"muted\">Then sign in to the app at the same address.</p></section>\n",
            url = escape(url)
        ));
    }
    format!(
        "<!doctype html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <meta name=\"color-scheme\" content=\"light dark\">\n<title>Trust this hub · Threshold</title>\n\
         <link rel=\"icon\" href=\"/shared/icon.svg\" type=\"image/svg+xml\">\n\
         <link rel=\"stylesheet\" href=\"/shared/style.css\">\n</head>\n<body>\n\
         <main id=\"main\" class=\"stack\">\n<h1>Trust this hub</h1>\n\
         <p>So that this phone talks to your Threshold hub, and only to it, over an encrypted \
         connection.</p>\n{body}<p><a href=\"/\">Open the app</a></p>\n</main>\n</body>\n</html>\n"
    )
}

/// `GET /trust`.
pub async fn page(State(st): State<AppState>, client: crate::http::client::Client) -> Response {
    let cert = match cert(&st.config) {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(error = %e, "trust page: cannot read the served certificate");
            return crate::http::error::ApiError::Internal("the certificate cannot be read".into())
                .into_response();
        }
    };
    // The address the client asked for (behind a trusted proxy, the proxy's).
    let (url, local) = page_url(
        client.host.as_deref(),
        client.https,
        &st.config.tls_names,
        st.config.http_addr.port(),
    );
    let mut resp = render(&cert, &url, local).into_response();
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(crate::http::web::CSP),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The dark modules of an SVG drawn by [`qr_svg`], read back and decoded.
    pub fn decode(svg: &str) -> String {
        let view = svg.split("viewBox=\"0 0 ").nth(1).unwrap();
        let size: usize = view.split(' ').next().unwrap().parse().unwrap();
        let d = svg
            .split(" d=\"")
            .nth(1)
            .unwrap()
            .split('"')
            .next()
            .unwrap();
        let mut dark = vec![false; size * size];
        for m in d.split('M').filter(|m| !m.is_empty()) {
            let xy = m.trim_end_matches("h1v1h-1z");
            let (x, y) = xy.split_once(' ').unwrap();
            let (x, y): (usize, usize) = (x.parse().unwrap(), y.parse().unwrap());
            dark[y * size + x] = true;
        }
        let scale = 4;
        let px = size * scale;
        let mut img = rqrr::PreparedImage::prepare_from_greyscale(px, px, |x, y| {
            if dark[(y / scale) * size + x / scale] {
                0
            } else {
                255
            }
        });
        let grids = img.detect_grids();
        assert_eq!(grids.len(), 1, "one QR code");
        grids[0].decode().unwrap().1
    }

    #[test]
    fn the_qr_code_decodes_to_the_page_url() {
        let url = "https://hub.lan:8443/trust";
        let svg = qr_svg(url).unwrap();
        assert_eq!(decode(&svg), url);
        assert!(svg.starts_with("<svg ") && svg.ends_with("</svg>"));
    }

    #[test]
    fn the_page_url_is_a_network_address() {
        let names = vec!["127.0.0.1".to_owned(), "192.168.1.10".to_owned()];
        assert_eq!(
            page_url(Some("hub.lan:8443"), true, &names, 8443),
            ("https://hub.lan:8443/trust".into(), false)
        );
        assert_eq!(
            page_url(Some("localhost:8443"), true, &names, 8443),
            ("https://192.168.1.10:8443/trust".into(), false)
        );
        assert_eq!(
            page_url(Some("[::1]:8443"), true, &[], 8443),
            ("https://[::1]:8443/trust".into(), true)
        );
        assert_eq!(
            page_url(Some("<script>"), true, &[], 8443),
            ("https://localhost:8443/trust".into(), true)
        );
        assert_eq!(
            page_url(Some("[fe80::1]"), true, &[], 8443),
            ("https://[fe80::1]/trust".into(), false)
        );
    }

    #[test]
    fn each_kind_of_certificate_says_what_to_do() {
        let fp = "AB:CD";
        let own = render(&Cert::OwnCa(fp.into()), "https://hub.lan/trust", false);
        for want in [
            "data-fingerprint=\"AB:CD\"",
            "href=\"/ca.crt\"",
            "href=\"/ca.pem\"",
            "Android",
            "iPhone",
            "Windows",
            "<svg ",
        ] {
            assert!(own.contains(want), "{want}");
        }
        let op = render(&Cert::Operator(fp.into()), "https://hub.lan/trust", false);
        assert!(op.contains("Nothing to install") && !op.contains("/ca.pem"));
        let plain = render(&Cert::None, "http://hub.lan/trust", false);
        assert!(plain.contains("does not use HTTPS") && !plain.contains("<svg"));
        let local = render(&Cert::OwnCa(fp.into()), "https://localhost/trust", true);
        assert!(local.contains("id=\"local-address\""));
        // Nothing the CSP refuses: no script, no inline style or handler.
        for page in [own, op, plain] {
            for bad in ["<script", "style=", "onclick", "onload", "javascript:"] {
                assert!(!page.contains(bad), "{bad}");
            }
        }
    }
}
