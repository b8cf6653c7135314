//! Liveness: is a device's picture (or state) fresh enough to be shown as live?
//!
//! Law 1: never show stale as live. A camera is LIVE only while the hub has, within the
//! live window, received a verified message announcing a *new* frame whose capture time
//! is itself recent. Heartbeats that keep arriving but announce the same old frame make
//! the camera STALE, not live; no verified message at all for `offline_after` makes it
//! OFFLINE. Nothing here is persisted: after a hub restart every device starts OFFLINE
//! and must prove itself again.

use crate::Millis;
use serde::Serialize;

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LivenessConfig {
    /// How old the newest frame (or state report) may be and still count as live.
    pub live_window_ms: Millis,
    /// No verified message at all for this long: offline.
    pub offline_after_ms: Millis,
    /// How far a device clock may differ from the hub's.
    pub max_clock_skew_ms: Millis,
    /// A picture that has not changed beyond noise for this long is "possibly frozen".
    pub frozen_after_ms: Millis,
    /// Mean absolute difference of the 8x8 luma thumbnail (0..255) below which two
    /// frames count as identical.
    pub frozen_threshold: f32,
}

impl Default for LivenessConfig {
    fn default() -> Self {
        LivenessConfig {
            live_window_ms: 1500,
            offline_after_ms: 5000,
            max_clock_skew_ms: 2000,
            frozen_after_ms: 10_000,
            frozen_threshold: 0.5,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Liveness {
    Live,
    Stale,
    Offline,
}

impl Liveness {
    pub fn as_str(self) -> &'static str {
        match self {
            Liveness::Live => "live",
            Liveness::Stale => "stale",
            Liveness::Offline => "offline",
        }
    }
}

/// Why an otherwise valid message was refused by the liveness rules.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ClockError {
    #[error("device time went backwards")]
    TimeWentBackwards,
    #[error("device clock differs from the hub's by more than the allowed skew")]
    ClockSkew,
}

impl ClockError {
    pub fn reason(self) -> &'static str {
        match self {
            ClockError::TimeWentBackwards => "time_backwards",
            ClockError::ClockSkew => "clock_skew",
        }
    }
}

/// What a camera says about its newest frame.
#[derive(Clone, Debug, PartialEq)]
pub struct FrameObservation {
    pub seq: u64,
    pub capture_ms: Millis,
    pub thumb: Option<[u8; 64]>,
}

/// The hub's view of one device's freshness.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct DeviceLiveness {
    /// Hub time of the last verified live message.
    last_seen_at: Option<Millis>,
    /// Device time of the last verified live message (never decreases).
    last_device_time: Option<Millis>,
    /// Hub time at which the newest fresh evidence arrived (a new frame for cameras,
    /// any fresh report for other devices).
    fresh_at: Option<Millis>,
    newest_frame: Option<(u64, Millis)>,
    last_thumb: Option<[u8; 64]>,
    /// Hub time the picture last changed beyond noise.
    changed_at: Option<Millis>,
}

/// Result of observing a message: whether it refreshed liveness.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Observed {
    Fresh,
    /// Verified and in order, but announces nothing new (same frame, or an old one).
    NotFresh,
}

impl DeviceLiveness {
    pub fn new() -> Self {
        Self::default()
    }

    fn check_clock(
        &self,
        now: Millis,
        device_time: Millis,
        cfg: &LivenessConfig,
    ) -> Result<(), ClockError> {
        if let Some(prev) = self.last_device_time {
            if device_time < prev {
                return Err(ClockError::TimeWentBackwards);
            }
        }
        if (device_time - now).abs() > cfg.max_clock_skew_ms {
            return Err(ClockError::ClockSkew);
        }
        Ok(())
    }

    /// A verified camera heartbeat (or live frame) received at hub time `now`.
    pub fn observe_camera(
        &mut self,
        now: Millis,
        device_time: Millis,
        frame: Option<&FrameObservation>,
        cfg: &LivenessConfig,
    ) -> Result<Observed, ClockError> {
        self.check_clock(now, device_time, cfg)?;
        self.last_seen_at = Some(now);
        self.last_device_time = Some(device_time);
        let Some(f) = frame else {
            return Ok(Observed::NotFresh);
        };
        let advanced = self.newest_frame.is_none_or(|(seq, _)| f.seq > seq);
        let recent =
            now - f.capture_ms <= cfg.live_window_ms && f.capture_ms - now <= cfg.max_clock_skew_ms;
        if !advanced {
            return Ok(Observed::NotFresh);
        }
        self.newest_frame = Some((f.seq, f.capture_ms));
        if let Some(t) = f.thumb {
            let changed = match self.last_thumb {
                None => true,
                Some(prev) => thumb_difference(&prev, &t) >= cfg.frozen_threshold,
            };
            if changed || self.changed_at.is_none() {
                self.changed_at = Some(now);
            }
            self.last_thumb = Some(t);
        }
        if recent {
            self.fresh_at = Some(now);
            Ok(Observed::Fresh)
        } else {
            Ok(Observed::NotFresh)
        }
    }

    /// A verified state report from a lock or sensor.
    pub fn observe_report(
        &mut self,
        now: Millis,
        device_time: Millis,
        cfg: &LivenessConfig,
    ) -> Result<Observed, ClockError> {
        self.check_clock(now, device_time, cfg)?;
        self.last_seen_at = Some(now);
        self.last_device_time = Some(device_time);
        self.fresh_at = Some(now);
        Ok(Observed::Fresh)
    }

    pub fn state(&self, now: Millis, cfg: &LivenessConfig) -> Liveness {
        match (self.fresh_at, self.last_seen_at) {
            (Some(f), _) if now - f <= cfg.live_window_ms => Liveness::Live,
            (_, Some(s)) if now - s <= cfg.offline_after_ms => Liveness::Stale,
            _ => Liveness::Offline,
        }
    }

    /// When the state will next change if nothing arrives (for timers).
    pub fn next_change_at(&self, now: Millis, cfg: &LivenessConfig) -> Option<Millis> {
        match self.state(now, cfg) {
            Liveness::Live => self.fresh_at.map(|f| f + cfg.live_window_ms + 1),
            Liveness::Stale => self.last_seen_at.map(|s| s + cfg.offline_after_ms + 1),
            Liveness::Offline => None,
        }
    }

    /// The picture has not changed beyond noise for `frozen_after_ms` while frames kept
    /// coming: the pipeline may be stuck on one image.
    pub fn possibly_frozen(&self, now: Millis, cfg: &LivenessConfig) -> bool {
        match (self.changed_at, self.fresh_at) {
            (Some(c), Some(f)) => now - f <= cfg.live_window_ms && now - c >= cfg.frozen_after_ms,
            _ => false,
        }
    }

    pub fn last_seen_at(&self) -> Option<Millis> {
        self.last_seen_at
    }

    pub fn fresh_at(&self) -> Option<Millis> {
        self.fresh_at
    }

    pub fn newest_frame(&self) -> Option<(u64, Millis)> {
        self.newest_frame
    }
}

/// Mean absolute difference between two 8x8 luma thumbnails.
pub fn thumb_difference(a: &[u8; 64], b: &[u8; 64]) -> f32 {
    let sum: u32 = a
        .iter()
        .zip(b.iter())
        .map(|(x, y)| u32::from(x.abs_diff(*y)))
        .sum();
    sum as f32 / 64.0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> LivenessConfig {
        LivenessConfig::default()
    }

    fn frame(seq: u64, t: Millis, shade: u8) -> FrameObservation {
        FrameObservation {
            seq,
            capture_ms: t,
            thumb: Some([shade; 64]),
        }
    }

    #[test]
    fn new_device_is_offline() {
        assert_eq!(
            DeviceLiveness::new().state(1_000, &cfg()),
            Liveness::Offline
        );
    }

    #[test]
    fn fresh_frame_makes_camera_live_until_window_passes() {
        let mut d = DeviceLiveness::new();
        let t = 1_000_000;
        assert_eq!(
            d.observe_camera(t, t, Some(&frame(1, t - 100, 1)), &cfg()),
            Ok(Observed::Fresh)
        );
        assert_eq!(d.state(t + 1500, &cfg()), Liveness::Live);
        assert_eq!(d.state(t + 1501, &cfg()), Liveness::Stale);
        assert_eq!(d.state(t + 5001, &cfg()), Liveness::Offline);
    }

    #[test]
    fn heartbeats_repeating_the_same_frame_do_not_keep_camera_live() {
        let mut d = DeviceLiveness::new();
        let t = 1_000_000;
        d.observe_camera(t, t, Some(&frame(7, t, 1)), &cfg())
            .unwrap();
        for i in 1..10 {
            let now = t + i * 500;
            assert_eq!(
                d.observe_camera(now, now, Some(&frame(7, t, 1)), &cfg()),
                Ok(Observed::NotFresh)
            );
        }
        assert_eq!(d.state(t + 4500, &cfg()), Liveness::Stale);
    }

    #[test]
    fn heartbeat_without_frame_is_stale_not_live() {
        let mut d = DeviceLiveness::new();
        d.observe_camera(1000, 1000, None, &cfg()).unwrap();
        assert_eq!(d.state(1000, &cfg()), Liveness::Stale);
    }

    #[test]
    fn old_frame_announced_now_is_not_fresh() {
        let mut d = DeviceLiveness::new();
        let t = 1_000_000;
        assert_eq!(
            d.observe_camera(t, t, Some(&frame(1, t - 1600, 1)), &cfg()),
            Ok(Observed::NotFresh)
        );
        assert_eq!(d.state(t, &cfg()), Liveness::Stale);
    }

    #[test]
    fn device_time_going_backwards_is_refused() {
        let mut d = DeviceLiveness::new();
        d.observe_camera(10_000, 10_000, None, &cfg()).unwrap();
        assert_eq!(
            d.observe_camera(10_100, 9_999, None, &cfg()),
            Err(ClockError::TimeWentBackwards)
        );
    }

    #[test]
    fn device_clock_far_off_is_refused() {
        let mut d = DeviceLiveness::new();
        assert_eq!(
            d.observe_report(10_000, 20_000, &cfg()),
            Err(ClockError::ClockSkew)
        );
        assert_eq!(
            d.observe_report(10_000, 0, &cfg()),
            Err(ClockError::ClockSkew)
        );
        assert_eq!(d.state(10_000, &cfg()), Liveness::Offline);
    }

    #[test]
    fn unchanging_picture_is_flagged_possibly_frozen() {
        let mut d = DeviceLiveness::new();
        let t = 1_000_000;
        for i in 0..=22u64 {
            let now = t + i as i64 * 500;
            d.observe_camera(now, now, Some(&frame(i + 1, now, 100)), &cfg())
                .unwrap();
        }
        assert_eq!(d.state(t + 11_000, &cfg()), Liveness::Live);
        assert!(d.possibly_frozen(t + 11_000, &cfg()));
    }

    #[test]
    fn noisy_but_changing_picture_is_not_frozen() {
        let mut d = DeviceLiveness::new();
        let t = 1_000_000;
        for i in 0..=22u64 {
            let now = t + i as i64 * 500;
            d.observe_camera(
                now,
                now,
                Some(&frame(i + 1, now, (i % 2) as u8 * 3)),
                &cfg(),
            )
            .unwrap();
        }
        assert!(!d.possibly_frozen(t + 11_000, &cfg()));
    }

    #[test]
    fn next_change_predicts_the_transition() {
        let mut d = DeviceLiveness::new();
        d.observe_report(1000, 1000, &cfg()).unwrap();
        let at = d.next_change_at(1000, &cfg()).unwrap();
        assert_eq!(d.state(at - 1, &cfg()), Liveness::Live);
        assert_eq!(d.state(at, &cfg()), Liveness::Stale);
    }
}
