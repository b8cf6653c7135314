//! Frames: checking that device-supplied JPEGs are plausible, and handing them to live
//! viewers.

pub mod avi;
pub mod leases;
pub mod live;
pub mod recorder;
pub mod recording;

use crate::media::live::LiveFrame;
use crate::state::AppState;
use sha2::{Digest, Sha256};
use threshold_proto::body::FrameHeader;
use threshold_proto::SignedMessage;

/// Largest JPEG accepted from a camera.
pub const MAX_FRAME_BYTES: usize = 2 * 1024 * 1024;

/// A cheap structural check: JPEG start and end markers, a sane size. Decoding every
/// frame would cost more than it proves; a viewer's decoder is the final judge.
pub fn check_jpeg(b: &[u8]) -> Result<(), &'static str> {
    if b.len() > MAX_FRAME_BYTES {
        return Err("frame_too_large");
    }
    if b.len() < 4 || !b.starts_with(&[0xFF, 0xD8, 0xFF]) {
        return Err("frame_not_jpeg");
    }
    if !b.ends_with(&[0xFF, 0xD9]) {
        return Err("frame_truncated");
    }
    Ok(())
}

pub fn sha256_hex(b: &[u8]) -> String {
    hex::encode(Sha256::digest(b))
}

/// A verified frame: file it into any recording it belongs to (durably, before the
/// caller acknowledges it), and hand live ones to viewers. Err means it belongs to a
/// recording but could not be stored: the caller must not acknowledge it.
pub async fn on_frame(
    state: &AppState,
    msg: &SignedMessage,
    header: &FrameHeader,
    jpeg: &[u8],
    recovered: bool,
) -> Result<(), crate::media::recording::StoreFailed> {
    crate::media::recording::on_frame(state, msg, header, jpeg, recovered).await?;
    if !recovered {
        publish_live(state, msg, jpeg);
    }
    Ok(())
}

/// Hand a live frame to this process's live viewers (on a fleet node that does not act
/// for the camera's home, this is all that happens to a frame: it is filed and
/// acknowledged by the node that does).
pub fn publish_live(state: &AppState, msg: &SignedMessage, jpeg: &[u8]) {
    state.live.publish(LiveFrame {
        device: msg.device,
        seq: msg.seq,
        capture_ms: msg.time_ms,
        received_ms: state.clock.now_ms(),
        jpeg: bytes::Bytes::copy_from_slice(jpeg),
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jpeg_check_catches_truncated_and_foreign_data() {
        assert_eq!(
            check_jpeg(&[0xFF, 0xD8, 0xFF, 0xE0, 0, 0, 0xFF, 0xD9]),
            Ok(())
        );
        assert_eq!(
            check_jpeg(&[0xFF, 0xD8, 0xFF, 0xE0, 0, 0]),
            Err("frame_truncated")
        );
        assert_eq!(check_jpeg(b"\x89PNG\r\n\x1a\n"), Err("frame_not_jpeg"));
        assert_eq!(check_jpeg(&[]), Err("frame_not_jpeg"));
        let mut big = vec![0u8; MAX_FRAME_BYTES + 1];
        big[..3].copy_from_slice(&[0xFF, 0xD8, 0xFF]);
        assert_eq!(check_jpeg(&big), Err("frame_too_large"));
    }
}
