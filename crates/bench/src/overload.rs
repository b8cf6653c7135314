//! The overload part of `threshold bench liveness` (`--flood-cameras M`): beside the
//! measured cameras, each with an open delivery, M more cameras in homes without a
//! delivery start sending `--flood-hz` signed heartbeats a second `--flood-from` s
//! into the measured run, for `--flood-for` s, so that the hub is offered more than it
//! can verify. What the hub must then do (issue 17, DESIGN law 10): blame no camera
//! (the run's `false_alerts`), say once that it is behind (one `hub_behind` system
//! alert), refuse entries meanwhile (`hub_degraded`: while the hub reports itself
//! degraded, the entry rule refuses with that reason, `overload_truth.rs` shows it
//! through the API), keep its memory flat (back-pressure, not queues), and come back
//! by itself when the flood stops. The bench samples the hub every second; this module
//! turns the samples into the `overload` object of the JSON line.

use serde_json::{json, Value};

/// The flood: how many extra cameras, how fast, and when (seconds from the start of
/// the measured run).
#[derive(Clone, Copy, Debug)]
pub struct Flood {
    pub cameras: usize,
    pub hz: f64,
    pub from_s: u64,
    pub for_s: u64,
}

impl Flood {
    pub fn validate(&self, duration_s: u64) -> anyhow::Result<()> {
        anyhow::ensure!(self.cameras >= 1, "--flood-cameras must be at least 1");
        anyhow::ensure!(
            self.hz > 0.0 && self.hz <= 50.0,
            "--flood-hz must be in (0, 50]"
        );
        anyhow::ensure!(self.for_s >= 1, "--flood-for must be at least 1 s");
        anyhow::ensure!(
            self.from_s + self.for_s < duration_s,
            "the flood ({} s from {} s) must end before the run ({} s) does, so that recovery is seen",
            self.for_s,
            self.from_s,
            duration_s
        );
        Ok(())
    }
}

/// One second of the run as the hub saw it.
#[derive(Clone, Copy, Debug, Default)]
pub struct Sample {
    pub at_ms: i64,
    /// The hub said it could not vouch for liveness (entries refused, `hub_degraded`).
    pub degraded: bool,
    /// Measured cameras (not the flood's) live.
    pub base_live: usize,
    /// Heartbeats accepted so far (all cameras).
    pub accepted: u64,
    pub rss: u64,
    /// What the allocator holds for the program, where the binary says.
    pub allocated: Option<u64>,
}

/// What a run's samples say about the hub under the flood.
pub struct Run<'a> {
    pub flood: Flood,
    /// Start of the measured run (ms, same clock as the samples).
    pub t0: i64,
    pub samples: &'a [Sample],
    /// Measured cameras, and when each silenced one sent its last message.
    pub cameras: usize,
    pub silenced_at: &'a [i64],
    /// Heartbeats the flood's cameras sent.
    pub flood_sent: u64,
    /// The hub's `hub_behind` periods (raised, resolved).
    pub behind: &'a [(i64, i64)],
}

fn secs(ms: i64) -> f64 {
    (ms as f64 / 100.0).round() / 10.0
}

impl Run<'_> {
    pub fn summary(&self) -> Value {
        let f = self.flood;
        let start = self.t0 + f.from_s as i64 * 1000;
        let end = start + f.for_s as i64 * 1000;
        let during: Vec<&Sample> = self
            .samples
            .iter()
            .filter(|s| s.at_ms >= start && s.at_ms < end)
            .collect();
        let at_start = self.samples.iter().rev().find(|s| s.at_ms <= start);
        let at_end = self.samples.iter().rev().find(|s| s.at_ms <= end);
        let accepted_per_s = match (at_start, at_end) {
            (Some(a), Some(b)) if b.at_ms > a.at_ms => Some(
                ((b.accepted - a.accepted.min(b.accepted)) as f64 * 1000.0
                    / (b.at_ms - a.at_ms) as f64)
                    .round(),
            ),
            _ => None,
        };
        let rss_start = at_start.map(|s| s.rss);
        let rss_peak = during.iter().map(|s| s.rss).max();
        // After the flood the hub drains its backlog and the flood's cameras go
        // offline: memory then is part of the same episode.
        let rss_peak_after = self
            .samples
            .iter()
            .filter(|s| s.at_ms >= end)
            .map(|s| s.rss)
            .max();
        let rss_growth = match (rss_start, rss_peak) {
            (Some(a), Some(p)) if a > 0 => {
                Some(((p as f64 / a as f64 - 1.0) * 1000.0).round() / 10.0)
            }
            _ => None,
        };
        let allocated_growth = match (
            at_start.and_then(|s| s.allocated),
            during.iter().filter_map(|s| s.allocated).max(),
        ) {
            (Some(a), Some(p)) => Some(p as i64 - a as i64),
            _ => None,
        };
        let first_degraded = during.iter().find(|s| s.degraded).map(|s| s.at_ms);
        // Recovered: the hub vouches again and every measured camera not silenced by
        // then is live.
        let recovered = self
            .samples
            .iter()
            .filter(|s| s.at_ms >= end)
            .find(|s| {
                let gone = self.silenced_at.iter().filter(|&&t| t <= s.at_ms).count();
                !s.degraded && s.base_live + gone >= self.cameras
            })
            .map(|s| s.at_ms);
        json!({
            "flood_cameras": f.cameras,
            "flood_hz": f.hz,
            "from_s": f.from_s,
            "for_s": f.for_s,
            "flood_offered_per_s": (self.flood_sent as f64 / f.for_s as f64).round(),
            "accepted_per_s_in_flood": accepted_per_s,
            // Samples, not seconds: the sampler runs on the hub's runtime, so a
            // saturated hub takes fewer than one a second.
            "samples_in_flood": during.len(),
            "degraded_samples_in_flood": during.iter().filter(|s| s.degraded).count(),
            "first_degraded_after_s": first_degraded.map(|t| secs(t - start)),
            "behind_alerts_before_flood": self.behind.iter().filter(|(r, _)| *r < start).count(),
            "behind_alerts_from_flood": self.behind.iter().filter(|(r, _)| *r >= start).count(),
            "rss_at_flood_start_bytes": rss_start,
            "rss_peak_in_flood_bytes": rss_peak,
            "rss_growth_in_flood_percent": rss_growth,
            "rss_peak_after_flood_bytes": rss_peak_after,
            "allocated_growth_in_flood_bytes": allocated_growth,
            "recovered_after_s": recovered.map(|t| secs(t - end)),
            // Every sample from the flood's start: [s from it, RSS MB, allocated MB,
            // degraded], to see where memory went.
            "from_flood": self
                .samples
                .iter()
                .filter(|s| s.at_ms >= start)
                .map(|s| json!([secs(s.at_ms - start), s.rss / 1_000_000, s.allocated.map(|a| a / 1_000_000), s.degraded]))
                .collect::<Vec<_>>(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(at_s: i64, degraded: bool, base_live: usize, accepted: u64, rss: u64) -> Sample {
        Sample {
            at_ms: at_s * 1000,
            degraded,
            base_live,
            accepted,
            rss,
            allocated: Some(rss / 2),
        }
    }

    #[test]
    fn a_flood_is_judged_on_the_seconds_it_lasted_and_recovery_on_the_cameras_left() {
        let flood = Flood {
            cameras: 10,
            hz: 20.0,
            from_s: 2,
            for_s: 3,
        };
        // Four measured cameras; one silenced at 4.5 s. The flood runs 2..5 s.
        let samples = [
            sample(1, false, 4, 100, 1000),
            sample(2, false, 4, 200, 1000),
            sample(3, true, 4, 250, 1100),
            sample(4, true, 4, 300, 1200),
            sample(5, true, 2, 350, 1050),
            sample(6, false, 2, 450, 1000),
            sample(7, false, 3, 550, 1000),
        ];
        let behind = [(500, 900), (3_000, 6_500)];
        let v = Run {
            flood,
            t0: 0,
            samples: &samples,
            cameras: 4,
            silenced_at: &[4_500],
            flood_sent: 600,
            behind: &behind,
        }
        .summary();
        assert_eq!(v["flood_offered_per_s"], 200.0);
        assert_eq!(v["accepted_per_s_in_flood"], 50.0, "(350 - 200) / 3 s");
        assert_eq!(v["samples_in_flood"], 3);
        assert_eq!(v["degraded_samples_in_flood"], 2);
        assert_eq!(v["first_degraded_after_s"], 1.0);
        assert_eq!(v["behind_alerts_before_flood"], 1);
        assert_eq!(v["behind_alerts_from_flood"], 1);
        assert_eq!(v["rss_growth_in_flood_percent"], 20.0);
        assert_eq!(v["rss_peak_after_flood_bytes"], 1050);
        assert_eq!(v["allocated_growth_in_flood_bytes"], 100);
        // At 6 s the hub vouches but one camera not silenced is not live yet.
        assert_eq!(v["recovered_after_s"], 2.0);
        assert_eq!(v["from_flood"].as_array().map(Vec::len), Some(6));
    }

    #[test]
    fn a_hub_that_never_comes_back_is_said_so() {
        let flood = Flood {
            cameras: 1,
            hz: 1.0,
            from_s: 0,
            for_s: 1,
        };
        let samples = [sample(0, false, 1, 0, 10), sample(2, true, 1, 5, 10)];
        let v = Run {
            flood,
            t0: 0,
            samples: &samples,
            cameras: 1,
            silenced_at: &[],
            flood_sent: 0,
            behind: &[],
        }
        .summary();
        assert!(v["recovered_after_s"].is_null());
    }

    #[test]
    fn a_flood_must_end_inside_the_run() {
        let f = Flood {
            cameras: 1,
            hz: 20.0,
            from_s: 10,
            for_s: 20,
        };
        assert!(f.validate(31).is_ok());
        assert!(f.validate(30).is_err());
        assert!(Flood { hz: 0.0, ..f }.validate(60).is_err());
    }
}
