//! The RTSP source against a real RTSP server on a local port (`testserver`): every
//! wait is a condition with a deadline, re-checked on each `next_frame` (which itself
//! blocks until a new picture or a short timeout).

use super::testserver::{ServerOptions, TestRtspServer};
use super::*;
use crate::camera::prepare;
use std::time::Instant;

fn timing() -> RtspTiming {
    RtspTiming {
        wait: Duration::from_millis(100),
        stall_after: Duration::from_secs(1),
        reconnect_after_silence: Duration::from_secs(3),
        sr_grace: Duration::from_secs(1),
        request_timeout: Duration::from_secs(3),
        min_backoff: Duration::from_millis(50),
        max_backoff: Duration::from_millis(300),
    }
}

fn open(url: &str) -> RtspSource {
    RtspSource::open_with(RtspConfig::parse(url).unwrap(), timing())
}

/// Call `next_frame` until `f` accepts a result; fail after `secs`.
fn until<T>(
    src: &mut RtspSource,
    secs: u64,
    what: &str,
    mut f: impl FnMut(Result<Frame, SourceError>) -> Option<T>,
) -> T {
    let deadline = Instant::now() + Duration::from_secs(secs);
    let mut last = String::new();
    while Instant::now() < deadline {
        let r = src.next_frame(now_ms());
        last = match &r {
            Ok(f) => format!("frame captured at {:?}", f.captured_ms),
            Err(e) => format!("{} ({})", e.code(), e),
        };
        if let Some(v) = f(r) {
            return v;
        }
    }
    panic!(
        "timed out waiting for: {what} (last: {last}; stats {:?})",
        src.stats()
    );
}

fn frame(src: &mut RtspSource, what: &str) -> Frame {
    until(src, 15, what, Result::ok)
}

fn problem(src: &mut RtspSource, code: &str, frames_allowed: usize) -> String {
    let mut frames = 0;
    let r = until(src, 15, &format!("problem {code}"), |r| match r {
        Ok(_) => {
            frames += 1;
            None
        }
        Err(SourceError::Problem { code: c, reason }) if c == code => Some(reason),
        Err(_) => None,
    });
    assert!(
        frames <= frames_allowed,
        "{frames} frames while waiting for {code}"
    );
    r
}

fn thumb_diff(a: &[u8; 64], b: &[u8; 64]) -> f32 {
    a.iter()
        .zip(b)
        .map(|(x, y)| (f32::from(*x) - f32::from(*y)).abs())
        .sum::<f32>()
        / 64.0
}

#[test]
fn frames_carry_capture_times_from_sender_reports_across_the_rtp_wrap() {
    let server = TestRtspServer::start(ServerOptions::default()).unwrap();
    let mut src = open(&server.url());
    let mut frames = Vec::new();
    let started = now_ms();
    // More than a second of pictures: the RTP clock (starting 65536 ticks before
    // 2^32 at 90 kHz) wraps after 0.73 s.
    while frames.len() < 8 || now_ms() - started < 1_500 {
        let f = frame(&mut src, "a frame");
        let arrived = now_ms();
        let c = f.captured_ms.expect("capture time from the camera");
        assert!(
            c <= arrived + MAX_AHEAD_MS && arrived - c < 1_000,
            "captured {c}, arrived {arrived}"
        );
        let p = prepare(f.clone()).unwrap();
        assert_eq!((p.width, p.height), (160, 120));
        assert_eq!(Some(p.thumb), f.thumb, "thumbnail from the decoded picture");
        frames.push((c, p));
    }
    for w in frames.windows(2) {
        let (a, b) = (&w[0], &w[1]);
        assert!(b.0 > a.0, "capture times increase: {} then {}", a.0, b.0);
        assert!(
            b.0 - a.0 < 1_000,
            "no jump at the wrap: {} then {}",
            a.0,
            b.0
        );
        assert!(
            thumb_diff(&a.1.thumb, &b.1.thumb) > 0.5,
            "the picture moves"
        );
    }
    let s = src.stats();
    assert!(s.sender_reports >= 2, "{s:?}");
    assert_eq!(s.decode_errors, 0, "{s:?}");
    assert!(
        server.fragmented() > 0,
        "large NAL units went as FU-A fragments"
    );
    assert_eq!(server.plays(), 1);
}

#[test]
fn without_sender_reports_there_is_no_frame_only_a_reason_until_they_come() {
    let server = TestRtspServer::start(ServerOptions {
        sender_reports: false,
        ..Default::default()
    })
    .unwrap();
    let mut src = open(&server.url());
    let reason = problem(&mut src, "no_sender_report", 0);
    assert!(reason.contains("capture time unknown"), "{reason}");
    let s = src.stats();
    assert!(s.decoded > 0 && s.untimed > 0 && s.published == 0, "{s:?}");
    // Once the camera reports, its pictures have capture times and are used.
    server.set_sender_reports(true);
    let f = frame(&mut src, "a frame after the first sender report");
    assert!(f.captured_ms.is_some());
}

#[test]
fn a_frozen_stream_gives_no_new_frames_then_says_stalled_and_recovers() {
    let server = TestRtspServer::start(ServerOptions::default()).unwrap();
    let mut src = open(&server.url());
    let before = frame(&mut src, "a first frame").captured_ms.unwrap();
    server.freeze(true);
    // Pictures already on the wire may still come (at most a few), then nothing new.
    let reason = problem(&mut src, "stalled", 3);
    assert!(reason.contains("frozen"), "{reason}");
    for _ in 0..5 {
        assert!(src.next_frame(now_ms()).is_err(), "no frame while frozen");
    }
    assert_eq!(server.plays(), 1, "the connection stayed up");
    server.freeze(false);
    let after = frame(&mut src, "a frame after the freeze")
        .captured_ms
        .unwrap();
    assert!(after > before + 1_000, "{before} then {after}");
}

#[test]
fn the_same_picture_repeated_gets_new_capture_times_but_the_same_thumbnail() {
    let server = TestRtspServer::start(ServerOptions::default()).unwrap();
    let mut src = open(&server.url());
    frame(&mut src, "a first frame");
    server.repeat_picture(true);
    // Let the repeated picture reach the decoder, then compare a few.
    let mut seen: Vec<(i64, [u8; 64])> = Vec::new();
    until(&mut src, 15, "five repeated pictures", |r| {
        if let Ok(f) = r {
            seen.push((f.captured_ms.unwrap(), f.thumb.unwrap()));
        }
        let n = seen.len();
        (n >= 8
            && seen[n - 5..]
                .windows(2)
                .all(|w| thumb_diff(&w[0].1, &w[1].1) < 0.5 && w[1].0 > w[0].0))
        .then_some(())
    });
}

#[test]
fn a_vanished_server_is_named_and_the_source_reconnects_when_it_returns() {
    let server = TestRtspServer::start(ServerOptions::default()).unwrap();
    let mut src = open(&server.url());
    frame(&mut src, "a first frame");
    server.vanish();
    // First the dropped connection or the stall, then the refused reconnects.
    let reason = problem(&mut src, "connect_failed", 3);
    assert!(reason.contains("cannot connect"), "{reason}");
    server.revive().unwrap();
    let f = frame(&mut src, "a frame after the server returned");
    assert!(f.captured_ms.is_some());
    assert!(server.plays() >= 2, "a new session");
}

#[test]
fn credentials_are_used_and_never_repeated() {
    let server = TestRtspServer::start(ServerOptions {
        credentials: Some(("admin".into(), "s3cret-pw".into())),
        ..Default::default()
    })
    .unwrap();
    let mut none = open(&server.url());
    let r = problem(&mut none, "auth_failed", 0);
    assert!(r.contains("401"), "{r}");
    drop(none);
    let mut wrong = open(&server.url_with("admin", "wrong-pw-42"));
    let r = problem(&mut wrong, "auth_failed", 0);
    assert!(!r.contains("wrong-pw-42"), "{r}");
    drop(wrong);
    let mut right = open(&server.url_with("admin", "s3cret-pw"));
    assert!(frame(&mut right, "a frame with the right password")
        .captured_ms
        .is_some());
}

#[test]
fn a_stream_that_is_not_h264_is_named() {
    let server = TestRtspServer::start(ServerOptions {
        encoding: "H265".into(),
        ..Default::default()
    })
    .unwrap();
    let mut src = open(&server.url());
    let r = problem(&mut src, "unsupported_codec", 0);
    assert!(r.contains("video/h265"), "{r}");
}

#[test]
fn a_camera_clock_ahead_or_behind_is_refused() {
    let server = TestRtspServer::start(ServerOptions {
        camera_clock_offset_ms: 5_000,
        ..Default::default()
    })
    .unwrap();
    let mut src = open(&server.url());
    let r = problem(&mut src, "camera_clock_ahead", 0);
    assert!(r.contains("NTP"), "{r}");
    server.set_camera_clock_offset_ms(-5_000);
    problem(&mut src, "camera_clock_behind", 0);
    server.set_camera_clock_offset_ms(0);
    frame(&mut src, "a frame once the camera's clock is right");
}

#[test]
fn nothing_there_or_not_rtsp_at_all_is_named_never_a_panic() {
    // A port nobody listens on.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let mut src = open(&format!("rtsp://u:pw-77@127.0.0.1:{port}/x"));
    let r = problem(&mut src, "connect_failed", 0);
    assert!(!r.contains("pw-77"), "{r}");
    // Servers that answer with something else than RTSP, or with broken RTSP.
    let answers: [&[u8]; 5] = [
        b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello",
        b"RTSP/1.0 200 OK\r\nCSeq: 1\r\nContent-Type: application/sdp\r\nContent-Length: 9\r\n\r\nnot an sd",
        b"RTSP/1.0 200 OK\r\nCSeq: 1\r\nContent-Length: 99999999999\r\n\r\n",
        b"\x00\xff\x13garbage\r\n\r\n$\x00\xff\xff",
        b"RTSP/1.0 200 OK\r\nCSeq: 1\r\nContent-Type: application/sdp\r\nContent-Length: 60\r\n\r\nv=0\r\nm=video 0 RTP/AVP 96\r\na=rtpmap:96 H264/0\r\n",
    ];
    for answer in answers {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        std::thread::spawn(move || {
            for conn in l.incoming().take(50) {
                let Ok(mut s) = conn else { continue };
                let mut buf = [0u8; 2048];
                let _ = std::io::Read::read(&mut s, &mut buf);
                let _ = std::io::Write::write_all(&mut s, answer);
            }
        });
        let mut src = open(&format!("rtsp://{addr}/stream"));
        let r = until(&mut src, 15, "a named problem", |r| match r {
            Err(SourceError::Problem { code, reason }) => Some((code, reason)),
            Ok(_) => panic!("a frame from a server that is not a camera"),
            Err(_) => None,
        });
        assert!(!r.1.is_empty(), "{r:?}");
    }
}
