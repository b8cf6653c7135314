//! Test helpers: a tiny real HTTP/1.1 server on 127.0.0.1:0 (so sources and enrolment
//! are tested against a real socket, not a mock) and Mosquitto access.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

pub struct Request {
    pub method: String,
    pub path: String,
    pub body: Vec<u8>,
}

pub struct Response {
    pub status: u16,
    pub content_type: String,
    pub body: Vec<u8>,
}

impl Response {
    pub fn status(status: u16, body: Vec<u8>) -> Self {
        Response {
            status,
            content_type: "application/octet-stream".into(),
            body,
        }
    }
    pub fn json(status: u16, body: Vec<u8>) -> Self {
        Response {
            status,
            content_type: "application/json".into(),
            body,
        }
    }
}

/// Read one request head (and a Content-Length body) from `s`.
pub async fn read_request(s: &mut TcpStream) -> Option<Request> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        if let Some(p) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break p + 4;
        }
        let n = s.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
    let mut lines = head.lines();
    let mut first = lines.next()?.split_whitespace();
    let method = first.next()?.to_string();
    let path = first.next()?.to_string();
    let len = lines
        .filter_map(|l| l.split_once(':'))
        .find(|(k, _)| k.trim().eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.trim().parse::<usize>().ok())
        .unwrap_or(0);
    let mut body = buf[head_end..].to_vec();
    while body.len() < len {
        let n = s.read(&mut chunk).await.ok()?;
        if n == 0 {
            break;
        }
        body.extend_from_slice(&chunk[..n]);
    }
    Some(Request { method, path, body })
}

/// Serve `handler` on a fresh local port, one request per connection.
pub async fn http_server<F>(handler: F) -> SocketAddr
where
    F: Fn(Request) -> Response + Send + Sync + 'static,
{
    let handler = Arc::new(handler);
    tcp_server(move |mut s| {
        let handler = handler.clone();
        async move {
            if let Some(req) = read_request(&mut s).await {
                let r = handler(req);
                let head = format!(
                    "HTTP/1.1 {} X\r\nContent-Type: {}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                    r.status,
                    r.content_type,
                    r.body.len()
                );
                let _ = s.write_all(head.as_bytes()).await;
                let _ = s.write_all(&r.body).await;
                let _ = s.shutdown().await;
            }
        }
    })
    .await
}

/// Accept connections on a fresh local port and hand each to `f`.
pub async fn tcp_server<F, Fut>(f: F) -> SocketAddr
where
    F: Fn(TcpStream) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((s, _)) = listener.accept().await {
            tokio::spawn(f(s));
        }
    });
    addr
}

/// Whether Mosquitto answers on 127.0.0.1:1883. With THRESHOLD_REQUIRE_SERVICES=1 a
/// missing broker fails the test instead of skipping it.
pub fn mosquitto_available(test: &str) -> bool {
    let ok = std::net::TcpStream::connect_timeout(
        &SocketAddr::from(([127, 0, 0, 1], 1883)),
        std::time::Duration::from_millis(500),
    )
    .is_ok();
    if !ok {
        if std::env::var("THRESHOLD_REQUIRE_SERVICES").as_deref() == Ok("1") {
            panic!("{test}: Mosquitto on 127.0.0.1:1883 is required (THRESHOLD_REQUIRE_SERVICES=1) but unreachable");
        }
        eprintln!("{test}: SKIPPED, no Mosquitto on 127.0.0.1:1883");
    }
    ok
}

/// A topic root nobody else uses, so tests can run in parallel on one broker.
pub fn unique_root(name: &str) -> String {
    let mut b = [0u8; 6];
    let _ = getrandom::getrandom(&mut b);
    format!("test-{name}-{}", hex::encode(b))
}
