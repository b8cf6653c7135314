//! A minimal Motion-JPEG AVI (RIFF) writer: `hdrl` (`avih`, one `strl` with `strh` and a
//! BITMAPINFOHEADER `strf`), `movi` with one `00dc` chunk per JPEG, and an `idx1` index.
//! VLC, ffmpeg and most players accept this layout (OpenDML extensions are not needed
//! under 1 GB).

/// Largest AVI produced: it is built in memory, and classic RIFF AVI (without OpenDML)
/// is limited to about 1 GB anyway.
pub const MAX_AVI_BYTES: usize = 512 << 20;

fn u32le(v: &mut Vec<u8>, x: u32) {
    v.extend_from_slice(&x.to_le_bytes());
}

fn fourcc(v: &mut Vec<u8>, s: &[u8; 4]) {
    v.extend_from_slice(s);
}

/// Width and height from a JPEG's SOF marker, if it has one.
pub fn jpeg_size(b: &[u8]) -> Option<(u32, u32)> {
    let mut i = 2usize;
    while i + 4 <= b.len() {
        if b[i] != 0xFF {
            return None;
        }
        let marker = b[i + 1];
        if marker == 0xFF {
            i += 1;
            continue;
        }
        let len = usize::from(u16::from_be_bytes([b[i + 2], b[i + 3]]));
        // SOF0..SOF15, except DHT (C4), JPG (C8) and DAC (CC).
        if (0xC0..=0xCF).contains(&marker) && ![0xC4, 0xC8, 0xCC].contains(&marker) {
            let s = b.get(i + 5..i + 9)?;
            let h = u32::from(u16::from_be_bytes([s[0], s[1]]));
            let w = u32::from(u16::from_be_bytes([s[2], s[3]]));
            return Some((w, h));
        }
        if marker == 0xDA || len < 2 {
            return None;
        }
        i += 2 + len;
    }
    None
}

/// Write an MJPEG AVI of `frames` at `fps`. Returns None if it would be too large.
pub fn mjpeg_avi(frames: &[&[u8]], fps: u32) -> Option<Vec<u8>> {
    let fps = fps.clamp(1, 60);
    let (w, h) = frames.iter().find_map(|f| jpeg_size(f)).unwrap_or((0, 0));
    let n = u32::try_from(frames.len()).ok()?;
    let max_frame = frames.iter().map(|f| f.len()).max().unwrap_or(0);
    let movi_data: usize = frames.iter().map(|f| 8 + f.len() + (f.len() & 1)).sum();
    let total =
        12 + (12 + 56 + 8 + 12 + 56 + 8 + 40 + 8) + (12 + movi_data) + (8 + 16 * frames.len());
    if total > MAX_AVI_BYTES {
        return None;
    }
    let mut v = Vec::with_capacity(total);
    fourcc(&mut v, b"RIFF");
    u32le(&mut v, (total - 8) as u32);
    fourcc(&mut v, b"AVI ");
    // hdrl
    fourcc(&mut v, b"LIST");
    u32le(&mut v, 4 + (8 + 56) + (12 + (8 + 56) + (8 + 40)));
    fourcc(&mut v, b"hdrl");
    fourcc(&mut v, b"avih");
    u32le(&mut v, 56);
    u32le(&mut v, 1_000_000 / fps); // dwMicroSecPerFrame
    u32le(&mut v, (max_frame as u32).saturating_mul(fps)); // dwMaxBytesPerSec
    u32le(&mut v, 0); // dwPaddingGranularity
    u32le(&mut v, 0x10); // dwFlags: AVIF_HASINDEX
    u32le(&mut v, n); // dwTotalFrames
    u32le(&mut v, 0); // dwInitialFrames
    u32le(&mut v, 1); // dwStreams
    u32le(&mut v, max_frame as u32); // dwSuggestedBufferSize
    u32le(&mut v, w);
    u32le(&mut v, h);
    for _ in 0..4 {
        u32le(&mut v, 0);
    }
    // strl
    fourcc(&mut v, b"LIST");
    u32le(&mut v, 4 + (8 + 56) + (8 + 40));
    fourcc(&mut v, b"strl");
    fourcc(&mut v, b"strh");
    u32le(&mut v, 56);
    fourcc(&mut v, b"vids");
    fourcc(&mut v, b"MJPG");
    u32le(&mut v, 0); // dwFlags
    u32le(&mut v, 0); // wPriority, wLanguage
    u32le(&mut v, 0); // dwInitialFrames
    u32le(&mut v, 1); // dwScale
    u32le(&mut v, fps); // dwRate
    u32le(&mut v, 0); // dwStart
    u32le(&mut v, n); // dwLength
    u32le(&mut v, max_frame as u32); // dwSuggestedBufferSize
    u32le(&mut v, u32::MAX); // dwQuality: default
    u32le(&mut v, 0); // dwSampleSize
    v.extend_from_slice(&0u16.to_le_bytes()); // rcFrame
    v.extend_from_slice(&0u16.to_le_bytes());
    v.extend_from_slice(&(w as u16).to_le_bytes());
    v.extend_from_slice(&(h as u16).to_le_bytes());
    fourcc(&mut v, b"strf");
    u32le(&mut v, 40);
    u32le(&mut v, 40); // biSize
    u32le(&mut v, w);
    u32le(&mut v, h);
    v.extend_from_slice(&1u16.to_le_bytes()); // biPlanes
    v.extend_from_slice(&24u16.to_le_bytes()); // biBitCount
    fourcc(&mut v, b"MJPG");
    u32le(&mut v, w.saturating_mul(h).saturating_mul(3)); // biSizeImage
    for _ in 0..4 {
        u32le(&mut v, 0);
    }
    // movi
    fourcc(&mut v, b"LIST");
    u32le(&mut v, (4 + movi_data) as u32);
    let movi_at = v.len();
    fourcc(&mut v, b"movi");
    let mut index = Vec::with_capacity(frames.len());
    for f in frames {
        index.push(((v.len() - movi_at) as u32, f.len() as u32));
        fourcc(&mut v, b"00dc");
        u32le(&mut v, f.len() as u32);
        v.extend_from_slice(f);
        if f.len() & 1 == 1 {
            v.push(0);
        }
    }
    fourcc(&mut v, b"idx1");
    u32le(&mut v, 16 * n);
    for (off, len) in index {
        fourcc(&mut v, b"00dc");
        u32le(&mut v, 0x10); // AVIIF_KEYFRAME
        u32le(&mut v, off);
        u32le(&mut v, len);
    }
    debug_assert_eq!(v.len(), total);
    Some(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rd(b: &[u8], at: usize) -> u32 {
        u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
    }

    /// A tiny JPEG-shaped frame with an SOF0 of 64x48.
    fn frame(extra: usize) -> Vec<u8> {
        let mut f = vec![
            0xFF, 0xD8, 0xFF, 0xC0, 0, 11, 8, 0, 48, 0, 64, 1, 1, 0x11, 0,
        ];
        f.extend(std::iter::repeat_n(0xAB, extra));
        f.extend_from_slice(&[0xFF, 0xD9]);
        f
    }

    #[test]
    fn layout_is_a_valid_riff_avi() {
        let a = frame(3);
        let b = frame(4);
        let avi = mjpeg_avi(&[&a, &b], 5).unwrap();
        assert_eq!(&avi[0..4], b"RIFF");
        assert_eq!(rd(&avi, 4) as usize, avi.len() - 8);
        assert_eq!(&avi[8..12], b"AVI ");
        assert_eq!(&avi[12..16], b"LIST");
        assert_eq!(&avi[20..24], b"hdrl");
        assert_eq!(&avi[24..28], b"avih");
        assert_eq!(rd(&avi, 32), 200_000);
        assert_eq!(rd(&avi, 32 + 16), 2, "total frames");
        assert_eq!((rd(&avi, 32 + 32), rd(&avi, 32 + 36)), (64, 48));
        let hdrl_end = 20 + rd(&avi, 16) as usize;
        assert_eq!(&avi[hdrl_end..hdrl_end + 4], b"LIST");
        assert_eq!(&avi[hdrl_end + 8..hdrl_end + 12], b"movi");
        let movi_end = hdrl_end + 8 + rd(&avi, hdrl_end + 4) as usize;
        assert_eq!(&avi[movi_end..movi_end + 4], b"idx1");
        assert_eq!(rd(&avi, movi_end + 4), 32);
        // First index entry points at the first 00dc chunk, relative to "movi".
        let off = rd(&avi, movi_end + 16) as usize;
        assert_eq!(&avi[hdrl_end + 8 + off..hdrl_end + 12 + off], b"00dc");
        assert_eq!(rd(&avi, movi_end + 20) as usize, a.len());
        let strh = avi.windows(4).position(|w| w == b"strh").unwrap();
        assert_eq!(&avi[strh + 8..strh + 16], b"vidsMJPG");
    }

    #[test]
    fn jpeg_size_survives_garbage() {
        assert_eq!(jpeg_size(&frame(0)), Some((64, 48)));
        assert_eq!(jpeg_size(&[]), None);
        assert_eq!(jpeg_size(&[0xFF, 0xD8, 0xFF]), None);
        assert_eq!(jpeg_size(&[0xFF, 0xD8, 0xFF, 0xC0, 0, 2]), None);
        assert_eq!(jpeg_size(&[0xFF, 0xD8, 0x00, 0x00, 0x00]), None);
    }
}
