//! Decoded pictures: H.264 access units in, owned YUV 4:2:0 pictures out, and JPEG
//! (the protocol's frame format) made from a picture only when the capture loop takes
//! it.

use crate::camera::thumbnail;
use openh264::formats::YUVSource;

/// JPEG quality of frames made from decoded pictures.
pub const JPEG_QUALITY: u8 = 80;

/// One decoded picture, planes without stride padding (chroma is half size, rounded
/// up).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Picture {
    pub width: usize,
    pub height: usize,
    pub y: Vec<u8>,
    pub u: Vec<u8>,
    pub v: Vec<u8>,
}

fn copy_plane(src: &[u8], stride: usize, w: usize, h: usize) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(w * h);
    for row in 0..h {
        let start = row.checked_mul(stride)?;
        out.extend_from_slice(src.get(start..start.checked_add(w)?)?);
    }
    Some(out)
}

impl Picture {
    /// Copy a picture out of a YUV source (the decoder's buffers), or `None` if its
    /// planes are smaller than its dimensions say.
    pub fn from_yuv(s: &impl YUVSource) -> Option<Picture> {
        let (w, h) = s.dimensions();
        let (sy, su, sv) = s.strides();
        if w == 0 || h == 0 || w > 8192 || h > 8192 {
            return None;
        }
        let (cw, ch) = (w.div_ceil(2), h.div_ceil(2));
        Some(Picture {
            width: w,
            height: h,
            y: copy_plane(s.y(), sy, w, h)?,
            u: copy_plane(s.u(), su, cw, ch)?,
            v: copy_plane(s.v(), sv, cw, ch)?,
        })
    }

    /// The 8x8 luma thumbnail the protocol's heartbeats carry.
    pub fn thumb(&self) -> [u8; 64] {
        thumbnail(&self.y, self.width as u32, self.height as u32)
    }

    /// Encode as a baseline JPEG with 4:2:0 chroma. H.264 pictures use the limited
    /// ("TV") range, JPEG the full range: the samples are expanded on the way.
    pub fn to_jpeg(&self, quality: u8) -> Result<Vec<u8>, String> {
        let (w, h) = (self.width, self.height);
        let (w16, h16) = (
            u16::try_from(w).map_err(|_| "picture too wide for JPEG".to_string())?,
            u16::try_from(h).map_err(|_| "picture too tall for JPEG".to_string())?,
        );
        let cw = w.div_ceil(2);
        let luma = |v: u8| -> u8 { ((i32::from(v) - 16).clamp(0, 219) * 255 / 219) as u8 };
        let chroma = |v: u8| -> u8 { ((i32::from(v) - 128) * 255 / 224 + 128).clamp(0, 255) as u8 };
        let mut ycc = Vec::with_capacity(w * h * 3);
        for row in 0..h {
            for col in 0..w {
                let c = (row / 2) * cw + col / 2;
                ycc.push(luma(self.y.get(row * w + col).copied().unwrap_or(16)));
                ycc.push(chroma(self.u.get(c).copied().unwrap_or(128)));
                ycc.push(chroma(self.v.get(c).copied().unwrap_or(128)));
            }
        }
        let mut out = Vec::with_capacity(w * h / 4);
        let mut enc = jpeg_encoder::Encoder::new(&mut out, quality);
        enc.set_sampling_factor(jpeg_encoder::SamplingFactor::R_4_2_0);
        enc.encode(&ycc, w16, h16, jpeg_encoder::ColorType::Ycbcr)
            .map_err(|e| format!("JPEG encoding failed: {e}"))?;
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::camera::{prepare, Frame};

    struct Src {
        w: usize,
        h: usize,
        stride: usize,
        buf: (Vec<u8>, Vec<u8>, Vec<u8>),
    }
    impl YUVSource for Src {
        fn dimensions(&self) -> (usize, usize) {
            (self.w, self.h)
        }
        fn strides(&self) -> (usize, usize, usize) {
            (self.stride, self.stride / 2, self.stride / 2)
        }
        fn y(&self) -> &[u8] {
            &self.buf.0
        }
        fn u(&self) -> &[u8] {
            &self.buf.1
        }
        fn v(&self) -> &[u8] {
            &self.buf.2
        }
    }

    #[test]
    fn copies_planes_without_padding_and_makes_a_valid_jpeg() {
        let (w, h, stride) = (64usize, 48usize, 80usize);
        let mut y = vec![0u8; stride * h];
        for r in 0..h {
            for c in 0..w {
                y[r * stride + c] = if c < w / 2 { 16 } else { 235 };
            }
        }
        let s = Src {
            w,
            h,
            stride,
            buf: (
                y,
                vec![128; stride / 2 * h / 2],
                vec![128; stride / 2 * h / 2],
            ),
        };
        let p = Picture::from_yuv(&s).unwrap();
        assert_eq!(p.y.len(), w * h);
        assert_eq!(p.u.len(), 32 * 24);
        let t = p.thumb();
        assert_eq!(t[0], 16);
        assert_eq!(t[7], 235);
        let jpeg = p.to_jpeg(JPEG_QUALITY).unwrap();
        let f = prepare(Frame::new(jpeg)).unwrap();
        assert_eq!((f.width, f.height), (64, 48));
        // Full range after expansion: the dark half is black, the bright half white.
        assert!(f.thumb[0] < 10, "{:?}", f.thumb);
        assert!(f.thumb[7] > 245, "{:?}", f.thumb);
    }

    #[test]
    fn short_planes_are_refused_not_read_past() {
        let s = Src {
            w: 64,
            h: 48,
            stride: 64,
            buf: (vec![0; 100], vec![0; 100], vec![0; 100]),
        };
        assert_eq!(Picture::from_yuv(&s), None);
        let z = Src {
            w: 0,
            h: 0,
            stride: 0,
            buf: (vec![], vec![], vec![]),
        };
        assert_eq!(Picture::from_yuv(&z), None);
    }
}
