//! Camera frame sources and per-frame checks.
//!
//! A source hands over JPEG bytes; before a frame is signed and stored it is validated
//! (a truncated or non-JPEG frame is refused and counted, never sent: the hub would
//! reject it anyway and a broken pipeline must be visible) and summarised: SHA-256 of
//! the JPEG and an 8x8 luma thumbnail, which lets the hub tell a frozen picture from a
//! still scene from heartbeats alone.

pub mod folder;
pub mod health;
pub mod http;
pub mod mjpeg;
pub mod rtsp;
pub mod synthetic;

use sha2::{Digest, Sha256};
use std::path::PathBuf;

/// Largest JPEG accepted from a source; leaves room under the protocol's message limit.
pub const MAX_JPEG_BYTES: usize = 3 * 1024 * 1024;

/// A frame as a source produced it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Frame {
    pub jpeg: Vec<u8>,
    /// Known luma thumbnail (the synthetic source has the pixels); computed otherwise.
    pub thumb: Option<[u8; 64]>,
    /// When the picture was captured (Unix ms, device clock), if the source knows it
    /// from the camera itself (RTSP: RTP timestamps mapped through RTCP sender
    /// reports). `None`: the agent stamps the time it asked for the frame, as for
    /// sources that fetch a current picture on request.
    pub captured_ms: Option<i64>,
}

impl Frame {
    /// A JPEG frame with nothing else known about it.
    pub fn new(jpeg: Vec<u8>) -> Self {
        Frame {
            jpeg,
            thumb: None,
            captured_ms: None,
        }
    }
}

/// A validated frame with its summary.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PreparedFrame {
    pub jpeg: Vec<u8>,
    pub width: u32,
    pub height: u32,
    pub sha256: [u8; 32],
    pub thumb: [u8; 64],
}

#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error("source I/O: {0}")]
    Io(String),
    #[error("no frame available yet")]
    NotReady,
    #[error("source misconfigured: {0}")]
    Config(String),
    /// A named problem (RTSP sources): `code` is stable and machine-readable (listed
    /// in docs/protocol.md under `source_problem`), `reason` says it in words, with any
    /// credentials already removed.
    #[error("{reason}")]
    Problem { code: &'static str, reason: String },
}

impl SourceError {
    /// The stable code reported in `source_problem` events.
    pub fn code(&self) -> &'static str {
        match self {
            SourceError::Io(_) => "source_io",
            SourceError::NotReady => "not_ready",
            SourceError::Config(_) => "misconfigured",
            SourceError::Problem { code, .. } => code,
        }
    }
}

/// Why a frame from a source was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum FrameError {
    #[error("frame is empty")]
    Empty,
    #[error("frame of {0} bytes is too large")]
    TooLarge(usize),
    #[error("frame does not start with a JPEG start-of-image marker")]
    NotJpeg,
    #[error("frame does not end with a JPEG end-of-image marker (truncated?)")]
    Truncated,
    #[error("JPEG does not decode: {0}")]
    Undecodable(String),
}

/// Where frames come from.
pub trait FrameSource: Send {
    /// Produce the next frame; `now_ms` is the capture time the agent will stamp
    /// unless the frame carries its own (`Frame::captured_ms`).
    fn next_frame(&mut self, now_ms: i64) -> Result<Frame, SourceError>;
}

/// Which source to use.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SourceConfig {
    /// Moving test pattern with the device clock burnt in.
    Synthetic { width: u32, height: u32 },
    /// Every `*.jpg`/`*.jpeg` in a folder, in name order, cycled.
    Folder(PathBuf),
    /// `GET url` per frame.
    HttpSnapshot { url: String },
    /// An MJPEG-over-HTTP stream (`multipart/x-mixed-replace`).
    Mjpeg { url: String },
    /// An RTSP camera (H.264 over RTP, interleaved on the RTSP TCP connection).
    /// Its `Debug` never shows the credentials.
    Rtsp(rtsp::RtspConfig),
}

impl Default for SourceConfig {
    fn default() -> Self {
        SourceConfig::Synthetic {
            width: 320,
            height: 240,
        }
    }
}

/// Build the configured source.
pub fn open_source(cfg: &SourceConfig) -> Result<Box<dyn FrameSource>, SourceError> {
    Ok(match cfg {
        SourceConfig::Synthetic { width, height } => {
            Box::new(synthetic::Synthetic::new(*width, *height)?)
        }
        SourceConfig::Folder(dir) => Box::new(folder::Folder::open(dir)?),
        SourceConfig::HttpSnapshot { url } => Box::new(http::Snapshot::new(url)),
        SourceConfig::Mjpeg { url } => Box::new(http::MjpegStream::new(url)),
        SourceConfig::Rtsp(cfg) => Box::new(rtsp::RtspSource::open(cfg.clone())),
    })
}

/// Validate a frame and compute its summary.
pub fn prepare(frame: Frame) -> Result<PreparedFrame, FrameError> {
    let jpeg = frame.jpeg;
    if jpeg.is_empty() {
        return Err(FrameError::Empty);
    }
    if jpeg.len() > MAX_JPEG_BYTES {
        return Err(FrameError::TooLarge(jpeg.len()));
    }
    if !jpeg.starts_with(&[0xFF, 0xD8, 0xFF]) {
        return Err(FrameError::NotJpeg);
    }
    // Some cameras pad after EOI; allow a little of that.
    let trimmed_len = jpeg.len()
        - jpeg
            .iter()
            .rev()
            .take(64)
            .take_while(|b| matches!(b, 0 | b'\r' | b'\n'))
            .count();
    if !jpeg
        .get(..trimmed_len)
        .is_some_and(|j| j.ends_with(&[0xFF, 0xD9]))
    {
        return Err(FrameError::Truncated);
    }
    let mut dec = jpeg_decoder::Decoder::new(&jpeg[..]);
    let (width, height, thumb) = match frame.thumb {
        Some(t) => {
            dec.read_info()
                .map_err(|e| FrameError::Undecodable(e.to_string()))?;
            let info = dec
                .info()
                .ok_or_else(|| FrameError::Undecodable("no header".into()))?;
            (u32::from(info.width), u32::from(info.height), t)
        }
        None => {
            // Decode at 1/8 scale (the IDCT does the downscaling): cheap enough per frame.
            dec.read_info()
                .map_err(|e| FrameError::Undecodable(e.to_string()))?;
            let info = dec
                .info()
                .ok_or_else(|| FrameError::Undecodable("no header".into()))?;
            let _ = dec.scale(
                info.width.div_ceil(8).max(1),
                info.height.div_ceil(8).max(1),
            );
            let pixels = dec
                .decode()
                .map_err(|e| FrameError::Undecodable(e.to_string()))?;
            let small = dec
                .info()
                .ok_or_else(|| FrameError::Undecodable("no header".into()))?;
            let luma = to_luma(&pixels, small.pixel_format);
            let thumb = thumbnail(&luma, u32::from(small.width), u32::from(small.height));
            (u32::from(info.width), u32::from(info.height), thumb)
        }
    };
    let sha256: [u8; 32] = Sha256::digest(&jpeg).into();
    Ok(PreparedFrame {
        jpeg,
        width,
        height,
        sha256,
        thumb,
    })
}

fn to_luma(pixels: &[u8], fmt: jpeg_decoder::PixelFormat) -> Vec<u8> {
    use jpeg_decoder::PixelFormat as P;
    match fmt {
        P::L8 => pixels.to_vec(),
        P::L16 => pixels
            .chunks_exact(2)
            .map(|c| c.first().copied().unwrap_or(0))
            .collect(),
        P::RGB24 => pixels
            .chunks_exact(3)
            .map(|c| luma(c.first(), c.get(1), c.get(2)))
            .collect(),
        P::CMYK32 => pixels
            .chunks_exact(4)
            .map(|c| {
                let k = u32::from(c.get(3).copied().unwrap_or(0));
                let f = |v: Option<&u8>| ((u32::from(v.copied().unwrap_or(0)) * k) / 255) as u8;
                luma(Some(&f(c.first())), Some(&f(c.get(1))), Some(&f(c.get(2))))
            })
            .collect(),
    }
}

fn luma(r: Option<&u8>, g: Option<&u8>, b: Option<&u8>) -> u8 {
    let v = |x: Option<&u8>| u32::from(x.copied().unwrap_or(0));
    ((299 * v(r) + 587 * v(g) + 114 * v(b)) / 1000) as u8
}

/// Mean luma of each cell of an 8x8 grid over a `w` x `h` luma image.
pub fn thumbnail(luma: &[u8], w: u32, h: u32) -> [u8; 64] {
    let mut sums = [0u64; 64];
    let mut counts = [0u64; 64];
    if w > 0 && h > 0 {
        for y in 0..h {
            for x in 0..w {
                let cell = ((y * 8 / h) * 8 + x * 8 / w) as usize;
                let v = luma.get((y * w + x) as usize).copied().unwrap_or(0);
                if let (Some(s), Some(c)) = (sums.get_mut(cell), counts.get_mut(cell)) {
                    *s += u64::from(v);
                    *c += 1;
                }
            }
        }
    }
    let mut out = [0u8; 64];
    for (i, o) in out.iter_mut().enumerate() {
        let c = counts.get(i).copied().unwrap_or(0);
        *o = sums
            .get(i)
            .copied()
            .unwrap_or(0)
            .checked_div(c)
            .unwrap_or(0) as u8;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn sample_jpeg(seed: u8) -> Vec<u8> {
        let (w, h) = (64u16, 48u16);
        let px: Vec<u8> = (0..(w as usize * h as usize))
            .flat_map(|i| [(i as u8).wrapping_add(seed), seed, 128])
            .collect();
        let mut out = Vec::new();
        jpeg_encoder::Encoder::new(&mut out, 80)
            .encode(&px, w, h, jpeg_encoder::ColorType::Rgb)
            .unwrap();
        out
    }

    #[test]
    fn good_jpeg_is_summarised() {
        let j = sample_jpeg(3);
        let p = prepare(Frame::new(j.clone())).unwrap();
        assert_eq!((p.width, p.height), (64, 48));
        assert_eq!(p.sha256.to_vec(), Sha256::digest(&j).to_vec());
        assert!(p.thumb.iter().any(|&v| v > 0));
        // Padding after EOI is tolerated.
        let mut padded = j.clone();
        padded.extend_from_slice(b"\r\n\0\0");
        assert!(prepare(Frame::new(padded)).is_ok());
    }

    #[test]
    fn bad_frames_are_refused_never_panic() {
        assert_eq!(prepare(Frame::new(vec![])), Err(FrameError::Empty));
        assert_eq!(
            prepare(Frame::new(b"<html>".to_vec())),
            Err(FrameError::NotJpeg)
        );
        let j = sample_jpeg(9);
        for n in 0..j.len() - 1 {
            assert!(
                prepare(Frame::new(j[..n].to_vec())).is_err(),
                "truncated at {n} accepted"
            );
        }
        // Garbage between SOI and EOI.
        let mut g = vec![0xFF, 0xD8, 0xFF];
        g.extend(std::iter::repeat_n(0x41, 500));
        g.extend([0xFF, 0xD9]);
        assert!(matches!(
            prepare(Frame::new(g)),
            Err(FrameError::Undecodable(_))
        ));
    }

    #[test]
    fn thumbnail_averages_cells() {
        let mut img = vec![0u8; 16 * 16];
        for y in 0..16 {
            for x in 8..16 {
                img[y * 16 + x] = 200;
            }
        }
        let t = thumbnail(&img, 16, 16);
        assert_eq!(t[0], 0);
        assert_eq!(t[7], 200);
        assert_eq!(thumbnail(&[], 0, 0), [0; 64]);
    }
}
