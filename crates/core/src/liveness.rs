//! Liveness: is a device's picture (or state) fresh enough to be shown as live?
//!
//! Law 1: never show stale as live. A camera is LIVE only while its newest frame was
//! *captured* within the live window, measured on the hub's clock: the capture time
//! the camera signed, mapped onto the hub's clock with the camera's estimated clock
//! offset ([`ClockOffset`]), never the time the message happened to arrive. A frame
//! buffered and replayed late is therefore old when it arrives. Heartbeats that keep
//! arriving but announce the same old frame make the camera STALE; no verified
//! message at all for `offline_after` makes it OFFLINE. A lock's or sensor's report is
//! fresh by the time it was signed, mapped the same way.
//!
//! A device whose clock is further from the hub's than `max_clock_skew_ms` is never
//! live (its times cannot be mapped with confidence). A camera that is live but whose
//! picture has not changed for `frozen_after_ms` is "possibly frozen". Neither counts
//! as watching a door ([`DeviceLiveness::watch`]): that one function is the camera
//! rule every entry decision, incident and LIVE badge uses.
//!
//! Nothing here is persisted: after a hub restart every device starts OFFLINE and must
//! prove itself again.

use crate::clock_offset::ClockOffset;
use crate::Millis;
use serde::Serialize;

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LivenessConfig {
    /// How old the newest frame's capture (or a report's signing) may be and still
    /// count as live, on the hub's clock.
    pub live_window_ms: Millis,
    /// No verified message at all for this long: offline.
    pub offline_after_ms: Millis,
    /// How far a device clock may differ from the hub's and still be live.
    pub max_clock_skew_ms: Millis,
    /// A picture that has not changed beyond noise for this long is "possibly frozen".
    pub frozen_after_ms: Millis,
    /// Mean absolute difference of the 8x8 luma thumbnail (0..255) below which two
    /// frames count as identical.
    pub frozen_threshold: f32,
    /// Set by the hub while it is behind with its devices' messages
    /// ([`crate::ingest::LoadJudge`]): a message signed long before it arrived is then
    /// taken as late rather than as a device clock out of skew, and arrival times,
    /// which measure the hub's queue, no longer teach the clock estimate.
    pub ingest_behind: bool,
}

impl Default for LivenessConfig {
    fn default() -> Self {
        LivenessConfig {
            live_window_ms: 1000,
            offline_after_ms: 5000,
            max_clock_skew_ms: 2000,
            frozen_after_ms: 10_000,
            frozen_threshold: 0.5,
            ingest_behind: false,
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

/// Why a camera is not watching.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Blind {
    /// No verified message for `offline_after_ms`.
    Offline,
    /// Connected, but no frame captured within the live window (or none announced by
    /// a signed heartbeat, the statement a lock checks).
    Stale,
    /// Its clock is further from the hub's than the allowed skew.
    ClockSkew,
    /// Frames keep coming but the picture has not changed for `frozen_after_ms`.
    Frozen,
}

impl Blind {
    /// The stable code used in refusals, alerts and the live view.
    pub fn code(self) -> &'static str {
        match self {
            Blind::Offline => "camera_offline",
            Blind::Stale => "camera_stale",
            Blind::ClockSkew => "camera_clock_skew",
            Blind::Frozen => "camera_frozen",
        }
    }

    /// The verdict word a viewer shows instead of LIVE.
    pub fn verdict(self) -> &'static str {
        match self {
            Blind::Offline => "offline",
            Blind::Stale => "stale",
            Blind::ClockSkew => "clock_skew",
            Blind::Frozen => "frozen",
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
    /// Capture time, device clock.
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
    clock: ClockOffset,
    /// Hub-clock time of the newest fresh evidence: the newest frame's capture time
    /// (cameras) or the newest report's signing time (other devices), mapped.
    fresh_at: Option<Millis>,
    newest_frame: Option<(u64, Millis)>,
    last_thumb: Option<[u8; 64]>,
    /// Hub-clock capture time of the newest frame announced by a signed heartbeat: the
    /// camera's own statement, which a lock checks (a frame record proves a capture to
    /// the hub but cannot be carried to a lock).
    statement_at: Option<Millis>,
    /// Hub time the picture last changed beyond noise.
    changed_at: Option<Millis>,
    /// Hub time of the last message refused because its device time was beyond the
    /// allowed skew: the device is there, but its clock cannot be trusted.
    skewed_at: Option<Millis>,
    /// Hub time since which every message of this device, whose clock the hub has no
    /// estimate of, was signed more than the skew before it arrived while the hub kept
    /// up: how long a queue could still be the cause ([`LATE_BEFORE_SKEWED_MS`]).
    unplaced_since: Option<Millis>,
}

/// How long a device whose clock the hub has no estimate of may send only messages
/// signed more than the skew before they arrive, while the hub keeps up, before that is
/// put down to its clock being behind rather than to a queue. A queue can hold them
/// that long: its own link, the broker, or the hub's per-connection backlog after an
/// overload, which still drains for a while once most messages arrive on time (the
/// devices that connected during the backlog are those with no estimate). Until then
/// such messages are late: heard from, nothing fresh, nobody blamed.
pub const LATE_BEFORE_SKEWED_MS: Millis = 30_000;

/// Whether a message's device times could be placed on the hub's clock: not while no
/// estimate of the device's offset exists and none may be learnt (the hub is behind),
/// and then the message makes nothing fresh.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mappable {
    Yes,
    No,
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

    /// Record a verified live message signed at `device_time`, arrived at `now`; says
    /// whether its times can be mapped onto the hub's clock.
    ///
    /// A device time ahead of `now` by more than the allowed skew is refused (and
    /// remembered: the verdict then says why), so it can neither make the device live
    /// nor move its clock's high-water mark. A device time *behind* by more than the
    /// skew is either a clock that is behind or a message that waited in a queue: it is
    /// late, not skewed, when the device's recent fastest messages show its clock within
    /// the skew, or when the hub knows itself behind (`ingest_behind`), or when the hub
    /// has no estimate of the device's clock and such messages have come for less than
    /// [`LATE_BEFORE_SKEWED_MS`] since it last was behind; otherwise it is refused like
    /// a clock ahead. A late message proves the device is there but
    /// teaches the clock estimate nothing, and neither does any message while the hub
    /// is behind (its arrival time measures the hub's queue, and an estimate learnt
    /// from it would make old pictures look new).
    fn seen(
        &mut self,
        now: Millis,
        device_time: Millis,
        cfg: &LivenessConfig,
    ) -> Result<Mappable, ClockError> {
        if device_time.saturating_sub(now) > cfg.max_clock_skew_ms {
            self.skewed_at = Some(now);
            return Err(ClockError::ClockSkew);
        }
        let behind = now.saturating_sub(device_time) > cfg.max_clock_skew_ms;
        // Only an old message needs the estimate (the common case reads nothing more).
        let estimate = behind.then(|| self.clock.estimate(now)).flatten();
        if !behind || cfg.ingest_behind || estimate.is_some() {
            // Placed, or the hub's own queue may be the cause: the evidence starts over.
            self.unplaced_since = None;
        }
        let late = behind
            && (cfg.ingest_behind
                || estimate.is_some_and(|o| o.saturating_abs() <= cfg.max_clock_skew_ms)
                || (estimate.is_none()
                    && now.saturating_sub(*self.unplaced_since.get_or_insert(now))
                        < LATE_BEFORE_SKEWED_MS));
        if behind && !late {
            self.skewed_at = Some(now);
            return Err(ClockError::ClockSkew);
        }
        if self.last_device_time.is_some_and(|prev| device_time < prev) {
            return Err(ClockError::TimeWentBackwards);
        }
        if !late && !cfg.ingest_behind {
            self.clock.sample(device_time, now);
        }
        self.last_seen_at = Some(now);
        self.last_device_time = Some(device_time);
        Ok(if self.clock.estimate(now).is_some() {
            Mappable::Yes
        } else {
            Mappable::No
        })
    }

    /// A verified camera heartbeat received at hub time `now`: the camera's signed
    /// statement about its newest frame.
    pub fn observe_camera(
        &mut self,
        now: Millis,
        device_time: Millis,
        frame: Option<&FrameObservation>,
        cfg: &LivenessConfig,
    ) -> Result<Observed, ClockError> {
        let (observed, mappable) = self.observe_frame(now, device_time, frame, cfg)?;
        if let (Some(f), Mappable::Yes) = (frame, mappable) {
            // A heartbeat re-announcing a frame that a frame record brought first is
            // not news, but it is the newest statement.
            let captured = self.clock.to_hub(f.capture_ms, now).min(now);
            if now.saturating_sub(captured) <= cfg.live_window_ms {
                self.statement_at = Some(self.statement_at.map_or(captured, |p| p.max(captured)));
            }
        }
        Ok(observed)
    }

    /// A verified live frame record (a streaming camera's picture) received at `now`:
    /// fresh evidence for the hub, but not a statement a lock can check.
    pub fn observe_frame_record(
        &mut self,
        now: Millis,
        device_time: Millis,
        frame: &FrameObservation,
        cfg: &LivenessConfig,
    ) -> Result<Observed, ClockError> {
        self.observe_frame(now, device_time, Some(frame), cfg)
            .map(|(o, _)| o)
    }

    fn observe_frame(
        &mut self,
        now: Millis,
        device_time: Millis,
        frame: Option<&FrameObservation>,
        cfg: &LivenessConfig,
    ) -> Result<(Observed, Mappable), ClockError> {
        let mappable = self.seen(now, device_time, cfg)?;
        let Some(f) = frame else {
            return Ok((Observed::NotFresh, mappable));
        };
        if self.newest_frame.is_some_and(|(seq, _)| f.seq <= seq) {
            return Ok((Observed::NotFresh, mappable));
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
        let captured = self.clock.to_hub(f.capture_ms, now);
        if mappable == Mappable::Yes && now.saturating_sub(captured) <= cfg.live_window_ms {
            self.fresh_at = Some(self.fresh_at.map_or(captured, |p| p.max(captured)));
            Ok((Observed::Fresh, mappable))
        } else {
            Ok((Observed::NotFresh, mappable))
        }
    }

    /// A verified state report from a lock or sensor.
    pub fn observe_report(
        &mut self,
        now: Millis,
        device_time: Millis,
        cfg: &LivenessConfig,
    ) -> Result<Observed, ClockError> {
        if self.seen(now, device_time, cfg)? == Mappable::No {
            return Ok(Observed::NotFresh);
        }
        let signed = self.clock.to_hub(device_time, now);
        self.fresh_at = Some(self.fresh_at.map_or(signed, |p| p.max(signed)));
        Ok(Observed::Fresh)
    }

    /// The device clock's estimated offset from the hub's (device minus hub).
    pub fn clock_offset(&self, now: Millis) -> Option<Millis> {
        self.clock.estimate(now)
    }

    /// How long before `now` a message signed at `device_ms` was signed, on the hub's
    /// clock: its ingest lag ([`crate::ingest`]). Unknown until the device's clock
    /// offset is.
    pub fn lag(&self, device_ms: Millis, now: Millis) -> Option<Millis> {
        self.clock
            .estimate(now)
            .map(|o| now.saturating_sub(device_ms.saturating_sub(o)))
    }

    /// A device time (a capture time, an event's time) on the hub's clock.
    pub fn to_hub_time(&self, device_ms: Millis, now: Millis) -> Millis {
        match self.clock.estimate(now) {
            Some(o) => device_ms.saturating_sub(o),
            None => device_ms,
        }
    }

    /// Whether a frame captured at `capture_ms` (the camera's clock) was captured
    /// within the live window, on the hub's clock: the one test of "recent" for a
    /// frame, a statement and a viewer's picture. A capture time ahead of the hub's
    /// clock counts as now.
    pub fn captured_recently(&self, capture_ms: Millis, now: Millis, cfg: &LivenessConfig) -> bool {
        now.saturating_sub(self.to_hub_time(capture_ms, now).min(now)) <= cfg.live_window_ms
    }

    /// The clock is beyond the allowed skew: the newest message was refused for it,
    /// or the estimated offset (from the fastest recent message) is beyond it.
    fn skewed(&self, now: Millis, cfg: &LivenessConfig) -> bool {
        let refused_last = match (self.skewed_at, self.last_seen_at) {
            (Some(k), Some(s)) => k >= s,
            (Some(_), None) => true,
            _ => false,
        };
        (refused_last
            && self
                .skewed_at
                .is_some_and(|k| now.saturating_sub(k) <= cfg.offline_after_ms))
            || self
                .clock
                .estimate(now)
                .is_some_and(|o| o.saturating_abs() > cfg.max_clock_skew_ms)
    }

    /// Heard from recently: a verified message, accepted or refused for its clock.
    fn seen_recently(&self, now: Millis, cfg: &LivenessConfig) -> bool {
        [self.last_seen_at, self.skewed_at]
            .into_iter()
            .flatten()
            .any(|s| now.saturating_sub(s) <= cfg.offline_after_ms)
    }

    pub fn state(&self, now: Millis, cfg: &LivenessConfig) -> Liveness {
        let fresh = self
            .fresh_at
            .is_some_and(|f| now.saturating_sub(f) <= cfg.live_window_ms);
        if fresh && !self.skewed(now, cfg) {
            Liveness::Live
        } else if self.seen_recently(now, cfg) {
            Liveness::Stale
        } else {
            Liveness::Offline
        }
    }

    /// The camera rule (law 1 and 2): whether this camera is watching at `now`, and if
    /// not, why. Live, with a signed statement (a heartbeat) announcing a frame
    /// captured within the live window, so that the lock can check what the hub
    /// believes; clock within the skew; the picture not frozen.
    pub fn watch(&self, now: Millis, cfg: &LivenessConfig) -> Result<(), Blind> {
        if !self.seen_recently(now, cfg) {
            return Err(Blind::Offline);
        }
        if self.skewed(now, cfg) {
            return Err(Blind::ClockSkew);
        }
        let stated = self
            .statement_at
            .is_some_and(|t| now.saturating_sub(t) <= cfg.live_window_ms);
        if self.state(now, cfg) != Liveness::Live || !stated {
            return Err(Blind::Stale);
        }
        if self.possibly_frozen(now, cfg) {
            return Err(Blind::Frozen);
        }
        Ok(())
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
            (Some(c), Some(f)) => {
                now.saturating_sub(f) <= cfg.live_window_ms
                    && now.saturating_sub(c) >= cfg.frozen_after_ms
            }
            _ => false,
        }
    }

    pub fn last_seen_at(&self) -> Option<Millis> {
        self.last_seen_at
    }

    /// Hub-clock time of the newest fresh evidence (capture or signing time).
    pub fn fresh_at(&self) -> Option<Millis> {
        self.fresh_at
    }

    /// The newest frame announced: (frame seq, capture time on the device's clock).
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
        assert_eq!(
            DeviceLiveness::new().watch(1_000, &cfg()),
            Err(Blind::Offline)
        );
    }

    #[test]
    fn frame_records_alone_are_not_a_statement_a_lock_can_check() {
        let mut d = DeviceLiveness::new();
        let t = 1_000_000;
        d.observe_camera(t, t, Some(&frame(1, t, 1)), &cfg())
            .unwrap();
        assert_eq!(d.watch(t + 500, &cfg()), Ok(()));
        // Streaming after an outage: records of new frames, no heartbeat yet. Live for
        // the hub, but the newest statement is the one from before: not watching.
        let later = t + 5_000;
        for i in 0..3 {
            let at = later + i * 100;
            d.observe_frame_record(at, at, &frame(2 + i as u64, at, 2 + i as u8), &cfg())
                .unwrap();
        }
        let now = later + 250;
        assert_eq!(d.state(now, &cfg()), Liveness::Live);
        assert_eq!(d.watch(now, &cfg()), Err(Blind::Stale));
        // The next heartbeat re-announces the newest frame: watching again.
        d.observe_camera(now, now, Some(&frame(4, later + 200, 4)), &cfg())
            .unwrap();
        assert_eq!(d.watch(now, &cfg()), Ok(()));
    }

    #[test]
    fn live_is_measured_from_capture_not_arrival() {
        let mut d = DeviceLiveness::new();
        let t = 1_000_000;
        // Captured 100 ms before it arrived: live until capture + window.
        assert_eq!(
            d.observe_camera(t, t, Some(&frame(1, t - 100, 1)), &cfg()),
            Ok(Observed::Fresh)
        );
        assert_eq!(d.state(t + 900, &cfg()), Liveness::Live);
        assert_eq!(d.state(t + 901, &cfg()), Liveness::Stale);
        assert_eq!(d.watch(t + 901, &cfg()), Err(Blind::Stale));
        assert_eq!(d.state(t + 5001, &cfg()), Liveness::Offline);
    }

    #[test]
    fn a_frame_captured_two_seconds_ago_is_not_live_with_a_one_second_window() {
        let mut d = DeviceLiveness::new();
        let t = 1_000_000;
        d.observe_camera(t, t, None, &cfg()).unwrap();
        // The camera buffered this frame and sends it now, with its true capture time.
        assert_eq!(
            d.observe_camera(t + 500, t + 500, Some(&frame(1, t - 1_500, 1)), &cfg()),
            Ok(Observed::NotFresh)
        );
        assert_eq!(d.watch(t + 500, &cfg()), Err(Blind::Stale));
    }

    #[test]
    fn a_skewed_clock_is_mapped_not_trusted() {
        let mut d = DeviceLiveness::new();
        let t = 1_000_000;
        // Device clock 800 ms behind; frames captured 50 ms before sending.
        for i in 0..4 {
            let now = t + i * 250;
            let dev = now - 800;
            d.observe_camera(
                now,
                dev,
                Some(&frame(i as u64 + 1, dev - 50, i as u8)),
                &cfg(),
            )
            .unwrap();
        }
        let last = t + 750;
        assert_eq!(d.clock_offset(last), Some(-800));
        assert_eq!(d.fresh_at(), Some(last - 50));
        assert_eq!(d.watch(last + 950, &cfg()), Ok(()));
        assert_eq!(d.watch(last + 951, &cfg()), Err(Blind::Stale));
        // A capture time on the camera's clock, mapped: 1000 ms old on the hub's
        // clock is still recent, 1001 ms is not; a capture time ahead counts as now.
        let now = last + 5_000;
        assert!(d.captured_recently(now - 800 - 1_000, now, &cfg()));
        assert!(!d.captured_recently(now - 800 - 1_001, now, &cfg()));
        assert!(d.captured_recently(now + 60_000, now, &cfg()));
    }

    #[test]
    fn a_camera_with_a_clock_beyond_the_skew_is_not_live_and_says_why() {
        let mut d = DeviceLiveness::new();
        let t = 1_000_000;
        d.observe_camera(t, t, Some(&frame(1, t - 50, 1)), &cfg())
            .unwrap();
        assert_eq!(d.watch(t, &cfg()), Ok(()));
        // Its clock jumps 2.5 s ahead: refused, and the verdict says why.
        assert_eq!(
            d.observe_camera(t + 250, t + 2_750, Some(&frame(2, t + 2_700, 2)), &cfg()),
            Err(ClockError::ClockSkew)
        );
        assert_eq!(d.state(t + 250, &cfg()), Liveness::Stale);
        assert_eq!(d.watch(t + 250, &cfg()), Err(Blind::ClockSkew));
        // Right again: live again.
        d.observe_camera(t + 500, t + 500, Some(&frame(3, t + 450, 3)), &cfg())
            .unwrap();
        assert_eq!(d.watch(t + 500, &cfg()), Ok(()));
        // Nothing at all for a while: offline, whatever the clock said.
        let mut d = DeviceLiveness::new();
        let _ = d.observe_report(t, t + 10_000, &cfg());
        assert_eq!(d.watch(t, &cfg()), Err(Blind::ClockSkew));
        assert_eq!(d.watch(t + 5_001, &cfg()), Err(Blind::Offline));
    }

    #[test]
    fn a_late_message_is_late_not_a_skewed_clock() {
        let mut d = DeviceLiveness::new();
        let t = 1_000_000;
        d.observe_camera(t, t, Some(&frame(1, t - 50, 1)), &cfg())
            .unwrap();
        // Signed 3 s before it arrived (it waited in a queue): the camera's clock was
        // right a moment ago, so the message is late, not the clock wrong. Accepted,
        // not fresh, and the clock estimate does not move.
        let now = t + 3_250;
        assert_eq!(
            d.observe_camera(now, t + 250, Some(&frame(2, t + 200, 2)), &cfg()),
            Ok(Observed::NotFresh)
        );
        assert_eq!(d.clock_offset(now), Some(0));
        assert_eq!(d.state(now, &cfg()), Liveness::Stale);
        assert_eq!(d.watch(now, &cfg()), Err(Blind::Stale));
    }

    /// A device the hub has no clock estimate of, whose messages all arrive 3 s after
    /// they were signed: a queue or a clock behind, nothing tells which at first. Late
    /// (heard from, nothing fresh) for [`LATE_BEFORE_SKEWED_MS`] of a hub keeping up,
    /// then put down to its clock; a hub behind in between starts the evidence over.
    #[test]
    fn an_unplaced_device_s_old_messages_are_late_for_a_while_then_its_clock_s_fault() {
        let t = 1_000_000;
        let behind = LivenessConfig {
            ingest_behind: true,
            ..cfg()
        };
        let mut d = DeviceLiveness::new();
        let mut seq = 1;
        let mut beat = |d: &mut DeviceLiveness, now: Millis, cfg: &LivenessConfig| {
            seq += 1;
            let signed = now - 3_000;
            d.observe_camera(now, signed, Some(&frame(seq, signed - 50, seq as u8)), cfg)
        };
        let mut now = t;
        while now < t + LATE_BEFORE_SKEWED_MS {
            assert_eq!(
                beat(&mut d, now, &cfg()),
                Ok(Observed::NotFresh),
                "at {now}"
            );
            assert_eq!(d.watch(now, &cfg()), Err(Blind::Stale));
            assert_eq!(d.clock_offset(now), None, "a late message teaches nothing");
            now += 500;
        }
        // The hub falls behind for a moment: the queue may be its own again.
        assert_eq!(beat(&mut d, now, &behind), Ok(Observed::NotFresh));
        now += 500;
        let restart = now;
        while now < restart + LATE_BEFORE_SKEWED_MS {
            assert_eq!(
                beat(&mut d, now, &cfg()),
                Ok(Observed::NotFresh),
                "at {now}"
            );
            now += 500;
        }
        assert_eq!(beat(&mut d, now, &cfg()), Err(ClockError::ClockSkew));
        assert_eq!(d.watch(now, &cfg()), Err(Blind::ClockSkew));
        // A message that arrives on time places the clock: live, and the evidence is gone.
        now += 500;
        seq += 1;
        assert_eq!(
            d.observe_camera(now, now, Some(&frame(seq, now - 50, seq as u8)), &cfg()),
            Ok(Observed::Fresh)
        );
        assert_eq!(d.watch(now, &cfg()), Ok(()));
    }

    #[test]
    fn while_the_hub_is_behind_arrivals_teach_nothing_and_make_nothing_fresh() {
        let behind = LivenessConfig {
            ingest_behind: true,
            ..cfg()
        };
        let mut d = DeviceLiveness::new();
        let t = 1_000_000;
        d.observe_camera(t, t, Some(&frame(1, t - 50, 1)), &cfg())
            .unwrap();
        // Behind for two minutes, every message 5 s late: the estimate learnt before
        // stays out of it (it expires after a minute), so no old picture looks new,
        // and no message is blamed on the camera's clock.
        let mut seq = 2;
        let mut now = t + 5_000;
        while now < t + 120_000 {
            let signed = now - 5_000;
            assert_eq!(
                d.observe_camera(
                    now,
                    signed,
                    Some(&frame(seq, signed - 50, seq as u8)),
                    &behind
                ),
                Ok(Observed::NotFresh),
                "at {now}"
            );
            assert_ne!(d.state(now, &behind), Liveness::Live);
            assert_ne!(d.watch(now, &behind), Err(Blind::ClockSkew));
            seq += 1;
            now += 500;
        }
        assert_eq!(
            d.clock_offset(now),
            None,
            "nothing learnt from queued arrivals"
        );
        // Caught up: the first timely message teaches the clock again and is fresh.
        assert_eq!(
            d.observe_camera(now, now, Some(&frame(seq, now - 50, 0)), &cfg()),
            Ok(Observed::Fresh)
        );
        assert_eq!(d.watch(now, &cfg()), Ok(()));
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
    fn a_queued_heartbeat_does_not_revive_an_old_frame() {
        let mut d = DeviceLiveness::new();
        let t = 1_000_000;
        d.observe_camera(t, t, Some(&frame(1, t, 1)), &cfg())
            .unwrap();
        // Signed 200 ms later, announcing a new frame, but held 1.5 s in a queue.
        assert_eq!(
            d.observe_camera(t + 1_700, t + 200, Some(&frame(2, t + 190, 2)), &cfg()),
            Ok(Observed::NotFresh)
        );
        assert_eq!(d.state(t + 1_700, &cfg()), Liveness::Stale);
    }

    #[test]
    fn device_clock_far_off_is_refused() {
        let mut d = DeviceLiveness::new();
        assert_eq!(
            d.observe_report(10_000, 20_000, &cfg()),
            Err(ClockError::ClockSkew)
        );
        // 10 s behind, from a device whose clock the hub does not know: late or
        // skewed, not yet told apart (see the test of an unplaced device).
        assert_eq!(d.observe_report(10_000, 1, &cfg()), Ok(Observed::NotFresh));
        assert_eq!(d.state(10_000, &cfg()), Liveness::Stale);
        assert_eq!(d.state(15_001, &cfg()), Liveness::Offline);
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
    fn a_lock_report_is_fresh_from_when_it_was_signed() {
        let mut d = DeviceLiveness::new();
        d.observe_report(10_000, 10_000, &cfg()).unwrap();
        // Signed at 10 500 but delivered 900 ms late.
        d.observe_report(11_400, 10_500, &cfg()).unwrap();
        assert_eq!(d.fresh_at(), Some(10_500));
        assert_eq!(d.state(11_500, &cfg()), Liveness::Live);
        assert_eq!(d.state(11_501, &cfg()), Liveness::Stale);
    }

    #[test]
    fn unchanging_picture_is_flagged_possibly_frozen_and_is_not_watching() {
        let mut d = DeviceLiveness::new();
        let t = 1_000_000;
        for i in 0..=22u64 {
            let now = t + i as i64 * 500;
            d.observe_camera(now, now, Some(&frame(i + 1, now, 100)), &cfg())
                .unwrap();
        }
        assert_eq!(d.state(t + 11_000, &cfg()), Liveness::Live);
        assert!(d.possibly_frozen(t + 11_000, &cfg()));
        assert_eq!(d.watch(t + 11_000, &cfg()), Err(Blind::Frozen));
        assert_eq!(d.watch(t + 9_500, &cfg()), Ok(()));
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
        assert_eq!(d.watch(t + 11_000, &cfg()), Ok(()));
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
