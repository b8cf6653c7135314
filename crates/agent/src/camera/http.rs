//! HTTP camera sources: a snapshot URL polled once per frame, and an MJPEG stream.
//!
//! Both are blocking (the capture loop runs on its own thread). The MJPEG source reads
//! the stream on a background thread and keeps only the newest complete part, so a
//! camera running faster than `capture_fps` never builds up latency in socket buffers;
//! a dropped stream is reopened on the next call.

use super::mjpeg::{boundary_from_content_type, MjpegParser};
use super::{Frame, FrameSource, SourceError, MAX_JPEG_BYTES};
use std::io::Read;
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

fn agent() -> ureq::Agent {
    ureq::AgentBuilder::new()
        .timeout_connect(Duration::from_secs(2))
        .timeout_read(Duration::from_secs(5))
        .build()
}

/// `GET url` per frame.
pub struct Snapshot {
    url: String,
    agent: ureq::Agent,
}

impl Snapshot {
    pub fn new(url: &str) -> Self {
        Snapshot {
            url: url.to_string(),
            agent: agent(),
        }
    }
}

impl FrameSource for Snapshot {
    fn next_frame(&mut self, _now_ms: i64) -> Result<Frame, SourceError> {
        let resp = self
            .agent
            .get(&self.url)
            .call()
            .map_err(|e| SourceError::Io(e.to_string()))?;
        let mut jpeg = Vec::new();
        resp.into_reader()
            .take(MAX_JPEG_BYTES as u64 + 1)
            .read_to_end(&mut jpeg)
            .map_err(|e| SourceError::Io(e.to_string()))?;
        Ok(Frame::new(jpeg))
    }
}

#[derive(Default)]
struct Latest {
    frame: Option<(u64, Vec<u8>)>,
    counter: u64,
    alive: bool,
    error: Option<String>,
}

/// An MJPEG-over-HTTP stream.
pub struct MjpegStream {
    url: String,
    shared: Arc<(Mutex<Latest>, Condvar)>,
    last_returned: u64,
    wait: Duration,
}

impl MjpegStream {
    pub fn new(url: &str) -> Self {
        MjpegStream {
            url: url.to_string(),
            shared: Arc::new((Mutex::new(Latest::default()), Condvar::new())),
            last_returned: 0,
            wait: Duration::from_secs(2),
        }
    }

    fn start_reader(&self) {
        let url = self.url.clone();
        let shared = self.shared.clone();
        if let Ok(mut l) = shared.0.lock() {
            l.alive = true;
            l.error = None;
        }
        std::thread::spawn(move || {
            let err = read_stream(&url, &shared)
                .err()
                .unwrap_or_else(|| "stream ended".into());
            let (m, cv) = &*shared;
            if let Ok(mut l) = m.lock() {
                l.alive = false;
                l.error = Some(err);
            }
            cv.notify_all();
        });
    }
}

fn read_stream(url: &str, shared: &Arc<(Mutex<Latest>, Condvar)>) -> Result<(), String> {
    let resp = agent().get(url).call().map_err(|e| e.to_string())?;
    let ct = resp.header("content-type").unwrap_or("").to_string();
    let boundary = boundary_from_content_type(&ct)
        .ok_or_else(|| format!("not an MJPEG stream (Content-Type {ct:?})"))?;
    let mut parser = MjpegParser::new(&boundary, MAX_JPEG_BYTES);
    let mut reader = resp.into_reader();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        // The owner dropped the source: stop reading.
        if Arc::strong_count(shared) == 1 {
            return Ok(());
        }
        let n = reader.read(&mut buf).map_err(|e| e.to_string())?;
        if n == 0 {
            return Err("stream ended".into());
        }
        let parts = parser.push(buf.get(..n).unwrap_or_default());
        if let Some(last) = parts.into_iter().last() {
            let (m, cv) = &**shared;
            if let Ok(mut l) = m.lock() {
                l.counter += 1;
                l.frame = Some((l.counter, last));
            }
            cv.notify_all();
        }
    }
}

impl FrameSource for MjpegStream {
    fn next_frame(&mut self, _now_ms: i64) -> Result<Frame, SourceError> {
        let alive = self.shared.0.lock().map(|l| l.alive).unwrap_or(false);
        if !alive {
            self.start_reader();
        }
        let (m, cv) = &*self.shared;
        let guard = m.lock().map_err(|_| SourceError::Io("poisoned".into()))?;
        let last = self.last_returned;
        let (guard, _) = cv
            .wait_timeout_while(guard, self.wait, |l| {
                l.alive && l.frame.as_ref().is_none_or(|(c, _)| *c <= last)
            })
            .map_err(|_| SourceError::Io("poisoned".into()))?;
        match &guard.frame {
            Some((c, jpeg)) if *c > last => {
                self.last_returned = *c;
                Ok(Frame::new(jpeg.clone()))
            }
            _ => Err(guard
                .error
                .clone()
                .map(SourceError::Io)
                .unwrap_or(SourceError::NotReady)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::camera::prepare;
    use crate::testutil::{http_server, read_request, tcp_server, Response};
    use tokio::io::AsyncWriteExt;

    fn jpeg(seed: u8) -> Vec<u8> {
        let px: Vec<u8> = (0..32 * 24)
            .flat_map(|i| [(i as u8).wrapping_mul(seed), seed, 7])
            .collect();
        let mut out = Vec::new();
        jpeg_encoder::Encoder::new(&mut out, 70)
            .encode(&px, 32, 24, jpeg_encoder::ColorType::Rgb)
            .unwrap();
        out
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn snapshot_source_fetches_from_a_real_server() {
        let counter = Arc::new(std::sync::atomic::AtomicU8::new(1));
        let c2 = counter.clone();
        let addr = http_server(move |req| {
            if req.path == "/snap.jpg" {
                let n = c2.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                Response {
                    status: 200,
                    content_type: "image/jpeg".into(),
                    body: jpeg(n),
                }
            } else if req.path == "/html" {
                Response {
                    status: 200,
                    content_type: "text/html".into(),
                    body: b"<html>".to_vec(),
                }
            } else {
                Response::status(404, vec![])
            }
        })
        .await;
        let frames = tokio::task::spawn_blocking(move || {
            let mut s = Snapshot::new(&format!("http://{addr}/snap.jpg"));
            let a = prepare(s.next_frame(0).unwrap()).unwrap();
            let b = prepare(s.next_frame(0).unwrap()).unwrap();
            let mut missing = Snapshot::new(&format!("http://{addr}/nope"));
            let err = missing.next_frame(0).is_err();
            let mut html = Snapshot::new(&format!("http://{addr}/html"));
            let refused = prepare(html.next_frame(0).unwrap()).is_err();
            (a, b, err, refused)
        })
        .await
        .unwrap();
        assert_ne!(frames.0.sha256, frames.1.sha256);
        assert_eq!((frames.0.width, frames.0.height), (32, 24));
        assert!(frames.2, "HTTP 404 is an error");
        assert!(frames.3, "an HTML page is refused as a frame");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn mjpeg_source_reads_a_real_multipart_stream_and_reconnects() {
        let conns = Arc::new(std::sync::atomic::AtomicU32::new(0));
        let c2 = conns.clone();
        let addr = tcp_server(move |mut s| {
            let c2 = c2.clone();
            async move {
                let _ = read_request(&mut s).await;
                let conn = c2.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let head = "HTTP/1.1 200 OK\r\nContent-Type: multipart/x-mixed-replace; boundary=--frameBOUNDARY\r\nConnection: close\r\n\r\n";
                if s.write_all(head.as_bytes()).await.is_err() {
                    return;
                }
                // Some garbage, then frames; the first connection ends after 3 frames.
                let _ = s.write_all(b"junk before first part\r\n").await;
                for i in 0..(if conn == 0 { 3 } else { 1000 }) {
                    let j = jpeg((i as u8 + 1).wrapping_add(50 * conn as u8));
                    let mut part = format!("--frameBOUNDARY\r\nContent-Type: image/jpeg\r\nContent-Length: {}\r\n\r\n", j.len()).into_bytes();
                    part.extend_from_slice(&j);
                    part.extend_from_slice(b"\r\n");
                    // Write in odd-sized pieces to exercise splitting.
                    for c in part.chunks(333) {
                        if s.write_all(c).await.is_err() {
                            return;
                        }
                    }
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            }
        })
        .await;
        let url = format!("http://{addr}/stream");
        let (ok, shas) = tokio::task::spawn_blocking(move || {
            let mut src = MjpegStream::new(&url);
            let mut ok = 0;
            let mut shas = Vec::new();
            for _ in 0..8 {
                if let Ok(f) = src.next_frame(0) {
                    let p = prepare(f).unwrap();
                    shas.push(p.sha256);
                    ok += 1;
                }
            }
            (ok, shas)
        })
        .await
        .unwrap();
        assert!(ok >= 5, "got {ok} frames");
        assert!(
            shas.windows(2).all(|w| w[0] != w[1]),
            "each call returns a newer frame"
        );
        assert!(
            conns.load(std::sync::atomic::Ordering::SeqCst) >= 2,
            "the stream was reopened after it ended"
        );
    }
}
