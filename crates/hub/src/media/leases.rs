//! How long each camera was last asked to stream (its `stream` request's `until_ms`),
//! so that a request is renewed when it nears its end rather than on every pass: with
//! ten thousand recordings open, renewing each every pass was thousands of signed
//! downlinks a second (docs/performance.md).

use std::collections::HashMap;
use std::sync::Mutex;
use threshold_proto::DeviceId;

/// Camera -> the `until_ms` of the last stream request sent to it (hub time).
#[derive(Debug, Default)]
pub struct StreamLeases {
    until: Mutex<HashMap<DeviceId, i64>>,
}

impl StreamLeases {
    /// A request reaching `until_ms` was sent to `camera`.
    pub fn asked(&self, camera: DeviceId, until_ms: i64) {
        self.lock().insert(camera, until_ms);
    }

    /// The camera may have lost its request (it reconnected): forget it, so it is due.
    /// Whether it had one (it was streaming).
    pub fn forget(&self, camera: &DeviceId) -> bool {
        self.lock().remove(camera).is_some()
    }

    /// Of `cameras` (those that should be streaming now), the ones whose request ends
    /// within `renew_within_ms` of `now` or that were never asked. Cameras no longer in
    /// the list are forgotten, so the map holds only cameras that stream.
    pub fn due(&self, cameras: &[DeviceId], now: i64, renew_within_ms: i64) -> Vec<DeviceId> {
        let mut until = self.lock();
        let keep: std::collections::HashSet<&DeviceId> = cameras.iter().collect();
        until.retain(|c, _| keep.contains(c));
        cameras
            .iter()
            .filter(|c| until.get(c).is_none_or(|u| u - now <= renew_within_ms))
            .copied()
            .collect()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<DeviceId, i64>> {
        self.until.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cam(n: u8) -> DeviceId {
        DeviceId([n; 16])
    }

    #[test]
    fn a_request_is_renewed_only_when_it_nears_its_end() {
        let leases = StreamLeases::default();
        let cams = [cam(1), cam(2)];
        assert_eq!(leases.due(&cams, 0, 12_000), cams, "never asked: due");
        leases.asked(cam(1), 20_000);
        leases.asked(cam(2), 20_000);
        assert!(leases.due(&cams, 7_000, 12_000).is_empty(), "13 s left");
        assert_eq!(leases.due(&cams, 8_000, 12_000), cams, "12 s left");
        leases.asked(cam(1), 28_000);
        assert_eq!(leases.due(&cams, 8_000, 12_000), [cam(2)]);
    }

    #[test]
    fn a_reconnected_camera_is_due_at_once_and_cameras_that_stop_are_dropped() {
        let leases = StreamLeases::default();
        leases.asked(cam(1), 20_000);
        leases.asked(cam(2), 20_000);
        assert!(leases.forget(&cam(1)));
        assert!(!leases.forget(&cam(1)), "already forgotten");
        assert_eq!(leases.due(&[cam(1), cam(2)], 0, 12_000), [cam(1)]);
        // cam 2 no longer streams: forgotten, so when it streams again it is due.
        assert!(leases.due(&[], 0, 12_000).is_empty());
        assert_eq!(leases.due(&[cam(2)], 0, 12_000), [cam(2)]);
    }
}
