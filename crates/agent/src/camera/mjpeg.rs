//! Parser for MJPEG over HTTP (`multipart/x-mixed-replace`), as served by most IP
//! cameras, go2rtc and Frigate. Pure: bytes in, part bodies out, so it can be tested
//! against every way a TCP stream can split.
//!
//! Cameras disagree on details, so the parser is lenient where it is safe to be: the
//! boundary may be declared with or without a leading `--`, parts may or may not carry
//! `Content-Length` (without it a part ends at the next boundary), header lines may end
//! in `\n` or `\r\n`, and garbage between parts is skipped. Whatever comes out is still
//! validated as a JPEG by the caller. Memory is bounded by `max_part`.

/// Extract the boundary from a `Content-Type` header value.
pub fn boundary_from_content_type(ct: &str) -> Option<String> {
    let lower = ct.to_ascii_lowercase();
    if !lower.trim_start().starts_with("multipart/") {
        return None;
    }
    ct.split(';').map(str::trim).find_map(|p| {
        let (k, v) = p.split_once('=')?;
        if !k.trim().eq_ignore_ascii_case("boundary") {
            return None;
        }
        let v = v.trim().trim_matches('"');
        let v = v.strip_prefix("--").unwrap_or(v);
        (!v.is_empty()).then(|| v.to_string())
    })
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    SeekBoundary,
    Headers,
    Body(Option<usize>),
}

#[derive(Debug)]
pub struct MjpegParser {
    delim: Vec<u8>,
    buf: Vec<u8>,
    state: State,
    /// Where to resume searching in `buf` (avoids rescanning on every small read).
    scan_from: usize,
    max_part: usize,
    /// Bytes skipped because they were not part of a well-formed part.
    pub skipped_bytes: u64,
}

const MAX_HEADERS: usize = 8 * 1024;

fn find(hay: &[u8], needle: &[u8], from: usize) -> Option<usize> {
    if needle.is_empty() {
        return None;
    }
    hay.get(from..)?
        .windows(needle.len())
        .position(|w| w == needle)
        .map(|p| p + from)
}

impl MjpegParser {
    /// `boundary` without the leading `--`.
    pub fn new(boundary: &str, max_part: usize) -> Self {
        let mut delim = b"--".to_vec();
        delim.extend_from_slice(boundary.as_bytes());
        MjpegParser {
            delim,
            buf: Vec::new(),
            state: State::SeekBoundary,
            scan_from: 0,
            max_part,
            skipped_bytes: 0,
        }
    }

    /// Feed bytes; returns every part body completed by them, in order.
    pub fn push(&mut self, data: &[u8]) -> Vec<Vec<u8>> {
        self.buf.extend_from_slice(data);
        let mut out = Vec::new();
        loop {
            match self.state {
                State::SeekBoundary => match find(&self.buf, &self.delim, self.scan_from) {
                    Some(i) => {
                        self.skipped_bytes += i as u64;
                        self.buf.drain(..i + self.delim.len());
                        self.scan_from = 0;
                        self.state = State::Headers;
                    }
                    None => {
                        let keep = self.delim.len().saturating_sub(1).min(self.buf.len());
                        let drop = self.buf.len() - keep;
                        self.skipped_bytes += drop as u64;
                        self.buf.drain(..drop);
                        self.scan_from = 0;
                        break;
                    }
                },
                State::Headers => {
                    let crlf = find(&self.buf, b"\r\n\r\n", 0).map(|i| (i, 4));
                    let lf = find(&self.buf, b"\n\n", 0).map(|i| (i, 2));
                    let end = match (crlf, lf) {
                        (Some(a), Some(b)) => Some(if a.0 <= b.0 { a } else { b }),
                        (a, b) => a.or(b),
                    };
                    match end {
                        Some((i, n)) => {
                            let head =
                                String::from_utf8_lossy(self.buf.get(..i).unwrap_or_default())
                                    .to_string();
                            self.buf.drain(..i + n);
                            if head.trim_start().starts_with("--") {
                                // Closing delimiter `--boundary--`: the stream may go on
                                // (some servers restart it); look for the next part.
                                self.state = State::SeekBoundary;
                                continue;
                            }
                            let len = head
                                .lines()
                                .filter_map(|l| l.split_once(':'))
                                .find(|(k, _)| k.trim().eq_ignore_ascii_case("content-length"))
                                .and_then(|(_, v)| v.trim().parse::<usize>().ok());
                            self.state = match len {
                                Some(n) if n > self.max_part => State::SeekBoundary,
                                other => State::Body(other),
                            };
                        }
                        None if self.buf.len() > MAX_HEADERS => {
                            self.skipped_bytes += self.buf.len() as u64;
                            self.buf.clear();
                            self.state = State::SeekBoundary;
                        }
                        None => break,
                    }
                }
                State::Body(Some(n)) => {
                    if self.buf.len() < n {
                        break;
                    }
                    out.push(self.buf.drain(..n).collect());
                    self.state = State::SeekBoundary;
                }
                State::Body(None) => match find(&self.buf, &self.delim, self.scan_from) {
                    Some(i) => {
                        let mut body: Vec<u8> = self.buf.drain(..i).collect();
                        while body.last().is_some_and(|b| *b == b'\n' || *b == b'\r') {
                            body.pop();
                        }
                        if body.len() <= self.max_part {
                            out.push(body);
                        } else {
                            self.skipped_bytes += body.len() as u64;
                        }
                        self.scan_from = 0;
                        self.state = State::SeekBoundary;
                    }
                    None if self.buf.len() > self.max_part => {
                        self.skipped_bytes += self.buf.len() as u64;
                        self.buf.clear();
                        self.scan_from = 0;
                        self.state = State::SeekBoundary;
                    }
                    None => {
                        self.scan_from = self.buf.len().saturating_sub(self.delim.len());
                        break;
                    }
                },
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn part(b: &str, body: &[u8], with_len: bool) -> Vec<u8> {
        let mut v = format!("--{b}\r\nContent-Type: image/jpeg\r\n").into_bytes();
        if with_len {
            v.extend(format!("Content-Length: {}\r\n", body.len()).bytes());
        }
        v.extend_from_slice(b"\r\n");
        v.extend_from_slice(body);
        v.extend_from_slice(b"\r\n");
        v
    }

    fn bodies() -> Vec<Vec<u8>> {
        vec![
            b"\xff\xd8first\xff\xd9".to_vec(),
            b"\xff\xd8--notaboundary\r\n\xff\xd9".to_vec(),
            vec![0xAB; 3000],
        ]
    }

    fn stream(with_len: bool) -> Vec<u8> {
        let mut s = b"preamble garbage\r\n".to_vec();
        for b in bodies() {
            s.extend(part("myboundary", &b, with_len));
        }
        // One more boundary so the last part ends when lengths are absent.
        s.extend_from_slice(b"--myboundary\r\n");
        s
    }

    #[test]
    fn boundary_parsing() {
        assert_eq!(
            boundary_from_content_type("multipart/x-mixed-replace; boundary=frame").as_deref(),
            Some("frame")
        );
        assert_eq!(
            boundary_from_content_type("multipart/x-mixed-replace;boundary=\"--abc\"").as_deref(),
            Some("abc")
        );
        assert_eq!(boundary_from_content_type("image/jpeg"), None);
        assert_eq!(
            boundary_from_content_type("multipart/x-mixed-replace"),
            None
        );
    }

    #[test]
    fn every_split_point_yields_the_same_parts() {
        for with_len in [true, false] {
            let s = stream(with_len);
            let mut whole = MjpegParser::new("myboundary", 1 << 20);
            assert_eq!(whole.push(&s), bodies(), "with_len={with_len}");
            for k in 0..=s.len() {
                let mut p = MjpegParser::new("myboundary", 1 << 20);
                let mut got = p.push(&s[..k]);
                got.extend(p.push(&s[k..]));
                assert_eq!(got, bodies(), "split at {k}, with_len={with_len}");
            }
            let mut p = MjpegParser::new("myboundary", 1 << 20);
            let got: Vec<Vec<u8>> = s
                .iter()
                .flat_map(|b| p.push(std::slice::from_ref(b)))
                .collect();
            assert_eq!(got, bodies(), "byte by byte");
        }
    }

    #[test]
    fn oversized_parts_and_garbage_are_skipped_with_bounded_memory() {
        let mut p = MjpegParser::new("b", 100);
        let mut s = part("b", &[1u8; 500], true);
        s.extend(part("b", &[2u8; 500], false));
        s.extend(part("b", b"ok", true));
        s.extend_from_slice(b"--b\r\n");
        assert_eq!(p.push(&s), vec![b"ok".to_vec()]);
        let mut p = MjpegParser::new("b", 100);
        for _ in 0..1000 {
            p.push(&[0x55; 97]);
            assert!(p.buf.len() <= 100 + MAX_HEADERS);
        }
        // LF-only headers.
        let mut p = MjpegParser::new("x", 100);
        assert_eq!(
            p.push(b"--x\nContent-Length: 2\n\nhi--x\n"),
            vec![b"hi".to_vec()]
        );
    }

    #[test]
    fn random_noise_and_truncations_never_panic() {
        let s = stream(true);
        for n in 0..s.len() {
            let mut p = MjpegParser::new("myboundary", 4096);
            let _ = p.push(&s[..n]);
        }
        let mut x: u64 = 0xdead_beef_cafe_f00d;
        for _ in 0..300 {
            let mut b = s.clone();
            for _ in 0..5 {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                let i = (x as usize) % b.len();
                b[i] = (x >> 24) as u8;
            }
            let mut p = MjpegParser::new("myboundary", 4096);
            for c in b.chunks(7) {
                let _ = p.push(c);
            }
        }
    }
}
