//! The synthetic source: a moving test pattern with the device clock burnt in as big
//! digits. It is the demo's default camera, and it makes staleness visible to a human:
//! a viewer that shows an old frame shows an old time.

use super::{thumbnail, Frame, FrameSource, SourceError};

pub struct Synthetic {
    width: u32,
    height: u32,
}

impl Synthetic {
    pub fn new(width: u32, height: u32) -> Result<Self, SourceError> {
        if !(64..=1920).contains(&width) || !(48..=1080).contains(&height) {
            return Err(SourceError::Config(format!(
                "synthetic size {width}x{height} outside 64x48..1920x1080"
            )));
        }
        Ok(Synthetic { width, height })
    }
}

/// 3x5 glyphs for `0-9`, `:` and `.`; each row is 3 bits, MSB left.
fn glyph(c: char) -> [u8; 5] {
    match c {
        '0' => [7, 5, 5, 5, 7],
        '1' => [2, 6, 2, 2, 7],
        '2' => [7, 1, 7, 4, 7],
        '3' => [7, 1, 7, 1, 7],
        '4' => [5, 5, 7, 1, 1],
        '5' => [7, 4, 7, 1, 7],
        '6' => [7, 4, 7, 5, 7],
        '7' => [7, 1, 1, 1, 1],
        '8' => [7, 5, 7, 5, 7],
        '9' => [7, 5, 7, 1, 7],
        ':' => [0, 2, 0, 2, 0],
        '.' => [0, 0, 0, 0, 2],
        _ => [0; 5],
    }
}

/// `HH:MM:SS.mmm` (UTC) of a Unix millisecond time.
pub fn clock_text(now_ms: i64) -> String {
    let ms = now_ms.rem_euclid(86_400_000);
    format!(
        "{:02}:{:02}:{:02}.{:03}",
        ms / 3_600_000,
        ms / 60_000 % 60,
        ms / 1000 % 60,
        ms % 1000
    )
}

/// Render the RGB pixels of the pattern at `now_ms`.
pub fn render(width: u32, height: u32, now_ms: i64) -> Vec<u8> {
    let (w, h) = (width as usize, height as usize);
    let mut px = vec![0u8; w * h * 3];
    let shift = (now_ms / 10).rem_euclid(1 << 20) as usize;
    let box_x = (now_ms / 5).rem_euclid(w.max(1) as i64) as usize;
    for y in 0..h {
        for x in 0..w {
            let stripe = ((x + y + shift) / 16).is_multiple_of(2);
            let in_box = x >= box_x && x < box_x + w / 8 && y >= h / 2 && y < h / 2 + h / 6;
            let (r, g, b) = if in_box {
                (230, 60, 40)
            } else if stripe {
                (40, 70, (x * 255 / w.max(1)) as u8)
            } else {
                (20, (y * 255 / h.max(1)) as u8, 50)
            };
            if let Some(p) = px.get_mut((y * w + x) * 3..(y * w + x) * 3 + 3) {
                p.copy_from_slice(&[r, g, b]);
            }
        }
    }
    let text = clock_text(now_ms);
    let chars = text.chars().count();
    let scale = ((w.saturating_sub(8)) / (chars * 4)).max(1);
    // Bottom edge: viewers overlay their LIVE/STALE badge at the top left.
    let (ox, oy) = (4usize, h.saturating_sub(5 * scale + 4).max(2));
    // Dark backing plate so the digits read on any background.
    for y in oy.saturating_sub(2)..(oy + 5 * scale + 2).min(h) {
        for x in ox.saturating_sub(2)..(ox + chars * 4 * scale).min(w) {
            if let Some(p) = px.get_mut((y * w + x) * 3..(y * w + x) * 3 + 3) {
                p.copy_from_slice(&[0, 0, 0]);
            }
        }
    }
    for (i, c) in text.chars().enumerate() {
        for (row, bits) in glyph(c).iter().enumerate() {
            for col in 0..3 {
                if bits & (4 >> col) == 0 {
                    continue;
                }
                for dy in 0..scale {
                    for dx in 0..scale {
                        let x = ox + (i * 4 + col) * scale + dx;
                        let y = oy + row * scale + dy;
                        if x < w && y < h {
                            if let Some(p) = px.get_mut((y * w + x) * 3..(y * w + x) * 3 + 3) {
                                p.copy_from_slice(&[255, 255, 255]);
                            }
                        }
                    }
                }
            }
        }
    }
    px
}

impl FrameSource for Synthetic {
    fn next_frame(&mut self, now_ms: i64) -> Result<Frame, SourceError> {
        let px = render(self.width, self.height, now_ms);
        let luma: Vec<u8> = px
            .chunks_exact(3)
            .map(|c| {
                let v = |i: usize| u32::from(c.get(i).copied().unwrap_or(0));
                ((299 * v(0) + 587 * v(1) + 114 * v(2)) / 1000) as u8
            })
            .collect();
        let thumb = thumbnail(&luma, self.width, self.height);
        let mut jpeg = Vec::with_capacity(32 * 1024);
        let (w, h) = (u16::try_from(self.width), u16::try_from(self.height));
        let (Ok(w), Ok(h)) = (w, h) else {
            return Err(SourceError::Config("size".into()));
        };
        jpeg_encoder::Encoder::new(&mut jpeg, 75)
            .encode(&px, w, h, jpeg_encoder::ColorType::Rgb)
            .map_err(|e| SourceError::Io(e.to_string()))?;
        Ok(Frame {
            jpeg,
            thumb: Some(thumb),
            captured_ms: None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::camera::prepare;

    #[test]
    fn frames_are_valid_jpegs_that_change_with_time() {
        let mut s = Synthetic::new(320, 240).unwrap();
        let a = prepare(s.next_frame(1_700_000_000_000).unwrap()).unwrap();
        let b = prepare(s.next_frame(1_700_000_000_200).unwrap()).unwrap();
        assert_eq!((a.width, a.height), (320, 240));
        assert_ne!(a.sha256, b.sha256);
        assert!(a.jpeg.len() < 64 * 1024, "small frames: {}", a.jpeg.len());
        assert_eq!(clock_text(1_700_000_000_123), "22:13:20.123");
        assert!(Synthetic::new(10, 10).is_err());
    }
}
