//! A small RTSP server for tests (built only for this crate's tests and with the
//! `rtsp-test-server` feature, never into the release binary).
//!
//! It speaks enough RTSP/1.0 for a real client (`OPTIONS`, `DESCRIBE` with an SDP
//! carrying H.264 `sprop-parameter-sets`, `SETUP` with RTP interleaved on the TCP
//! connection, `PLAY`, `GET_PARAMETER`/`SET_PARAMETER` keepalives, `TEARDOWN`, and
//! Basic authentication when credentials are set) and streams a synthetic moving
//! picture encoded by openh264: RTP with FU-A fragmentation of large NAL units, and
//! RTCP sender reports tying the RTP clock to this machine's wall clock (plus an
//! optional offset: a camera whose clock is wrong).
//!
//! Controls, each taking effect at once on every connection: [`TestRtspServer::freeze`]
//! (no new pictures while the connection stays up; sender reports continue),
//! [`TestRtspServer::repeat_picture`] (pictures keep coming, always the same one),
//! [`TestRtspServer::set_sender_reports`], [`TestRtspServer::vanish`] (every
//! connection closed, the port no longer listening) and [`TestRtspServer::revive`].

use super::sr::unix_ms_to_ntp;
use super::url::base64_encode;
use openh264::encoder::{BitRate, Encoder, EncoderConfig, FrameRate, IntraFramePeriod};
use openh264::formats::YUVBuffer;
use openh264::OpenH264API;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// How the server behaves.
#[derive(Clone, Debug)]
pub struct ServerOptions {
    pub width: usize,
    pub height: usize,
    pub fps: u32,
    /// Send RTCP sender reports at all.
    pub sender_reports: bool,
    pub sr_interval: Duration,
    /// Require Basic authentication with these.
    pub credentials: Option<(String, String)>,
    /// The SDP's encoding name (`H264`; anything else is announced but not streamed).
    pub encoding: String,
    /// The first RTP timestamp (near `u32::MAX` to cross the wrap early).
    pub rtp_start: u32,
    /// The camera's clock minus this machine's, in the sender reports.
    pub camera_clock_offset_ms: i64,
    /// Largest RTP payload; bigger NAL units are sent as FU-A fragments.
    pub max_payload: usize,
}

impl Default for ServerOptions {
    fn default() -> Self {
        ServerOptions {
            width: 160,
            height: 120,
            fps: 10,
            sender_reports: true,
            sr_interval: Duration::from_millis(500),
            credentials: None,
            encoding: "H264".into(),
            rtp_start: 0xFFFF_0000,
            camera_clock_offset_ms: 0,
            max_payload: 600,
        }
    }
}

#[derive(Default)]
struct Control {
    stop: AtomicBool,
    frozen: AtomicBool,
    repeat: AtomicBool,
    sender_reports: AtomicBool,
    clock_offset_ms: AtomicI64,
    /// Bumped by `vanish`: connections of an older epoch end.
    epoch: AtomicU64,
    connections: AtomicU64,
    plays: AtomicU64,
    pictures: AtomicU64,
    reports: AtomicU64,
    fragmented: AtomicU64,
    streams: Mutex<Vec<TcpStream>>,
    listener: Mutex<Option<TcpListener>>,
}

/// A running test server on 127.0.0.1.
pub struct TestRtspServer {
    addr: SocketAddr,
    ctl: Arc<Control>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    match m.lock() {
        Ok(g) => g,
        Err(p) => p.into_inner(),
    }
}

fn wall_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

impl TestRtspServer {
    pub fn start(opts: ServerOptions) -> io::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?;
        let ctl = Arc::new(Control::default());
        ctl.sender_reports
            .store(opts.sender_reports, Ordering::SeqCst);
        ctl.clock_offset_ms
            .store(opts.camera_clock_offset_ms, Ordering::SeqCst);
        *lock(&ctl.listener) = Some(listener);
        let sprop = parameter_sets(&opts)?;
        let (c, o) = (ctl.clone(), Arc::new(opts));
        std::thread::Builder::new()
            .name("test-rtsp-accept".into())
            .spawn(move || accept_loop(c, o, Arc::new(sprop)))?;
        Ok(TestRtspServer { addr, ctl })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `rtsp://127.0.0.1:PORT/stream`.
    pub fn url(&self) -> String {
        format!("rtsp://{}/stream", self.addr)
    }

    /// The URL with `user:password@` in it.
    pub fn url_with(&self, user: &str, password: &str) -> String {
        format!("rtsp://{user}:{password}@{}/stream", self.addr)
    }

    /// Stop sending pictures (sender reports continue), connections stay up.
    pub fn freeze(&self, on: bool) {
        self.ctl.frozen.store(on, Ordering::SeqCst);
    }

    /// Keep sending pictures, always the same one.
    pub fn repeat_picture(&self, on: bool) {
        self.ctl.repeat.store(on, Ordering::SeqCst);
    }

    pub fn set_sender_reports(&self, on: bool) {
        self.ctl.sender_reports.store(on, Ordering::SeqCst);
    }

    pub fn set_camera_clock_offset_ms(&self, ms: i64) {
        self.ctl.clock_offset_ms.store(ms, Ordering::SeqCst);
    }

    /// Close every connection and stop listening (the camera is unplugged).
    pub fn vanish(&self) {
        self.ctl.epoch.fetch_add(1, Ordering::SeqCst);
        *lock(&self.ctl.listener) = None;
        for s in lock(&self.ctl.streams).drain(..) {
            let _ = s.shutdown(Shutdown::Both);
        }
    }

    /// Listen again on the same port.
    pub fn revive(&self) -> io::Result<()> {
        let l = TcpListener::bind(self.addr)?;
        l.set_nonblocking(true)?;
        *lock(&self.ctl.listener) = Some(l);
        Ok(())
    }

    pub fn connections(&self) -> u64 {
        self.ctl.connections.load(Ordering::SeqCst)
    }
    pub fn plays(&self) -> u64 {
        self.ctl.plays.load(Ordering::SeqCst)
    }
    /// Pictures sent, over all connections.
    pub fn pictures(&self) -> u64 {
        self.ctl.pictures.load(Ordering::SeqCst)
    }
    pub fn sender_reports(&self) -> u64 {
        self.ctl.reports.load(Ordering::SeqCst)
    }
    /// NAL units sent as FU-A fragments.
    pub fn fragmented(&self) -> u64 {
        self.ctl.fragmented.load(Ordering::SeqCst)
    }
}

impl Drop for TestRtspServer {
    fn drop(&mut self) {
        self.ctl.stop.store(true, Ordering::SeqCst);
        self.vanish();
    }
}

fn accept_loop(ctl: Arc<Control>, opts: Arc<ServerOptions>, sprop: Arc<String>) {
    while !ctl.stop.load(Ordering::SeqCst) {
        let accepted = lock(&ctl.listener).as_ref().map(|l| l.accept());
        match accepted {
            Some(Ok((s, _))) => {
                let epoch = ctl.epoch.load(Ordering::SeqCst);
                ctl.connections.fetch_add(1, Ordering::SeqCst);
                let (c, o, sp) = (ctl.clone(), opts.clone(), sprop.clone());
                let _ = std::thread::Builder::new()
                    .name("test-rtsp-conn".into())
                    .spawn(move || {
                        let _ = serve(s, &c, &o, &sp, epoch);
                    });
            }
            // Nothing waiting, or not listening (vanished): look again shortly.
            _ => std::thread::sleep(Duration::from_millis(5)),
        }
    }
}

fn encoder(opts: &ServerOptions) -> io::Result<Encoder> {
    let cfg = EncoderConfig::new()
        .skip_frames(false)
        .bitrate(BitRate::from_bps(1_000_000))
        .max_frame_rate(FrameRate::from_hz(opts.fps as f32))
        .intra_frame_period(IntraFramePeriod::from_num_frames(opts.fps.max(1) * 2));
    Encoder::with_api_config(OpenH264API::from_source(), cfg)
        .map_err(|e| io::Error::other(format!("openh264 encoder: {e}")))
}

/// The synthetic picture number `n`: a gradient that drifts and a bright moving box.
fn render(w: usize, h: usize, n: u64) -> YUVBuffer {
    let mut buf = vec![128u8; w * h * 3 / 2];
    let shift = (n * 5) as usize;
    let box_x = (n as usize * 7) % w.saturating_sub(24).max(1);
    for y in 0..h {
        for x in 0..w {
            let in_box = (x >= box_x && x < box_x + 24) && (h / 3..h / 3 + 24).contains(&y);
            buf[y * w + x] = if in_box {
                235
            } else {
                (16 + ((x + y + shift) % 200)) as u8
            };
        }
    }
    let cw = w / 2;
    for i in 0..(w / 2) * (h / 2) {
        buf[w * h + i] = 128 + ((i % cw) as u8 / 4);
    }
    YUVBuffer::from_vec(buf, w, h)
}

/// The NAL units of one encoded picture, start codes removed.
fn encode(enc: &mut Encoder, yuv: &YUVBuffer) -> io::Result<Vec<Vec<u8>>> {
    let bs = enc
        .encode(yuv)
        .map_err(|e| io::Error::other(format!("encode: {e}")))?;
    let mut nals = Vec::new();
    for l in 0..bs.num_layers() {
        let Some(layer) = bs.layer(l) else { continue };
        for i in 0..layer.nal_count() {
            let Some(nal) = layer.nal_unit(i) else {
                continue;
            };
            let nal = nal
                .strip_prefix(&[0, 0, 0, 1])
                .or_else(|| nal.strip_prefix(&[0, 0, 1]))
                .unwrap_or(nal);
            if !nal.is_empty() {
                nals.push(nal.to_vec());
            }
        }
    }
    Ok(nals)
}

/// `sprop-parameter-sets` and `profile-level-id` for the SDP, from a first picture.
fn parameter_sets(opts: &ServerOptions) -> io::Result<String> {
    let mut enc = encoder(opts)?;
    let nals = encode(&mut enc, &render(opts.width, opts.height, 0))?;
    let find = |t: u8| {
        nals.iter()
            .find(|n| n.first().is_some_and(|b| b & 0x1F == t))
    };
    let (Some(sps), Some(pps)) = (find(7), find(8)) else {
        return Err(io::Error::other("the encoder produced no SPS/PPS"));
    };
    let pli = sps
        .get(1..4)
        .map(hex::encode)
        .unwrap_or_else(|| "42c01f".into());
    Ok(format!(
        "profile-level-id={pli};sprop-parameter-sets={},{}",
        base64_encode(sps),
        base64_encode(pps)
    ))
}

struct Request {
    method: String,
    headers: Vec<(String, String)>,
}

impl Request {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// The next request on the connection; interleaved data from the client is skipped.
fn read_request(r: &mut impl BufRead) -> Option<Request> {
    loop {
        let first = *r.fill_buf().ok()?.first()?;
        if first == b'$' {
            let mut head = [0u8; 4];
            r.read_exact(&mut head).ok()?;
            let len = u16::from_be_bytes([head[2], head[3]]);
            io::copy(&mut r.by_ref().take(u64::from(len)), &mut io::sink()).ok()?;
            continue;
        }
        let mut line = String::new();
        r.read_line(&mut line).ok()?;
        if line.trim().is_empty() {
            continue;
        }
        let method = line.split_whitespace().next()?.to_owned();
        let mut headers = Vec::new();
        loop {
            let mut h = String::new();
            if r.read_line(&mut h).ok()? == 0 {
                return None;
            }
            if h.trim().is_empty() {
                break;
            }
            if let Some((k, v)) = h.split_once(':') {
                headers.push((k.trim().to_owned(), v.trim().to_owned()));
            }
        }
        let req = Request { method, headers };
        let len: u64 = req
            .header("content-length")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        io::copy(&mut r.by_ref().take(len.min(65_536)), &mut io::sink()).ok()?;
        return Some(req);
    }
}

const SESSION: &str = "4F2A9C1D";
const SSRC: u32 = 0x5EED_CAFE;

fn serve(
    stream: TcpStream,
    ctl: &Arc<Control>,
    opts: &Arc<ServerOptions>,
    sprop: &str,
    epoch: u64,
) -> io::Result<()> {
    stream.set_nonblocking(false)?;
    stream.set_nodelay(true)?;
    lock(&ctl.streams).push(stream.try_clone()?);
    if ctl.epoch.load(Ordering::SeqCst) != epoch {
        return Ok(());
    }
    let writer = Arc::new(Mutex::new(stream.try_clone()?));
    let mut reader = BufReader::new(stream.try_clone()?);
    let playing = Arc::new(AtomicBool::new(false));
    let base = format!("rtsp://{}/stream/", stream.local_addr()?);
    let respond = |cseq: &str, status: &str, extra: &str, body: &str| -> io::Result<()> {
        let msg = format!(
            "RTSP/1.0 {status}\r\nCSeq: {cseq}\r\nServer: threshold-test-rtsp\r\n{extra}Content-Length: {}\r\n\r\n{body}",
            body.len()
        );
        lock(&writer).write_all(msg.as_bytes())
    };
    let result = (|| -> io::Result<()> {
        while let Some(req) = read_request(&mut reader) {
            if ctl.epoch.load(Ordering::SeqCst) != epoch || ctl.stop.load(Ordering::SeqCst) {
                break;
            }
            let cseq = req.header("cseq").unwrap_or("0").to_owned();
            if let Some((u, p)) = &opts.credentials {
                let want = format!("Basic {}", base64_encode(format!("{u}:{p}").as_bytes()));
                if req.header("authorization") != Some(want.as_str()) {
                    respond(
                        &cseq,
                        "401 Unauthorized",
                        "WWW-Authenticate: Basic realm=\"threshold-test\"\r\n",
                        "",
                    )?;
                    continue;
                }
            }
            let session = format!("Session: {SESSION};timeout=60\r\n");
            match req.method.as_str() {
                "OPTIONS" => respond(
                    &cseq,
                    "200 OK",
                    "Public: OPTIONS, DESCRIBE, SETUP, PLAY, TEARDOWN, GET_PARAMETER, SET_PARAMETER\r\n",
                    "",
                )?,
                "DESCRIBE" => {
                    let fmtp = if opts.encoding.eq_ignore_ascii_case("h264") {
                        format!("a=fmtp:96 packetization-mode=1;{sprop}\r\n")
                    } else {
                        String::new()
                    };
                    let sdp = format!(
                        "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=Threshold test camera\r\nc=IN IP4 0.0.0.0\r\nt=0 0\r\n\
                         m=video 0 RTP/AVP 96\r\na=rtpmap:96 {}/90000\r\n{fmtp}a=control:trackID=0\r\n",
                        opts.encoding
                    );
                    respond(
                        &cseq,
                        "200 OK",
                        &format!("Content-Type: application/sdp\r\nContent-Base: {base}\r\n"),
                        &sdp,
                    )?
                }
                "SETUP" => respond(
                    &cseq,
                    "200 OK",
                    &format!(
                        "Transport: RTP/AVP/TCP;unicast;interleaved=0-1;ssrc={SSRC:08X}\r\n{session}"
                    ),
                    "",
                )?,
                "PLAY" => {
                    respond(&cseq, "200 OK", &format!("{session}Range: npt=0.000-\r\n"), "")?;
                    if !playing.swap(true, Ordering::SeqCst) {
                        ctl.plays.fetch_add(1, Ordering::SeqCst);
                        let (w, c, o, p) =
                            (writer.clone(), ctl.clone(), opts.clone(), playing.clone());
                        std::thread::Builder::new()
                            .name("test-rtsp-stream".into())
                            .spawn(move || {
                                let _ = stream_pictures(&w, &c, &o, &p, epoch);
                                p.store(false, Ordering::SeqCst);
                            })?;
                    }
                }
                "GET_PARAMETER" | "SET_PARAMETER" => respond(&cseq, "200 OK", &session, "")?,
                "TEARDOWN" => {
                    respond(&cseq, "200 OK", &session, "")?;
                    break;
                }
                _ => respond(&cseq, "501 Not Implemented", "", "")?,
            }
        }
        Ok(())
    })();
    playing.store(false, Ordering::SeqCst);
    let _ = stream.shutdown(Shutdown::Both);
    result
}

fn interleaved(channel: u8, data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len() + 4);
    out.push(b'$');
    out.push(channel);
    out.extend_from_slice(&(data.len() as u16).to_be_bytes());
    out.extend_from_slice(data);
    out
}

fn rtp_packet(seq: u16, ts: u32, marker: bool, payload: &[u8]) -> Vec<u8> {
    let mut p = Vec::with_capacity(12 + payload.len());
    p.push(0x80);
    p.push(if marker { 0x80 | 96 } else { 96 });
    p.extend_from_slice(&seq.to_be_bytes());
    p.extend_from_slice(&ts.to_be_bytes());
    p.extend_from_slice(&SSRC.to_be_bytes());
    p.extend_from_slice(payload);
    p
}

/// RTCP sender report (RFC 3550 §6.4.1) without report blocks.
fn sender_report(ntp: u64, rtp: u32, packets: u32, octets: u32) -> Vec<u8> {
    let mut p = Vec::with_capacity(28);
    p.extend_from_slice(&[0x80, 200, 0, 6]);
    p.extend_from_slice(&SSRC.to_be_bytes());
    p.extend_from_slice(&ntp.to_be_bytes());
    p.extend_from_slice(&rtp.to_be_bytes());
    p.extend_from_slice(&packets.to_be_bytes());
    p.extend_from_slice(&octets.to_be_bytes());
    p
}

/// RTP packets (RFC 6184) of one access unit: single NAL unit packets, or FU-A
/// fragments for NAL units larger than `max`.
fn packetize(nals: &[Vec<u8>], max: usize, fragmented: &AtomicU64) -> Vec<(bool, Vec<u8>)> {
    let mut out = Vec::new();
    for (i, nal) in nals.iter().enumerate() {
        let last_nal = i + 1 == nals.len();
        let Some((&hdr, body)) = nal.split_first() else {
            continue;
        };
        if nal.len() <= max {
            out.push((last_nal, nal.clone()));
            continue;
        }
        fragmented.fetch_add(1, Ordering::Relaxed);
        let chunks: Vec<&[u8]> = body.chunks(max.saturating_sub(2).max(1)).collect();
        for (j, c) in chunks.iter().enumerate() {
            let (start, end) = (j == 0, j + 1 == chunks.len());
            let mut p = vec![
                (hdr & 0xE0) | 28,
                (hdr & 0x1F) | if start { 0x80 } else { 0 } | if end { 0x40 } else { 0 },
            ];
            p.extend_from_slice(c);
            out.push((last_nal && end, p));
        }
    }
    out
}

fn stream_pictures(
    writer: &Mutex<TcpStream>,
    ctl: &Control,
    opts: &ServerOptions,
    playing: &AtomicBool,
    epoch: u64,
) -> io::Result<()> {
    let mut enc = encoder(opts)?;
    let t0 = Instant::now();
    let period = Duration::from_secs(1) / opts.fps.max(1);
    let mut next = t0;
    let mut seq: u16 = 4242;
    let mut picture = 0u64;
    let mut last_sr: Option<Instant> = None;
    let (mut packets, mut octets) = (0u32, 0u32);
    while playing.load(Ordering::SeqCst)
        && !ctl.stop.load(Ordering::SeqCst)
        && ctl.epoch.load(Ordering::SeqCst) == epoch
    {
        let now = Instant::now();
        let camera_ms = wall_ms() + ctl.clock_offset_ms.load(Ordering::SeqCst);
        let ts = opts
            .rtp_start
            .wrapping_add(((now - t0).as_micros() * 9 / 100) as u32);
        let mut out = Vec::new();
        if ctl.sender_reports.load(Ordering::SeqCst)
            && last_sr.is_none_or(|l| now - l >= opts.sr_interval)
        {
            out.extend(interleaved(
                1,
                &sender_report(unix_ms_to_ntp(camera_ms), ts, packets, octets),
            ));
            last_sr = Some(now);
            ctl.reports.fetch_add(1, Ordering::SeqCst);
        }
        if !ctl.frozen.load(Ordering::SeqCst) && opts.encoding.eq_ignore_ascii_case("h264") {
            if !ctl.repeat.load(Ordering::SeqCst) {
                picture += 1;
            }
            let nals = encode(&mut enc, &render(opts.width, opts.height, picture))?;
            for (marker, payload) in packetize(&nals, opts.max_payload, &ctl.fragmented) {
                let pkt = rtp_packet(seq, ts, marker, &payload);
                seq = seq.wrapping_add(1);
                packets = packets.wrapping_add(1);
                octets = octets.wrapping_add(payload.len() as u32);
                out.extend(interleaved(0, &pkt));
            }
            ctl.pictures.fetch_add(1, Ordering::SeqCst);
        }
        if !out.is_empty() {
            lock(writer).write_all(&out)?;
        }
        // The camera's frame clock.
        next += period;
        let now = Instant::now();
        if next > now {
            std::thread::sleep(next - now);
        } else {
            next = now;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fu_a_fragments_reassemble_to_the_nal_unit() {
        let nal: Vec<u8> = std::iter::once(0x65)
            .chain((0..2000).map(|i| i as u8))
            .collect();
        let small = vec![0x41, 1, 2, 3];
        let n = AtomicU64::new(0);
        let pkts = packetize(&[small.clone(), nal.clone()], 600, &n);
        assert_eq!(n.load(Ordering::Relaxed), 1);
        assert_eq!(pkts[0], (false, small));
        let frags = &pkts[1..];
        assert!(frags.len() >= 4);
        assert!(frags
            .iter()
            .all(|(_, p)| p.len() <= 600 && p[0] & 0x1F == 28));
        assert_eq!(frags[0].1[1] & 0xC0, 0x80, "start bit");
        assert_eq!(frags.last().unwrap().1[1] & 0xC0, 0x40, "end bit");
        assert!(
            frags.last().unwrap().0,
            "marker on the access unit's last packet"
        );
        let mut re = vec![(frags[0].1[0] & 0xE0) | (frags[0].1[1] & 0x1F)];
        for (_, p) in frags {
            re.extend_from_slice(&p[2..]);
        }
        assert_eq!(re, nal);
    }
}
