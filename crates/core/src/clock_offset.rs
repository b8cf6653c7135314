//! How far a device's clock is from the hub's, estimated from its signed messages.
//!
//! Each verified message gives one sample, `device_time - hub_arrival_time`, which is
//! the clock offset minus that message's transit delay. Delays are never negative, so
//! the largest sample over a window is the offset as seen through the fastest message:
//! an underestimate by at most the smallest one-way delay (milliseconds on a LAN).
//! A device time mapped onto the hub's clock with this estimate is therefore at most
//! that much later than the truth, and a message delayed in the broker or in the hub's
//! own queue cannot make old evidence look new: a late arrival only lowers its own
//! sample, which the maximum ignores.
//!
//! The window is 60 s in six buckets of 10 s, so the estimate follows a clock that
//! drifts or steps forward at once and one that steps back within a minute.

use crate::Millis;

const BUCKET_MS: Millis = 10_000;
const BUCKETS: usize = 6;

/// The running estimate of one device's clock offset (device minus hub).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ClockOffset {
    /// (bucket number, largest sample in it); bucket number = hub time / 10 s.
    buckets: [Option<(Millis, Millis)>; BUCKETS],
}

impl ClockOffset {
    pub fn new() -> Self {
        Self::default()
    }

    /// A message signed at `device_ms` (device clock) arrived at `hub_ms`.
    pub fn sample(&mut self, device_ms: Millis, hub_ms: Millis) {
        let s = device_ms.saturating_sub(hub_ms);
        let b = hub_ms.div_euclid(BUCKET_MS);
        let slot = b.rem_euclid(BUCKETS as Millis) as usize;
        if let Some(cell) = self.buckets.get_mut(slot) {
            *cell = match *cell {
                Some((n, m)) if n == b => Some((b, m.max(s))),
                _ => Some((b, s)),
            };
        }
    }

    /// The estimate at hub time `now`: the largest sample of the last minute, if any.
    pub fn estimate(&self, now: Millis) -> Option<Millis> {
        let b = now.div_euclid(BUCKET_MS);
        self.buckets
            .iter()
            .flatten()
            .filter(|(n, _)| *n > b - BUCKETS as Millis && *n <= b)
            .map(|(_, m)| *m)
            .max()
    }

    /// A device time on the hub's clock: `device_ms` minus the offset, never later
    /// than `arrived_ms` (nothing is signed after it arrives). Without an estimate the
    /// arrival time is all we know.
    pub fn to_hub(&self, device_ms: Millis, arrived_ms: Millis) -> Millis {
        match self.estimate(arrived_ms) {
            Some(o) => device_ms.saturating_sub(o).min(arrived_ms),
            None => arrived_ms,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn estimate_is_the_fastest_message_offset() {
        let mut c = ClockOffset::new();
        // Device 300 ms ahead; delays of 40, 5 and 900 ms.
        c.sample(1_000_300 - 40, 1_000_000);
        c.sample(1_000_800 - 5, 1_000_500);
        c.sample(1_001_300 - 900, 1_001_000);
        assert_eq!(c.estimate(1_001_000), Some(295));
    }

    #[test]
    fn a_late_arrival_cannot_make_old_evidence_new() {
        let mut c = ClockOffset::new();
        c.sample(10_000, 10_000);
        // Signed at device 10 500, queued 3 s in the broker.
        c.sample(10_500, 13_500);
        assert_eq!(c.estimate(13_500), Some(0));
        assert_eq!(c.to_hub(10_500, 13_500), 10_500);
    }

    #[test]
    fn mapped_time_never_after_arrival() {
        let mut c = ClockOffset::new();
        c.sample(5_000, 5_000);
        // A capture time the device claims is in the future.
        assert_eq!(c.to_hub(9_000, 5_100), 5_100);
        assert_eq!(ClockOffset::new().to_hub(1, 7), 7);
    }

    #[test]
    fn follows_a_step_forward_at_once_and_back_within_a_minute() {
        let mut c = ClockOffset::new();
        let mut t = 1_000_000;
        for _ in 0..20 {
            c.sample(t + 100, t);
            t += 500;
        }
        assert_eq!(c.estimate(t), Some(100));
        c.sample(t + 2_100, t);
        assert_eq!(c.estimate(t), Some(2_100), "forward step is immediate");
        // Back to 100 ms ahead: the old maximum ages out of the window.
        let step = t;
        while t < step + 70_000 {
            t += 500;
            c.sample(t + 100, t);
        }
        assert_eq!(c.estimate(t), Some(100));
    }

    #[test]
    fn nothing_known_after_a_quiet_minute() {
        let mut c = ClockOffset::new();
        c.sample(100, 0);
        assert_eq!(c.estimate(59_999), Some(100));
        assert_eq!(c.estimate(60_000), None);
    }

    #[test]
    fn extreme_times_do_not_overflow() {
        let mut c = ClockOffset::new();
        c.sample(i64::MIN, i64::MAX);
        c.sample(i64::MAX, i64::MIN);
        let _ = c.estimate(i64::MAX);
        let _ = c.to_hub(i64::MIN, 0);
    }
}
