//! RTSP cameras: H.264 over RTP, read with retina (the RTSP client of Moonfire NVR).
//!
//! A worker thread runs its own small tokio runtime and one RTSP session at a time
//! (`DESCRIBE`, `SETUP` of the first H.264 video stream with RTP interleaved on the
//! RTSP TCP connection, `PLAY`), reconnecting with backoff when the session ends. It
//! decodes every access unit with openh264 (P-frames need the whole reference chain)
//! and keeps only the newest decoded picture together with its capture time;
//! [`RtspSource::next_frame`] hands out the newest picture it has not handed out
//! before, encoded as JPEG only then (at the agent's `capture_fps`, not the camera's
//! frame rate), or [`SourceError::NotReady`] when nothing new arrived. A stream that
//! freezes while its connection stays up therefore produces no new captures, and the
//! hub's liveness goes stale within its live window.
//!
//! Capture time comes from the camera: each picture's RTP timestamp mapped to the
//! camera's NTP clock through the newest RTCP sender report ([`sr::SrClock`]). A
//! picture without one (no report received yet, or a stream that sends none) has no
//! capture time and is not offered as a capture: the arrival time is never stamped in
//! its place. A capture time ahead of the agent's clock, or far behind it, means the
//! camera's clock is wrong: such pictures are refused too (a future capture time would
//! make a frame look fresher than it is).
//!
//! Problems are named ([`SourceError::Problem`]): the capture loop turns them into
//! `source_problem` / `source_recovered` events (`camera::health`). Credentials never
//! appear in them ([`RtspConfig::scrub`]).

pub mod picture;
pub mod sr;
#[cfg(any(test, feature = "rtsp-test-server"))]
pub mod testserver;
pub mod url;

pub use self::url::{redact, RtspConfig};

use super::{Frame, FrameSource, SourceError};
use crate::clock::now_ms;
use futures_util::StreamExt;
use picture::{Picture, JPEG_QUALITY};
use retina::client::{
    Credentials, PlayOptions, SessionOptions, SetupOptions, TcpTransportOptions, Transport,
};
use retina::codec::{CodecItem, FrameFormat};
use sr::SrClock;
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::watch;

/// A capture time this far ahead of the agent's clock at arrival is refused.
pub const MAX_AHEAD_MS: i64 = 500;
/// A capture time this far behind the agent's clock at arrival is refused (the hub
/// allows a device clock 2 s off; the picture would be stale anyway).
pub const MAX_BEHIND_MS: i64 = 2_000;
/// Access units in a row that fail to decode before it is reported.
const DECODE_ERRORS_REPORTED_AFTER: u64 = 10;

/// How patient the source is (tests shorten some of these).
#[derive(Clone, Debug)]
pub struct RtspTiming {
    /// How long `next_frame` waits for a newer picture before `NotReady`.
    pub wait: Duration,
    /// No new picture for this long while the session plays: `stalled`.
    pub stall_after: Duration,
    /// Nothing at all received (no RTP, no RTCP) for this long: reconnect.
    pub reconnect_after_silence: Duration,
    /// No usable sender report this long after `PLAY`: `no_sender_report`.
    pub sr_grace: Duration,
    /// Deadline of each of `DESCRIBE`, `SETUP`, `PLAY`.
    pub request_timeout: Duration,
    /// Wait before reconnecting, doubled after each failed attempt up to the maximum.
    pub min_backoff: Duration,
    pub max_backoff: Duration,
}

impl Default for RtspTiming {
    fn default() -> Self {
        RtspTiming {
            wait: Duration::from_millis(200),
            stall_after: Duration::from_secs(2),
            reconnect_after_silence: Duration::from_secs(10),
            sr_grace: Duration::from_secs(6),
            request_timeout: Duration::from_secs(10),
            min_backoff: Duration::from_millis(250),
            max_backoff: Duration::from_secs(2),
        }
    }
}

/// Counters of one source, for tests and logs.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RtspStats {
    pub sessions: u64,
    pub access_units: u64,
    pub decoded: u64,
    pub decode_errors: u64,
    pub published: u64,
    pub sender_reports: u64,
    /// Decoded pictures not offered: no capture time, or the camera's clock is off.
    pub untimed: u64,
}

struct Latest {
    counter: u64,
    picture: Arc<Picture>,
    captured_ms: i64,
}

#[derive(Default)]
struct Inner {
    latest: Option<Latest>,
    /// What is wrong now, if the worker knows (cleared by the next offered picture).
    problem: Option<(&'static str, String)>,
    /// Since when the current session plays (None between sessions).
    playing_since: Option<Instant>,
    /// When the last picture was decoded (offered or not).
    last_picture_at: Option<Instant>,
    stats: RtspStats,
}

#[derive(Default)]
struct Shared {
    inner: Mutex<Inner>,
    cv: Condvar,
}

impl Shared {
    fn with<R>(&self, f: impl FnOnce(&mut Inner) -> R) -> R {
        match self.inner.lock() {
            Ok(mut g) => f(&mut g),
            Err(p) => f(&mut p.into_inner()),
        }
    }

    fn set_problem(&self, code: &'static str, reason: String) {
        self.with(|i| {
            if i.problem.as_ref().map(|(c, _)| *c) != Some(code) {
                tracing::warn!(code, reason = %reason, "RTSP camera problem");
            }
            i.problem = Some((code, reason));
        });
        self.cv.notify_all();
    }

    fn publish(&self, picture: Picture, captured_ms: i64) {
        self.with(|i| {
            if let Some((code, _)) = i.problem.take() {
                tracing::info!(was = code, "RTSP camera pictures flow again");
            }
            let counter = i.latest.as_ref().map_or(0, |l| l.counter) + 1;
            i.latest = Some(Latest {
                counter,
                picture: Arc::new(picture),
                captured_ms,
            });
            i.stats.published += 1;
        });
        self.cv.notify_all();
    }
}

/// An RTSP camera as a frame source.
pub struct RtspSource {
    shared: Arc<Shared>,
    stop: watch::Sender<bool>,
    last_returned: u64,
    timing: RtspTiming,
}

impl RtspSource {
    /// Start reading `cfg` in the background (the first frames follow once the session
    /// plays and a sender report has arrived).
    pub fn open(cfg: RtspConfig) -> Self {
        Self::open_with(cfg, RtspTiming::default())
    }

    pub fn open_with(cfg: RtspConfig, timing: RtspTiming) -> Self {
        let shared = Arc::new(Shared::default());
        let (stop, stop_rx) = watch::channel(false);
        let (s, t) = (shared.clone(), timing.clone());
        let spawned = std::thread::Builder::new()
            .name("rtsp-camera".into())
            .spawn(move || worker(cfg, s, t, stop_rx));
        if let Err(e) = spawned {
            shared.set_problem("internal", format!("could not start the RTSP thread: {e}"));
        }
        RtspSource {
            shared,
            stop,
            last_returned: 0,
            timing,
        }
    }

    pub fn stats(&self) -> RtspStats {
        self.shared.with(|i| i.stats.clone())
    }
}

impl Drop for RtspSource {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
    }
}

impl FrameSource for RtspSource {
    fn next_frame(&mut self, _now_ms: i64) -> Result<Frame, SourceError> {
        let last = self.last_returned;
        let guard = match self.shared.inner.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        let (guard, _) = match self
            .shared
            .cv
            .wait_timeout_while(guard, self.timing.wait, |i| {
                i.latest.as_ref().is_none_or(|l| l.counter <= last)
            }) {
            Ok(r) => r,
            Err(p) => p.into_inner(),
        };
        if let Some(l) = guard.latest.as_ref().filter(|l| l.counter > last) {
            let (picture, captured_ms, counter) = (l.picture.clone(), l.captured_ms, l.counter);
            drop(guard);
            self.last_returned = counter;
            let jpeg = picture
                .to_jpeg(JPEG_QUALITY)
                .map_err(|reason| SourceError::Problem {
                    code: "encode_failed",
                    reason,
                })?;
            return Ok(Frame {
                jpeg,
                thumb: Some(picture.thumb()),
                captured_ms: Some(captured_ms),
            });
        }
        if let Some((code, reason)) = &guard.problem {
            return Err(SourceError::Problem {
                code,
                reason: reason.clone(),
            });
        }
        if let Some(playing) = guard.playing_since {
            let since = guard.last_picture_at.unwrap_or(playing).max(playing);
            let quiet = since.elapsed();
            if quiet >= self.timing.stall_after {
                return Err(SourceError::Problem {
                    code: "stalled",
                    reason: format!(
                        "no new picture from the camera for {:.0} s while its connection is up (stream frozen?)",
                        quiet.as_secs_f64().floor()
                    ),
                });
            }
        }
        Err(SourceError::NotReady)
    }
}

/// A problem that ends a session.
struct Problem {
    code: &'static str,
    reason: String,
}

fn problem(code: &'static str, reason: impl Into<String>) -> Problem {
    Problem {
        code,
        reason: reason.into(),
    }
}

/// Name a retina error (first line of its text only: the rest is packet context).
fn classify(cfg: &RtspConfig, step: &str, e: &retina::Error) -> Problem {
    let text = e.to_string();
    let first = cfg.scrub(text.lines().next().unwrap_or_default());
    match e.status_code() {
        Some(401) | Some(403) => problem(
            "auth_failed",
            format!("the camera refused the {step} request ({first}): wrong or missing user name or password"),
        ),
        Some(404) => problem(
            "not_found",
            format!("the camera has no such stream ({first}): check the URL's path"),
        ),
        Some(_) => problem("rtsp_error", format!("{step}: {first}")),
        None if first.starts_with("Unable to connect") => problem(
            "connect_failed",
            format!(
                "cannot connect to the camera at {}: {}",
                redact(&cfg.url),
                first
                    .strip_prefix("Unable to connect to RTSP server: ")
                    .unwrap_or(&first)
            ),
        ),
        None if first.contains("EOF") || first.contains("reset") || first.contains("Broken pipe") => {
            problem("connection_lost", format!("the camera closed the connection: {first}"))
        }
        None => problem("rtsp_error", format!("{step}: {first}")),
    }
}

fn worker(
    cfg: RtspConfig,
    shared: Arc<Shared>,
    timing: RtspTiming,
    mut stop: watch::Receiver<bool>,
) {
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            shared.set_problem("internal", format!("could not start the RTSP runtime: {e}"));
            return;
        }
    };
    rt.block_on(async move {
        let mut backoff = timing.min_backoff;
        loop {
            if *stop.borrow() {
                return;
            }
            shared.with(|i| i.stats.sessions += 1);
            let published_before = shared.with(|i| i.stats.published);
            let ended = tokio::select! {
                _ = stop.changed() => return,
                r = session(&cfg, &timing, &shared) => r,
            };
            shared.with(|i| i.playing_since = None);
            shared.set_problem(ended.code, ended.reason);
            // A session that delivered pictures starts the backoff afresh.
            if shared.with(|i| i.stats.published) > published_before {
                backoff = timing.min_backoff;
            }
            tokio::select! {
                _ = stop.changed() => return,
                _ = tokio::time::sleep(backoff) => {}
            }
            backoff = (backoff * 2).min(timing.max_backoff);
        }
    });
}

async fn timed<T>(
    cfg: &RtspConfig,
    t: &RtspTiming,
    step: &str,
    f: impl std::future::Future<Output = Result<T, retina::Error>>,
) -> Result<T, Problem> {
    match tokio::time::timeout(t.request_timeout, f).await {
        Ok(r) => r.map_err(|e| classify(cfg, step, &e)),
        Err(_) => Err(problem(
            "timeout",
            format!(
                "the camera did not answer {step} within {} s",
                t.request_timeout.as_secs()
            ),
        )),
    }
}

/// One RTSP session, until it ends (always with a problem: a camera stream does not
/// end on its own).
async fn session(cfg: &RtspConfig, t: &RtspTiming, shared: &Shared) -> Problem {
    match play(cfg, t, shared).await {
        Ok(p) | Err(p) => p,
    }
}

async fn play(cfg: &RtspConfig, t: &RtspTiming, shared: &Shared) -> Result<Problem, Problem> {
    let url = ::url::Url::parse(&cfg.url)
        .map_err(|e| problem("misconfigured", format!("{}: {e}", redact(&cfg.url))))?;
    let creds = cfg.username.as_ref().map(|u| Credentials {
        username: u.clone(),
        password: cfg.password.clone().unwrap_or_default(),
    });
    let opts = SessionOptions::default()
        .creds(creds)
        .user_agent(format!("threshold-agent/{}", env!("CARGO_PKG_VERSION")));
    let mut described = timed(
        cfg,
        t,
        "DESCRIBE",
        retina::client::Session::describe(url, opts),
    )
    .await?;
    let streams = described.streams();
    let Some(idx) = streams
        .iter()
        .position(|s| s.media() == "video" && s.encoding_name() == "h264")
    else {
        let offered: Vec<String> = streams
            .iter()
            .map(|s| format!("{}/{}", s.media(), s.encoding_name()))
            .collect();
        return Err(problem(
            "unsupported_codec",
            format!(
                "the camera offers no H.264 video (it offers: {}); only H.264 is supported: choose H.264 in the camera's settings",
                if offered.is_empty() { "nothing".to_owned() } else { offered.join(", ") }
            ),
        ));
    };
    let clock_rate = streams.get(idx).map_or(0, |s| s.clock_rate_hz());
    let mut clock = SrClock::new(clock_rate)
        .ok_or_else(|| problem("rtsp_error", "the H.264 stream has a zero clock rate"))?;
    timed(
        cfg,
        t,
        "SETUP",
        described.setup(
            idx,
            SetupOptions::default()
                .transport(Transport::Tcp(TcpTransportOptions::default()))
                .frame_format(FrameFormat::SIMPLE),
        ),
    )
    .await?;
    let playing = timed(cfg, t, "PLAY", described.play(PlayOptions::default())).await?;
    let mut demuxed = playing.demuxed().map_err(|e| classify(cfg, "PLAY", &e))?;
    let mut decoder = openh264::decoder::Decoder::new()
        .map_err(|e| problem("internal", format!("cannot start the H.264 decoder: {e}")))?;
    let played = Instant::now();
    shared.with(|i| {
        i.playing_since = Some(played);
        i.last_picture_at = None;
        i.problem = None;
    });
    tracing::info!(url = %redact(&cfg.url), "RTSP camera playing (H.264 over TCP)");
    let mut last_data = Instant::now();
    let mut last_offered = i64::MIN;
    let mut decode_errors_in_row = 0u64;
    loop {
        let poll = t.wait.max(Duration::from_millis(100));
        match tokio::time::timeout(poll, demuxed.next()).await {
            Err(_) => {
                if last_data.elapsed() >= t.reconnect_after_silence {
                    return Ok(problem(
                        "stalled",
                        format!(
                            "nothing received from the camera for {} s: reconnecting",
                            t.reconnect_after_silence.as_secs()
                        ),
                    ));
                }
            }
            Ok(None) => return Ok(problem("connection_lost", "the camera ended the stream")),
            Ok(Some(Err(e))) => return Ok(classify(cfg, "stream", &e)),
            Ok(Some(Ok(item))) => {
                last_data = Instant::now();
                match item {
                    CodecItem::VideoFrame(f) => {
                        shared.with(|i| i.stats.access_units += 1);
                        // Low 32 bits: the RTP timestamp as sent.
                        let rtp = f.timestamp().timestamp() as u32;
                        let arrival = now_ms();
                        match decoder.decode(f.data()) {
                            Ok(Some(yuv)) => {
                                decode_errors_in_row = 0;
                                let picture = Picture::from_yuv(&yuv);
                                shared.with(|i| {
                                    i.stats.decoded += 1;
                                    i.last_picture_at = Some(Instant::now());
                                });
                                offer(
                                    shared,
                                    picture,
                                    clock.capture_ms(rtp),
                                    arrival,
                                    &mut last_offered,
                                );
                            }
                            Ok(None) => {}
                            Err(e) => {
                                decode_errors_in_row += 1;
                                let n = shared.with(|i| {
                                    i.stats.decode_errors += 1;
                                    i.stats.decode_errors
                                });
                                if n.is_power_of_two() {
                                    tracing::warn!(error = %e, decode_errors = n, "H.264 access unit does not decode");
                                }
                                if decode_errors_in_row >= DECODE_ERRORS_REPORTED_AFTER {
                                    shared.set_problem(
                                        "decode_error",
                                        format!("{decode_errors_in_row} H.264 pictures in a row do not decode ({e}): corrupt stream or unsupported H.264 features"),
                                    );
                                }
                            }
                        }
                    }
                    CodecItem::Rtcp(pkt) => {
                        let sr = pkt
                            .pkts()
                            .next()
                            .and_then(|p| p.as_sender_report().ok().flatten())
                            .map(|sr| (sr.ntp_timestamp().0, sr.rtp_timestamp()));
                        if let Some((ntp, rtp)) = sr {
                            match clock.on_sender_report(ntp, rtp) {
                                Ok(()) => shared.with(|i| i.stats.sender_reports += 1),
                                Err(e) => shared.set_problem("bad_sender_report", e.to_string()),
                            }
                        }
                    }
                    _ => {}
                }
            }
        }
        if !clock.synced() && played.elapsed() >= t.sr_grace {
            shared.set_problem(
                "no_sender_report",
                format!(
                    "the stream has sent no RTCP sender report in {} s: capture time unknown, pictures not used",
                    t.sr_grace.as_secs()
                ),
            );
        }
    }
}

/// Offer a decoded picture with its capture time (camera clock), if it has one that
/// can be believed.
fn offer(
    shared: &Shared,
    picture: Option<Picture>,
    captured: Option<i64>,
    arrival: i64,
    last_offered: &mut i64,
) {
    let Some(picture) = picture else {
        shared.with(|i| i.stats.decode_errors += 1);
        return;
    };
    let refuse = |code: &'static str, reason: String| {
        shared.with(|i| i.stats.untimed += 1);
        shared.set_problem(code, reason);
    };
    match captured {
        // Before the first sender report: no capture time (reported after the grace).
        None => shared.with(|i| i.stats.untimed += 1),
        Some(c) if c > arrival + MAX_AHEAD_MS => refuse(
            "camera_clock_ahead",
            format!(
                "the camera's clock is {} ms ahead of this agent's (a picture captured after it arrived): its pictures are refused; set up NTP on the camera and this device",
                c - arrival
            ),
        ),
        Some(c) if arrival - c > MAX_BEHIND_MS => refuse(
            "camera_clock_behind",
            format!(
                "pictures arrive {} ms after the camera says it captured them: the camera's clock is behind (set up NTP on the camera) or the stream is delayed",
                arrival - c
            ),
        ),
        // Not newer than the last offered (a sender report stepped the clock back).
        Some(c) if c <= *last_offered => shared.with(|i| i.stats.untimed += 1),
        Some(c) => {
            *last_offered = c;
            shared.publish(picture, c);
        }
    }
}

#[cfg(test)]
mod tests;
