//! The camera agent loop.
//!
//! Capture runs on its own thread at `capture_fps` (sources are blocking). Every frame
//! is validated, signed as a `frame` record and appended to the frames outbox, so what
//! the camera saw exists on its disk whether or not anyone is watching. Whether a frame
//! is also *uploaded* depends on demand: while a `stream` request is active (and during
//! an outage that began while one was active) frames are marked for upload, sent live
//! when connected, and otherwise wait in the outbox for the backlog after reconnect.
//! Frames nobody asked for stay local and age out of the ring. Heartbeats announce the
//! newest frame (seq, time, digest, thumbnail) several times a second.

use super::{CameraConfig, Device};
use crate::camera::health::{HealthEvent, SourceHealth};
use crate::camera::rtsp::redact;
use crate::camera::{open_source, prepare, PreparedFrame, SourceError};
use crate::clock::now_ms;
use crate::link::{shutdown_signalled, Downlink, LinkEvent};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use threshold_proto::body::{encode_frame_body, DeviceKind, FrameHeader, FrameSummary, Heartbeat};
use threshold_proto::Kind;
use tokio::sync::{mpsc, watch};

/// After a reconnect that ends an outage during which frames were wanted, keep marking
/// frames for upload this long, until the hub renews its stream request.
const RECONNECT_GRACE_MS: i64 = 5_000;

/// Stream demand, pure.
#[derive(Debug, Clone)]
pub(crate) struct Demand {
    until_ms: i64,
    fps: u32,
    outage_wanted: bool,
    last_upload_ms: Option<i64>,
}

impl Default for Demand {
    fn default() -> Self {
        Demand {
            until_ms: i64::MIN,
            fps: 1,
            outage_wanted: false,
            last_upload_ms: None,
        }
    }
}

impl Demand {
    pub fn on_stream(&mut self, until_ms: i64, fps: u32) {
        self.until_ms = until_ms;
        self.fps = fps.clamp(1, 30);
    }
    pub fn on_disconnect(&mut self, now_ms: i64) {
        self.outage_wanted = now_ms <= self.until_ms;
    }
    pub fn on_connect(&mut self, now_ms: i64) {
        if self.outage_wanted {
            self.until_ms = self.until_ms.max(now_ms + RECONNECT_GRACE_MS);
        }
        self.outage_wanted = false;
    }
    /// Whether the frame captured at `t` should be uploaded.
    pub fn want(&mut self, t: i64, connected: bool) -> bool {
        let active = t <= self.until_ms || (!connected && self.outage_wanted);
        if !active {
            return false;
        }
        // Throttle to fps, with half a capture interval of slack for jitter.
        let min_gap = 1000 / i64::from(self.fps.max(1));
        if self
            .last_upload_ms
            .is_some_and(|last| t - last < min_gap * 3 / 4)
        {
            return false;
        }
        self.last_upload_ms = Some(t);
        true
    }
}

/// Counters of the capture thread.
#[derive(Debug, Default)]
struct CaptureStats {
    refused: AtomicU64,
    source_errors: AtomicU64,
}

/// What the capture thread hands to the agent loop.
enum Captured {
    /// A frame and its capture time (device clock).
    Frame(i64, PreparedFrame),
    /// A change in the source's health, for the event log.
    Health(HealthEvent),
}

fn capture_thread(
    cfg: &CameraConfig,
    tx: mpsc::Sender<Captured>,
    stop: Arc<AtomicBool>,
    stats: Arc<CaptureStats>,
) -> anyhow::Result<std::thread::JoinHandle<()>> {
    let mut source = open_source(&cfg.source)?;
    let period = Duration::from_millis(1000 / u64::from(cfg.capture_fps.clamp(1, 30)));
    Ok(std::thread::Builder::new()
        .name("camera-capture".into())
        .spawn(move || {
            let mut next = Instant::now();
            let mut health = SourceHealth::new();
            while !stop.load(Ordering::Relaxed) {
                let asked = now_ms();
                let (frame, change) = match source.next_frame(asked) {
                    // The source's own capture time (RTSP: from the camera's clock via
                    // RTCP) when it has one; otherwise the time the frame was asked for.
                    Ok(f) => match (f.captured_ms.unwrap_or(asked), prepare(f)) {
                        (t, Ok(p)) => (Some((t, p)), health.on_frame(now_ms())),
                        (_, Err(e)) => {
                            let n = stats.refused.fetch_add(1, Ordering::Relaxed) + 1;
                            if n.is_power_of_two() {
                                tracing::warn!(error = %e, refused_total = n, "frame refused");
                            }
                            let reason = format!("the source's frame was refused: {e}");
                            (None, health.on_problem("bad_frame", &reason, now_ms()))
                        }
                    },
                    Err(SourceError::NotReady) => (None, health.on_idle(now_ms())),
                    Err(e) => {
                        // A snapshot or MJPEG URL may carry a password too.
                        let reason = redact(&e.to_string());
                        let n = stats.source_errors.fetch_add(1, Ordering::Relaxed) + 1;
                        if n.is_power_of_two() {
                            tracing::warn!(code = e.code(), error = %reason, errors_total = n, "camera source error");
                        }
                        (None, health.on_problem(e.code(), &reason, now_ms()))
                    }
                };
                if let Some(h) = change {
                    if tx.blocking_send(Captured::Health(h)).is_err() {
                        return;
                    }
                }
                if let Some((t, p)) = frame {
                    if tx.blocking_send(Captured::Frame(t, p)).is_err() {
                        return;
                    }
                }
                next += period;
                let now = Instant::now();
                if next > now {
                    std::thread::sleep(next - now);
                } else {
                    next = now;
                }
            }
        })?)
}

/// Run a camera agent until `shutdown` becomes true.
pub async fn run_camera(
    cfg: CameraConfig,
    mut shutdown: watch::Receiver<bool>,
) -> anyhow::Result<()> {
    let mut dev = Device::start(&cfg.common, DeviceKind::Camera, shutdown.clone()).await?;
    let (frame_tx, mut frame_rx) = mpsc::channel(8);
    let stop = Arc::new(AtomicBool::new(false));
    let stats = Arc::new(CaptureStats::default());
    let capture = capture_thread(&cfg, frame_tx, stop.clone(), stats.clone())?;
    let (wifi, mut wifi_rx) = crate::wifi::spawn(cfg.wifi.as_ref());
    let mut demand = Demand::default();
    let mut newest: Option<FrameSummary> = None;
    let mut hb = tokio::time::interval(dev.heartbeat);
    hb.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut sync = tokio::time::interval(Duration::from_secs(1));
    loop {
        tokio::select! {
            _ = shutdown_signalled(&mut shutdown) => break,
            Some(captured) = frame_rx.recv() => match captured {
                Captured::Frame(t, frame) => newest = Some(store_frame(&dev, &mut demand, t, frame)),
                Captured::Health(h) => dev.record_event(&h.to_event()),
            },
            Some(ev) = dev.link_events.recv() => {
                match &ev {
                    LinkEvent::Disconnected { at_ms } => demand.on_disconnect(*at_ms),
                    LinkEvent::Connected { at_ms } => demand.on_connect(*at_ms),
                    LinkEvent::Downlink(Downlink::Stream(s)) => demand.on_stream(s.until_ms, s.fps),
                    _ => {}
                }
                dev.on_link_transition(&ev);
            }
            _ = hb.tick() => {
                let outbox = dev.with_outbox(|o| o.stats());
                let body = serde_json::to_vec(&Heartbeat { frame: newest.clone(), outbox }).unwrap_or_default();
                dev.send_live(Kind::Heartbeat, body);
            }
            _ = sync.tick() => dev.with_outbox(|o| o.sync()),
            Some(ev) = wifi_rx.recv() => crate::wifi::record(&dev, cfg.wifi.as_ref(), &ev),
        }
    }
    drop(wifi);
    stop.store(true, Ordering::Relaxed);
    drop(frame_rx);
    let _ = tokio::task::spawn_blocking(move || capture.join()).await;
    dev.stop().await;
    Ok(())
}

fn store_frame(dev: &Device, demand: &mut Demand, t: i64, f: PreparedFrame) -> FrameSummary {
    let sha = hex::encode(f.sha256);
    let thumb = hex::encode(f.thumb);
    let header = FrameHeader {
        width: f.width,
        height: f.height,
        sha256: sha.clone(),
        thumb: thumb.clone(),
    };
    let body = encode_frame_body(&header, &f.jpeg);
    let connected = dev.link.is_connected();
    let upload = demand.want(t, connected);
    let now = now_ms();
    let (seq, msg, report) = dev.with_outbox(|o| {
        let seq = o.frames.next_seq();
        let msg = dev.signer.record(Kind::Frame, seq, t, body);
        let r = o.frames.append(seq, t, upload, &msg, now);
        (seq, msg, r)
    });
    match report {
        Ok(r) => {
            if let Some((a, b)) = r.evicted_unacked {
                dev.record_overflow(a, b);
            }
        }
        Err(e) => tracing::error!(error = %e, seq, "could not store frame on disk"),
    }
    if upload && connected {
        dev.link.send_live(msg);
    }
    FrameSummary {
        seq,
        time_ms: t,
        sha256: sha,
        thumb,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn demand_follows_stream_requests_outages_and_fps() {
        let mut d = Demand::default();
        assert!(!d.want(0, true), "nobody asked");
        d.on_stream(10_000, 5);
        assert!(d.want(0, true));
        assert!(!d.want(100, true), "5 fps: 200 ms apart");
        assert!(d.want(200, true));
        assert!(!d.want(10_200, true), "expired");
        // Outage while streaming: keep uploading (later) even past until_ms.
        d.on_stream(11_000, 5);
        d.on_disconnect(10_500);
        assert!(d.want(30_000, false));
        d.on_connect(31_000);
        assert!(d.want(31_200, true), "grace after reconnect");
        assert!(!d.want(40_000, true));
        // Outage while idle: frames stay local.
        d.on_disconnect(50_000);
        assert!(!d.want(50_200, false));
    }
}
